#include "frontends/hunterpie/hunterpie_module.hpp"

#include "core/ws_settings.hpp"
#include "util/version.hpp"

namespace hearth::frontends::hunterpie {

namespace {

std::shared_ptr<const WsRouteSettings> settings(const core::Config& config) {
    return std::make_shared<const WsRouteSettings>(
        route_settings(config.get<HunterpieConfig>(), config.get<core::WebSocketConfig>()));
}

}  // namespace

HunterpieModule::HunterpieModule(ModuleContext& context)
    : SectionModule(context, {.name = "hunterpie",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "hunterpie",
                              .topic_namespace = "hunterpie:",
                              .can_disable = true}) {}

void HunterpieModule::start(const core::Config& config) {
    frontend_ = std::make_unique<HunterpieFrontend>(context_.metrics, config.get<HunterpieConfig>(),
                                                    &context_.hub);
    frontend_->add_routes(routes(), settings(config));
    frontend_->add_api_routes(routes(), context_.http_listener, context_.operators);
    routes().open();
}

void HunterpieModule::apply(const core::Config& next) {
    routes().update_ws_settings(frontend_->listener(), frontend_->connect_path(), settings(next));
}

void HunterpieModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::hunterpie
