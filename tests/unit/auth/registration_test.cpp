// Self-service registrations against a real SQLite store: the per-address and per-door buckets
// (RegistrationThrottle), the password length of [auth], and the order of password hashes (a
// login never waits behind registrations). The hashing executor is a queue the test runs by hand,
// so the order is observed, not timed.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "auth/account_service.hpp"
#include "auth/registration_throttle.hpp"
#include "core/metrics.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "unit/auth/account_fixture.hpp"

namespace hearth::auth {
namespace {

using namespace std::chrono_literals;
using test::wait;
using Clock = RegistrationThrottle::Clock;

TEST(AddressKey, Ipv6CountsByItsSlash64AndMappedIpv4AsIpv4) {
    EXPECT_EQ(address_key("203.0.113.7"), "203.0.113.7");
    EXPECT_EQ(address_key("::ffff:203.0.113.7"), "203.0.113.7");
    EXPECT_EQ(address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
    EXPECT_EQ(address_key("2001:db8:1:2::9"), address_key("2001:db8:1:2:ffff::1"));
    EXPECT_NE(address_key("2001:db8:1:2::9"), address_key("2001:db8:1:3::9"));
    EXPECT_EQ(address_key(std::string(300, 'x')).size(), 64U);  // bounded, whatever it is
}

TEST(RegistrationThrottle, EachAddressHasItsBucket) {
    RegistrationThrottle t({.per_address_per_hour = 2, .per_door_per_minute = 100});
    const auto t0 = Clock::now();
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.1", t0));
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.1", t0));
    EXPECT_FALSE(t.try_take("dracosoft", "198.51.100.1", t0));
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.2", t0));  // another address
    // Rotating addresses inside one /64 does not escape.
    EXPECT_TRUE(t.try_take("dracosoft", "2001:db8::1", t0));
    EXPECT_TRUE(t.try_take("dracosoft", "2001:db8::2", t0));
    EXPECT_FALSE(t.try_take("dracosoft", "2001:db8::3", t0));
    // Half an hour refills one of two.
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.1", t0 + 30min));
    EXPECT_FALSE(t.try_take("dracosoft", "198.51.100.1", t0 + 30min));
}

TEST(RegistrationThrottle, EachDoorHasABucketForEveryAddress) {
    RegistrationThrottle t({.per_address_per_hour = 100, .per_door_per_minute = 2});
    const auto t0 = Clock::now();
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.1", t0));
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.2", t0));
    EXPECT_FALSE(t.try_take("dracosoft", "198.51.100.3", t0));
    EXPECT_TRUE(t.try_take("packet", "198.51.100.3", t0));  // another door
    EXPECT_TRUE(t.try_take("dracosoft", "198.51.100.3", t0 + 30s));
}

TEST(RegistrationThrottle, ZeroClosesRegistration) {
    RegistrationThrottle t({.per_address_per_hour = 0, .per_door_per_minute = 60});
    EXPECT_FALSE(t.try_take("dracosoft", "198.51.100.1", Clock::now()));
}

TEST(RegistrationThrottle, TrackedAddressesAreBounded) {
    RegistrationThrottle t(
        {.per_address_per_hour = 1, .per_door_per_minute = 1000, .max_addresses = 3});
    const auto t0 = Clock::now();
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(t.try_take("d", "198.51.100." + std::to_string(i), t0));
    }
    // Full of addresses whose buckets are empty: a fourth is refused, nothing grows.
    EXPECT_FALSE(t.try_take("d", "198.51.100.9", t0));
    EXPECT_EQ(t.tracked_addresses(), 3U);
    // An hour later every bucket has refilled: they are forgotten to make room.
    EXPECT_TRUE(t.try_take("d", "198.51.100.9", t0 + 1h));
    EXPECT_EQ(t.tracked_addresses(), 1U);
}

/// The account service with a hashing executor that only queues: the test runs the queue.
class Registrations : public test::SqliteAccountsTest {
protected:
    // The service posts only after the constructors have run, so the queue below exists by then.
    Registrations()
        : SqliteAccountsTest(fast(), [this](std::function<void()> work) {
              std::lock_guard lock(mutex_);
              posted_.push_back(std::move(work));
              changed_.notify_all();
          }) {}

    static AuthConfig fast() {
        AuthConfig c = test::fast_hashing();
        c.max_pending_registration_hashes = 3;
        return c;
    }

    std::size_t posted() {
        std::lock_guard lock(mutex_);
        return posted_.size();
    }
    /// Waits until `n` posts are queued (the store answers on its own threads).
    void wait_posted(std::size_t n) {
        std::unique_lock lock(mutex_);
        ASSERT_TRUE(changed_.wait_for(lock, 10s, [&] { return posted_.size() >= n; }))
            << "only " << posted_.size() << " posted";
    }
    /// Runs the oldest post.
    void run_one() {
        std::function<void()> work;
        {
            std::lock_guard lock(mutex_);
            ASSERT_FALSE(posted_.empty());
            work = std::move(posted_.front());
            posted_.pop_front();
        }
        work();
    }
    void run_all() {
        while (posted() > 0) {
            run_one();
        }
    }

