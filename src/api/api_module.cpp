#include "api/api_module.hpp"

#include <hearth/store.hpp>

#include "api/accounts_api.hpp"
#include "api/event_stream.hpp"
#include "api/modules_api.hpp"
#include "api/runtime_api.hpp"
#include "core/config.hpp"
#include "core/ws_settings.hpp"
#include "util/version.hpp"

namespace hearth::api {

namespace {

std::shared_ptr<const WsRouteSettings> ws_settings(const core::Config& config) {
    return std::make_shared<const WsRouteSettings>(
        core::ws_route_settings(config.get<core::WebSocketConfig>()));
}

}  // namespace

ApiModule::ApiModule(ModuleContext& context)
    : context_(context),
      info_{.name = "api",
            .version = std::string(util::kVersion),
            .needs = {},
            .config_section = "",
            .topic_namespace = "",
            .can_disable = false},
      routes_(context.routes(info_.name)) {}

ApiModule::~ApiModule() = default;

void ApiModule::start(const core::Config& config) {
    const auto& http = context_.http_listener;
    api_ = std::make_unique<OperatorApi>(*routes_, http, context_.operators,
                                         &context_.store.accounts());
    add_account_routes(*api_, context_.accounts);
    add_runtime_routes(*api_, context_.connections, context_.hub, context_.store.mailboxes(),
                       context_.events);
    add_module_routes(*api_,
                      {context_.modules, context_.config, context_.control, context_.metrics});
    add_event_stream_route(
        *routes_, http, context_.events, context_.operators, ws_settings(config),
        [config = context_.config] { return config()->get<core::HttpConfig>().operator_origins; },
        context_.metrics);
    // Served by other modules, listed here for routes() and the OpenAPI document; each answers
    // 404 while its module is disabled.
    api_->note_external("GET", std::string(kEventStreamPath), Access::kAdmin);
    api_->note_external("GET", "/api/v1/logs", Access::kAdmin);
    api_->note_external("POST", "/api/v1/hunterpie/servermsg", Access::kAdmin);
    for (const auto& [method, path] : std::initializer_list<std::pair<const char*, const char*>>{
             {"GET", "/api/v1/characters"},
             {"GET", "/api/v1/characters/{id}"},
             {"POST", "/api/v1/characters/{id}/rename"},
             {"POST", "/api/v1/characters/{id}/move-to-safe-spot"},
             {"POST", "/api/v1/characters/{id}/restore"},
             {"GET", "/api/v1/world/zones"},
             {"GET", "/api/v1/world/zones/{id}/entities"},
             {"POST", "/api/v1/world/characters/{id}/kick"},
             {"POST", "/api/v1/world/zones/{id}/notice"},
             {"POST", "/api/v1/world/notice"}}) {
        api_->note_external(method, path, Access::kAdmin);
    }
    api_->install();
    routes_->open();
}

ReloadOutcome ApiModule::reload(const core::Config&, const core::Config& next) {
    routes_->update_ws_settings(context_.http_listener, std::string(kEventStreamPath),
                                ws_settings(next));
    return {};
}

void ApiModule::stop(std::chrono::steady_clock::time_point deadline, StopCause cause) {
    routes_->withdraw(close_notice(cause, info_.name), deadline);
    api_.reset();
}

// Besides `[http] admin_token`, which is not an account token.
std::vector<auth::AccessPolicy> ApiModule::doors() const {
    return {auth::operator_policy()};
}

std::vector<RouteInfo> ApiModule::routes() const {
    return api_ ? api_->routes() : std::vector<RouteInfo>{};
}

}  // namespace hearth::api
