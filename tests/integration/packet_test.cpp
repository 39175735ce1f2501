// The game packet front-end (docs/protocol/packets.md) served by the real server over real TCP,
// spoken through the C++ client library (clients/cpp) where it fits and as raw bytes for what no
// client should send: login by password and by every token kind the door takes, the refusals,
// throttling, the framing's bounds, unknown and malformed packets, the connection states,
// keep-alive and the idle and login deadlines, the bound on an account's connections, and the
// character opcodes while the characters module is disabled (packet_characters_test.cpp has them
// served).

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/better_auth_schema.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"
#include "unit/store/postgres_server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
namespace wire = ::hearth::packet;
using client::Client;
using client::Error;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "packet-test-admin";

/// A packet's bytes: the header (size, type, crc 0), then `payload`.
std::string raw_packet(std::uint16_t type, const std::string& payload,
                       std::optional<std::uint16_t> size = {}) {
    const auto n = size.value_or(static_cast<std::uint16_t>(wire::kHeaderBytes + payload.size()));
    std::string out{static_cast<char>(n & 0xFF),
                    static_cast<char>(n >> 8),
                    static_cast<char>(type & 0xFF),
                    static_cast<char>(type >> 8),
                    0,
                    0};
    return out + payload;
}

/// The next packet, which must be an Error; its fields.
wire::Error next_error(Client& c, std::string& storage) {
    auto p = c.receive();
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    if (!p.ok()) {
        return {};
    }
    EXPECT_TRUE(p->is(wire::Opcode::kAlive)) << "type " << p->type;
    storage = p->payload;
    auto d = wire::decode<wire::Error>(storage);
    EXPECT_EQ(d.error, wire::WireError::kNone);
    return d.message;
}

/// Whether the server closed the connection, with nothing more sent.
bool closed_by_server(Client& c) {
    auto p = c.receive();
    return !p.ok() && p.error().kind == Error::Kind::kClosed;
}

class Packet : public ::testing::Test {
protected:
    void start(Overrides extra = {}) {
        Overrides o = {{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                       {"packet.enabled", "true"},
                       {"packet.listen", "\"127.0.0.1:0\""}};
        for (auto& [k, v] : extra) {
            o[k] = v;
        }
        server_ = std::make_unique<TestServer>(o);
    }
    void SetUp() override {
        if (!server_) {
            start();
        }
    }

    std::uint16_t port() const { return server_->app().server().bound_port("packet"); }

    Client connected() {
        Client c(client::ClientOptions{.timeout = kDeadline, .max_unread_packets = 64});
        auto s = c.connect("127.0.0.1", port());
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        return c;
    }

    json::value admin(const std::string& method, const std::string& target,
                      const std::string& body = "") {
        auto r = http_request(server_->port(), method, target, body,
                              {{"Authorization", std::string("Bearer ") + kAdminToken},
                               {"Content-Type", "application/json"}});
        EXPECT_LT(r.status, 300) << method << " " << target << ": " << r.body;
        return r.body.empty() ? json::value() : json::parse(r.body);
    }

    std::uint64_t account(const std::string& name, const std::string& password) {
        auto a = admin("POST", "/api/v1/accounts",
                       R"({"username":")" + name + R"(","password":")" + password + R"("})");
        return a.at("id").to_number<std::uint64_t>();
    }

    std::string api_key(const std::string& account, const std::string& scopes,
                        const std::string& extra = "") {
        auto k =
            admin("POST", "/api/v1/tokens",
                  R"({"account":")" + account + R"(","name":"k","scopes":)" + scopes + extra + "}");
        return std::string(k.at("token").as_string());
    }

    std::string session_of(const std::string& name, const std::string& password) {
        auto r = http_request(server_->port(), "POST", "/api/v1/auth/login",
                              R"({"username":")" + name + R"(","password":")" + password + R"("})",
                              {{"Content-Type", "application/json"}});
        EXPECT_EQ(r.status, 200) << r.body;
        return std::string(json::parse(r.body).at("token").as_string());
    }

    double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
        return server_->metric(name, labels);
    }

    std::unique_ptr<TestServer> server_;
};

