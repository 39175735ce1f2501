// The world over the game packet protocol (docs/protocol/packets.md: 0x0753, 0x1000-0x1F00)
// served by the real server over real TCP, with the characters and world modules on zone files of
// the test's own (support/packet_world.hpp), spoken through the C++ client library: two players
// see each other's spawn, moves and despawn; a speed hack is corrected; whisper across zones;
// a change of zone; an NPC attacked until it dies, and back; logout and login restore the
// position; a takeover in the world; an operator's kick and notice; the world module disabled and
// enabled under its players; and a kill -9 of the server process loses no more than the save
// interval. Every test runs on SQLite and on PostgreSQL.

#include <csignal>
#include <fstream>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/packet_world.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"

namespace hearth::test {
namespace {

using client::Client;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "packet-world-admin";

bool near(wire::Vec3 a, wire::Vec3 b) {
    return std::abs(a.x - b.x) < 1e-3F && std::abs(a.y - b.y) < 1e-3F &&
           std::abs(a.z - b.z) < 1e-3F;
}

/// `name`'s character selected (made first unless `create` is false).
Selected selected(std::uint16_t http, std::uint16_t port, const std::string& name,
                  bool create = true) {
    return test::selected(http, port, kAdminToken, name, create);
}

class PacketWorld : public StoreBackendTest {
protected:
    void start(Overrides extra = {}) {
        write_test_zones(zones_.path());
        extra.merge(world_overrides(zones_.path(), kAdminToken));
        server_ = std::make_unique<TestServer>(extra);
    }

    std::uint16_t port() const { return server_->app().server().bound_port("packet"); }

    /// A new account and character `name`, in the world.
    WorldPlayer play(const std::string& name, std::uint64_t* character_id = nullptr) {
        auto s = selected(server_->port(), port(), name);
        if (character_id != nullptr) {
            *character_id = s.character.id;
        }
        WorldPlayer p(std::move(s.client));
        auto e = p.enter();
        EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
        return p;
    }

    double metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
        return server_->metric(name, labels);
    }

