// Logins as events on a real event bus, against a real SQLite store: password logins, a
// registration that logs in and a connection's first token check publish login.ok or
// login.failed (never a secret); a token checked per request publishes nothing; failures are
// rate-limited and what is left out is counted.

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "auth/account_service.hpp"
#include "auth/secrets.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "unit/auth/account_fixture.hpp"

namespace hearth::auth {
namespace {

using namespace std::chrono_literals;
using core::EventKind;
using test::wait;

const AccessPolicy kNativeDoor{
    .door = "native", .api_key_scope = "native", .session_roles = {"player"}};

class LoginEvents : public test::SqliteAccountsTest {
protected:
    LoginEvents() { accounts_.set_events(&bus_); }
    // The bus is a member here, so it goes before the service: operations still in flight must
    // not publish to it.
    ~LoginEvents() override { accounts_.set_events(nullptr); }

    store::AccountRecord create(const std::string& name, const std::string& password) {
        std::promise<Result<store::AccountRecord>> p;
        auto f = p.get_future();
        accounts_.create_account({name, password},
                                 [&p](Result<store::AccountRecord> r) { p.set_value(r); });
        auto r = wait(f);
        if (!r) {
            throw std::runtime_error("create: " + r.error().message());
        }
        return *r;
    }

    Result<SessionToken> login(const std::string& user, const std::string& password,
                               const std::string& ip, const std::string& door = "dracosoft") {
        std::promise<Result<SessionToken>> p;
        auto f = p.get_future();
        accounts_.login(user, password, ip, door,
                        [&p](Result<SessionToken> r) { p.set_value(std::move(r)); });
        return wait(f);
    }

    AccessDecision authorize_login(const std::string& token, const AccessPolicy& policy,
                                   const std::string& peer) {
        std::promise<AccessDecision> p;
        auto f = p.get_future();
        accounts_.authorize_login(token, policy, peer,
                                  [&p](AccessDecision d) { p.set_value(std::move(d)); });
        return wait(f);
    }

    AccessDecision authorize(const std::string& token, const AccessPolicy& policy) {
        std::promise<AccessDecision> p;
        auto f = p.get_future();
        accounts_.authorize(token, policy, "198.51.100.1:1000",
                            [&p](AccessDecision d) { p.set_value(std::move(d)); });
        return wait(f);
    }

