// The game packet front-end's world opcodes under abuse (docs/protocol/packets.md, "A session",
// "Limits"; docs/security.md), over real sockets against the real server with the world running:
// world packets in every state before the world (and character packets in it) are refused and
// the connection goes on; malformed world packets leave the character in the world; a flood of
// moves hits the connection's packet rate and closes that connection alone; a flood of chat and
// whispers is dropped past the world's chat rate without closing.

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/packet_world.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

using client::Client;
using namespace std::chrono_literals;

constexpr const char* kAdmin = "abuse-world-admin";

class AbusePacketWorld : public ::testing::Test {
protected:
    /// The test zones (support/packet_world.hpp), zone 1 replaced by `field` when given.
    void start(Overrides extra = {}, const std::string& field = {}) {
        write_test_zones(zones_.path());
        if (!field.empty()) {
            std::ofstream(zones_.file("field.toml")) << field;
        }
        extra.merge(world_overrides(zones_.path(), kAdmin));
        server_ = std::make_unique<TestServer>(extra);
    }

    std::uint16_t port() const { return server_->app().server().bound_port("packet"); }

    /// A new account `name` with its character (`name` capitalised) in the world.
    WorldPlayer play(const std::string& name) {
        WorldPlayer p(std::move(selected(server_->port(), port(), kAdmin, name).client));
        EXPECT_TRUE(p.enter().ok());
        return p;
    }

    TempDir zones_;
    std::unique_ptr<TestServer> server_;
};

/// Sends every world request but EnterWorldRequest (unless `with_enter`) and expects each answered
/// `code` with its own opcode, in order.
void expect_world_refused(Client& c, wire::ErrorCode code, bool with_enter) {
    std::vector<std::uint16_t> opcodes;
    const auto send = [&]<class M>(const M& m) {
        ASSERT_TRUE(c.send(m).ok());
        opcodes.push_back(static_cast<std::uint16_t>(M::kOpcode));
    };
    if (with_enter) {
        send(wire::EnterWorldRequest{});
    }
    send(wire::ChangeMapRequest{.zone = 2});
    wire::MoveIntent move{.seq = 1, .count = 1};
    move.points[0] = {500, 500, 0};
    send(move);
    send(wire::TargetHpRequest{.entity = 1});
    send(wire::AttackRequest{.target = 1});
    send(wire::RespawnRequest{});
    send(wire::ChatSend{.channel = wire::ChatChannel::kZone, .text = "hi"});
    send(wire::WhisperSend{.to = "Someone", .text = "hi"});
    for (const auto opcode : opcodes) {
        auto p = c.receive();
        ASSERT_TRUE(p.ok()) << p.error().message;
        ASSERT_TRUE(p->is(wire::Opcode::kAlive)) << "type " << p->type;
        const auto e = p->decode<wire::Error>().message;
        EXPECT_EQ(e.code, code) << "opcode " << opcode;
        EXPECT_EQ(e.opcode, opcode);
    }
}

TEST_F(AbusePacketWorld, WorldPacketsOutOfTheirStateAreRefusedAndTheConnectionGoesOn) {
    start();
    ASSERT_EQ(
        api_request(server_->port(), "POST", "/api/v1/accounts",
                    R"({"username":"tess","password":")" + std::string(kWorldPassword) + R"("})",
                    kAdmin)
            .status,
        201);
    Client c(client::ClientOptions{.timeout = 10s, .max_unread_packets = 4096});
    ASSERT_TRUE(c.connect("127.0.0.1", port()).ok());
    expect_world_refused(c, wire::ErrorCode::kNotLoggedIn, true);
    ASSERT_TRUE(c.login_password("tess", kWorldPassword).ok());
    expect_world_refused(c, wire::ErrorCode::kNoCharacterSelected, true);
    auto made = c.create_character("Tess", {});
    ASSERT_TRUE(made.ok());
    ASSERT_TRUE(c.select_character(made->id).ok());
    expect_world_refused(c, wire::ErrorCode::kNotInWorld, false);

    WorldPlayer p(std::move(c));
    ASSERT_TRUE(p.enter().ok());
    // In the world: entering again, and the character opcodes, are refused.
    const auto refused = [&](auto answer, std::uint16_t opcode) {
        ASSERT_FALSE(answer.ok());
        EXPECT_TRUE(answer.error().is(wire::ErrorCode::kAlreadyInWorld)) << answer.error().name();
        EXPECT_EQ(answer.error().opcode, opcode);
    };
    refused(p.client.call(wire::EnterWorldRequest{}), 0x1000);
    refused(p.client.list_characters(), 0x0712);
    refused(p.client.create_character("Other", {}), 0x0713);
    refused(p.client.delete_character(made->id), 0x0714);
    refused(p.client.select_character(made->id), 0x0715);
    // Still in the world, still served.
    ASSERT_TRUE(p.until([&] { return p.seen("Dummy") != 0; }));
    ASSERT_TRUE(p.client.send(wire::TargetHpRequest{.entity = p.seen("Dummy")}).ok());
    EXPECT_TRUE(p.next<wire::TargetHp>());
}

