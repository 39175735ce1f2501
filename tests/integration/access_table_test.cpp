// Every cell of docs/security.md's table "Which tokens each door accepts", through the real
// doors: Homestead's /sync upgrade, the native protocol's hello, Moonshare's session_auth, the
// operator API, the game packets' token login, and DracoSoft's login (which takes no token at
// all). Refusals first; then what
// each door accepts. One server serves every test of a door, so the tokens are made once.

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdminToken = "access-table-admin";
constexpr const char* kGatewayKey = "configured-gateway-key";

/// A DracoSoft frame: a 4-byte big-endian length, then the JSON text.
std::string draco_frame(const std::string& payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                    static_cast<char>(n >> 8), static_cast<char>(n)};
    return out + payload;
}

/// Sends one DracoSoft request and returns the answer's JSON.
json::object draco_call(std::uint16_t port, const std::string& request) {
    RawClient c(port);
    c.write(draco_frame(request));
    auto head = c.read_exactly(4);
    EXPECT_GE(head.size(), 4U);
    const auto* b = reinterpret_cast<const unsigned char*>(head.data());
    const std::size_t n = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) |
                          (std::size_t{b[2]} << 8) | std::size_t{b[3]};
    std::string body = head.substr(4);
    if (body.size() < n) {
        body += c.read_exactly(n - body.size());
    }
    return json::parse(body.substr(0, n)).as_object();
}

/// The tokens of every kind, made once for the suite through the server's own doors.
struct Tokens {
    std::string player_session;    // DracoSoft's register: any self-registered player has one
    std::string admin_session;     // an admin account's login at /api/v1/auth/login
    std::string native_key;        // API key, scope native, of a player account
    std::string homestead_key;     // API key, scope homestead, of a player account
    std::string packet_key;        // API key, scope packet, of a player account
    std::string admin_key;         // API key, scope admin, of an admin account
    std::string player_admin_key;  // API key, scope admin, of a player account
    std::string guest;             // Moonshare's token server, for user id "guest-user"
    std::string revoked;           // API key, scope homestead and native, revoked
};

