// One zone with no I/O (src/world/zone.*): who sees whom (spawn, move, despawn with hysteresis),
// movement and its corrections, attacks, deaths and respawns, chat, saves. Each character's sink
// records what it was told and checks the sink contract as it goes (recording_sink.hpp).

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/world/recording_sink.hpp"
#include "world/zone.hpp"

namespace hearth::world {
namespace {

using test::RecordingSink;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

ZoneDef plain_zone() {
    ZoneDef def;
    def.id = 9;
    def.name = "Test";
    def.width = 1000;
    def.height = 1000;
    def.spawn = {500, 500, 0};
    def.spawn_heading = 1.5F;
    return def;
}

/// A zone and its characters, each with a recording sink.
class World {
public:
    explicit World(ZoneDef def = plain_zone(), ZoneSettings settings = {})
        : zone(def, settings, ids) {}

    EntityId add(const std::string& name, Vec3 at, std::uint64_t character = 0) {
        PlayerState s;
        s.character_id = character == 0 ? next_character++ : character;
        s.name = name;
        s.at = at;
        s.stats.hp = 100;
        s.stats.max_hp = 100;
        auto sink = std::make_shared<RecordingSink>();
        const auto entry = zone.add_player(s, sink);
        EXPECT_TRUE(entry.has_value());
        sinks[entry->entity] = sink;
        return entry->entity;
    }
    RecordingSink& of(EntityId e) { return *sinks.at(e); }
    Vec3 at(EntityId e) { return zone.player(e)->at; }
    /// A path from where the character stands to `to`.
    void walk(EntityId e, Vec3 to, std::uint32_t seq = 1) {
        const Vec3 path[] = {at(e), to};
        zone.move(e, seq, path);
    }
    void ticks(int n) {
        for (int i = 0; i < n; ++i) {
            zone.tick();
        }
    }

