#pragma once

// The Moonshare front-end (docs/protocol/moonshare.md): the servers behind the Moonshare Dalamud
// plugin for FINAL FANTASY XIV. A token endpoint (HTTP) and an auth WebSocket issue guest tokens
// of the account system; three player "instances" (WebSocket /player on three ports, one shared
// registry, so users on any instance see each other) carry presence, connect requests and file
// transfers relayed through the server (streamed through disk, never held whole in memory); an
// API gateway (HTTP and a /ws push) serves status to bots and dashboards.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/http.hpp>

#include "core/config.hpp"
#include "core/shard_set.hpp"

namespace hearth::core {
class EventBus;
class MetricsRegistry;
class Runtime;
}  // namespace hearth::core
namespace hearth::auth {
class AccountService;
struct AccessPolicy;
class OperatorAuth;
}  // namespace hearth::auth

namespace hearth::frontends::moonshare {

/// The realm of Moonshare's guest tokens in the account system (account "guest:moonshare").
inline constexpr std::string_view kRealm = "moonshare";

/// The tokens /player's session_auth accepts: guest tokens of this realm alone (and then only for
/// the user id they were issued for). No session, no API key: they are other front-ends'.
const auth::AccessPolicy& access_policy();

struct MoonshareConfig {
    static constexpr std::string_view kName = "moonshare";
    static constexpr std::string_view kDescription =
        "The Moonshare protocol (the FFXIV plugin's token, auth, player and gateway servers) on "
        "its own listeners.";

