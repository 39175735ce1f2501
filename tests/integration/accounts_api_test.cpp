// The account system through the real HTTP API: login, refresh, logout, accounts, tokens, the
// audit log, and every failure (wrong password, disabled account, expired or revoked token,
// missing right, throttling), on a real store: every test on SQLite and on PostgreSQL.

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdminToken = "accounts-test-admin-token";

/// Cheap password hashing (tests only) and the admin token.
Overrides account_overrides(Overrides extra = {}) {
    Overrides o = {{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                   {"auth.password_ops_limit", "1"},
                   {"auth.password_mem_limit_kib", "8"}};
    for (auto& [k, v] : extra) {
        o[k] = v;
    }
    return o;
}

struct Api {
    std::uint16_t port;

    HttpResult call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = kAdminToken) const {
        return api_request(port, method, target, body, token);
    }
    json::value ok(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& token = kAdminToken,
                   int status = 200) const {
        auto r = call(method, target, body, token);
        EXPECT_EQ(r.status, status) << method << " " << target << ": " << r.body;
        return r.body.empty() ? json::value() : json::parse(r.body);
    }
    /// Creates an account through the API; returns its id.
    std::uint64_t create(const std::string& name, const std::string& password,
                         const std::string& roles = R"(["player"])") const {
        auto v = ok("POST", "/api/v1/accounts",
                    R"({"username":")" + name + R"(","password":")" + password + R"(","roles":)" +
                        roles + "}",
                    kAdminToken, 201);
        return v.at("id").to_number<std::uint64_t>();
    }
    HttpResult login(const std::string& name, const std::string& password) const {
        return call("POST", "/api/v1/auth/login",
                    R"({"username":")" + name + R"(","password":")" + password + R"("})", "");
    }
    std::string token_of(const std::string& name, const std::string& password) const {
        auto r = login(name, password);
        EXPECT_EQ(r.status, 200) << r.body;
        return std::string(json::parse(r.body).at("token").as_string());
    }
};

std::string code_of(const HttpResult& r) {
    return std::string(json::parse(r.body).at("error").at("code").as_string());
}

// Every test runs on SQLite and on PostgreSQL (support/store_backend.hpp).
class AccountsApi : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(AccountsApi);

TEST_P(AccountsApi, CreateLoginAndUseAnAdminSession) {
    TestServer server(account_overrides());
    Api api{server.port()};
    const auto id = api.create("Alice", "correct horse battery", R"(["admin"])");
    EXPECT_GT(id, 0U);

    auto r = api.login("alice", "correct horse battery");  // usernames are case-insensitive
    ASSERT_EQ(r.status, 200) << r.body;
    auto session = json::parse(r.body);
    const std::string token(session.at("token").as_string());
    EXPECT_EQ(token.size(), 43U);
    const std::string expires(session.at("expires_at").as_string());
    EXPECT_EQ(expires.size(), 24U);  // 2026-11-22T03:04:05.123Z
    EXPECT_EQ(expires.back(), 'Z');

    // The admin's session token opens operator routes.
    auto me = api.ok("GET", "/api/v1/accounts/alice", "", token);
    EXPECT_EQ(me.at("username").as_string(), "Alice");
    EXPECT_EQ(me.at("status").as_string(), "active");
    EXPECT_FALSE(me.at("last_login_at").is_null());
    EXPECT_FALSE(me.as_object().contains("password_hash"));
    EXPECT_EQ(api.call("GET", "/api/v1/logs", "", token).status, 200);
}