    EntityIds ids;
    Zone zone;
    std::map<EntityId, std::shared_ptr<RecordingSink>> sinks;
    std::uint64_t next_character = 1;
};

ZoneSettings fast() {
    ZoneSettings s;
    s.max_speed = 100'000;  // any step in one tick: these tests are about views
    return s;
}

TEST(Zone, CharactersSeeEachOtherSpawnMoveAndDespawnWithHysteresis) {
    World w(plain_zone(), fast());
    const EntityId a = w.add("Ann", {100, 100, 0});
    const EntityId b = w.add("Bob", {150, 100, 0});
    const EntityId far = w.add("Far", {900, 900, 0});
    EXPECT_EQ(w.zone.tick().updates, 2U);
    ASSERT_NE(w.of(a).update_at(1), nullptr);
    EXPECT_THAT(w.of(a).update_at(1)->spawns, ElementsAre(b));
    EXPECT_THAT(w.of(b).update_at(1)->spawns, ElementsAre(a));
    EXPECT_EQ(w.of(a).spawned[b].name, "Bob");
    EXPECT_EQ(w.of(a).spawned[b].kind, EntityKind::kPlayer);
    EXPECT_EQ(w.of(a).spawned[b].at, (Vec3{150, 100, 0}));
    EXPECT_EQ(w.of(a).spawned[b].hp, 100U);
    EXPECT_THAT(w.of(far).updates, IsEmpty());

    // Nothing changed: nothing is sent.
    const TickReport quiet = w.zone.tick();
    EXPECT_EQ(quiet.updates, 0U);
    EXPECT_EQ(w.of(a).updates.size(), 1U);
    EXPECT_EQ(w.of(b).updates.size(), 1U);

    // Bob moves: Ann is told, Bob is not told of himself.
    w.walk(b, {160, 100, 0});
    w.zone.tick();
    ASSERT_NE(w.of(a).update_at(3), nullptr);
    EXPECT_THAT(w.of(a).update_at(3)->moves, ElementsAre(b));
    EXPECT_EQ(w.of(a).positions[b], (Vec3{160, 100, 0}));
    EXPECT_EQ(w.of(b).updates.size(), 1U);

    // Beyond the view radius but within the hysteresis, Bob stays in view (and moves).
    w.walk(b, {205, 100, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(a).update_at(4)->moves, ElementsAre(b));
    EXPECT_EQ(w.of(a).visible, std::set<EntityId>{b});
    // Beyond the hysteresis he leaves, both ways.
    w.walk(b, {211, 100, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(a).update_at(5)->despawns, ElementsAre(b));
    EXPECT_THAT(w.of(b).update_at(5)->despawns, ElementsAre(a));
    // Back within the hysteresis he is not seen again: entering takes the view radius.
    w.walk(b, {205, 100, 0});
    w.zone.tick();
    EXPECT_EQ(w.of(a).update_at(6), nullptr);
    EXPECT_THAT(w.of(a).visible, IsEmpty());
    w.walk(b, {200, 100, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(a).update_at(7)->spawns, ElementsAre(b));
}

TEST(Zone, ALeavingCharacterIsDespawnedAndAnArrivalSpawned) {
    World w;
    const EntityId a = w.add("Ann", {100, 100, 0}, 41);
    w.zone.tick();
    const EntityId b = w.add("Bob", {120, 100, 0});
    const EntityId c = w.add("Cid", {100, 130, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(a).update_at(2)->spawns, UnorderedElementsAre(b, c));
    EXPECT_THAT(w.of(b).update_at(2)->spawns, UnorderedElementsAre(a, c));

    w.walk(a, {101, 100, 0});
    const auto state = w.zone.remove_player(a);
    ASSERT_TRUE(state.has_value());
    EXPECT_EQ(state->character_id, 41U);
    EXPECT_EQ(state->name, "Ann");
    EXPECT_EQ(state->at, (Vec3{101, 100, 0}));
    EXPECT_FALSE(w.zone.remove_player(a).has_value());
    EXPECT_EQ(w.zone.player(a), nullptr);
    EXPECT_EQ(w.zone.sink(a), nullptr);
    // Ann's old slot is not handed to the next arrival in the same tick: Bob sees one despawn
    // and one spawn, never a move of Ann's slot.
    const EntityId d = w.add("Dee", {110, 110, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(b).update_at(3)->despawns, ElementsAre(a));
    EXPECT_THAT(w.of(b).update_at(3)->spawns, ElementsAre(d));
    EXPECT_THAT(w.of(b).update_at(3)->moves, IsEmpty());
    EXPECT_EQ(w.zone.players(), 3U);
}

TEST(Zone, EntryIsAtTheSavedPositionOrTheSpawnPoint) {
    EntityIds ids;
    ZoneSettings settings;
    settings.max_players = 2;
    Zone zone(plain_zone(), settings, ids);
    PlayerState s;
    s.name = "Ann";
    s.at = {10, 20, 3};
    s.heading = 0.25F;
    auto entry = zone.add_player(s, std::make_shared<RecordingSink>());
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(entry->zone, 9U);
    EXPECT_EQ(entry->zone_name, "Test");
    EXPECT_EQ(entry->width, 1000);
    EXPECT_EQ(entry->at, (Vec3{10, 20, 3}));
    EXPECT_EQ(entry->heading, 0.25F);
    EXPECT_EQ(entry->tick_hz, 20);
    EXPECT_EQ(entry->view_radius, 100);
    EXPECT_EQ(entry->max_speed, 7);
    EXPECT_NE(entry->entity, 0U);
    // Stats that make no sense enter with full HP.
    EXPECT_EQ(zone.player(entry->entity)->stats.max_hp, 1);
    EXPECT_EQ(zone.player(entry->entity)->stats.hp, 1);

    s.at = {1000, 20, 0};  // width is outside: [0, width)
    entry = zone.add_player(s, std::make_shared<RecordingSink>());
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(entry->at, (Vec3{500, 500, 0}));
    EXPECT_EQ(entry->heading, 1.5F);

    EXPECT_FALSE(zone.add_player(s, std::make_shared<RecordingSink>()).has_value());
}

TEST(Zone, MovesAreCheckedPointByPoint) {
    World w;  // max_speed 7, slack 0.25: 8.75 units of budget at most
    const EntityId a = w.add("Ann", {100, 100, 0});
    const EntityId b = w.add("Bob", {110, 100, 0});
    w.zone.tick();

    // Out of the zone: the rest of the path is dropped; points before it are walked.
    const Vec3 out[] = {{100, 100, 0}, {101, 100, 0}, {-1, 100, 0}, {102, 100, 0}};
    w.zone.move(a, 5, out);
    ASSERT_EQ(w.of(a).corrections.size(), 1U);
    EXPECT_EQ(w.of(a).corrections[0].seq, 5U);
    EXPECT_EQ(w.of(a).corrections[0].reason, CorrectionReason::kOutOfBounds);
    EXPECT_EQ(w.of(a).corrections[0].at, (Vec3{101, 100, 0}));
    EXPECT_EQ(w.at(a), (Vec3{101, 100, 0}));
    EXPECT_NEAR(w.zone.player(a)->heading, 0, 1e-6);

    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Vec3 bad[] = {{101, 100, nan}};
    w.zone.move(a, 6, bad);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kOutOfBounds);
    const Vec3 edge[] = {{101, 1000, 0}};
    w.zone.move(a, 7, edge);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kOutOfBounds);

    // The first point must be near the character.
    const Vec3 away[] = {{104, 100, 0}, {105, 100, 0}};
    w.zone.move(a, 8, away);
    EXPECT_EQ(w.of(a).corrections.back().seq, 8U);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kBadStart);
    EXPECT_EQ(w.at(a), (Vec3{101, 100, 0}));

    // A walk beyond the budget (8.75 units, 1 used) is refused where it runs out.
    const Vec3 fast[] = {{101, 102, 0}, {101, 106, 0}, {101, 109, 0}};
    w.zone.move(a, 9, fast);
    EXPECT_EQ(w.of(a).corrections.back().seq, 9U);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kTooFast);
    EXPECT_EQ(w.at(a), (Vec3{101, 106, 0}));
    EXPECT_NEAR(w.zone.player(a)->heading, std::numbers::pi_v<float> / 2, 1e-5);
    EXPECT_EQ(w.of(a).corrections.size(), 5U);

    // Others see where the character got to.
    w.zone.tick();
    EXPECT_THAT(w.of(b).update_at(2)->moves, ElementsAre(a));
    EXPECT_EQ(w.of(b).positions[a], (Vec3{101, 106, 0}));

    // The budget refills at max_speed * (1 + slack) per second, capped at one second of it.
    const Vec3 step[] = {{101, 106, 0}, {101, 109, 0}};
    w.zone.move(a, 10, step);  // 1.75 left, 0.4375 refilled by the tick: 3 is too far
    EXPECT_EQ(w.of(a).corrections.back().seq, 10U);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kTooFast);
    w.ticks(2);  // 3.0625 now
    w.zone.move(a, 11, step);
    EXPECT_EQ(w.of(a).corrections.size(), 6U);
    EXPECT_EQ(w.at(a), (Vec3{101, 109, 0}));
    w.ticks(100);  // capped at 8.75
    const Vec3 far[] = {{101, 109, 0}, {101, 117.7F, 0}, {101, 118, 0}};
    w.zone.move(a, 12, far);
    EXPECT_EQ(w.of(a).corrections.back().seq, 12U);
    EXPECT_EQ(w.at(a), (Vec3{101, 117.7F, 0}));
}

// A shard that runs a tick late makes up no ticks: the budget refills by the time that passed, so
// a client walking at an honest speed is not refused while its zone's ticks run late.
TEST(Zone, ALateTickRefillsTheBudgetByTheTimeThatPassed) {
    World w;  // 8.75 units of budget at most, 0.4375 per tick at 20 Hz
    const EntityId a = w.add("Ann", {100, 100, 0});
    w.zone.tick();
    const Vec3 drain[] = {{100, 100, 0}, {100, 108.75F, 0}};
    w.zone.move(a, 1, drain);
    ASSERT_TRUE(w.of(a).corrections.empty());

    // Four intervals passed in one tick: 1.75 units, not 0.4375.
    w.zone.tick(4);
    const Vec3 walk[] = {{100, 108.75F, 0}, {100, 110.4F, 0}};
    w.zone.move(a, 2, walk);
    EXPECT_TRUE(w.of(a).corrections.empty());
    EXPECT_EQ(w.at(a), (Vec3{100, 110.4F, 0}));

    // One interval: the same walk again is too far.
    w.zone.tick(1);
    const Vec3 again[] = {{100, 110.4F, 0}, {100, 112.05F, 0}};
    w.zone.move(a, 3, again);
    ASSERT_EQ(w.of(a).corrections.size(), 1U);
    EXPECT_EQ(w.of(a).corrections[0].reason, CorrectionReason::kTooFast);

    // Clamped to one second: a tick after a long stall refills at most the cap.
    w.zone.tick(1e6F);
    const Vec3 beyond[] = {{100, 110.4F, 0}, {100, 119.3F, 0}};
    w.zone.move(a, 4, beyond);
    EXPECT_EQ(w.of(a).corrections.back().seq, 4U);
    EXPECT_EQ(w.of(a).corrections.back().reason, CorrectionReason::kTooFast);
}

ZoneDef wolf_zone() {
    ZoneDef def = plain_zone();
    // Stays put (no wander radius).
    def.npcs.push_back({.model = 5,
                        .name = "Wolf",
                        .level = 2,
                        .max_hp = 25,
                        .at = {100, 100, 0},
                        .respawn_s = 1});
    return def;
}

TEST(Zone, AttacksHitKillAndTheNpcRespawns) {
    World w(wolf_zone());
    const EntityId a = w.add("Ann", {102, 100, 0});
    const EntityId c = w.add("Cid", {150, 100, 0});
    const EntityId d = w.add("Dee", {900, 900, 0});
    EXPECT_EQ(w.zone.npcs(), 1U);
    w.zone.tick();
    ASSERT_EQ(w.of(a).update_at(1)->spawns.size(), 2U);
    EntityId wolf = 0;
    for (const auto& [id, view] : w.of(a).spawned) {
        if (view.kind == EntityKind::kNpc) {
            wolf = id;
            EXPECT_EQ(view.name, "Wolf");
            EXPECT_EQ(view.model, 5U);
            EXPECT_EQ(view.level, 2);
            EXPECT_EQ(view.hp, 25U);
            EXPECT_EQ(view.at, (Vec3{100, 100, 0}));
        }
    }
    ASSERT_NE(wolf, 0U);

    w.zone.attack(a, wolf);
    ASSERT_EQ(w.of(a).hp_updates.size(), 1U);
    EXPECT_EQ(w.of(a).hp_updates[0].entity, wolf);
    EXPECT_EQ(w.of(a).hp_updates[0].hp, 15U);
    EXPECT_EQ(w.of(a).hp_updates[0].max_hp, 25U);
    EXPECT_EQ(w.of(a).hp_updates[0].source, a);
    EXPECT_EQ(w.of(c).hp_updates.size(), 1U);  // a viewer
    EXPECT_THAT(w.of(d).hp_updates, IsEmpty());

    // Two attacks per second.
    w.zone.attack(a, wolf);
    ASSERT_EQ(w.of(a).refusals.size(), 1U);
    EXPECT_EQ(w.of(a).refusals[0].request, Request::kAttack);
    EXPECT_EQ(w.of(a).refusals[0].error, WorldError::kRateLimited);
    // Out of range, out of view, a character, oneself, no one.
    w.zone.attack(c, wolf);
    EXPECT_EQ(w.of(c).refusals.back().error, WorldError::kOutOfRange);
    w.zone.attack(d, wolf);
    EXPECT_EQ(w.of(d).refusals.back().error, WorldError::kNoSuchTarget);
    w.zone.attack(c, a);
    EXPECT_EQ(w.of(c).refusals.back().error, WorldError::kNoSuchTarget);
    w.zone.attack(a, a);
    EXPECT_EQ(w.of(a).refusals.back().error, WorldError::kNoSuchTarget);
    w.zone.attack(a, 999'999);
    EXPECT_EQ(w.of(a).refusals.back().error, WorldError::kNoSuchTarget);
    EXPECT_EQ(w.of(a).refusals.size(), 3U);

    // Target HP: what is in view, and oneself.
    w.zone.target_hp(c, wolf);
    ASSERT_EQ(w.of(c).target_hps.size(), 1U);
    EXPECT_EQ(w.of(c).target_hps[0].hp, 15U);
    w.zone.target_hp(c, c);
    EXPECT_EQ(w.of(c).target_hps.back().entity, c);
    EXPECT_EQ(w.of(c).target_hps.back().hp, 100U);
    w.zone.target_hp(c, a);
    EXPECT_EQ(w.of(c).target_hps.back().entity, a);
    w.zone.target_hp(d, wolf);
    EXPECT_EQ(w.of(d).refusals.back().request, Request::kTargetHp);
    EXPECT_EQ(w.of(d).refusals.back().error, WorldError::kNoSuchTarget);
    EXPECT_EQ(w.of(c).target_hps.size(), 3U);

    w.ticks(10);  // half a second: the next attack
    w.zone.attack(a, wolf);
    EXPECT_EQ(w.of(a).hp_updates.back().hp, 5U);
    w.ticks(10);
    w.zone.attack(a, wolf);
    EXPECT_EQ(w.of(a).hp_updates.back().hp, 0U);
    EXPECT_THAT(w.of(a).deaths, ElementsAre(std::pair{wolf, a}));
    EXPECT_THAT(w.of(c).deaths, ElementsAre(std::pair{wolf, a}));
    EXPECT_THAT(w.of(d).deaths, IsEmpty());
    EXPECT_EQ(w.zone.npcs(), 0U);
    // Dead: no target any more, and gone from view at the next tick.
    w.ticks(10);
    w.zone.attack(a, wolf);
    EXPECT_EQ(w.of(a).refusals.back().error, WorldError::kNoSuchTarget);
    w.zone.tick();
    const std::uint32_t died = 21;
    EXPECT_THAT(w.of(a).updates.back().despawns, ElementsAre(wolf));
    EXPECT_EQ(w.of(a).updates.back().tick, died + 1);
    EXPECT_EQ(w.of(c).visible, std::set<EntityId>{a});

    // Back after respawn_s (1 s), where it spawned, with full HP.
    while (!w.of(a).visible.contains(wolf)) {
        ASSERT_LT(w.zone.tick().tick, died + 40);
    }
    EXPECT_EQ(w.of(a).updates.back().tick, died + 1 + 20);
    EXPECT_THAT(w.of(a).updates.back().spawns, ElementsAre(wolf));
    EXPECT_EQ(w.of(a).spawned[wolf].hp, 25U);
    EXPECT_EQ(w.of(a).spawned[wolf].at, (Vec3{100, 100, 0}));
    EXPECT_EQ(w.zone.npcs(), 1U);

    // Characters cannot die, so a respawn is always refused.
    w.zone.respawn(a);
    EXPECT_EQ(w.of(a).refusals.back().request, Request::kRespawn);
    EXPECT_EQ(w.of(a).refusals.back().error, WorldError::kNotDead);
}

TEST(Zone, NpcsWanderWithinTheirRadiusAtTheirSpeed) {
    ZoneDef def = plain_zone();
    // Near the edge: wandering stays inside the zone.
    def.npcs.push_back({.model = 6,
                        .name = "Boar",
                        .max_hp = 10,
                        .count = 20,
                        .at = {20, 500, 0},
                        .wander_radius = 50,
                        .speed = 4});
    EntityIds ids;
    Zone zone(def, {}, ids);
    std::map<EntityId, Vec3> last;
    zone.for_each_entity([&](const EntityView& e) { last[e.id] = e.at; });
    ASSERT_EQ(last.size(), 20U);
    bool any_moved = false;
    for (int t = 0; t < 400; ++t) {
        zone.tick();
        zone.for_each_entity([&](const EntityView& e) {
            EXPECT_LE(std::hypot(e.at.x - 20, e.at.y - 500), 100.01F);  // home within 50, then 50
            EXPECT_GE(e.at.x, 0);
            const Vec3 before = last[e.id];
            const float step = std::hypot(e.at.x - before.x, e.at.y - before.y);
            EXPECT_LE(step, 4.0F / 20 + 1e-4F);
            any_moved = any_moved || step > 0;
            last[e.id] = e.at;
        });
    }
    EXPECT_TRUE(any_moved);
}

TEST(Zone, ATickIsDeterministicAndListsEveryEntity) {
    ZoneDef def = plain_zone();
    def.npcs.push_back({.model = 2,
                        .name = "Crow",
                        .max_hp = 3,
                        .count = 30,
                        .at = {500, 500, 0},
                        .wander_radius = 200,
                        .speed = 5});
    auto run = [&] {
        World w(def);
        w.add("Ann", {400, 400, 0});
        w.ticks(200);
        std::vector<std::pair<EntityKind, Vec3>> seen;
        w.zone.for_each_entity([&](const EntityView& e) { seen.emplace_back(e.kind, e.at); });
        return seen;
    };
    const auto first = run();
    EXPECT_EQ(first, run());  // no clock, a generator seeded by the zone id
    ASSERT_EQ(first.size(), 31U);
    EXPECT_EQ(std::count_if(first.begin(), first.end(),
                            [](const auto& e) { return e.first == EntityKind::kPlayer; }),
              1);
}

TEST(Zone, ChatReachesViewersOrTheZoneUnderARate) {
    World w;
    const EntityId a = w.add("Ann", {100, 100, 0});
    const EntityId b = w.add("Bob", {150, 100, 0});
    const EntityId far = w.add("Far", {900, 900, 0});
    // Before the first tick no one sees Ann: the local line reaches Ann alone.
    w.zone.chat(a, ChatChannel::kLocal, "early");
    EXPECT_EQ(w.of(a).chats.size(), 1U);
    EXPECT_THAT(w.of(b).chats, IsEmpty());
    w.zone.tick();

    w.zone.chat(a, ChatChannel::kLocal, "hi");
    ASSERT_EQ(w.of(b).chats.size(), 1U);
    EXPECT_EQ(w.of(b).chats[0].channel, ChatChannel::kLocal);
    EXPECT_EQ(w.of(b).chats[0].from, a);
    EXPECT_EQ(w.of(b).chats[0].from_name, "Ann");
    EXPECT_EQ(w.of(b).chats[0].text, "hi");
    EXPECT_EQ(w.of(a).chats.back().text, "hi");  // the sender's own copy
    EXPECT_THAT(w.of(far).chats, IsEmpty());

    w.zone.chat(far, ChatChannel::kZone, "all");
    for (const EntityId e : {a, b, far}) {
        EXPECT_EQ(w.of(e).chats.back().text, "all");
        EXPECT_EQ(w.of(e).chats.back().channel, ChatChannel::kZone);
    }

    // A burst of 5, then 2 per second.
    for (int i = 0; i < 3; ++i) {
        w.zone.chat(a, ChatChannel::kLocal, "more");
    }
    EXPECT_THAT(w.of(a).refusals, IsEmpty());
    w.zone.chat(a, ChatChannel::kZone, "one too many");
    ASSERT_EQ(w.of(a).refusals.size(), 1U);
    EXPECT_EQ(w.of(a).refusals[0].request, Request::kChat);
    EXPECT_EQ(w.of(a).refusals[0].error, WorldError::kRateLimited);
    EXPECT_NE(w.of(far).chats.back().text, "one too many");
    w.ticks(10);
    w.zone.chat(a, ChatChannel::kLocal, "again");
    EXPECT_EQ(w.of(a).chats.back().text, "again");
    w.zone.chat(a, ChatChannel::kLocal, "and again");
    EXPECT_EQ(w.of(a).refusals.size(), 2U);

    w.zone.notice(NoticeKind::kWarning, "restart");
    for (const EntityId e : {a, b, far}) {
        EXPECT_THAT(w.of(e).notices,
                    ElementsAre(std::pair{NoticeKind::kWarning, std::string("restart")}));
    }
}

TEST(Zone, SavesCollectWhatChanged) {
    World w;
    const EntityId a = w.add("Ann", {100, 100, 0}, 71);
    w.add("Bob", {300, 100, 0}, 72);
    std::vector<store::CharacterSave> saves;
    w.zone.collect_saves(saves, false);
    EXPECT_THAT(saves, IsEmpty());
    w.walk(a, {101, 101, 0});
    w.zone.collect_saves(saves, false);
    ASSERT_EQ(saves.size(), 1U);
    EXPECT_EQ(saves[0].id, 71U);
    ASSERT_TRUE(saves[0].position.has_value());
    EXPECT_EQ(saves[0].position->zone, 9U);
    EXPECT_EQ(saves[0].position->x, 101);
    EXPECT_EQ(saves[0].position->y, 101);
    ASSERT_TRUE(saves[0].stats.has_value());
    EXPECT_EQ(saves[0].stats->hp, 100);
    saves.clear();
    w.zone.collect_saves(saves, false);
    EXPECT_THAT(saves, IsEmpty());
    w.zone.collect_saves(saves, true);
    EXPECT_EQ(saves.size(), 2U);
}

TEST(Zone, SettingsTakeEffectAtTheNextTick) {
    World w;
    const EntityId a = w.add("Ann", {100, 100, 0});
    const EntityId b = w.add("Bob", {250, 100, 0});
    w.zone.tick();
    EXPECT_THAT(w.of(a).visible, IsEmpty());
    ZoneSettings wide;
    wide.view_radius = 200;
    w.zone.set_settings(wide);
    w.zone.tick();
    EXPECT_EQ(w.of(a).visible, std::set<EntityId>{b});
}

// The views against brute force: many characters walking at random (some leaving and arriving)
// among wandering NPCs, every tick's visible sets and moves checked. `step`: how far a character
// may walk per tick along each axis. With `kill`, characters also kill the NPCs next to them
// (which come back after respawn_s), so that entities leave and enter the grid in place.
void expect_views_match_brute_force(float step_max, int ticks, bool kill) {
    ZoneDef def = plain_zone();
    def.width = 600;
    def.height = 400;
    def.npcs.push_back({.model = 1,
                        .name = "Rat",
                        .max_hp = 5,
                        .count = 60,
                        .at = {300, 200, 0},
                        .wander_radius = 250,
                        .speed = 30,
                        .respawn_s = 0.5F});
    ZoneSettings settings;
    settings.view_radius = 60;
    settings.view_hysteresis = 15;
    settings.max_speed = 80;
    settings.attack_range = 8;
    settings.attacks_per_s = 20;
    World w(def, settings);
    std::mt19937 rng(20);
    std::uniform_real_distribution<float> ux(0, 599.9F);
    std::uniform_real_distribution<float> uy(0, 399.9F);
    std::uniform_real_distribution<float> step(-step_max, step_max);
    std::vector<EntityId> players;
    for (int i = 0; i < 80; ++i) {
        players.push_back(w.add("P" + std::to_string(i), {ux(rng), uy(rng), 0}));
    }
    std::map<EntityId, std::set<EntityId>> expected;  // per viewer
    std::map<EntityId, Vec3> before;
    const float r2 = 60.0F * 60.0F;
    const float h2 = 75.0F * 75.0F;
    std::size_t kills = 0;
    for (int t = 0; t < ticks; ++t) {
        for (const EntityId p : players) {
            const Vec3 at = w.at(p);
            const Vec3 to{std::clamp(at.x + step(rng), 0.0F, 599.9F),
                          std::clamp(at.y + step(rng), 0.0F, 399.9F), 0};
            w.walk(p, to);
        }
        if (t % 7 == 3) {  // one leaves, one arrives
            const std::size_t k = rng() % players.size();
            w.zone.remove_player(players[k]);
            expected.erase(players[k]);
            players[k] = w.add("N" + std::to_string(t), {ux(rng), uy(rng), 0});
        }
        if (kill) {
            // Each NPC within reach of a character that sees it, as of the last tick.
            std::vector<std::pair<EntityId, EntityId>> hits;
            w.zone.for_each_entity([&](const EntityView& e) {
                if (e.kind != EntityKind::kNpc) {
                    return;
                }
                for (const EntityId p : players) {
                    const Vec3 at = w.at(p);
                    const float dx = at.x - e.at.x;
                    const float dy = at.y - e.at.y;
                    if (dx * dx + dy * dy < 7.0F * 7.0F && w.of(p).visible.contains(e.id)) {
                        hits.emplace_back(p, e.id);
                        break;
                    }
                }
            });
            for (const auto& [p, npc] : hits) {
                const std::size_t deaths = w.of(p).deaths.size();
                w.zone.attack(p, npc);
                kills += w.of(p).deaths.size() - deaths;
            }
        }
        const std::uint32_t tick = w.zone.tick().tick;
        std::map<EntityId, Vec3> now;
        w.zone.for_each_entity([&](const EntityView& e) { now[e.id] = e.at; });
        for (const EntityId v : players) {
            const Vec3 c = now.at(v);
            std::set<EntityId> want;
            const auto& had = expected[v];
            for (const auto& [e, p] : now) {
                const float dx = p.x - c.x;
                const float dy = p.y - c.y;
                const float d2 = dx * dx + dy * dy;
                if (e != v && (d2 <= r2 || (d2 <= h2 && had.contains(e)))) {
                    want.insert(e);
                }
            }
            RecordingSink& sink = w.of(v);
            ASSERT_EQ(sink.visible, want) << "viewer " << v << " at tick " << tick;
            std::set<EntityId> moved;
            for (const EntityId e : want) {
                if (had.contains(e) && before.contains(e) && !(before[e] == now[e])) {
                    moved.insert(e);
                }
            }
            const auto* u = sink.update_at(tick);
            const std::set<EntityId> got =
                u == nullptr ? std::set<EntityId>{}
                             : std::set<EntityId>(u->moves.begin(), u->moves.end());
            ASSERT_EQ(got, moved) << "viewer " << v << " at tick " << tick;
            expected[v] = std::move(want);
        }
        before = std::move(now);
    }
    if (kill) {
        EXPECT_GT(kills, 20U);  // the deaths and respawns were exercised
    }
}

TEST(Zone, ViewsMatchBruteForceOverManyTicks) {
    expect_views_match_brute_force(3.5F, 300, false);
}

// Slow walkers, as most are: views are mostly worked out from the candidate lists between two
// makings of them, while entities die, respawn, leave and arrive.
TEST(Zone, ViewsMatchBruteForceWithSlowWalkersAndDeaths) {
    expect_views_match_brute_force(0.4F, 600, true);
}

}  // namespace
}  // namespace hearth::world