// ---- login ------------------------------------------------------------------------------------

TEST_F(Packet, LoginByPasswordThenLogout) {
    const auto id = account("alice", "hunter2-long");
    auto c = connected();
    auto s = c.login_password("alice", "hunter2-long");
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->account_id, id);
    EXPECT_EQ(s->account_name, "alice");
    EXPECT_EQ(s->max_packet_bytes, 2047);
    EXPECT_EQ(s->idle_timeout_s, 60);
    ASSERT_TRUE(c.logout().ok());
    EXPECT_FALSE(c.connected());
    EXPECT_EQ(metric("hearth_packet_logins_total", {{"method", "password"}, {"result", "ok"}}), 1);
    // The login's session was the connection's alone: revoked once it closed.
    EXPECT_TRUE(eventually([&] {
        auto tokens = admin("GET", "/api/v1/tokens?account=alice&revoked=true");
        const auto& items = tokens.at("items").as_array();
        return items.size() == 1 && !items[0].at("revoked_at").is_null();
    }));
}

TEST_F(Packet, LoginsAndConnectionsAreEventsOfThePacketModule) {
    account("olga", "olga-password");
    {
        auto c = connected();
        ASSERT_FALSE(c.login_password("olga", "wrong-password").ok());
        ASSERT_TRUE(c.login_password("olga", "olga-password").ok());
    }
    auto kinds = [&](const std::string& type) {
        auto r = admin("GET", "/api/v1/events?module=packet&type=" + type);
        return r.at("items").as_array().size();
    };
    EXPECT_TRUE(eventually([&] { return kinds("login.ok") == 1 && kinds("login.failed") == 1; }));
    EXPECT_TRUE(eventually([&] { return kinds("connection.open") >= 1; }));
}

TEST_F(Packet, LoginByHearthSession) {
    const auto id = account("bob", "bob-password");
    const auto token = session_of("bob", "bob-password");
    auto c = connected();
    auto s = c.login_token(token);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->account_id, id);
    EXPECT_EQ(s->account_name, "bob");
}

TEST_F(Packet, LoginByApiKeyWithScopePacketOnly) {
    account("botty", "botty-password");
    const auto key = api_key("botty", R"(["packet"])");
    const auto other = api_key("botty", R"(["native"])");
    {
        auto c = connected();
        auto refused = c.login_token(other);
        ASSERT_FALSE(refused.ok());
        EXPECT_TRUE(refused.error().is(wire::ErrorCode::kRefusedTokenKind))
            << refused.error().name();
        EXPECT_EQ(refused.error().opcode, 0x0708);
        EXPECT_EQ(refused.error().message, "This token is not accepted here");
        // A refusal leaves the connection open for another try.
        auto s = c.login_token(key);
        ASSERT_TRUE(s.ok()) << s.error().message;
        EXPECT_EQ(s->account_name, "botty");
    }
    EXPECT_EQ(
        metric("hearth_auth_refusals_total", {{"door", "packet"}, {"reason", "missing_scope"}}), 1);
}

TEST_F(Packet, RefusedCredentials) {
    account("carol", "carol-password");
    auto c = connected();
    auto wrong = c.login_password("carol", "not-her-password");
    ASSERT_FALSE(wrong.ok());
    EXPECT_TRUE(wrong.error().is(wire::ErrorCode::kBadCredentials)) << wrong.error().name();
    auto unknown = c.login_password("nobody-here", "whatever-pass");
    ASSERT_FALSE(unknown.ok());
    EXPECT_TRUE(unknown.error().is(wire::ErrorCode::kBadCredentials)) << unknown.error().name();
    auto bad_token = c.login_token("no-such-token");
    ASSERT_FALSE(bad_token.ok());
    EXPECT_TRUE(bad_token.error().is(wire::ErrorCode::kBadCredentials));
    // Transfer tokens are reserved: none is valid yet.
    auto p = c.call(wire::LoginRequest{
        .method = wire::LoginMethod::kTransfer, .username = {}, .secret = "t0k3n"});
    ASSERT_FALSE(p.ok());
    EXPECT_TRUE(p.error().is(wire::ErrorCode::kBadCredentials));
    EXPECT_EQ(metric("hearth_packet_logins_total",
                     {{"method", "password"}, {"result", "bad_credentials"}}),
              2);
}

