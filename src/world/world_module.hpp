#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include <hearth/characters.hpp>
#include <hearth/world.hpp>

#include "api/operator_api.hpp"
#include "core/section_module.hpp"
#include "world/world_config.hpp"
#include "world/world_service.hpp"

namespace hearth::world {

/// The world as a module: the zones of the shipped files and `[world] zones_dir` ticking on the
/// shards, the world service front-ends put characters into, and the operator routes under
/// /api/v1/world. Needs the characters module (every save goes through its service, so it must
/// run before the world and stop after it). `zones_dir` applies by a restart of the module (every
/// character is saved and leaves with kShutdown); every other key applies live.
class WorldModule final : public core::SectionModule<WorldConfig> {
public:
    /// `characters` (the characters module's service) outlives the module; `start_zone` reads
    /// `[characters] start_zone` from a config (the world does not include the characters
    /// module's headers).
    WorldModule(ModuleContext& context, characters::CharacterService& characters,
                std::function<std::uint32_t(const core::Config&)> start_zone);

    void start(const core::Config& config) override;
    /// Every character saved and told `left(kShutdown)`, then the routes withdrawn.
    void stop(std::chrono::steady_clock::time_point deadline, StopCause cause) override;

    /// The service front-ends call; it lives as long as the module (the app keeps the module
    /// until after the front-ends' connections are gone) and refuses entries with kDisabled while
    /// the module is not running. Thread-safe.
    WorldService& service() { return service_; }
    WorldServiceImpl& world() { return service_; }

private:
    void apply(const core::Config& next) override;
    void release() override {}

    std::function<std::uint32_t(const core::Config&)> start_zone_;
    WorldServiceImpl service_;
    // Made once with the module (its handlers hold the service); its routes are registered on
    // every start and withdrawn on every stop.
    api::OperatorApi api_;
};

}  // namespace hearth::world
