#include "world/zone.hpp"
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include <boost/unordered/unordered_flat_map.hpp>

#include "world/interest_grid.hpp"

namespace hearth::world {

namespace {

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

/// xorshift64*: deterministic per zone (tests replay a zone), and cheap enough to draw per NPC
/// per tick.
class Random {
public:
    explicit Random(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    std::uint64_t next() noexcept {
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        return s_ * 0x2545F4914F6CDD1DULL;
    }
    /// In [0, 1).
    float unit() noexcept { return static_cast<float>(next() >> 40) * 0x1.0p-24F; }

private:
    std::uint64_t s_;
};

bool finite(const Vec3& p) noexcept {
    return std::isfinite(p.x) && std::isfinite(p.y) && std::isfinite(p.z);
}

/// atan2 within 1e-5 rad (Abramowitz and Stegun 4.4.49): headings are for showing which way
/// an entity faces, and libm's atan2f was a tenth of a busy zone's tick.
float heading_of(float dy, float dx) noexcept {
    const float ax = std::fabs(dx);
    const float ay = std::fabs(dy);
    const float hi = std::max(ax, ay);
    if (hi == 0) {
        return 0;
    }
    const float t = std::min(ax, ay) / hi;
    const float t2 = t * t;
    float r = t * (0.9998660F +
                   t2 * (-0.3302995F + t2 * (0.1801410F + t2 * (-0.0851330F + t2 * 0.0208351F))));
    if (ay > ax) {
        r = std::numbers::pi_v<float> / 2 - r;
    }
    if (dx < 0) {
        r = std::numbers::pi_v<float> - r;
    }
    return dy < 0 ? -r : r;
}

float distance(const Vec3& a, const Vec3& b) noexcept {
    const float dx = b.x - a.x;
    const float dy = b.y - a.y;
    const float dz = b.z - a.z;
    return std::sqrt(dx * dx + dy * dy + dz * dz);
}

/// What the interest grid holds of each entity, next to the positions it scans.
struct GridEntry {
    std::uint32_t slot = 0;
    bool player = false;  // a character (a viewer), not an NPC
};

/// What a view check reads of an entity, as of this tick's grid: one load per entity in a
/// candidate list.
struct Snapshot {
    Vec3 at;
    float heading = 0;
    EntityId id = 0;
    std::uint8_t on = 0;     // in the grid this tick (live and alive)
    std::uint8_t moved = 0;  // since the last tick
};

/// A candidate list's entry: a rank (see Zone::State::rank_of), and whether the viewer saw it
/// as of the last tick.
constexpr std::uint32_t kSeen = 0x80000000U;
constexpr std::uint32_t kRankMask = 0x7FFFFFFFU;

/// How much farther than the reach a candidate list looks: the slack that lets entities move
/// before the list must be made again (see Zone::State::check_near).
constexpr float kNearMargin = 5;
/// A candidate list is made again at least this often (ticks), each viewer in a different tick,
/// so that the work is spread and lists do not keep entities long gone.
constexpr std::uint32_t kNearEvery = 16;
/// Ranks follow the grid's order again this often (ticks), see Zone::State::rank_of.
constexpr std::uint32_t kRankEvery = 32;

}  // namespace

struct Zone::State {
    /// What every entity has, by slot. Hot fields apart from the rest, so that the tick's scans
    /// touch only what they read.
    struct Info {
        EntityId id = 0;
        EntityKind kind = EntityKind::kPlayer;
        bool live = false;   // the slot holds an entity
        bool alive = false;  // in the world: players always, NPCs until they die
        std::uint32_t hp = 0;
        std::uint32_t max_hp = 0;
        std::uint32_t player = kNone;  // index in players
        std::uint32_t npc = kNone;     // index in npcs
    };

    /// A character's record: what requests read (the tick reads the per-slot arrays below).
    struct Player {
        std::uint32_t slot = 0;
        std::shared_ptr<PlayerSink> sink;
        PlayerState state;
        float chat_tokens = 0;
        std::uint32_t chat_tick = 0;
        float attack_tokens = 0;
        std::uint32_t attack_tick = 0;
    };

    struct Npc {
        std::uint32_t slot = 0;
        std::uint32_t group = 0;  // in def.npcs
        Vec3 home;
        Vec3 target;
        std::uint32_t idle_until = 0;  // tick
        std::uint32_t respawn_at = 0;  // tick, while dead
    };

    State(const ZoneDef& d, const ZoneSettings& s, EntityIds& i)
        : def(d), settings(s), ids(i), random(d.id) {}

    ZoneDef def;
    ZoneSettings settings;
    std::optional<ZoneSettings> next_settings;
    EntityIds& ids;
    Random random;
    std::uint32_t tick = 0;

