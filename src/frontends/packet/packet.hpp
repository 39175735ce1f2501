#pragma once

// The game packet front-end (docs/protocol/packets.md): ROSE-framed binary packets over raw TCP.
// This part serves the session (keep-alive, the idle and login deadlines, login by password or by
// token against Hearth's accounts, logout) and the characters (list, create, delete, select on
// the character service, one live game connection per character) and the world (a character
// enters it through the world service; its requests go to its Player, and what it sees comes back
// through its PlayerSink, world_sink.hpp). The codec is codec.hpp and messages.hpp; this file
// maps it onto stream connections and the three services.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/access_policy.hpp>
#include <hearth/characters.hpp>
#include <hearth/http.hpp>
#include <hearth/world.hpp>

#include "core/config.hpp"
#include "core/shard_set.hpp"

namespace hearth::core {
class MetricsRegistry;
}  // namespace hearth::core
namespace hearth::auth {
class AccountService;
}  // namespace hearth::auth

namespace hearth::frontends::packet {

struct PacketConfig {
    static constexpr std::string_view kName = "packet";
    static constexpr std::string_view kDescription =
        "The game packet protocol (ROSE framing over raw TCP: login, characters, the world) on its "
        "own listener.";

    bool enabled = false;
    std::string listen = "0.0.0.0:29000";
    std::int64_t max_packet_bytes = 0x7FF;  // the original's
    // Clients send Alive about every third of it (the login reply tells them the value).
    std::int64_t idle_timeout_s = 60;
    // Before login nothing but Alive keeps a connection: an unauthenticated one must log in soon.
    std::int64_t login_timeout_s = 30;
    // Each connection may hold one partial packet (at most max_packet_bytes) and up to 64 KiB
    // received while its login is checked: this bounds one address's share.
    std::int64_t max_connections_per_ip = 256;
    // Each character is played on one connection; a few more leave room for a client that
    // reconnects before its old connection timed out.
    std::int64_t max_connections_per_account = 8;
    // A game client sends a few packets a second (moves, chat, keep-alive); a bot a few dozen.
    double max_packets_per_s = 200;
    double packet_burst = 400;
    std::int64_t max_bytes_per_s = 256 * 1024;
    std::int64_t bytes_burst = 512 * 1024;

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the game packet protocol."});
        v("listen", listen,
          {.help = "Address of the packet TCP listener, host:port (port 0 picks a free port).",
           .restart = true});
        v("max_packet_bytes", max_packet_bytes,
          {.help = "The largest packet accepted, header included; a larger size field gets "
                   "packet_too_large and the connection is closed. Told to clients at login.",
           .restart = true,
           .min = 1024,
           .max = 65'535});
        v("idle_timeout_s", idle_timeout_s,
          {.help = "Close a connection that sends no complete packet for this many "
                   "seconds (Error idle_timeout first). Told to clients at login; they send Alive "
                   "about every third of it.",
           .restart = true,
           .min = 1,
           .max = 3'600});
        v("login_timeout_s", login_timeout_s,
          {.help = "Close a connection not logged in this many seconds after it opened (Error "
                   "idle_timeout first), whatever it sent.",
           .restart = true,
           .min = 1,
           .max = 3'600});
        v("max_connections_per_ip", max_connections_per_ip,
          {.help = "Open connections from one IP address; one more is closed at once. 0 means "
                   "unlimited.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("max_connections_per_account", max_connections_per_account,
          {.help = "Logged-in connections of one account; a login beyond it takes the account's "
                   "oldest connection over (Error taken_over, then close). 1: one connection per "
                   "account.",
           .restart = true,
           .min = 1,
           .max = 1'000});
        v("max_packets_per_s", max_packets_per_s,
          {.help = "Sustained incoming packets per second per connection; 0 means unlimited. Over "
                   "it: Error rate_limited, then the connection is closed.",
           .restart = true});
        v("packet_burst", packet_burst,
          {.help = "Packets a connection may send at once above the sustained rate.",
           .restart = true});
        v("max_bytes_per_s", max_bytes_per_s,
          {.help = "Sustained bytes of packet payload per second per connection; 0 means "
                   "unlimited. Over it: Error rate_limited, then the connection is closed.",
           .restart = true,
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("bytes_burst", bytes_burst,
          {.help = "Payload bytes a connection may send at once above the sustained rate (never "
                   "less than one largest packet).",
           .restart = true,
           .min = 0,
           .max = std::int64_t{1} << 40});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const PacketConfig&) const = default;
};

/// The tokens a LoginRequest may carry: a Hearth session or an external (better-auth) session of
/// an account of any role, or an API key with scope `packet`.
const auth::AccessPolicy& access_policy();

/// The packet front-end: its listener, the registry of selected characters (the takeover rule)
/// and one idle sweep per io thread. Created and wired on the control thread; its connections run
/// on the io threads, and the services' completions are posted back to them. `accounts`,
/// `characters` and `world` must outlive every connection (the app destroys the network layer
/// first).
class PacketFrontend {
public:
    PacketFrontend(core::ShardSet shards, auth::AccountService& accounts,
                   characters::CharacterService& characters, world::WorldService& world,
                   core::MetricsRegistry& metrics, const PacketConfig& config);
    ~PacketFrontend();
    PacketFrontend(const PacketFrontend&) = delete;
    PacketFrontend& operator=(const PacketFrontend&) = delete;

    /// Declares the raw TCP listener (`listen`).
    void add_routes(Router& router);
    /// The listener's key (after add_routes), for bound_port.
    const std::string& listener() const noexcept { return listener_; }

    /// Sends Error shutting_down to every open connection (the module is stopping); the network
    /// layer closes them after what is queued is written. Any thread.
    void say_shutting_down();

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
    PacketConfig config_;
    std::string listener_;
    std::vector<core::ShardTimer> sweeps_;  // last: cancelled before shared_ goes
};

}  // namespace hearth::frontends::packet