    TempDir zones_;
    std::unique_ptr<TestServer> server_;
};

TEST_P(PacketWorld, TwoPlayersSeeEachOthersSpawnMovesAndDespawn) {
    start();
    auto a = play("alba");
    // The character was created at the start zone's safe spot, outside the test's smaller zone:
    // it enters at the zone's spawn point.
    EXPECT_EQ(a.entry.zone, 1U);
    EXPECT_EQ(a.zone_name, "Field");
    EXPECT_TRUE(near(a.entry.at, {500, 500, 0}));
    EXPECT_EQ(a.entry.tick_hz, 20);
    EXPECT_EQ(a.entry.view_radius, 100);
    ASSERT_TRUE(a.until([&] { return a.seen("Dummy") != 0; }));
    const auto dummy = a.seen("Dummy");
    EXPECT_EQ(a.view[dummy].kind, wire::EntityKind::kNpc);
    EXPECT_EQ(a.view[dummy].model, 9U);
    EXPECT_EQ(a.view[dummy].hp, 30U);
    EXPECT_TRUE(near(a.view[dummy].at, {503, 500, 0}));

    auto b = play("brann");
    ASSERT_TRUE(b.until([&] { return b.seen("Alba") != 0 && b.seen("Dummy") != 0; }));
    EXPECT_EQ(b.seen("Alba"), a.entry.entity);
    ASSERT_TRUE(a.until([&] { return a.seen("Brann") == b.entry.entity; }));
    EXPECT_EQ(a.view[b.entry.entity].kind, wire::EntityKind::kPlayer);
    EXPECT_EQ(a.view[b.entry.entity].model, 0U);
    // Nobody sees itself.
    EXPECT_EQ(a.view.count(a.entry.entity), 0U);

    // B walks two points (3 units, within the speed budget): A sees where it ended.
    b.move({{500, 501.5F, 0}, {500, 503, 0}});
    ASSERT_TRUE(a.until([&] { return near(a.view[b.entry.entity].at, {500, 503, 0}); }));
    EXPECT_TRUE(a.saw('m', b.entry.entity));
    // Accepted moves have no answer.
    EXPECT_FALSE(b.next<wire::Correction>([](const auto&) { return true; }, 300ms));

    // B logs out: it leaves A's view.
    ASSERT_TRUE(b.client.logout().ok());
    ASSERT_TRUE(a.until([&] { return a.view.count(b.entry.entity) == 0; }));
    EXPECT_TRUE(a.saw('d', b.entry.entity));
    EXPECT_TRUE(eventually([&] { return metric("hearth_world_players") == 1; }));
    EXPECT_GT(metric("hearth_packet_world_bytes_total"), 0);
    EXPECT_GT(metric("hearth_packet_packets_total", {{"direction", "out"}, {"class", "world"}}), 0);
}

TEST_P(PacketWorld, PacketsSentBehindEnterWaitForIt) {
    start();
    auto c = std::move(selected(server_->port(), port(), "cato").client);
    // Enter and a move in one write: the move is handled after the entry, not refused
    // not_in_world.
    std::string burst;
    wire::encode(burst, wire::EnterWorldRequest{});
    wire::MoveIntent m{.seq = 1, .count = 1};
    m.points[0] = {501, 500, 0};
    wire::encode(burst, m);
    wire::encode(burst, wire::TargetHpRequest{.entity = 1'000'000});
    ASSERT_TRUE(c.send_raw(burst).ok());
    WorldPlayer p(std::move(c));
    auto entered = p.next<wire::WorldEntered>();
    ASSERT_TRUE(entered);
    // The answer to the third packet proves the second was handled before it.
    ASSERT_TRUE(p.got_error(wire::ErrorCode::kNoSuchTarget, 0x1004));
    for (const auto& o : p.others) {
        if (o.is(wire::Opcode::kAlive)) {
            EXPECT_NE(o.decode<wire::Error>().message.code, wire::ErrorCode::kNotInWorld);
        }
    }
    EXPECT_FALSE(p.next<wire::Correction>([](const auto&) { return true; }, 200ms));
}

TEST_P(PacketWorld, ASpeedHackIsCorrected) {
    start();
    auto a = play("dara");
    auto b = play("eska");
    ASSERT_TRUE(b.until([&] { return b.seen("Dara") != 0; }));
    // One step of 60 units after a small one: the small one stands, the rest is refused.
    const auto seq = a.move({{501, 500, 0}, {561, 500, 0}});
    auto c = a.next<wire::Correction>([&](const auto& m) { return m.seq == seq; });
    ASSERT_TRUE(c);
    auto correction = c->decode<wire::Correction>().message;
    EXPECT_EQ(correction.reason, wire::CorrectionReason::kTooFast);
    EXPECT_TRUE(near(correction.at, {501, 500, 0}));
    ASSERT_TRUE(b.until([&] { return near(b.view[a.entry.entity].at, {501, 500, 0}); }));
    // A path that starts far from the character (a teleport), and one that leaves the zone.
    const auto teleport = a.move({{900, 900, 0}});
    c = a.next<wire::Correction>([&](const auto& m) { return m.seq == teleport; });
    ASSERT_TRUE(c);
    EXPECT_EQ(c->decode<wire::Correction>().message.reason, wire::CorrectionReason::kBadPath);
    EXPECT_TRUE(near(c->decode<wire::Correction>().message.at, {501, 500, 0}));
    const auto outside = a.move({{501, -1, 0}});
    c = a.next<wire::Correction>([&](const auto& m) { return m.seq == outside; });
    ASSERT_TRUE(c);
    EXPECT_EQ(c->decode<wire::Correction>().message.reason, wire::CorrectionReason::kOutOfBounds);
    // B never saw A anywhere but where the server let it be.
    ASSERT_TRUE(b.until([&] { return b.seen("Dara") != 0; }));
    EXPECT_TRUE(near(b.view[a.entry.entity].at, {501, 500, 0}));
}

TEST_P(PacketWorld, WhisperAcrossZones) {
    start();
    auto a = play("fenn");
    auto b = play("gala");
    ASSERT_TRUE(b.client.send(wire::ChangeMapRequest{.zone = 2}).ok());
    ASSERT_TRUE(b.next<wire::MapChanged>());
    EXPECT_EQ(b.entry.zone, 2U);
    // By name, in any case, to another zone; the sender gets its copy.
    ASSERT_TRUE(a.client.send(wire::WhisperSend{.to = "GALA", .text = "psst"}).ok());
    auto got = b.next<wire::WhisperMessage>();
    ASSERT_TRUE(got);
    auto w = got->decode<wire::WhisperMessage>().message;
    EXPECT_EQ(w.direction, wire::WhisperDirection::kReceived);
    EXPECT_EQ(w.peer, "Fenn");
    EXPECT_EQ(w.text, "psst");
    auto sent = a.next<wire::WhisperMessage>();
    ASSERT_TRUE(sent);
    auto s = sent->decode<wire::WhisperMessage>().message;
    EXPECT_EQ(s.direction, wire::WhisperDirection::kSent);
    EXPECT_EQ(s.peer, "Gala");
    EXPECT_EQ(s.text, "psst");
    // And back.
    ASSERT_TRUE(b.client.send(wire::WhisperSend{.to = "fenn", .text = "hi"}).ok());
    ASSERT_TRUE(a.next<wire::WhisperMessage>([](const wire::WhisperMessage& m) {
        return m.direction == wire::WhisperDirection::kReceived && m.peer == "Gala" &&
               m.text == "hi";
    }));
    // No one of that name online.
    ASSERT_TRUE(a.client.send(wire::WhisperSend{.to = "Nobody", .text = "hello?"}).ok());
    EXPECT_TRUE(a.got_error(wire::ErrorCode::kNoSuchTarget, 0x1101));
}

TEST_P(PacketWorld, ChangeZoneShowsTheOtherZone) {
    start();
    auto a = play("hale");
    auto b = play("ines");
    ASSERT_TRUE(a.until([&] { return a.seen("Ines") != 0; }));
    const auto in_field = b.entry.entity;
    ASSERT_TRUE(b.client.send(wire::ChangeMapRequest{.zone = 2}).ok());
    ASSERT_TRUE(b.next<wire::MapChanged>());
    EXPECT_EQ(b.entry.zone, 2U);
    EXPECT_EQ(b.zone_name, "Yard");
    EXPECT_TRUE(near(b.entry.at, {100, 100, 0}));  // no position of its own there: the spawn
    // The other zone's view: its NPC, nothing of the first zone.
    ASSERT_TRUE(b.until([&] { return b.seen("Post") != 0; }));
    EXPECT_EQ(b.seen("Dummy"), 0U);
    EXPECT_EQ(b.seen("Hale"), 0U);
    // Gone from the first zone.
    ASSERT_TRUE(a.until([&] { return a.view.count(in_field) == 0; }));
    // Chat in a zone stays there.
    ASSERT_TRUE(
        b.client.send(wire::ChatSend{.channel = wire::ChatChannel::kZone, .text = "yard"}).ok());
    ASSERT_TRUE(b.next<wire::ChatMessage>());
    ASSERT_TRUE(
        a.client.send(wire::ChatSend{.channel = wire::ChatChannel::kZone, .text = "field"}).ok());
    ASSERT_TRUE(a.next<wire::ChatMessage>(
        [](const wire::ChatMessage& m) { return m.text == "field" && m.from == "Hale"; }));
    EXPECT_FALSE(b.next<wire::ChatMessage>([](const auto&) { return true; }, 300ms));
    // No such zone: it stays where it is.
    ASSERT_TRUE(b.client.send(wire::ChangeMapRequest{.zone = 99}).ok());
    auto e = b.next<wire::Error>(
        [](const wire::Error& m) { return m.code == wire::ErrorCode::kNoSuchZone; });
    ASSERT_TRUE(e);
    EXPECT_EQ(e->decode<wire::Error>().message.detail, 99U);
    EXPECT_EQ(e->decode<wire::Error>().message.opcode, 0x0753);
    // Back to the first zone: A sees it come.
    ASSERT_TRUE(b.client.send(wire::ChangeMapRequest{.zone = 1}).ok());
    ASSERT_TRUE(b.next<wire::MapChanged>());
    EXPECT_EQ(b.entry.zone, 1U);
    ASSERT_TRUE(a.until([&] { return a.seen("Ines") == b.entry.entity; }));
    ASSERT_TRUE(b.until([&] { return b.seen("Hale") != 0 && b.seen("Dummy") != 0; }));
}

TEST_P(PacketWorld, AnAttackedNpcDiesAndComesBack) {
    // Two attackers, 15 HP each, against the Dummy's 30: one hit each (every character has its
    // own attack rate).
    start({{"world.attack_damage", "15"}});
    auto a = play("jory");
    auto b = play("kael");
    ASSERT_TRUE(a.until([&] { return a.seen("Dummy") != 0 && a.seen("Kael") != 0; }));
    ASSERT_TRUE(b.until([&] { return b.seen("Dummy") != 0; }));
    const auto dummy = a.seen("Dummy");
    ASSERT_TRUE(a.client.send(wire::TargetHpRequest{.entity = dummy}).ok());
    auto hp = a.next<wire::TargetHp>();
    ASSERT_TRUE(hp);
    EXPECT_EQ(hp->decode<wire::TargetHp>().message,
              (wire::TargetHp{.entity = dummy, .hp = 30, .max_hp = 30}));

    ASSERT_TRUE(a.client.send(wire::AttackRequest{.target = dummy}).ok());
    // Every viewer is told, with the attacker.
    const wire::HpUpdate first{.entity = dummy, .hp = 15, .max_hp = 30, .source = a.entry.entity};
    ASSERT_TRUE(a.next<wire::HpUpdate>([&](const auto& m) { return m == first; }));
    ASSERT_TRUE(b.next<wire::HpUpdate>([&](const auto& m) { return m == first; }));
    ASSERT_TRUE(b.client.send(wire::AttackRequest{.target = dummy}).ok());
    const wire::HpUpdate second{.entity = dummy, .hp = 0, .max_hp = 30, .source = b.entry.entity};
    ASSERT_TRUE(a.next<wire::HpUpdate>([&](const auto& m) { return m == second; }));
    ASSERT_TRUE(b.next<wire::HpUpdate>([&](const auto& m) { return m == second; }));
    const wire::Death death{.entity = dummy, .killer = b.entry.entity};
    ASSERT_TRUE(a.next<wire::Death>([&](const auto& m) { return m == death; }));
    ASSERT_TRUE(b.next<wire::Death>([&](const auto& m) { return m == death; }));
    // Dead: out of view, no target any more.
    ASSERT_TRUE(a.until([&] { return a.saw('d', dummy); }));
    ASSERT_TRUE(a.client.send(wire::AttackRequest{.target = dummy}).ok());
    EXPECT_TRUE(a.got_error(wire::ErrorCode::kNoSuchTarget, 0x1005));
    // Back after its respawn time, at full HP, where it stood.
    ASSERT_TRUE(a.until([&] { return a.view.count(dummy) == 1; }));
    EXPECT_EQ(a.view[dummy].hp, 30U);
    EXPECT_TRUE(near(a.view[dummy].at, {503, 500, 0}));
    ASSERT_TRUE(b.until([&] { return b.view.count(dummy) == 1 && b.view[dummy].hp == 30; }));

    // The characters themselves cannot die yet: a respawn is refused while alive.
    ASSERT_TRUE(a.client.send(wire::RespawnRequest{}).ok());
    EXPECT_TRUE(a.got_error(wire::ErrorCode::kNotDead, 0x1008));
    // Out of range: the Post of the other zone is no target here; a far NPC is out of reach.
    ASSERT_TRUE(a.client.send(wire::AttackRequest{.target = a.entry.entity}).ok());
    EXPECT_TRUE(a.got_error(wire::ErrorCode::kNoSuchTarget, 0x1005));
    a.move({{500, 498.5F, 0}, {500, 497, 0}, {499, 494, 0}});
    ASSERT_TRUE(b.until([&] { return near(b.view[a.entry.entity].at, {499, 494, 0}); }));
    ASSERT_TRUE(a.client.send(wire::AttackRequest{.target = dummy}).ok());
    EXPECT_TRUE(a.got_error(wire::ErrorCode::kTargetOutOfRange, 0x1005));
}

TEST_P(PacketWorld, LogoutAndLoginRestoreThePosition) {
    start();
    auto a = play("lorn");
    a.move({{501.5F, 500, 0}, {502.5F, 501, 0}});
    auto b = play("mira");
    ASSERT_TRUE(b.until([&] { return near(b.view[a.entry.entity].at, {502.5F, 501, 0}); }));
    // The reply comes once the position is saved: a login right after finds it.
    ASSERT_TRUE(a.client.logout().ok());
    auto again = selected(server_->port(), port(), "lorn", false);
    EXPECT_EQ(again.character.position.zone, 1U);
    EXPECT_TRUE(near(again.character.position.at, {502.5F, 501, 0}));
    WorldPlayer back(std::move(again.client));
    ASSERT_TRUE(back.enter().ok());
    EXPECT_EQ(back.entry.zone, 1U);
    EXPECT_TRUE(near(back.entry.at, {502.5F, 501, 0}));
    EXPECT_NE(back.entry.entity, a.entry.entity);  // a new entity per entry
    ASSERT_TRUE(b.until([&] { return b.seen("Lorn") == back.entry.entity; }));
    EXPECT_TRUE(near(b.view[back.entry.entity].at, {502.5F, 501, 0}));

    // The zone is saved too: out in the Yard, back in the Yard.
    ASSERT_TRUE(back.client.send(wire::ChangeMapRequest{.zone = 2}).ok());
    ASSERT_TRUE(back.next<wire::MapChanged>());
    back.move({{101, 100, 0}});
    ASSERT_TRUE(back.client.logout().ok());
    auto third = selected(server_->port(), port(), "lorn", false);
    EXPECT_EQ(third.character.position.zone, 2U);
    EXPECT_TRUE(near(third.character.position.at, {101, 100, 0}));
}

TEST_P(PacketWorld, TakeoverInTheWorld) {
    start();
    auto a = play("nara");
    a.move({{501, 500, 0}, {502, 500, 0}});
    auto b = play("odo");
    ASSERT_TRUE(b.until([&] { return near(b.view[a.entry.entity].at, {502, 500, 0}); }));
    // The same character selected on another connection of the account: the first one is taken
    // over, and the character enters where it stood.
    WorldPlayer second(std::move(selected(server_->port(), port(), "nara", false).client));
    ASSERT_TRUE(a.got_error(wire::ErrorCode::kTakenOver, 0));
    ASSERT_TRUE(a.until([&] { return a.closed; }));
    ASSERT_TRUE(second.enter().ok());
    EXPECT_TRUE(near(second.entry.at, {502, 500, 0}));
    // B saw the old entity go and the new one come; the character is in the world once.
    ASSERT_TRUE(b.until([&] {
        return b.view.count(a.entry.entity) == 0 && b.seen("Nara") == second.entry.entity;
    }));
    EXPECT_TRUE(eventually([&] { return metric("hearth_world_players") == 2; }));
}

TEST_P(PacketWorld, AnOperatorKicksAndSendsNotices) {
    start();
    std::uint64_t pell = 0;
    auto a = play("pell", &pell);
    auto b = play("quin");
    auto r = api_request(server_->port(), "POST", "/api/v1/world/zones/1/notice",
                         R"({"kind":"warning","text":"Restart in 5 minutes"})", kAdminToken);
    ASSERT_LT(r.status, 300) << r.body;
    for (auto* p : {&a, &b}) {
        auto n = p->next<wire::Notice>();
        ASSERT_TRUE(n);
        EXPECT_EQ(
            n->decode<wire::Notice>().message,
            (wire::Notice{.kind = wire::NoticeKind::kWarning, .text = "Restart in 5 minutes"}));
    }
    ASSERT_TRUE(b.until([&] { return b.seen("Pell") != 0; }));
    // The kick: the connection is told why and closed, and B sees the character go.
    const auto kick = "/api/v1/world/characters/" + std::to_string(pell) + "/kick";
    r = api_request(server_->port(), "POST", kick, "", kAdminToken);
    ASSERT_EQ(r.status, 202) << r.body;
    ASSERT_TRUE(a.got_error(wire::ErrorCode::kKicked, 0));
    ASSERT_TRUE(a.until([&] { return a.closed; }));
    ASSERT_TRUE(b.until([&] { return b.seen("Pell") == 0; }));
    r = api_request(server_->port(), "POST", kick, "", kAdminToken);
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(metric("hearth_packet_errors_total", {{"code", "kicked"}}), 1);
}

TEST_P(PacketWorld, DisablingTheWorldSavesAndClosesItsPlayersAndRefusesNewEntries) {
    start();
    auto a = play("tamsin");
    a.move({{501, 500, 0}, {502, 500, 0}});
    ASSERT_TRUE(a.client.send(wire::TargetHpRequest{.entity = a.entry.entity}).ok());
    ASSERT_TRUE(a.next<wire::TargetHp>());  // the move before it was handled
    auto r = api_request(server_->port(), "POST", "/api/v1/modules/world/disable", "", kAdminToken);
    ASSERT_LT(r.status, 300) << r.body;
    // Told why (no request answered), then closed.
    ASSERT_TRUE(a.got_error(wire::ErrorCode::kShuttingDown, 0));
    ASSERT_TRUE(a.until([&] { return a.closed; }));
    // The packet module goes on: the character is where it stood, and the world says it is off.
    auto again = selected(server_->port(), port(), "tamsin", false);
    EXPECT_TRUE(near(again.character.position.at, {502, 500, 0}));
    auto enter = again.client.call(wire::EnterWorldRequest{});
    ASSERT_FALSE(enter.ok());
    EXPECT_TRUE(enter.error().is(wire::ErrorCode::kUnavailable)) << enter.error().name();
    EXPECT_EQ(enter.error().detail, static_cast<std::uint32_t>(wire::Unavailable::kNotServed));
    // Enabled again: in the world again.
    r = api_request(server_->port(), "POST", "/api/v1/modules/world/enable", "", kAdminToken);
    ASSERT_LT(r.status, 300) << r.body;
    WorldPlayer back(std::move(again.client));
    ASSERT_TRUE(back.enter().ok());
    EXPECT_TRUE(near(back.entry.at, {502, 500, 0}));
}

/// The position the store holds for `character`, through the operator API (it reads the store).
std::optional<wire::Vec3> stored_position(std::uint16_t http, std::uint64_t character) {
    auto r = api_request(http, "GET", "/api/v1/characters/" + std::to_string(character), "",
                         kAdminToken);
    if (r.status != 200) {
        return std::nullopt;
    }
    const auto body = boost::json::parse(r.body);
    const auto& p = body.at("position").as_object();
    return wire::Vec3{.x = static_cast<float>(p.at("x").to_number<double>()),
                      .y = static_cast<float>(p.at("y").to_number<double>()),
                      .z = static_cast<float>(p.at("z").to_number<double>())};
}

TEST_P(PacketWorld, AKillLosesAtMostTheSaveInterval) {
    TempDir dir;
    write_test_zones(zones_.path());
    auto overrides = world_overrides(zones_.path(), kAdminToken);
    overrides["world.save_interval_s"] = "1";
    const std::string config = dir.file("hearth.toml");
    {
        // The test's store: a file in data_dir, or the same PostgreSQL database for every start.
        std::ofstream out(config);
        out << test_config_toml(overrides, dir.file("data"));
    }
    std::uint64_t id = 0;
    {
        ChildProcess server({"serve", "-c", config});
        const auto http = logged_port(server, "http");
        const auto port = logged_port(server, "packet");
        auto s = selected(http, port, "sela");
        id = s.character.id;
        WorldPlayer a(std::move(s.client));
        ASSERT_TRUE(a.enter().ok());
        a.move({{501, 500, 0}, {502, 500, 0}});
        // Written behind, with no logout: the store has the position within the save interval
        // (a condition with a generous deadline, not a timing).
        ASSERT_TRUE(eventually(
            [&] {
                const auto at = stored_position(http, id);
                return at && near(*at, {502, 500, 0});
            },
            30s));
        // A crash: no logout, no shutdown, no save at the end.
        server.signal(SIGKILL);
        EXPECT_EQ(server.wait_exit(), 128 + SIGKILL);
    }
    ChildProcess server({"serve", "-c", config});
    const auto http = logged_port(server, "http");
    const auto port = logged_port(server, "packet");
    auto s = selected(http, port, "sela", false);
    EXPECT_EQ(s.character.id, id);
    EXPECT_EQ(s.character.position.zone, 1U);
    EXPECT_TRUE(near(s.character.position.at, {502, 500, 0}));
    WorldPlayer a(std::move(s.client));
    ASSERT_TRUE(a.enter().ok());
    EXPECT_TRUE(near(a.entry.at, {502, 500, 0}));
}

HEARTH_INSTANTIATE_STORE_BACKENDS(PacketWorld);

}  // namespace
}  // namespace hearth::test