    std::vector<Info> info;
    std::vector<Vec3> at;
    std::vector<float> heading;
    std::vector<std::uint8_t> moved;  // since the last tick
    // A character's movement budget (units it may still walk) and whether it changed since the
    // last collect_saves, by slot: a move touches the hot arrays only, not the Player.
    std::vector<float> budget;
    std::vector<std::uint8_t> dirty;
    // A character's candidate list (see check_near): every entity that may come into its view
    // before the list is made again, each with whether it is in view as of the last tick; the
    // drift when it was made; whether it must be made again at the next tick; and its sink. By
    // rank (see rank_of), so that the tick, which works out views in the grid's order, reads
    // them in about the order they are stored.
    std::vector<std::vector<std::uint32_t>> near_of;
    std::vector<double> near_drift;
    std::vector<std::uint8_t> near_stale;
    std::vector<PlayerSink*> near_sink;
    std::vector<PlayerSink*> sink_of;  // by slot (owned by its Player)
    std::vector<std::uint8_t> mark;    // scratch of build_near
    std::uint8_t epoch = 0;
    std::vector<std::uint32_t> free_slots;
    /// Slots freed since the last tick: reused only after it, so that no view still holds one
    /// when it gets a new entity.
    std::vector<std::uint32_t> freed_slots;
    boost::unordered_flat_map<EntityId, std::uint32_t> slot_of;

    std::vector<Player> players;
    std::vector<Npc> npcs;
    std::size_t npcs_alive = 0;

    InterestGrid<GridEntry> grid;
    /// The characters in the grid, in its order: the tick works out views in this order, so
    /// that neighbours follow each other and find what they read in cache.
    struct Viewer {
        std::uint32_t slot = 0;
        std::uint32_t rank = 0;
    };
    std::vector<Viewer> viewers;
    /// By rank: the order of the snapshots and of the candidate lists' entries, which is the
    /// grid's order of a recent tick (then new slots), so that the candidates of neighbours,
    /// worked out one after the other, are read from the same few cache lines. (Slots are in
    /// order of arrival, anywhere in the zone.) Entities walk slowly, so the order is made again
    /// only every kRankEvery ticks.
    std::vector<Snapshot> snapshot;
    std::vector<std::uint32_t> rank_of;  // by slot
    std::vector<Snapshot> rerank_scratch;
    std::vector<std::uint32_t> slot_at;  // by rank
    /// The sum over the ticks of the farthest any entity in the grid moved in one (entities
    /// that came into the grid aside): no two entities came closer by more than twice its
    /// growth since a list was made.
    double drift = 0;
    std::vector<std::uint32_t> fresh;  // slots that came into the grid this tick

    // The view diff's scratch, reused across viewers: slots (despawns, spawns, was_seen) and the
    // moves for PlayerSink::moves.
    std::vector<std::uint32_t> despawns;
    std::vector<std::uint32_t> spawns;
    std::vector<std::uint32_t> was_seen;
    std::vector<std::uint32_t> near_scratch;  // build_near's new list, before it is kept
    std::vector<MoveEntry> move_batch;
    std::size_t despawn_count = 0;
    std::size_t spawn_count = 0;
    std::size_t move_count = 0;

    bool sees(std::uint32_t viewer, std::uint32_t slot) const {
        const auto& v = near_of[rank_of[viewer]];
        return std::find(v.begin(), v.end(), rank_of[slot] | kSeen) != v.end();
    }

    float reach() const noexcept { return settings.view_radius + settings.view_hysteresis; }
    float near_reach() const noexcept { return reach() + kNearMargin; }
    /// How much closer two entities may have come since a list was made before one that was
    /// not in it could be within view_radius.
    float near_slack() const noexcept { return near_reach() - settings.view_radius; }
    float budget_cap() const noexcept { return settings.max_speed * (1 + settings.speed_slack); }
    float seconds(std::uint32_t ticks) const noexcept {
        return static_cast<float>(ticks) /
               static_cast<float>(std::max<std::uint16_t>(settings.tick_hz, 1));
    }

    void apply_settings() {
        grid.configure(def.width, def.height, near_reach());
        std::fill(near_stale.begin(), near_stale.end(), 1);
    }

    std::uint32_t new_slot() {
        if (!free_slots.empty()) {
            const std::uint32_t s = free_slots.back();
            free_slots.pop_back();
            return s;
        }
        const auto s = static_cast<std::uint32_t>(info.size());
        info.emplace_back();
        at.emplace_back();
        heading.push_back(0);
        moved.push_back(0);
        budget.push_back(0);
        dirty.push_back(0);
        near_of.emplace_back();
        near_drift.push_back(0);
        near_stale.push_back(1);
        near_sink.push_back(nullptr);
        sink_of.push_back(nullptr);
        mark.push_back(0);
        snapshot.emplace_back();
        rank_of.push_back(s);
        slot_at.push_back(s);
        return s;
    }

    std::uint32_t find(EntityId id) const {
        const auto it = slot_of.find(id);
        return it == slot_of.end() ? kNone : it->second;
    }
    Player* player_of(EntityId id) {
        const std::uint32_t s = find(id);
        return s == kNone || info[s].player == kNone ? nullptr : &players[info[s].player];
    }

    bool inside(const Vec3& p) const noexcept {
        return finite(p) && p.x >= 0 && p.x < def.width && p.y >= 0 && p.y < def.height;
    }

