#include "characters/character_service.hpp"
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

namespace hearth::characters {

namespace {

using store::CharacterRecord;

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool printable_ascii(char c) {
    return c > ' ' && c < 0x7F;
}

std::optional<float> parse_float(std::string_view s) {
    float v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v)) {
        return std::nullopt;
    }
    return v;
}

/// The service's error for a store error `ec`; `not_found` is what a missing row means to the
/// call (a character, or for create the account).
CharacterError error_of(const boost::system::error_code& ec,
                        CharacterError not_found = CharacterError::kNotFound) {
    if (ec.category() == character_category()) {
        return static_cast<CharacterError>(ec.value());  // a chained call's own refusal
    }
    const auto is = [&](Errc e) { return ec == make_error_code(e); };
    if (is(Errc::kNotFound)) {
        return not_found;
    }
    if (is(Errc::kAlreadyExists)) {
        return CharacterError::kNameTaken;
    }
    if (is(Errc::kLimitReached)) {
        return CharacterError::kTooManyCharacters;
    }
    if (is(Errc::kNotAllowed)) {
        return CharacterError::kNotDeleted;
    }
    if (is(Errc::kInvalidArgument)) {
        return CharacterError::kInvalidData;
    }
    if (is(Errc::kTooLarge)) {
        return CharacterError::kBatchTooLarge;
    }
    if (is(Errc::kUnavailable) || is(Errc::kShuttingDown) || is(Errc::kTimeout)) {
        return CharacterError::kUnavailable;
    }
    return CharacterError::kStorageFailure;
}

/// A completion that turns store errors into the service's.
template <class T>
store::Completion<T> mapped(store::Completion<T> done,
                            CharacterError not_found = CharacterError::kNotFound) {
    return [done = std::move(done), not_found](Result<T> r) {
        if (!r) {
            done(make_error_code(error_of(r.error(), not_found)));
            return;
        }
        done(std::move(r));
    };
}

template <class T>
void refuse(const store::Completion<T>& done, CharacterError e) {
    done(make_error_code(e));
}

}  // namespace

// ---- config -----------------------------------------------------------------------------------

std::optional<store::CharacterPosition> parse_safe_spot(std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        return std::nullopt;
    }
    std::uint32_t zone = 0;
    const auto zone_text = text.substr(0, colon);
    const auto [end, ec] =
        std::from_chars(zone_text.data(), zone_text.data() + zone_text.size(), zone);
    if (zone_text.empty() || ec != std::errc() || end != zone_text.data() + zone_text.size()) {
        return std::nullopt;
    }
    std::array<float, 3> xyz{};
    std::string_view rest = text.substr(colon + 1);
    for (std::size_t i = 0; i < xyz.size(); ++i) {
        const auto comma = rest.find(',');
        if ((i + 1 < xyz.size()) == (comma == std::string_view::npos)) {
            return std::nullopt;  // not exactly three coordinates
        }
        auto v = parse_float(rest.substr(0, comma));
        if (!v) {
            return std::nullopt;
        }
        xyz[i] = *v;
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    return store::CharacterPosition{.zone = zone, .x = xyz[0], .y = xyz[1], .z = xyz[2]};
}

void CharactersConfig::validate(core::ConfigErrors& errors) const {
    const std::string s(kName);
    if (name_min_length > name_max_length) {
        errors.push_back(s + ".name_max_length: must be at least name_min_length (" +
                         std::to_string(name_min_length) + "), got " +
                         std::to_string(name_max_length));
    }
    if (name_allowed_characters.empty()) {
        errors.push_back(s + ".name_allowed_characters: must not be empty");
    }
    for (char c : name_allowed_characters) {
        if (!printable_ascii(c)) {
            errors.push_back(s +
                             ".name_allowed_characters: only printable ASCII without space may "
                             "be allowed (names are compared ignoring ASCII case)");
            break;
        }
    }
    for (const auto& w : reserved_words) {
        if (w.empty() || !std::all_of(w.begin(), w.end(), printable_ascii)) {
            errors.push_back(s + ".reserved_words: \"" + w +
                             "\" is not a word of printable ASCII without space");
        }
    }
    std::set<std::uint32_t> zones;
    for (const auto& text : safe_spots) {
        auto spot = parse_safe_spot(text);
        if (!spot) {
            errors.push_back(s + ".safe_spots: \"" + text +
                             "\" is not \"zone:x,y,z\" (a zone number and three finite numbers, "
                             "e.g. \"1:5200,5200,0\")");
        } else if (!zones.insert(spot->zone).second) {
            errors.push_back(s + ".safe_spots: zone " + std::to_string(spot->zone) +
                             " has more than one safe spot");
        }
    }
    if (zones.size() == safe_spots.size() &&
        !zones.contains(static_cast<std::uint32_t>(start_zone))) {
        errors.push_back(s + ".safe_spots: start_zone " + std::to_string(start_zone) +
                         " has no safe spot (new characters start there)");
    }
}

