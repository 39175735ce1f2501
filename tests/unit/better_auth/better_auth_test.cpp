// The better-auth bridge (src/auth/better_auth.hpp) against a real PostgreSQL server started by
// the tests (unit/store/postgres_server.hpp) holding better-auth's tables, with a real SQLite
// store for the Hearth accounts: first and second sight of a user, expired and unknown tokens,
// the seed project's variant through config, username collisions, disabled accounts, the
// database going away and coming back, the queue bound and the query timeout, shutdown, and the
// password never in the log.

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <hearth/account_store.hpp>

#include "auth/account_service.hpp"
#include "auth/better_auth.hpp"
#include "auth/better_auth_config.hpp"
#include "core/config.hpp"
#include "core/metrics.hpp"
#include "pg/pg.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "support/better_auth_schema.hpp"
#include "unit/store/postgres_server.hpp"
#include "unit/store/store_test_support.hpp"
#include "util/log.hpp"

namespace hearth::auth {
namespace {

using store::test::kDeadline;
using store::test::PostgresServer;
using store::test::sync;
using store::test::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr std::string_view kPassword = "ba-s3cret-plugh";

/// better-auth's default schema (as its CLI generates it for PostgreSQL).
constexpr const char* kDefaultSchema = test::kBetterAuthDefaultSchema;

/// The seed project's variant: the session id is the token, integer user ids, other table names,
/// timestamps without time zone.
constexpr const char* kSeedSchema = R"sql(
CREATE TABLE "AppUser" (
    "id" serial PRIMARY KEY, "displayName" text, "mail" text,
    "createdAt" timestamp(3) NOT NULL DEFAULT now());
CREATE TABLE "AppSession" (
    "id" text PRIMARY KEY, "expiresAt" timestamp(3) NOT NULL,
    "userId" integer NOT NULL REFERENCES "AppUser" ("id"));
)sql";

/// A fresh database on the test server; its URL carries a password (ignored by trust
/// authentication) so that the log can be checked for it.
std::string fresh_url(const std::string& schema) {
    auto& server = PostgresServer::shared();
    const std::string plain = server.create_database();
    PostgresServer::exec(plain, schema);
    const auto slash = plain.rfind('/');
    const std::string name = plain.substr(slash + 1, plain.find('?') - slash - 1);
    return server.url(name, std::string(kPassword));
}

void add_user(const std::string& url, const std::string& id, const std::string& name,
              const std::string& email) {
    PostgresServer::exec(url, "INSERT INTO \"user\" (id, name, email) VALUES ('" + id + "', '" +
                                  name + "', '" + email + "')");
}

void add_session(const std::string& url, const std::string& token, const std::string& user_id,
                 const std::string& expires = "now() + interval '1 hour'") {
    PostgresServer::exec(url,
                         "INSERT INTO \"session\" (id, token, \"userId\", \"expiresAt\") "
                         "VALUES ('sid-" +
                             token + "', '" + token + "', '" + user_id + "', " + expires + ")");
}

/// Collects the "auth" logger's lines.
class LogCapture {
public:
    LogCapture()
        : subscription_(util::log_ring().subscribe([this](const util::LogRecord& r) {
              if (r.logger != "auth") {
                  return;
              }
              std::lock_guard lock(mutex_);
              lines_.push_back(r.level + " " + r.message);
              cv_.notify_all();
          })) {}

    bool wait_for(const std::string& part) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, kDeadline, [&] { return count_locked(part) > 0; });
    }
    std::size_t count(const std::string& part) {
        std::lock_guard lock(mutex_);
        return count_locked(part);
    }
    std::string all() {
        std::lock_guard lock(mutex_);
        std::string out;
        for (const auto& l : lines_) {
            out += l + "\n";
        }
        return out;
    }

private:
    std::size_t count_locked(const std::string& part) const {
        return static_cast<std::size_t>(std::count_if(
            lines_.begin(), lines_.end(),
            [&](const std::string& line) { return line.find(part) != std::string::npos; }));
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> lines_;
    util::LogRing::Subscription subscription_;  // last: unsubscribed first
};

BetterAuthConfig bridge_config(std::string url) {
    BetterAuthConfig c;
    c.enabled = true;
    c.postgres_url = std::move(url);
    c.retry_interval_ms = 50;
    return c;
}