TEST_F(Packet, DisabledAccountIsSaidOnlyAfterThePassword) {
    const auto id = account("dora", "dora-password");
    admin("PATCH", "/api/v1/accounts/" + std::to_string(id), R"({"disabled":true})");
    auto c = connected();
    auto wrong = c.login_password("dora", "wrong-password");
    ASSERT_FALSE(wrong.ok());
    EXPECT_TRUE(wrong.error().is(wire::ErrorCode::kBadCredentials));
    auto right = c.login_password("dora", "dora-password");
    ASSERT_FALSE(right.ok());
    EXPECT_TRUE(right.error().is(wire::ErrorCode::kAccountDisabled)) << right.error().name();
}

TEST_F(Packet, ExpiredTokenIsSaidExpired) {
    account("erin", "erin-password");
    auto k = admin("POST", "/api/v1/tokens",
                   R"({"account":"erin","name":"short","scopes":["packet"],"ttl_s":1})");
    const std::string key(k.at("token").as_string());
    {
        auto c = connected();
        ASSERT_TRUE(c.login_token(key).ok());  // valid until it ends (and cached meanwhile)
    }
    std::optional<Error> refused;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!refused && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);  // poll interval
        auto c = connected();
        if (auto s = c.login_token(key); !s) {
            refused = s.error();
        }
    }
    ASSERT_TRUE(refused.has_value());
    EXPECT_TRUE(refused->is(wire::ErrorCode::kExpiredToken)) << refused->name();
}

TEST_F(Packet, AlreadyLoggedIn) {
    account("fred", "fred-password");
    auto c = connected();
    ASSERT_TRUE(c.login_password("fred", "fred-password").ok());
    auto again = c.login_password("fred", "fred-password");
    ASSERT_FALSE(again.ok());
    EXPECT_TRUE(again.error().is(wire::ErrorCode::kAlreadyLoggedIn));
    EXPECT_TRUE(c.alive().ok());
}

// ---- states -----------------------------------------------------------------------------------

TEST_F(Packet, RequestsBeforeLoginAreNotLoggedIn) {
    auto c = connected();
    auto list = c.list_characters();
    ASSERT_FALSE(list.ok());
    EXPECT_TRUE(list.error().is(wire::ErrorCode::kNotLoggedIn)) << list.error().name();
    EXPECT_EQ(list.error().opcode, 0x0712);
    auto enter = c.call(wire::EnterWorldRequest{});
    ASSERT_FALSE(enter.ok());
    EXPECT_TRUE(enter.error().is(wire::ErrorCode::kNotLoggedIn));
    // Alive is allowed and unanswered; logout before login closes.
    ASSERT_TRUE(c.alive().ok());
    ASSERT_TRUE(c.logout().ok());
}

TEST_F(Packet, WithCharactersDisabledTheCharacterPacketsSaySo) {
    // The fixture leaves [characters] disabled: the packet module runs without it.
    account("gina", "gina-password");
    auto c = connected();
    ASSERT_TRUE(c.login_password("gina", "gina-password").ok());
    const auto not_served = static_cast<std::uint32_t>(wire::Unavailable::kNotServed);
    auto list = c.list_characters();
    ASSERT_FALSE(list.ok());
    EXPECT_TRUE(list.error().is(wire::ErrorCode::kUnavailable)) << list.error().name();
    EXPECT_EQ(list.error().detail, not_served);
    EXPECT_EQ(list.error().message, "Characters are disabled on this server");
    auto create = c.create_character("Rowan", {});
    ASSERT_FALSE(create.ok());
    EXPECT_TRUE(create.error().is(wire::ErrorCode::kUnavailable));
    EXPECT_EQ(create.error().detail, not_served);
    auto select = c.select_character(42);
    ASSERT_FALSE(select.ok());
    EXPECT_TRUE(select.error().is(wire::ErrorCode::kUnavailable));
    auto remove = c.delete_character(42);
    ASSERT_FALSE(remove.ok());
    EXPECT_TRUE(remove.error().is(wire::ErrorCode::kUnavailable));
    // No character could be selected: the world's packets say that first.
    auto enter = c.call(wire::EnterWorldRequest{});
    ASSERT_FALSE(enter.ok());
    EXPECT_TRUE(enter.error().is(wire::ErrorCode::kNoCharacterSelected)) << enter.error().name();
    EXPECT_TRUE(c.alive().ok());
}