std::map<std::uint32_t, store::CharacterPosition> CharactersConfig::spots() const {
    std::map<std::uint32_t, store::CharacterPosition> out;
    for (const auto& text : safe_spots) {
        if (auto spot = parse_safe_spot(text)) {
            out.emplace(spot->zone, *spot);
        }
    }
    return out;
}

CharacterRules CharacterRules::from(const CharactersConfig& config) {
    CharacterRules r;
    r.max_per_account = static_cast<std::size_t>(config.max_per_account);
    r.name_min_length = static_cast<std::size_t>(config.name_min_length);
    r.name_max_length = static_cast<std::size_t>(config.name_max_length);
    for (char c : config.name_allowed_characters) {
        if (printable_ascii(c)) {
            r.allowed[static_cast<unsigned char>(c)] = true;
        }
    }
    for (const auto& w : config.reserved_words) {
        r.reserved.push_back(lowered(w));
    }
    r.delete_grace = std::chrono::days(config.delete_grace_days);
    r.max_deleted_per_account = static_cast<std::size_t>(config.max_deleted_per_account);
    r.safe_spots = config.spots();
    if (auto it = r.safe_spots.find(static_cast<std::uint32_t>(config.start_zone));
        it != r.safe_spots.end()) {
        r.start = it->second;
    }
    return r;
}

std::optional<CharacterError> check_name(const CharacterRules& rules, std::string_view name) {
    if (name.size() < rules.name_min_length) {
        return CharacterError::kNameTooShort;
    }
    if (name.size() > rules.name_max_length) {
        return CharacterError::kNameTooLong;
    }
    for (char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= rules.allowed.size() || !rules.allowed[u]) {
            return CharacterError::kNameInvalid;
        }
    }
    const std::string folded = lowered(name);
    for (const auto& word : rules.reserved) {
        if (folded.find(word) != std::string::npos) {
            return CharacterError::kNameReserved;
        }
    }
    return std::nullopt;
}

// ---- the service ------------------------------------------------------------------------------

void CharacterServiceImpl::set_rules(std::shared_ptr<const CharacterRules> rules) {
    std::lock_guard lock(mutex_);
    rules_ = std::move(rules);
}

std::shared_ptr<const CharacterRules> CharacterServiceImpl::rules() const {
    std::lock_guard lock(mutex_);
    return rules_;
}

store::CharacterLimits CharacterServiceImpl::limits(const CharacterRules& rules) const {
    return store::CharacterLimits{
        .max_live = rules.max_per_account,
        .reserved_since = std::chrono::system_clock::now() - rules.delete_grace};
}

std::optional<CharacterError> CharacterServiceImpl::check_name(std::string_view name) const {
    const auto r = rules();
    if (!r) {
        return CharacterError::kDisabled;
    }
    return characters::check_name(*r, name);
}

std::size_t CharacterServiceImpl::max_per_account() const {
    const auto r = rules();
    return r ? r->max_per_account : 0;
}