    Vec3 clamp_inside(Vec3 p) const noexcept {
        // The largest floats below width and height: positions are in [0, width).
        p.x = std::clamp(p.x, 0.0F, std::nextafter(def.width, 0.0F));
        p.y = std::clamp(p.y, 0.0F, std::nextafter(def.height, 0.0F));
        return p;
    }

    /// A point within `radius` of `center`, uniform over the disc, inside the zone.
    Vec3 wander_point(const Vec3& center, float radius) {
        const float r = radius * std::sqrt(random.unit());
        const float a = 2 * std::numbers::pi_v<float> * random.unit();
        return clamp_inside({center.x + r * std::cos(a), center.y + r * std::sin(a), center.z});
    }

    EntityView view(std::uint32_t s) const {
        const Info& i = info[s];
        EntityView v;
        v.id = i.id;
        v.kind = i.kind;
        v.at = at[s];
        v.heading = heading[s];
        v.hp = i.hp;
        v.max_hp = i.max_hp;
        if (i.player != kNone) {
            const PlayerState& p = players[i.player].state;
            v.name = p.name;
            v.level = p.level;
            v.looks = p.looks;
        } else {
            const NpcSpawnDef& g = def.npcs[npcs[i.npc].group];
            v.model = g.model;
            v.name = g.name;
            v.level = g.level;
        }
        return v;
    }

    /// Calls f(sink) for each character whose view (as of the last tick) holds slot `s`.
    template <class F>
    void for_each_viewer(std::uint32_t s, F&& f) {
        const Snapshot& p = snapshot[rank_of[s]];
        if (p.on == 0) {
            return;  // came after the last tick: no one sees it yet
        }
        const Vec3 c = p.at;
        const float r2 = reach() * reach();
        grid.for_each_run(c.x, c.y, reach(), [&](std::size_t first, std::size_t n) {
            for (std::size_t j = first; j < first + n; ++j) {
                const GridEntry& e = grid.payload(j);
                const float dx = grid.x()[j] - c.x;
                const float dy = grid.y()[j] - c.y;
                // Characters may have left since the tick (their slots wait for the next one):
                // the slot's current player, not the grid's index, which removals shift.
                if (e.player && dx * dx + dy * dy <= r2 && e.slot != s &&
                    info[e.slot].player != kNone) {
                    if (sees(e.slot, s)) {
                        f(*sink_of[e.slot]);
                    }
                }
            }
        });
    }

    // Refills a token bucket from zone time; takes one token when there is one.
    bool take_token(float& tokens, std::uint32_t& last, float per_s, float burst) {
        tokens = std::min(burst, tokens + seconds(tick - last) * per_s);
        last = tick;
        // Float sums of exact halves and tenths may land a hair under a whole token.
        if (tokens < 1 - 1e-4F) {
            return false;
        }
        tokens = std::max(0.0F, tokens - 1);
        return true;
    }

    void step_npcs() {
        const float dt = seconds(1);
        for (Npc& n : npcs) {
            Info& i = info[n.slot];
            const NpcSpawnDef& g = def.npcs[n.group];
            if (!i.alive) {
                if (tick >= n.respawn_at) {
                    i.alive = true;
                    i.hp = i.max_hp;
                    at[n.slot] = n.home;
                    n.target = n.home;
                    n.idle_until = tick;
                    moved[n.slot] = 1;
                    ++npcs_alive;
                }
                continue;
            }
            if (g.speed <= 0 || g.wander_radius <= 0 || tick < n.idle_until) {
                continue;
            }
            Vec3& p = at[n.slot];
            const float dx = n.target.x - p.x;
            const float dy = n.target.y - p.y;
            const float left = std::sqrt(dx * dx + dy * dy);
            const float step = g.speed * dt;
            if (left <= step) {
                p.x = n.target.x;
                p.y = n.target.y;
                // A pause of 1 to 5 s, then somewhere else within the radius.
                n.idle_until = tick + static_cast<std::uint32_t>(
                                          (1 + 4 * random.unit()) /
                                          std::max(dt, std::numeric_limits<float>::min()));
                n.target = wander_point(n.home, g.wander_radius);
            } else {
                p.x += dx / left * step;
                p.y += dy / left * step;
            }
            if (left > 0) {
                heading[n.slot] = heading_of(dy, dx);
                moved[n.slot] = 1;
            }
        }
    }

    void refill_budgets(float periods) {
        const float cap = budget_cap();
        const float tick_hz = static_cast<float>(std::max<std::uint16_t>(settings.tick_hz, 1));
        const float per_tick = cap * seconds(1) * std::clamp(periods, 0.0F, tick_hz);
        // Every slot, NPCs' too: a loop the compiler vectorises, cheaper than picking.
        for (float& b : budget) {
            b = std::min(cap, b + per_tick);
        }
    }

