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

/// What the interest grid holds of each entity: all that a view diff and the moves it sends
/// read, next to the positions it scans.
struct GridEntry {
    EntityId id = 0;
    std::uint32_t slot = 0;
    Vec3 at;
    float heading = 0;
    bool player = false;  // a character (a viewer), not an NPC
    bool moved = false;   // since the last tick
};

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
    // A character's view as of the last tick: slots, at [view_at, + view_size) of `visible`; and
    // its sink (owned by its Player). By slot, so that the tick does not visit the Players.
    std::vector<std::uint32_t> view_at;
    std::vector<std::uint32_t> view_size;
    std::vector<PlayerSink*> sink_of;
    std::vector<std::uint8_t> mark;  // scratch of the view diff, see diff_view
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
    /// Every character's view, one after the other in grid order (see diff_view), and the views
    /// being made by the tick that runs.
    std::vector<std::uint32_t> visible;
    std::vector<std::uint32_t> next_visible;
    std::size_t next_visible_size = 0;
    /// The characters' grid positions, in grid order: the tick works out views in this order,
    /// so that neighbours follow each other and find the grid's runs they scan in cache.
    std::vector<std::uint32_t> viewers;
    std::vector<Vec3> grid_at;  // by slot: where the grid last saw it (while in_grid)
    std::vector<std::uint8_t> in_grid;

    // The view diff's scratch, reused across viewers: grid positions (near, spawns, moves) and
    // slots (despawns).
    std::vector<std::uint32_t> near;
    std::vector<std::uint32_t> despawns;
    std::vector<std::uint32_t> spawns;
    std::vector<std::uint32_t> moves;
    std::vector<MoveEntry> move_batch;  // send_view's, for PlayerSink::moves
    std::size_t despawn_count = 0;
    std::size_t spawn_count = 0;
    std::size_t move_count = 0;

    std::span<const std::uint32_t> view_of(std::uint32_t viewer) const {
        return {visible.data() + view_at[viewer], view_size[viewer]};
    }
    bool sees(std::uint32_t viewer, std::uint32_t slot) const {
        const auto v = view_of(viewer);
        return std::find(v.begin(), v.end(), slot) != v.end();
    }

    float reach() const noexcept { return settings.view_radius + settings.view_hysteresis; }
    float budget_cap() const noexcept { return settings.max_speed * (1 + settings.speed_slack); }
    float seconds(std::uint32_t ticks) const noexcept {
        return static_cast<float>(ticks) /
               static_cast<float>(std::max<std::uint16_t>(settings.tick_hz, 1));
    }

    void apply_settings() { grid.configure(def.width, def.height, reach()); }

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
        view_at.push_back(0);
        view_size.push_back(0);
        sink_of.push_back(nullptr);
        mark.push_back(0);
        grid_at.emplace_back();
        in_grid.push_back(0);
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
        if (in_grid[s] == 0) {
            return;  // came after the last tick: no one sees it yet
        }
        const Vec3 c = grid_at[s];
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
        for (std::uint32_t s = 0; s < info.size(); ++s) {
            const bool on = info[s].live && info[s].alive;
            in_grid[s] = on ? 1 : 0;
            if (on) {
                grid_at[s] = at[s];
                grid.add(at[s].x, at[s].y,
                         GridEntry{info[s].id, s, at[s], heading[s], info[s].player != kNone,
                                   moved[s] != 0});
            }
        }
        grid.build();
        viewers.clear();
        for (std::uint32_t g = 0; g < grid.size(); ++g) {
            if (grid.payload(g).player) {
                viewers.push_back(g);
            }
        }
        // The scratch of the view diffs holds the most a view may have: the whole grid.
        near.resize(grid.size());
        spawns.resize(grid.size());
        moves.resize(grid.size());
        move_batch.resize(grid.size());
        despawns.resize(grid.size());
        next_visible_size = 0;
    }

    /// The viewer's new view, and what changed in it since the last tick. An entity enters the
    /// view within view_radius and leaves it beyond view_radius + view_hysteresis. `mark`
    /// holds, per slot, `epoch` for "was in view" and `epoch + 1` for "still in view": two
    /// passes over arrays instead of a set per viewer. A byte per slot keeps `mark` in the L1
    /// cache; it is cleared every 127 viewers. Views are read from `visible` and written to
    /// `next_visible` in grid order, so both are streamed rather than visited. The loops work on
    /// raw pointers: a store through a byte pointer may alias anything, and would make the
    /// compiler reload every vector's data pointer after each.
    void diff_view(std::uint32_t viewer, std::uint32_t self) {
        if (epoch >= 253) {
            std::fill(mark.begin(), mark.end(), 0);
            epoch = 0;
        }
        epoch += 2;
        const std::uint8_t was = epoch;
        const auto kept = static_cast<std::uint8_t>(epoch + 1);
        std::uint8_t* const marks = mark.data();
        const auto before = view_of(viewer);
        for (const std::uint32_t s : before) {
            marks[s] = was;
        }
        const Vec3 c = grid.payload(self).at;
        const float enter2 = settings.view_radius * settings.view_radius;
        const float leave2 = reach() * reach();
        std::uint32_t* const found = near.data();
        std::size_t found_n = 0;
        const float* const xs = grid.x();
        const float* const ys = grid.y();
        grid.for_each_run(c.x, c.y, reach(), [&](std::size_t first, std::size_t n) {
            // Branch-free: whether one in a run is within reach is about as good as random, so
            // a branch would often be mispredicted. (Four distances at a time with SSE2, and a
            // diff without branches below, measured no faster.)
            std::uint32_t* const out = found + found_n;
            std::size_t k = 0;
            for (std::size_t j = first; j < first + n; ++j) {
                const float dx = xs[j] - c.x;
                const float dy = ys[j] - c.y;
                const float d2 = dx * dx + dy * dy;
                out[k] = static_cast<std::uint32_t>(j) | (d2 <= enter2 ? 0x80000000U : 0U);
                k += d2 <= leave2 ? 1 : 0;
            }
            found_n += k;
        });
        if (next_visible.size() < next_visible_size + found_n) {
            next_visible.resize(std::max(2 * next_visible.size(), next_visible_size + found_n));
        }
        const GridEntry* const entries = grid.payloads();
        std::uint32_t* const now = next_visible.data() + next_visible_size;
        std::uint32_t* const spawned = spawns.data();
        std::uint32_t* const moved_out = moves.data();
        std::size_t now_n = 0;
        std::size_t spawn_n = 0;
        std::size_t move_n = 0;
        for (std::size_t k = 0; k < found_n; ++k) {
            const std::uint32_t g = found[k] & 0x7FFFFFFFU;
            if (g == self) {
                continue;
            }
            const GridEntry& e = entries[g];
            if (marks[e.slot] == was) {
                marks[e.slot] = kept;
                now[now_n++] = e.slot;
                moved_out[move_n] = g;
                move_n += e.moved ? 1 : 0;
            } else if ((found[k] & 0x80000000U) != 0) {
                now[now_n++] = e.slot;
                spawned[spawn_n++] = g;
            }
        }
        std::uint32_t* const gone = despawns.data();
        std::size_t gone_n = 0;
        for (const std::uint32_t s : before) {
            gone[gone_n] = s;
            gone_n += marks[s] != kept ? 1 : 0;
        }
        view_at[viewer] = static_cast<std::uint32_t>(next_visible_size);
        view_size[viewer] = static_cast<std::uint32_t>(now_n);
        next_visible_size += now_n;
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
            sink.spawn(view(grid.payload(spawns[k]).slot));
        }
        const GridEntry* const entries = grid.payloads();
        const std::uint32_t* const moved_in = moves.data();
        MoveEntry* const batch = move_batch.data();
        for (std::size_t k = 0; k < move_count; ++k) {
            const GridEntry& e = entries[moved_in[k]];
            batch[k] = {e.id, e.at, e.heading};
        }
        if (move_count != 0) {
            sink.moves({batch, move_count});
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
    z.view_at[s] = 0;
    z.view_size[s] = 0;
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
    z.view_size[s] = 0;
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
            __builtin_prefetch(z.sink_of[z.grid.payload(viewers[i + 4]).slot]);
        }
        const std::uint32_t slot = z.grid.payload(viewers[i]).slot;
        z.diff_view(slot, viewers[i]);
        z.send_view(*z.sink_of[slot], report);
    }
    z.visible.swap(z.next_visible);
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
