#pragma once

// The logs endpoints (docs/logs.md): POST /logs/add and WS /logs/listen, under a path prefix.

#include <cstddef>
#include <memory>
#include <string>

#include <hearth/http.hpp>

#include "logs/log_stream.hpp"

namespace hearth::logs {

/// The largest body POST /logs/add accepts; over it: 413.
inline constexpr std::size_t kMaxAddBodyBytes = 102'400;

/// The settings of /logs/listen: the given WebSocket defaults without compression (the spec).
WsRouteSettings listen_settings(const WsRouteSettings& ws_settings);

/// The path of the listen route under `prefix`.
inline std::string listen_path(const std::string& prefix) {
    return prefix + "/logs/listen";
}

/// Declares POST {prefix}/logs/add, OPTIONS {prefix}/logs/add, WS {prefix}/logs/listen and
/// GET {prefix}/logs.html (the live log page, docs/logs-page.md) on `listener`. `ws_settings` are
/// used with compression turned off (the spec: no compression). Called on the control thread while
/// the app wires its routes; the handlers run on io threads and hold the stream weakly.
void add_log_routes(Router& router, const std::string& listener, const std::string& prefix,
                    const std::shared_ptr<LogStream>& stream, const WsRouteSettings& ws_settings);

}  // namespace hearth::logs
