// The world service in-process on a real SQLite store (docs/world-service.md): characters enter
// through WorldService with a recording PlayerSink, as a front-end would; the operator routes
// over real HTTP (admin only, audited); the write-behind (positions in the store after the save
// interval, after a logout, after the module stops); takeover; whisper across zones and zone
// changes. The game protocol over TCP is tested with the packet front-end.

#include <algorithm>
#include <array>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <hearth/characters.hpp>
#include <hearth/world.hpp>

#include "characters/characters_module.hpp"
#include "core/module_registry.hpp"
#include "support/clients.hpp"
#include "support/operator_client.hpp"
#include "support/server.hpp"
#include "unit/store/store_test_support.hpp"
#include "world/world_module.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using store::CharacterRecord;
using world::LeaveReason;
using world::WorldError;

constexpr const char* kAdminToken = "world-test-admin-token";

/// The world on with a one-second save interval, and moves as fast as a test makes them (the
/// speed rules are the zone's tests'). New characters start inside the shipped zone 1.
Overrides world_overrides(Overrides extra = {}) {
    extra.merge(Overrides{{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                          {"characters.enabled", "true"},
                          {"characters.safe_spots", R"(["1:600,600,0"])"},
                          {"world.enabled", "true"},
                          {"world.save_interval_s", "1"},
                          {"world.max_speed", "1000"},
                          {"world.speed_slack", "10"}});
    return extra;
}

/// What the world told one character, for the test thread to wait on.
class Sink final : public world::PlayerSink {
public:
    struct Whisper {
        bool sent;
        std::string peer;
        std::string text;
    };
    struct Refusal {
        world::Request request;
        WorldError error;
        std::uint32_t detail;
    };

    void entered(const world::ZoneEntry& entry, bool changed_zone) override {
        std::lock_guard lock(mutex_);
        entry_ = entry;
        entry_->zone_name = {};
        ++entries_;
        changed_ += changed_zone ? 1 : 0;
        cv_.notify_all();
    }
    void begin_update(std::uint32_t) override {}
    void despawn(world::EntityId) override {}
    void spawn(const world::EntityView&) override {}
    void move(world::EntityId, world::Vec3, float) override {}
    void end_update() override {}
    void correction(std::uint32_t, world::Vec3, float, world::CorrectionReason) override {
        std::lock_guard lock(mutex_);
        ++corrections_;
        cv_.notify_all();
    }
    void hp_update(world::EntityId, std::uint32_t, std::uint32_t, world::EntityId) override {}
    void death(world::EntityId, world::EntityId) override {}
    void respawned(world::EntityId, world::Vec3, float, std::uint32_t, std::uint32_t) override {}
    void target_hp(world::EntityId, std::uint32_t, std::uint32_t) override {
        std::lock_guard lock(mutex_);
        ++target_hps_;
        cv_.notify_all();
    }
    void chat(world::ChatChannel, world::EntityId, std::string_view, std::string_view) override {}
    void whisper(bool sent, std::string_view peer, std::string_view text) override {
        std::lock_guard lock(mutex_);
        whispers_.push_back({sent, std::string(peer), std::string(text)});
        cv_.notify_all();
    }
    void notice(world::NoticeKind kind, std::string_view text) override {
        std::lock_guard lock(mutex_);
        notices_.push_back(std::to_string(static_cast<int>(kind)) + ":" + std::string(text));
        cv_.notify_all();
    }
    void refused(world::Request request, WorldError error, std::uint32_t detail) override {
        std::lock_guard lock(mutex_);
        refusals_.push_back({request, error, detail});
        cv_.notify_all();
    }
    void left(LeaveReason reason) override {
        std::lock_guard lock(mutex_);
        EXPECT_FALSE(left_.has_value()) << "left twice";
        left_ = reason;
        cv_.notify_all();
    }

    /// Waits until `done(*this)` holds (10 s at most); its last answer.
    template <class F>
    bool wait(F done) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 10s, [&] { return done(*this); });
    }

    // Read under wait(), or once the world is done with the sink.
    std::optional<world::ZoneEntry> entry_;
    int entries_ = 0;
    int changed_ = 0;
    int corrections_ = 0;
    std::size_t target_hps_ = 0;
    std::vector<Whisper> whispers_;
    std::vector<std::string> notices_;
    std::vector<Refusal> refusals_;
    std::optional<LeaveReason> left_;

