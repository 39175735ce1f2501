// Accounts, tokens and the audit log on both backends (a real SQLite file, a real PostgreSQL
// server): the contract of include/hearth/account_store.hpp, so that both behave the same.

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <hearth/account_store.hpp>

#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class AccountStoreTest : public ::testing::TestWithParam<std::string> {};

TimePoint at_ms(std::int64_t ms) {
    return TimePoint(std::chrono::milliseconds(ms));
}

AccountRecord account(std::string name, std::vector<std::string> roles = {"player"},
                      std::optional<std::string> email = std::nullopt) {
    AccountRecord a;
    a.username = std::move(name);
    a.email = std::move(email);
    a.password_hash = "$argon2id$fake";
    a.roles = std::move(roles);
    a.created_at = at_ms(1'700'000'000'123);
    return a;
}

Result<AccountRecord> create(AccountStore& s, AccountRecord a) {
    return sync<AccountRecord>([&](auto done) { s.create_account(std::move(a), std::move(done)); });
}
Result<AccountRecord> by_name(AccountStore& s, std::string name) {
    return sync<AccountRecord>(
        [&](auto done) { s.account_by_name(std::move(name), std::move(done)); });
}
Result<AccountRecord> by_id(AccountStore& s, std::uint64_t id) {
    return sync<AccountRecord>([&](auto done) { s.account_by_id(id, std::move(done)); });
}
Result<std::vector<AccountRecord>> list(AccountStore& s, AccountFilter f) {
    return sync<std::vector<AccountRecord>>(
        [&](auto done) { s.list_accounts(std::move(f), std::move(done)); });
}
Result<AccountRecord> update(AccountStore& s, std::uint64_t id, AccountPatch p) {
    return sync<AccountRecord>(
        [&](auto done) { s.update_account(id, std::move(p), std::move(done)); });
}
Result<TokenRecord> insert(AccountStore& s, TokenRecord t) {
    return sync<TokenRecord>([&](auto done) { s.insert_token(std::move(t), std::move(done)); });
}
Result<std::vector<TokenRecord>> tokens(AccountStore& s, TokenFilter f) {
    return sync<std::vector<TokenRecord>>(
        [&](auto done) { s.list_tokens(std::move(f), std::move(done)); });
}

std::vector<std::string> names(const Result<std::vector<AccountRecord>>& r) {
    std::vector<std::string> out;
    if (!r) {
        ADD_FAILURE() << r.error().message();
        return out;
    }
    for (const auto& a : *r) {
        out.push_back(a.username);
    }
    return out;
}

TokenRecord token(std::uint64_t account_id, std::string digest,
                  TokenKindCode kind = TokenKindCode::kApiKey) {
    TokenRecord t;
    t.account_id = account_id;
    t.kind = kind;
    t.name = "key";
    t.digest = std::move(digest);
    t.scopes = {"native", "admin"};
    t.created_at = at_ms(1'700'000'000'000);
    return t;
}

bool is(const auto& result, Errc e) {
    return !result && result.error() == make_error_code(e);
}

