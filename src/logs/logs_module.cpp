#include "logs/logs_module.hpp"

#include <hearth/store.hpp>

#include "core/shard_set.hpp"
#include "core/ws_settings.hpp"
#include "logs/log_query_route.hpp"
#include "logs/log_routes.hpp"
#include "logs/log_stream.hpp"
#include "util/version.hpp"

namespace hearth::logs {

LogsModule::LogsModule(ModuleContext& context, LogsElsewhere elsewhere)
    : SectionModule(context, {.name = "logs",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "logs",
                              .topic_namespace = "",
                              .can_disable = true}),
      elsewhere_(std::move(elsewhere)) {}

LogsModule::~LogsModule() = default;

void LogsModule::start(const core::Config& config) {
    const auto& c = config.get<LogsConfig>();
    auto* storage = c.store ? &context_.store.logs() : nullptr;
    stream_ = std::make_shared<LogStream>(context_.metrics, c.stream_limits(), storage,
                                          c.retention(), c.access());
    stream_->start(context_.shards);
    const auto ws = core::ws_route_settings(config.get<core::WebSocketConfig>());
    routes_at_ = {{context_.http_listener, ""}};
    if (auto other = elsewhere_(config)) {
        // Joins the other module's listener (same address), whichever starts first.
        const auto key = routes().listener(other->spec);
        if (key != context_.http_listener || !other->prefix.empty()) {
            routes_at_.emplace_back(key, other->prefix);
        }
    }
    for (const auto& [listener, prefix] : routes_at_) {
        add_log_routes(routes(), listener, prefix, stream_, ws, context_.operators,
                       context_.metrics);
    }
    add_log_query_route(routes(), context_.http_listener, storage, context_.operators);
    routes().open();
    // Listening to the server's own lines, and GET /api/v1/logs: the operator API's rules.
    set_doors({auth::operator_policy()});
}

// Where the routes live follows the other listener: a change there starts the module again.
ReloadOutcome LogsModule::reload(const core::Config& running, const core::Config& next) {
    if (elsewhere_(running) != elsewhere_(next)) {
        return {.applied = true, .reason = {}, .restart_keys = {}, .restart = true};
    }
    return SectionModule::reload(running, next);
}

void LogsModule::apply(const core::Config& next) {
    const auto ws = core::ws_route_settings(next.get<core::WebSocketConfig>());
    for (const auto& [listener, prefix] : routes_at_) {
        routes().update_ws_settings(listener, listen_path(prefix),
                                    std::make_shared<const WsRouteSettings>(listen_settings(ws)));
    }
    const auto& c = next.get<LogsConfig>();
    stream_->set_retention(c.retention());
    stream_->set_access(c.access());
}

void LogsModule::release() {
    stream_.reset();
    routes_at_.clear();
}

}  // namespace hearth::logs