TEST_F(AbusePacketWorld, MalformedWorldPacketsLeaveTheCharacterInTheWorld) {
    start();
    auto p = play("umar");
    // A valid move, then its bytes altered: no points, 17 points, a NaN.
    std::string valid;
    wire::MoveIntent m{.seq = 5, .count = 1};
    m.points[0] = {500, 500, 0};
    ASSERT_EQ(wire::encode(valid, m), wire::WireError::kNone);
    constexpr std::size_t kCount = wire::kHeaderBytes + 4;
    std::string none = valid;
    none[kCount] = 0;
    std::string too_many = valid;
    too_many[kCount] = 17;
    std::string nan = valid;
    nan.replace(kCount + 1, 4, std::string("\x00\x00\xc0\x7f", 4));
    std::string chat;
    ASSERT_EQ(wire::encode(chat, wire::ChatSend{.channel = wire::ChatChannel::kZone, .text = "x"}),
              wire::WireError::kNone);
    chat[wire::kHeaderBytes] = 9;  // no such channel
    for (const auto& [bytes, detail] :
         std::vector<std::pair<std::string, wire::WireError>>{{none, wire::WireError::kBadValue},
                                                              {too_many, wire::WireError::kTooMany},
                                                              {nan, wire::WireError::kBadValue},
                                                              {chat, wire::WireError::kBadValue}}) {
        ASSERT_TRUE(p.client.send_raw(bytes).ok());
        auto e = p.next<wire::Error>(
            [](const wire::Error& err) { return err.code == wire::ErrorCode::kMalformedPacket; });
        ASSERT_TRUE(e);
        EXPECT_EQ(e->decode<wire::Error>().message.detail, static_cast<std::uint32_t>(detail));
    }
    // Nothing moved, and the character is still in the world.
    EXPECT_FALSE(p.next<wire::Correction>([](const auto&) { return true; }, 200ms));
    ASSERT_TRUE(
        p.client.send(wire::ChatSend{.channel = wire::ChatChannel::kZone, .text = "ok"}).ok());
    EXPECT_TRUE(p.next<wire::ChatMessage>());
}

TEST_F(AbusePacketWorld, AFloodOfMovesHitsTheConnectionRateAndClosesItAlone) {
    start({{"packet.max_packets_per_s", "20"}, {"packet.packet_burst", "40"}});
    auto a = play("vala");
    auto b = play("wynn");
    ASSERT_TRUE(b.until([&] { return b.seen("Vala") != 0; }));
    std::string flood;
    for (std::uint32_t i = 0; i < 500; ++i) {
        wire::MoveIntent m{.seq = i, .count = 1};
        m.points[0] = {500, 500, 0};
        wire::encode(flood, m);
    }
    ASSERT_TRUE(a.client.send_raw(flood).ok());
    ASSERT_TRUE(a.got_error(wire::ErrorCode::kRateLimited, 0x1001));
    ASSERT_TRUE(a.until([&] { return a.closed; }));
    EXPECT_TRUE(eventually([&] {
        return server_->metric("hearth_stream_disconnects_total",
                               {{"listener", "packet"}, {"reason", "rate_limited"}}) == 1;
    }));
    // Its character left the world; the other connection is served as before.
    ASSERT_TRUE(b.until([&] { return b.seen("Vala") == 0; }));
    ASSERT_TRUE(
        b.client.send(wire::ChatSend{.channel = wire::ChatChannel::kLocal, .text = "still"}).ok());
    EXPECT_TRUE(b.next<wire::ChatMessage>());
}

