// The game packet front-end's limits (docs/security.md, "The game packet front-end"), reproduced
// over real sockets against the real server: a flood of packets over the connection's rate, more
// bytes behind a login or a character request than the front-end holds while it answers, and
// logging in to one account again and again.

#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace wire = ::hearth::packet;
using client::Client;
using client::Error;

std::uint16_t packet_port(TestServer& s) {
    return s.app().server().bound_port("packet");
}

TEST(AbusePacket, AFloodOverThePacketRateIsRefusedThenClosed) {
    TestServer s{{"packet.enabled", "true"},
                 {"packet.listen", "\"127.0.0.1:0\""},
                 {"packet.max_packets_per_s", "10"},
                 {"packet.packet_burst", "20"}};
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", packet_port(s)).ok());
    std::string flood;
    for (int i = 0; i < 200; ++i) {
        wire::encode(flood, wire::Alive{});
    }
    ASSERT_TRUE(c.send_raw(flood).ok());
    // Alive has no answer: the first packet back is the refusal, and nothing follows it.
    auto p = c.receive();
    ASSERT_TRUE(p.ok()) << p.error().message;
    auto e = p->decode<wire::Error>();
    ASSERT_EQ(e.error, wire::WireError::kNone);
    EXPECT_EQ(e.message.code, wire::ErrorCode::kRateLimited);
    EXPECT_EQ(e.message.opcode, 0x0700);
    auto end = c.receive();
    ASSERT_FALSE(end.ok());
    EXPECT_EQ(end.error().kind, Error::Kind::kClosed);
    EXPECT_TRUE(eventually([&] {
        return s.metric("hearth_stream_disconnects_total",
                        {{"listener", "packet"}, {"reason", "rate_limited"}}) == 1;
    }));
    // Other connections are not affected.
    Client other;
    ASSERT_TRUE(other.connect("127.0.0.1", packet_port(s)).ok());
    auto refused = other.login_token("not-a-token");
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(refused.error().is(wire::ErrorCode::kBadCredentials));
}

TEST(AbusePacket, BytesBehindALoginPauseReadingAndAreAllHandledInOrder) {
    TestServer s{{"http.admin_token", "\"abuse-admin\""},
                 {"packet.enabled", "true"},
                 {"packet.listen", "\"127.0.0.1:0\""},
                 {"packet.max_packets_per_s", "0"},
                 {"packet.max_bytes_per_s", "0"}};
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", packet_port(s)).ok());
    // A login, then 96 KiB of Alive (more than the 64 KiB held while the login is checked), then
    // a logout: the server stops reading at the bound and resumes after the login's answer.
    std::string burst;
    wire::encode(
        burst, wire::LoginRequest{
                   .method = wire::LoginMethod::kToken, .username = {}, .secret = "no-such-token"});
    for (int i = 0; i < 16'384; ++i) {
        wire::encode(burst, wire::Alive{});
    }
    wire::encode(burst, wire::LogoutRequest{});
    ASSERT_TRUE(c.send_raw(burst).ok());
    auto refused = c.receive();
    ASSERT_TRUE(refused.ok()) << refused.error().message;
    auto e = refused->decode<wire::Error>();
    EXPECT_EQ(e.message.code, wire::ErrorCode::kBadCredentials);
    auto bye = c.receive();
    ASSERT_TRUE(bye.ok()) << bye.error().message;
    EXPECT_TRUE(bye->is(wire::Opcode::kLogout));
    auto end = c.receive();
    ASSERT_FALSE(end.ok());
    EXPECT_EQ(end.error().kind, Error::Kind::kClosed);
}

/// A token (API key with scope `packet`) of a new account `name` of `s`.
std::string packet_key(TestServer& s, const std::string& admin, const std::string& name) {
    auto a =
        api_request(s.port(), "POST", "/api/v1/accounts",
                    R"({"username":")" + name + R"(","password":"long enough password"})", admin);
    EXPECT_EQ(a.status, 201) << a.body;
    auto k = api_request(s.port(), "POST", "/api/v1/tokens",
                         R"({"account":")" + name + R"(","name":"k","scopes":["packet"]})", admin);
    EXPECT_EQ(k.status, 201) << k.body;
    return std::string(boost::json::parse(k.body).at("token").as_string());
}