AuthConfig cheap_auth() {
    AuthConfig c;
    c.password_ops_limit = 1;
    c.password_mem_limit_kib = 8;
    c.token_cache_ttl_ms = 0;  // every validation asks the store, then the bridge
    return c;
}

/// A SQLite store for the Hearth accounts, an AccountService, and the bridge hooked into it.
struct Fixture {
    explicit Fixture(const BetterAuthConfig& c, AuthConfig auth = cheap_auth())
        : store(store::open_sqlite_store({}, dir.str(), metrics)),
          service(
              store->accounts(), [](std::function<void()> work) { work(); }, metrics, auth),
          bridge(std::make_shared<BetterAuthBridge>(c, store->accounts(), metrics)) {
        service.set_external(bridge);
    }
    ~Fixture() {
        service.set_external(nullptr);
        bridge.reset();
    }

    Result<Principal> validate(std::string token) {
        return sync<Principal>([&](auto done) { service.validate(std::move(token), done); });
    }
    Result<Principal> validate_direct(std::string token) {
        return sync<Principal>([&](auto done) { bridge->validate(std::move(token), done); });
    }
    Result<store::AccountRecord> by_external(std::string id) {
        return sync<store::AccountRecord>(
            [&](auto done) { store->accounts().account_by_external_id(std::move(id), done); });
    }
    std::uint64_t result_count(const std::string& result) {
        return metrics
            .counter("hearth_auth_better_auth_validations_total", "", {{"result", result}})
            .value();
    }
    std::uint64_t created() {
        return metrics.counter("hearth_auth_better_auth_accounts_created_total", "").value();
    }

    TempDir dir;
    core::MetricsRegistry metrics;
    std::unique_ptr<store::Store> store;
    AccountService service;
    std::shared_ptr<BetterAuthBridge> bridge;
};