TEST_F(Packet, EnablingCharactersServesThemToConnectionsAlreadyOpen) {
    // The packet module does not need the characters module: each follows its own switch.
    account("hana", "hana-password");
    auto c = connected();
    ASSERT_TRUE(c.login_password("hana", "hana-password").ok());
    auto before = c.list_characters();
    ASSERT_FALSE(before.ok());
    EXPECT_TRUE(before.error().is(wire::ErrorCode::kUnavailable));
    admin("POST", "/api/v1/modules/characters/enable");
    auto made = c.create_character("Hana", {});
    ASSERT_TRUE(made.ok()) << made.error().message;
    ASSERT_TRUE(c.select_character(made->id).ok());
    admin("POST", "/api/v1/modules/characters/disable");
    // The connection stays; the characters are unavailable again.
    auto after = c.list_characters();
    ASSERT_FALSE(after.ok());
    EXPECT_TRUE(after.error().is(wire::ErrorCode::kUnavailable));
    EXPECT_EQ(after.error().detail, static_cast<std::uint32_t>(wire::Unavailable::kNotServed));
}

// ---- bad input --------------------------------------------------------------------------------

TEST_F(Packet, UnknownOpcodeKeepsTheConnection) {
    auto c = connected();
    ASSERT_TRUE(c.send_raw(raw_packet(0x0999, "xyz")).ok());
    std::string s;
    const auto e = next_error(c, s);
    EXPECT_EQ(e.code, wire::ErrorCode::kUnknownOpcode);
    EXPECT_EQ(e.opcode, 0x0999);
    EXPECT_EQ(e.message, "Unknown opcode");
    // A server-to-client opcode from a client is unknown too.
    ASSERT_TRUE(c.send_raw(raw_packet(0x1003, "")).ok());
    EXPECT_EQ(next_error(c, s).code, wire::ErrorCode::kUnknownOpcode);
    ASSERT_TRUE(c.logout().ok());
}

TEST_F(Packet, MalformedPacketKeepsTheConnection) {
    account("hank", "hank-password");
    auto c = connected();
    // method 7 does not exist
    ASSERT_TRUE(c.send_raw(raw_packet(0x0708, std::string("\x07\x00\x00\x00\x00", 5))).ok());
    std::string s;
    auto e = next_error(c, s);
    EXPECT_EQ(e.code, wire::ErrorCode::kMalformedPacket);
    EXPECT_EQ(e.opcode, 0x0708);
    EXPECT_EQ(e.detail, static_cast<std::uint32_t>(wire::WireError::kBadValue));
    // a payload that ends inside the username
    ASSERT_TRUE(c.send_raw(raw_packet(0x0708, std::string("\x00\x05\x00"
                                                          "ab",
                                                          5)))
                    .ok());
    e = next_error(c, s);
    EXPECT_EQ(e.code, wire::ErrorCode::kMalformedPacket);
    EXPECT_EQ(e.detail, static_cast<std::uint32_t>(wire::WireError::kTruncated));
    // invalid UTF-8
    ASSERT_TRUE(
        c.send_raw(raw_packet(0x0708, std::string("\x00\x02\x00\xff\xfe\x00\x00", 7))).ok());
    e = next_error(c, s);
    EXPECT_EQ(e.detail, static_cast<std::uint32_t>(wire::WireError::kBadUtf8));
    ASSERT_TRUE(c.login_password("hank", "hank-password").ok());
}

