#pragma once

#include <memory>

#include <hearth/characters.hpp>

#include "api/operator_api.hpp"
#include "characters/character_service.hpp"
#include "characters/characters_config.hpp"
#include "core/section_module.hpp"

namespace hearth::characters {

/// Game characters as a module: the character service (include/hearth/characters.hpp) with the
/// rules of `[characters]`, and the operator routes under /api/v1/characters on the HTTP API
/// listener. Every key applies live.
class CharactersModule final : public core::SectionModule<CharactersConfig> {
public:
    explicit CharactersModule(ModuleContext& context);

    void start(const core::Config& config) override;

    /// The service front-ends and the world call; it lives as long as the module and answers
    /// kDisabled while the module is not running. Thread-safe.
    CharacterService& service() { return service_; }

private:
    void apply(const core::Config& next) override;
    void release() override;

    CharacterServiceImpl service_;
    // Made once with the module (its handlers hold the service); its routes are registered on
    // every start and withdrawn on every stop.
    api::OperatorApi api_;
};

}  // namespace hearth::characters
