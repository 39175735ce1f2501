#include "frontends/native/native_module.hpp"

#include "core/ws_settings.hpp"
#include "util/version.hpp"

namespace hearth::frontends::native {

namespace {

std::shared_ptr<const WsRouteSettings> settings(const core::Config& config) {
    return std::make_shared<const WsRouteSettings>(
        core::ws_route_settings(config.get<core::WebSocketConfig>()));
}

}  // namespace

NativeModule::NativeModule(ModuleContext& context)
    : SectionModule(context, {.name = "native",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "native",
                              .topic_namespace = "native:",
                              .can_disable = true}) {}

void NativeModule::start(const core::Config& config) {
    frontend_ = std::make_unique<NativeFrontend>(context_.hub, context_.metrics,
                                                 config.get<NativeConfig>());
    frontend_->set_accounts(&context_.accounts);
    frontend_->add_routes(routes(), context_.http_listener, settings(config));
    routes().open();
    set_doors({access_policy(config.get<NativeConfig>())});
}

void NativeModule::apply(const core::Config& next) {
    routes().update_ws_settings(context_.http_listener, "/ws", settings(next));
    frontend_->reload(next.get<NativeConfig>());
    set_doors({access_policy(next.get<NativeConfig>())});
}

void NativeModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::native