TEST_F(Packet, OversizePacketIsRefusedThenClosed) {
    auto c = connected();
    // Only the header: the server answers without waiting for the payload.
    ASSERT_TRUE(c.send_raw(raw_packet(0x0708, "", 2048)).ok());
    std::string s;
    const auto e = next_error(c, s);
    EXPECT_EQ(e.code, wire::ErrorCode::kPacketTooLarge);
    EXPECT_EQ(e.detail, 2048U);
    EXPECT_EQ(e.opcode, 0);
    EXPECT_TRUE(closed_by_server(c));
}

TEST_F(Packet, PacketOfTheMaximumSizeIsAccepted) {
    auto c = connected();
    // 2047 bytes of an unknown opcode: read whole, then refused as unknown, not as too large.
    ASSERT_TRUE(c.send_raw(raw_packet(0x0999, std::string(2047 - 6, 'x'))).ok());
    std::string s;
    EXPECT_EQ(next_error(c, s).code, wire::ErrorCode::kUnknownOpcode);
}

TEST_F(Packet, UndersizePacketIsRefusedThenClosed) {
    auto c = connected();
    ASSERT_TRUE(c.send_raw(raw_packet(0x0700, "", 5)).ok());
    std::string s;
    const auto e = next_error(c, s);
    EXPECT_EQ(e.code, wire::ErrorCode::kPacketTooSmall);
    EXPECT_EQ(e.detail, 5U);
    EXPECT_TRUE(closed_by_server(c));
}

TEST_F(Packet, PacketsAfterALoginAreAnsweredInOrder) {
    account("ivy", "ivy-password");
    auto c = connected();
    // The login and a request sent at once: the request waits for the login's answer.
    std::string both;
    wire::encode(both, wire::LoginRequest{.method = wire::LoginMethod::kPassword,
                                          .username = "ivy",
                                          .secret = "ivy-password"});
    wire::encode(both, wire::CharacterListRequest{});
    ASSERT_TRUE(c.send_raw(both).ok());
    auto first = c.receive();
    ASSERT_TRUE(first.ok());
    EXPECT_TRUE(first->is(wire::Opcode::kLogin)) << first->type;
    std::string s;
    EXPECT_EQ(next_error(c, s).code, wire::ErrorCode::kUnavailable);  // not not_logged_in
}

// ---- keep-alive and deadlines -------------------------------------------------------------------

TEST_F(Packet, AliveKeepsAConnectionPastTheIdleTimeoutThenSilenceCloses) {
    server_.reset();
    start({{"packet.idle_timeout_s", "1"}});
    account("jack", "jack-password");
    auto c = connected();
    auto s = c.login_password("jack", "jack-password");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->idle_timeout_s, 1);
    // Three idle timeouts' worth of Alive every 150 ms (well within the timeout, for a loaded
    // machine): nothing comes back, the connection stays.
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(c.alive().ok());
        auto p = c.receive(150ms);
        ASSERT_FALSE(p.ok()) << "got type " << p->type;
        ASSERT_EQ(p.error().kind, Error::Kind::kTimeout) << p.error().message;
    }
    // Then silence: the idle timeout's Error, and the close.
    std::string storage;
    const auto e = next_error(c, storage);
    EXPECT_EQ(e.code, wire::ErrorCode::kIdleTimeout);
    EXPECT_EQ(e.opcode, 0);
    EXPECT_TRUE(closed_by_server(c));
}

TEST_F(Packet, AConnectionThatDoesNotLogInIsClosed) {
    server_.reset();
    start({{"packet.login_timeout_s", "1"}});
    auto c = connected();
    // Alive does not keep a connection that never logs in.
    ASSERT_TRUE(c.alive().ok());
    std::string storage;
    const auto e = next_error(c, storage);
    EXPECT_EQ(e.code, wire::ErrorCode::kIdleTimeout);
    EXPECT_TRUE(closed_by_server(c));
}

// ---- an account's connections ------------------------------------------------------------------