void CharacterServiceImpl::list(std::uint64_t account_id,
                                Completion<std::vector<CharacterRecord>> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    // Every live one, also past a limit lowered since they were made (the limit's own bound).
    store_.list_characters({.account_id = account_id, .limit = 1'000}, mapped(std::move(done)));
}

void CharacterServiceImpl::create(std::uint64_t account_id, NewCharacter character,
                                  Completion<CharacterRecord> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    if (auto why = characters::check_name(*r, character.name)) {
        return refuse(done, *why);
    }
    CharacterRecord c;
    c.account_id = account_id;
    c.name = std::move(character.name);
    c.looks = character.looks;
    c.stats = kStartStats;
    c.position = r->start;
    c.created_at = std::chrono::system_clock::now();
    store_.create_character(std::move(c), limits(*r),
                            mapped(std::move(done), CharacterError::kNoSuchAccount));
}

void CharacterServiceImpl::remove(std::uint64_t account_id, std::uint64_t character_id,
                                  Completion<CharacterRecord> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    store_.delete_character(character_id, account_id, std::chrono::system_clock::now(),
                            r->max_deleted_per_account, mapped(std::move(done)));
}

void CharacterServiceImpl::select(std::uint64_t account_id, std::uint64_t character_id,
                                  Completion<CharacterRecord> done) {
    if (!rules()) {
        return refuse(done, CharacterError::kDisabled);
    }
    store_.record_login(character_id, account_id, std::chrono::system_clock::now(),
                        mapped(std::move(done)));
}

void CharacterServiceImpl::get(std::uint64_t character_id, Completion<CharacterRecord> done) {
    if (!rules()) {
        return refuse(done, CharacterError::kDisabled);
    }
    store_.character_by_id(character_id, mapped(std::move(done)));
}

void CharacterServiceImpl::save_many(std::vector<store::CharacterSave> saves,
                                     Completion<std::uint64_t> done) {
    if (!rules()) {
        return refuse(done, CharacterError::kDisabled);
    }
    if (saves.size() > store::kMaxSaveBatch) {
        return refuse(done, CharacterError::kBatchTooLarge);
    }
    if (!std::all_of(saves.begin(), saves.end(), store::valid_save)) {
        return refuse(done, CharacterError::kInvalidData);
    }
    store_.save_characters(std::move(saves), std::chrono::system_clock::now(),
                           mapped(std::move(done)));
}

void CharacterServiceImpl::rename(std::uint64_t character_id, std::string name,
                                  Completion<CharacterRecord> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    if (auto why = characters::check_name(*r, name)) {
        return refuse(done, *why);
    }
    const auto now = std::chrono::system_clock::now();
    store_.rename_character(character_id, std::move(name), now - r->delete_grace, now,
                            mapped(std::move(done)));
}

void CharacterServiceImpl::move_to_safe_spot(std::uint64_t character_id,
                                             Completion<CharacterRecord> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    // The store outlives every completion it runs (it drains them as it closes), and the rules
    // are a snapshot held here: nothing of `this` is needed once the first call is made.
    auto& store = store_;
    store.character_by_id(
        character_id, [&store, r, done = mapped(std::move(done))](Result<CharacterRecord> c) {
            if (!c) {
                done(std::move(c));
                return;
            }
            if (c->deleted_at) {
                return refuse(done, CharacterError::kNotFound);
            }
            const auto it = r->safe_spots.find(c->position.zone);
            const auto spot = it != r->safe_spots.end() ? it->second : r->start;
            const auto id = c->id;
            store.save_characters(
                {{.id = id, .position = spot}}, std::chrono::system_clock::now(),
                [&store, id, done](Result<std::uint64_t> saved) {
                    if (!saved) {
                        done(saved.error());
                        return;
                    }
                    if (*saved == 0) {
                        return refuse(done, CharacterError::kNotFound);  // deleted meanwhile
                    }
                    store.character_by_id(id, done);
                });
        });
}

void CharacterServiceImpl::restore(std::uint64_t character_id, Completion<CharacterRecord> done) {
    const auto r = rules();
    if (!r) {
        return refuse(done, CharacterError::kDisabled);
    }
    store_.restore_character(character_id, limits(*r), std::chrono::system_clock::now(),
                             mapped(std::move(done)));
}

void CharacterServiceImpl::list_all(store::CharacterFilter filter,
                                    Completion<std::vector<CharacterRecord>> done) {
    if (!rules()) {
        return refuse(done, CharacterError::kDisabled);
    }
    store_.list_characters(std::move(filter), mapped(std::move(done)));
}

}  // namespace hearth::characters
