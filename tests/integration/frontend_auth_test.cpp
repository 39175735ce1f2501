// Accounts' tokens at the front-ends, with real clients: the native protocol's hello with a session
// token or an API key (and anonymous clients refused by default), Homestead's /sync with an API
// key scoped to it, and hearth-bench --token.

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "frontends/native/native.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdmin = "frontend-auth-admin";

/// The production default for anonymous clients (off), and the admin token.
Overrides auth_overrides(Overrides extra = {}) {
    Overrides o = {{"native.allow_anonymous", "false"},
                   {"http.admin_token", std::string("\"") + kAdmin + "\""}};
    for (auto& [k, v] : extra) {
        o[k] = v;
    }
    return o;
}

json::value api(std::uint16_t port, const std::string& method, const std::string& target,
                const std::string& body, int expected) {
    auto r = http_request(
        port, method, target, body,
        {{"Authorization", std::string("Bearer ") + kAdmin}, {"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, expected) << target << " " << r.body;
    return r.body.empty() ? json::value() : json::parse(r.body);
}

/// Creates `name` and returns an API key of it with `scopes` (a JSON array).
std::string api_key(std::uint16_t port, const std::string& name, const std::string& scopes) {
    api(port, "POST", "/api/v1/accounts",
        R"({"username":")" + name + R"(","password":"password-of-)" + name + R"("})", 201);
    auto key = api(port, "POST", "/api/v1/tokens",
                   R"({"account":")" + name + R"(","name":"k","scopes":)" + scopes + "}", 201);
    return std::string(key.at("token").as_string());
}

class Native {
public:
    explicit Native(std::uint16_t port) : ws_(port, WsOptions{.path = "/ws"}) {}
    json::object call(const std::string& text) {
        ws_.send_text(text);
        auto m = ws_.read();
        if (!m) {
            ADD_FAILURE() << "closed";
            return {};
        }
        return json::parse(m->data).as_object();
    }

private:
    WsClient ws_;
};

std::string type_or_code(const json::object& r) {
    if (r.at("type").as_string() == "error") {
        return std::string(r.at("code").as_string());
    }
    return std::string(r.at("type").as_string());
}

TEST(FrontendAuth, AnonymousNativeClientsAreRefusedByDefault) {
    EXPECT_FALSE(frontends::native::NativeConfig{}.allow_anonymous);
    TestServer server(auth_overrides());
    Native c(server.port());
    EXPECT_EQ(type_or_code(c.call(R"({"type":"subscribe","topic":"t"})")), "not_allowed");
    EXPECT_EQ(type_or_code(c.call(R"({"type":"hello"})")), "unauthenticated");
    EXPECT_EQ(type_or_code(c.call(R"({"type":"hello","token":"made-up"})")), "unauthenticated");
    EXPECT_EQ(type_or_code(c.call(R"({"type":"hello","token":7})")), "invalid_field");
}

TEST(FrontendAuth, NativeHelloTakesASessionTokenAndNamesThePrincipal) {
    TestServer server(auth_overrides());
    const auto port = server.port();
    api(port, "POST", "/api/v1/accounts", R"({"username":"kim","password":"kim-password"})", 201);
    auto login = http_request(port, "POST", "/api/v1/auth/login",
                              R"({"username":"kim","password":"kim-password"})",
                              {{"Content-Type", "application/json"}});
    ASSERT_EQ(login.status, 200) << login.body;
    const std::string token(json::parse(login.body).at("token").as_string());

    Native kim(port);
    auto welcome = kim.call(R"({"type":"hello","id":1,"token":")" + token + R"("})");
    EXPECT_EQ(welcome.at("type").as_string(), "welcome") << json::serialize(welcome);
    EXPECT_EQ(welcome.at("account").as_string(), "kim");
    EXPECT_EQ(welcome.at("id").as_int64(), 1);
    EXPECT_EQ(type_or_code(kim.call(R"({"type":"subscribe","topic":"room","presence":true})")),
              "ok");
    auto presence = kim.call(R"({"type":"presence","topic":"room"})");
    ASSERT_EQ(presence.at("members").as_array().size(), 1U) << json::serialize(presence);
    EXPECT_EQ(presence.at("members").as_array()[0].at("principal").as_string(), "kim");
}

TEST(FrontendAuth, NativeApiKeysNeedTheNativeScopeAndStopWhenRevoked) {
    TestServer server(auth_overrides());
    const auto port = server.port();
    const auto good = api_key(port, "bot1", R"(["native"])");
    const auto wrong_scope = api_key(port, "bot2", R"(["homestead"])");
    Native a(port);
    EXPECT_EQ(type_or_code(a.call(R"({"type":"hello","token":")" + good + R"("})")), "welcome");
    EXPECT_EQ(type_or_code(a.call(R"({"type":"publish","topic":"t","data":1})")), "ok");
    Native b(port);
    EXPECT_EQ(type_or_code(b.call(R"({"type":"hello","token":")" + wrong_scope + R"("})")),
              "not_allowed");
    EXPECT_EQ(type_or_code(b.call(R"({"type":"publish","topic":"t","data":1})")), "not_allowed");

    auto tokens = api(port, "GET", "/api/v1/tokens?account=bot1", "", 200);
    const auto id = tokens.at("items").as_array()[0].at("id").to_number<std::uint64_t>();
    api(port, "DELETE", "/api/v1/tokens/" + std::to_string(id), "", 200);
    Native c(port);
    EXPECT_EQ(type_or_code(c.call(R"({"type":"hello","token":")" + good + R"("})")),
              "unauthenticated");
}

TEST(FrontendAuth, HomesteadAcceptsApiKeysScopedToIt) {
    TestServer server(auth_overrides({{"homestead.enabled", "true"},
                                      {"homestead.listen", "\"127.0.0.1:0\""},
                                      {"homestead.api_key", "\"gateway\""}}));
    const auto port = server.port();
    const auto homestead_port = server.app().server().bound_port("homestead");
    const auto scoped = api_key(port, "relay", R"(["homestead"])");
    const auto other = api_key(port, "chat", R"(["native"])");
    {
        RawClient raw(homestead_port);
        EXPECT_EQ(raw.upgrade("/sync?api_key=" + scoped).rfind("HTTP/1.1 101", 0), 0U);
    }
    {
        RawClient raw(homestead_port);
        EXPECT_EQ(raw.upgrade("/sync", "X-API-Key: " + scoped + "\r\n").rfind("HTTP/1.1 101", 0),
                  0U);
    }
    {
        RawClient raw(homestead_port);  // the configured key still works
        EXPECT_EQ(raw.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0U);
    }
    const std::string body = "{\"code\":401,\"message\":\"Invalid API key.\"}\n";
    for (const auto& key : {other, std::string("made-up-key")}) {
        RawClient raw(homestead_port);
        EXPECT_EQ(raw.upgrade("/sync?api_key=" + key).rfind("HTTP/1.1 401", 0), 0U) << key;
        EXPECT_EQ(raw.read_exactly(body.size()), body);
    }
}

TEST(FrontendAuth, TheLoadGeneratorSaysHelloWithItsToken) {
    TestServer server(auth_overrides({{"websocket.max_messages_per_s", "0"}}));
    const auto port = server.port();
    const auto key = api_key(port, "loadgen", R"(["native"])");
    const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/ws";
    const auto run =
        run_bench_drained({"fanout", "--url", url, "--publishers", "1", "--subscribers", "2",
                           "--duration", "1", "--json", "--token", key});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(r.at("errors").to_number<std::uint64_t>(), 0U) << json::serialize(r);
    EXPECT_GT(r.at("delivered").to_number<std::uint64_t>(), 0U);
    // Without the token the same run is refused: nothing is delivered, every request errs.
    const auto refused = run_bench({"fanout", "--url", url, "--publishers", "1", "--subscribers",
                                    "2", "--duration", "1", "--json"});
    const auto rr = report_of(refused);
    EXPECT_EQ(rr.at("delivered").to_number<std::uint64_t>(), 0U);
    EXPECT_GT(rr.at("errors").to_number<std::uint64_t>(), 0U);
}

}  // namespace
}  // namespace hearth::test