TEST_F(Packet, ALoginBeyondTheAccountsConnectionsTakesTheOldestOver) {
    server_.reset();
    start({{"packet.max_connections_per_account", "2"}});
    account("kim", "kim-password");
    const auto key = api_key("kim", R"(["packet"])");
    auto first = connected();
    ASSERT_TRUE(first.login_password("kim", "kim-password").ok());
    auto second = connected();
    ASSERT_TRUE(second.login_password("kim", "kim-password").ok());
    // Two connections of one account live side by side (each may play a character).
    ASSERT_TRUE(first.alive().ok());
    auto quiet = first.receive(200ms);
    ASSERT_FALSE(quiet.ok());
    EXPECT_EQ(quiet.error().kind, Error::Kind::kTimeout);
    // A third, whatever the credential: the oldest is told why and closed.
    auto third = connected();
    ASSERT_TRUE(third.login_token(key).ok());
    std::string storage;
    const auto e = next_error(first, storage);
    EXPECT_EQ(e.code, wire::ErrorCode::kTakenOver);
    EXPECT_EQ(e.opcode, 0);
    EXPECT_EQ(e.message, "Logged in from another connection");
    EXPECT_TRUE(closed_by_server(first));
    // The others are unaffected.
    ASSERT_TRUE(second.alive().ok());
    ASSERT_TRUE(third.alive().ok());
    EXPECT_EQ(server_->metric("hearth_packet_takeovers_total", {{"rule", "account"}}), 1);
    // Other accounts are not counted with it.
    account("lee", "lee-password");
    auto fourth = connected();
    ASSERT_TRUE(fourth.login_password("lee", "lee-password").ok());
    auto nothing = second.receive(200ms);
    ASSERT_FALSE(nothing.ok());
    EXPECT_EQ(nothing.error().kind, Error::Kind::kTimeout);
    EXPECT_TRUE(eventually([&] { return server_->metric("hearth_packet_logged_in", {}) == 3; }));
}

TEST_F(Packet, DisablingTheModuleSaysShuttingDown) {
    account("mia", "mia-password");
    auto c = connected();
    ASSERT_TRUE(c.login_password("mia", "mia-password").ok());
    admin("POST", "/api/v1/modules/packet/disable");
    std::string storage;
    const auto e = next_error(c, storage);
    EXPECT_EQ(e.code, wire::ErrorCode::kShuttingDown);
    EXPECT_TRUE(closed_by_server(c));
}

// ---- throttling ---------------------------------------------------------------------------------

TEST_F(Packet, FailedPasswordLoginsAreThrottled) {
    server_.reset();
    start({{"auth.throttle_free_failures", "2"}, {"auth.throttle_base_delay_ms", "60000"}});
    account("nora", "nora-password");
    auto c = connected();
    // The free failures and the attempt after them are checked; the next one must wait.
    for (int i = 0; i < 3; ++i) {
        auto r = c.login_password("nora", "wrong-password");
        ASSERT_FALSE(r.ok());
        ASSERT_TRUE(r.error().is(wire::ErrorCode::kBadCredentials)) << i << r.error().name();
    }
    auto throttled = c.login_password("nora", "nora-password");
    ASSERT_FALSE(throttled.ok());
    EXPECT_TRUE(throttled.error().is(wire::ErrorCode::kThrottled)) << throttled.error().name();
    EXPECT_GE(throttled.error().detail, 1U);
    EXPECT_LE(throttled.error().detail, 60U);
    EXPECT_EQ(throttled.error().message, "Too many failed logins, try again later");
    EXPECT_EQ(
        metric("hearth_packet_logins_total", {{"method", "password"}, {"result", "throttled"}}), 1);
}

// ---- the client library on its own ------------------------------------------------------------

TEST(PacketClient, ConnectingToNothingIsALocalError) {
    // A port that was free a moment ago: nothing listens there.
    std::uint16_t port = 0;
    {
        TestServer s{{"packet.enabled", "true"}, {"packet.listen", "\"127.0.0.1:0\""}};
        port = s.app().server().bound_port("packet");
    }
    Client c;
    auto r = c.connect("127.0.0.1", port);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, Error::Kind::kIo) << r.error().message;
    EXPECT_FALSE(c.connected());
    auto login = c.login_password("a", "b");
    ASSERT_FALSE(login.ok());
    EXPECT_EQ(login.error().kind, Error::Kind::kClosed);
}

