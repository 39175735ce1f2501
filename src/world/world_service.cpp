#include "world/world_service.hpp"
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <fmt/format.h>
#include <time.h>

#include "core/post_batch.hpp"
#include "util/log.hpp"
#include "util/token_bucket.hpp"
#include "world/names.hpp"

namespace hearth::world {

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("world");
    return l;
}

std::string folded(std::string_view name) {
    std::string out(name);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

/// The calling thread's CPU time: a tick's cost without the time the thread waited for a core.
double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// A position outside every zone: Zone::add_player puts the character at the spawn point.
constexpr Vec3 kAtSpawn{-1, -1, 0};

PlayerState state_of(const store::CharacterRecord& r) {
    return PlayerState{
        .character_id = r.id,
        .account_id = r.account_id,
        .name = r.name,
        .level = static_cast<std::uint16_t>(std::clamp<std::int32_t>(r.level, 1, 65'535)),
        .looks = r.looks,
        .stats = r.stats,
        .at = {r.position.x, r.position.y, r.position.z},
        .heading = r.position.heading};
}

store::CharacterSave save_of(const PlayerState& s, std::uint32_t zone) {
    return store::CharacterSave{
        .id = s.character_id,
        .level = s.level,
        .stats = s.stats,
        .position = store::CharacterPosition{
            .zone = zone, .x = s.at.x, .y = s.at.y, .z = s.at.z, .heading = s.heading}};
}

/// Later fields win; unset ones keep the earlier value.
void merge(store::CharacterSave& into, store::CharacterSave&& from) {
    if (from.level) {
        into.level = from.level;
    }
    if (from.experience) {
        into.experience = from.experience;
    }
    if (from.money) {
        into.money = from.money;
    }
    if (from.stats) {
        into.stats = from.stats;
    }
    if (from.inventory) {
        into.inventory = std::move(from.inventory);
    }
    if (from.position) {
        into.position = from.position;
    }
}

std::vector<double> tick_bounds() {
    return {0.000'01, 0.000'025, 0.000'05, 0.000'1, 0.000'25, 0.000'5, 0.001, 0.002'5,
            0.005,    0.01,      0.025,    0.05,    0.1,      0.25,    0.5,   1};
}

TickFigures figures(std::vector<float> values) {
    TickFigures f;
    if (values.empty()) {
        return f;
    }
    auto at = [&](double q) {
        const auto i = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
        std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(i),
                         values.end());
        return static_cast<double>(values[i]);
    };
    f.p50 = at(0.5);
    f.p99 = at(0.99);
    f.max = *std::max_element(values.begin(), values.end());
    return f;
}

// ---- the saver -------------------------------------------------------------------------------

/// The write-behind: saves merged per character, written one batch at a time from the blocking
/// pool. Thread-safe. Shared with its completions, which may outlive the service.
class Saver : public std::enable_shared_from_this<Saver> {
public:
    using Done = std::function<void(bool saved)>;

    Saver(characters::CharacterService& characters, core::Runtime& runtime,
          core::MetricsRegistry& metrics)
        : characters_(characters),
          runtime_(runtime),
          ok_(metrics.counter("hearth_world_saves_total",
                              "Characters saved by the world's write-behind, by result.",
                              {{"result", "ok"}})),
          failed_(metrics.counter("hearth_world_saves_total",
                                  "Characters saved by the world's write-behind, by result.",
                                  {{"result", "failed"}})),
          pending_gauge_(metrics.gauge("hearth_world_saves_pending",
                                       "Character saves waiting to be written.")) {}

    /// Queues `save`; `done` (may be empty) runs once it is written or failed: on a store thread,
    /// or at once when the queue is at its bound.
    void save(store::CharacterSave save, Done done) {
        bool refused = false;
        {
            std::lock_guard lock(mutex_);
            refused = !add_locked(std::move(save), std::move(done));
            start_locked();
        }
        if (refused) {
            refuse(1);
        }
    }

    void save_all(std::vector<store::CharacterSave> saves) {
        std::size_t refused_count = 0;
        {
            std::lock_guard lock(mutex_);
            for (auto& s : saves) {
                if (!add_locked(std::move(s), {})) {
                    ++refused_count;
                }
            }
            start_locked();
        }
        if (refused_count > 0) {
            refuse(refused_count);
        }
    }

    /// Whether a save failed since the last call: the next periodic round then collects every
    /// character, since the failed ones are no longer marked changed in their zones.
    bool take_resync() { return resync_.exchange(false); }

    /// Until nothing waits nor is being written, or `deadline`.
    bool wait_idle(Clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        return idle_.wait_until(lock, deadline, [&] { return order_.empty() && !writing_; });
    }

    std::size_t pending() const {
        std::lock_guard lock(mutex_);
        return pending_.size() + in_flight_;
    }

private:
    struct Entry {
        store::CharacterSave save;
        std::vector<Done> waiters;
    };

    /// False at the bound: the caller calls `done(false)` through refuse.
    bool add_locked(store::CharacterSave save, Done done) {
        auto it = pending_.find(save.id);
        if (it == pending_.end()) {
            if (pending_.size() >= kMaxPendingSaves) {
                if (done) {
                    refused_waiters_.push_back(std::move(done));
                }
                return false;
            }
            const auto id = save.id;
            it = pending_.emplace(id, Entry{std::move(save), {}}).first;
            order_.push_back(id);
        } else {
            merge(it->second.save, std::move(save));
        }
        if (done) {
            it->second.waiters.push_back(std::move(done));
        }
        pending_gauge_.set(static_cast<std::int64_t>(pending_.size()));
        return true;
    }

    void refuse(std::size_t count) {
        failed_.inc(count);
        resync_ = true;
        std::vector<Done> waiters;
        {
            std::lock_guard lock(mutex_);
            waiters.swap(refused_waiters_);
        }
        log()->warn(
            "world: {} character save(s) refused: {} saves already wait to be written "
            "(the store is slow or failing)",
            count, kMaxPendingSaves);
        for (auto& w : waiters) {
            w(false);
        }
    }

    void start_locked() {
        if (writing_ || order_.empty()) {
            return;
        }
        writing_ = true;
        boost::asio::post(runtime_.blocking_pool(), [self = shared_from_this()] { self->write(); });
    }

    /// On the blocking pool: the next batch to the character service.
    void write() {
        std::vector<store::CharacterSave> batch;
        std::vector<Done> waiters;
        {
            std::lock_guard lock(mutex_);
            while (!order_.empty() && batch.size() < store::kMaxSaveBatch) {
                auto it = pending_.find(order_.front());
                order_.pop_front();
                batch.push_back(std::move(it->second.save));
                for (auto& w : it->second.waiters) {
                    waiters.push_back(std::move(w));
                }
                pending_.erase(it);
            }
            pending_gauge_.set(static_cast<std::int64_t>(pending_.size()));
            in_flight_ = batch.size();
            if (batch.empty()) {
                writing_ = false;
                idle_.notify_all();
                return;
            }
        }
        const auto count = batch.size();
        characters_.save_many(std::move(batch), [self = shared_from_this(), count,
                                                 waiters =
                                                     std::move(waiters)](Result<std::uint64_t> r) {
            if (r) {
                self->ok_.inc(count);
            } else {
                self->failed_.inc(count);
                self->resync_ = true;
                log()->warn("world: saving {} character(s) failed: {}", count, r.error().message());
            }
            for (const auto& w : waiters) {
                w(r.has_value());
            }
            {
                std::lock_guard lock(self->mutex_);
                self->in_flight_ = 0;
            }
            // Posted, not called: a refusal completes on the calling thread, and the next
            // batch must not grow this one's stack.
            boost::asio::post(self->runtime_.blocking_pool(), [self] { self->write(); });
        });
    }

    characters::CharacterService& characters_;
    core::Runtime& runtime_;  // its blocking pool exists once the runtime started
    core::Counter& ok_;
    core::Counter& failed_;
    core::Gauge& pending_gauge_;
    mutable std::mutex mutex_;
    std::condition_variable idle_;
    std::unordered_map<std::uint64_t, Entry> pending_;
    std::deque<std::uint64_t> order_;  // ids in pending_, oldest first
    std::vector<Done> refused_waiters_;
    std::size_t in_flight_ = 0;
    bool writing_ = false;
    std::atomic<bool> resync_{false};
};

}  // namespace

// ---- zones and characters ----------------------------------------------------------------------

/// One zone and what the service keeps of it. `zone` and the tick's figures: its shard only.
struct ZoneSlot {
    std::uint32_t id = 0;
    std::string name;
    float width = 0;
    float height = 0;
    std::size_t shard = 0;
    std::unique_ptr<Zone> zone;  // null once the service stopped it
    core::ShardTimer timer;      // the control thread
    // Characters in it, for a cheap and racy "is it full" before a zone change (the zone decides).
    std::atomic<std::size_t> players{0};
    std::atomic<std::size_t> max_players{0};

    // The tick's figures, on the shard.
    Clock::duration interval{};
    // When the last tick ran: the zone's movement budgets refill by the time that passed, not by
    // the ticks that ran (a late shard makes up none).
    std::optional<Clock::time_point> last_tick;
    std::vector<float> cpu_window;
    std::vector<float> late_window;
    std::size_t window_next = 0;

    core::Histogram* tick_seconds = nullptr;
    core::Histogram* lateness_seconds = nullptr;
    core::Gauge* players_gauge = nullptr;
    core::Gauge* npcs_gauge = nullptr;
    core::Counter* spawns = nullptr;
    core::Counter* despawns = nullptr;
    core::Counter* moves = nullptr;
    core::Counter* updates = nullptr;

    /// `scheduled`: when the shard's timer meant this tick to start (ShardSet::every's schedule:
    /// a fixed rate, moved to the end of a tick that overran its successor's time).
    void tick(Clock::time_point scheduled) {
        if (!zone) {
            return;
        }
        const auto now = Clock::now();
        const double late =
            std::chrono::duration<double>(std::max(Clock::duration::zero(), now - scheduled))
                .count();
        float periods = 1;
        if (last_tick) {
            periods = static_cast<float>(std::chrono::duration<double>(now - *last_tick) /
                                         std::chrono::duration<double>(interval));
        }
        last_tick = now;
        const double cpu0 = thread_cpu_seconds();
        TickReport report;
        {
            // The tick's sends to the characters on each other io thread go there in one post,
            // made when the batch closes: its cost is part of the tick's measured time.
            core::PostBatch batch;
            report = zone->tick(periods);
        }
        const double cpu = thread_cpu_seconds() - cpu0;
        if (cpu_window.size() < kTickWindow) {
            cpu_window.push_back(static_cast<float>(cpu));
            late_window.push_back(static_cast<float>(late));
        } else {
            cpu_window[window_next] = static_cast<float>(cpu);
            late_window[window_next] = static_cast<float>(late);
            window_next = (window_next + 1) % kTickWindow;
        }
        tick_seconds->observe(cpu);
        lateness_seconds->observe(late);
        players_gauge->set(static_cast<std::int64_t>(report.players));
        npcs_gauge->set(static_cast<std::int64_t>(report.npcs));
        spawns->inc(report.spawns);
        despawns->inc(report.despawns);
        moves->inc(report.moves);
        updates->inc(report.updates);
    }
};

namespace {

/// A character's request, run on its zone's shard with its zone and entity.
using Job = std::function<void(ZoneSlot& slot, EntityId entity)>;

/// A character's requests in order. Not a std::deque: libstdc++'s allocates a 512-byte block and
/// its map even while empty, and every character in the world has a queue that is empty almost
/// always; this one holds no memory while empty and gives back what a burst made it grow to.
class JobQueue {
public:
    bool empty() const noexcept { return head_ == jobs_.size(); }
    std::size_t size() const noexcept { return jobs_.size() - head_; }
    void push_back(Job job) { jobs_.push_back(std::move(job)); }
    Job pop_front() {
        Job job = std::move(jobs_[head_++]);
        if (empty()) {
            clear();
        }
        return job;
    }
    void clear() {
        jobs_.clear();
        head_ = 0;
        if (jobs_.capacity() > kKeptCapacity) {
            jobs_.shrink_to_fit();
        }
    }

private:
    // What a character walking at 10 moves a second leaves queued between two drains, kept.
    static constexpr std::size_t kKeptCapacity = 4;
    std::vector<Job> jobs_;
    std::size_t head_ = 0;
};

}  // namespace

/// A character in the world (or on its way in), shared by its Player, the directory and the
/// requests in flight. The fields under `mutex` are read by the front-end's thread and the zones'
/// shards; lock order: the core's mutex, then a link's.
struct Link {
    WorldServiceImpl::Core* core = nullptr;
    std::uint64_t character_id = 0;
    std::string name;
    std::shared_ptr<PlayerSink> sink;
    // Where it enters, when nothing hands it over (taken from its record or the last save):
    // taken out by take_initial when it is placed, so that the 10,000 characters of a busy world
    // do not each keep a copy of what they entered with (about 110 B).
    std::unique_ptr<PlayerState> initial;
    std::uint32_t initial_zone = 0;

    std::mutex mutex;
    JobQueue queue;
    bool scheduled = false;          // a drain is posted or running
    std::shared_ptr<ZoneSlot> slot;  // its zone; null before it entered, in transit, after
    EntityId entity = 0;
    bool leaving = false;             // a leave is queued: the Player's later calls are dropped
    bool out = false;                 // out of the world (or never in): everything is dropped
    std::shared_ptr<Link> successor;  // who takes the character over when it leaves

    // On its zone's shard.
    util::TokenBucket whispers;
    bool whispers_started = false;
};

/// The state `link` enters with, taken out of it: it is placed once (entering, or taking over
/// from the Player that had the character), and place() keeps its own copy.
PlayerState take_initial(Link& link) {
    PlayerState state = std::move(*link.initial);
    link.initial.reset();
    return state;
}

struct WorldServiceImpl::Core : std::enable_shared_from_this<WorldServiceImpl::Core> {
    Core(core::ShardSet s, characters::CharacterService& c, core::MetricsRegistry& m)
        : shards(s),
          characters(c),
          metrics(m),
          saver(std::make_shared<Saver>(c, s.runtime(), m)),
          players(m.gauge("hearth_world_players", "Characters in the world.")),
          dropped(m.counter("hearth_world_requests_dropped_total",
                            "Requests of characters dropped: their queue held "
                            "kMaxQueuedRequests.")) {}

    struct Presence {
        std::shared_ptr<Link> current;  // the Player that has the character now
        // The state of a character that left, until its save is written: an entry meanwhile
        // starts from it rather than from the older record. Held apart: every character in the
        // world has a Presence, and few are parting at a time (inline, 120 B each).
        std::unique_ptr<PlayerState> parting;
        std::uint32_t parting_zone = 0;
        std::uint64_t parting_token = 0;
    };

    core::ShardSet shards;
    characters::CharacterService& characters;
    core::MetricsRegistry& metrics;
    EntityIds ids;
    std::shared_ptr<Saver> saver;
    core::Gauge& players;
    core::Counter& dropped;

    mutable std::mutex mutex;
    bool running = false;
    std::map<std::uint32_t, std::shared_ptr<ZoneSlot>> zones;
    std::uint32_t start_zone = 0;
    ZoneSettings settings;
    std::unordered_map<std::uint64_t, Presence> directory;
    std::unordered_map<std::string, std::shared_ptr<Link>> names;  // folded name -> current
    std::uint64_t next_token = 0;
    std::condition_variable directory_empty;  // with `mutex`: the stop waits on it
    core::ShardTimer save_timer;              // the control thread

    void erase_locked(std::unordered_map<std::uint64_t, Presence>::iterator it) {
        directory.erase(it);
        if (directory.empty()) {
            directory_empty.notify_all();
        }
    }

    // ---- a character's queue ----

    /// Queues `r` (`system`: the world's own, never dropped at the bound). False when dropped.
    bool push(const std::shared_ptr<Link>& link, Job r, bool system) {
        std::lock_guard lock(link->mutex);
        if (link->out || (link->leaving && !system)) {
            return false;
        }
        if (!system && link->queue.size() >= kMaxQueuedRequests) {
            dropped.inc();
            return false;
        }
        link->queue.push_back(std::move(r));
        schedule_locked(link);
        return true;
    }

    void schedule_locked(const std::shared_ptr<Link>& link) {
        if (link->scheduled || !link->slot || link->queue.empty()) {
            return;
        }
        link->scheduled = true;
        shards.post(link->slot->shard, [this, link] { drain(link); });
    }

    /// On a shard: runs the character's requests while it is in a zone of this shard.
    void drain(const std::shared_ptr<Link>& link) {
        // A character with many queued requests yields the shard now and then.
        for (int budget = 64;; --budget) {
            Job r;
            std::shared_ptr<ZoneSlot> slot;
            EntityId entity = 0;
            {
                std::lock_guard lock(link->mutex);
                if (link->out || link->queue.empty() || !link->slot) {
                    // In transit, the arrival resumes the queue.
                    link->scheduled = false;
                    return;
                }
                if (!core::ShardSet::on(link->slot->shard) || budget == 0) {
                    shards.post(link->slot->shard, [this, link] { drain(link); });
                    return;
                }
                r = link->queue.pop_front();
                slot = link->slot;
                entity = link->entity;
            }
            if (slot->zone) {
                r(*slot, entity);
            }
        }
    }

    // ---- entering ----

    /// Puts `link` into `zone` (the start zone's spawn when there is none), from any thread.
    void place(const std::shared_ptr<Link>& link, PlayerState state, std::uint32_t zone,
               bool changed_zone) {
        std::shared_ptr<ZoneSlot> slot;
        {
            std::lock_guard lock(mutex);
            if (!running) {
                slot = nullptr;
            } else if (auto it = zones.find(zone); it != zones.end()) {
                slot = it->second;
            } else {
                slot = zones.at(start_zone);
                state.at = kAtSpawn;
            }
        }
        if (!slot) {
            refuse_entry(link, WorldError::kDisabled, 0);
            return;
        }
        shards.post(slot->shard, [this, link, slot, state = std::move(state), changed_zone] {
            arrive(link, slot, state, changed_zone);
        });
    }

    /// On the zone's shard.
    void arrive(const std::shared_ptr<Link>& link, const std::shared_ptr<ZoneSlot>& slot,
                const PlayerState& state, bool changed_zone) {
        {
            std::lock_guard lock(link->mutex);
            if (link->out) {
                return;  // the stop gave up on it
            }
        }
        if (!slot->zone) {
            return refuse_entry(link, WorldError::kDisabled, 0);
        }
        auto entry = slot->zone->add_player(state, link->sink);
        if (!entry) {
            return refuse_entry(link, WorldError::kUnavailable, 0);
        }
        ++slot->players;
        players.add(1);
        {
            std::lock_guard lock(link->mutex);
            link->slot = slot;
            link->entity = entry->entity;
        }
        link->sink->entered(*entry, changed_zone);
        std::lock_guard lock(link->mutex);
        schedule_locked(link);
    }

    /// The entry failed: the sink hears why (on a shard), and whoever was to take it over next
    /// enters as it would have.
    void refuse_entry(const std::shared_ptr<Link>& link, WorldError error, std::uint32_t detail) {
        std::shared_ptr<Link> next;
        {
            std::lock_guard lock(mutex);
            next = retire_locked(link);
        }
        auto tell = [link, error, detail] { link->sink->refused(Request::kEnter, error, detail); };
        if (core::ShardSet::current()) {
            tell();
        } else {
            shards.post(shards.shard_of("world:character:" + std::to_string(link->character_id)),
                        tell);
        }
        if (next) {
            place(next, take_initial(*next), next->initial_zone, false);
        }
    }

    /// Takes `link` out of the world: nothing more runs for it, and it leaves the directory
    /// (the parting state, when given, stays there until its save is written). Returns who takes
    /// the character over next, if anyone. The core's mutex held.
    std::shared_ptr<Link> retire_locked(const std::shared_ptr<Link>& link,
                                        const std::optional<PlayerState>& parting = std::nullopt,
                                        std::uint32_t zone = 0, std::uint64_t* token = nullptr) {
        std::shared_ptr<Link> next;
        {
            std::lock_guard link_lock(link->mutex);
            link->out = true;
            link->slot = nullptr;
            link->queue.clear();
            next = std::move(link->successor);
        }
        auto it = directory.find(link->character_id);
        if (parting && it != directory.end() && it->second.current == link) {
            *token = ++next_token;
            it->second.parting = std::make_unique<PlayerState>(*parting);
            it->second.parting_zone = zone;
            it->second.parting_token = *token;
        }
        forget_locked(link);
        return next;
    }

    /// Drops `link` from the directory when it is the current one (the core's mutex held).
    void forget_locked(const std::shared_ptr<Link>& link) {
        auto it = directory.find(link->character_id);
        if (it != directory.end() && it->second.current == link) {
            it->second.current = nullptr;
            if (!it->second.parting) {
                erase_locked(it);
            }
        }
        if (auto n = names.find(folded(link->name)); n != names.end() && n->second == link) {
            names.erase(n);
        }
    }

    // ---- leaving ----

    /// On the zone's shard: out of the zone, saved, then `left(reason)`; a successor enters
    /// where it stood.
    void leave(const std::shared_ptr<Link>& link, ZoneSlot& slot, EntityId entity,
               LeaveReason reason) {
        auto state = slot.zone->remove_player(entity);
        if (state) {
            --slot.players;
            players.sub(1);
        }
        std::shared_ptr<Link> next;
        std::uint64_t token = 0;
        {
            std::lock_guard lock(mutex);
            next = retire_locked(link, state, slot.id, &token);
        }
        const auto shard = slot.shard;
        if (!state) {
            // Not in its zone after all (never expected): out of the world, nothing to save.
            link->sink->left(reason);
            if (next) {
                place(next, take_initial(*next), next->initial_zone, false);
            }
            return;
        }
        const auto id = link->character_id;
        saver->save(save_of(*state, slot.id),
                    [weak = weak_from_this(), link, shard, reason, id, token](bool) {
                        if (auto self = weak.lock()) {
                            self->settle(id, token);
                            self->shards.post(shard, [link, reason] { link->sink->left(reason); });
                        }
                    });
        if (next) {
            place(next, *state, slot.id, false);
        }
    }

    /// The save of a character that left is written: later entries read the store again.
    void settle(std::uint64_t id, std::uint64_t token) {
        if (token == 0) {
            return;
        }
        std::lock_guard lock(mutex);
        auto it = directory.find(id);
        if (it != directory.end() && it->second.parting_token == token) {
            it->second.parting.reset();
            if (!it->second.current) {
                erase_locked(it);
            }
        }
    }

    // ---- requests that are more than a call to the zone ----

    void change_zone(const std::shared_ptr<Link>& link, ZoneSlot& from, EntityId entity,
                     std::uint32_t to) {
        std::shared_ptr<ZoneSlot> target;
        std::shared_ptr<ZoneSlot> source;
        {
            std::lock_guard lock(mutex);
            if (auto it = zones.find(to); it != zones.end()) {
                target = it->second;
            }
            source = zones.at(from.id);
        }
        if (!target) {
            return link->sink->refused(Request::kChangeZone, WorldError::kNoSuchZone, to);
        }
        // A look before leaving, so that a full zone is refused without a round trip; the new
        // zone still decides (another character may enter first).
        if (target->players.load() >= target->max_players.load()) {
            return link->sink->refused(Request::kChangeZone, WorldError::kUnavailable, 0);
        }
        auto state = from.zone->remove_player(entity);
        if (!state) {
            return;
        }
        --from.players;
        {
            std::lock_guard lock(link->mutex);
            link->slot = nullptr;  // in transit: its requests wait
        }
        shards.post(target->shard, [this, link, target, source, state = std::move(*state)] {
            PlayerState moved = state;
            moved.at = kAtSpawn;
            std::optional<ZoneEntry> entry;
            if (target->zone) {
                entry = target->zone->add_player(moved, link->sink);
            }
            if (!entry) {
                shards.post(source->shard,
                            [this, link, source, state] { come_back(link, source, state); });
                return;
            }
            ++target->players;
            {
                std::lock_guard lock(link->mutex);
                link->slot = target;
                link->entity = entry->entity;
            }
            link->sink->entered(*entry, true);
            if (const auto* now = target->zone->player(entry->entity)) {
                saver->save(save_of(*now, target->id), {});
            }
            std::lock_guard lock(link->mutex);
            schedule_locked(link);
        });
    }

    /// The zone it was changing to is full: back where it stood, with a new entity.
    void come_back(const std::shared_ptr<Link>& link, const std::shared_ptr<ZoneSlot>& slot,
                   const PlayerState& state) {
        std::optional<ZoneEntry> entry;
        if (slot->zone) {
            entry = slot->zone->add_player(state, link->sink);
        }
        if (!entry) {
            // Its old zone filled meanwhile too: it leaves the world, saved where it stood.
            log()->warn(
                "world: character {} could not change zone nor go back to zone {} (both "
                "full); it leaves the world",
                link->character_id, slot->id);
            players.sub(1);
            std::shared_ptr<Link> next;
            {
                std::lock_guard lock(mutex);
                next = retire_locked(link);
            }
            const auto shard = slot->shard;
            saver->save(save_of(state, slot->id), [weak = weak_from_this(), link, shard](bool) {
                if (auto self = weak.lock()) {
                    self->shards.post(shard, [link] { link->sink->left(LeaveReason::kShutdown); });
                }
            });
            if (next) {
                place(next, state, slot->id, false);
            }
            return;
        }
        ++slot->players;
        {
            std::lock_guard lock(link->mutex);
            link->slot = slot;
            link->entity = entry->entity;
        }
        link->sink->entered(*entry, true);
        link->sink->refused(Request::kChangeZone, WorldError::kUnavailable, 0);
        std::lock_guard lock(link->mutex);
        schedule_locked(link);
    }

    void whisper(const std::shared_ptr<Link>& link, const std::string& to,
                 const std::string& text) {
        std::shared_ptr<Link> target;
        util::TokenRate rate;
        {
            std::lock_guard lock(mutex);
            rate = {settings.chat_per_s, settings.chat_burst};
            if (auto it = names.find(folded(to)); it != names.end()) {
                target = it->second;
            }
        }
        const auto now = Clock::now();
        if (!link->whispers_started) {
            link->whispers = util::TokenBucket(rate.depth, now);
            link->whispers_started = true;
        }
        if (!link->whispers.try_take(1, rate, now)) {
            return link->sink->refused(Request::kWhisper, WorldError::kRateLimited, 0);
        }
        if (!target) {
            return link->sink->refused(Request::kWhisper, WorldError::kNoSuchTarget, 0);
        }
        const bool queued = push(
            target,
            [target, from = link->name, text](ZoneSlot&, EntityId) {
                target->sink->whisper(false, from, text);
            },
            false);
        if (!queued) {
            return link->sink->refused(Request::kWhisper, WorldError::kNoSuchTarget, 0);
        }
        link->sink->whisper(true, target->name, text);
    }

    /// Runs `fn` on every shard that holds a zone, and waits for all of them until `deadline`.
    bool on_zone_shards(const std::function<void(ZoneSlot&)>& fn, Clock::time_point deadline) {
        std::vector<std::shared_ptr<ZoneSlot>> slots;
        {
            std::lock_guard lock(mutex);
            for (const auto& [id, slot] : zones) {
                slots.push_back(slot);
            }
        }
        struct Wait {
            std::mutex m;
            std::condition_variable cv;
            std::size_t left = 0;
        };
        auto wait = std::make_shared<Wait>();
        wait->left = slots.size();
        for (const auto& slot : slots) {
            shards.post(slot->shard, [slot, fn, wait] {
                fn(*slot);
                std::lock_guard lock(wait->m);
                if (--wait->left == 0) {
                    wait->cv.notify_all();
                }
            });
        }
        std::unique_lock lock(wait->m);
        return wait->cv.wait_until(lock, deadline, [&] { return wait->left == 0; });
    }
};

namespace {

/// The front-end's handle on a character: each call queued for the zone's shard.
class PlayerImpl final : public Player {
public:
    explicit PlayerImpl(std::shared_ptr<Link> link) : link_(std::move(link)) {}
    ~PlayerImpl() override { leave(LeaveReason::kDisconnected); }
    PlayerImpl(const PlayerImpl&) = delete;
    PlayerImpl& operator=(const PlayerImpl&) = delete;

    void move(std::uint32_t seq, std::span<const Vec3> path) override {
        request([seq, path = std::vector<Vec3>(path.begin(), path.end())](ZoneSlot& z, EntityId e) {
            z.zone->move(e, seq, path);
        });
    }
    void change_zone(std::uint32_t zone) override {
        request([link = link_, zone](ZoneSlot& z, EntityId e) {
            link->core->change_zone(link, z, e, zone);
        });
    }
    void target_hp(EntityId entity) override {
        request([entity](ZoneSlot& z, EntityId e) { z.zone->target_hp(e, entity); });
    }
    void attack(EntityId target) override {
        request([target](ZoneSlot& z, EntityId e) { z.zone->attack(e, target); });
    }
    void respawn() override {
        request([](ZoneSlot& z, EntityId e) { z.zone->respawn(e); });
    }
    void chat(ChatChannel channel, std::string_view text) override {
        request([channel, text = std::string(text)](ZoneSlot& z, EntityId e) {
            z.zone->chat(e, channel, text);
        });
    }
    void whisper(std::string_view to, std::string_view text) override {
        request([link = link_, to = std::string(to), text = std::string(text)](
                    ZoneSlot&, EntityId) { link->core->whisper(link, to, text); });
    }
    void leave(LeaveReason reason) override {
        if (link_->core == nullptr) {
            return;
        }
        std::lock_guard lock(link_->mutex);
        if (link_->out || link_->leaving) {
            return;
        }
        link_->leaving = true;
        link_->queue.push_back([link = link_, reason](ZoneSlot& z, EntityId e) {
            link->core->leave(link, z, e, reason);
        });
        link_->core->schedule_locked(link_);
    }

private:
    void request(Job r) {
        if (link_->core == nullptr) {
            return;
        }
        {
            // Once out, a Player never touches the service again: the app may destroy the world
            // module before the network layer (and with it this Player's connection).
            std::lock_guard lock(link_->mutex);
            if (link_->out || link_->leaving) {
                return;
            }
        }
        link_->core->push(link_, std::move(r), false);
    }

    std::shared_ptr<Link> link_;
};

}  // namespace

// ---- the service
// ---------------------------------------------------------------------------------

WorldServiceImpl::WorldServiceImpl(core::ShardSet shards, characters::CharacterService& characters,
                                   core::MetricsRegistry& metrics)
    : core_(std::make_shared<Core>(shards, characters, metrics)) {}

WorldServiceImpl::~WorldServiceImpl() {
    stop(Clock::now());
}

bool WorldServiceImpl::running() const {
    std::lock_guard lock(core_->mutex);
    return core_->running;
}

std::unique_ptr<Player> WorldServiceImpl::enter(const store::CharacterRecord& character,
                                                std::shared_ptr<PlayerSink> sink) {
    auto& c = *core_;
    auto link = std::make_shared<Link>();
    link->core = &c;
    link->character_id = character.id;
    link->name = character.name;
    link->sink = std::move(sink);
    link->initial = std::make_unique<PlayerState>(state_of(character));
    link->initial_zone = character.position.zone;
    bool handed_over = false;
    {
        std::lock_guard lock(c.mutex);
        if (!c.running) {
            link->out = true;
        } else {
            auto& presence = c.directory[character.id];
            if (presence.parting) {
                *link->initial = *presence.parting;
                link->initial_zone = presence.parting_zone;
            }
            if (auto old = presence.current) {
                std::lock_guard old_lock(old->mutex);
                if (!old->out) {
                    // The character is (or is about to be) in the world on another Player: that
                    // one leaves, and this one enters where it stood.
                    old->successor = link;
                    handed_over = true;
                    if (!old->leaving) {
                        old->leaving = true;
                        old->queue.push_back([old](ZoneSlot& z, EntityId e) {
                            old->core->leave(old, z, e, LeaveReason::kTakenOver);
                        });
                        c.schedule_locked(old);
                    }
                }
            }
            presence.current = link;
            c.names[folded(character.name)] = link;
        }
    }
    if (link->out) {
        auto tell = [sink = link->sink] {
            sink->refused(Request::kEnter, WorldError::kDisabled, 0);
        };
        c.shards.post(c.shards.shard_of("world:character:" + std::to_string(character.id)), tell);
        link->core = nullptr;
    } else if (!handed_over) {
        c.place(link, take_initial(*link), link->initial_zone, false);
    }
    return std::make_unique<PlayerImpl>(std::move(link));
}

void WorldServiceImpl::start(WorldSetup setup) {
    auto& c = *core_;
    if (setup.zones.empty()) {
        throw std::invalid_argument("world: no zones (the shipped ones and zones_dir hold none)");
    }
    std::map<std::uint32_t, std::shared_ptr<ZoneSlot>> zones;
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / setup.settings.tick_hz));
    for (const auto& def : setup.zones) {
        auto slot = std::make_shared<ZoneSlot>();
        slot->id = def.id;
        slot->name = def.name;
        slot->width = def.width;
        slot->height = def.height;
        slot->shard = c.shards.shard_of("world:zone:" + std::to_string(def.id));
        slot->zone = std::make_unique<Zone>(def, setup.settings, c.ids);
        slot->max_players = setup.settings.max_players;
        slot->interval = interval;
        const core::Labels zone{{"zone", std::to_string(def.id)}};
        auto& m = c.metrics;
        slot->tick_seconds =
            &m.histogram("hearth_world_tick_seconds",
                         "Thread CPU time of one zone tick, in seconds.", tick_bounds(), zone);
        slot->lateness_seconds =
            &m.histogram("hearth_world_tick_lateness_seconds",
                         "How late a zone tick started against its schedule (wall clock), in "
                         "seconds.",
                         core::Histogram::latency_seconds_bounds(), zone);
        auto with = [&](const char* key, const char* value) {
            core::Labels l = zone;
            l.emplace_back(key, value);
            return l;
        };
        slot->players_gauge = &m.gauge("hearth_world_entities", "Entities in a zone, by kind.",
                                       with("kind", "player"));
        slot->npcs_gauge =
            &m.gauge("hearth_world_entities", "Entities in a zone, by kind.", with("kind", "npc"));
        const char* aoi_help =
            "What the zones' area of interest sent to characters, by kind: spawns, despawns "
            "and moves of entities, and update batches (one per character per tick with any).";
        slot->spawns = &m.counter("hearth_world_aoi_total", aoi_help, with("kind", "spawn"));
        slot->despawns = &m.counter("hearth_world_aoi_total", aoi_help, with("kind", "despawn"));
        slot->moves = &m.counter("hearth_world_aoi_total", aoi_help, with("kind", "move"));
        slot->updates = &m.counter("hearth_world_aoi_total", aoi_help, with("kind", "update"));
        zones[def.id] = std::move(slot);
    }
    if (!zones.contains(setup.start_zone)) {
        std::string ids;
        for (const auto& [id, slot] : zones) {
            ids += (ids.empty() ? "" : ", ") + std::to_string(id);
        }
        throw std::invalid_argument(fmt::format(
            "world: [characters] start_zone {} is not a zone (zones: {}); characters whose zone "
            "is gone are sent there",
            setup.start_zone, ids));
    }
    for (auto& [id, slot] : zones) {
        slot->timer =
            c.shards.every(slot->shard, interval,
                           [s = slot.get()](Clock::time_point scheduled) { s->tick(scheduled); });
    }
    {
        std::lock_guard lock(c.mutex);
        c.zones = std::move(zones);
        c.start_zone = setup.start_zone;
        c.settings = setup.settings;
        c.running = true;
    }
    c.save_timer = c.shards.every(0, setup.save_interval, [&c] {
        const bool all = c.saver->take_resync();
        std::vector<std::shared_ptr<ZoneSlot>> slots;
        {
            std::lock_guard lock(c.mutex);
            for (const auto& [id, slot] : c.zones) {
                slots.push_back(slot);
            }
        }
        for (const auto& slot : slots) {
            c.shards.post(slot->shard, [slot, all, saver = c.saver] {
                if (!slot->zone) {
                    return;
                }
                std::vector<store::CharacterSave> saves;
                slot->zone->collect_saves(saves, all);
                if (!saves.empty()) {
                    saver->save_all(std::move(saves));
                }
            });
        }
    });
    log()->info("world: {} zone(s), {} ticks a second, saves every {} s", c.zones.size(),
                setup.settings.tick_hz, setup.save_interval.count());
}