template <class Pred>
bool eventually(Pred pred) {
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Config and pure helpers.

core::ConfigSchema schema() {
    core::ConfigSchema s;
    s.add<AuthConfig>();
    s.add<BetterAuthConfig>();
    return s;
}

TEST(BetterAuthConfigTest, OffByDefaultWithBetterAuthsNames) {
    const auto loaded = schema().load_string("", "test", {});
    ASSERT_THAT(loaded.errors, IsEmpty());
    const auto& c = loaded.config->get<BetterAuthConfig>();
    EXPECT_FALSE(c.enabled);
    EXPECT_EQ(c.session_table, "session");
    EXPECT_EQ(c.user_table, "user");
    EXPECT_EQ(c.token_column, "token");
    EXPECT_EQ(c.user_id_column, "userId");
    EXPECT_EQ(c.expires_at_column, "expiresAt");
    EXPECT_EQ(c.pool_size, 2);
    EXPECT_THAT(schema().default_toml(), HasSubstr("[auth.better_auth]"));
}

TEST(BetterAuthConfigTest, NestedTableAndEnvironment) {
    const auto loaded = schema().load_string(
        "[auth.better_auth]\nenabled = true\npostgres_url = \"host=db\"\ntoken_column = \"id\"\n",
        "test", {{"HEARTH_AUTH_BETTER_AUTH__SESSION_TABLE", "AppSession"}});
    ASSERT_THAT(loaded.errors, IsEmpty());
    const auto& c = loaded.config->get<BetterAuthConfig>();
    EXPECT_TRUE(c.enabled);
    EXPECT_EQ(c.token_column, "id");
    EXPECT_EQ(c.session_table, "AppSession");
}

TEST(BetterAuthConfigTest, EnabledNeedsAUrl) {
    const auto loaded = schema().load_string("[auth.better_auth]\nenabled = true\n", "test", {});
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_THAT(loaded.errors[0], HasSubstr("auth.better_auth.postgres_url"));
}

TEST(BetterAuthConfigTest, IdentifiersWithQuotesOrSpacesAreRefused) {
    const auto loaded = schema().load_string(
        "[auth.better_auth]\nsession_table = 'se\"ssion'\nuser_table = \"my users\"\n"
        "token_column = \"\"\nuser_id_column = \"1st\"\nexpires_at_column = \"a;b\"\n",
        "test", {});
    ASSERT_EQ(loaded.errors.size(), 5u) << ::testing::PrintToString(loaded.errors);
    EXPECT_THAT(loaded.errors[0], HasSubstr("auth.better_auth.session_table"));
    EXPECT_THAT(loaded.errors[1], HasSubstr("auth.better_auth.user_table"));
    EXPECT_THAT(loaded.errors[2], HasSubstr("auth.better_auth.token_column"));
    EXPECT_THAT(loaded.errors[3], HasSubstr("auth.better_auth.user_id_column"));
    EXPECT_THAT(loaded.errors[4], HasSubstr("auth.better_auth.expires_at_column"));

    BetterAuthConfig c = bridge_config("host=db");
    c.user_table = "user\" u; DROP TABLE x; --";
    core::MetricsRegistry metrics;
    TempDir dir;
    auto store = store::open_sqlite_store({}, dir.str(), metrics);
    EXPECT_THROW(BetterAuthBridge(c, store->accounts(), metrics), std::invalid_argument);
}

TEST(BetterAuthConfigTest, QueryQuotesEveryName) {
    EXPECT_EQ(better_auth_query(BetterAuthConfig{}),
              "SELECT s.\"userId\"::text, (EXTRACT(EPOCH FROM s.\"expiresAt\"::timestamptz) * "
              "1000)::bigint, s.\"expiresAt\"::timestamptz > now(), u.\"name\"::text, "
              "u.\"email\"::text FROM \"session\" s JOIN \"user\" u ON u.\"id\" = s.\"userId\" "
              "WHERE s.\"token\" = $1 LIMIT 1");
}

TEST(BetterAuthUsernameTest, MadeValidAndUnique) {
    EXPECT_EQ(better_auth_username("Alice Smith", "a@x.org", "u1", 1), "Alice_Smith");
    EXPECT_EQ(better_auth_username("Alice Smith", "a@x.org", "u1", 2), "Alice_Smith-2");
    EXPECT_EQ(better_auth_username("Zoë (admin)", "", "u1", 1), "Zo_admin");
    EXPECT_EQ(better_auth_username("日本", "kenji.t@example.jp", "u1", 1), "kenji.t");
    EXPECT_EQ(better_auth_username("", "", "42", 1), "user-42");
    EXPECT_EQ(better_auth_username("...", "@x", "", 1), "user");
    const std::string long_name(100, 'n');
    EXPECT_EQ(better_auth_username(long_name, "", "1", 1), std::string(64, 'n'));
    EXPECT_EQ(better_auth_username(long_name, "", "1", 12), std::string(61, 'n') + "-12");
    for (int attempt : {1, 2, 50}) {
        EXPECT_FALSE(check_username(better_auth_username(long_name, "", "1", attempt)));
    }
}

// ---------------------------------------------------------------------------------------------
// Against PostgreSQL.

TEST(BetterAuthTest, ValidSessionMapsToANewAccountThenToTheSameOne) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u-alice", "Alice Smith", "alice@example.org");
    add_session(url, "tok-alice", "u-alice");
    Fixture f(bridge_config(url));

    const auto first = f.validate("tok-alice");
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->username, "Alice_Smith");
    EXPECT_EQ(first->roles, std::vector<std::string>{"player"});
    EXPECT_EQ(first->kind, TokenKind::kSession);
    EXPECT_EQ(first->token_id, 0u);
    EXPECT_TRUE(first->scopes.empty());
    const auto now = std::chrono::system_clock::now();
    EXPECT_GT(first->expires_at, now + 59min);
    EXPECT_LT(first->expires_at, now + 61min);
    EXPECT_TRUE(first->external);

    const auto account = f.by_external("better-auth:u-alice");
    ASSERT_TRUE(account);
    EXPECT_EQ(account->id, first->account_id);
    EXPECT_EQ(account->username, "Alice_Smith");
    EXPECT_EQ(account->email, "alice@example.org");
    EXPECT_EQ(account->password_hash, "");
    EXPECT_FALSE(account->disabled);

    const auto second = f.validate("tok-alice");
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_EQ(second->account_id, first->account_id);
    EXPECT_EQ(f.created(), 1u);
    EXPECT_EQ(f.result_count("ok"), 2u);
    EXPECT_EQ(f.metrics.counter("hearth_auth_token_validations_total", "", {{"result", "external"}})
                  .value(),
              2u);

    // The web application owns the session: Hearth neither refreshes nor ends it.
    EXPECT_EQ(sync<SessionToken>([&](auto done) { f.service.refresh("tok-alice", done); }).error(),
              make_error_code(Errc::kNotAllowed));
    EXPECT_EQ(sync<void>([&](auto done) { f.service.logout("tok-alice", done); }).error(),
              make_error_code(Errc::kNotAllowed));
    EXPECT_TRUE(f.validate("tok-alice"));

    // A password login cannot reach the external account: it has no password.
    const auto login = sync<SessionToken>([&](auto done) {
        f.service.login("Alice_Smith", "whatever-password", "127.0.0.1", "test", done);
    });
    ASSERT_FALSE(login);
    EXPECT_EQ(login.error(), make_error_code(Errc::kUnauthenticated));
}

