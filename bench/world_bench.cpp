// Headless zone ticks (docs/benchmarks.md, "World (issue 20): headless zone ticks"): one thread,
// one zone, every entity a character that walks each tick, view radius 100. Each character's
// sink fills one thread-local WorldUpdate between begin_update and end_update and encodes it with
// the packet front-end's encode_batched, as the server does, so a tick's time includes the
// interest grid, the view diffs, the sink calls and the encoded bytes.
//
// Args: entities, zone side (units), whether the sinks encode, whether the characters walk.
// Time: the thread's CPU time per tick, the characters' moves included.

#include <array>
#include <cmath>
#include <memory>
#include <numbers>
#include <random>
#include <span>
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
    explicit EncodingSink(bool encode) : encode_(encode) {}
    void entered(const world::ZoneEntry&, bool) override {}
    void begin_update(std::uint32_t tick) override {
        // One look-up of the thread-local per update, not per entity.
        scratch_ = &t_scratch;
        auto& u = scratch_->update;
        u.tick = tick;
        u.despawns.clear();
        u.spawns.clear();
        u.moves.clear();
    }
    void despawn(world::EntityId entity) override { scratch_->update.despawns.push_back(entity); }
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
        scratch_->update.spawns.push_back(s);
    }
    void move(world::EntityId entity, world::Vec3 at, float heading) override {
        scratch_->update.moves.push_back({entity, {at.x, at.y, at.z}, heading});
    }
    // As the server's sink (src/frontends/packet/world_sink.cpp) takes them.
    void moves(std::span<const world::MoveEntry> batch) override {
        auto& moves = scratch_->update.moves;
        const std::size_t at = moves.size();
        moves.resize(at + batch.size());
        packet::EntityMove* const out = moves.data() + at;
        for (std::size_t k = 0; k < batch.size(); ++k) {
            const world::MoveEntry& m = batch[k];
            out[k] = {m.entity, {m.at.x, m.at.y, m.at.z}, m.heading};
        }
    }
    void end_update() override {
        if (!encode_) {
            return;
        }
        scratch_->out.clear();
        if (packet::encode_batched(scratch_->out, scratch_->update) != packet::WireError::kNone) {
            std::abort();  // a bug of the benchmark: every value here encodes
        }
        scratch_->bytes += scratch_->out.size();
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

private:
    bool encode_;
    Scratch* scratch_ = nullptr;
};

/// The walkers' own randomness, cheap enough not to show in the tick's time.
class Random {
public:
    std::uint32_t next() noexcept {
        s_ ^= s_ << 13;
        s_ ^= s_ >> 17;
        s_ ^= s_ << 5;
        return s_;
    }

private:
    std::uint32_t s_ = 20;
};

constexpr std::size_t kDirections = 64;

struct Walker {
    world::EntityId id = 0;
    world::Vec3 at;
    std::uint32_t direction = 0;  // in kDirections
};

void BM_ZoneTick(benchmark::State& state) {
    const auto entities = static_cast<std::size_t>(state.range(0));
    const auto side = static_cast<float>(state.range(1));
    const bool encode = state.range(2) != 0;
    const bool walking = state.range(3) != 0;
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
    std::vector<Walker> walkers;
    for (std::size_t i = 0; i < entities; ++i) {
        world::PlayerState p;
        p.character_id = i + 1;
        p.name = "Walker" + std::to_string(i);
        p.at = {coord(rng), coord(rng), 0};
        p.stats.hp = p.stats.max_hp = 100;
        const auto entry = zone.add_player(p, std::make_shared<EncodingSink>(encode));
        walkers.push_back({entry->entity, entry->at, static_cast<std::uint32_t>(rng() % 64)});
    }
    // Each tick a walker turns by up to one step of the table either way, and walks at 90% of
    // the speed the zone accepts.
    const float step = settings.max_speed / static_cast<float>(settings.tick_hz) * 0.9F;
    std::array<world::Vec3, kDirections> steps;
    for (std::size_t d = 0; d < kDirections; ++d) {
        const float a = 2 * std::numbers::pi_v<float> * static_cast<float>(d) / kDirections;
        steps[d] = {step * std::cos(a), step * std::sin(a), 0};
    }
    Random random;
    std::uint32_t seq = 0;
    auto walk = [&] {
        ++seq;
        for (Walker& w : walkers) {
            w.direction = (w.direction + kDirections - 1 + random.next() % 3) % kDirections;
            world::Vec3 to{w.at.x + steps[w.direction].x, w.at.y + steps[w.direction].y, 0};
            if (!(to.x >= 0 && to.x < side && to.y >= 0 && to.y < side)) {
                w.direction = (w.direction + kDirections / 2) % kDirections;  // back from the edge
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
        if (walking) {
            walk();
        }
        const world::TickReport r = zone.tick();
        in_view += r.moves + r.spawns;
    }
    const double ticks = static_cast<double>(state.iterations());
    const double clients = static_cast<double>(entities);
    if (encode) {
        state.counters["bytes_per_client_s"] =
            static_cast<double>(t_scratch.bytes) / ticks / clients * settings.tick_hz;
    }
    // Everyone moves every tick, so what a client is sent (moves and spawns) is what it sees.
    state.counters["avg_in_view"] = static_cast<double>(in_view) / ticks / clients;
}

BENCHMARK(BM_ZoneTick)
    ->ArgNames({"entities", "side", "encode", "walk"})
    ->Args({1'000, 2'000, 1, 1})
    ->Args({10'000, 20'000, 1, 1})
    ->Args({10'000, 2'000, 1, 1})
    // The same without the encoding (the sinks fill the WorldUpdate only): the zone's share.
    ->Args({1'000, 2'000, 0, 1})
    ->Args({10'000, 20'000, 0, 1})
    ->Args({10'000, 2'000, 0, 1})
    // No one walks: nothing is sent, what is left is working out the views.
    ->Args({1'000, 2'000, 0, 0})
    ->Args({10'000, 20'000, 0, 0})
    ->Args({10'000, 2'000, 0, 0})
    ->Unit(benchmark::kMillisecond);

// The production encoding alone: one client's tick with `moves` entities moving in its view (the
// dense case above sends about 80), encoded as the sinks above encode it. Shows the encoding's
// share of a tick: the dense case encodes 10,000 of these.
void BM_EncodeWorldUpdate(benchmark::State& state) {
    packet::WorldUpdate update;
    update.tick = 1200;
    for (std::int64_t i = 0; i < state.range(0); ++i) {
        const auto f = static_cast<float>(i);
        update.moves.push_back({static_cast<std::uint32_t>(1000 + i), {f, f + 1, 0}, 0.5F});
    }
    std::string out;
    for (auto _ : state) {
        out.clear();
        benchmark::DoNotOptimize(packet::encode_batched(out, update));
    }
    state.counters["bytes"] = static_cast<double>(out.size());
}

BENCHMARK(BM_EncodeWorldUpdate)->ArgName("moves")->Arg(1)->Arg(8)->Arg(80);

}  // namespace
