#pragma once

// The HunterPie sync protocol (docs/protocol/hunterpie.md): a session leader's plugin pushes
// monster data that the server forwards, byte for byte, to the session's other members, over
// WebSocket at /connect on its own listener (port 5001). Wire-compatible with the original Node
// server, so that existing SyncPlugin builds work unchanged.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/http.hpp>

#include "core/config.hpp"

namespace hearth::core {
class MetricsRegistry;
}  // namespace hearth::core
namespace hearth::auth {
class OperatorAuth;
}  // namespace hearth::auth
namespace hearth::hub {
class Hub;
}  // namespace hearth::hub

namespace hearth::frontends::hunterpie {

struct HunterpieConfig {
    static constexpr std::string_view kName = "hunterpie";
    static constexpr std::string_view kDescription =
        "The HunterPie sync protocol (monster data shared within a hunting session) on its own "
        "listener.";

    bool enabled = false;
    std::string listen = "0.0.0.0:5001";  // the original's port
    std::string tls_cert_file;
    std::string tls_key_file;
    std::string path_prefix;              // "" = every path at the root, as the original
    std::int64_t socket_timeout_s = 300;  // the original's inactivity timeout
    bool compression = true;              // the original (ws 7.4) offers permessage-deflate
    std::int64_t compression_threshold_bytes = 50;  // ws's default threshold

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the HunterPie sync protocol."});
        v("listen", listen,
          {.help = "Address of the HunterPie listener, host:port (port 0 picks a free port).",
           .restart = true});
        v("tls_cert_file", tls_cert_file,
          {.help = "PEM certificate chain; with tls_key_file, serve https and wss. Reloaded on "
                   "SIGHUP.",
           .restart = true});
        v("tls_key_file", tls_key_file,
          {.help = "PEM private key for tls_cert_file.", .restart = true});
        v("path_prefix", path_prefix,
          {.help = "Prefix of every HunterPie path, e.g. \"/hunterpie\"; empty serves them at the "
                   "root as the original does.",
           .restart = true});
        v("socket_timeout_s", socket_timeout_s,
          {.help = "A connection that sends nothing (no frame, no ping) for this many seconds is "
                   "removed from its session and closed.",
           .min = 1,
           .max = 86'400});
        v("compression", compression,
          {.help = "Negotiate permessage-deflate (no context takeover) with clients that ask."});
        v("compression_threshold_bytes", compression_threshold_bytes,
          {.help = "Server messages shorter than this many bytes are sent uncompressed.",
           .min = 0,
           .max = 1 << 30});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const HunterpieConfig&) const = default;
};

/// The route settings of /connect: the `[websocket]` defaults with this section's timeout and
/// compression applied, and no server pings (the original sends none; clients ping).
WsRouteSettings route_settings(const HunterpieConfig& config, const core::WebSocketConfig& ws);

/// The HunterPie front-end: its listener, routes and sessions. Created, wired and reloaded on the
/// control thread; its connections run on the io threads. The session registry is shared by
/// every io thread (see hunterpie.cpp, `Sessions`).
class HunterpieFrontend {
public:
    /// With a hub, each session's membership is mirrored there as the topic `hunterpie:<session>`
    /// (the operator API's topics and subscribers); pushes and sessionstate never go through it.
    /// `hub` must outlive every connection.
    HunterpieFrontend(core::MetricsRegistry& metrics, const HunterpieConfig& config,
                      hub::Hub* hub = nullptr);
    ~HunterpieFrontend();
    HunterpieFrontend(const HunterpieFrontend&) = delete;
    HunterpieFrontend& operator=(const HunterpieFrontend&) = delete;

    /// Declares the listener and its routes: GET /, GET /version, OPTIONS preflights and
    /// WS /connect, all under path_prefix.
    void add_routes(Router& router, std::shared_ptr<const WsRouteSettings> settings);
    /// The operator notice, POST /api/v1/hunterpie/servermsg, on the HTTP API listener, for
    /// callers `operators` accepts; `operators` must outlive the routes.
    void add_api_routes(Router& router, const std::string& http_listener,
                        const auth::OperatorAuth& operators);
    /// The listener's key (after add_routes).
    const std::string& listener() const noexcept { return listener_; }
    /// The WebSocket route's path (path_prefix + "/connect"), for update_ws_settings.
    std::string connect_path() const;

    struct Shared;

private:
    /// The servermsg endpoint's work once the caller is authorized.
    static HttpResponse send_servermsg(Shared& shared, const HttpRequest& req);

    std::shared_ptr<Shared> shared_;
    HunterpieConfig start_config_;
    std::string listener_;
};

}  // namespace hearth::frontends::hunterpie
