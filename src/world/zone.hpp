#pragma once

// One zone of the world, with no I/O and no threads: its entities (characters and NPCs), the
// interest grid that decides who sees whom, movement, combat and chat within it. The world
// service (world_service.*) keeps each zone on one shard and calls it only there; the zone tells
// its characters what they see through their PlayerSinks (include/hearth/world.hpp). The headless
// benchmark (bench/world_bench.cpp) drives it alone.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/character_store.hpp>
#include <hearth/world.hpp>

#include "world/zone_data.hpp"

namespace hearth::world {

/// Hands out entity ids, unique in the process (shared by every zone; any thread). 0 is never
/// given (the protocol's "none"); after 2^32 - 1 ids it wraps, by which time the entities of the
/// first round are long gone.
class EntityIds {
public:
    EntityId next() noexcept {
        EntityId id = next_.fetch_add(1, std::memory_order_relaxed);
        while (id == 0) {
            id = next_.fetch_add(1, std::memory_order_relaxed);
        }
        return id;
    }

private:
    std::atomic<EntityId> next_{1};
};

/// The rules of every zone, from `[world]` (world_config.hpp maps them).
struct ZoneSettings {
    std::uint16_t tick_hz = 20;
    float view_radius = 100;
    /// An entity leaves a viewer's view only beyond view_radius + view_hysteresis, so that one
    /// walking along the edge does not despawn and spawn again every tick.
    float view_hysteresis = 10;
    /// Units per second a character may walk; a step further than that (with the slack below)
    /// is refused with a correction.
    float max_speed = 7;
    /// Allowance over max_speed for network jitter: a client's moves arrive in bursts.
    float speed_slack = 0.25F;
    /// How far from the character the first point of a path may be (else kBadStart).
    float path_start_tolerance = 2;
    float attack_range = 5;
    std::uint32_t attack_damage = 10;
    /// Attacks per second per character (more are refused kRateLimited).
    float attacks_per_s = 2;
    /// Chat lines per second per character, with a burst of chat_burst (kRateLimited beyond).
    float chat_per_s = 2;
    float chat_burst = 5;
    /// Characters in one zone; entering beyond it is refused kUnavailable.
    std::size_t max_players = 5'000;
};

/// A character as it enters or leaves a zone: what the zone needs of its record, and what the
/// world saves of it.
struct PlayerState {
    std::uint64_t character_id = 0;
    std::uint64_t account_id = 0;
    std::string name;
    std::uint16_t level = 1;
    store::CharacterLooks looks;
    store::CharacterStats stats;  // hp and max_hp among them
    Vec3 at;
    float heading = 0;
};

/// What one tick cost and produced, for the zone's metrics and the operator API.
struct TickReport {
    std::uint32_t tick = 0;
    std::size_t players = 0;
    std::size_t npcs = 0;
    std::uint64_t spawns = 0;  // entries sent to sinks this tick, all viewers together
    std::uint64_t despawns = 0;
    std::uint64_t moves = 0;
    std::uint64_t updates = 0;  // begin_update .. end_update batches sent
};

/// Runs on: its shard only (not thread-safe). Sinks are called from inside these calls.
class Zone {
public:
    Zone(const ZoneDef& def, const ZoneSettings& settings, EntityIds& ids);
    ~Zone();
    Zone(const Zone&) = delete;
    Zone& operator=(const Zone&) = delete;

    std::uint32_t id() const noexcept;
    const ZoneDef& def() const noexcept;
    /// Takes effect at the next tick (a config reload).
    void set_settings(const ZoneSettings& settings);

    /// Places a character: at `state.at` when it lies in the zone, else at the spawn point. The
    /// entry is what `PlayerSink::entered` says (the caller sends it; the zone name stays valid
    /// while the zone lives); the others see the character from the next tick. nullopt when the
    /// zone has max_players.
    std::optional<ZoneEntry> add_player(const PlayerState& state, std::shared_ptr<PlayerSink> sink);
    /// Takes a character out; those who saw it get a despawn at the next tick. Its last state
    /// (for the save or the next zone), nullopt for an unknown entity.
    std::optional<PlayerState> remove_player(EntityId entity);
    /// The character's state now, or nullptr.
    const PlayerState* player(EntityId entity) const;
    PlayerSink* sink(EntityId entity) const;

    // A character's requests; answers and refusals go to its sink.
    void move(EntityId entity, std::uint32_t seq, std::span<const Vec3> path);
    void target_hp(EntityId entity, EntityId target);
    void attack(EntityId entity, EntityId target);
    void respawn(EntityId entity);
    void chat(EntityId entity, ChatChannel channel, std::string_view text);
    /// To every character in the zone.
    void notice(NoticeKind kind, std::string_view text);

    /// One tick: NPCs wander and respawn, then every character is sent the changes in its view
    /// since the last tick (one begin_update .. end_update per character with any). `periods`:
    /// the tick intervals of wall-clock time since the last tick, when the caller knows them (more
    /// than 1 after a tick that ran late, less for the one that follows it at once); movement
    /// budgets refill by it, so that a zone whose ticks run late does not refuse clients that walk
    /// at an honest speed. Clamped to [0, tick_hz] (at most one second's worth).
    TickReport tick(float periods = 1);

    /// The characters whose position or stats changed since the last call (all of them when
    /// `all`), as saves, appended to `out`.
    void collect_saves(std::vector<store::CharacterSave>& out, bool all);

    std::size_t players() const noexcept;
    std::size_t npcs() const noexcept;
    /// Every entity, for the operator API's map (the name view is valid during the call).
    void for_each_entity(const std::function<void(const EntityView&)>& visit) const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace hearth::world
