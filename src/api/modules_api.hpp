#pragma once

// /api/v1/modules (docs/modules.md): the server's modules, and operators' enable / disable /
// restart.

#include <functional>

#include "api/operator_api.hpp"

namespace hearth::core {
class Config;
class ModuleRegistry;
}  // namespace hearth::core

namespace hearth::api {

struct ModuleActions {
    core::ModuleRegistry& registry;
    /// The running config, for a module that starts.
    std::function<std::shared_ptr<const core::Config>()> config;
    /// Runs an action off the io threads (ModuleContext::control).
    std::function<void(std::function<void()>)> control;
};

/// GET /api/v1/modules, GET /api/v1/modules/{name} and POST /api/v1/modules/{name}/{action}
/// (enable, disable, restart; audited). `actions` is copied; what it refers to must outlive the
/// routes.
void add_module_routes(OperatorApi& api, ModuleActions actions);

}  // namespace hearth::api
