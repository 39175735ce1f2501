// The game packet front-end's limits (docs/security.md, "The game packet front-end"), reproduced
// over real sockets against the real server: a flood of packets over the connection's rate, and
// more bytes behind a login than the front-end holds while it checks the login.

#include <string>

#include <gtest/gtest.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
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

}  // namespace
}  // namespace hearth::test
