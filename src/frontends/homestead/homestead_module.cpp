#include "frontends/homestead/homestead_module.hpp"

#include <hearth/store.hpp>

#include "core/ws_settings.hpp"
#include "util/version.hpp"

namespace hearth::frontends::homestead {

namespace {

std::shared_ptr<const WsRouteSettings> settings(const core::Config& config) {
    return std::make_shared<const WsRouteSettings>(
        route_settings(config.get<HomesteadConfig>(), config.get<core::WebSocketConfig>()));
}

}  // namespace

HomesteadModule::HomesteadModule(ModuleContext& context)
    : SectionModule(context, {.name = "homestead",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "homestead",
                              .topic_namespace = "homestead:",
                              .can_disable = true}) {}

void HomesteadModule::start(const core::Config& config) {
    frontend_ =
        std::make_unique<HomesteadFrontend>(context_.shards, context_.store.mailboxes(),
                                            context_.metrics, config.get<HomesteadConfig>());
    frontend_->set_accounts(&context_.accounts);
    frontend_->add_routes(routes(), settings(config));
    routes().open();
    // Besides the configured api_key, which is not an account token.
    set_doors({HomesteadFrontend::access_policy()});
}

void HomesteadModule::apply(const core::Config& next) {
    routes().update_ws_settings(frontend_->listener(), "/sync", settings(next));
    frontend_->reload(next.get<HomesteadConfig>());
}

void HomesteadModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::homestead