TEST(BetterAuthTest, AnExternalSessionIsASessionAtEveryDoor) {
    // The bridge's sessions are sessions: accepted where a door takes its account's roles,
    // refused where a door takes API keys or guest tokens alone.
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u-web", "Webby", "webby@example.org");
    add_session(url, "tok-web", "u-web");
    Fixture f(bridge_config(url));
    auto at = [&f](const AccessPolicy& policy) {
        std::promise<AccessDecision> decided;
        f.service.authorize("tok-web", policy, "192.0.2.1:4000",
                            [&decided](AccessDecision d) { decided.set_value(std::move(d)); });
        return decided.get_future().get();
    };
    const AccessPolicy bots{.door = "homestead", .api_key_scope = "homestead"};
    const AccessPolicy guests{.door = "moonshare", .guest_realm = "moonshare"};
    const AccessPolicy players{
        .door = "native", .api_key_scope = "native", .session_roles = {"player"}};
    EXPECT_EQ(at(bots).refusal, Refusal::kKindNotAccepted);
    EXPECT_EQ(at(guests).refusal, Refusal::kKindNotAccepted);
    EXPECT_EQ(at(operator_policy()).refusal, Refusal::kMissingRole);
    const auto played = at(players);
    ASSERT_EQ(played.refusal, Refusal::kNone);
    EXPECT_TRUE(played.principal.external);
    EXPECT_EQ(played.principal.username, "Webby");
    EXPECT_EQ(f.metrics
                  .counter("hearth_auth_refusals_total", "",
                           {{"door", "homestead"}, {"reason", "kind_not_accepted"}})
                  .value(),
              1u);
}

TEST(BetterAuthTest, PrincipalsAreCachedLikeTheStores) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Carol", "carol@example.org");
    add_session(url, "tok-c", "u1");
    AuthConfig auth = cheap_auth();
    auth.token_cache_ttl_ms = 60'000;
    Fixture f(bridge_config(url), auth);
    ASSERT_TRUE(f.validate("tok-c"));
    ASSERT_TRUE(f.validate("tok-c"));
    EXPECT_EQ(f.result_count("ok"), 1u);
    EXPECT_EQ(
        f.metrics.counter("hearth_auth_token_validations_total", "", {{"result", "cache"}}).value(),
        1u);
}

TEST(BetterAuthTest, ExpiredAndUnknownTokensAreRefused) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Dave", "dave@example.org");
    add_session(url, "tok-old", "u1", "now() - interval '1 second'");
    Fixture f(bridge_config(url));

    const auto expired = f.validate("tok-old");
    ASSERT_FALSE(expired);
    EXPECT_EQ(expired.error(), make_error_code(Errc::kUnauthenticated));
    const auto unknown = f.validate("tok-nobody-knows");
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error(), make_error_code(Errc::kUnauthenticated));
    // Nothing was mapped for a refused token.
    EXPECT_EQ(f.by_external("better-auth:u1").error(), make_error_code(Errc::kNotFound));
    EXPECT_EQ(f.result_count("refused"), 2u);
    EXPECT_EQ(f.created(), 0u);
}