void WorldServiceImpl::apply(const ZoneSettings& settings, std::chrono::seconds save_interval) {
    auto& c = *core_;
    std::vector<std::shared_ptr<ZoneSlot>> slots;
    {
        std::lock_guard lock(c.mutex);
        if (!c.running) {
            return;
        }
        c.settings = settings;
        for (const auto& [id, slot] : c.zones) {
            slots.push_back(slot);
        }
    }
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / settings.tick_hz));
    for (const auto& slot : slots) {
        slot->max_players = settings.max_players;
        slot->timer.set_interval(interval);
        c.shards.post(slot->shard, [slot, settings, interval] {
            if (slot->zone) {
                slot->zone->set_settings(settings);
                slot->interval = interval;
            }
        });
    }
    c.save_timer.set_interval(save_interval);
}

bool WorldServiceImpl::stop(Clock::time_point deadline) {
    auto& c = *core_;
    std::vector<std::shared_ptr<Link>> links;
    {
        std::lock_guard lock(c.mutex);
        if (!c.running && c.zones.empty()) {
            return true;
        }
        c.running = false;
        for (auto& [id, presence] : c.directory) {
            if (presence.current) {
                links.push_back(presence.current);
            }
        }
    }
    c.save_timer.cancel();
    // Every character leaves as a logout does: saved, then told.
    for (const auto& link : links) {
        std::lock_guard lock(link->mutex);
        if (link->out || link->leaving) {
            continue;
        }
        link->leaving = true;
        link->queue.push_back([link](ZoneSlot& z, EntityId e) {
            link->core->leave(link, z, e, LeaveReason::kShutdown);
        });
        c.schedule_locked(link);
    }
    bool in_time = false;
    {
        // A character's entry goes once it is out and its save written.
        std::unique_lock lock(c.mutex);
        in_time = c.directory_empty.wait_until(lock, deadline, [&] { return c.directory.empty(); });
    }
    // What the periodic round handed over last, too.
    in_time = c.saver->wait_idle(deadline) && in_time;
    std::vector<std::shared_ptr<ZoneSlot>> slots;
    {
        std::lock_guard lock(c.mutex);
        if (!c.directory.empty()) {
            log()->warn(
                "world: {} character(s) still in the world or being saved at the stop's "
                "deadline; dropped without being told",
                c.directory.size());
        }
        for (auto& [id, presence] : c.directory) {
            if (auto link = presence.current) {
                std::lock_guard link_lock(link->mutex);
                link->out = true;
                link->queue.clear();
                link->successor = nullptr;
            }
        }
        c.directory.clear();
        c.names.clear();
        for (const auto& [id, slot] : c.zones) {
            slots.push_back(slot);
        }
    }
    for (auto& slot : slots) {
        slot->timer.cancel();
    }
    // The zones end on their shards (their sinks' last calls, the `left`s posted above, run
    // first: a shard runs its posts in order).
    const bool ended = c.on_zone_shards(
        [&c](ZoneSlot& slot) {
            if (slot.zone) {
                c.players.sub(static_cast<std::int64_t>(slot.zone->players()));
                slot.zone.reset();
            }
        },
        deadline);
    if (!ended) {
        log()->warn("world: the zones' threads did not answer by the stop's deadline");
    }
    {
        std::lock_guard lock(c.mutex);
        c.zones.clear();
    }
    return in_time && ended;
}