TEST_P(AccountsApi, LoginFailuresAreDistinguishedWhereSafe) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("bob", "bob-password-1");
    auto wrong = api.login("bob", "nope-nope-nope");
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(code_of(wrong), "invalid_credentials");
    auto unknown = api.login("nobody", "whatever-123");
    EXPECT_EQ(unknown.status, 401);
    EXPECT_EQ(code_of(unknown), "invalid_credentials");
    EXPECT_EQ(api.call("POST", "/api/v1/auth/login", "{", "").status, 400);
    EXPECT_EQ(api.call("POST", "/api/v1/auth/login", R"({"username":"bob"})", "").status, 400);

    api.ok("PATCH", "/api/v1/accounts/bob", R"({"disabled":true})");
    auto disabled = api.login("bob", "bob-password-1");
    EXPECT_EQ(disabled.status, 403);
    EXPECT_EQ(code_of(disabled), "account_disabled");
    api.ok("PATCH", "/api/v1/accounts/bob", R"({"disabled":false})");
    EXPECT_EQ(api.login("bob", "bob-password-1").status, 200);
}

TEST_P(AccountsApi, RepeatedFailuresAreThrottledWithRetryAfter) {
    TestServer server(account_overrides(
        {{"auth.throttle_free_failures", "2"}, {"auth.throttle_base_delay_ms", "60000"}}));
    Api api{server.port()};
    api.create("carol", "carol-password");
    EXPECT_EQ(api.login("carol", "bad-password-1").status, 401);
    EXPECT_EQ(api.login("carol", "bad-password-2").status, 401);
    EXPECT_EQ(api.login("carol", "bad-password-3").status, 401);  // the first counted failure
    auto throttled = api.login("carol", "carol-password");        // even the right one waits
    EXPECT_EQ(throttled.status, 429);
    EXPECT_EQ(code_of(throttled), "too_many_attempts");
    EXPECT_EQ(throttled.headers["retry-after"], "60");
    EXPECT_GE(server.metric("hearth_auth_logins_total", {{"result", "throttled"}}), 1.0);
}

TEST_P(AccountsApi, RefreshRotatesAndLogoutRevokes) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("dave", "dave-password", R"(["admin"])");
    const auto first = api.token_of("dave", "dave-password");
    auto refreshed = api.ok("POST", "/api/v1/auth/refresh", "", first);
    const std::string second(refreshed.at("token").as_string());
    EXPECT_NE(second, first);
    // The old one is revoked at once on this node.
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", first).status, 401);
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", second).status, 200);
    EXPECT_EQ(api.call("POST", "/api/v1/auth/logout", "", second).status, 204);
    auto after = api.call("GET", "/api/v1/accounts", "", second);
    EXPECT_EQ(after.status, 401);
    EXPECT_EQ(code_of(after), "unauthorized");
    EXPECT_EQ(api.call("POST", "/api/v1/auth/refresh", "", "").status, 401);
    EXPECT_EQ(api.call("POST", "/api/v1/auth/refresh", "", "made-up").status, 401);
}

TEST_P(AccountsApi, ATokenStopsWorkingWhenItExpires) {
    TestServer server(account_overrides({{"auth.session_ttl_s", "60"}}));
    Api api{server.port()};
    api.create("erin", "erin-password", R"(["admin"])");
    const auto token = api.token_of("erin", "erin-password");
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", token).status, 200);
    // Expiry is stored; an API key issued with a 1 s lifetime shows it without waiting a minute.
    auto key = api.ok("POST", "/api/v1/tokens",
                      R"({"account":"erin","name":"short","scopes":["admin"],"ttl_s":1})",
                      kAdminToken, 201);
    const std::string secret(key.at("token").as_string());
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", secret).status, 200);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 200;
    while (status == 200 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval
        status = api.call("GET", "/api/v1/accounts", "", secret).status;
    }
    EXPECT_EQ(status, 401);
}

