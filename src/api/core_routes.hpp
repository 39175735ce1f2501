#pragma once

#include <functional>
#include <string>

#include <hearth/http.hpp>

namespace hearth::core {
class MetricsRegistry;
}

namespace hearth::api {

/// What /ready checks: each named dependency reports whether it is reachable. Called on an io
/// thread, so a check must answer from state it already has (no blocking probe).
struct ReadinessCheck {
    std::string name;
    std::function<bool()> ready;
};

/// GET /health, /ready, /version and /metrics on `listener`.
void add_core_routes(Router& router, const std::string& listener, core::MetricsRegistry& metrics,
                     std::vector<ReadinessCheck> checks);

/// The WebSocket echo route /echo: every message comes back unchanged, text or binary.
void add_echo_route(Router& router, const std::string& listener,
                    std::shared_ptr<const WsRouteSettings> settings);

}  // namespace hearth::api