void WorldServiceImpl::zones(std::function<void(std::vector<ZoneStatus>)> done) const {
    auto& c = *core_;
    std::vector<std::shared_ptr<ZoneSlot>> slots;
    {
        std::lock_guard lock(c.mutex);
        if (c.running) {
            for (const auto& [id, slot] : c.zones) {
                slots.push_back(slot);
            }
        }
    }
    if (slots.empty()) {
        done({});
        return;
    }
    struct Gather {
        std::mutex m;
        std::vector<ZoneStatus> out;
        std::size_t left = 0;
        std::function<void(std::vector<ZoneStatus>)> done;
    };
    auto g = std::make_shared<Gather>();
    g->left = slots.size();
    g->done = std::move(done);
    for (const auto& slot : slots) {
        c.shards.post(slot->shard, [slot, g] {
            ZoneStatus s{
                .id = slot->id, .name = slot->name, .width = slot->width, .height = slot->height};
            if (slot->zone) {
                s.players = slot->zone->players();
                s.npcs = slot->zone->npcs();
                s.window_ticks = slot->cpu_window.size();
                s.cpu = figures(slot->cpu_window);
                s.lateness = figures(slot->late_window);
            }
            std::unique_lock lock(g->m);
            g->out.push_back(std::move(s));
            if (--g->left > 0) {
                return;
            }
            auto out = std::move(g->out);
            lock.unlock();
            std::sort(out.begin(), out.end(),
                      [](const ZoneStatus& a, const ZoneStatus& b) { return a.id < b.id; });
            g->done(std::move(out));
        });
    }
}

