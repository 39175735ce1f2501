#pragma once

// The character service as front-ends and the world use it (docs/characters.md): an account's
// characters (list, create, delete, select) with the rules of `[characters]`, and the operators'
// and the world's calls. Implemented by the `characters` module (src/characters); a front-end
// holds a CharacterService& and links nothing of it.
//
// Asynchronous like the store: a completion runs on a store thread, or on the calling thread
// before the call returns when the request is refused without asking the store (a name that
// breaks the rules, the module not running). A caller on an io thread posts it back home
// (`core::post_to_current_thread`). Every error is a CharacterError (its category is
// character_category()), whatever the cause.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>

#include <hearth/character_store.hpp>
#include <hearth/result.hpp>

namespace hearth::characters {

/// Why a character call failed. The numbers are stable (protocols carry them: the packet
/// protocol's character error codes are these numbers), and so are the names of
/// `character_error_name` (the operator API's error codes). New codes are added at the end.
enum class CharacterError : std::uint16_t {
    kOk = 0,
    kNameTooShort = 1,       // fewer characters than `[characters] name_min_length`
    kNameTooLong = 2,        // more than `name_max_length`
    kNameInvalid = 3,        // a character outside `name_allowed_characters`
    kNameReserved = 4,       // contains a word of `reserved_words`
    kNameTaken = 5,          // another character's, or reserved after a delete
    kTooManyCharacters = 6,  // the account has `max_per_account` live characters
    kNotFound = 7,           // no such character (for this account), or it is deleted
    kNotDeleted = 8,         // restore of a character that is not deleted
    kInvalidData = 9,        // looks, stats, inventory or position out of range
    kNoSuchAccount = 10,     // create for an account that does not exist
    kDisabled = 11,          // the characters module is not running
    kUnavailable = 12,       // the store is busy or stopping: try again shortly
    kStorageFailure = 13,    // the store failed (the server log says why)
    kBatchTooLarge = 14,     // save_many with more than store::kMaxSaveBatch characters
};

/// The stable snake_case name of an error, e.g. "name_taken".
constexpr std::string_view character_error_name(CharacterError e) noexcept {
    switch (e) {
        case CharacterError::kOk:
            return "ok";
        case CharacterError::kNameTooShort:
            return "name_too_short";
        case CharacterError::kNameTooLong:
            return "name_too_long";
        case CharacterError::kNameInvalid:
            return "name_invalid";
        case CharacterError::kNameReserved:
            return "name_reserved";
        case CharacterError::kNameTaken:
            return "name_taken";
        case CharacterError::kTooManyCharacters:
            return "too_many_characters";
        case CharacterError::kNotFound:
            return "character_not_found";
        case CharacterError::kNotDeleted:
            return "character_not_deleted";
        case CharacterError::kInvalidData:
            return "invalid_character_data";
        case CharacterError::kNoSuchAccount:
            return "account_not_found";
        case CharacterError::kDisabled:
            return "characters_disabled";
        case CharacterError::kUnavailable:
            return "unavailable";
        case CharacterError::kStorageFailure:
            return "storage_failure";
        case CharacterError::kBatchTooLarge:
            return "batch_too_large";
    }
    return "unknown";
}

namespace detail {
// Boost's error_category has a public non-virtual destructor by design (categories are never
// deleted through a base pointer), which -Wnon-virtual-dtor reports on every derived class.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class CharacterCategory final : public boost::system::error_category {
public:
    // Its own id, so that error codes compare equal across libraries and shared objects.
    constexpr CharacterCategory() noexcept : error_category(0x4865'6172'7468'4348ULL) {}
    const char* name() const noexcept override { return "hearth.characters"; }
    std::string message(int ev) const override {
        return std::string(character_error_name(static_cast<CharacterError>(ev)));
    }
};
#pragma GCC diagnostic pop
}  // namespace detail

/// Header-only, so that a front-end needs no library to read the codes.
inline const boost::system::error_category& character_category() noexcept {
    static const detail::CharacterCategory category;
    return category;
}

inline boost::system::error_code make_error_code(CharacterError e) noexcept {
    return {static_cast<int>(e), character_category()};
}

/// The CharacterError of a service error (kStorageFailure for one of another category, which the
/// service never returns).
inline CharacterError character_error_of(const boost::system::error_code& ec) noexcept {
    return ec.category() == character_category() ? static_cast<CharacterError>(ec.value())
                                                 : CharacterError::kStorageFailure;
}

/// What a player chooses when creating a character; the rest starts from `[characters]`.
struct NewCharacter {
    std::string name;
    store::CharacterLooks looks;
};

template <class T>
using Completion = store::Completion<T>;

/// Thread-safe: any thread may call it, many at once. Rules apply as of the call (a config reload
/// changes them for later calls).
class CharacterService {
public:
    virtual ~CharacterService() = default;

    /// Why `name` breaks the naming rules (kNameTooShort, kNameTooLong, kNameInvalid,
    /// kNameReserved), or nothing: answered at once, without the store (not whether it is taken).
    virtual std::optional<CharacterError> check_name(std::string_view name) const = 0;
    /// `[characters] max_per_account` as of now (what kTooManyCharacters refers to); 0 while the
    /// module is not running.
    virtual std::size_t max_per_account() const = 0;

    /// The account's live characters, by id.
    virtual void list(std::uint64_t account_id,
                      Completion<std::vector<store::CharacterRecord>> done) = 0;
    /// A new character at the start zone's safe spot, level 1 with the configured starting
    /// stats. The name's rules, then kNoSuchAccount, kTooManyCharacters, kNameTaken.
    virtual void create(std::uint64_t account_id, NewCharacter character,
                        Completion<store::CharacterRecord> done) = 0;
    /// Soft delete: the character is gone from lists, and its name stays reserved for
    /// `delete_grace_days`. kNotFound unless it is a live character of the account.
    virtual void remove(std::uint64_t account_id, std::uint64_t character_id,
                        Completion<store::CharacterRecord> done) = 0;
    /// The character the account plays now (last_login_at set). kNotFound unless it is a live
    /// character of the account.
    virtual void select(std::uint64_t account_id, std::uint64_t character_id,
                        Completion<store::CharacterRecord> done) = 0;
    /// Any character, live or deleted, by id. kNotFound.
    virtual void get(std::uint64_t character_id, Completion<store::CharacterRecord> done) = 0;
    /// The world's save: positions, stats, progress and inventories of many characters in one
    /// transaction; the number of live characters saved. kBatchTooLarge, kInvalidData (nothing
    /// saved).
    virtual void save_many(std::vector<store::CharacterSave> saves,
                           Completion<std::uint64_t> done) = 0;

    // Operators' calls.
    /// The name's rules, then kNotFound, kNameTaken.
    virtual void rename(std::uint64_t character_id, std::string name,
                        Completion<store::CharacterRecord> done) = 0;
    /// To the safe spot of its zone (`[characters] safe_spots`), or the start zone's when its zone
    /// has none. kNotFound.
    virtual void move_to_safe_spot(std::uint64_t character_id,
                                   Completion<store::CharacterRecord> done) = 0;
    /// Undoes a delete. kNotFound, kNotDeleted, kNameTaken (rename it first),
    /// kTooManyCharacters.
    virtual void restore(std::uint64_t character_id, Completion<store::CharacterRecord> done) = 0;
};

}  // namespace hearth::characters

template <>
struct boost::system::is_error_code_enum<hearth::characters::CharacterError> : std::true_type {};