private:
    std::mutex mutex_;
    std::condition_variable cv_;
};

struct World : OperatorClient {
    explicit World(TestServer& s) : OperatorClient{s.port(), kAdminToken}, server(s) {}

    TestServer& server;

    characters::CharacterService& characters() {
        return dynamic_cast<characters::CharactersModule&>(
                   *server.app().modules().module("characters"))
            .service();
    }
    world::WorldServiceImpl& world() {
        return dynamic_cast<world::WorldModule&>(*server.app().modules().module("world")).world();
    }

    CharacterRecord character(const std::string& account_name, const std::string& name) {
        const auto id = account(account_name);
        auto made = store::test::sync<CharacterRecord>([&](auto done) {
            characters().create(id, {.name = name, .looks = {}}, std::move(done));
        });
        EXPECT_TRUE(made) << name;
        return *made;
    }
    CharacterRecord stored(std::uint64_t id) {
        auto r = store::test::sync<CharacterRecord>(
            [&](auto done) { characters().get(id, std::move(done)); });
        EXPECT_TRUE(r);
        return *r;
    }

    /// The zones' ids, by id.
    std::vector<std::uint32_t> zones() const {
        std::vector<std::uint32_t> ids;
        const auto page = ok("GET", "/api/v1/world/zones");
        for (const auto& z : page.at("items").as_array()) {
            ids.push_back(z.at("id").to_number<std::uint32_t>());
        }
        return ids;
    }
    /// The ticks the operator API's figures of `zone` cover (they grow with each tick for the
    /// first minute).
    std::int64_t ticks(std::uint32_t zone) const {
        const auto page = ok("GET", "/api/v1/world/zones");
        for (const auto& z : page.at("items").as_array()) {
            if (z.at("id").to_number<std::uint32_t>() == zone) {
                return z.at("tick").at("window_ticks").to_number<std::int64_t>();
            }
        }
        return -1;
    }
    /// The entity `id` of `zone` as the operator API shows it, or null.
    json::value entity(std::uint32_t zone, world::EntityId id) const {
        auto page = ok("GET", "/api/v1/world/zones/" + std::to_string(zone) + "/entities");
        for (const auto& e : page.at("items").as_array()) {
            if (e.at("id").to_number<world::EntityId>() == id) {
                return e;
            }
        }
        return nullptr;
    }
    /// Waits until the operator API shows the character's entity at `x`.
    bool at_x(std::uint32_t zone, world::EntityId id, float x) const {
        return eventually([&] {
            auto e = entity(zone, id);
            return e.is_object() && e.at("x").to_number<double>() == static_cast<double>(x);
        });
    }
};

/// A move from where the character stands (a path starts there) to `dx` units east of it.
world::Vec3 walk(world::Player& player, std::uint32_t seq, world::Vec3 from, float dx) {
    const world::Vec3 to{from.x + dx, from.y, from.z};
    const std::array<world::Vec3, 2> path{from, to};
    player.move(seq, path);
    return to;
}

bool has_entry(Sink& s) {
    return s.wait([](const Sink& x) { return x.entries_ > 0; });
}