TEST(AbusePacket, BytesBehindACharacterRequestPauseReadingAndAreAllHandledInOrder) {
    TestServer s{{"http.admin_token", "\"abuse-admin\""}, {"packet.enabled", "true"},
                 {"packet.listen", "\"127.0.0.1:0\""},    {"packet.max_packets_per_s", "0"},
                 {"packet.max_bytes_per_s", "0"},         {"characters.enabled", "true"}};
    const auto key = packet_key(s, "abuse-admin", "holder");
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", packet_port(s)).ok());
    ASSERT_TRUE(c.login_token(key).ok());
    // A create, then 96 KiB of Alive (more than the 64 KiB held while it is answered), then a
    // list and a logout: nothing is lost or reordered.
    std::string burst;
    wire::encode(burst, wire::CreateCharacterRequest{.name = "Holder", .looks = {}});
    for (int i = 0; i < 16'384; ++i) {
        wire::encode(burst, wire::Alive{});
    }
    wire::encode(burst, wire::CharacterListRequest{});
    wire::encode(burst, wire::LogoutRequest{});
    ASSERT_TRUE(c.send_raw(burst).ok());
    auto created = c.receive();
    ASSERT_TRUE(created.ok()) << created.error().message;
    EXPECT_TRUE(created->is(wire::Opcode::kCreateCharacter)) << created->type;
    auto list = c.receive();
    ASSERT_TRUE(list.ok()) << list.error().message;
    ASSERT_TRUE(list->is(wire::Opcode::kCharacterList)) << list->type;
    EXPECT_EQ(list->decode<wire::CharacterList>().message.characters.size(), 1U);
    auto bye = c.receive();
    ASSERT_TRUE(bye.ok()) << bye.error().message;
    EXPECT_TRUE(bye->is(wire::Opcode::kLogout));
}

TEST(AbusePacket, LoggingInToOneAccountInALoopKeepsAtMostItsBound) {
    TestServer s{{"http.admin_token", "\"abuse-admin\""},
                 {"packet.enabled", "true"},
                 {"packet.listen", "\"127.0.0.1:0\""}};
    const auto key = packet_key(s, "abuse-admin", "looper");
    // The default bound is 8: of 20 logins, the 12 oldest are taken over.
    std::vector<Client> clients(20);
    for (auto& c : clients) {
        ASSERT_TRUE(c.connect("127.0.0.1", packet_port(s)).ok());
        ASSERT_TRUE(c.login_token(key).ok());
    }
    for (std::size_t i = 0; i < 12; ++i) {
        auto p = clients[i].receive();
        ASSERT_TRUE(p.ok()) << i << ": " << p.error().message;
        EXPECT_EQ(p->decode<wire::Error>().message.code, wire::ErrorCode::kTakenOver) << i;
        auto end = clients[i].receive();
        ASSERT_FALSE(end.ok()) << i;
        EXPECT_EQ(end.error().kind, Error::Kind::kClosed) << i;
    }
    for (std::size_t i = 12; i < clients.size(); ++i) {
        ASSERT_TRUE(clients[i].alive().ok()) << i;
    }
    EXPECT_EQ(s.metric("hearth_packet_takeovers_total", {{"rule", "account"}}), 12);
    EXPECT_TRUE(eventually([&] { return s.metric("hearth_packet_logged_in", {}) == 8; }));
    // The 8 left are answered: the last one's request comes back, not a closed connection.
    auto list = clients.back().list_characters();
    ASSERT_FALSE(list.ok());
    EXPECT_TRUE(list.error().is(wire::ErrorCode::kUnavailable)) << list.error().name();
}

}  // namespace
}  // namespace hearth::test