TEST(BetterAuthTest, SeedVariantThroughConfig) {
    const std::string url = fresh_url(kSeedSchema);
    PostgresServer::exec(url,
                         "INSERT INTO \"AppUser\" (\"displayName\", mail) VALUES "
                         "('Erin', 'erin@example.org'), (NULL, NULL)");
    PostgresServer::exec(url,
                         "INSERT INTO \"AppSession\" (id, \"expiresAt\", \"userId\") VALUES "
                         "('sess-erin', now() + interval '1 hour', 1), "
                         "('sess-anon', now() + interval '1 hour', 2), "
                         "('sess-gone', now() - interval '1 hour', 1)");
    BetterAuthConfig c = bridge_config(url);
    c.session_table = "AppSession";
    c.user_table = "AppUser";
    c.token_column = "id";
    c.user_name_column = "displayName";
    c.user_email_column = "mail";
    Fixture f(c);

    const auto erin = f.validate("sess-erin");
    ASSERT_TRUE(erin) << erin.error().message();
    EXPECT_EQ(erin->username, "Erin");
    EXPECT_EQ(f.by_external("better-auth:1")->id, erin->account_id);
    const auto anon = f.validate("sess-anon");
    ASSERT_TRUE(anon) << anon.error().message();
    EXPECT_EQ(anon->username, "user-2");
    EXPECT_FALSE(f.by_external("better-auth:2")->email.has_value());
    EXPECT_EQ(f.validate("sess-gone").error(), make_error_code(Errc::kUnauthenticated));
    EXPECT_EQ(f.validate("no-such-session").error(), make_error_code(Errc::kUnauthenticated));
}

TEST(BetterAuthTest, TokensThatCannotBeAValueOfTheColumnAreRefused) {
    const std::string url = fresh_url(kSeedSchema);
    PostgresServer::exec(url, "INSERT INTO \"AppUser\" (\"displayName\") VALUES ('Fay')");
    PostgresServer::exec(url,
                         "INSERT INTO \"AppSession\" (id, \"expiresAt\", \"userId\") VALUES "
                         "('s1', now() + interval '1 hour', 1)");
    // The integer user id as the token column: a token that is not a number is simply unknown.
    BetterAuthConfig c = bridge_config(url);
    c.session_table = "AppSession";
    c.user_table = "AppUser";
    c.token_column = "userId";
    c.user_name_column = "displayName";
    c.user_email_column = "displayName";
    Fixture f(c);
    EXPECT_EQ(f.validate("not-a-number").error(), make_error_code(Errc::kUnauthenticated));
    EXPECT_EQ(f.validate("99999999999999999999999").error(),
              make_error_code(Errc::kUnauthenticated));
    EXPECT_TRUE(f.validate("1"));  // the connection is still usable
    EXPECT_EQ(f.result_count("unavailable"), 0u);
}

TEST(BetterAuthTest, CollidingNamesAndEmailsGetAnAccountAnyway) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Bob", "bob1@example.org");
    add_user(url, "u2", "bob", "bob2@example.org");
    add_user(url, "u3", "Grace", "grace@example.org");
    add_session(url, "t1", "u1");
    add_session(url, "t2", "u2");
    add_session(url, "t3", "u3");
    Fixture f(bridge_config(url));
    // A Hearth account already has the name "Grace" and another grace's email.
    store::AccountRecord local;
    local.username = "Grace";
    local.email = "grace@example.org";
    local.password_hash = "x";
    local.roles = {"player"};
    ASSERT_TRUE(sync<store::AccountRecord>(
        [&](auto done) { f.store->accounts().create_account(local, done); }));

    const auto p1 = f.validate("t1");
    const auto p2 = f.validate("t2");
    const auto p3 = f.validate("t3");
    ASSERT_TRUE(p1 && p2 && p3);
    EXPECT_EQ(p1->username, "Bob");
    EXPECT_EQ(p2->username, "bob-2");  // usernames are unique case-insensitively
    EXPECT_EQ(p3->username, "Grace-2");
    EXPECT_FALSE(f.by_external("better-auth:u3")->email.has_value());
    EXPECT_EQ(f.by_external("better-auth:u2")->email, "bob2@example.org");
    EXPECT_EQ(f.created(), 3u);
}