TEST(WorldService, OperatorRoutesAreAdminOnlyAndAudited) {
    TestServer server(world_overrides());
    World w{server};
    auto aria = w.character("alice", "Aria");
    auto sink = std::make_shared<Sink>();
    auto player = w.world().enter(aria, sink);
    ASSERT_TRUE(has_entry(*sink));
    const auto zone = sink->entry_->zone;
    const auto entity = sink->entry_->entity;
    EXPECT_EQ(zone, aria.position.zone);

    // The zones with their population, and tick figures once the zones ticked.
    ASSERT_TRUE(eventually([&] {
        const auto page = w.ok("GET", "/api/v1/world/zones");
        for (const auto& z : page.at("items").as_array()) {
            if (z.at("id").to_number<std::uint32_t>() == zone) {
                return z.at("players").to_number<int>() == 1 &&
                       z.at("tick").at("window_ticks").to_number<int>() > 0;
            }
        }
        return false;
    }));
    auto e = w.entity(zone, entity);
    ASSERT_TRUE(e.is_object());
    EXPECT_EQ(e.at("name").as_string(), "Aria");
    EXPECT_EQ(e.at("kind").as_string(), "player");
    EXPECT_GT(server.metric("hearth_world_tick_seconds_count", {{"zone", std::to_string(zone)}}),
              0);
    EXPECT_EQ(server.metric("hearth_world_players"), 1);
    EXPECT_EQ(w.call("GET", "/api/v1/world/zones/4000000/entities").status, 404);
    EXPECT_EQ(
        w.call("GET", "/api/v1/world/zones/" + std::to_string(zone) + "/entities?limit=0").status,
        400);

    // Paging by id: every entity of the zone (its NPCs and Aria) once, in order, 7 at a time.
    std::vector<world::EntityId> ids;
    std::string cursor;
    for (int pages = 0; pages < 100; ++pages) {
        const auto page =
            w.ok("GET", "/api/v1/world/zones/" + std::to_string(zone) + "/entities?limit=7" +
                            (cursor.empty() ? "" : "&cursor=" + cursor));
        const auto& items = page.at("items").as_array();
        EXPECT_LE(items.size(), 7U);
        for (const auto& item : items) {
            ids.push_back(item.at("id").to_number<world::EntityId>());
        }
        if (page.at("next").is_null()) {
            break;
        }
        EXPECT_EQ(items.size(), 7U);  // only the last page is short
        cursor = std::string(page.at("next").as_string());
        EXPECT_EQ(cursor, std::to_string(ids.back()));
    }
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());  // none twice
    EXPECT_GT(ids.size(), 7U);
    EXPECT_NE(std::find(ids.begin(), ids.end(), entity), ids.end());
    std::size_t npcs = 0;
    const auto zones = w.ok("GET", "/api/v1/world/zones");
    for (const auto& z : zones.at("items").as_array()) {
        if (z.at("id").to_number<std::uint32_t>() == zone) {
            npcs = z.at("npcs").to_number<std::size_t>();
        }
    }
    EXPECT_EQ(ids.size(), npcs + 1);

    // Default deny: no token, and a player's token.
    w.account("mallory");
    const auto player_token = w.token_of("mallory");
    const std::string kick = "/api/v1/world/characters/" + std::to_string(aria.id) + "/kick";
    const std::string notice = "/api/v1/world/zones/" + std::to_string(zone) + "/notice";
    for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/api/v1/world/zones"},
             {"GET", "/api/v1/world/zones/" + std::to_string(zone) + "/entities"},
             {"POST", kick},
             {"POST", notice},
             {"POST", "/api/v1/world/notice"}}) {
        EXPECT_EQ(w.call(method, target, R"({"text":"x"})", "").status, 401) << target;
        EXPECT_EQ(w.call(method, target, R"({"text":"x"})", player_token).status, 403) << target;
    }
    EXPECT_FALSE(sink->left_.has_value());

    // Notices: one zone, then all, each audited; refusals of bad ones.
    w.ok("POST", notice, R"({"kind":"warning","text":"restart in 5 minutes"})", 202);
    ASSERT_TRUE(sink->wait([](const Sink& s) { return !s.notices_.empty(); }));
    w.ok("POST", "/api/v1/world/notice", R"({"text":"hello everyone"})", 202);
    ASSERT_TRUE(sink->wait([](const Sink& s) { return s.notices_.size() == 2; }));
    EXPECT_EQ(sink->notices_[0], "1:restart in 5 minutes");
    EXPECT_EQ(sink->notices_[1], "0:hello everyone");
    EXPECT_TRUE(w.audited("world.notice", "zone:" + std::to_string(zone)));
    EXPECT_TRUE(w.audited("world.notice", "zones"));
    EXPECT_EQ(w.call("POST", notice, R"({"text":")" + std::string(513, 'a') + R"("})").status, 400);
    EXPECT_EQ(w.call("POST", notice, R"({"text":""})").status, 400);
    EXPECT_EQ(w.call("POST", notice, R"({"kind":"loud","text":"x"})").status, 400);
    EXPECT_EQ(w.call("POST", "/api/v1/world/zones/4000000/notice", R"({"text":"x"})").status, 404);

    // A kick: saved, then told; audited; the character is no longer in the world.
    w.ok("POST", kick, "", 202);
    ASSERT_TRUE(sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*sink->left_, LeaveReason::kKicked);
    EXPECT_TRUE(w.audited("world.kick", "character:" + std::to_string(aria.id)));
    EXPECT_EQ(w.call("POST", kick).status, 404);
    EXPECT_TRUE(eventually([&] { return server.metric("hearth_world_players") == 0; }));
    EXPECT_TRUE(w.entity(zone, entity).is_null());
    player.reset();  // a leave after the kick changes nothing
}