    /// The history: each event is published before its operation answers, so no wait is needed.
    std::vector<core::Event> events(EventKind kind) const {
        return bus_.recent(10'000, 0, core::EventFilter{.kind = kind});
    }

    /// No field of any event holds `secret`.
    void expect_nowhere(const std::string& secret) const {
        for (const auto& e : bus_.recent(10'000)) {
            for (const auto* field : {&e.module, &e.subject, &e.detail, &e.principal}) {
                EXPECT_EQ(field->find(secret), std::string::npos)
                    << core::to_string(e.kind) << ": " << *field;
            }
        }
    }

    std::uint64_t suppressed() {
        return metrics_.counter("hearth_auth_login_events_suppressed_total", "").value();
    }

    core::EventBus bus_{10'000};
};

TEST_F(LoginEvents, AGoodPasswordIsLoginOkForTheAccount) {
    const auto alice = create("alice", "alice-password-1");
    auto session = login("Alice", "alice-password-1", "198.51.100.7");
    ASSERT_TRUE(session) << session.error().message();
    const auto ok = events(EventKind::kLoginSucceeded);
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].module, "dracosoft");
    EXPECT_EQ(ok[0].subject, "198.51.100.7");
    EXPECT_EQ(ok[0].principal, "account:" + std::to_string(alice.id));
    EXPECT_NE(ok[0].detail.find("alice"), std::string::npos) << ok[0].detail;
    EXPECT_NE(ok[0].detail.find("session token " + std::to_string(session->principal.token_id)),
              std::string::npos)
        << ok[0].detail;
    EXPECT_TRUE(events(EventKind::kLoginFailed).empty());
    expect_nowhere("alice-password-1");
    expect_nowhere(session->token);
}

TEST_F(LoginEvents, AFailedPasswordLoginSaysWhyAndWhoWasClaimedButNoSecret) {
    create("bob", "bob-password-1");
    EXPECT_EQ(login("bob", "not-bobs-password", "198.51.100.8").error(),
              make_error_code(Errc::kUnauthenticated));
    EXPECT_EQ(login("nobody", "nobodys-password", "198.51.100.9", "operator").error(),
              make_error_code(Errc::kUnauthenticated));
    // A name no account can have, longer than the bound: cut, still said.
    const std::string huge(1000, 'u');
    EXPECT_FALSE(login(huge, "huge-password-1", "198.51.100.10"));

    const auto failed = events(EventKind::kLoginFailed);
    ASSERT_EQ(failed.size(), 3u);
    EXPECT_EQ(failed[0].module, "dracosoft");
    EXPECT_EQ(failed[0].subject, "198.51.100.8");
    EXPECT_EQ(failed[0].principal, "bob");
    EXPECT_EQ(failed[0].detail, "bad_password");
    EXPECT_EQ(failed[1].module, "operator");
    EXPECT_EQ(failed[1].principal, "nobody");
    EXPECT_EQ(failed[1].detail, "unknown_user");
    EXPECT_EQ(failed[2].principal, std::string(kMaxLoginEventNameBytes, 'u'));
    EXPECT_EQ(failed[2].detail, "unknown_user");
    EXPECT_TRUE(events(EventKind::kLoginSucceeded).empty());
    for (const char* secret : {"not-bobs-password", "nobodys-password", "huge-password-1"}) {
        expect_nowhere(secret);
    }
}

TEST_F(LoginEvents, ADisabledAccountAndAThrottledLoginAreFailuresWithTheirReason) {
    const auto carol = create("carol", "carol-password-1");
    std::promise<Result<store::AccountRecord>> changed;
    auto c = changed.get_future();
    accounts_.change_account(carol.id, {.disabled = true},
                             [&changed](Result<store::AccountRecord> r) { changed.set_value(r); });
    ASSERT_TRUE(wait(c));
    EXPECT_EQ(login("carol", "carol-password-1", "198.51.100.11").error(),
              make_error_code(Errc::kNotAllowed));
    // The free failures of one username and the first counted one, then the throttle answers
    // before any hash.
    for (int i = 0; i < 6; ++i) {
        EXPECT_FALSE(login("dave", "guess-" + std::to_string(i), "198.51.100.12"));
    }
    EXPECT_EQ(login("dave", "guess-x", "198.51.100.13").error(),
              make_error_code(Errc::kLimitReached));
    const auto failed = events(EventKind::kLoginFailed);
    ASSERT_EQ(failed.size(), 8u);
    EXPECT_EQ(failed[0].principal, "carol");
    EXPECT_EQ(failed[0].detail, "account_disabled");
    EXPECT_EQ(failed[6].detail, "unknown_user");  // dave has no account
    EXPECT_EQ(failed[7].principal, "dave");
    EXPECT_EQ(failed[7].subject, "198.51.100.13");
    EXPECT_EQ(failed[7].detail, "throttled: too many failed logins for this username");
}

TEST_F(LoginEvents, AFloodOfFailuresIsBoundedAndWhatIsLeftOutIsCounted) {
    constexpr int kAttempts = 400;
    const auto started = std::chrono::steady_clock::now();
    // One address: past its free failures every attempt is throttled at once, without a hash.
    for (int i = 0; i < kAttempts; ++i) {
        EXPECT_FALSE(login("user" + std::to_string(i), "guess", "203.0.113.66"));
    }
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const auto published = events(EventKind::kLoginFailed).size();
    // Every failure is either an event or counted as left out.
    EXPECT_EQ(published + suppressed(), static_cast<std::uint64_t>(kAttempts));
    // A burst of 100, then 20 a second (the bound grows with the time the test took, so a slow
    // machine cannot make it fail).
    EXPECT_LE(static_cast<double>(published), 100.0 + 20.0 * elapsed_s + 1.0);
    EXPECT_GE(published, 100u);
}

TEST_F(LoginEvents, AConnectionsFirstTokenCheckIsALoginAndAPerRequestCheckIsNot) {
    const auto erin = create("erin", "erin-password-1");
    auto session = login("erin", "erin-password-1", "198.51.100.20");
    ASSERT_TRUE(session);
    const auto before = bus_.next_seq();

    const auto d = authorize_login(session->token, kNativeDoor, "198.51.100.21:5000");
    ASSERT_TRUE(d.accepted());
    auto ok = bus_.recent(100, before - 1, {.kind = EventKind::kLoginSucceeded});
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].module, "native");
    EXPECT_EQ(ok[0].subject, "198.51.100.21:5000");
    EXPECT_EQ(ok[0].principal, "token:" + std::to_string(session->principal.token_id));
    EXPECT_NE(ok[0].detail.find("account " + std::to_string(erin.id)), std::string::npos)
        << ok[0].detail;