class AccessTable : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        server_ = new TestServer(Overrides{
            {"http.admin_token", std::string("\"") + kAdminToken + "\""},
            {"native.allow_anonymous", "false"},
            {"homestead.enabled", "true"},
            {"homestead.listen", "\"127.0.0.1:0\""},
            {"homestead.api_key", std::string("\"") + kGatewayKey + "\""},
            {"dracosoft.enabled", "true"},
            {"dracosoft.listen", "\"127.0.0.1:0\""},
            {"packet.enabled", "true"},
            {"packet.listen", "\"127.0.0.1:0\""},
            {"moonshare.enabled", "true"},
            {"moonshare.token_listen", "\"127.0.0.1:0\""},
            {"moonshare.auth_listen", "\"127.0.0.1:0\""},
            {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
            {"moonshare.player_listen", R"(["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"])"},
            {"websocket.max_messages_per_s", "0"}});
        tokens_ = new Tokens(make_tokens());
    }
    static void TearDownTestSuite() {
        delete tokens_;
        tokens_ = nullptr;
        delete server_;
        server_ = nullptr;
    }

    static std::uint16_t api_port() { return server_->port(); }
    static std::uint16_t port_of(const std::string& listener) {
        return server_->app().server().bound_port(listener);
    }
    static const Tokens& tokens() { return *tokens_; }

    static json::value admin(const std::string& method, const std::string& target,
                             const std::string& body = "") {
        auto r = http_request(api_port(), method, target, body,
                              {{"Authorization", std::string("Bearer ") + kAdminToken},
                               {"Content-Type", "application/json"}});
        EXPECT_LT(r.status, 300) << method << " " << target << ": " << r.body;
        return r.body.empty() ? json::value() : json::parse(r.body);
    }

    static std::string key_of(const std::string& account, const std::string& scopes) {
        auto key = admin("POST", "/api/v1/tokens",
                         R"({"account":")" + account + R"(","name":"k","scopes":)" + scopes + "}");
        return std::string(key.at("token").as_string());
    }

    static Tokens make_tokens() {
        Tokens t;
        // The issue's attack starts here: a self-registered DracoSoft player.
        auto reg = draco_call(
            port_of("dracosoft"),
            R"({"type":"auth","action":"register","username":"mallory1","password":"longenough1"})");
        EXPECT_TRUE(reg.at("success").as_bool()) << json::serialize(reg);
        t.player_session = std::string(reg.at("token").as_string());

        admin("POST", "/api/v1/accounts",
              R"({"username":"boss","password":"boss-password","roles":["admin"]})");
        auto login = http_request(api_port(), "POST", "/api/v1/auth/login",
                                  R"({"username":"boss","password":"boss-password"})",
                                  {{"Content-Type", "application/json"}});
        EXPECT_EQ(login.status, 200) << login.body;
        t.admin_session = std::string(json::parse(login.body).at("token").as_string());

        admin("POST", "/api/v1/accounts", R"({"username":"botty","password":"botty-password"})");
        t.native_key = key_of("botty", R"(["native"])");
        t.homestead_key = key_of("botty", R"(["homestead"])");
        t.packet_key = key_of("botty", R"(["packet"])");
        t.player_admin_key = key_of("botty", R"(["admin"])");
        t.admin_key = key_of("boss", R"(["admin"])");
        t.revoked = key_of("botty", R"(["homestead","native"])");
        auto listed = admin("GET", "/api/v1/tokens?account=botty");
        for (const auto& item : listed.at("items").as_array()) {
            const auto id = item.at("id").to_number<std::uint64_t>();
            if (item.at("scopes").as_array().size() == 2) {
                admin("DELETE", "/api/v1/tokens/" + std::to_string(id));
            }
        }

        auto guest = http_request(port_of("moonshare-token"), "GET", "/sessions?userId=guest-user");
        EXPECT_EQ(guest.status, 200) << guest.body;
        t.guest = std::string(json::parse(guest.body).at("token").as_string());
        return t;
    }

    static double refusals(const std::string& door, const std::string& reason) {
        return server_->metric("hearth_auth_refusals_total", {{"door", door}, {"reason", reason}});
    }

    // ---- the doors ----

    /// The status line's code of /sync's upgrade with `key` as api_key.
    static int homestead_status(const std::string& key) {
        RawClient raw(port_of("homestead"));
        const auto head = raw.upgrade("/sync?api_key=" + key);
        return std::stoi(head.substr(9, 3));
    }

    /// The type (or error code) of the native protocol's answer to a hello with `token`.
    static std::string native_hello(const std::string& token) {
        WsClient ws(api_port(), WsOptions{.path = "/ws"});
        ws.send_text(R"({"type":"hello","token":")" + token + R"("})");
        auto m = ws.read();
        if (!m) {
            return "closed";
        }
        auto r = json::parse(m->data).as_object();
        if (r.at("type").as_string() == "error") {
            return std::string(r.at("code").as_string());
        }
        return std::string(r.at("type").as_string());
    }

    /// Whether Moonshare's session_auth for `user` with `token` succeeds.
    static bool moonshare_auth(const std::string& user, const std::string& token) {
        WsClient ws(port_of("moonshare-alpha"), WsOptions{.path = "/player"});
        ws.send_text(json::serialize(
            json::object{{"type", "session_auth"}, {"userId", user}, {"token", token}}));
        auto m = ws.read();
        if (!m) {
            return false;
        }
        auto r = json::parse(m->data).as_object();
        EXPECT_EQ(r.at("type").as_string(), "session_auth_result") << m->data;
        return r.at("success").as_bool();
    }

    /// "ok", or the error code's name, of a game packet login with `token`.
    static std::string packet_login(const std::string& token) {
        client::Client c;
        EXPECT_TRUE(c.connect("127.0.0.1", port_of("packet")).ok());
        auto s = c.login_token(token);
        return s ? "ok" : std::string(s.error().name());
    }

    /// The status of an operator request with `token` as the bearer token.
    static int operator_status(const std::string& token) {
        std::map<std::string, std::string> headers;
        if (!token.empty()) {
            headers["Authorization"] = "Bearer " + token;
        }
        return http_request(api_port(), "GET", "/api/v1/accounts", "", headers).status;
    }

    static TestServer* server_;
    static Tokens* tokens_;
};