TEST(WorldService, WriteBehindSavesPositions) {
    TestServer server(world_overrides());
    World w{server};
    auto aria = w.character("alice", "Aria");
    const float x0 = aria.position.x;
    const float y0 = aria.position.y;

    // Periodically: a move is in the store within the save interval, with no leave.
    auto sink = std::make_shared<Sink>();
    auto player = w.world().enter(aria, sink);
    ASSERT_TRUE(has_entry(*sink));
    const auto zone = sink->entry_->zone;
    const auto start = sink->entry_->at;
    EXPECT_EQ(start.x, x0);
    EXPECT_EQ(start.y, y0);
    const auto first = walk(*player, 1, start, 3);
    ASSERT_TRUE(w.at_x(zone, sink->entry_->entity, first.x));
    EXPECT_TRUE(eventually([&] { return w.stored(aria.id).position.x == first.x; }));
    EXPECT_GT(server.metric("hearth_world_saves_total", {{"result", "ok"}}), 0);

    // A logout: `left` comes once the save is written.
    const auto second = walk(*player, 2, first, 3);
    player->leave(LeaveReason::kLogout);
    ASSERT_TRUE(sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*sink->left_, LeaveReason::kLogout);
    EXPECT_EQ(sink->corrections_, 0);
    EXPECT_EQ(w.stored(aria.id).position.x, second.x);
    EXPECT_EQ(w.stored(aria.id).position.zone, zone);
    player.reset();

    // Back in, as a front-end does it (the record read again): where it logged out.
    auto again = std::make_shared<Sink>();
    player = w.world().enter(w.stored(aria.id), again);
    ASSERT_TRUE(has_entry(*again));
    EXPECT_EQ(again->entry_->at.x, second.x);

    // The module stops: every character saved, then told.
    const auto third = walk(*player, 3, second, 3);
    ASSERT_TRUE(w.at_x(zone, again->entry_->entity, third.x));
    w.ok("POST", "/api/v1/modules/world/disable");
    ASSERT_TRUE(again->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*again->left_, LeaveReason::kShutdown);
    EXPECT_EQ(w.stored(aria.id).position.x, third.x);

    // While stopped, entries are refused.
    auto late = std::make_shared<Sink>();
    auto refused = w.world().enter(aria, late);
    ASSERT_TRUE(late->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(late->refusals_[0].request, world::Request::kEnter);
    EXPECT_EQ(late->refusals_[0].error, WorldError::kDisabled);
    EXPECT_EQ(late->entries_, 0);
}

TEST(WorldService, TakeoverEntersWhereTheOldOneStood) {
    TestServer server(world_overrides({{"world.save_interval_s", "3600"}}));
    World w{server};
    auto aria = w.character("alice", "Aria");
    auto old_sink = std::make_shared<Sink>();
    auto old_player = w.world().enter(aria, old_sink);
    ASSERT_TRUE(has_entry(*old_sink));
    const auto zone = old_sink->entry_->zone;
    const auto to = walk(*old_player, 1, old_sink->entry_->at, 4);
    ASSERT_TRUE(w.at_x(zone, old_sink->entry_->entity, to.x));

    // The same record again (its position older than the character's): the old Player leaves,
    // and the new one stands where it stood.
    auto new_sink = std::make_shared<Sink>();
    auto new_player = w.world().enter(aria, new_sink);
    ASSERT_TRUE(old_sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*old_sink->left_, LeaveReason::kTakenOver);
    ASSERT_TRUE(has_entry(*new_sink));
    EXPECT_EQ(new_sink->entry_->zone, zone);
    EXPECT_EQ(new_sink->entry_->at.x, to.x);
    EXPECT_NE(new_sink->entry_->entity, old_sink->entry_->entity);

    // The old Player's requests and its destruction touch the new one in nothing.
    old_player->leave(LeaveReason::kLogout);
    old_player.reset();
    EXPECT_TRUE(w.entity(zone, new_sink->entry_->entity).is_object());
    EXPECT_FALSE(new_sink->left_.has_value());
    EXPECT_EQ(server.metric("hearth_world_players"), 1);
}

TEST(WorldService, WhisperAndChangeZoneAcrossZones) {
    TestServer server(world_overrides());
    World w{server};
    const auto zones = w.zones();
    ASSERT_GE(zones.size(), 2U) << "the shipped zones";
    auto alice = w.character("alice", "Alice");
    auto bob = w.character("bob", "Bob");
    auto a_sink = std::make_shared<Sink>();
    auto b_sink = std::make_shared<Sink>();
    auto a = w.world().enter(alice, a_sink);
    auto b = w.world().enter(bob, b_sink);
    ASSERT_TRUE(has_entry(*a_sink));
    ASSERT_TRUE(has_entry(*b_sink));

    // Bob goes to another zone; an unknown zone is refused with its id.
    const auto other = a_sink->entry_->zone == zones[0] ? zones[1] : zones[0];
    b->change_zone(4'000'000);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(b_sink->refusals_[0].request, world::Request::kChangeZone);
    EXPECT_EQ(b_sink->refusals_[0].error, WorldError::kNoSuchZone);
    EXPECT_EQ(b_sink->refusals_[0].detail, 4'000'000U);
    b->change_zone(other);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return s.changed_ == 1; }));
    EXPECT_EQ(b_sink->entry_->zone, other);
    // The change is saved at once.
    EXPECT_TRUE(eventually([&] { return w.stored(bob.id).position.zone == other; }));

    // A whisper by name, any case, across zones: the target hears it, the sender gets its copy.
    a->whisper("bOB", "over here");
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return !s.whispers_.empty(); }));
    EXPECT_FALSE(b_sink->whispers_[0].sent);
    EXPECT_EQ(b_sink->whispers_[0].peer, "Alice");
    EXPECT_EQ(b_sink->whispers_[0].text, "over here");
    ASSERT_TRUE(a_sink->wait([](const Sink& s) { return !s.whispers_.empty(); }));
    EXPECT_TRUE(a_sink->whispers_[0].sent);
    EXPECT_EQ(a_sink->whispers_[0].peer, "Bob");

    // Nobody of that name online.
    a->whisper("Nobody", "hello?");
    ASSERT_TRUE(a_sink->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(a_sink->refusals_[0].request, world::Request::kWhisper);
    EXPECT_EQ(a_sink->refusals_[0].error, WorldError::kNoSuchTarget);
    b->leave(LeaveReason::kLogout);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    a->whisper("Bob", "still there?");
    ASSERT_TRUE(a_sink->wait([](const Sink& s) { return s.refusals_.size() == 2; }));
    EXPECT_EQ(a_sink->refusals_[1].error, WorldError::kNoSuchTarget);
    EXPECT_EQ(w.stored(bob.id).position.zone, other);
}