TEST_F(AbusePacketWorld, ChatAndWhispersPastTheChatRateAreDroppedAndTheConnectionStays) {
    start({{"world.chat_per_s", "1"}, {"world.chat_burst", "3"}});
    auto a = play("xeno");
    auto b = play("yara");
    ASSERT_TRUE(b.until([&] { return b.seen("Xeno") != 0; }));
    std::string flood;
    constexpr int kLines = 12;
    for (int i = 0; i < kLines; ++i) {
        if (i % 2 == 0) {
            wire::encode(flood,
                         wire::ChatSend{.channel = wire::ChatChannel::kLocal, .text = "spam"});
        } else {
            wire::encode(flood, wire::WhisperSend{.to = "Yara", .text = "spam"});
        }
    }
    ASSERT_TRUE(a.client.send_raw(flood).ok());
    // Every line is answered: its echo (a chat line, a whisper's copy) or rate_limited, which
    // leaves the connection open.
    int delivered = 0;
    int dropped = 0;
    ASSERT_TRUE(a.until([&] {
        delivered = dropped = 0;
        for (const auto& o : a.others) {
            if (o.is(wire::Opcode::kChat) || o.is(wire::Opcode::kWhisper)) {
                ++delivered;
            } else if (o.is(wire::Opcode::kAlive) &&
                       o.decode<wire::Error>().message.code == wire::ErrorCode::kRateLimited) {
                ++dropped;
            }
        }
        return delivered + dropped == kLines;
    }));
    EXPECT_GE(delivered, 3);  // the burst
    EXPECT_GE(dropped, 1);
    EXPECT_LT(delivered, kLines);
    EXPECT_FALSE(a.closed);
    // The viewer got what was delivered and no more.
    int heard = 0;
    b.until(
        [&] {
            heard = 0;
            for (const auto& o : b.others) {
                heard += o.is(wire::Opcode::kChat) || o.is(wire::Opcode::kWhisper) ? 1 : 0;
            }
            return heard == delivered;
        },
        2s);
    EXPECT_EQ(heard, delivered);
    // The connection is served as before.
    ASSERT_TRUE(a.client.send(wire::TargetHpRequest{.entity = a.entry.entity}).ok());
    EXPECT_TRUE(a.next<wire::TargetHp>());
}

TEST_F(AbusePacketWorld, AClientThatStopsReadingIsClosedAndItsCharacterLeaves) {
    // A crowd in view: 5,000 NPCs always walking within 100 units of the spawn point, about 100 KB
    // of moves a tick for each character there.
    start({{"world.view_radius", "300"}}, R"(id = 1
name = "Crowd"
width = 1000
height = 1000
spawn = [500, 500, 0]

[[npcs]]
model = 3
name = "Rat"
max_hp = 5
count = 5000
at = [500, 500, 0]
wander_radius = 100
speed = 1
)");
    auto watcher = play("zeno");
    auto slow = selected(server_->port(), port(), kAdmin, "yves");
    // A small receive window, so that the server's queue fills sooner.
    const int small = 4096;
    ASSERT_EQ(setsockopt(slow.client.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small),
              0);
    ASSERT_TRUE(slow.client.call(wire::EnterWorldRequest{}).ok());
    ASSERT_TRUE(eventually([&] { return server_->metric("hearth_world_players") == 2; }));
    // It reads nothing more: once the kernel's buffers are full, past the connection's 256 KiB
    // (queued, and posted from the zone's thread), the server closes it, and its character leaves
    // the world at once. The watcher, in the same crowd, reads on; it looks at the population every
    // hundred packets (a tick is about twenty).
    int packets = 0;
    const auto zone_population = [&] {
        auto r = api_request(server_->port(), "GET", "/api/v1/world/zones", "", kAdmin);
        return r.body.find(R"("players":1)") != std::string::npos;
    };
    ASSERT_TRUE(watcher.until([&] { return ++packets % 100 == 0 && zone_population(); }, 120s));
    EXPECT_EQ(server_->metric("hearth_stream_disconnects_total",
                              {{"listener", "packet"}, {"reason", "slow_consumer"}}),
              1);
    EXPECT_EQ(server_->metric("hearth_world_players"), 1);
    // The watcher is served as before.
    ASSERT_TRUE(
        watcher.client.send(wire::ChatSend{.channel = wire::ChatChannel::kLocal, .text = "ok"})
            .ok());
    EXPECT_TRUE(watcher.next<wire::ChatMessage>());
    EXPECT_FALSE(watcher.closed);
}

}  // namespace
}  // namespace hearth::test