bool WorldServiceImpl::entities(std::uint32_t zone, EntityId after, std::size_t count,
                                std::function<void(std::vector<EntityRow>)> done) const {
    auto& c = *core_;
    std::shared_ptr<ZoneSlot> slot;
    {
        std::lock_guard lock(c.mutex);
        auto it = c.zones.find(zone);
        if (!c.running || it == c.zones.end()) {
            return false;
        }
        slot = it->second;
    }
    c.shards.post(slot->shard, [slot, after, count, done = std::move(done)] {
        // The `count` lowest ids above `after` in a max-heap by id: a page of a crowded zone
        // costs the zone's shard one pass and `count` rows, not a copy and a sort of everyone.
        std::vector<EntityRow> rows;
        const auto by_id = [](const EntityRow& a, const EntityRow& b) { return a.id < b.id; };
        if (slot->zone && count > 0) {
            rows.reserve(count);
            slot->zone->for_each_entity([&](const EntityView& e) {
                if (e.id <= after || (rows.size() == count && e.id >= rows.front().id)) {
                    return;
                }
                if (rows.size() == count) {
                    std::pop_heap(rows.begin(), rows.end(), by_id);
                    rows.pop_back();
                }
                rows.push_back({.id = e.id,
                                .kind = e.kind,
                                .model = e.model,
                                .name = std::string(e.name),
                                .at = e.at,
                                .hp = e.hp,
                                .max_hp = e.max_hp});
                std::push_heap(rows.begin(), rows.end(), by_id);
            });
        }
        std::sort_heap(rows.begin(), rows.end(), by_id);
        done(std::move(rows));
    });
    return true;
}