TestServer* AccessTable::server_ = nullptr;
Tokens* AccessTable::tokens_ = nullptr;

// ---- Homestead /sync: its configured api_key, or an API key with scope homestead ----------------

TEST_F(AccessTable, TheIssuesAttackFails) {
    // A DracoSoft registration's session used to pass /sync and act as the bot of every channel.
    EXPECT_EQ(homestead_status(tokens().player_session), 401);
    const std::string body = "{\"code\":401,\"message\":\"Invalid API key.\"}\n";
    RawClient raw(port_of("homestead"));
    EXPECT_EQ(raw.upgrade("/sync?api_key=" + tokens().player_session).rfind("HTTP/1.1 401", 0), 0U);
    EXPECT_EQ(raw.read_exactly(body.size()), body);
}

TEST_F(AccessTable, HomesteadRefusesSessionsGuestsAndOtherScopes) {
    const double homestead_missing_scope_before = refusals("homestead", "missing_scope");
    const double homestead_invalid_token_before = refusals("homestead", "invalid_token");
    const double before = refusals("homestead", "kind_not_accepted");
    EXPECT_EQ(homestead_status(tokens().player_session), 401);
    EXPECT_EQ(homestead_status(tokens().admin_session), 401);
    EXPECT_EQ(homestead_status(tokens().guest), 401);
    EXPECT_EQ(refusals("homestead", "kind_not_accepted"), before + 3);
    EXPECT_EQ(homestead_status(tokens().native_key), 401);
    EXPECT_EQ(homestead_status(tokens().admin_key), 401);
    EXPECT_EQ(refusals("homestead", "missing_scope"), homestead_missing_scope_before + 2);
    EXPECT_EQ(homestead_status(tokens().revoked), 401);
    EXPECT_EQ(homestead_status("made-up-key"), 401);
    EXPECT_EQ(refusals("homestead", "invalid_token"), homestead_invalid_token_before + 2);
    EXPECT_EQ(homestead_status(""), 401);
}

TEST_F(AccessTable, HomesteadAcceptsItsKeyAndItsScope) {
    EXPECT_EQ(homestead_status(kGatewayKey), 101);
    EXPECT_EQ(homestead_status(tokens().homestead_key), 101);
}

// ---- native hello: API keys with scope native, sessions of accounts with a session role -------

TEST_F(AccessTable, NativeRefusesGuestsOtherScopesAndDeadTokens) {
    const double native_kind_not_accepted_before = refusals("native", "kind_not_accepted");
    const double native_missing_scope_before = refusals("native", "missing_scope");
    EXPECT_EQ(native_hello(tokens().guest), "not_allowed");
    EXPECT_EQ(refusals("native", "kind_not_accepted"), native_kind_not_accepted_before + 1);
    EXPECT_EQ(native_hello(tokens().homestead_key), "not_allowed");
    EXPECT_EQ(native_hello(tokens().admin_key), "not_allowed");
    EXPECT_EQ(refusals("native", "missing_scope"), native_missing_scope_before + 2);
    EXPECT_EQ(native_hello(tokens().revoked), "unauthenticated");
    EXPECT_EQ(native_hello("made-up"), "unauthenticated");
    EXPECT_EQ(native_hello(""), "unauthenticated");
}

TEST_F(AccessTable, NativeAcceptsItsScopeAndPlayersSessions) {
    EXPECT_EQ(native_hello(tokens().native_key), "welcome");
    EXPECT_EQ(native_hello(tokens().player_session), "welcome");
    EXPECT_EQ(native_hello(tokens().admin_session), "welcome");
}

