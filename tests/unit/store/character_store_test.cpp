// Game characters on both backends (a real SQLite file, a real PostgreSQL server): the contract of
// include/hearth/character_store.hpp, so that both behave the same.

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <hearth/account_store.hpp>
#include <hearth/character_store.hpp>

#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class CharacterStoreTest : public ::testing::TestWithParam<std::string> {};

CharacterTime at_ms(std::int64_t ms) {
    return CharacterTime(std::chrono::milliseconds(ms));
}
constexpr std::int64_t kT0 = 1'700'000'000'000;

bool is(const auto& result, Errc e) {
    return !result && result.error() == make_error_code(e);
}

/// A store with two accounts.
struct Fixture {
    explicit Fixture(std::string backend) : f(std::move(backend)) {
        alice = make_account("alice");
        bob = make_account("bob");
    }
    std::uint64_t make_account(std::string name) {
        AccountRecord a;
        a.username = std::move(name);
        a.roles = {"player"};
        a.created_at = at_ms(kT0);
        auto r = sync<AccountRecord>(
            [&](auto done) { f.store->accounts().create_account(std::move(a), std::move(done)); });
        EXPECT_TRUE(r);
        return r ? r->id : 0;
    }
    CharacterStore& s() { return f.store->characters(); }

    Result<CharacterRecord> create(std::uint64_t account, std::string name,
                                   CharacterLimits limits = {.max_live = 5,
                                                             .reserved_since = at_ms(kT0)}) {
        CharacterRecord c;
        c.account_id = account;
        c.name = std::move(name);
        c.level = 3;
        c.experience = 1234;
        c.money = 99;
        c.stats = {.str = 10,
                   .dex = 11,
                   .intelligence = 12,
                   .con = 13,
                   .hp = 50,
                   .max_hp = 60,
                   .mp = 20,
                   .max_mp = 30};
        c.looks = {.body = 1, .face = 2, .hair = 3, .hair_color = 255};
        c.inventory = {{.slot = 0, .item_id = 501, .count = 1},
                       {.slot = 7, .item_id = 900, .count = kMaxStack}};
        c.position = {.zone = 2, .x = 5200.5F, .y = -10.25F, .z = 0.125F, .heading = 1.5F};
        c.created_at = at_ms(kT0 + 1);
        return sync<CharacterRecord>(
            [&](auto done) { s().create_character(std::move(c), limits, std::move(done)); });
    }
    Result<CharacterRecord> get(std::uint64_t id) {
        return sync<CharacterRecord>([&](auto done) { s().character_by_id(id, std::move(done)); });
    }
    Result<std::vector<CharacterRecord>> list(CharacterFilter filter) {
        return sync<std::vector<CharacterRecord>>(
            [&](auto done) { s().list_characters(std::move(filter), std::move(done)); });
    }
    std::vector<std::string> names(CharacterFilter filter) {
        std::vector<std::string> out;
        auto r = list(std::move(filter));
        EXPECT_TRUE(r) << r.error().message();
        for (const auto& c : r ? *r : std::vector<CharacterRecord>{}) {
            out.push_back(c.name);
        }
        return out;
    }
    Result<CharacterRecord> remove(std::uint64_t id, std::optional<std::uint64_t> account,
                                   std::int64_t at) {
        return sync<CharacterRecord>(
            [&](auto done) { s().delete_character(id, account, at_ms(at), 20, std::move(done)); });
    }
    Result<CharacterRecord> restore(std::uint64_t id, CharacterLimits limits) {
        return sync<CharacterRecord>([&](auto done) {
            s().restore_character(id, limits, at_ms(kT0 + 500), std::move(done));
        });
    }
    Result<CharacterRecord> rename(std::uint64_t id, std::string name,
                                   std::int64_t reserved_since) {
        return sync<CharacterRecord>([&](auto done) {
            s().rename_character(id, std::move(name), at_ms(reserved_since), at_ms(kT0 + 600),
                                 std::move(done));
        });
    }
    Result<std::uint64_t> save(std::vector<CharacterSave> saves) {
        return sync<std::uint64_t>([&](auto done) {
            s().save_characters(std::move(saves), at_ms(kT0 + 700), std::move(done));
        });
    }