    void rebuild_grid() {
        grid.clear();
        fresh.clear();
        float farthest2 = 0;
        for (std::uint32_t s = 0; s < info.size(); ++s) {
            // Field by field: a Snapshot built whole and copied made the store wait for the
            // stores of its parts.
            Snapshot& p = snapshot[rank_of[s]];
            if (!(info[s].live && info[s].alive)) {
                p.on = 0;
                continue;
            }
            // A slot is reused, and an NPC respawns, only after a tick with it out of the grid:
            // one that was in stays the same entity.
            const Vec3 now = at[s];
            if (p.on != 0) {
                const float dx = now.x - p.at.x;
                const float dy = now.y - p.at.y;
                farthest2 = std::max(farthest2, dx * dx + dy * dy);
            } else {
                fresh.push_back(s);
            }
            p.at = now;
            p.heading = heading[s];
            p.id = info[s].id;
            p.on = 1;
            p.moved = moved[s];
            grid.add(now.x, now.y, GridEntry{s, info[s].player != kNone});
        }
        drift += std::sqrt(static_cast<double>(farthest2));
        grid.build();
        viewers.clear();
        for (std::uint32_t g = 0; g < grid.size(); ++g) {
            if (grid.payload(g).player) {
                const std::uint32_t s = grid.payload(g).slot;
                viewers.push_back({s, rank_of[s]});
            }
        }
        // An entity that came into the grid is in no list: those who may see it before their
        // list is made again make it now (it too, if it is a character).
        const float r = near_reach();
        for (const std::uint32_t f : fresh) {
            near_stale[rank_of[f]] = 1;
            const Vec3 c = at[f];
            grid.for_each_run(c.x, c.y, r, [&](std::size_t first, std::size_t n) {
                for (std::size_t j = first; j < first + n; ++j) {
                    const float dx = grid.x()[j] - c.x;
                    const float dy = grid.y()[j] - c.y;
                    if (grid.payload(j).player && dx * dx + dy * dy <= r * r) {
                        near_stale[rank_of[grid.payload(j).slot]] = 1;
                    }
                }
            });
        }
        // The scratch of the view diffs holds the most a list may have: every slot.
        spawns.resize(info.size());
        despawns.resize(info.size());
        was_seen.resize(info.size());
        near_scratch.resize(info.size());
        move_batch.resize(info.size());
    }

    /// Ranks in the grid's order (those out of the grid after), and the lists' entries with them.
    void rerank() {
        std::vector<std::uint32_t>& old_rank = was_seen;  // scratch: the old rank of each slot
        old_rank.assign(rank_of.begin(), rank_of.end());
        std::vector<std::uint32_t>& rank_from = spawns;  // scratch: new rank by old rank
        rank_from.resize(info.size());
        std::vector<std::uint8_t>& placed = mark;
        std::fill(placed.begin(), placed.end(), 0);
        std::uint32_t next = 0;
        for (std::uint32_t g = 0; g < grid.size(); ++g) {
            const std::uint32_t s = grid.payload(g).slot;
            placed[s] = 1;
            slot_at[next] = s;
            rank_of[s] = next++;
        }
        for (std::uint32_t s = 0; s < info.size(); ++s) {
            if (placed[s] == 0) {
                slot_at[next] = s;
                rank_of[s] = next++;
            }
        }
        std::fill(placed.begin(), placed.end(), 0);
        epoch = 0;
        for (std::uint32_t s = 0; s < info.size(); ++s) {
            rank_from[old_rank[s]] = rank_of[s];
        }
        std::vector<Snapshot>& moved_to = rerank_scratch;
        moved_to.resize(snapshot.size());
        for (std::uint32_t r = 0; r < snapshot.size(); ++r) {
            moved_to[rank_from[r]] = snapshot[r];
        }
        snapshot.swap(moved_to);
        for (std::vector<std::uint32_t>& list : near_of) {
            for (std::uint32_t& e : list) {
                e = rank_from[e & kRankMask] | (e & kSeen);
            }
        }
        permute(near_of, rank_from);
        permute(near_drift, rank_from);
        permute(near_stale, rank_from);
        permute(near_sink, rank_from);
    }

    template <class T>
    static void permute(std::vector<T>& v, const std::vector<std::uint32_t>& to) {
        std::vector<T> out(v.size());
        for (std::size_t k = 0; k < v.size(); ++k) {
            out[to[k]] = std::move(v[k]);
        }
        v.swap(out);
    }

    /// Works out the viewer's view and what changed in it since the last tick. An entity enters
    /// the view within view_radius and leaves it beyond view_radius + view_hysteresis. Each
    /// character keeps a candidate list: every entity within near_reach() when it was made
    /// (build_near), each with whether it is in view. An entity not in the list was farther
    /// than near_reach() then, and no two entities came closer by more than twice `drift`'s
    /// growth since (entities new to the grid make the lists near them again, see rebuild_grid),
    /// so while that growth is under near_slack() / 2 nothing outside the list can be within
    /// view_radius, and the view is worked out from the list alone (check_near): one distance
    /// per candidate, read from `snapshot`, instead of a grid query and a diff against the last
    /// view. The list is made again when the drift may have used up the margin, when an entity
    /// came into the grid near the viewer, and every kNearEvery ticks in turn.
    void update_view(const Viewer& v) {
        const bool due =
            near_stale[v.rank] != 0 ||
            2 * (drift - near_drift[v.rank]) >= static_cast<double>(near_slack()) - 0.5 ||
            (v.rank + tick) % kNearEvery == 0;
        if (due) {
            build_near(v.slot, v.rank);
        } else {
            check_near(v.rank);
        }
    }

