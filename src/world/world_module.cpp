#include "world/world_module.hpp"

#include <hearth/store.hpp>

#include "util/version.hpp"
#include "world/world_api.hpp"
#include "world/zone_data.hpp"

namespace hearth::world {

WorldModule::WorldModule(ModuleContext& context, characters::CharacterService& characters,
                         std::function<std::uint32_t(const core::Config&)> start_zone)
    : SectionModule(context, {.name = "world",
                              .version = std::string(util::kVersion),
                              .needs = {"characters"},
                              .config_section = "world",
                              .topic_namespace = "",
                              .can_disable = true}),
      start_zone_(std::move(start_zone)),
      service_(context.shards, characters, context.metrics),
      api_(routes(), context.http_listener, context.operators, &context.store.accounts()) {
    add_world_routes(api_, service_);
}

void WorldModule::start(const core::Config& config) {
    const auto& w = config.get<WorldConfig>();
    // The control thread: reading the zone files here blocks no io thread.
    service_.start(WorldSetup{.zones = load_zones(w.zones_path(context_.data_dir)),
                              .settings = w.settings(),
                              .save_interval = w.save_interval(),
                              .start_zone = start_zone_(config)});
    api_.install_routes();
    routes().open();
}

void WorldModule::stop(std::chrono::steady_clock::time_point deadline, StopCause cause) {
    service_.stop(deadline);
    SectionModule::stop(deadline, cause);
}

void WorldModule::apply(const core::Config& next) {
    const auto& w = next.get<WorldConfig>();
    service_.apply(w.settings(), w.save_interval());
}

}  // namespace hearth::world
