#include "frontends/packet/packet_module.hpp"

#include "util/version.hpp"

namespace hearth::frontends::packet {

PacketModule::PacketModule(ModuleContext& context, characters::CharacterService& characters,
                           world::WorldService& world)
    : SectionModule(context, {.name = "packet",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "packet",
                              .topic_namespace = "",
                              .can_disable = true}),
      characters_(characters),
      world_(world) {}

void PacketModule::start(const core::Config& config) {
    frontend_ =
        std::make_unique<PacketFrontend>(context_.shards, context_.accounts, characters_, world_,
                                         context_.metrics, config.get<PacketConfig>());
    frontend_->add_routes(routes());
    routes().open();
    set_doors({access_policy()});
}

void PacketModule::stop(std::chrono::steady_clock::time_point deadline, StopCause cause) {
    // At a server shutdown the network layer has closed the connections already: nothing to say.
    if (frontend_ && cause != StopCause::kShutdown) {
        frontend_->say_shutting_down();
    }
    SectionModule::stop(deadline, cause);
}

// Every key of [packet] is marked as needing a restart: a change restarts the module
// (SectionModule::reload), so nothing is left to apply live.
void PacketModule::apply(const core::Config&) {}

void PacketModule::release() {
    frontend_.reset();
}

}  // namespace hearth::frontends::packet