// ---- Moonshare session_auth: its own guest tokens, for the user id they were issued to --------

TEST_F(AccessTable, MoonshareRefusesEveryOtherKind) {
    const double moonshare_kind_not_accepted_before = refusals("moonshare", "kind_not_accepted");
    const double moonshare_invalid_token_before = refusals("moonshare", "invalid_token");
    EXPECT_FALSE(moonshare_auth("mallory1", tokens().player_session));
    EXPECT_FALSE(moonshare_auth("boss", tokens().admin_session));
    EXPECT_FALSE(moonshare_auth("botty", tokens().native_key));
    EXPECT_FALSE(moonshare_auth("botty", tokens().homestead_key));
    EXPECT_FALSE(moonshare_auth("boss", tokens().admin_key));
    EXPECT_EQ(refusals("moonshare", "kind_not_accepted"), moonshare_kind_not_accepted_before + 5);
    EXPECT_FALSE(moonshare_auth("guest-user", "0123456789abcdef0123456789abcdef"));
    EXPECT_EQ(refusals("moonshare", "invalid_token"), moonshare_invalid_token_before + 1);
}

TEST_F(AccessTable, MoonshareRefusesAGuestTokenForAnotherUser) {
    const double before = refusals("moonshare", "wrong_subject");
    EXPECT_FALSE(moonshare_auth("someone-else", tokens().guest));
    EXPECT_EQ(refusals("moonshare", "wrong_subject"), before + 1);
}

TEST_F(AccessTable, MoonshareAcceptsItsGuestToken) {
    EXPECT_TRUE(moonshare_auth("guest-user", tokens().guest));
}

// ---- operator API: the admin token, admin accounts' sessions, admin-scoped keys of admins ------

TEST_F(AccessTable, OperatorApiRefusesEveryoneElse) {
    const double operator_missing_role_before = refusals("operator", "missing_role");
    const double operator_missing_scope_before = refusals("operator", "missing_scope");
    const double operator_kind_not_accepted_before = refusals("operator", "kind_not_accepted");
    EXPECT_EQ(operator_status(""), 401);
    EXPECT_EQ(operator_status("made-up"), 401);
    EXPECT_EQ(operator_status(tokens().revoked), 401);
    EXPECT_EQ(operator_status(tokens().player_session), 403);
    EXPECT_EQ(operator_status(tokens().guest), 403);
    EXPECT_EQ(operator_status(tokens().native_key), 403);
    EXPECT_EQ(operator_status(tokens().homestead_key), 403);
    EXPECT_EQ(operator_status(tokens().player_admin_key), 403);
    EXPECT_EQ(refusals("operator", "missing_role"),
              operator_missing_role_before + 2);  // player's session, player's admin key
    EXPECT_EQ(refusals("operator", "missing_scope"),
              operator_missing_scope_before + 2);  // keys without scope admin
    EXPECT_EQ(refusals("operator", "kind_not_accepted"),
              operator_kind_not_accepted_before + 1);  // the guest token
}

TEST_F(AccessTable, OperatorApiAcceptsAdmins) {
    EXPECT_EQ(operator_status(kAdminToken), 200);
    EXPECT_EQ(operator_status(tokens().admin_session), 200);
    EXPECT_EQ(operator_status(tokens().admin_key), 200);
}

// ---- game packets: sessions of any role, API keys with scope packet ---------------------------

TEST_F(AccessTable, PacketRefusesGuestsOtherScopesAndDeadTokens) {
    const double kind_before = refusals("packet", "kind_not_accepted");
    const double scope_before = refusals("packet", "missing_scope");
    EXPECT_EQ(packet_login(tokens().guest), "refused_token_kind");
    EXPECT_EQ(refusals("packet", "kind_not_accepted"), kind_before + 1);
    EXPECT_EQ(packet_login(tokens().native_key), "refused_token_kind");
    EXPECT_EQ(packet_login(tokens().admin_key), "refused_token_kind");
    EXPECT_EQ(refusals("packet", "missing_scope"), scope_before + 2);
    EXPECT_EQ(packet_login(tokens().revoked), "bad_credentials");
    EXPECT_EQ(packet_login("made-up"), "bad_credentials");
    EXPECT_EQ(packet_login(""), "bad_credentials");
}