    BackendStore f;
    std::uint64_t alice = 0;
    std::uint64_t bob = 0;
};

TEST_P(CharacterStoreTest, CreateReadsBackEveryField) {
    Fixture x(GetParam());
    auto made = x.create(x.alice, "Aria");
    ASSERT_TRUE(made) << made.error().message();
    EXPECT_GT(made->id, 0U);
    auto c = x.get(made->id);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->account_id, x.alice);
    EXPECT_EQ(c->name, "Aria");
    EXPECT_EQ(c->level, 3);
    EXPECT_EQ(c->experience, 1234);
    EXPECT_EQ(c->money, 99);
    EXPECT_EQ(c->stats, (CharacterStats{.str = 10,
                                        .dex = 11,
                                        .intelligence = 12,
                                        .con = 13,
                                        .hp = 50,
                                        .max_hp = 60,
                                        .mp = 20,
                                        .max_mp = 30}));
    EXPECT_EQ(c->looks, (CharacterLooks{.body = 1, .face = 2, .hair = 3, .hair_color = 255}));
    EXPECT_THAT(c->inventory,
                ElementsAre(InventorySlot{.slot = 0, .item_id = 501, .count = 1},
                            InventorySlot{.slot = 7, .item_id = 900, .count = kMaxStack}));
    EXPECT_EQ(
        c->position,
        (CharacterPosition{.zone = 2, .x = 5200.5F, .y = -10.25F, .z = 0.125F, .heading = 1.5F}));
    EXPECT_EQ(c->created_at, at_ms(kT0 + 1));
    EXPECT_EQ(c->updated_at, at_ms(kT0 + 1));
    EXPECT_FALSE(c->last_login_at);
    EXPECT_FALSE(c->deleted_at);
    EXPECT_TRUE(is(x.get(999'999), Errc::kNotFound));
    EXPECT_TRUE(is(x.get(0), Errc::kNotFound));
}

TEST_P(CharacterStoreTest, NamesAreUniqueCaseInsensitivelyAcrossAccounts) {
    Fixture x(GetParam());
    ASSERT_TRUE(x.create(x.alice, "Aria"));
    EXPECT_TRUE(is(x.create(x.alice, "aria"), Errc::kAlreadyExists));
    EXPECT_TRUE(is(x.create(x.bob, "ARIA"), Errc::kAlreadyExists));
    EXPECT_TRUE(x.create(x.bob, "Bria"));  // the refused attempts changed nothing
    EXPECT_TRUE(is(x.create(999'999, "Nobody"), Errc::kNotFound));
    EXPECT_THAT(x.names({}), ElementsAre("Aria", "Bria"));
}

TEST_P(CharacterStoreTest, TheLiveLimitCountsOnlyLiveCharactersOfTheAccount) {
    Fixture x(GetParam());
    const CharacterLimits two{.max_live = 2, .reserved_since = at_ms(kT0)};
    auto first = x.create(x.alice, "One", two);
    ASSERT_TRUE(first);
    ASSERT_TRUE(x.create(x.alice, "Two", two));
    EXPECT_TRUE(is(x.create(x.alice, "Three", two), Errc::kLimitReached));
    EXPECT_TRUE(x.create(x.bob, "Three", two));  // another account's count
    ASSERT_TRUE(x.remove(first->id, x.alice, kT0 + 10));
    EXPECT_TRUE(x.create(x.alice, "Four", two));  // a deleted one does not count
}

TEST_P(CharacterStoreTest, ADeletedNameStaysReservedUntilItsGracePeriodEnds) {
    Fixture x(GetParam());
    auto c = x.create(x.alice, "Aria");
    ASSERT_TRUE(c);
    EXPECT_TRUE(is(x.remove(c->id, x.bob, kT0 + 100), Errc::kNotFound));  // not bob's
    auto gone = x.remove(c->id, x.alice, kT0 + 100);
    ASSERT_TRUE(gone);
    EXPECT_EQ(gone->deleted_at, at_ms(kT0 + 100));
    EXPECT_TRUE(is(x.remove(c->id, x.alice, kT0 + 200), Errc::kNotFound));  // already deleted

    // Within the grace period (deleted at or after reserved_since) the name is held.
    EXPECT_TRUE(is(x.create(x.bob, "ARIA", {.max_live = 5, .reserved_since = at_ms(kT0 + 100)}),
                   Errc::kAlreadyExists));
    // Past it, the next claimant releases it.
    auto taken = x.create(x.bob, "ARIA", {.max_live = 5, .reserved_since = at_ms(kT0 + 101)});
    ASSERT_TRUE(taken) << taken.error().message();

    EXPECT_THAT(x.names({}), ElementsAre("ARIA"));
    EXPECT_THAT(x.names({.deleted = CharacterFilter::Deleted::kOnly}), ElementsAre("Aria"));
    EXPECT_THAT(x.names({.deleted = CharacterFilter::Deleted::kInclude}),
                ElementsAre("Aria", "ARIA"));
}

TEST_P(CharacterStoreTest, RestoreRefusesATakenNameAndAFullAccount) {
    Fixture x(GetParam());
    auto aria = x.create(x.alice, "Aria");
    ASSERT_TRUE(aria);
    EXPECT_TRUE(is(x.restore(aria->id, {.max_live = 5}), Errc::kNotAllowed));  // not deleted
    ASSERT_TRUE(x.remove(aria->id, std::nullopt, kT0 + 100));

    // Within the grace period it still holds its name: restored.
    auto back = x.restore(aria->id, {.max_live = 5, .reserved_since = at_ms(kT0)});
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_FALSE(back->deleted_at);
    EXPECT_EQ(back->updated_at, at_ms(kT0 + 500));

    // Past it, another took the name: refused until renamed.
    ASSERT_TRUE(x.remove(aria->id, std::nullopt, kT0 + 100));
    ASSERT_TRUE(x.create(x.bob, "aria", {.max_live = 5, .reserved_since = at_ms(kT0 + 200)}));
    EXPECT_TRUE(is(x.restore(aria->id, {.max_live = 5, .reserved_since = at_ms(kT0 + 200)}),
                   Errc::kAlreadyExists));
    auto renamed = x.rename(aria->id, "Aria2", kT0 + 200);
    ASSERT_TRUE(renamed);
    EXPECT_TRUE(renamed->deleted_at);  // still deleted, now holding its new name

    // A full account refuses it.
    ASSERT_TRUE(x.create(x.alice, "Other", {.max_live = 1, .reserved_since = at_ms(kT0)}));
    EXPECT_TRUE(is(x.restore(aria->id, {.max_live = 1, .reserved_since = at_ms(kT0 + 200)}),
                   Errc::kLimitReached));
    auto restored = x.restore(aria->id, {.max_live = 2, .reserved_since = at_ms(kT0 + 200)});
    ASSERT_TRUE(restored);
    EXPECT_EQ(restored->name, "Aria2");
    EXPECT_TRUE(is(x.restore(999'999, {.max_live = 5}), Errc::kNotFound));
}

TEST_P(CharacterStoreTest, RenameFreesTheOldNameAndChecksTheNewOne) {
    Fixture x(GetParam());
    auto a = x.create(x.alice, "Aria");
    auto b = x.create(x.bob, "Bria");
    ASSERT_TRUE(a && b);
    EXPECT_TRUE(is(x.rename(a->id, "BRIA", kT0), Errc::kAlreadyExists));
    auto r = x.rename(a->id, "Cria", kT0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->name, "Cria");
    EXPECT_EQ(r->updated_at, at_ms(kT0 + 600));
    EXPECT_TRUE(x.rename(a->id, "CRIA", kT0));  // its own name in other letters
    EXPECT_TRUE(x.create(x.bob, "aria"));       // the old name is free at once
    EXPECT_TRUE(is(x.rename(999'999, "Zed", kT0), Errc::kNotFound));
}

TEST_P(CharacterStoreTest, ListFiltersAndPages) {
    Fixture x(GetParam());
    ASSERT_TRUE(x.create(x.alice, "Amber"));
    ASSERT_TRUE(x.create(x.bob, "anvil"));
    ASSERT_TRUE(x.create(x.alice, "Birch"));
    ASSERT_TRUE(x.create(x.alice, "Anise"));
    EXPECT_THAT(x.names({.account_id = x.alice}), ElementsAre("Amber", "Birch", "Anise"));
    EXPECT_THAT(x.names({.name_prefix = "AN"}), ElementsAre("anvil", "Anise"));
    EXPECT_THAT(x.names({.account_id = x.alice, .name_prefix = "a"}),
                ElementsAre("Amber", "Anise"));
    EXPECT_THAT(x.names({.name_prefix = "zz"}), IsEmpty());
    EXPECT_THAT(x.names({.name_prefix = std::string("\xff", 1)}), IsEmpty());
    auto page = x.list({.limit = 2});
    ASSERT_TRUE(page);
    ASSERT_EQ(page->size(), 2U);
    EXPECT_THAT(x.names({.after_id = page->back().id, .limit = 2}), ElementsAre("Birch", "Anise"));
}

TEST_P(CharacterStoreTest, RecordLoginOnlyForALiveCharacterOfTheAccount) {
    Fixture x(GetParam());
    auto c = x.create(x.alice, "Aria");
    ASSERT_TRUE(c);
    auto login = [&](std::uint64_t account) {
        return sync<CharacterRecord>([&](auto done) {
            x.s().record_login(c->id, account, at_ms(kT0 + 42), std::move(done));
        });
    };
    EXPECT_TRUE(is(login(x.bob), Errc::kNotFound));
    auto r = login(x.alice);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->last_login_at, at_ms(kT0 + 42));
    EXPECT_EQ(x.get(c->id)->last_login_at, at_ms(kT0 + 42));
    ASSERT_TRUE(x.remove(c->id, x.alice, kT0 + 50));
    EXPECT_TRUE(is(login(x.alice), Errc::kNotFound));
}

TEST_P(CharacterStoreTest, SaveManyUpdatesWhatIsGivenInOneBatch) {
    Fixture x(GetParam());
    auto a = x.create(x.alice, "Aria");
    auto b = x.create(x.bob, "Bria");
    auto gone = x.create(x.bob, "Gone");
    ASSERT_TRUE(a && b && gone);
    ASSERT_TRUE(x.remove(gone->id, std::nullopt, kT0 + 10));

    const CharacterPosition moved{.zone = 7, .x = 1.5F, .y = 2.5F, .z = -3.5F, .heading = 0.25F};
    const std::vector<InventorySlot> bag{{.slot = 99, .item_id = 4, .count = 3}};
    auto saved = x.save({
        {.id = a->id, .position = moved},
        {.id = b->id, .level = 9, .experience = 5000, .money = 7, .inventory = bag},
        {.id = gone->id, .level = 50},  // deleted: skipped
        {.id = 999'999, .level = 50},   // missing: skipped
    });
    ASSERT_TRUE(saved) << saved.error().message();
    EXPECT_EQ(*saved, 2U);

    auto ra = x.get(a->id);
    ASSERT_TRUE(ra);
    EXPECT_EQ(ra->position, moved);
    EXPECT_EQ(ra->level, 3);  // unchanged
    EXPECT_EQ(ra->inventory.size(), 2U);
    EXPECT_EQ(ra->updated_at, at_ms(kT0 + 700));
    auto rb = x.get(b->id);
    ASSERT_TRUE(rb);
    EXPECT_EQ(rb->level, 9);
    EXPECT_EQ(rb->experience, 5000);
    EXPECT_EQ(rb->money, 7);
    EXPECT_EQ(rb->inventory, bag);
    EXPECT_EQ(rb->position.zone, 2U);
    EXPECT_EQ(x.get(gone->id)->level, 3);

    // One invalid value saves nothing.
    EXPECT_TRUE(is(x.save({{.id = a->id, .level = 10},
                           {.id = b->id, .position = CharacterPosition{.x = NAN}}}),
                   Errc::kInvalidArgument));
    EXPECT_EQ(x.get(a->id)->level, 3);
    EXPECT_TRUE(
        is(x.save(std::vector<CharacterSave>(kMaxSaveBatch + 1, {.id = a->id})), Errc::kTooLarge));
}

TEST_P(CharacterStoreTest, ValuesTheStoreCannotKeepAreRefused) {
    Fixture x(GetParam());
    auto make = [&](auto change) {
        CharacterRecord c;
        c.account_id = x.alice;
        c.name = "Valid";
        change(c);
        return sync<CharacterRecord>([&](auto done) {
            x.s().create_character(std::move(c), {.max_live = 5}, std::move(done));
        });
    };
    EXPECT_TRUE(is(make([](auto& c) { c.position.y = INFINITY; }), Errc::kInvalidArgument));
    EXPECT_TRUE(is(make([](auto& c) { c.money = -1; }), Errc::kInvalidArgument));
    EXPECT_TRUE(is(make([](auto& c) { c.level = 0; }), Errc::kInvalidArgument));
    EXPECT_TRUE(is(make([](auto& c) {
                       c.inventory = {{.slot = 1, .item_id = 1}, {.slot = 1, .item_id = 2}};
                   }),
                   Errc::kInvalidArgument));
    EXPECT_TRUE(is(make([](auto& c) { c.inventory = {{.slot = kInventorySlots, .item_id = 1}}; }),
                   Errc::kInvalidArgument));
    EXPECT_TRUE(is(make([](auto& c) { c.inventory = {{.slot = 0, .item_id = 1, .count = 0}}; }),
                   Errc::kInvalidArgument));
    EXPECT_TRUE(make([](auto&) {}));  // the refusals stored nothing
}

TEST_P(CharacterStoreTest, AnAccountKeepsOnlyItsMostRecentlyDeletedCharacters) {
    Fixture x(GetParam());
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 4; ++i) {
        auto c = x.create(x.alice, "Churn" + std::to_string(i));
        ASSERT_TRUE(c);
        ids.push_back(c->id);
        ASSERT_TRUE(sync<CharacterRecord>([&](auto done) {
            x.s().delete_character(c->id, x.alice, at_ms(kT0 + 10 + i), 2, std::move(done));
        }));
    }
    auto other = x.create(x.bob, "Other");
    ASSERT_TRUE(other);
    ASSERT_TRUE(x.remove(other->id, x.bob, kT0 + 5));  // another account's: kept
    EXPECT_THAT(x.names({.deleted = CharacterFilter::Deleted::kOnly}),
                ElementsAre("Churn2", "Churn3", "Other"));
    EXPECT_TRUE(is(x.get(ids[0]), Errc::kNotFound));
    // Removed for good: its name is free, and it cannot be restored.
    EXPECT_TRUE(x.create(x.bob, "churn0"));
    EXPECT_TRUE(is(x.restore(ids[1], {.max_live = 5}), Errc::kNotFound));
}

TEST_P(CharacterStoreTest, DeletingTheAccountDeletesItsCharacters) {
    Fixture x(GetParam());
    auto c = x.create(x.alice, "Aria");
    ASSERT_TRUE(c);
    ASSERT_TRUE(sync<void>(
        [&](auto done) { x.f.store->accounts().delete_account(x.alice, std::move(done)); }));
    EXPECT_TRUE(is(x.get(c->id), Errc::kNotFound));
    EXPECT_TRUE(x.create(x.bob, "Aria"));
}

TEST_P(CharacterStoreTest, CharactersSurviveReopening) {
    Fixture x(GetParam());
    auto c = x.create(x.alice, "Aria");
    ASSERT_TRUE(c);
    x.f.store.reset();
    x.f.open();
    auto again = x.get(c->id);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->name, "Aria");
    EXPECT_EQ(again->position.x, 5200.5F);
}

INSTANTIATE_TEST_SUITE_P(Backends, CharacterStoreTest, backends(), backend_name);

}  // namespace
}  // namespace hearth::store