TEST_F(Packet, TheExampleProgramLogsInAndOut) {
    account("pat", "pat-password");
    const std::string example = built_binary("hearth_client_login");
    {
        ChildProcess run({"127.0.0.1", std::to_string(port()), "pat", "pat-password"}, {}, "",
                         ChildOptions{.program = example, .capture_stderr = true});
        EXPECT_EQ(run.wait_exit(), 0) << run.output();
        EXPECT_NE(run.output().find("logged in as pat"), std::string::npos) << run.output();
        // The characters module is disabled here: the example says so and goes on.
        EXPECT_NE(
            run.output().find("characters: Characters are disabled on this server (unavailable)"),
            std::string::npos)
            << run.output();
        EXPECT_NE(run.output().find("logged out"), std::string::npos) << run.output();
    }
    ChildProcess refused({"127.0.0.1", std::to_string(port()), "pat", "wrong-password"}, {}, "",
                         ChildOptions{.program = example, .capture_stderr = true});
    EXPECT_EQ(refused.wait_exit(), 1) << refused.output();
    EXPECT_NE(refused.output().find("bad_credentials"), std::string::npos) << refused.output();
}

// ---- config -------------------------------------------------------------------------------------

TEST(PacketConfig, BadValuesAreRefusedWithTheKeyNamed) {
    const auto schema = app::make_schema();
    TempDir dir;
    auto errors_of = [&](const Overrides& o) {
        auto loaded = schema.load_string(test_config_toml(o, dir.path()), "packet.toml", {});
        std::string all;
        for (const auto& e : loaded.errors) {
            all += e + "\n";
        }
        return all;
    };
    EXPECT_NE(errors_of({{"packet.max_packet_bytes", "1023"}}).find("packet.max_packet_bytes"),
              std::string::npos);
    EXPECT_NE(errors_of({{"packet.max_packet_bytes", "65536"}}).find("packet.max_packet_bytes"),
              std::string::npos);
    EXPECT_NE(errors_of({{"packet.listen", "\"no-port\""}}).find("packet.listen"),
              std::string::npos);
    EXPECT_NE(errors_of({{"packet.idle_timeout_s", "0"}}).find("packet.idle_timeout_s"),
              std::string::npos);
    EXPECT_NE(errors_of({{"packet.packet_burst", "0.5"}}).find("packet.packet_burst"),
              std::string::npos);
    EXPECT_NE(errors_of({{"packet.max_connections_per_account", "0"}})
                  .find("packet.max_connections_per_account"),
              std::string::npos);
    EXPECT_EQ(errors_of({{"packet.max_packet_bytes", "65535"},
                         {"packet.max_packets_per_s", "0"},
                         {"packet.max_connections_per_account", "1"}}),
              "");
}

// ---- an external (better-auth) session
// ------------------------------------------------------------

TEST(PacketBetterAuth, AnExternalSessionLogsIn) {
    auto& pg = store::test::PostgresServer::shared();
    const std::string url = pg.create_database();
    store::test::PostgresServer::exec(url, kBetterAuthDefaultSchema);
    store::test::PostgresServer::exec(url, R"sql(
INSERT INTO "user" (id, name, email) VALUES ('u-web', 'Webby', 'webby@example.org');
INSERT INTO "session" (id, token, "userId", "expiresAt")
    VALUES ('s1', 'tok-web', 'u-web', now() + interval '1 hour');
)sql");
    TestServer s{{"packet.enabled", "true"},
                 {"packet.listen", "\"127.0.0.1:0\""},
                 {"auth.better_auth.enabled", "true"},
                 {"auth.better_auth.postgres_url", "\"" + url + "\""}};
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", s.app().server().bound_port("packet")).ok());
    auto session = c.login_token("tok-web");
    ASSERT_TRUE(session.ok()) << session.error().message;
    EXPECT_EQ(session->account_name, "Webby");
    EXPECT_GT(session->account_id, 0U);
    auto again = c.login_token("tok-nobody");
    ASSERT_FALSE(again.ok());
    EXPECT_TRUE(again.error().is(wire::ErrorCode::kAlreadyLoggedIn));
}

}  // namespace
}  // namespace hearth::test