TEST_P(AccountStoreTest, CreateReadBackAndUniqueCaseInsensitiveNames) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto alice = create(s, account("Alice", {"admin", "player"}, "Alice@Example.org"));
    ASSERT_TRUE(alice) << alice.error().message();
    EXPECT_GT(alice->id, 0U);

    auto read = by_name(s, "ALICE");
    ASSERT_TRUE(read);
    EXPECT_EQ(read->id, alice->id);
    EXPECT_EQ(read->username, "Alice");
    EXPECT_EQ(read->email, "Alice@Example.org");
    EXPECT_EQ(read->password_hash, "$argon2id$fake");
    EXPECT_THAT(read->roles, ElementsAre("admin", "player"));
    EXPECT_FALSE(read->disabled);
    EXPECT_FALSE(read->guest);
    EXPECT_EQ(read->created_at, at_ms(1'700'000'000'123));
    EXPECT_FALSE(read->last_login_at);
    EXPECT_EQ(by_id(s, alice->id)->username, "Alice");

    EXPECT_TRUE(is(create(s, account("alice")), Errc::kAlreadyExists));
    EXPECT_TRUE(
        is(create(s, account("bob", {"player"}, "alice@example.ORG")), Errc::kAlreadyExists));
    EXPECT_TRUE(create(s, account("bob")));  // the failed attempts changed nothing
    EXPECT_TRUE(is(by_name(s, "nobody"), Errc::kNotFound));
    EXPECT_TRUE(is(by_id(s, 999'999), Errc::kNotFound));
}

TEST_P(AccountStoreTest, ExternalIdsAndGuestsAreStored) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto a = account("ext-user");
    a.external_id = "ba_123";
    a.password_hash = "";
    a.guest = true;
    ASSERT_TRUE(create(s, a));
    auto found = sync<AccountRecord>(
        [&](auto done) { s.account_by_external_id("ba_123", std::move(done)); });
    ASSERT_TRUE(found);
    EXPECT_EQ(found->username, "ext-user");
    EXPECT_TRUE(found->guest);
    EXPECT_EQ(found->password_hash, "");
    EXPECT_TRUE(is(create(s, a), Errc::kAlreadyExists));  // same external id (and name)
}

TEST_P(AccountStoreTest, ListFiltersAndPages) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    ASSERT_TRUE(create(s, account("amy", {"admin"})));
    ASSERT_TRUE(create(s, account("Andy", {"moderator", "player"})));
    ASSERT_TRUE(create(s, account("anna_", {"player"})));
    ASSERT_TRUE(create(s, account("bert", {"player", "admin"})));
    auto carl = create(s, account("carl"));
    ASSERT_TRUE(carl);
    ASSERT_TRUE(update(s, carl->id, AccountPatch{.disabled = true}));

    EXPECT_THAT(names(list(s, {})), ElementsAre("amy", "Andy", "anna_", "bert", "carl"));
    EXPECT_THAT(names(list(s, {.role = "admin"})), ElementsAre("amy", "bert"));
    EXPECT_THAT(names(list(s, {.role = "play"})), IsEmpty());  // whole roles only
    EXPECT_THAT(names(list(s, {.disabled = true})), ElementsAre("carl"));
    EXPECT_THAT(names(list(s, {.disabled = false, .role = "player"})),
                ElementsAre("Andy", "anna_", "bert"));
    EXPECT_THAT(names(list(s, {.username_prefix = "AN"})), ElementsAre("Andy", "anna_"));
    EXPECT_THAT(names(list(s, {.username_prefix = "anna_"})), ElementsAre("anna_"));
    EXPECT_THAT(names(list(s, {.username_prefix = "a%"})), IsEmpty());  // no wildcards

    auto first = list(s, {.limit = 2});
    ASSERT_TRUE(first);
    EXPECT_THAT(names(first), ElementsAre("amy", "Andy"));
    EXPECT_THAT(names(list(s, {.after_id = first->back().id, .limit = 2})),
                ElementsAre("anna_", "bert"));
}

