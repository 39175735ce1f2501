#pragma once

// The logs endpoints (docs/logs.md): POST /logs/add and WS /logs/listen, under a path prefix.
// Posted entries are public, as in the HunterPie original; the server's own lines need an operator
// token unless [logs] public_server_lines is on.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/http.hpp>

#include "logs/log_stream.hpp"

namespace hearth::auth {
class OperatorAuth;
}  // namespace hearth::auth

namespace hearth::core {
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::logs {

/// The largest body POST /logs/add accepts; over it: 413.
inline constexpr std::size_t kMaxAddBodyBytes = 102'400;

/// The settings of /logs/listen: the given WebSocket defaults without compression (the spec).
WsRouteSettings listen_settings(const WsRouteSettings& ws_settings);

/// The subprotocol /logs/listen selects when a client offers it: a browser that offers the token
/// subprotocol below must offer this one too, since a browser fails a handshake whose answer
/// names none of its offers, and the token must never be echoed back.
inline constexpr std::string_view kListenSubprotocol = "hearth.logs";

/// The path of the listen route under `prefix`.
inline std::string listen_path(const std::string& prefix) {
    return prefix + "/logs/listen";
}

/// Declares POST {prefix}/logs/add, OPTIONS {prefix}/logs/add, WS {prefix}/logs/listen and
/// GET {prefix}/logs.html (the live log page, docs/logs-page.md) on `listener`. `ws_settings` are
/// used with compression turned off (the spec: no compression). A listen upgrade that presents a
/// token (Authorization: Bearer, or the bearer subprotocol) is an operator's: its Origin must be
/// the server's own or allowed (`LogStream::access`), and `operators` must accept the token.
/// Refusals are logged (never the token) and counted in hearth_logs_refused_total{listener,route,
/// reason}. Called on the control thread while the app wires its routes; the handlers run on io
/// threads (an account token's check completes on a store thread) and hold the stream weakly;
/// `operators` and `metrics` must outlive the router's routes.
void add_log_routes(Router& router, const std::string& listener, const std::string& prefix,
                    const std::shared_ptr<LogStream>& stream, const WsRouteSettings& ws_settings,
                    const auth::OperatorAuth& operators, core::MetricsRegistry& metrics);

}  // namespace hearth::logs
