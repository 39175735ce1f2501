#include "frontends/moonshare/moonshare_module.hpp"

#include "core/ws_settings.hpp"
#include "util/version.hpp"

namespace hearth::frontends::moonshare {

MoonshareModule::MoonshareModule(ModuleContext& context)
    : SectionModule(context, {.name = "moonshare",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "moonshare",
                              .topic_namespace = "",
                              .can_disable = true}) {}

void MoonshareModule::start(const core::Config& config) {
    const auto& moonshare = config.get<MoonshareConfig>();
    const auto& ws = config.get<core::WebSocketConfig>();
    frontend_ = std::make_unique<MoonshareFrontend>(context_.runtime, context_.accounts,
                                                    context_.metrics, context_.events, moonshare,
                                                    config.get<core::ServerConfig>().data_dir);
    frontend_->add_routes(
        routes(), std::make_shared<const WsRouteSettings>(player_route_settings(moonshare, ws)),
        std::make_shared<const WsRouteSettings>(core::ws_route_settings(ws)), context_.operators);
    routes().open();
    frontend_->start();
    set_doors({access_policy()});
}

// [moonshare]'s own keys restart the module; [websocket]'s apply to the running routes.
void MoonshareModule::apply(const core::Config& next) {
    const auto& ws = next.get<core::WebSocketConfig>();
    const auto player = std::make_shared<const WsRouteSettings>(
        player_route_settings(next.get<MoonshareConfig>(), ws));
    const auto other = std::make_shared<const WsRouteSettings>(core::ws_route_settings(ws));
    for (const auto& listener : frontend_->player_listeners()) {
        routes().update_ws_settings(listener, "/player", player);
    }
    routes().update_ws_settings(frontend_->auth_listener(), "/auth", other);
    routes().update_ws_settings(frontend_->auth_listener(), "/sessions", other);
    routes().update_ws_settings(frontend_->gateway_listener(), "/ws", other);
}

// Its connections are closed by now; destroying the front-end stops its timer and saves the
// bindings (a file write, on this control thread).
void MoonshareModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::moonshare
