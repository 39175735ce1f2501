// The character service's rules (src/characters) on a real SQLite store: every validation error of
// include/hearth/characters.hpp, the [characters] section's checks, and the calls' outcomes.

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <hearth/account_store.hpp>
#include <hearth/characters.hpp>

#include "characters/character_service.hpp"
#include "characters/characters_config.hpp"
#include "unit/store/store_fixture.hpp"

namespace hearth::characters {
namespace {

using store::CharacterRecord;
using store::test::BackendStore;
using store::test::sync;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

bool is(const auto& result, CharacterError e) {
    return !result && result.error() == make_error_code(e);
}

/// A service on a SQLite store with two accounts, and the rules of `config`.
struct Fixture {
    explicit Fixture(CharactersConfig config = {}) : f("sqlite"), service(f.store->characters()) {
        core::ConfigErrors errors;
        config.validate(errors);
        EXPECT_THAT(errors, IsEmpty());
        service.set_rules(std::make_shared<const CharacterRules>(CharacterRules::from(config)));
        alice = account("alice");
        bob = account("bob");
    }
    std::uint64_t account(std::string name) {
        store::AccountRecord a;
        a.username = std::move(name);
        a.roles = {"player"};
        auto r = sync<store::AccountRecord>(
            [&](auto done) { f.store->accounts().create_account(std::move(a), std::move(done)); });
        EXPECT_TRUE(r);
        return r ? r->id : 0;
    }
    Result<CharacterRecord> create(std::uint64_t account, std::string name) {
        return sync<CharacterRecord>([&](auto done) {
            service.create(account, {.name = std::move(name), .looks = {.body = 1, .face = 4}},
                           std::move(done));
        });
    }
    Result<CharacterRecord> remove(std::uint64_t account, std::uint64_t id) {
        return sync<CharacterRecord>(
            [&](auto done) { service.remove(account, id, std::move(done)); });
    }
    Result<CharacterRecord> select(std::uint64_t account, std::uint64_t id) {
        return sync<CharacterRecord>(
            [&](auto done) { service.select(account, id, std::move(done)); });
    }
    Result<CharacterRecord> restore(std::uint64_t id) {
        return sync<CharacterRecord>([&](auto done) { service.restore(id, std::move(done)); });
    }
    Result<CharacterRecord> rename(std::uint64_t id, std::string name) {
        return sync<CharacterRecord>(
            [&](auto done) { service.rename(id, std::move(name), std::move(done)); });
    }
    Result<CharacterRecord> move(std::uint64_t id) {
        return sync<CharacterRecord>(
            [&](auto done) { service.move_to_safe_spot(id, std::move(done)); });
    }
    Result<std::uint64_t> save(std::vector<store::CharacterSave> saves) {
        return sync<std::uint64_t>(
            [&](auto done) { service.save_many(std::move(saves), std::move(done)); });
    }
    std::vector<std::string> names(std::uint64_t account) {
        auto r = sync<std::vector<CharacterRecord>>(
            [&](auto done) { service.list(account, std::move(done)); });
        std::vector<std::string> out;
        EXPECT_TRUE(r);
        for (const auto& c : r ? *r : std::vector<CharacterRecord>{}) {
            out.push_back(c.name);
        }
        return out;
    }