TEST_P(AccountsApi, RightsAreCheckedWith401And403) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("frank", "frank-password");  // a player
    const auto player = api.token_of("frank", "frank-password");
    auto forbidden = api.call("GET", "/api/v1/accounts", "", player);
    EXPECT_EQ(forbidden.status, 403);
    EXPECT_EQ(code_of(forbidden), "forbidden");
    auto none = api.call("GET", "/api/v1/accounts", "", "");
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(none.headers["www-authenticate"], "Bearer");
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", "garbage").status, 401);

    // An API key of an admin account works only with the admin scope.
    api.create("grace", "grace-password", R"(["admin"])");
    auto native_only =
        api.ok("POST", "/api/v1/tokens", R"({"account":"grace","name":"bot","scopes":["native"]})",
               kAdminToken, 201);
    EXPECT_EQ(
        api.call("GET", "/api/v1/accounts", "", std::string(native_only.at("token").as_string()))
            .status,
        403);
    auto admin_key =
        api.ok("POST", "/api/v1/tokens", R"({"account":"grace","name":"ops","scopes":["admin"]})",
               kAdminToken, 201);
    EXPECT_EQ(
        api.call("GET", "/api/v1/accounts", "", std::string(admin_key.at("token").as_string()))
            .status,
        200);
}

TEST_P(AccountsApi, AccountResourceValidatesPagesAndDeletes) {
    TestServer server(account_overrides());
    Api api{server.port()};
    for (int i = 0; i < 5; ++i) {
        api.create("user" + std::to_string(i), "password-" + std::to_string(i));
    }
    auto dup =
        api.call("POST", "/api/v1/accounts", R"({"username":"USER1","password":"12345678"})");
    EXPECT_EQ(dup.status, 409);
    EXPECT_EQ(code_of(dup), "already_exists");
    for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
             {R"({"username":"a b","password":"12345678"})", "username"},
             {R"({"username":"ok","password":"short"})", "password"},
             {R"({"username":"ok","password":"12345678","roles":["king"]})", "roles"},
             {R"({"username":"ok","password":"12345678","email":"nope"})", "email"},
             {R"({"password":"12345678"})", "username"},
         }) {
        auto r = api.call("POST", "/api/v1/accounts", body);
        EXPECT_EQ(r.status, 400) << body;
        EXPECT_EQ(code_of(r), "invalid_field") << body;
        EXPECT_TRUE(std::string(json::parse(r.body).at("error").at("message").as_string())
                        .starts_with(field + ":"))
            << r.body;
    }

    std::vector<std::string> names;
    std::string cursor;
    int pages = 0;
    do {
        auto page =
            api.ok("GET", "/api/v1/accounts?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
        for (const auto& a : page.at("items").as_array()) {
            names.emplace_back(a.at("username").as_string());
        }
        cursor = page.at("next").is_null() ? "" : std::string(page.at("next").as_string());
        ++pages;
    } while (!cursor.empty() && pages < 10);
    EXPECT_EQ(names, (std::vector<std::string>{"user0", "user1", "user2", "user3", "user4"}));
    EXPECT_EQ(pages, 3);
    EXPECT_EQ(api.ok("GET", "/api/v1/accounts?q=USER3").at("items").as_array().size(), 1U);

    EXPECT_EQ(api.call("DELETE", "/api/v1/accounts/user2").status, 204);
    EXPECT_EQ(api.call("GET", "/api/v1/accounts/user2").status, 404);
    EXPECT_EQ(api.call("DELETE", "/api/v1/accounts/user2").status, 404);
    EXPECT_EQ(api.login("user2", "password-2").status, 401);
    EXPECT_EQ(api.call("PUT", "/api/v1/accounts/user1").status, 405);
    EXPECT_EQ(api.call("GET", "/api/v1/nothing-here").status, 404);
}

