// Headless zone ticks (docs/benchmarks.md, "World (issue 20): headless zone ticks"): one thread,
// one zone, every entity a character that walks each tick, view radius 100. Each character's
// sink fills one thread-local WorldUpdate between begin_update and end_update and encodes it with
// the packet front-end's encode_batched, as the server does, so a tick's time includes the
// interest grid, the view diffs, the sink calls and the encoded bytes.
//
// Args: entities, zone side (units). Time: the thread's CPU time per tick (moves included).

#include <cmath>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "frontends/packet/messages.hpp"
#include "world/zone.hpp"

namespace {

using namespace hearth;

/// What every sink of the thread shares: sinks are never interleaved on one thread.
struct Scratch {
    packet::WorldUpdate update;
    std::string out;
    std::uint64_t bytes = 0;
};
thread_local Scratch t_scratch;

class EncodingSink final : public world::PlayerSink {
public:
    void entered(const world::ZoneEntry&, bool) override {}
    void begin_update(std::uint32_t tick) override {
        auto& u = t_scratch.update;
        u.tick = tick;
        u.despawns.clear();
        u.spawns.clear();
        u.moves.clear();
    }
    void despawn(world::EntityId entity) override { t_scratch.update.despawns.push_back(entity); }
    void spawn(const world::EntityView& e) override {
        packet::EntitySpawn s;
        s.entity = e.id;
        s.kind = static_cast<packet::EntityKind>(e.kind);
        s.model = e.model;
        s.name = e.name;
        s.level = e.level;
        s.at = {e.at.x, e.at.y, e.at.z};
        s.heading = e.heading;
        s.hp = e.hp;
        s.max_hp = e.max_hp;
        s.looks = {e.looks.body, e.looks.face, e.looks.hair, e.looks.hair_color};
        t_scratch.update.spawns.push_back(s);
    }
    void move(world::EntityId entity, world::Vec3 at, float heading) override {
        t_scratch.update.moves.push_back({entity, {at.x, at.y, at.z}, heading});
    }
    void end_update() override {
        t_scratch.out.clear();
        if (packet::encode_batched(t_scratch.out, t_scratch.update) != packet::WireError::kNone) {
            std::abort();  // a bug of the benchmark: every value here encodes
        }
        t_scratch.bytes += t_scratch.out.size();
    }
    void correction(std::uint32_t, world::Vec3, float, world::CorrectionReason) override {
        std::abort();  // the walkers stay within speed and bounds
    }
    void hp_update(world::EntityId, std::uint32_t, std::uint32_t, world::EntityId) override {}
    void death(world::EntityId, world::EntityId) override {}
    void respawned(world::EntityId, world::Vec3, float, std::uint32_t, std::uint32_t) override {}
    void target_hp(world::EntityId, std::uint32_t, std::uint32_t) override {}
    void chat(world::ChatChannel, world::EntityId, std::string_view, std::string_view) override {}
    void whisper(bool, std::string_view, std::string_view) override {}
    void notice(world::NoticeKind, std::string_view) override {}
    void refused(world::Request, world::WorldError, std::uint32_t) override {}
    void left(world::LeaveReason) override {}
};

struct Walker {
    world::EntityId id = 0;
    world::Vec3 at;
    float direction = 0;
};

void BM_ZoneTick(benchmark::State& state) {
    const auto entities = static_cast<std::size_t>(state.range(0));
    const auto side = static_cast<float>(state.range(1));
    world::ZoneDef def;
    def.id = 1;
    def.name = "Bench";
    def.width = side;
    def.height = side;
    def.spawn = {side / 2, side / 2, 0};
    world::ZoneSettings settings;  // tick_hz 20, view_radius 100, max_speed 7
    settings.max_players = entities;
    world::EntityIds ids;
    world::Zone zone(def, settings, ids);
    std::mt19937 rng(20);
    std::uniform_real_distribution<float> coord(0, side);
    std::uniform_real_distribution<float> turn(-0.3F, 0.3F);
    std::uniform_real_distribution<float> angle(0, 2 * std::numbers::pi_v<float>);
    std::vector<Walker> walkers;
    for (std::size_t i = 0; i < entities; ++i) {
        world::PlayerState p;
        p.character_id = i + 1;
        p.name = "Walker" + std::to_string(i);
        p.at = {coord(rng), coord(rng), 0};
        p.stats.hp = p.stats.max_hp = 100;
        const auto entry = zone.add_player(p, std::make_shared<EncodingSink>());
        walkers.push_back({entry->entity, entry->at, angle(rng)});
    }
    const float step = settings.max_speed / static_cast<float>(settings.tick_hz) * 0.9F;
    std::uint32_t seq = 0;
    auto walk = [&] {
        ++seq;
        for (Walker& w : walkers) {
            w.direction += turn(rng);
            world::Vec3 to{w.at.x + step * std::cos(w.direction),
                           w.at.y + step * std::sin(w.direction), 0};
            if (!(to.x >= 0 && to.x < side && to.y >= 0 && to.y < side)) {
                w.direction += std::numbers::pi_v<float>;  // back from the edge
                to = w.at;
            }
            w.at = to;
            zone.move(w.id, seq, std::span(&to, 1));
        }
    };
    // The first ticks send every view whole; the steady state is what a zone lives in.
    for (int i = 0; i < 3; ++i) {
        walk();
        zone.tick();
    }
    t_scratch.bytes = 0;
    std::uint64_t in_view = 0;
    for (auto _ : state) {
        walk();
        const world::TickReport r = zone.tick();
        in_view += r.moves + r.spawns;
    }
    const double ticks = static_cast<double>(state.iterations());
    const double clients = static_cast<double>(entities);
    state.counters["bytes_per_client_s"] =
        static_cast<double>(t_scratch.bytes) / ticks / clients * settings.tick_hz;
    // Everyone moves every tick, so what a client is sent (moves and spawns) is what it sees.
    state.counters["avg_in_view"] = static_cast<double>(in_view) / ticks / clients;
}

BENCHMARK(BM_ZoneTick)
    ->ArgNames({"entities", "side"})
    ->Args({1'000, 2'000})
    ->Args({10'000, 20'000})
    ->Args({10'000, 2'000})
    ->Unit(benchmark::kMillisecond);

}  // namespace