    std::future<Result<store::AccountRecord>> register_account(const std::string& name,
                                                               const std::string& password,
                                                               const std::string& ip) {
        auto p = std::make_shared<std::promise<Result<store::AccountRecord>>>();
        auto f = p->get_future();
        accounts_.register_account({name, password}, "dracosoft", ip,
                                   [p](Result<store::AccountRecord> r) { p->set_value(r); });
        return f;
    }
    std::future<Result<store::AccountRecord>> create(const std::string& name,
                                                     const std::string& password) {
        auto p = std::make_shared<std::promise<Result<store::AccountRecord>>>();
        auto f = p->get_future();
        accounts_.create_account({name, password},
                                 [p](Result<store::AccountRecord> r) { p->set_value(r); });
        return f;
    }

    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::function<void()>> posted_;
};

TEST_F(Registrations, ALoginIsHashedBeforeWaitingRegistrations) {
    auto existing = create("lena", "lena-password");
    wait_posted(1);
    run_all();
    ASSERT_TRUE(wait(existing));

    auto r1 = register_account("reg1", "password-1", "198.51.100.1");
    auto r2 = register_account("reg2", "password-2", "198.51.100.2");
    auto r3 = register_account("reg3", "password-3", "198.51.100.3");
    wait_posted(3);
    std::promise<Result<SessionToken>> login;
    auto logged_in = login.get_future();
    accounts_.login("lena", "lena-password", "198.51.100.4", "test",
                    [&login](Result<SessionToken> r) { login.set_value(std::move(r)); });
    wait_posted(4);
    run_one();  // the oldest post runs the most urgent job: the login's
    EXPECT_EQ(logged_in.wait_for(10s), std::future_status::ready);
    EXPECT_NE(r1.wait_for(0s), std::future_status::ready);
    run_all();
    auto session = wait(logged_in);
    ASSERT_TRUE(session) << session.error().message();
    for (auto* f : {&r1, &r2, &r3}) {
        EXPECT_TRUE(wait(*f));
    }
}

TEST_F(Registrations, RegistrationsCannotTakeEveryHashingPlace) {
    std::vector<std::future<Result<store::AccountRecord>>> waiting;
    for (int i = 0; i < 3; ++i) {
        waiting.push_back(register_account("fill" + std::to_string(i), "password-x",
                                           "198.51.100." + std::to_string(i)));
    }
    wait_posted(3);
    // A fourth registration finds its lane full; an operator's account still gets hashed.
    auto refused = register_account("fill9", "password-x", "198.51.100.9");
    EXPECT_EQ(wait(refused).error(), make_error_code(Errc::kUnavailable));
    auto by_operator = create("made-by-op", "password-x");
    wait_posted(4);
    run_all();
    EXPECT_TRUE(wait(by_operator));
    for (auto& f : waiting) {
        EXPECT_TRUE(wait(f));
    }
}

TEST_F(Registrations, AnAddressPastItsBucketIsRefusedAndOperatorsAreNot) {
    AuthConfig c = fast();
    c.registrations_per_address_per_hour = 1;
    accounts_.reload(c);
    auto first = register_account("solo1", "password-x", "198.51.100.1");
    wait_posted(1);
    run_all();
    EXPECT_TRUE(wait(first));
    auto second = register_account("solo2", "password-x", "198.51.100.1");
    EXPECT_EQ(wait(second).error(), make_error_code(Errc::kLimitReached));
    EXPECT_EQ(metrics_
                  .counter("hearth_auth_registrations_total", "",
                           {{"door", "dracosoft"}, {"result", "throttled"}})
                  .value(),
              1U);
    auto by_operator = create("solo3", "password-x");
    wait_posted(1);
    run_all();
    EXPECT_TRUE(wait(by_operator));
}

TEST_F(Registrations, ThePasswordLengthIsTheConfigs) {
    EXPECT_TRUE(accounts_.check_password("1234567").has_value());
    EXPECT_FALSE(accounts_.check_password("12345678").has_value());
    auto short_one = register_account("shorty", "abc", "198.51.100.1");
    EXPECT_EQ(wait(short_one).error(), make_error_code(Errc::kInvalidArgument));

    AuthConfig c = fast();
    c.min_password_length = 1;
    accounts_.reload(c);
    EXPECT_EQ(accounts_.check_password(""), "a password cannot be empty");
    EXPECT_FALSE(accounts_.check_password("x").has_value());
    auto tiny = register_account("tiny", "x", "198.51.100.2");
    wait_posted(1);
    run_all();
    EXPECT_TRUE(wait(tiny));
}

std::future<Result<SessionToken>> login_of(AccountService& accounts, const std::string& user,
                                           const std::string& password, const std::string& ip) {
    auto p = std::make_shared<std::promise<Result<SessionToken>>>();
    auto f = p->get_future();
    accounts.login(user, password, ip, "test",
                   [p](Result<SessionToken> r) { p->set_value(std::move(r)); });
    return f;
}

TEST_F(Registrations, ConcurrentGuessesAreCountedBeforeTheirHashes) {
    // Five free failures: of ten guesses sent at once, five are hashed, five refused at once.
    std::vector<std::future<Result<SessionToken>>> guesses;
    for (int i = 0; i < 10; ++i) {
        guesses.push_back(login_of(accounts_, "victim", "guess-" + std::to_string(i),
                                   "198.51.100." + std::to_string(i)));
    }
    wait_posted(5);
    std::size_t refused = 0;
    for (auto& g : guesses) {
        if (g.wait_for(0s) == std::future_status::ready) {
            EXPECT_EQ(g.get().error(), make_error_code(Errc::kLimitReached));
            ++refused;
        }
    }
    EXPECT_EQ(refused, 5U);
    EXPECT_EQ(posted(), 5U);
    run_all();
}

TEST_F(Registrations, Ipv6GuessersCountByTheirSlash64) {
    std::vector<std::future<Result<SessionToken>>> guesses;
    for (int i = 0; i < 6; ++i) {  // five free failures, and the one after them
        guesses.push_back(login_of(accounts_, "user" + std::to_string(i), "wrong-password",
                                   "2001:db8:7:7::" + std::to_string(i + 1)));
        wait_posted(1);
        run_all();
        EXPECT_EQ(wait(guesses.back()).error(), make_error_code(Errc::kUnauthenticated));
    }
    // A seventh address of the same /64, a seventh username: the address's delay applies.
    auto sixth = login_of(accounts_, "user9", "wrong-password", "2001:db8:7:7::99");
    EXPECT_EQ(wait(sixth).error(), make_error_code(Errc::kLimitReached));
    // Another /64 is not affected.
    auto other = login_of(accounts_, "user9", "wrong-password", "2001:db8:7:8::1");
    wait_posted(1);
    run_all();
    EXPECT_EQ(wait(other).error(), make_error_code(Errc::kUnauthenticated));
}

TEST_F(Registrations, AnImpossibleUsernameIsRefusedLikeAnyWrongOne) {
    auto huge = login_of(accounts_, std::string(1 << 20, 'x'), "whatever-password", "198.51.100.1");
    wait_posted(1);  // hashed against the dummy, as an unknown name is
    run_all();
    EXPECT_EQ(wait(huge).error(), make_error_code(Errc::kUnauthenticated));
}

TEST_F(Registrations, ANewPasswordEndsTheAccountsSessions) {
    auto creating = create("sam", "sam-password-1");
    wait_posted(1);
    run_all();
    auto made = wait(creating);
    ASSERT_TRUE(made);
    std::vector<std::string> sessions;
    for (int i = 0; i < 2; ++i) {
        auto s = login_of(accounts_, "sam", "sam-password-1", "198.51.100.1");
        wait_posted(1);
        run_all();
        auto r = wait(s);
        ASSERT_TRUE(r);
        sessions.push_back(r->token);
    }
    IssuedToken key;
    {
        std::promise<Result<IssuedToken>> p;
        auto f = p.get_future();
        accounts_.issue_token({.account_id = made->id, .name = "bot", .scopes = {"native"}},
                              [&p](Result<IssuedToken> r) { p.set_value(std::move(r)); });
        auto r = wait(f);
        ASSERT_TRUE(r);
        key = std::move(*r);
    }
    auto validate = [this](const std::string& token) {
        std::promise<Result<Principal>> p;
        auto f = p.get_future();
        accounts_.validate(token, [&p](Result<Principal> r) { p.set_value(std::move(r)); });
        return wait(f);
    };
    ASSERT_TRUE(validate(sessions[0]));

    std::promise<Result<store::AccountRecord>> changed;
    auto changed_f = changed.get_future();
    accounts_.change_account(
        made->id, {.password = "sam-password-2"},
        [&changed](Result<store::AccountRecord> r) { changed.set_value(std::move(r)); });
    wait_posted(1);
    run_all();
    ASSERT_TRUE(wait(changed_f));
    for (const auto& s : sessions) {
        EXPECT_EQ(validate(s).error(), make_error_code(Errc::kUnauthenticated));
    }
    EXPECT_TRUE(validate(key.token));  // an API key is its own credential
}

}  // namespace
}  // namespace hearth::auth