TEST(WorldService, EveryRequestIsAnsweredOrCountedAsDropped) {
    TestServer server(world_overrides());
    World w{server};
    auto aria = w.character("alice", "Aria");
    auto sink = std::make_shared<Sink>();
    auto player = w.world().enter(aria, sink);
    ASSERT_TRUE(has_entry(*sink));
    // Many more requests than a character's queue holds, as fast as the test thread makes them:
    // whatever the shard drained meanwhile, each one is answered or counted at the bound, and
    // the character still leaves cleanly.
    const std::size_t sent = 20 * world::kMaxQueuedRequests;
    for (std::size_t i = 0; i < sent; ++i) {
        player->target_hp(sink->entry_->entity);
    }
    player->leave(LeaveReason::kLogout);
    ASSERT_TRUE(sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*sink->left_, LeaveReason::kLogout);
    const auto dropped =
        static_cast<std::size_t>(server.metric("hearth_world_requests_dropped_total"));
    std::size_t refused = 0;
    for (const auto& r : sink->refusals_) {
        refused += r.request == world::Request::kTargetHp ? 1 : 0;
    }
    EXPECT_EQ(sink->target_hps_ + refused + dropped, sent);
}

TEST(WorldService, WhispersBeyondTheChatRateAreRefused) {
    // A burst of 3 that refills one whisper every 100 s: the fourth is refused.
    TestServer server(world_overrides({{"world.chat_per_s", "0.01"}, {"world.chat_burst", "3"}}));
    World w{server};
    auto alice = w.character("alice", "Alice");
    auto bob = w.character("bob", "Bob");
    auto a_sink = std::make_shared<Sink>();
    auto b_sink = std::make_shared<Sink>();
    auto a = w.world().enter(alice, a_sink);
    auto b = w.world().enter(bob, b_sink);
    ASSERT_TRUE(has_entry(*a_sink));
    ASSERT_TRUE(has_entry(*b_sink));
    for (int i = 0; i < 4; ++i) {
        a->whisper("Bob", "line " + std::to_string(i));
    }
    ASSERT_TRUE(
        a_sink->wait([](const Sink& s) { return s.whispers_.size() + s.refusals_.size() == 4; }));
    EXPECT_EQ(a_sink->whispers_.size(), 3U);
    ASSERT_EQ(a_sink->refusals_.size(), 1U);
    EXPECT_EQ(a_sink->refusals_[0].request, world::Request::kWhisper);
    EXPECT_EQ(a_sink->refusals_[0].error, WorldError::kRateLimited);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return s.whispers_.size() == 3; }));
    EXPECT_EQ(b_sink->whispers_[2].text, "line 2");
}