TEST(BetterAuthTest, ConcurrentFirstSightsMapToOneAccount) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Hank", "hank@example.org");
    for (int i = 0; i < 8; ++i) {
        add_session(url, "t" + std::to_string(i), "u1");
    }
    BetterAuthConfig c = bridge_config(url);
    c.pool_size = 4;
    Fixture f(c);
    std::vector<std::future<Result<Principal>>> results;
    for (int i = 0; i < 8; ++i) {
        auto promise = std::make_shared<std::promise<Result<Principal>>>();
        results.push_back(promise->get_future());
        f.service.validate("t" + std::to_string(i),
                           [promise](Result<Principal> p) { promise->set_value(std::move(p)); });
    }
    std::uint64_t id = 0;
    for (auto& r : results) {
        ASSERT_EQ(r.wait_for(kDeadline), std::future_status::ready);
        const auto p = r.get();
        ASSERT_TRUE(p) << p.error().message();
        id = id == 0 ? p->account_id : id;
        EXPECT_EQ(p->account_id, id);
        EXPECT_EQ(p->username, "Hank");
    }
    EXPECT_EQ(f.created(), 1u);
}

TEST(BetterAuthTest, DisabledHearthAccountIsRefused) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Ivan", "ivan@example.org");
    add_session(url, "t1", "u1");
    Fixture f(bridge_config(url));
    const auto p = f.validate("t1");
    ASSERT_TRUE(p);
    ASSERT_TRUE(sync<store::AccountRecord>(
        [&](auto done) { f.service.change_account(p->account_id, {.disabled = true}, done); }));
    EXPECT_EQ(f.validate("t1").error(), make_error_code(Errc::kUnauthenticated));
    EXPECT_EQ(f.created(), 1u);
}

TEST(BetterAuthTest, DatabaseGoingAwayGivesUnavailableAndRecovers) {
    LogCapture log;
    auto& server = PostgresServer::shared();
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Judy", "judy@example.org");
    add_session(url, "t1", "u1");
    Fixture f(bridge_config(url));
    ASSERT_TRUE(f.validate("t1"));
    EXPECT_TRUE(f.bridge->healthy());

    server.stop();
    for (int i = 0; i < 3; ++i) {
        const auto r = f.validate("t1");
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), make_error_code(Errc::kUnavailable));
    }
    EXPECT_GE(f.result_count("unavailable"), 3u);
    EXPECT_FALSE(f.bridge->healthy());  // /ready reports it
    EXPECT_TRUE(log.wait_for("cannot be used")) << log.all();
    EXPECT_EQ(log.count("cannot be used"), 1u) << log.all();  // once per run of failures
    EXPECT_TRUE(log.wait_for(pg::mask_url(url))) << log.all();
    EXPECT_THAT(log.all(), HasSubstr("postgres:***@"));

    server.start();
    EXPECT_TRUE(eventually([&] { return f.validate("t1").has_value(); }));
    EXPECT_TRUE(f.bridge->healthy());
    EXPECT_TRUE(log.wait_for("works again")) << log.all();
    EXPECT_EQ(f.created(), 1u);
    EXPECT_THAT(log.all(), Not(HasSubstr(kPassword)));
}

TEST(BetterAuthTest, DatabaseDownAtStartupIsNotFatal) {
    LogCapture log;
    BetterAuthConfig c =
        bridge_config("postgresql://postgres:" + std::string(kPassword) + "@127.0.0.1:1/none");
    Fixture f(c);
    const auto r = f.validate("t1");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(Errc::kUnavailable));
    EXPECT_TRUE(log.wait_for("cannot connect")) << log.all();
    EXPECT_THAT(log.all(), Not(HasSubstr(kPassword)));
}

TEST(BetterAuthTest, WrongTableNamesAreLoggedAndGiveUnavailable) {
    LogCapture log;
    const std::string url = fresh_url(kDefaultSchema);
    BetterAuthConfig c = bridge_config(url);
    c.session_table = "sessions";
    Fixture f(c);
    EXPECT_EQ(f.validate("t1").error(), make_error_code(Errc::kUnavailable));
    EXPECT_TRUE(log.wait_for("cannot prepare the session query")) << log.all();
    EXPECT_TRUE(log.wait_for("\"sessions\"")) << log.all();
}

