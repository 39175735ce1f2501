#pragma once

// Game characters as the store keeps them (docs/characters.md). Same threading, order and error
// rules as the rest of the store (store.hpp): asynchronous, completions on store threads, bounded
// queues. The rules (name validation, limits from the config) live in the character service
// (characters.hpp); this is persistence, with the checks that must hold across concurrent writers
// (unique names, the per-account limit) made inside one transaction.

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <hearth/store.hpp>

namespace hearth::store {

using CharacterTime = std::chrono::system_clock::time_point;

/// The character's attributes. Stored together (a JSON object, keys as named here), so that a
/// later stat needs no migration: a key missing from a stored row reads as 0.
struct CharacterStats {
    std::int32_t str = 0;
    std::int32_t dex = 0;
    std::int32_t intelligence = 0;  // "int" in JSON and on the wire
    std::int32_t con = 0;
    std::int32_t hp = 0;
    std::int32_t max_hp = 0;
    std::int32_t mp = 0;
    std::int32_t max_mp = 0;

    bool operator==(const CharacterStats&) const = default;
};

/// How the character looks, chosen at creation: small catalogue numbers the client interprets.
struct CharacterLooks {
    std::uint8_t body = 0;  // race and gender, as the client's catalogue numbers them
    std::uint8_t face = 0;
    std::uint8_t hair = 0;
    std::uint8_t hair_color = 0;

    bool operator==(const CharacterLooks&) const = default;
};

/// The most inventory slots a character has: slots are numbered 0 .. kInventorySlots - 1.
inline constexpr std::uint16_t kInventorySlots = 100;
/// The most items one slot holds.
inline constexpr std::uint32_t kMaxStack = 65'535;

struct InventorySlot {
    std::uint16_t slot = 0;     // < kInventorySlots, each at most once per character
    std::uint32_t item_id = 0;  // > 0: the client's item catalogue
    std::uint32_t count = 1;    // 1 .. kMaxStack

    bool operator==(const InventorySlot&) const = default;
};

/// Where the character is. Coordinates are finite (NaN and infinities are refused).
struct CharacterPosition {
    std::uint32_t zone = 1;
    float x = 0;
    float y = 0;
    float z = 0;
    float heading = 0;  // radians

    bool operator==(const CharacterPosition&) const = default;
};

struct CharacterRecord {
    std::uint64_t id = 0;
    std::uint64_t account_id = 0;
    std::string name;  // unique case-insensitively (ASCII) among live characters and reserved names
    std::int32_t level = 1;
    std::int64_t experience = 0;  // >= 0
    std::int64_t money = 0;       // >= 0
    CharacterStats stats;
    CharacterLooks looks;
    std::vector<InventorySlot> inventory;  // by slot
    CharacterPosition position;
    CharacterTime created_at{};
    CharacterTime updated_at{};
    std::optional<CharacterTime> last_login_at = {};
    /// Set by a (soft) delete. While the grace period after it lasts, the name stays reserved.
    std::optional<CharacterTime> deleted_at = {};
};

/// What create and restore check inside their transaction.
struct CharacterLimits {
    std::size_t max_live = 5;  // live characters per account
    /// The names of characters deleted at or after this time stay reserved; older ones are free.
    CharacterTime reserved_since{};
};

/// Which characters `list_characters` returns (ordered by id).
struct CharacterFilter {
    std::optional<std::uint64_t> account_id = {};
    std::optional<std::string> name_prefix = {};  // case-insensitive (ASCII)
    enum class Deleted : std::uint8_t { kExclude, kInclude, kOnly };
    Deleted deleted = Deleted::kExclude;
    std::optional<std::uint64_t> after_id = {};  // the page cursor: ids greater than it
    std::size_t limit = 100;
};

/// One character's progress, for `save_characters` (the world's periodic save). Unset fields stay.
struct CharacterSave {
    std::uint64_t id = 0;
    std::optional<std::int32_t> level = {};
    std::optional<std::int64_t> experience = {};
    std::optional<std::int64_t> money = {};
    std::optional<CharacterStats> stats = {};
    std::optional<std::vector<InventorySlot>> inventory = {};
    std::optional<CharacterPosition> position = {};
};

/// The checks the store makes (and the service before it, to name the error).
inline bool valid_inventory(const std::vector<InventorySlot>& items) noexcept {
    if (items.size() > kInventorySlots) {
        return false;
    }
    std::array<bool, kInventorySlots> used{};
    for (const auto& i : items) {
        if (i.slot >= kInventorySlots || used[i.slot] || i.item_id == 0 || i.count == 0 ||
            i.count > kMaxStack) {
            return false;
        }
        used[i.slot] = true;
    }
    return true;
}
inline bool valid_position(const CharacterPosition& p) noexcept {
    return std::isfinite(p.x) && std::isfinite(p.y) && std::isfinite(p.z) &&
           std::isfinite(p.heading);
}
inline bool valid_progress(std::int32_t level, std::int64_t experience,
                           std::int64_t money) noexcept {
    return level >= 1 && experience >= 0 && money >= 0;
}

inline bool valid_save(const CharacterSave& s) noexcept {
    return (!s.inventory || valid_inventory(*s.inventory)) &&
           (!s.position || valid_position(*s.position)) &&
           valid_progress(s.level.value_or(1), s.experience.value_or(0), s.money.value_or(0));
}

/// The most characters one `save_characters` call takes (one transaction holds the writer).
inline constexpr std::size_t kMaxSaveBatch = 1'000;

/// Semantics shared by every backend: names are unique case-insensitively (ASCII letters folded;
/// the store folds them) among live characters and deleted ones whose name is still reserved (see
/// CharacterLimits::reserved_since; a name past it is released when another character claims it);
/// times have millisecond precision; ids are increasing and never reused. Values the store cannot
/// keep (an inventory over kInventorySlots, a duplicate slot, a non-finite coordinate, a negative
/// amount, text that is not storable) are refused with kInvalidArgument. Deleting an account
/// deletes its characters.
class CharacterStore {
public:
    virtual ~CharacterStore() = default;