TEST_F(AccessTable, PacketAcceptsItsScopeAndSessions) {
    EXPECT_EQ(packet_login(tokens().packet_key), "ok");
    EXPECT_EQ(packet_login(tokens().player_session), "ok");
    EXPECT_EQ(packet_login(tokens().admin_session), "ok");
}

// ---- DracoSoft: username and password; a token opens nothing -----------------------------------

TEST_F(AccessTable, DracosoftTakesNoToken) {
    for (const auto& token : {tokens().player_session, tokens().native_key, tokens().guest}) {
        auto r = draco_call(port_of("dracosoft"),
                            R"({"type":"auth","action":"login","token":")" + token + R"("})");
        EXPECT_FALSE(r.at("success").as_bool());
        EXPECT_EQ(r.at("message").as_string(), "Missing required fields");
        // Nor is a token a password.
        r = draco_call(port_of("dracosoft"),
                       R"({"type":"auth","action":"login","username":"mallory1","password":")" +
                           token + R"("})");
        EXPECT_FALSE(r.at("success").as_bool());
    }
    auto r = draco_call(
        port_of("dracosoft"),
        R"({"type":"auth","action":"login","username":"mallory1","password":"longenough1"})");
    EXPECT_TRUE(r.at("success").as_bool()) << json::serialize(r);
}

// ---- [native] session_roles decides which sessions say hello ----------------------------------

TEST(AccessTableConfig, NativeSessionRolesNarrowWhichSessionsPass) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                       {"native.allow_anonymous", "false"},
                       {"native.session_roles", R"(["admin"])"}});
    const auto port = server.port();
    const std::map<std::string, std::string> admin_headers{
        {"Authorization", std::string("Bearer ") + kAdminToken},
        {"Content-Type", "application/json"}};
    auto session_of = [&](const std::string& name, const std::string& roles) {
        EXPECT_EQ(http_request(port, "POST", "/api/v1/accounts",
                               R"({"username":")" + name + R"(","password":"password-of-)" + name +
                                   R"(","roles":)" + roles + "}",
                               admin_headers)
                      .status,
                  201);
        auto login = http_request(
            port, "POST", "/api/v1/auth/login",
            R"({"username":")" + name + R"(","password":"password-of-)" + name + R"("})",
            {{"Content-Type", "application/json"}});
        EXPECT_EQ(login.status, 200) << login.body;
        return std::string(json::parse(login.body).at("token").as_string());
    };
    const auto player = session_of("pia", R"(["player"])");
    const auto boss = session_of("bea", R"(["admin"])");
    auto hello = [&](const std::string& token) {
        WsClient ws(port, WsOptions{.path = "/ws"});
        ws.send_text(R"({"type":"hello","token":")" + token + R"("})");
        auto m = ws.read();
        EXPECT_TRUE(m);
        auto r = json::parse(m ? m->data : "{}").as_object();
        return std::string(r.contains("code") ? r.at("code").as_string()
                                              : r.at("type").as_string());
    };
    EXPECT_EQ(hello(player), "not_allowed");
    EXPECT_EQ(server.metric("hearth_auth_refusals_total",
                            {{"door", "native"}, {"reason", "missing_role"}}),
              1);
    EXPECT_EQ(hello(boss), "welcome");
}

TEST(AccessTableConfig, UnknownSessionRolesAreAConfigError) {
    EXPECT_THROW(TestServer({{"native.session_roles", R"(["owner"])"}}), std::exception);
}

}  // namespace
}  // namespace hearth::test