    bool enabled = false;
    std::string token_listen = "0.0.0.0:5003";  // the original AuthServer's HTTP port
    std::string auth_listen = "0.0.0.0:5004";   // the original AuthServer's WebSocket port
    // One player instance per address, named Alpha, Beta, Gamma, ... in this order; the plugin
    // picks port 5000 + StableHash(userId) % 3.
    std::vector<std::string> player_listen = {"0.0.0.0:5000", "0.0.0.0:5001", "0.0.0.0:5002"};
    std::string gateway_listen = "0.0.0.0:8090";  // the original ApiGatewayServer's port
    std::int64_t token_ttl_s = 86'400;
    std::int64_t player_limit = 1500;                                // per instance
    std::int64_t max_file_size_bytes = 64LL * 1024 * 1024;           // 64 MiB
    std::int64_t file_ttl_s = 7 * 86'400;                            // stored files: 7 days
    std::int64_t max_stored_bytes_per_user = 256LL * 1024 * 1024;    // per recipient
    std::int64_t max_stored_bytes_total = 4LL * 1024 * 1024 * 1024;  // every file on disk
    std::int64_t max_concurrent_uploads = 64;
    std::int64_t upload_timeout_s = 60;
    std::int64_t token_requests_per_ip_per_min = 60;
    std::int64_t max_bindings = 20'000;
    std::int64_t binding_ttl_s = 86'400;
    bool renew_from_same_ip = true;
    // Limits that hold under abuse (docs/security.md): far above what a real plugin does.
    std::int64_t min_transfer_bytes_per_s = 4096;
    std::int64_t transfer_rate_window_s = 30;
    std::int64_t max_stored_files_per_user = 256;                     // per recipient
    std::int64_t max_stored_bytes_per_sender = 1024LL * 1024 * 1024;  // per sender address
    std::int64_t max_stored_files_per_sender = 256;                   // per sender address
    std::int64_t max_players_per_address = 32;
    std::int64_t max_uploads_per_address = 8;
    std::int64_t max_bindings_per_address = 64;
    std::int64_t max_paced_addresses = 10'000;

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the Moonshare protocol."});
        v("token_listen", token_listen,
          {.help = "Address of the token HTTP endpoint (GET /sessions?userId=), host:port.",
           .restart = true});
        v("auth_listen", auth_listen,
          {.help = "Address of the auth WebSocket listener (/auth, /sessions), host:port.",
           .restart = true});
        v("player_listen", player_listen,
          {.help = "Addresses of the player instances (WebSocket /player), named Alpha, Beta, "
                   "Gamma, ... in this order; 1 to 24 of them.",
           .restart = true});
        v("gateway_listen", gateway_listen,
          {.help = "Address of the API gateway (HTTP status endpoints and /ws), host:port.",
           .restart = true});
        v("token_ttl_s", token_ttl_s,
          {.help = "Lifetime of a Moonshare token, in seconds.",
           .restart = true,
           .min = 1,
           .max = 365LL * 86'400});
        v("player_limit", player_limit,
          {.help = "Authenticated players per instance; one more gets \"Server full\".",
           .restart = true,
           .min = 1,
           .max = 1'000'000});
        v("max_file_size_bytes", max_file_size_bytes,
          {.help = "Largest file a player may send, in bytes.",
           .restart = true,
           .min = 1,
           .max = 1LL << 40});
        v("file_ttl_s", file_ttl_s,
          {.help = "Files stored for offline players are deleted after this many seconds.",
           .restart = true,
           .min = 1,
           .max = 365LL * 86'400});
        v("max_stored_bytes_per_user", max_stored_bytes_per_user,
          {.help = "Bytes of stored files waiting for one offline player (the recipient).",
           .restart = true,
           .min = 0,
           .max = 1LL << 50});
        v("max_stored_bytes_total", max_stored_bytes_total,
          {.help = "Bytes of files on disk at once: stored files and uploads in progress.",
           .restart = true,
           .min = 0,
           .max = 1LL << 50});
        v("max_concurrent_uploads", max_concurrent_uploads,
          {.help = "File uploads in progress at once, over every instance; one more is refused.",
           .restart = true,
           .min = 1,
           .max = 100'000});
        v("token_requests_per_ip_per_min", token_requests_per_ip_per_min,
          {.help = "Tokens one IP address may ask for per minute (token endpoint and /auth "
                   "together); more are refused (429, or close 1013 on /auth) so that a script "
                   "cannot fill the store with tokens. 0 means unlimited.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("max_bindings", max_bindings,
          {.help = "User ids held at once: the first token issued for a user id binds the id to "
                   "its holder. Past this many, a token for a new user id ends the least "
                   "recently used binding that never authenticated a player, or is refused (503) "
                   "when every binding did; each takes at most 1 KiB.",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("binding_ttl_s", binding_ttl_s,
          {.help = "A user id stays bound to its holder this long after its holder last got a "
                   "token or left, and at least while one of its tokens is valid, it is online, "
                   "or files wait for it.",
           .restart = true,
           .min = 1,
           .max = 365LL * 86'400});
        v("renew_from_same_ip", renew_from_same_ip,
          {.help = "Issue a new token for a bound user id without the holder's token when the "
                   "request comes from the IP address that one of the holder's tokens (or its "
                   "latest) was issued to: the plugin asks for a new token at every reconnect "
                   "and never shows the old one. false: only a request with the holder's token "
                   "(Authorization: Bearer) gets one.",
           .restart = true});
        v("upload_timeout_s", upload_timeout_s,
          {.help = "An announced upload whose bytes stop coming for this long is dropped (the "
                   "sender gets \"FILE_FAILED: Upload timed out\"), so that idle clients cannot "
                   "hold upload slots.",
           .restart = true,
           .min = 1,
           .max = 86'400});
        v("min_transfer_bytes_per_s", min_transfer_bytes_per_s,
          {.help = "Slowest rate at which an upload's bytes may come, or a file being sent to a "
                   "player may be read, averaged over transfer_rate_window_s. A slower upload is "
                   "dropped (\"FILE_FAILED: Upload too slow\"), a slower download closes the "
                   "receiving connection (1008 \"transfer too slow\"), so that a client "
                   "trickling bytes cannot hold an upload slot, its reserved space or a file for "
                   "hours. Time the server itself keeps the client waiting does not count. 0 "
                   "disables.",
           .restart = true,
           .min = 0,
           .max = 1LL << 40});
        v("transfer_rate_window_s", transfer_rate_window_s,
          {.help = "The window over which min_transfer_bytes_per_s is averaged.",
           .restart = true,
           .min = 1,
           .max = 3600});
        v("max_stored_files_per_user", max_stored_files_per_user,
          {.help = "Stored files waiting for one offline player (the recipient); one more gets "
                   "\"FILE_FAILED: Storage quota exceeded\".",
           .restart = true,
           .min = 1,
           .max = 1'000'000'000});
        v("max_stored_bytes_per_sender", max_stored_bytes_per_sender,
          {.help = "Bytes of stored files sent from one client address (IPv6 by /64), whoever "
                   "they wait for; past it \"FILE_FAILED: Storage quota exceeded\", so that one "
                   "client cannot fill the storage with files for made-up recipients.",
           .restart = true,
           .min = 0,
           .max = 1LL << 50});
        v("max_stored_files_per_sender", max_stored_files_per_sender,
          {.help = "Stored files sent from one client address (IPv6 by /64); one more gets "
                   "\"FILE_FAILED: Storage quota exceeded\".",
           .restart = true,
           .min = 1,
           .max = 1'000'000'000});
        v("max_players_per_address", max_players_per_address,
          {.help = "Authenticated players from one client address (IPv6 by /64) over every "
                   "instance; one more gets \"Server full, please try later\", so that one or "
                   "two addresses cannot take every player slot. 0 means unlimited.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("max_uploads_per_address", max_uploads_per_address,
          {.help = "Uploads in progress at once from one client address (IPv6 by /64); one "
                   "more gets \"FILE_FAILED: Server busy, please try later\", so that one or "
                   "two addresses cannot take every upload slot. 0 means unlimited.",
           .restart = true,
           .min = 0,
           .max = 100'000});
        v("max_bindings_per_address", max_bindings_per_address,
          {.help = "User ids bound from one client address (IPv6 by /64). A new user id past it "
                   "ends one of that address's own bindings that is not in use (one that never "
                   "authenticated first, else the least recently used; never one online or with "
                   "files waiting), or is refused (503) when all are in use. 0 means unlimited.",
           .restart = true,
           .min = 0,
           .max = 10'000'000});
        v("max_paced_addresses", max_paced_addresses,
          {.help = "Client addresses (IPv6 by /64) whose token requests are counted for "
                   "token_requests_per_ip_per_min. At the bound a new address takes the place "
                   "of the least recently seen one, first among those that never authenticated "
                   "a player, so that a newcomer is never refused because the table is full.",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const MoonshareConfig&) const = default;
};

/// The name of player instance `index`: Alpha, Beta, Gamma, ... (the Greek alphabet).
std::string_view instance_name(std::size_t index);

/// The route settings of /player: the `[websocket]` defaults, without compression (the plugin's
/// .NET client does not negotiate it), with binary messages streamed to the handler in parts
/// (files), room for a file's announcement, and no byte rate (files may come at link speed).
WsRouteSettings player_route_settings(const MoonshareConfig& config,
                                      const core::WebSocketConfig& ws);

/// The Moonshare front-end. Created, wired and stopped on the control thread; its connections run
/// on the io threads; disk work runs on the runtime's blocking pool, and each connection's upload
/// watchdog is an Asio timer on its own io thread. `runtime`, `accounts` and `events` must outlive
/// it. Lifecycle: construct (indexes the stored files under `data_dir`/moonshare and loads the
/// user id bindings saved there), add_routes, start (its housekeeping timer), and destroy after
/// the network layer (stops the timer, then saves the bindings).
class MoonshareFrontend {
public:
    MoonshareFrontend(core::Runtime& runtime, auth::AccountService& accounts,
                      core::MetricsRegistry& metrics, core::EventBus& events,
                      const MoonshareConfig& config, const std::string& data_dir);
    ~MoonshareFrontend();
    MoonshareFrontend(const MoonshareFrontend&) = delete;
    MoonshareFrontend& operator=(const MoonshareFrontend&) = delete;

    /// Declares the token, auth, player and gateway listeners and their routes. `player` are the
    /// settings of /player (player_route_settings), `ws` those of the other WebSocket routes.
    /// `operators` decides who may read the listings and logs (gateway /sessions, /players,
    /// /logs, /events/recent and the auth WebSocket's /sessions); it must outlive the routes.
    void add_routes(Router& router, std::shared_ptr<const WsRouteSettings> player,
                    std::shared_ptr<const WsRouteSettings> ws, const auth::OperatorAuth& operators);
    /// Starts the housekeeping timer (gateway pushes, expiry of stored files and sessions), a
    /// timer on shard 0. Before the runtime runs too (it begins when the runtime does).
    void start();
    /// Stops the timer; returns once a tick under way has ended. Idempotent; the destructor calls
    /// it. Not from an io thread a tick waits for (none: a tick only posts).
    void stop();

    /// Test seam: where the blocking pool is about to touch an upload's file. No client can hold
    /// the server between a disk operation's start and its end, and two races live there (a
    /// target authenticating while its file is stored, a sender leaving while its last chunk is
    /// written); a test blocks in the hook to hold it. kSync: a stored file is about to be
    /// synced to disk (its FILE_SENT_SERVER_ONLY waits for the sync). Unset in production. Set it
    /// before any connection opens; it runs on blocking-pool threads.
    enum class DiskStep : std::uint8_t { kWriteChunk, kStoreUpload, kSync };
    void set_disk_hook(std::function<void(DiskStep)> hook);

    /// Listener keys (after add_routes), for bound_port.
    const std::string& token_listener() const noexcept { return token_listener_; }
    const std::string& auth_listener() const noexcept { return auth_listener_; }
    const std::vector<std::string>& player_listeners() const noexcept { return player_listeners_; }
    const std::string& gateway_listener() const noexcept { return gateway_listener_; }

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
    core::ShardTimer ticker_;
    MoonshareConfig config_;
    std::string token_listener_;
    std::string auth_listener_;
    std::vector<std::string> player_listeners_;
    std::string gateway_listener_;
};

}  // namespace hearth::frontends::moonshare