TEST_P(AccountStoreTest, UpdateAppliesOnlyTheGivenFields) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto a = create(s, account("dora", {"player"}, "dora@example.org"));
    auto other = create(s, account("eve", {"player"}, "eve@example.org"));
    ASSERT_TRUE(a && other);

    auto changed = update(s, a->id,
                          AccountPatch{.password_hash = std::string("$argon2id$new"),
                                       .roles = std::vector<std::string>{"moderator"},
                                       .last_login_at = at_ms(1'800'000'000'456)});
    ASSERT_TRUE(changed);
    EXPECT_EQ(changed->password_hash, "$argon2id$new");
    EXPECT_THAT(changed->roles, ElementsAre("moderator"));
    EXPECT_EQ(changed->last_login_at, at_ms(1'800'000'000'456));
    EXPECT_EQ(changed->email, "dora@example.org");  // untouched
    EXPECT_FALSE(changed->disabled);
    auto read = by_id(s, a->id);
    EXPECT_EQ(read->password_hash, "$argon2id$new");
    EXPECT_EQ(read->last_login_at, at_ms(1'800'000'000'456));

    // Clearing the email frees it; taking another's is refused.
    auto cleared = update(s, a->id, AccountPatch{.email = std::optional<std::string>()});
    ASSERT_TRUE(cleared);
    EXPECT_FALSE(cleared->email);
    EXPECT_TRUE(
        is(update(s, a->id, AccountPatch{.email = std::optional<std::string>("EVE@example.org")}),
           Errc::kAlreadyExists));
    EXPECT_TRUE(is(update(s, 999'999, AccountPatch{.disabled = true}), Errc::kNotFound));
}

TEST_P(AccountStoreTest, TokensByDigestWithTheirAccount) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto a = create(s, account("finn", {"admin"}));
    ASSERT_TRUE(a);
    auto t = token(a->id, std::string(64, 'a'));
    t.expires_at = at_ms(1'900'000'000'000);
    auto inserted = insert(s, t);
    ASSERT_TRUE(inserted);
    EXPECT_GT(inserted->id, 0U);

    auto found = sync<TokenLookup>(
        [&](auto done) { s.token_by_digest(std::string(64, 'a'), std::move(done)); });
    ASSERT_TRUE(found);
    EXPECT_EQ(found->token.id, inserted->id);
    EXPECT_EQ(found->token.kind, TokenKindCode::kApiKey);
    EXPECT_THAT(found->token.scopes, ElementsAre("native", "admin"));
    EXPECT_EQ(found->token.expires_at, at_ms(1'900'000'000'000));
    EXPECT_FALSE(found->token.revoked_at);
    EXPECT_EQ(found->account.username, "finn");
    EXPECT_THAT(found->account.roles, ElementsAre("admin"));

    EXPECT_TRUE(is(insert(s, t), Errc::kAlreadyExists));  // the same digest
    EXPECT_TRUE(is(sync<TokenLookup>([&](auto done) {
                       s.token_by_digest(std::string(64, 'b'), std::move(done));
                   }),
                   Errc::kNotFound));
    auto by = sync<TokenRecord>([&](auto done) { s.token_by_id(inserted->id, std::move(done)); });
    ASSERT_TRUE(by);
    EXPECT_EQ(by->digest, std::string(64, 'a'));
}

TEST_P(AccountStoreTest, RevokeListPurgeAndCascade) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto a = create(s, account("gus"));
    auto b = create(s, account("hal"));
    ASSERT_TRUE(a && b);
    auto t1 = insert(s, token(a->id, "d1"));
    auto t2 = insert(s, token(a->id, "d2", TokenKindCode::kSession));
    auto t3 = insert(s, token(b->id, "d3"));
    ASSERT_TRUE(t1 && t2 && t3);

    auto revoked = sync<TokenRecord>(
        [&](auto done) { s.revoke_token(t1->id, at_ms(1'000'000), std::move(done)); });
    ASSERT_TRUE(revoked);
    EXPECT_EQ(revoked->revoked_at, at_ms(1'000'000));
    // A second revocation keeps the first time.
    auto again = sync<TokenRecord>(
        [&](auto done) { s.revoke_token(t1->id, at_ms(2'000'000), std::move(done)); });
    EXPECT_EQ(again->revoked_at, at_ms(1'000'000));
    EXPECT_TRUE(is(
        sync<TokenRecord>([&](auto done) { s.revoke_token(999'999, at_ms(1), std::move(done)); }),
        Errc::kNotFound));

    auto ids = [](const Result<std::vector<TokenRecord>>& r) {
        std::vector<std::uint64_t> out;
        for (const auto& t : *r) {
            out.push_back(t.id);
        }
        return out;
    };
    EXPECT_THAT(ids(tokens(s, {})), ElementsAre(t2->id, t3->id));
    EXPECT_THAT(ids(tokens(s, {.include_revoked = true})), ElementsAre(t1->id, t2->id, t3->id));
    EXPECT_THAT(ids(tokens(s, {.account_id = a->id, .include_revoked = true})),
                ElementsAre(t1->id, t2->id));
    EXPECT_THAT(ids(tokens(s, {.kind = TokenKindCode::kSession})), ElementsAre(t2->id));
    EXPECT_THAT(ids(tokens(s, {.include_revoked = true, .after_id = t1->id, .limit = 1})),
                ElementsAre(t2->id));

    // Purge: revoked before the cut-off goes; the rest stays.
    auto purged =
        sync<std::uint64_t>([&](auto done) { s.purge_tokens(at_ms(1'500'000), std::move(done)); });
    EXPECT_EQ(*purged, 1U);
    EXPECT_THAT(ids(tokens(s, {.include_revoked = true})), ElementsAre(t2->id, t3->id));

    // Deleting an account deletes its tokens.
    EXPECT_TRUE(sync<void>([&](auto done) { s.delete_account(a->id, std::move(done)); }));
    EXPECT_THAT(ids(tokens(s, {.include_revoked = true})), ElementsAre(t3->id));
    EXPECT_TRUE(is(sync<void>([&](auto done) { s.delete_account(a->id, std::move(done)); }),
                   Errc::kNotFound));
    EXPECT_TRUE(is(by_id(s, a->id), Errc::kNotFound));
}

TEST_P(AccountStoreTest, AuditIsNewestFirstWithFilters) {
    BackendStore f(GetParam());
    auto& s = f.store->accounts();
    auto add = [&](std::string actor, std::string action, std::int64_t ms) {
        AuditEntry e;
        e.at = at_ms(ms);
        e.actor = std::move(actor);
        e.action = std::move(action);
        e.target = "account:x";
        e.peer = "127.0.0.1:5000";
        e.detail = R"({"k":1})";
        auto r =
            sync<AuditEntry>([&](auto done) { s.append_audit(std::move(e), std::move(done)); });
        EXPECT_TRUE(r);
        return r ? r->id : 0;
    };
    const auto first = add("cli", "account.create", 1000);
    add("account:root", "account.disable", 2000);
    const auto third = add("cli", "token.revoke", 3000);
    auto all = sync<std::vector<AuditEntry>>([&](auto done) { s.list_audit({}, std::move(done)); });
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 3U);
    EXPECT_EQ(all->front().id, third);
    EXPECT_EQ(all->front().action, "token.revoke");
    EXPECT_EQ(all->front().at, at_ms(3000));
    EXPECT_EQ(all->front().peer, "127.0.0.1:5000");
    EXPECT_EQ(all->front().detail, R"({"k":1})");
    EXPECT_EQ(all->back().id, first);

    auto by_cli = sync<std::vector<AuditEntry>>(
        [&](auto done) { s.list_audit({.actor = "cli"}, std::move(done)); });
    EXPECT_EQ(by_cli->size(), 2U);
    auto by_action = sync<std::vector<AuditEntry>>(
        [&](auto done) { s.list_audit({.action = "account.disable"}, std::move(done)); });
    EXPECT_EQ(by_action->size(), 1U);
    auto page = sync<std::vector<AuditEntry>>(
        [&](auto done) { s.list_audit({.before_id = third, .limit = 1}, std::move(done)); });
    ASSERT_EQ(page->size(), 1U);
    EXPECT_EQ(page->front().action, "account.disable");
}

TEST_P(AccountStoreTest, AccountsSurviveReopening) {
    BackendStore f(GetParam());
    ASSERT_TRUE(create(f.store->accounts(), account("ivy")));
    f.store.reset();
    f.open();
    EXPECT_TRUE(by_name(f.store->accounts(), "ivy"));
}

INSTANTIATE_TEST_SUITE_P(Backends, AccountStoreTest, backends(), backend_name);

}  // namespace
}  // namespace hearth::store
