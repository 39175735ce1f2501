#include "app/modules.hpp"

#include "api/api_module.hpp"
#include "characters/characters_module.hpp"
#include "core/config.hpp"
#include "frontends/dracosoft/dracosoft_module.hpp"
#include "frontends/homestead/homestead_module.hpp"
#include "frontends/hunterpie/hunterpie_module.hpp"
#include "frontends/moonshare/moonshare_module.hpp"
#include "frontends/native/native_module.hpp"
#include "frontends/packet/packet_module.hpp"
#include "logs/logs_module.hpp"
#include "world/world_module.hpp"

namespace hearth::app {

namespace {

// The original HunterPie server serves the log routes on its own port: so does Hearth, while
// HunterPie is enabled in the config.
std::optional<logs::LogsListener> logs_on_hunterpie(const core::Config& config) {
    const auto& h = config.get<frontends::hunterpie::HunterpieConfig>();
    if (!h.enabled) {
        return std::nullopt;
    }
    return logs::LogsListener{{"hunterpie", h.listen, h.tls_cert_file, h.tls_key_file},
                              h.path_prefix};
}

}  // namespace

void add_module_sections(core::ConfigSchema& schema) {
    schema.add<frontends::native::NativeConfig>();
    schema.add<frontends::homestead::HomesteadConfig>();
    schema.add<frontends::hunterpie::HunterpieConfig>();
    schema.add<frontends::dracosoft::DracosoftConfig>();
    schema.add<frontends::moonshare::MoonshareConfig>();
    schema.add<frontends::packet::PacketConfig>();
    schema.add<logs::LogsConfig>();
    schema.add<characters::CharactersConfig>();
    schema.add<world::WorldConfig>();
}

std::vector<std::unique_ptr<Module>> make_modules(ModuleContext& context) {
    std::vector<std::unique_ptr<Module>> modules;
    modules.push_back(std::make_unique<api::ApiModule>(context));
    modules.push_back(std::make_unique<logs::LogsModule>(context, logs_on_hunterpie));
    modules.push_back(std::make_unique<frontends::native::NativeModule>(context));
    modules.push_back(std::make_unique<frontends::homestead::HomesteadModule>(context));
    modules.push_back(std::make_unique<frontends::hunterpie::HunterpieModule>(context));
    modules.push_back(std::make_unique<frontends::dracosoft::DracosoftModule>(context));
    modules.push_back(std::make_unique<frontends::moonshare::MoonshareModule>(context));
    // The character service; a front-end that needs it is given `service()` of this module. It
    // answers characters_disabled while the module is not running, so the packet module does not
    // `need` it: with characters disabled the game protocol still logs in and says why the
    // character opcodes cannot be served.
    auto characters = std::make_unique<characters::CharactersModule>(context);
    auto& character_service = characters->service();
    modules.push_back(std::move(characters));
    // The world: it needs the characters module (saves), and front-ends are given `service()`,
    // which refuses entries (world_disabled) while the module is not running. Added before the
    // front-ends so that at shutdown they close their connections (and their characters leave)
    // before the world stops and saves the rest.
    auto world = std::make_unique<world::WorldModule>(
        context, character_service, [](const core::Config& config) {
            return static_cast<std::uint32_t>(
                config.get<characters::CharactersConfig>().start_zone);
        });
    auto& world_service = world->service();
    modules.push_back(std::move(world));
    modules.push_back(std::make_unique<frontends::packet::PacketModule>(context, character_service,
                                                                        world_service));
    return modules;
}

}  // namespace hearth::app