TEST_P(AccountsApi, TokensAreListedByFingerprintAndRevocationIsImmediate) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("heidi", "heidi-password", R"(["admin"])");
    auto issued = api.ok("POST", "/api/v1/tokens",
                         R"({"account":"heidi","name":"deploy","scopes":["admin","native"]})",
                         kAdminToken, 201);
    const std::string secret(issued.at("token").as_string());
    const auto id = issued.at("id").to_number<std::uint64_t>();
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", secret).status, 200);  // now cached

    auto list = api.ok("GET", "/api/v1/tokens?account=heidi");
    const auto body = json::serialize(list);
    EXPECT_EQ(body.find(secret), std::string::npos) << "a listing must never show the token";
    ASSERT_EQ(list.at("items").as_array().size(), 1U);
    EXPECT_EQ(list.at("items").as_array()[0].at("name").as_string(), "deploy");
    EXPECT_EQ(list.at("items").as_array()[0].at("fingerprint").as_string().size(), 8U);

    for (const auto& bad :
         {R"({"account":"heidi","name":"x","scopes":["everything"]})",
          R"({"account":"heidi","name":"x","scopes":[]})",
          R"({"account":"heidi","scopes":["native"]})",
          R"({"account":"heidi","name":"x","scopes":["native"],"kind":"session"})"}) {
        EXPECT_EQ(api.call("POST", "/api/v1/tokens", bad).status, 400) << bad;
    }
    EXPECT_EQ(
        api.call("POST", "/api/v1/tokens", R"({"account":"nobody","name":"x","scopes":["native"]})")
            .status,
        404);

    auto revoked = api.ok("DELETE", "/api/v1/tokens/" + std::to_string(id));
    EXPECT_FALSE(revoked.at("revoked_at").is_null());
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", secret).status, 401);
    EXPECT_TRUE(api.ok("GET", "/api/v1/tokens?account=heidi").at("items").as_array().empty());
    EXPECT_EQ(
        api.ok("GET", "/api/v1/tokens?account=heidi&revoked=true").at("items").as_array().size(),
        1U);
    EXPECT_EQ(api.call("DELETE", "/api/v1/tokens/99999").status, 404);
}

TEST_P(AccountsApi, DisablingAnAccountStopsItsTokensAtOnce) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("ivan", "ivan-password", R"(["admin"])");
    const auto token = api.token_of("ivan", "ivan-password");
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", token).status, 200);  // cached
    api.ok("PATCH", "/api/v1/accounts/ivan", R"({"disabled":true})");
    EXPECT_EQ(api.call("GET", "/api/v1/accounts", "", token).status, 401);
}

TEST_P(AccountsApi, OperatorActionsAreAudited) {
    TestServer server(account_overrides());
    Api api{server.port()};
    api.create("judy", "judy-password", R"(["admin"])");
    const auto token = api.token_of("judy", "judy-password");
    api.ok("POST", "/api/v1/accounts", R"({"username":"mallory","password":"mallory-pw"})", token,
           201);
    api.ok("PATCH", "/api/v1/accounts/mallory", R"({"disabled":true})", token);
    auto key = api.ok("POST", "/api/v1/tokens",
                      R"({"account":"judy","name":"k","scopes":["native"]})", kAdminToken, 201);
    api.ok("DELETE", "/api/v1/tokens/" + std::to_string(key.at("id").to_number<std::uint64_t>()));

    auto audit = api.ok("GET", "/api/v1/audit");
    std::vector<std::string> actions;
    for (const auto& e : audit.at("items").as_array()) {
        actions.emplace_back(e.at("action").as_string());
    }
    // Newest first.
    EXPECT_EQ(actions, (std::vector<std::string>{"token.revoke", "token.issue", "account.disable",
                                                 "account.create", "account.create"}));
    const auto& disable = audit.at("items").as_array()[2];
    EXPECT_EQ(disable.at("actor").as_string(), "account:judy");
    EXPECT_EQ(disable.at("target").as_string(), "account:mallory");
    EXPECT_TRUE(disable.at("peer").as_string().starts_with("127.0.0.1:"));
    EXPECT_EQ(audit.at("items").as_array()[0].at("actor").as_string(), "admin_token");
    auto by_judy = api.ok("GET", "/api/v1/audit?actor=account:judy");
    EXPECT_EQ(by_judy.at("items").as_array().size(), 2U);
}

}  // namespace
}  // namespace hearth::test
