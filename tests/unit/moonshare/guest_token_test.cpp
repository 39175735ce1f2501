// Guest tokens of the account system (auth::AccountService::issue_guest_token), as Moonshare uses
// them, against a real SQLite store: no password, no account per subject, the subject carried by
// the principal, stored only as a digest, ended tokens purged.

#include <chrono>
#include <future>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "auth/account_service.hpp"
#include "auth/secrets.hpp"
#include "core/metrics.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "unit/auth/account_fixture.hpp"

namespace hearth::auth {
namespace {

using namespace std::chrono_literals;
using test::wait;

class GuestTokens : public test::SqliteAccountsTest {
protected:
    Result<GuestToken> issue(std::string realm, std::string subject,
                             std::chrono::seconds ttl = 60s) {
        std::promise<Result<GuestToken>> p;
        auto f = p.get_future();
        accounts_.issue_guest_token(std::move(realm), std::move(subject), ttl,
                                    GuestTokenFormat::kHex128,
                                    [&p](Result<GuestToken> r) { p.set_value(std::move(r)); });
        return wait(f);
    }

    Result<Principal> validate(std::string token) {
        std::promise<Result<Principal>> p;
        auto f = p.get_future();
        accounts_.validate(std::move(token),
                           [&p](Result<Principal> r) { p.set_value(std::move(r)); });
        return wait(f);
    }
};

TEST_F(GuestTokens, IssueAndValidate) {
    auto a = issue("moonshare", "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_TRUE(std::regex_match(a->token, std::regex("[0-9a-f]{32}")));
    EXPECT_EQ(a->record.digest, token_digest(a->token));  // only the digest is kept
    EXPECT_EQ(a->record.kind, store::TokenKindCode::kGuest);
    auto p = validate(a->token);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, TokenKind::kGuest);
    EXPECT_EQ(p->realm, "moonshare");  // valid at Moonshare's door alone (access_policy.hpp)
    EXPECT_EQ(p->username, "guest:moonshare");
    EXPECT_EQ(guest_account_name("moonshare"), "guest:moonshare");
    EXPECT_EQ(p->subject, "3f2504e0-4f89-11d3-9a0c-0305e82c3301");
    EXPECT_TRUE(p->roles.empty());
    // Every subject shares the realm's one guest account: no account per login.
    auto b = issue("moonshare", "another subject");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->record.account_id, a->record.account_id);
    EXPECT_EQ(validate(b->token)->subject, "another subject");
    // The guest account cannot log in with a password.
    std::promise<Result<SessionToken>> login;
    auto lf = login.get_future();
    accounts_.login("guest:moonshare", "whatever-password", "127.0.0.1", "test",
                    [&login](Result<SessionToken> r) { login.set_value(std::move(r)); });
    EXPECT_EQ(wait(lf).error(), make_error_code(Errc::kUnauthenticated));
}

TEST_F(GuestTokens, BadArguments) {
    EXPECT_EQ(issue("", "x").error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_EQ(issue("bad realm", "x").error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_EQ(issue("moonshare", "").error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_EQ(issue("moonshare", std::string(257, 'x')).error(),
              make_error_code(Errc::kInvalidArgument));
    EXPECT_EQ(issue("moonshare", "x", 0s).error(), make_error_code(Errc::kInvalidArgument));
}

TEST_F(GuestTokens, EndedTokensArePurgedWhenGuestTokensAreIssued) {
    auto first = issue("moonshare", "old");
    ASSERT_TRUE(first);
    // A token that ended two days ago, written straight to the store.
    store::TokenRecord old;
    old.account_id = first->record.account_id;
    old.kind = store::TokenKindCode::kGuest;
    old.name = "ended";
    old.digest = token_digest("ended-token");
    old.created_at = std::chrono::system_clock::now() - 72h;
    old.expires_at = std::chrono::system_clock::now() - 48h;
    std::promise<Result<store::TokenRecord>> ins;
    auto insf = ins.get_future();
    store_->accounts().insert_token(
        old, [&ins](Result<store::TokenRecord> r) { ins.set_value(std::move(r)); });
    ASSERT_TRUE(wait(insf));
    // The first issue started a purge less than a minute ago; a fresh service purges at once.
    AccountService fresh(store_->accounts(), test::run_inline, metrics_, test::fast_hashing());
    std::promise<Result<GuestToken>> p;
    auto f = p.get_future();
    fresh.issue_guest_token("moonshare", "new", 60s, GuestTokenFormat::kHex128,
                            [&p](Result<GuestToken> r) { p.set_value(std::move(r)); });
    ASSERT_TRUE(wait(f));
    // The purge was queued before the insert, and the store's writes run in order.
    std::promise<Result<store::TokenLookup>> look;
    auto lookf = look.get_future();
    store_->accounts().token_by_digest(
        token_digest("ended-token"),
        [&look](Result<store::TokenLookup> r) { look.set_value(std::move(r)); });
    EXPECT_EQ(wait(lookf).error(), make_error_code(Errc::kNotFound));
    // The live guest token is still there.
    EXPECT_TRUE(validate(first->token));
}

}  // namespace
}  // namespace hearth::auth
