#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/packet/packet.hpp"

namespace hearth::frontends::packet {

/// The game packet front-end as a module: its raw TCP listener, the logins of its connections,
/// the character opcodes on the character service, the world's on the world service, and the
/// takeover rule (docs/protocol/packets.md).
class PacketModule final : public core::SectionModule<PacketConfig> {
public:
    /// `characters` and `world` (the characters and world modules' services) outlive the module.
    PacketModule(ModuleContext& context, characters::CharacterService& characters,
                 world::WorldService& world);

    void start(const core::Config& config) override;
    /// Tells every connection `shutting_down` before the routes are withdrawn.
    void stop(std::chrono::steady_clock::time_point deadline, StopCause cause) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    characters::CharacterService& characters_;
    world::WorldService& world_;
    std::unique_ptr<PacketFrontend> frontend_;
};

}  // namespace hearth::frontends::packet