    /// The view from the list alone. The loops work on raw pointers: a store through a byte
    /// pointer may alias anything, and would make the compiler reload every vector's data
    /// pointer after each.
    void check_near(std::uint32_t viewer) {
        const Snapshot* const snap = snapshot.data();
        const Vec3 c = snap[viewer].at;
        const float enter2 = settings.view_radius * settings.view_radius;
        const float leave2 = reach() * reach();
        std::vector<std::uint32_t>& list = near_of[viewer];
        std::uint32_t* const entries = list.data();
        const std::size_t n = list.size();
        std::uint32_t* const spawned = spawns.data();
        std::uint32_t* const gone = despawns.data();
        MoveEntry* const batch = move_batch.data();
        std::size_t spawn_n = 0;
        std::size_t gone_n = 0;
        std::size_t move_n = 0;
        for (std::size_t k = 0; k < n; ++k) {
            const std::uint32_t e = entries[k];
            const std::uint32_t r = e & kRankMask;
            const std::uint32_t was = e >> 31;
            const Snapshot& p = snap[r];
            const float dx = p.at.x - c.x;
            const float dy = p.at.y - c.y;
            const float d2 = dx * dx + dy * dy;
            // Without branches (bitwise, not logical, operators): whether a candidate is within
            // view_radius is no better than random, and a branch on it is mispredicted often.
            const std::uint32_t within = static_cast<std::uint32_t>(d2 <= enter2) |
                                         (was & static_cast<std::uint32_t>(d2 <= leave2));
            const std::uint32_t seen = within & p.on;
            entries[k] = r | (seen << 31);
            // Unconditionally written: whether a kept entity moved is no better than random.
            batch[move_n] = {p.id, p.at, p.heading};
            move_n += seen & was & p.moved;
            if (seen != was) {
                if (seen) {
                    spawned[spawn_n++] = slot_at[r];
                } else {
                    gone[gone_n++] = slot_at[r];
                }
            }
        }
        spawn_count = spawn_n;
        despawn_count = gone_n;
        move_count = move_n;
    }

    /// Makes the viewer's list from the grid (one query of near_reach()), and works out its
    /// view by a diff with the last one. `mark` holds, per rank, `epoch` for "was in view" and
    /// `epoch + 1` for "still in view": two passes over arrays instead of a set per viewer. A byte
    /// per rank keeps `mark` in the L1 cache; it is cleared every 127 lists.
    void build_near(std::uint32_t viewer, std::uint32_t rank) {
        if (epoch >= 253) {
            std::fill(mark.begin(), mark.end(), 0);
            epoch = 0;
        }
        epoch += 2;
        const std::uint8_t was = epoch;
        const auto kept = static_cast<std::uint8_t>(epoch + 1);
        std::uint8_t* const marks = mark.data();
        std::vector<std::uint32_t>& list = near_of[rank];
        std::uint32_t* const before = was_seen.data();
        std::size_t before_n = 0;
        for (const std::uint32_t e : list) {
            if ((e & kSeen) != 0) {
                marks[e & kRankMask] = was;
                before[before_n++] = e & kRankMask;
            }
        }
        std::uint32_t* const fresh_list = near_scratch.data();
        std::size_t fresh_n = 0;
        const Snapshot* const snap = snapshot.data();
        const std::uint32_t* const ranks = rank_of.data();
        const Vec3 c = snap[rank].at;
        const float enter2 = settings.view_radius * settings.view_radius;
        const float leave2 = reach() * reach();
        const float near2 = near_reach() * near_reach();
        const float* const xs = grid.x();
        const float* const ys = grid.y();
        const GridEntry* const entries = grid.payloads();
        std::uint32_t* const spawned = spawns.data();
        MoveEntry* const batch = move_batch.data();
        std::size_t spawn_n = 0;
        std::size_t move_n = 0;
        grid.for_each_run(c.x, c.y, near_reach(), [&](std::size_t first, std::size_t n) {
            for (std::size_t j = first; j < first + n; ++j) {
                const float dx = xs[j] - c.x;
                const float dy = ys[j] - c.y;
                const float d2 = dx * dx + dy * dy;
                const std::uint32_t s = entries[j].slot;
                if (d2 > near2 || s == viewer) {
                    continue;
                }
                const std::uint32_t r = ranks[s];
                const bool had = marks[r] == was;
                const bool seen = d2 <= enter2 || (had && d2 <= leave2);
                fresh_list[fresh_n++] = r | (seen ? kSeen : 0U);
                if (!seen) {
                    continue;
                }
                if (had) {
                    marks[r] = kept;
                    const Snapshot& p = snap[r];
                    batch[move_n] = {p.id, p.at, p.heading};
                    move_n += p.moved != 0 ? 1 : 0;
                } else {
                    spawned[spawn_n++] = s;
                }
            }
        });
        std::uint32_t* const gone = despawns.data();
        std::size_t gone_n = 0;
        for (std::size_t k = 0; k < before_n; ++k) {
            gone[gone_n] = slot_at[before[k]];
            gone_n += marks[before[k]] != kept ? 1 : 0;
        }
        // Every character in the world keeps a list, so a list holds about what it needs: grown
        // by doubling, they held 1 KB a character at 100 candidates (heaptrack, 10,000 in one
        // zone), and a crowd that dispersed would leave them at its size. Allocated an eighth
        // above its size and again only when it outgrows that or falls a quarter below its
        // capacity, a list is not allocated again at each remake as a neighbour comes and goes.
        if (list.capacity() < fresh_n || list.capacity() > fresh_n + fresh_n / 4 + 16) {
            std::vector<std::uint32_t> sized;
            sized.reserve(fresh_n + fresh_n / 8 + 8);
            sized.assign(fresh_list, fresh_list + fresh_n);
            list.swap(sized);
        } else {
            list.assign(fresh_list, fresh_list + fresh_n);
        }
        near_drift[rank] = drift;
        near_stale[rank] = 0;
        spawn_count = spawn_n;
        move_count = move_n;
        despawn_count = gone_n;
    }

