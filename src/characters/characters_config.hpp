#pragma once

// The `[characters]` config section: how many characters an account may have, the naming rules,
// how long a deleted character's name stays reserved, and the zones' safe spots
// (docs/characters.md).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/character_store.hpp>

#include "core/config.hpp"

namespace hearth::characters {

/// A safe spot as written in `safe_spots`: "zone:x,y,z" (e.g. "1:5200,5200,0"); nothing when the
/// text is not one (or a coordinate is not finite).
std::optional<store::CharacterPosition> parse_safe_spot(std::string_view text);

struct CharactersConfig {
    static constexpr std::string_view kName = "characters";
    static constexpr std::string_view kDescription =
        "Game characters: per-account limit, naming rules, the grace period of a deleted "
        "character's name, the start zone and the zones' safe spots.";

    bool enabled = false;
    std::int64_t max_per_account = 5;
    std::int64_t name_min_length = 3;
    std::int64_t name_max_length = 16;
    std::string name_allowed_characters =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::vector<std::string> reserved_words = {"admin", "gamemaster", "moderator", "hearth",
                                               "system"};
    std::int64_t delete_grace_days = 7;
    std::int64_t max_deleted_per_account = 20;
    std::int64_t start_zone = 1;
    // Zone 1's spawn point in the shipped zone files (data/zones/meadow.toml).
    std::vector<std::string> safe_spots = {"1:520,480.5,0"};

    template <class V>
    void visit(V& v) {
        v("enabled", enabled,
          {.help = "Serve game characters: the character service front-ends use, and the "
                   "operator routes under /api/v1/characters."});
        v("max_per_account", max_per_account,
          {.help = "Live (not deleted) characters one account may have; creating or restoring "
                   "one more is refused (too_many_characters).",
           .min = 1,
           .max = 1'000});
        v("name_min_length", name_min_length,
          {.help = "Fewest characters in a name (name_too_short).", .min = 1, .max = 64});
        v("name_max_length", name_max_length,
          {.help = "Most characters in a name (name_too_long); at least name_min_length.",
           .min = 1,
           .max = 64});
        v("name_allowed_characters", name_allowed_characters,
          {.help = "The characters a name may use (name_invalid otherwise): printable ASCII "
                   "without space. Names are unique ignoring ASCII case."});
        v("reserved_words", reserved_words,
          {.help = "A name containing one of these, ignoring ASCII case, is refused "
                   "(name_reserved)."});
        v("delete_grace_days", delete_grace_days,
          {.help = "Days a deleted character's name stays reserved (its owner or an operator "
                   "may restore it meanwhile); 0: the name is free at once.",
           .min = 0,
           .max = 3'650});
        v("max_deleted_per_account", max_deleted_per_account,
          {.help = "Deleted characters kept per account (restorable by an operator); a delete "
                   "beyond it removes the account's longest-deleted character for good, so "
                   "that creating and deleting in a loop cannot grow the store.",
           .min = 1,
           .max = 1'000});
        v("start_zone", start_zone,
          {.help = "The zone new characters start in, at its safe spot; also where "
                   "move-to-safe-spot sends a character whose zone has no safe spot.",
           .min = 0,
           .max = 4'294'967'295});
        v("safe_spots", safe_spots,
          {.help = "Each zone's safe spot, \"zone:x,y,z\" (e.g. \"1:5200,5200,0\"); one entry "
                   "per zone, and one for start_zone."});
    }

    void validate(core::ConfigErrors& errors) const;
    bool operator==(const CharactersConfig&) const = default;

    /// The safe spots by zone (valid once validate found nothing).
    std::map<std::uint32_t, store::CharacterPosition> spots() const;
};

}  // namespace hearth::characters