bool WorldServiceImpl::kick(std::uint64_t character_id) {
    auto& c = *core_;
    std::lock_guard lock(c.mutex);
    auto it = c.directory.find(character_id);
    if (!c.running || it == c.directory.end() || !it->second.current) {
        return false;
    }
    auto link = it->second.current;
    std::lock_guard link_lock(link->mutex);
    if (link->out) {
        return false;
    }
    if (!link->leaving) {
        link->leaving = true;
        link->queue.push_back([link](ZoneSlot& z, EntityId e) {
            link->core->leave(link, z, e, LeaveReason::kKicked);
        });
        c.schedule_locked(link);
    }
    return true;
}

bool WorldServiceImpl::notice(std::optional<std::uint32_t> zone, NoticeKind kind,
                              std::string text) {
    auto& c = *core_;
    std::vector<std::shared_ptr<ZoneSlot>> slots;
    {
        std::lock_guard lock(c.mutex);
        if (!c.running) {
            return false;
        }
        for (const auto& [id, slot] : c.zones) {
            if (!zone || *zone == id) {
                slots.push_back(slot);
            }
        }
    }
    auto shared = std::make_shared<const std::string>(std::move(text));
    for (const auto& slot : slots) {
        c.shards.post(slot->shard, [slot, kind, shared] {
            if (slot->zone) {
                slot->zone->notice(kind, *shared);
            }
        });
    }
    return !slots.empty();
}

bool WorldServiceImpl::has_zone(std::uint32_t zone) const {
    std::lock_guard lock(core_->mutex);
    return core_->running && core_->zones.contains(zone);
}

std::size_t WorldServiceImpl::pending_saves() const {
    return core_->saver->pending();
}

}  // namespace hearth::world
