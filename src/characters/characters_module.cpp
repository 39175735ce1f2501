#include "characters/characters_module.hpp"

#include <hearth/store.hpp>

#include "characters/characters_api.hpp"
#include "util/version.hpp"

namespace hearth::characters {

namespace {

std::shared_ptr<const CharacterRules> rules_of(const core::Config& config) {
    return std::make_shared<const CharacterRules>(
        CharacterRules::from(config.get<CharactersConfig>()));
}

}  // namespace

CharactersModule::CharactersModule(ModuleContext& context)
    : SectionModule(context, {.name = "characters",
                              .version = std::string(util::kVersion),
                              .needs = {},
                              .config_section = "characters",
                              .topic_namespace = "",
                              .can_disable = true}),
      service_(context.store.characters()),
      api_(routes(), context.http_listener, context.operators, &context.store.accounts()) {
    add_character_routes(api_, service_, context.store.accounts());
}

void CharactersModule::start(const core::Config& config) {
    service_.set_rules(rules_of(config));
    api_.install_routes();
    routes().open();
}

void CharactersModule::apply(const core::Config& next) {
    service_.set_rules(rules_of(next));
}

void CharactersModule::release() {
    service_.set_rules(nullptr);
}

}  // namespace hearth::characters
