#pragma once

// The world service (include/hearth/world.hpp) over the shards (docs/world.md, "The service").
//
// Each zone lives on the shard of "world:zone:<id>" and ticks there with ShardSet::every; nothing
// else touches it, so zone state takes no lock. A character's requests go through its own queue
// (at most kMaxQueuedRequests; the packet front-end's rate limit, 200 packets a second with a
// burst of 400 per connection, keeps a well-behaved client far below it; beyond it a request is
// dropped and counted), drained on the shard of the zone the character is in, so that they keep
// their order across a zone change. A directory (character id -> its Player, folded name -> the
// same) serves takeover, whisper and kick; it holds at most one entry per character in the world
// or whose last save is being written.
//
// Write-behind: every `save_interval` each zone hands over the characters that changed, and a
// leave or a zone change hands over that character; the saver writes them with
// CharacterService::save_many in batches of at most store::kMaxSaveBatch, one batch at a time,
// from the blocking pool. Saves waiting to be written are merged per character and bounded by
// kMaxPendingSaves (beyond it a save is refused and counted as failed; a failed periodic save makes
// the next round save every character again).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hearth/characters.hpp>
#include <hearth/world.hpp>

#include "core/metrics.hpp"
#include "core/shard_set.hpp"
#include "world/zone.hpp"
#include "world/zone_data.hpp"

namespace hearth::world {

/// A character's requests queued and not yet run on its zone's shard.
inline constexpr std::size_t kMaxQueuedRequests = 512;
/// Character saves waiting to be written (one per character: later saves merge into it).
inline constexpr std::size_t kMaxPendingSaves = 200'000;
/// Ticks of each zone the operator API's figures cover (a minute at 20 Hz).
inline constexpr std::size_t kTickWindow = 1'200;

/// What the service runs with from a start to its stop.
struct WorldSetup {
    std::vector<ZoneDef> zones;
    ZoneSettings settings;
    std::chrono::seconds save_interval{30};
    /// Where a character goes whose saved zone is gone (its spawn point).
    std::uint32_t start_zone = 1;
};

/// Seconds, over the ticks of the window.
struct TickFigures {
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

/// A zone as the operator API shows it.
struct ZoneStatus {
    std::uint32_t id = 0;
    std::string name;
    float width = 0;
    float height = 0;
    std::size_t players = 0;
    std::size_t npcs = 0;
    std::size_t window_ticks = 0;  // the ticks the figures cover
    TickFigures cpu = {};          // the tick's thread CPU time
    TickFigures lateness = {};     // how late the tick started (wall clock)
};

struct EntityRow {
    EntityId id = 0;
    EntityKind kind = EntityKind::kPlayer;
    std::uint32_t model = 0;
    std::string name;
    Vec3 at;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
};

/// Thread-safe. start, apply and stop: the control thread, one at a time.
class WorldServiceImpl final : public WorldService {
public:
    WorldServiceImpl(core::ShardSet shards, characters::CharacterService& characters,
                     core::MetricsRegistry& metrics);
    ~WorldServiceImpl() override;
    WorldServiceImpl(const WorldServiceImpl&) = delete;
    WorldServiceImpl& operator=(const WorldServiceImpl&) = delete;

    bool running() const override;
    std::unique_ptr<Player> enter(const store::CharacterRecord& character,
                                  std::shared_ptr<PlayerSink> sink) override;

    /// Makes the zones and starts their ticks and the periodic save. Throws
    /// std::invalid_argument when there is no zone or `start_zone` is none of them.
    void start(WorldSetup setup);
    /// The rules and periods from the next tick on (a reload).
    void apply(const ZoneSettings& settings, std::chrono::seconds save_interval);
    /// Refuses new entries, makes every character leave (saved, then `left(kShutdown)`), then
    /// ends the zones. Returns false when `deadline` passed first (the characters not yet out are
    /// dropped without `left`, and logged).
    bool stop(std::chrono::steady_clock::time_point deadline);

    // The operators' calls: answered from the zones' shards.
    /// Every zone, by id (none while stopped).
    void zones(std::function<void(std::vector<ZoneStatus>)> done) const;
    /// The entities of `zone` with the `count` lowest ids above `after`, by id; false (and `done`
    /// is not called) when there is no such zone.
    bool entities(std::uint32_t zone, EntityId after, std::size_t count,
                  std::function<void(std::vector<EntityRow>)> done) const;
    /// Makes the character leave with kKicked; false when it is not in the world.
    bool kick(std::uint64_t character_id);
    /// To one zone, or every zone (nullopt); false when there is no such zone.
    bool notice(std::optional<std::uint32_t> zone, NoticeKind kind, std::string text);
    /// Whether `zone` is a zone now.
    bool has_zone(std::uint32_t zone) const;
    /// Saves waiting to be written or being written.
    std::size_t pending_saves() const;

    struct Core;

private:
    std::shared_ptr<Core> core_;
};

}  // namespace hearth::world
