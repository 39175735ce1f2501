#include "api/modules_api.hpp"
#include <atomic>
#include <chrono>
#include <utility>

#include <boost/json/array.hpp>

#include "core/config.hpp"
#include "core/metrics.hpp"
#include "core/module_registry.hpp"

namespace hearth::api {

namespace json = boost::json;

namespace {

json::object module_json(const core::ModuleStatus& m) {
    json::object o;
    o["name"] = m.name;
    o["version"] = m.version;
    o["state"] = to_string(m.state);
    o["since"] = rfc3339(m.since);
    json::array needs;
    for (const auto& n : m.needs) {
        needs.emplace_back(n);
    }
    o["needs"] = std::move(needs);
    o["can_disable"] = m.can_disable;
    if (m.last_error.empty()) {
        o["last_error"] = nullptr;
    } else {
        o["last_error"] = m.last_error;
    }
    json::object counters;
    for (const auto& c : m.counters) {
        counters[c.name] = c.value;
    }
    o["counters"] = std::move(counters);
    json::array doors;
    for (const auto& d : m.doors) {
        json::object door;
        door["door"] = d.door;
        auto strings = [](const std::vector<std::string>& v) {
            json::array a;
            for (const auto& x : v) {
                a.emplace_back(x);
            }
            return a;
        };
        door["api_key_scope"] =
            d.api_key_scope.empty() ? json::value(nullptr) : json::value(d.api_key_scope);
        door["api_key_roles"] = strings(d.api_key_roles);
        door["session_roles"] = strings(d.session_roles);
        door["guest_realm"] =
            d.guest_realm.empty() ? json::value(nullptr) : json::value(d.guest_realm);
        doors.push_back(std::move(door));
    }
    o["doors"] = std::move(doors);
    return o;
}

HttpResponse refusal(const core::ModuleActionResult& r) {
    switch (r.error) {
        case core::ModuleActionError::kUnknownModule:
            return api_error(404, "unknown_module", r.message);
        case core::ModuleActionError::kNotDisableable:
        case core::ModuleActionError::kNeededBy:
            return api_error(409, "module_required", r.message);
        case core::ModuleActionError::kNeedsStopped:
            return api_error(409, "dependency_not_running", r.message);
        case core::ModuleActionError::kStartFailed:
            return api_error(500, "module_start_failed", r.message);
        case core::ModuleActionError::kNone:
            break;
    }
    return api_error(500, "internal", "unexpected module action result");
}

}  // namespace

void add_module_routes(OperatorApi& api, ModuleActions actions) {
    struct Shared {
        ModuleActions actions;
        core::Gauge& pending;
        core::ModuleRegistry& registry;         // actions.registry, for brevity below
        std::atomic<std::int64_t> accepted{0};  // what `pending` shows, counted atomically
    };
    auto& pending = actions.metrics.gauge(
        "hearth_module_actions_pending",
        "Operators' module actions accepted and not finished (running or waiting).");
    auto& registry = actions.registry;
    auto shared = std::make_shared<Shared>(std::move(actions), pending, registry);
    api.add("GET", "/api/v1/modules", Access::kAdmin, [shared](ApiCallPtr, HttpResponder res) {
        json::array items;
        for (const auto& m : shared->registry.statuses()) {
            items.push_back(module_json(m));
        }
        res.respond(page_response(std::move(items), std::nullopt));
    });
    api.add("GET", "/api/v1/modules/{name}", Access::kAdmin,
            [shared](ApiCallPtr call, HttpResponder res) {
                const auto& name = call->params.at("name");
                if (auto m = shared->registry.status(name)) {
                    res.respond(json_response(200, module_json(*m)));
                } else {
                    res.respond(api_error(404, "unknown_module", "no module is named " + name));
                }
            });
    api.add("POST", "/api/v1/modules/{name}/{action}", Access::kAdmin,
            [shared, &api](ApiCallPtr call, HttpResponder res) {
                const auto& action = call->params.at("action");
                if (action != "enable" && action != "disable" && action != "restart") {
                    res.respond(api_error(
                        404, "not_found",
                        "unknown action " + action + " (expected enable, disable or restart)"));
                    return;
                }
                // Starting or stopping a module waits for its listeners and its connections: never
                // on an io thread. Actions run one at a time, in the order they arrived.
                if (shared->accepted.fetch_add(1) >= kMaxPendingModuleActions) {
                    shared->accepted.fetch_sub(1);
                    res.respond(api_error(503, "busy",
                                          "earlier module actions are still running; try again"));
                    return;
                }
                shared->pending.add(1);
                shared->actions.control([shared, &api, call, res]() mutable {
                    struct Done {
                        Shared& shared;
                        ~Done() {
                            shared.pending.sub(1);
                            shared.accepted.fetch_sub(1);
                        }
                    } done{*shared};
                    const auto& name = call->params.at("name");
                    const auto& verb = call->params.at("action");
                    const auto config = shared->actions.config();
                    const auto deadline =
                        std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(
                            config->get<core::ServerConfig>().shutdown_timeout_ms);
                    core::ModuleActionResult result;
                    if (verb == "enable") {
                        result = shared->registry.enable(name, *config);
                    } else if (verb == "disable") {
                        result = shared->registry.disable(name, deadline);
                    } else {
                        result = shared->registry.restart(name, *config, deadline);
                    }
                    json::object detail{{"result", result.ok() ? "ok" : result.message}};
                    api.audit(*call, "module." + verb, "module:" + name, std::move(detail));
                    if (!result.ok()) {
                        res.respond(refusal(result));
                        return;
                    }
                    res.respond(json_response(200, module_json(*shared->registry.status(name))));
                });
            });
}

}  // namespace hearth::api