    BackendStore f;
    CharacterServiceImpl service;
    std::uint64_t alice = 0;
    std::uint64_t bob = 0;
};

TEST(CharacterErrors, CodesAndNamesAreStable) {
    // The packet protocol and the operator API carry these: never renumber or rename.
    const std::vector<std::pair<CharacterError, std::string_view>> expected = {
        {CharacterError::kOk, "ok"},
        {CharacterError::kNameTooShort, "name_too_short"},
        {CharacterError::kNameTooLong, "name_too_long"},
        {CharacterError::kNameInvalid, "name_invalid"},
        {CharacterError::kNameReserved, "name_reserved"},
        {CharacterError::kNameTaken, "name_taken"},
        {CharacterError::kTooManyCharacters, "too_many_characters"},
        {CharacterError::kNotFound, "character_not_found"},
        {CharacterError::kNotDeleted, "character_not_deleted"},
        {CharacterError::kInvalidData, "invalid_character_data"},
        {CharacterError::kNoSuchAccount, "account_not_found"},
        {CharacterError::kDisabled, "characters_disabled"},
        {CharacterError::kUnavailable, "unavailable"},
        {CharacterError::kStorageFailure, "storage_failure"},
        {CharacterError::kBatchTooLarge, "batch_too_large"},
    };
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(static_cast<std::size_t>(expected[i].first), i);
        EXPECT_EQ(character_error_name(expected[i].first), expected[i].second);
        EXPECT_EQ(make_error_code(expected[i].first).message(), expected[i].second);
        EXPECT_EQ(character_error_of(make_error_code(expected[i].first)), expected[i].first);
    }
    EXPECT_EQ(character_error_of(make_error_code(Errc::kNotFound)),
              CharacterError::kStorageFailure);
}

TEST(CharacterService, EveryNameRuleHasItsError) {
    CharactersConfig c;
    c.name_min_length = 3;
    c.name_max_length = 8;
    c.name_allowed_characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
    c.reserved_words = {"Admin", "gm_"};
    Fixture x(c);
    EXPECT_EQ(x.service.check_name("ab"), CharacterError::kNameTooShort);
    EXPECT_EQ(x.service.check_name(""), CharacterError::kNameTooShort);
    EXPECT_EQ(x.service.check_name("abcdefghi"), CharacterError::kNameTooLong);
    EXPECT_EQ(x.service.check_name("ab cd"), CharacterError::kNameInvalid);
    EXPECT_EQ(x.service.check_name("abc1"), CharacterError::kNameInvalid);
    EXPECT_EQ(x.service.check_name("Zo\xc3\xab"), CharacterError::kNameInvalid);  // non-ASCII
    EXPECT_EQ(x.service.check_name(std::string("ab\0c", 4)), CharacterError::kNameInvalid);
    EXPECT_EQ(x.service.check_name("xADMINx"), CharacterError::kNameReserved);  // any case, inside
    EXPECT_EQ(x.service.check_name("GM_Bob"), CharacterError::kNameReserved);
    EXPECT_EQ(x.service.check_name("Sigmund"), std::nullopt);
    EXPECT_EQ(x.service.check_name("abc"), std::nullopt);
    EXPECT_EQ(x.service.check_name("abcdefgh"), std::nullopt);

    // create and rename apply the same rules, before the store.
    EXPECT_TRUE(is(x.create(x.alice, "ab"), CharacterError::kNameTooShort));
    EXPECT_TRUE(is(x.create(x.alice, "abcdefghi"), CharacterError::kNameTooLong));
    EXPECT_TRUE(is(x.create(x.alice, "ab-c"), CharacterError::kNameInvalid));
    EXPECT_TRUE(is(x.create(x.alice, "iamadmin"), CharacterError::kNameReserved));
    auto ok = x.create(x.alice, "Valid");
    ASSERT_TRUE(ok);
    EXPECT_TRUE(is(x.rename(ok->id, "no"), CharacterError::kNameTooShort));
    EXPECT_TRUE(is(x.rename(ok->id, "gm_x"), CharacterError::kNameReserved));
    EXPECT_THAT(x.names(x.alice), ElementsAre("Valid"));
}

TEST(CharacterService, CreateStartsAtTheStartZoneAndRefusesTakenNamesAndFullAccounts) {
    CharactersConfig c;
    c.max_per_account = 2;
    c.start_zone = 3;
    c.safe_spots = {"1:5200,5200,0", "3:10.5,-2,7"};
    Fixture x(c);
    auto a = x.create(x.alice, "Aria");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->level, 1);
    EXPECT_EQ(a->stats, kStartStats);
    EXPECT_EQ(a->looks, (store::CharacterLooks{.body = 1, .face = 4}));
    EXPECT_EQ(a->position, (store::CharacterPosition{.zone = 3, .x = 10.5F, .y = -2, .z = 7}));
    EXPECT_TRUE(is(x.create(x.bob, "ARIA"), CharacterError::kNameTaken));
    ASSERT_TRUE(x.create(x.alice, "Brio"));
    EXPECT_TRUE(is(x.create(x.alice, "Cato"), CharacterError::kTooManyCharacters));
    EXPECT_TRUE(is(x.create(999'999, "Dido"), CharacterError::kNoSuchAccount));
    EXPECT_THAT(x.names(x.alice), ElementsAre("Aria", "Brio"));
    EXPECT_THAT(x.names(x.bob), IsEmpty());
}

TEST(CharacterService, DeleteKeepsTheNameForTheGracePeriodAndSelectNeedsALiveOwnCharacter) {
    Fixture x;  // delete_grace_days = 7
    auto a = x.create(x.alice, "Aria");
    ASSERT_TRUE(a);
    EXPECT_TRUE(is(x.select(x.bob, a->id), CharacterError::kNotFound));  // not bob's
    auto picked = x.select(x.alice, a->id);
    ASSERT_TRUE(picked);
    EXPECT_TRUE(picked->last_login_at);
    EXPECT_TRUE(is(x.remove(x.bob, a->id), CharacterError::kNotFound));
    auto gone = x.remove(x.alice, a->id);
    ASSERT_TRUE(gone);
    EXPECT_TRUE(gone->deleted_at);
    EXPECT_TRUE(is(x.remove(x.alice, a->id), CharacterError::kNotFound));  // already deleted
    EXPECT_TRUE(is(x.select(x.alice, a->id), CharacterError::kNotFound));
    EXPECT_THAT(x.names(x.alice), IsEmpty());
    EXPECT_TRUE(is(x.create(x.bob, "aria"), CharacterError::kNameTaken));  // still reserved
    auto back = x.restore(a->id);
    ASSERT_TRUE(back);
    EXPECT_FALSE(back->deleted_at);
    EXPECT_TRUE(is(x.restore(a->id), CharacterError::kNotDeleted));
    EXPECT_TRUE(is(x.restore(999'999), CharacterError::kNotFound));
}

TEST(CharacterService, WithoutAGracePeriodADeletedNameIsFreeAndRestoreThenNeedsARename) {
    CharactersConfig c;
    c.delete_grace_days = 0;
    Fixture x(c);
    auto a = x.create(x.alice, "Aria");
    ASSERT_TRUE(a);
    ASSERT_TRUE(x.remove(x.alice, a->id));
    // Deleted "now" is not before "now minus zero days" for the rest of this millisecond: the
    // store's clock has moved on by the time a condition can tell, so wait for that.
    Result<CharacterRecord> taken = make_error_code(CharacterError::kNameTaken);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (is(taken, CharacterError::kNameTaken) && std::chrono::steady_clock::now() < until) {
        taken = x.create(x.bob, "ARIA");
    }
    ASSERT_TRUE(taken) << taken.error().message();
    EXPECT_TRUE(is(x.restore(a->id), CharacterError::kNameTaken));
    ASSERT_TRUE(x.rename(a->id, "Aria2"));
    EXPECT_TRUE(x.restore(a->id));
}

TEST(CharacterService, MoveToSafeSpotUsesTheZonesSpotOrTheStartZones) {
    CharactersConfig c;
    c.safe_spots = {"1:5200,5200,0", "2:1,2,3"};
    Fixture x(c);
    auto a = x.create(x.alice, "Aria");
    auto b = x.create(x.alice, "Brio");
    ASSERT_TRUE(a && b);
    ASSERT_TRUE(x.save({{.id = a->id, .position = store::CharacterPosition{.zone = 2, .x = 99}},
                        {.id = b->id, .position = store::CharacterPosition{.zone = 9, .x = 99}}}));
    auto ma = x.move(a->id);
    ASSERT_TRUE(ma);
    EXPECT_EQ(ma->position, (store::CharacterPosition{.zone = 2, .x = 1, .y = 2, .z = 3}));
    auto mb = x.move(b->id);  // zone 9 has no spot: the start zone's
    ASSERT_TRUE(mb);
    EXPECT_EQ(mb->position, (store::CharacterPosition{.zone = 1, .x = 5200, .y = 5200, .z = 0}));
    ASSERT_TRUE(x.remove(x.alice, b->id));
    EXPECT_TRUE(is(x.move(b->id), CharacterError::kNotFound));
    EXPECT_TRUE(is(x.move(999'999), CharacterError::kNotFound));
}

TEST(CharacterService, SaveManyRefusesInvalidDataAndOversizedBatches) {
    Fixture x;
    auto a = x.create(x.alice, "Aria");
    ASSERT_TRUE(a);
    EXPECT_TRUE(is(x.save({{.id = a->id, .money = -5}}), CharacterError::kInvalidData));
    EXPECT_TRUE(is(x.save({{.id = a->id, .level = 0}}), CharacterError::kInvalidData));
    EXPECT_TRUE(is(x.save({{.id = a->id,
                            .inventory =
                                std::vector<store::InventorySlot>{
                                    {.slot = 1, .item_id = 7, .count = store::kMaxStack + 1}}}}),
                   CharacterError::kInvalidData));
    EXPECT_TRUE(
        is(x.save({{.id = a->id, .position = store::CharacterPosition{.heading = INFINITY}}}),
           CharacterError::kInvalidData));
    EXPECT_TRUE(is(x.save(std::vector<store::CharacterSave>(store::kMaxSaveBatch + 1,
                                                            {.id = a->id, .level = 2})),
                   CharacterError::kBatchTooLarge));
    auto saved = x.save({{.id = a->id, .level = 4, .experience = 10, .money = 3}});
    ASSERT_TRUE(saved);
    EXPECT_EQ(*saved, 1U);
    auto got = sync<CharacterRecord>([&](auto done) { x.service.get(a->id, std::move(done)); });
    ASSERT_TRUE(got);
    EXPECT_EQ(got->level, 4);
    EXPECT_EQ(got->money, 3);
}

TEST(CharacterService, EveryCallAnswersDisabledWhileTheModuleIsNotRunning) {
    Fixture x;
    auto a = x.create(x.alice, "Aria");
    ASSERT_TRUE(a);
    x.service.set_rules(nullptr);
    EXPECT_EQ(x.service.check_name("Aria"), CharacterError::kDisabled);
    EXPECT_TRUE(is(x.create(x.alice, "Brio"), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.select(x.alice, a->id), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.remove(x.alice, a->id), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.restore(a->id), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.rename(a->id, "Cato"), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.move(a->id), CharacterError::kDisabled));
    EXPECT_TRUE(is(x.save({{.id = a->id}}), CharacterError::kDisabled));
    auto listed = sync<std::vector<CharacterRecord>>(
        [&](auto done) { x.service.list(x.alice, std::move(done)); });
    EXPECT_TRUE(is(listed, CharacterError::kDisabled));
}

std::vector<std::string> errors_of(const CharactersConfig& c) {
    core::ConfigErrors errors;
    c.validate(errors);
    return errors;
}

TEST(CharactersConfig, TheDefaultsAreValid) {
    EXPECT_THAT(errors_of({}), IsEmpty());
}

TEST(CharactersConfig, EveryMistakeIsNamed) {
    CharactersConfig c;
    c.name_min_length = 10;
    c.name_max_length = 4;
    EXPECT_THAT(errors_of(c), ElementsAre(HasSubstr("characters.name_max_length: must be at "
                                                    "least name_min_length (10), got 4")));
    c = {};
    c.name_allowed_characters = "";
    EXPECT_THAT(errors_of(c),
                ElementsAre(HasSubstr("characters.name_allowed_characters: must not be empty")));
    c.name_allowed_characters = "ab c";
    EXPECT_THAT(errors_of(c), ElementsAre(HasSubstr("characters.name_allowed_characters: only "
                                                    "printable ASCII without space")));
    c = {};
    c.reserved_words = {"ok", ""};
    EXPECT_THAT(errors_of(c), ElementsAre(HasSubstr("characters.reserved_words: \"\" is not")));
    c = {};
    c.safe_spots = {"1:5200,5200,0", "2:1,2", "x:1,2,3", "3:1,2,nan", "4:1,2,3,4"};
    EXPECT_THAT(
        errors_of(c),
        ElementsAre(HasSubstr("\"2:1,2\" is not \"zone:x,y,z\""), HasSubstr("\"x:1,2,3\" is not"),
                    HasSubstr("\"3:1,2,nan\" is not"), HasSubstr("\"4:1,2,3,4\" is not")));
    c.safe_spots = {"1:0,0,0", "1:1,1,1"};
    EXPECT_THAT(errors_of(c),
                ElementsAre(HasSubstr("characters.safe_spots: zone 1 has more than one")));
    c.safe_spots = {"2:0,0,0"};
    EXPECT_THAT(errors_of(c),
                ElementsAre(HasSubstr("characters.safe_spots: start_zone 1 has no safe spot")));
}

}  // namespace
}  // namespace hearth::characters
