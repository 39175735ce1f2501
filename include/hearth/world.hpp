#pragma once

// The world as front-ends use it (docs/world.md): zones that tick on the shards, the characters
// in them, what each one sees (area of interest), movement, combat, chat. Implemented by the
// `world` module (src/world); a front-end holds a WorldService& and links nothing of it, as it
// does with the CharacterService.
//
// The front-end speaks to a character in the world through a `Player` (its requests) and hears
// from the world through its own `PlayerSink` (what the character sees and the answers). Every
// request is asynchronous: it is posted to the zone's shard, and its answer or refusal comes back
// through the sink. The world knows no protocol: the sink encodes.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include <hearth/character_store.hpp>

namespace hearth::world {

/// An entity's id, unique in the process for its life (a character gets a new one per entry).
using EntityId = std::uint32_t;

struct Vec3 {
    float x = 0;
    float y = 0;
    float z = 0;
    bool operator==(const Vec3&) const = default;
};

enum class EntityKind : std::uint8_t { kPlayer = 1, kNpc = 2 };

/// What a viewer is told when an entity comes into its view. `name` is valid during the call.
struct EntityView {
    EntityId id = 0;
    EntityKind kind = EntityKind::kPlayer;
    std::uint32_t model = 0;  // an NPC's kind; 0 for players
    std::string_view name;
    std::uint16_t level = 0;
    Vec3 at;
    float heading = 0;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    store::CharacterLooks looks;
};

/// An entity's move, as `PlayerSink::moves` hands a tick's moves over.
struct MoveEntry {
    EntityId entity = 0;
    Vec3 at;
    float heading = 0;
};

/// The zone a character entered and where it stands. `zone_name` is valid during the call.
struct ZoneEntry {
    std::uint32_t zone = 0;
    std::string_view zone_name;
    float width = 0;  // the zone spans [0, width) x [0, height)
    float height = 0;
    EntityId entity = 0;  // the character's own entity
    Vec3 at;
    float heading = 0;
    std::uint16_t tick_hz = 0;
    float view_radius = 0;
    float max_speed = 0;  // units per second the world accepts
};

/// Which request a refusal answers.
enum class Request : std::uint8_t {
    kEnter,
    kChangeZone,
    kMove,
    kTargetHp,
    kAttack,
    kRespawn,
    kChat,
    kWhisper,
};

/// Why the world refused a request. Stable values.
enum class WorldError : std::uint16_t {
    kOk = 0,
    kDisabled = 1,      // the world module is not running
    kUnavailable = 2,   // busy (the zone is full, the store cannot load or save): try again
    kNoSuchZone = 3,    // detail: the zone id
    kNoSuchTarget = 4,  // an entity not in view, or a whisper to no one online
    kOutOfRange = 5,    // an attack from too far
    kDead = 6,          // the character is dead: respawn first
    kNotDead = 7,       // a respawn while alive
    kRateLimited = 8,   // the action's own rate (chat, whisper, attack): dropped
};

/// Why a move was refused (the protocol's Correction reasons).
enum class CorrectionReason : std::uint8_t {
    kTooFast = 1,
    kOutOfBounds = 2,
    kBlocked = 3,
    kDead = 4,
    kBadStart = 5,  // the path does not start near the character
};

enum class ChatChannel : std::uint8_t { kLocal = 0, kZone = 1 };
enum class NoticeKind : std::uint8_t { kInfo = 0, kWarning = 1, kShutdown = 2 };

/// Why a character left the world.
enum class LeaveReason : std::uint8_t {
    kLogout,        // the player asked (position saved before `left`)
    kDisconnected,  // the connection closed
    kKicked,        // an operator kicked the character
    kShutdown,      // the world module stops
    kTakenOver,     // the same character entered again, on another Player
};

/// What the world tells one character, implemented by the front-end (one per character in the
/// world). Runs on: the shard of the character's zone. Calls for one character never overlap
/// and keep their order, across zone changes too. Views (`std::string_view`) are valid during the
/// call, except those passed between `begin_update` and `end_update`, which stay valid until
/// `end_update` returns; and on one shard, one sink's `begin_update` .. `end_update` is never
/// interleaved with another's, so sinks may share one scratch batch per thread. A sink must take
/// calls after its connection closed (and drop them).
class PlayerSink {
public:
    virtual ~PlayerSink() = default;

    /// The answer to `WorldService::enter` (changed_zone false) or `Player::change_zone` (true).
    virtual void entered(const ZoneEntry& entry, bool changed_zone) = 0;