TEST(WorldService, AFullZoneRefusesEntryAndChange) {
    TestServer server(world_overrides({{"world.max_players_per_zone", "1"}}));
    World w{server};
    auto alice = w.character("alice", "Alice");
    auto bob = w.character("bob", "Bob");
    auto a_sink = std::make_shared<Sink>();
    auto a = w.world().enter(alice, a_sink);
    ASSERT_TRUE(has_entry(*a_sink));
    const auto full = a_sink->entry_->zone;

    auto refused_sink = std::make_shared<Sink>();
    auto refused = w.world().enter(bob, refused_sink);
    ASSERT_TRUE(refused_sink->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(refused_sink->refusals_[0].request, world::Request::kEnter);
    EXPECT_EQ(refused_sink->refusals_[0].error, WorldError::kUnavailable);
    EXPECT_EQ(refused_sink->entries_, 0);
    refused.reset();

    // Saved in another zone, Bob enters there, and cannot change into the full one.
    const auto zones = w.zones();
    ASSERT_GE(zones.size(), 2U);
    bob.position.zone = full == zones[0] ? zones[1] : zones[0];
    auto b_sink = std::make_shared<Sink>();
    auto b = w.world().enter(bob, b_sink);
    ASSERT_TRUE(has_entry(*b_sink));
    EXPECT_EQ(b_sink->entry_->zone, bob.position.zone);
    b->change_zone(full);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(b_sink->refusals_[0].request, world::Request::kChangeZone);
    EXPECT_EQ(b_sink->refusals_[0].error, WorldError::kUnavailable);
    EXPECT_TRUE(w.entity(bob.position.zone, b_sink->entry_->entity).is_object());

    // Once Alice is gone there is room.
    a->leave(LeaveReason::kLogout);
    ASSERT_TRUE(a_sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    b->change_zone(full);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return s.changed_ == 1; }));
    EXPECT_EQ(b_sink->entry_->zone, full);
}

