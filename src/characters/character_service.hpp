#pragma once

// The character service (include/hearth/characters.hpp) on the store's CharacterStore, with the
// rules of `[characters]`. Thread-safe: the rules are an immutable snapshot swapped under a mutex
// (a reload), and each call works on the snapshot it took.

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/character_store.hpp>
#include <hearth/characters.hpp>

#include "characters/characters_config.hpp"

namespace hearth::characters {

/// What the service applies, from `[characters]`.
struct CharacterRules {
    std::size_t max_per_account = 5;
    std::size_t name_min_length = 3;
    std::size_t name_max_length = 16;
    std::array<bool, 128> allowed{};    // by ASCII code
    std::vector<std::string> reserved;  // lower-case (ASCII)
    std::chrono::days delete_grace{7};
    std::size_t max_deleted_per_account = 20;
    store::CharacterPosition start;  // the start zone's safe spot
    std::map<std::uint32_t, store::CharacterPosition> safe_spots;

    /// From a validated section.
    static CharacterRules from(const CharactersConfig& config);
};

/// The stats a new character starts with.
inline constexpr store::CharacterStats kStartStats{.str = 10,
                                                   .dex = 10,
                                                   .intelligence = 10,
                                                   .con = 10,
                                                   .hp = 100,
                                                   .max_hp = 100,
                                                   .mp = 50,
                                                   .max_mp = 50};

class CharacterServiceImpl final : public CharacterService {
public:
    explicit CharacterServiceImpl(store::CharacterStore& store) : store_(store) {}

    /// The rules from now on; null: the module is not running (every call: kDisabled).
    void set_rules(std::shared_ptr<const CharacterRules> rules);

    std::optional<CharacterError> check_name(std::string_view name) const override;
    std::size_t max_per_account() const override;
    void list(std::uint64_t account_id,
              Completion<std::vector<store::CharacterRecord>> done) override;
    void create(std::uint64_t account_id, NewCharacter character,
                Completion<store::CharacterRecord> done) override;
    void remove(std::uint64_t account_id, std::uint64_t character_id,
                Completion<store::CharacterRecord> done) override;
    void select(std::uint64_t account_id, std::uint64_t character_id,
                Completion<store::CharacterRecord> done) override;
    void get(std::uint64_t character_id, Completion<store::CharacterRecord> done) override;
    void save_many(std::vector<store::CharacterSave> saves,
                   Completion<std::uint64_t> done) override;
    void rename(std::uint64_t character_id, std::string name,
                Completion<store::CharacterRecord> done) override;
    void move_to_safe_spot(std::uint64_t character_id,
                           Completion<store::CharacterRecord> done) override;
    void restore(std::uint64_t character_id, Completion<store::CharacterRecord> done) override;

    /// Operators' listing (any account, deleted ones too), without the rules' limits.
    void list_all(store::CharacterFilter filter,
                  Completion<std::vector<store::CharacterRecord>> done);

private:
    std::shared_ptr<const CharacterRules> rules() const;
    store::CharacterLimits limits(const CharacterRules& rules) const;

    store::CharacterStore& store_;
    mutable std::mutex mutex_;
    std::shared_ptr<const CharacterRules> rules_;
};

/// Why `name` breaks `rules`, or nothing.
std::optional<CharacterError> check_name(const CharacterRules& rules, std::string_view name);

}  // namespace hearth::characters