    /// Inserts `character` (its id, deleted_at and last_login_at ignored; updated_at = created_at)
    /// for its account. kNotFound: no such account; kLimitReached: the account has
    /// `limits.max_live` live characters; kAlreadyExists: the name is taken or reserved.
    virtual void create_character(CharacterRecord character, CharacterLimits limits,
                                  Completion<CharacterRecord> done) = 0;
    /// Live or deleted; kNotFound.
    virtual void character_by_id(std::uint64_t id, Completion<CharacterRecord> done) = 0;
    virtual void list_characters(CharacterFilter filter,
                                 Completion<std::vector<CharacterRecord>> done) = 0;
    /// Marks a live character deleted at `at` (its name stays reserved); when `account_id` is set
    /// the character must be that account's. Then, in the same transaction, the account's deleted
    /// characters beyond the `keep_deleted` most recently deleted are removed for good (their
    /// names free, no restore), so that creating and deleting in a loop cannot grow the store
    /// without bound. kNotFound: no such live character (of that account).
    virtual void delete_character(std::uint64_t id, std::optional<std::uint64_t> account_id,
                                  CharacterTime at, std::size_t keep_deleted,
                                  Completion<CharacterRecord> done) = 0;
    /// Makes a deleted character live again. kNotFound: no such deleted character;
    /// kAlreadyExists: its name is now another's; kLimitReached: its account has
    /// `limits.max_live` live characters.
    virtual void restore_character(std::uint64_t id, CharacterLimits limits, CharacterTime at,
                                   Completion<CharacterRecord> done) = 0;
    /// Gives a character (live or deleted: a deleted one then reserves the new name) a new name;
    /// the old one is free at once. kNotFound; kAlreadyExists: the name is taken or reserved.
    virtual void rename_character(std::uint64_t id, std::string name, CharacterTime reserved_since,
                                  CharacterTime at, Completion<CharacterRecord> done) = 0;
    /// Sets last_login_at of a live character of `account_id`; the record after it. kNotFound.
    virtual void record_login(std::uint64_t id, std::uint64_t account_id, CharacterTime at,
                              Completion<CharacterRecord> done) = 0;
    /// Applies every save in one transaction (updated_at = `at`); completes with the number of
    /// live characters updated (missing and deleted ones are skipped). kTooLarge: more than
    /// kMaxSaveBatch saves; kInvalidArgument: a value it cannot keep (nothing is saved).
    virtual void save_characters(std::vector<CharacterSave> saves, CharacterTime at,
                                 Completion<std::uint64_t> done) = 0;
};

}  // namespace hearth::store
