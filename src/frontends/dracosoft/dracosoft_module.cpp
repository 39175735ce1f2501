#include "frontends/dracosoft/dracosoft_module.hpp"

#include "util/version.hpp"

namespace hearth::frontends::dracosoft {

DracosoftModule::DracosoftModule(ModuleContext& context)
    : SectionModule(context, {.name = "dracosoft",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "dracosoft",
                              .topic_namespace = "",
                              .can_disable = true}) {}

void DracosoftModule::start(const core::Config& config) {
    frontend_ = std::make_unique<DracosoftFrontend>(
        context_.runtime, context_.accounts, context_.metrics, config.get<DracosoftConfig>());
    frontend_->add_routes(routes());
    routes().open();
}

// Every key of [dracosoft] is marked as needing a restart: a change restarts the module
// (SectionModule::reload), so nothing is left to apply live.
void DracosoftModule::apply(const core::Config&) {}

void DracosoftModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::dracosoft
