#pragma once

// /api/v1/modules (docs/modules.md): the server's modules, and operators' enable / disable /
// restart.

#include <cstdint>
#include <functional>

#include "api/operator_api.hpp"

namespace hearth::core {
class Config;
class MetricsRegistry;
class ModuleRegistry;
}  // namespace hearth::core

namespace hearth::api {

struct ModuleActions {
    core::ModuleRegistry& registry;
    /// The running config, for a module that starts.
    std::function<std::shared_ptr<const core::Config>()> config;
    /// Runs an action off the io threads (ModuleContext::control).
    std::function<void(std::function<void()>)> control;
    core::MetricsRegistry& metrics;
};

/// Actions accepted and not finished (running or waiting for the control thread); past it a
/// request gets 503 `busy`. Each may wait for its module's connections to close, so the queue is
/// bounded even though only admins can fill it.
inline constexpr std::int64_t kMaxPendingModuleActions = 4;

/// GET /api/v1/modules, GET /api/v1/modules/{name} and POST /api/v1/modules/{name}/{action}
/// (enable, disable, restart; audited). `actions` is copied; what it refers to must outlive the
/// routes.
void add_module_routes(OperatorApi& api, ModuleActions actions);

}  // namespace hearth::api