TEST(WorldService, ACharacterWhoseZoneIsGoneEntersAtTheStartZonesSpawn) {
    TestServer server(world_overrides(
        {{"characters.start_zone", "2"}, {"characters.safe_spots", R"(["2:150,150,0"])"}}));
    World w{server};
    auto aria = w.character("alice", "Aria");
    aria.position.zone = 4'000'000;
    auto sink = std::make_shared<Sink>();
    auto player = w.world().enter(aria, sink);
    ASSERT_TRUE(has_entry(*sink));
    EXPECT_EQ(sink->entry_->zone, 2U);
    // The shipped zone 2's spawn point (data/zones/caves.toml), not the saved coordinates.
    EXPECT_EQ(sink->entry_->at, (world::Vec3{100, 100, 0}));
}

TEST(WorldReload, LiveKeysApplyAndANewZonesDirRestartsTheWorld) {
    TempDir data;
    TempDir zones;
    auto overrides = world_overrides(
        {{"server.data_dir", "\"" + data.path() + "\""}, {"world.max_players_per_zone", "1"}});
    TestServer server(overrides);
    World w{server};
    auto alice = w.character("alice", "Alice");
    auto bob = w.character("bob", "Bob");
    auto a_sink = std::make_shared<Sink>();
    auto a = w.world().enter(alice, a_sink);
    ASSERT_TRUE(has_entry(*a_sink));
    auto full_sink = std::make_shared<Sink>();
    auto refused = w.world().enter(bob, full_sink);
    ASSERT_TRUE(full_sink->wait([](const Sink& s) { return !s.refusals_.empty(); }));
    EXPECT_EQ(full_sink->refusals_[0].error, WorldError::kUnavailable);

    // A live key: the same characters stay, and the zone takes one more from its next tick.
    overrides["world.max_players_per_zone"] = "2";
    server.app().apply(test_config(overrides, data.path()));
    const auto zone = a_sink->entry_->zone;
    const auto ticked = w.ticks(zone);
    ASSERT_TRUE(eventually([&] { return w.ticks(zone) > ticked; }));
    auto b_sink = std::make_shared<Sink>();
    auto b = w.world().enter(bob, b_sink);
    ASSERT_TRUE(has_entry(*b_sink));
    EXPECT_FALSE(a_sink->left_.has_value());

    // zones_dir: the module restarts (everyone saved and out), with the operator's zone.
    {
        std::ofstream file(zones.file("arena.toml"));
        file << "id = 7\nname = \"Arena\"\nwidth = 300\nheight = 300\nspawn = [150, 150, 0]\n";
    }
    overrides["world.zones_dir"] = "\"" + zones.path() + "\"";
    server.app().apply(test_config(overrides, data.path()));
    ASSERT_TRUE(a_sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    EXPECT_EQ(*a_sink->left_, LeaveReason::kShutdown);
    ASSERT_TRUE(b_sink->wait([](const Sink& s) { return s.left_.has_value(); }));
    const auto ids = w.zones();
    EXPECT_NE(std::find(ids.begin(), ids.end(), 7U), ids.end());
    EXPECT_TRUE(w.world().running());
}

TEST(WorldService, BadWorldSettingsAreNamed) {
    TempDir dir;
    for (const auto& [key, value] :
         std::vector<std::pair<std::string, std::string>>{{"world.view_radius", "-1"},
                                                          {"world.chat_burst", "0.5"},
                                                          {"world.max_speed", "nan"},
                                                          {"world.tick_hz", "61"},
                                                          {"world.zones_dir", "\"\""}}) {
        try {
            test_config({{key, value}}, dir.path());
            ADD_FAILURE() << key << " = " << value << " was accepted";
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace hearth::test