TEST(BetterAuthTest, SlowQueriesTimeOutAndTheQueueIsBounded) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Kim", "kim@example.org");
    add_session(url, "t1", "u1");
    BetterAuthConfig c = bridge_config(url);
    c.pool_size = 1;
    c.max_pending = 1;
    c.query_timeout_ms = 300;
    Fixture f(c);
    ASSERT_TRUE(f.validate_direct("t1"));

    // Another session holds a lock that every read of the table waits for.
    PGconn* other = PQconnectdb(url.c_str());
    ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
    PQclear(PQexec(other, "BEGIN"));
    PGresult* locked = PQexec(other, "LOCK TABLE \"session\" IN ACCESS EXCLUSIVE MODE");
    EXPECT_EQ(PQresultStatus(locked), PGRES_COMMAND_OK);
    PQclear(locked);

    auto& pending = f.metrics.gauge("hearth_auth_better_auth_pending", "");
    auto a = std::make_shared<std::promise<Result<Principal>>>();
    auto b = std::make_shared<std::promise<Result<Principal>>>();
    auto fa = a->get_future();
    auto fb = b->get_future();
    f.bridge->validate("t1", [a](Result<Principal> p) { a->set_value(std::move(p)); });
    // The thread took the first one (and waits for the lock); the second waits in the queue.
    ASSERT_TRUE(eventually([&] { return pending.value() == 0; }));
    f.bridge->validate("t1", [b](Result<Principal> p) { b->set_value(std::move(p)); });
    EXPECT_EQ(pending.value(), 1);
    const auto third = f.validate_direct("t1");
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error(), make_error_code(Errc::kUnavailable));
    EXPECT_EQ(f.result_count("busy"), 1u);

    ASSERT_EQ(fa.wait_for(kDeadline), std::future_status::ready);
    EXPECT_EQ(fa.get().error(), make_error_code(Errc::kUnavailable));
    ASSERT_EQ(fb.wait_for(kDeadline), std::future_status::ready);
    EXPECT_EQ(fb.get().error(), make_error_code(Errc::kUnavailable));

    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    EXPECT_TRUE(eventually([&] { return f.validate_direct("t1").has_value(); }));
}

TEST(BetterAuthTest, DestroyingTheBridgeFailsWhatIsQueued) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Leo", "leo@example.org");
    add_session(url, "t1", "u1");
    BetterAuthConfig c = bridge_config(url);
    c.pool_size = 1;
    c.query_timeout_ms = 300;
    Fixture f(c);
    ASSERT_TRUE(f.validate_direct("t1"));
    PGconn* other = PQconnectdb(url.c_str());
    ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
    PQclear(PQexec(other, "BEGIN"));
    PQclear(PQexec(other, "LOCK TABLE \"session\" IN ACCESS EXCLUSIVE MODE"));

    std::vector<std::future<Result<Principal>>> results;
    for (int i = 0; i < 3; ++i) {
        auto promise = std::make_shared<std::promise<Result<Principal>>>();
        results.push_back(promise->get_future());
        f.bridge->validate("t1",
                           [promise](Result<Principal> p) { promise->set_value(std::move(p)); });
    }
    f.service.set_external(nullptr);
    f.bridge.reset();  // joins the thread: the query in progress times out
    std::size_t shutting_down = 0;
    for (auto& r : results) {
        ASSERT_EQ(r.wait_for(0s), std::future_status::ready);
        const auto p = r.get();
        ASSERT_FALSE(p);
        shutting_down += p.error() == make_error_code(Errc::kShuttingDown) ? 1 : 0;
    }
    EXPECT_GE(shutting_down, 2u);
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
}

TEST(BetterAuthTest, WithoutTheBridgeUnknownTokensAreRefused) {
    const std::string url = fresh_url(kDefaultSchema);
    add_user(url, "u1", "Mia", "mia@example.org");
    add_session(url, "t1", "u1");
    Fixture f(bridge_config(url));
    f.service.set_external(nullptr);
    EXPECT_EQ(f.validate("t1").error(), make_error_code(Errc::kUnauthenticated));
    EXPECT_EQ(f.result_count("ok"), 0u);
}

}  // namespace
}  // namespace hearth::auth