    void send_view(PlayerSink& sink, TickReport& report) {
        if (despawn_count == 0 && spawn_count == 0 && move_count == 0) {
            return;
        }
        sink.begin_update(tick);
        for (std::size_t k = 0; k < despawn_count; ++k) {
            sink.despawn(info[despawns[k]].id);
        }
        for (std::size_t k = 0; k < spawn_count; ++k) {
            sink.spawn(view(spawns[k]));
        }
        if (move_count != 0) {
            sink.moves({move_batch.data(), move_count});
        }
        sink.end_update();
        report.despawns += despawn_count;
        report.spawns += spawn_count;
        report.moves += move_count;
        ++report.updates;
    }

    void release(std::uint32_t s) {
        slot_of.erase(info[s].id);
        info[s].live = false;
        info[s].alive = false;
        freed_slots.push_back(s);
    }
};

Zone::Zone(const ZoneDef& def, const ZoneSettings& settings, EntityIds& ids)
    : state_(std::make_unique<State>(def, settings, ids)) {
    State& z = *state_;
    z.apply_settings();
    for (std::uint32_t g = 0; g < z.def.npcs.size(); ++g) {
        const NpcSpawnDef& group = z.def.npcs[g];
        for (std::uint32_t k = 0; k < group.count; ++k) {
            const std::uint32_t s = z.new_slot();
            State::Npc n;
            n.slot = s;
            n.group = g;
            n.home = z.wander_point(group.at, group.wander_radius);
            n.target = n.home;
            State::Info& i = z.info[s];
            i.id = z.ids.next();
            i.kind = EntityKind::kNpc;
            i.live = true;
            i.alive = true;
            i.hp = group.max_hp;
            i.max_hp = group.max_hp;
            i.npc = static_cast<std::uint32_t>(z.npcs.size());
            z.at[s] = n.home;
            z.heading[s] = 2 * std::numbers::pi_v<float> * z.random.unit();
            z.slot_of.emplace(i.id, s);
            z.npcs.push_back(n);
        }
    }
    z.npcs_alive = z.npcs.size();
}

Zone::~Zone() = default;

std::uint32_t Zone::id() const noexcept {
    return state_->def.id;
}

const ZoneDef& Zone::def() const noexcept {
    return state_->def;
}

void Zone::set_settings(const ZoneSettings& settings) {
    state_->next_settings = settings;
}

std::optional<ZoneEntry> Zone::add_player(const PlayerState& state,
                                          std::shared_ptr<PlayerSink> sink) {
    State& z = *state_;
    if (z.players.size() >= z.settings.max_players) {
        return std::nullopt;
    }
    const std::uint32_t s = z.new_slot();
    State::Player p;
    p.slot = s;
    p.sink = std::move(sink);
    z.sink_of[s] = p.sink.get();
    z.near_sink[z.rank_of[s]] = p.sink.get();
    z.near_of[z.rank_of[s]].clear();
    z.near_stale[z.rank_of[s]] = 1;
    p.state = state;
    if (!z.inside(state.at) || !std::isfinite(state.heading)) {
        p.state.at = z.def.spawn;
        p.state.heading = z.def.spawn_heading;
    }
    // Players cannot die in this version (they are not attackable): one saved with no HP, or
    // with stats that make no sense, enters with full HP rather than stuck dead.
    auto& stats = p.state.stats;
    stats.max_hp = std::max(stats.max_hp, 1);
    if (stats.hp < 1 || stats.hp > stats.max_hp) {
        stats.hp = stats.max_hp;
    }
    z.budget[s] = z.budget_cap();
    z.dirty[s] = 0;
    p.chat_tokens = z.settings.chat_burst;
    p.chat_tick = z.tick;
    p.attack_tokens = 1;
    p.attack_tick = z.tick;
    State::Info& i = z.info[s];
    i = State::Info{};
    i.id = z.ids.next();
    i.kind = EntityKind::kPlayer;
    i.live = true;
    i.alive = true;
    i.hp = static_cast<std::uint32_t>(stats.hp);
    i.max_hp = static_cast<std::uint32_t>(stats.max_hp);
    i.player = static_cast<std::uint32_t>(z.players.size());
    z.at[s] = p.state.at;
    z.heading[s] = p.state.heading;
    z.moved[s] = 0;
    z.slot_of.emplace(i.id, s);
    ZoneEntry entry;
    entry.zone = z.def.id;
    entry.zone_name = z.def.name;
    entry.width = z.def.width;
    entry.height = z.def.height;
    entry.entity = i.id;
    entry.at = p.state.at;
    entry.heading = p.state.heading;
    entry.tick_hz = z.settings.tick_hz;
    entry.view_radius = z.settings.view_radius;
    entry.max_speed = z.settings.max_speed;
    z.players.push_back(std::move(p));
    return entry;
}

std::optional<PlayerState> Zone::remove_player(EntityId entity) {
    State& z = *state_;
    const std::uint32_t s = z.find(entity);
    if (s == kNone || z.info[s].player == kNone) {
        return std::nullopt;
    }
    const std::uint32_t index = z.info[s].player;
    PlayerState out = std::move(z.players[index].state);
    out.at = z.at[s];
    out.heading = z.heading[s];
    out.stats.hp = static_cast<std::int32_t>(z.info[s].hp);
    if (index + 1 != z.players.size()) {
        z.players[index] = std::move(z.players.back());
        z.info[z.players[index].slot].player = index;
    }
    z.players.pop_back();
    z.info[s].player = kNone;
    z.sink_of[s] = nullptr;
    z.near_sink[z.rank_of[s]] = nullptr;
    z.near_of[z.rank_of[s]].clear();
    z.release(s);
    return out;
}

const PlayerState* Zone::player(EntityId entity) const {
    State& z = *state_;
    State::Player* p = z.player_of(entity);
    if (p == nullptr) {
        return nullptr;
    }
    // The hot arrays hold the truth; the state is brought up to date when asked.
    p->state.at = z.at[p->slot];
    p->state.heading = z.heading[p->slot];
    p->state.stats.hp = static_cast<std::int32_t>(z.info[p->slot].hp);
    return &p->state;
}

PlayerSink* Zone::sink(EntityId entity) const {
    State::Player* p = state_->player_of(entity);
    return p == nullptr ? nullptr : p->sink.get();
}

void Zone::move(EntityId entity, std::uint32_t seq, std::span<const Vec3> path) {
    State& z = *state_;
    const std::uint32_t s = z.find(entity);
    if (s == kNone || z.info[s].player == kNone) {
        return;
    }
    float& budget = z.budget[s];
    Vec3 at = z.at[s];
    float heading = z.heading[s];
    bool walked = false;
    for (std::size_t k = 0; k < path.size(); ++k) {
        const Vec3& to = path[k];
        std::optional<CorrectionReason> refused;
        float d = 0;
        if (!z.inside(to)) {
            refused = CorrectionReason::kOutOfBounds;
        } else {
            d = distance(at, to);
            if (k == 0 && d > z.settings.path_start_tolerance) {
                refused = CorrectionReason::kBadStart;
            } else if (d > budget) {
                refused = CorrectionReason::kTooFast;
            }
        }
        if (refused) {
            z.sink_of[s]->correction(seq, at, heading, *refused);
            break;
        }
        budget -= d;
        const float dx = to.x - at.x;
        const float dy = to.y - at.y;
        if (dx != 0 || dy != 0) {
            heading = heading_of(dy, dx);
        }
        walked = walked || !(to == at);
        at = to;
    }
    if (walked) {
        z.at[s] = at;
        z.heading[s] = heading;
        z.moved[s] = 1;
        z.dirty[s] = 1;
    }
}

void Zone::target_hp(EntityId entity, EntityId target) {
    State& z = *state_;
    State::Player* p = z.player_of(entity);
    if (p == nullptr) {
        return;
    }
    const std::uint32_t t = z.find(target);
    if (t == kNone || !z.info[t].alive || (t != p->slot && !z.sees(p->slot, t))) {
        p->sink->refused(Request::kTargetHp, WorldError::kNoSuchTarget, 0);
        return;
    }
    p->sink->target_hp(target, z.info[t].hp, z.info[t].max_hp);
}

void Zone::attack(EntityId entity, EntityId target) {
    State& z = *state_;
    State::Player* p = z.player_of(entity);
    if (p == nullptr) {
        return;
    }
    const std::uint32_t t = z.find(target);
    // Only NPCs can be attacked: another character, or oneself, is no target.
    if (t == kNone || z.info[t].npc == kNone || !z.info[t].alive || !z.sees(p->slot, t)) {
        p->sink->refused(Request::kAttack, WorldError::kNoSuchTarget, 0);
        return;
    }
    if (distance(z.at[p->slot], z.at[t]) > z.settings.attack_range) {
        p->sink->refused(Request::kAttack, WorldError::kOutOfRange, 0);
        return;
    }
    if (!z.take_token(p->attack_tokens, p->attack_tick, z.settings.attacks_per_s, 1)) {
        p->sink->refused(Request::kAttack, WorldError::kRateLimited, 0);
        return;
    }
    State::Info& i = z.info[t];
    i.hp -= std::min(i.hp, z.settings.attack_damage);
    const std::uint32_t hp = i.hp;
    const std::uint32_t max_hp = i.max_hp;
    // The attacker sees the target (checked above), so it is among the viewers.
    z.for_each_viewer(t, [&](PlayerSink& v) { v.hp_update(target, hp, max_hp, entity); });
    if (hp > 0) {
        return;
    }
    z.for_each_viewer(t, [&](PlayerSink& v) { v.death(target, entity); });
    // Out of the grid from the next tick (its viewers get a despawn); back after respawn_s, at
    // least one tick later so that the despawn is sent before the spawn.
    State::Npc& n = z.npcs[i.npc];
    i.alive = false;
    --z.npcs_alive;
    const float hz = static_cast<float>(z.settings.tick_hz);
    n.respawn_at =
        z.tick + 1 +
        std::max<std::uint32_t>(
            1, static_cast<std::uint32_t>(std::ceil(z.def.npcs[n.group].respawn_s * hz)));
}

void Zone::respawn(EntityId entity) {
    State::Player* p = state_->player_of(entity);
    if (p != nullptr) {
        // Characters cannot die yet (not attackable), so every respawn comes while alive.
        p->sink->refused(Request::kRespawn, WorldError::kNotDead, 0);
    }
}

void Zone::chat(EntityId entity, ChatChannel channel, std::string_view text) {
    State& z = *state_;
    State::Player* p = z.player_of(entity);
    if (p == nullptr) {
        return;
    }
    if (!z.take_token(p->chat_tokens, p->chat_tick, z.settings.chat_per_s, z.settings.chat_burst)) {
        p->sink->refused(Request::kChat, WorldError::kRateLimited, 0);
        return;
    }
    const std::string_view name = p->state.name;
    if (channel == ChatChannel::kZone) {
        for (State::Player& v : z.players) {
            v.sink->chat(channel, entity, name, text);
        }
        return;
    }
    p->sink->chat(channel, entity, name, text);
    z.for_each_viewer(p->slot, [&](PlayerSink& v) { v.chat(channel, entity, name, text); });
}

void Zone::notice(NoticeKind kind, std::string_view text) {
    for (State::Player& p : state_->players) {
        p.sink->notice(kind, text);
    }
}

TickReport Zone::tick(float periods) {
    State& z = *state_;
    if (z.next_settings) {
        z.settings = *z.next_settings;
        z.next_settings.reset();
        z.apply_settings();
    }
    ++z.tick;
    z.step_npcs();
    z.refill_budgets(periods);
    z.rebuild_grid();
    TickReport report;
    report.tick = z.tick;
    const auto& viewers = z.viewers;
    for (std::size_t i = 0; i < viewers.size(); ++i) {
        // The sinks a few places ahead are anywhere in the heap: fetch them while this view is
        // worked out.
        if (i + 4 < viewers.size()) {
            __builtin_prefetch(z.near_sink[viewers[i + 4].rank]);
        }
        z.update_view(viewers[i]);
        z.send_view(*z.near_sink[viewers[i].rank], report);
    }
    if (z.tick % kRankEvery == 0) {
        z.rerank();
    }
    std::fill(z.moved.begin(), z.moved.end(), 0);
    z.free_slots.insert(z.free_slots.end(), z.freed_slots.begin(), z.freed_slots.end());
    z.freed_slots.clear();
    report.players = z.players.size();
    report.npcs = z.npcs_alive;
    return report;
}

void Zone::collect_saves(std::vector<store::CharacterSave>& out, bool all) {
    State& z = *state_;
    for (State::Player& p : z.players) {
        if (z.dirty[p.slot] == 0 && !all) {
            continue;
        }
        z.dirty[p.slot] = 0;
        store::CharacterSave save;
        save.id = p.state.character_id;
        store::CharacterStats stats = p.state.stats;
        stats.hp = static_cast<std::int32_t>(z.info[p.slot].hp);
        save.stats = stats;
        const Vec3 at = z.at[p.slot];
        save.position = store::CharacterPosition{z.def.id, at.x, at.y, at.z, z.heading[p.slot]};
        out.push_back(std::move(save));
    }
}

std::size_t Zone::players() const noexcept {
    return state_->players.size();
}

std::size_t Zone::npcs() const noexcept {
    return state_->npcs_alive;
}

void Zone::for_each_entity(const std::function<void(const EntityView&)>& visit) const {
    const State& z = *state_;
    for (std::uint32_t s = 0; s < z.info.size(); ++s) {
        if (z.info[s].live && z.info[s].alive) {
            visit(z.view(s));
        }
    }
}

}  // namespace hearth::world