    /// One tick's changes in the character's view, when there are any: `begin_update`, the
    /// entities that left the view, those that came into it, those in view that moved,
    /// `end_update`. An entity is in at most one of the three in a tick.
    virtual void begin_update(std::uint32_t tick) = 0;
    virtual void despawn(EntityId entity) = 0;
    virtual void spawn(const EntityView& entity) = 0;
    virtual void move(EntityId entity, Vec3 at, float heading) = 0;
    /// The moves of an update, in order, in one call rather than one virtual call each (a busy
    /// zone sends most of a million a tick); `batch` is valid during the call. The zone calls
    /// this, never `move`; the default calls `move` for each.
    virtual void moves(std::span<const MoveEntry> batch) {
        for (const MoveEntry& m : batch) {
            move(m.entity, m.at, m.heading);
        }
    }
    virtual void end_update() = 0;

    /// A move of `seq` was refused: the character stays at `at`.
    virtual void correction(std::uint32_t seq, Vec3 at, float heading, CorrectionReason reason) = 0;
    /// An entity in view (or the character itself) was hit or healed.
    virtual void hp_update(EntityId entity, std::uint32_t hp, std::uint32_t max_hp,
                           EntityId source) = 0;
    virtual void death(EntityId entity, EntityId killer) = 0;
    virtual void respawned(EntityId entity, Vec3 at, float heading, std::uint32_t hp,
                           std::uint32_t max_hp) = 0;
    /// The answer to `Player::target_hp`.
    virtual void target_hp(EntityId entity, std::uint32_t hp, std::uint32_t max_hp) = 0;
    virtual void chat(ChatChannel channel, EntityId from, std::string_view from_name,
                      std::string_view text) = 0;
    /// `sent`: the sender's copy of a whisper that was delivered to `peer`.
    virtual void whisper(bool sent, std::string_view peer, std::string_view text) = 0;
    virtual void notice(NoticeKind kind, std::string_view text) = 0;
    /// A request refused; `detail` as WorldError says (0 when none).
    virtual void refused(Request request, WorldError error, std::uint32_t detail) = 0;
    /// The character is out of the world (its position saved unless the store failed, which the
    /// world logs); nothing more comes. After `Player::leave` or a kick or a shutdown.
    virtual void left(LeaveReason reason) = 0;
};

/// A character in the world, held by its front-end connection. Any thread (the front-end calls
/// it from the connection's); each call is posted to the zone's shard, in order. Destroying it
/// leaves the world as `leave(kDisconnected)` does.
class Player {
public:
    virtual ~Player() = default;

    /// Walk through `path` (1 to 16 points), each step checked for speed, bounds and zone; a
    /// refused step answers `correction` and drops the rest.
    virtual void move(std::uint32_t seq, std::span<const Vec3> path) = 0;
    virtual void change_zone(std::uint32_t zone) = 0;
    virtual void target_hp(EntityId entity) = 0;
    virtual void attack(EntityId target) = 0;
    virtual void respawn() = 0;
    /// `text` is at most 256 bytes of UTF-8 (the front-end checked it).
    virtual void chat(ChatChannel channel, std::string_view text) = 0;
    /// To the character named `to` (case-insensitive), in any zone.
    virtual void whisper(std::string_view to, std::string_view text) = 0;
    /// Saves the character's position and stats, then answers `left(reason)`. Idempotent.
    virtual void leave(LeaveReason reason) = 0;
};

/// Thread-safe.
class WorldService {
public:
    virtual ~WorldService() = default;

    /// Whether the world module runs (while it does not, `enter` refuses kDisabled).
    virtual bool running() const = 0;

    /// Puts `character` (as the character service selected it) into its saved zone at its saved
    /// position (the zone's spawn point when that zone is gone or the position is outside it).
    /// Returns at once; `sink->entered(entry, false)` or `sink->refused(kEnter, ...)` follows on
    /// the zone's shard. After a refusal the returned Player does nothing. The world keeps `sink`
    /// until `left`. A character already in the world (a reconnect racing its old connection's
    /// close) is taken over: the old Player's sink gets `left(kTakenOver)` and the new one enters
    /// where the old one stood, not at the possibly older saved position.
    virtual std::unique_ptr<Player> enter(const store::CharacterRecord& character,
                                          std::shared_ptr<PlayerSink> sink) = 0;
};

}  // namespace hearth::world
