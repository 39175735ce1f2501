#pragma once

// The Homestead gateway (docs/protocol/homestead.md): game-server mods and one bot exchange chat by
// channel over WebSocket at /sync on their own listener (port 3333), with durable mailboxes for a
// recipient that is offline. Wire-compatible with the original Go gateway; the codec is in
// codec.hpp, this file maps it onto connections and the store.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/http.hpp>

#include "auth/access_policy.hpp"
#include "core/config.hpp"
#include "core/shard_set.hpp"

namespace hearth::core {
class MetricsRegistry;
class Runtime;
}  // namespace hearth::core
namespace hearth::auth {
class AccountService;
}  // namespace hearth::auth
namespace hearth::store {
class Mailboxes;
}

namespace hearth::frontends::homestead {

struct HomesteadConfig {
    /// The original's default key (its `websocket` key), known to anyone who read its README.
    static constexpr std::string_view kDefaultApiKey = "gateway";
    static constexpr std::string_view kName = "homestead";
    static constexpr std::string_view kDescription =
        "The Homestead gateway protocol (game-server mods and a chat bot, by channel) on its own "
        "listener.";

    bool enabled = false;
    std::string listen = "0.0.0.0:3333";  // the original's port
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string api_key = std::string(kDefaultApiKey);
    std::int64_t body_size_mb = 2;
    std::int64_t queue_max = 8;
    // The queues together: channel ids are the clients' choice, so a client (or anyone with the
    // well-known default key) could otherwise make queues without bound. Far above real use: a
    // few hundred channels with a few messages each.
    std::int64_t queues_total_max = 10'000;
    std::int64_t queues_total_mb = 256;
    std::int64_t queue_lifetime_s = 7 * 86'400;  // a week; chat older than that is stale
    std::int64_t handshake_timeout_s = 60;
    std::int64_t ping_interval_s = 30;
    std::int64_t read_timeout_s = 60;
    std::int64_t write_timeout_s = 5;
    bool multi_mod = false;

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the Homestead protocol."});
        v("listen", listen,
          {.help = "Address of the Homestead listener, host:port (port 0 picks a free port).",
           .restart = true});
        v("tls_cert_file", tls_cert_file,
          {.help = "PEM certificate chain; with tls_key_file, serve wss. Reloaded on SIGHUP.",
           .restart = true});
        v("tls_key_file", tls_key_file,
          {.help = "PEM private key for tls_cert_file.", .restart = true});
        v("api_key", api_key,
          {.help = "Key that mods and bots present (?api_key= or X-API-Key) to open /sync; the "
                   "original gateway calls it `websocket`."});
        v("body_size_mb", body_size_mb,
          {.help = "Largest incoming message, in MiB; over it the connection is closed with 1009.",
           .min = 1,
           .max = 1024});
        v("queue_max", queue_max,
          {.help = "Messages kept per channel and direction for an offline recipient; when full "
                   "the oldest is dropped (counted).",
           .min = 1,
           .max = 1'000'000});
        v("queues_total_max", queues_total_max,
          {.help = "Queues (channel and direction) holding messages, in total; a message that "
                   "would start another is answered failed (counted).",
           .min = 1,
           .max = 100'000'000});
        v("queues_total_mb", queues_total_mb,
          {.help = "MiB of queued messages (channel id and message), in total; a message that "
                   "would go beyond it is answered failed (counted).",
           .min = 1,
           .max = 1'048'576});
        v("queue_lifetime_s", queue_lifetime_s,
          {.help = "A queued message not delivered within this many seconds is dropped and never "
                   "delivered (counted); 0: kept until delivered or dropped by queue_max.",
           .min = 0,
           .max = 10 * 365 * 86'400});
        v("handshake_timeout_s", handshake_timeout_s,
          {.help = "A connection that sends no handshake within this many seconds is closed.",
           .min = 1,
           .max = 86'400});
        v("ping_interval_s", ping_interval_s,
          {.help = "Send a ping after this many seconds without traffic from the client; 0 "
                   "disables pings.",
           .min = 0,
           .max = 86'400});
        v("read_timeout_s", read_timeout_s,
          {.help = "Close a connection that sends nothing (no message, no pong) for this many "
                   "seconds.",
           .min = 1,
           .max = 86'400});
        v("write_timeout_s", write_timeout_s,
          {.help = "A write that does not complete in this many seconds closes the connection; "
                   "later messages for it are queued.",
           .min = 1,
           .max = 3'600});
        v("multi_mod", multi_mod,
          {.help = "Let several mods serve one channel (a bot message goes to all of them); "
                   "false: a new mod replaces the channel's previous one, as the original does."});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const HomesteadConfig&) const = default;
};

/// The route settings of /sync: the `[websocket]` defaults with this section's size, timeouts and
/// pings applied, and compression off (the original, gorilla/websocket's default, negotiates none).
WsRouteSettings route_settings(const HomesteadConfig& config, const core::WebSocketConfig& ws);

/// The Homestead front-end: its listener, routes and the registry of who is connected. Created,
/// wired and reloaded on the control thread; its connections run on the io threads and its store
/// completions are posted back to them. `mailboxes` and the shards' runtime must outlive every
/// connection (the app destroys the network layer, then this, then the store, then the runtime).
/// It may be destroyed while the io threads run (the module disabled): its sweep timer is
/// cancelled, waiting for a sweep under way.
class HomesteadFrontend {
public:
    HomesteadFrontend(const core::ShardSet& shards, store::Mailboxes& mailboxes,
                      core::MetricsRegistry& metrics, const HomesteadConfig& config);
    ~HomesteadFrontend();
    HomesteadFrontend(const HomesteadFrontend&) = delete;
    HomesteadFrontend& operator=(const HomesteadFrontend&) = delete;

    /// Declares the listener (`listen`, TLS files) and its routes: GET /health and /sync.
    void add_routes(Router& router, std::shared_ptr<const WsRouteSettings> settings);
    /// The listener's key (after add_routes), for bound_port and update_ws_settings.
    const std::string& listener() const noexcept { return listener_; }
    /// Applies api_key (to new connections), the queue bounds and multi_mod (to later messages
    /// and handshakes). The route settings are the app's to update (update_ws_settings). Warns
    /// when the key becomes the well-known default on a listener beyond loopback.
    void reload(const HomesteadConfig& config);
    /// Lets /sync accept, besides the configured key, API keys with the scope "homestead";
    /// `accounts` must outlive the routes.
    void set_accounts(auth::AccountService* accounts);
    /// The account tokens /sync accepts besides the configured `api_key`: API keys with scope
    /// homestead. Sessions and guest tokens are refused: a player is not the bot.
    static const auth::AccessPolicy& access_policy();

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
    HomesteadConfig start_config_;
    std::string api_key_;  // the one applied last, to tell when a reload changes it
    std::string listener_;
    // The sweep of expired queued messages, on shard 0. Owned here, not by Shared: Shared may
    // outlive the io contexts (held by a route's pending accept); the sweep stops with the
    // front-end.
    core::ShardTimer sweep_timer_;
};

/// Whether `listen` (host:port) takes connections from beyond this machine: any address but a
/// loopback one (a host name counts as beyond: it may resolve to anything).
bool listens_beyond_loopback(std::string_view listen);

}  // namespace hearth::frontends::homestead