    // The same token on every request of an API: no event.
    const auto after_login = bus_.next_seq();
    EXPECT_TRUE(authorize(session->token, kNativeDoor).accepted());
    EXPECT_FALSE(authorize("not-a-token", kNativeDoor).accepted());
    EXPECT_EQ(bus_.next_seq(), after_login);
    expect_nowhere(session->token);
}

TEST_F(LoginEvents, RefusedTokensSayWhyWithoutTheToken) {
    const auto frank = create("frank", "frank-password-1");
    // An API key without the door's scope.
    std::promise<Result<IssuedToken>> issued;
    auto i = issued.get_future();
    accounts_.issue_token({.account_id = frank.id, .name = "bot", .scopes = {"homestead"}},
                          [&issued](Result<IssuedToken> r) { issued.set_value(std::move(r)); });
    auto key = wait(i);
    ASSERT_TRUE(key);
    // An expired session, straight in the store.
    const std::string expired_token = new_token();
    store::TokenRecord expired;
    expired.account_id = frank.id;
    expired.kind = store::TokenKindCode::kSession;
    expired.name = "session";
    expired.digest = token_digest(expired_token);
    expired.created_at = std::chrono::system_clock::now() - 2h;
    expired.expires_at = std::chrono::system_clock::now() - 1h;
    std::promise<Result<store::TokenRecord>> inserted;
    auto in = inserted.get_future();
    store_->accounts().insert_token(
        expired, [&inserted](Result<store::TokenRecord> r) { inserted.set_value(std::move(r)); });
    ASSERT_TRUE(wait(in));

    const std::string unknown_token = new_token();
    EXPECT_EQ(authorize_login(unknown_token, kNativeDoor, "p1").refusal, Refusal::kInvalidToken);
    EXPECT_EQ(authorize_login(expired_token, kNativeDoor, "p2").refusal, Refusal::kInvalidToken);
    EXPECT_EQ(authorize_login(key->token, kNativeDoor, "p3").refusal, Refusal::kMissingScope);
    EXPECT_EQ(authorize_login("", kNativeDoor, "p4").refusal, Refusal::kMissingToken);

    const auto failed = events(EventKind::kLoginFailed);
    ASSERT_EQ(failed.size(), 4u);
    EXPECT_EQ(failed[0].detail, "invalid_token: unknown");
    EXPECT_EQ(failed[1].detail, "invalid_token: expired");
    EXPECT_EQ(failed[2].detail, "missing_scope: API key " + std::to_string(key->record.id) +
                                    " of account " + std::to_string(frank.id) + " (frank)");
    EXPECT_EQ(failed[3].detail, "missing_token");
    for (std::size_t n = 0; n < failed.size(); ++n) {
        EXPECT_EQ(failed[n].module, "native");
        EXPECT_EQ(failed[n].subject, "p" + std::to_string(n + 1));
        EXPECT_EQ(failed[n].principal, "");  // a token claims no username
    }
    for (const auto& secret : {unknown_token, expired_token, key->token}) {
        expect_nowhere(secret);
    }
}

TEST_F(LoginEvents, ARegistrationThatLogsInIsALogin) {
    const auto gina = create("gina", "gina-password-1");
    std::promise<Result<SessionToken>> p;
    auto f = p.get_future();
    accounts_.open_session(gina, "dracosoft", "198.51.100.30",
                           [&p](Result<SessionToken> r) { p.set_value(std::move(r)); });
    ASSERT_TRUE(wait(f));
    const auto ok = events(EventKind::kLoginSucceeded);
    ASSERT_EQ(ok.size(), 1u);
    EXPECT_EQ(ok[0].module, "dracosoft");
    EXPECT_EQ(ok[0].subject, "198.51.100.30");
    EXPECT_EQ(ok[0].principal, "account:" + std::to_string(gina.id));
}

TEST_F(LoginEvents, WithoutABusLoginsWorkAndNothingIsPublished) {
    accounts_.set_events(nullptr);
    create("hal", "hal-password-1");
    EXPECT_TRUE(login("hal", "hal-password-1", "198.51.100.40"));
    EXPECT_FALSE(login("hal", "wrong-password", "198.51.100.40"));
    EXPECT_EQ(bus_.next_seq(), 1u);
    EXPECT_EQ(suppressed(), 0u);
}

}  // namespace
}  // namespace hearth::auth
