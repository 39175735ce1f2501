#include "bot/swarm.hpp"
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <queue>
#include <random>

#include <hearth_client/client.hpp>
#include <sys/epoll.h>
#include <unistd.h>

namespace hearth::bot {

namespace {

namespace wire = client::wire;
using Clock = Swarm::Clock;
using std::chrono::duration;
using std::chrono::duration_cast;

// NPCs a bot remembers (the nearest it saw): enough to pick a target, bounded whatever the zone
// holds.
constexpr std::size_t kTrackedNpcs = 8;
// Sends the socket did not take yet, per bot: a few seconds of a bot's traffic. Past it the
// server is not reading, and the bot counts an error and leaves.
constexpr std::size_t kMaxQueuedSendBytes = 16 * 1024;
// How near a bot goes to attack: within the server's default [world] attack_range (5 units).
constexpr float kAttackReach = 4;
// Packets one bot handles per wake-up, so that one busy bot does not hold up the others.
constexpr std::size_t kPacketsPerWake = 256;
// The loop's longest sleep: new connections and progress are looked at least this often.
constexpr auto kMaxSleep = std::chrono::milliseconds(50);

enum class Phase : std::uint8_t { kWaiting, kSettingUp, kInWorld, kLeaving, kGone };

struct Npc {
    std::uint32_t entity = 0;
    wire::Vec3 at;
};

float distance(const wire::Vec3& a, const wire::Vec3& b) {
    return std::hypot(a.x - b.x, a.y - b.y);
}

Clock::duration seconds(double s) {
    return duration_cast<Clock::duration>(duration<double>(s));
}

}  // namespace

struct Bot {
    Bot(std::uint32_t i, const client::ClientOptions& options) : index(i), client(options) {}

    std::uint32_t index;
    Phase phase = Phase::kWaiting;
    bool close_requested = false;  // set while its client is polled; acted on after
    bool character_requested = false;
    bool watching_output = false;
    client::Client client;
    Clock::time_point timer = Clock::time_point::max();  // the pending timer, if any
    Clock::time_point setup_deadline{};
    // In the world.
    std::uint32_t entity = 0;
    float width = 0;
    float height = 0;
    float speed = 0;  // units per second
    wire::Vec3 home;
    wire::Vec3 at;
    wire::Vec3 waypoint;
    bool dead = false;
    std::uint32_t seq = 0;
    std::uint16_t idle_timeout_s = 60;
    Clock::time_point last_move{};
    Clock::time_point last_sent{};
    Clock::time_point next_move = Clock::time_point::max();
    Clock::time_point next_chat = Clock::time_point::max();
    Clock::time_point next_attack = Clock::time_point::max();
    std::array<Npc, kTrackedNpcs> npcs{};
    std::uint32_t target = 0;  // the NPC it hunts (--attack)
    std::uint8_t npc_count = 0;
};

struct Swarm::Impl {
    struct Timer {
        Clock::time_point at;
        std::uint32_t bot;
        bool operator>(const Timer& o) const { return at > o.at; }
    };

    Options o;
    std::string prefix;
    std::vector<std::string> tokens;
    std::vector<std::unique_ptr<Bot>> bots;
    int epoll_fd = -1;
    Counters counters;
    Population population;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
    std::mt19937_64 rng;
    std::size_t started = 0;
    Clock::time_point now;

    Impl(const Options& options, std::string p, std::vector<std::string> t)
        : o(options), prefix(std::move(p)), tokens(std::move(t)) {
        rng.seed(o.seed != 0 ? o.seed
                             : static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()));
        epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (epoll_fd < 0) {
            throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
        }
        client::ClientOptions co;
        // Only connect() waits (on this thread: a local server answers at once); every other
        // call of a bot's client is sent without waiting and answered through poll().
        co.timeout = std::chrono::milliseconds(
            static_cast<std::int64_t>(std::min(o.setup_timeout_s, 5.0) * 1000));
        co.max_queued_send_bytes = kMaxQueuedSendBytes;
        const auto sources = source_addresses(o);
        bots.reserve(o.bots);
        for (std::size_t i = 0; i < o.bots; ++i) {
            if (!sources.empty()) {
                co.source_address = sources[i % sources.size()];
            }
            bots.push_back(std::make_unique<Bot>(static_cast<std::uint32_t>(i), co));
        }
        population.waiting = o.bots;
    }

    ~Impl() {
        if (epoll_fd >= 0) {
            ::close(epoll_fd);
        }
    }

    // ---- bookkeeping ----

    void set_phase(Bot& bot, Phase phase) {
        const auto slot = [this](Phase p) -> std::size_t& {
            switch (p) {
                case Phase::kWaiting:
                    return population.waiting;
                case Phase::kSettingUp:
                    return population.setting_up;
                case Phase::kInWorld:
                case Phase::kLeaving:
                    return population.in_world;
                case Phase::kGone:
                    break;
            }
            return population.gone;
        };
        --slot(bot.phase);
        ++slot(phase);
        bot.phase = phase;
    }

    void count_error(std::string_view name) { ++counters.errors[std::string(name)]; }

    double random_interval(double per_min) {
        std::exponential_distribution<double> d(per_min / 60.0);
        return d(rng);
    }

    std::string character_name(const Bot& bot) const { return prefix + std::to_string(bot.index); }

    const std::string& token_of(const Bot& bot) const {
        if (tokens.size() == 1) {
            return tokens[0];
        }
        return tokens[bot.index / o.bots_per_account];
    }

    template <class M>
    void send(Bot& bot, const M& message) {
        if (bot.close_requested || !bot.client.connected()) {
            return;
        }
        if (auto s = bot.client.send(message); !s) {
            count_error(s.error().name());
            bot.close_requested = true;
            return;
        }
        bot.last_sent = now;
    }

    void schedule(Bot& bot, Clock::time_point at) {
        if (at == Clock::time_point::max() || at == bot.timer) {
            return;
        }
        bot.timer = at;
        timers.push(Timer{at, bot.index});
    }

    void fail(Bot& bot, std::string_view why) {
        count_error(why);
        ++counters.setup_failed;
        bot.close_requested = true;
    }

    void gone(Bot& bot) {
        bot.client.close();  // also leaves the epoll set
        bot.timer = Clock::time_point::max();
        bot.npc_count = 0;
        if (bot.phase != Phase::kGone) {
            set_phase(bot, Phase::kGone);
        }
    }

    // After a bot's turn: its close, or its interest in writing.
    void settle(Bot& bot) {
        if (bot.close_requested) {
            gone(bot);
            return;
        }
        if (bot.client.wants_write() != bot.watching_output && bot.client.connected()) {
            bot.watching_output = bot.client.wants_write();
            epoll_event ev{};
            ev.events = bot.watching_output ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
            ev.data.u32 = bot.index;
            (void)::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, bot.client.native_handle(), &ev);
        }
    }

    // ---- setup ----

    void start(Bot& bot) {
        if (auto s = bot.client.connect(o.host, o.port); !s) {
            ++counters.connect_failed;
            count_error(s.error().name());
            set_phase(bot, Phase::kGone);
            return;
        }
        ++counters.connect_ok;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = bot.index;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, bot.client.native_handle(), &ev) != 0) {
            count_error("epoll");
            gone(bot);
            return;
        }
        set_phase(bot, Phase::kSettingUp);
        const std::string& token = token_of(bot);
        if (token.empty()) {
            fail(bot, "no_identity");
            settle(bot);
            return;
        }
        // Sent back to back: the server answers in order, holding the list until the login is
        // done.
        send(bot, wire::LoginRequest{
                      .method = wire::LoginMethod::kToken, .username = {}, .secret = token});
        send(bot, wire::CharacterListRequest{});
        bot.setup_deadline = now + seconds(o.setup_timeout_s);
        schedule(bot, bot.setup_deadline);
        settle(bot);
    }

    bool setup_opcode(std::uint16_t opcode) const {
        using wire::Opcode;
        for (auto op : {Opcode::kLogin, Opcode::kCharacterList, Opcode::kCreateCharacter,
                        Opcode::kSelectCharacter, Opcode::kEnterWorld, Opcode::kChangeMap}) {
            if (opcode == static_cast<std::uint16_t>(op)) {
                return true;
            }
        }
        return false;
    }

    void enter(Bot& bot, const wire::ZoneEntry& e) {
        bot.entity = e.entity;
        bot.width = e.width;
        bot.height = e.height;
        bot.speed = static_cast<float>(o.speed) * e.max_speed;
        bot.home = e.at;
        bot.at = e.at;
        bot.waypoint = e.at;
        bot.idle_timeout_s = std::max<std::uint16_t>(bot.idle_timeout_s, 3);
        bot.last_move = now;
        set_phase(bot, Phase::kInWorld);
        if (o.moving && bot.index >= *o.moving) {
            schedule(bot, next_wake(bot));  // stands: only keep-alives
            return;
        }
        // Spread over the first period, so that the bots' moves do not come in waves.
        std::uniform_real_distribution<double> phase(0, 1);
        if (o.move_hz > 0) {
            bot.next_move = now + seconds(phase(rng) / o.move_hz);
        }
        if (o.chat_per_min > 0) {
            bot.next_chat = now + seconds(random_interval(o.chat_per_min));
        }
        if (o.attack_per_min > 0) {
            bot.next_attack = now + seconds(random_interval(o.attack_per_min));
        }
        schedule(bot, next_wake(bot));
    }

    // ---- messages ----

    void on(Bot& bot, const wire::LoginReply& m) {
        ++counters.logged_in;
        bot.idle_timeout_s = m.idle_timeout_s;
    }

    void on(Bot& bot, const wire::CharacterList& m) {
        if (bot.character_requested) {
            return;
        }
        const std::string name = character_name(bot);
        for (const auto& c : m.characters) {
            if (c.name == name) {
                bot.character_requested = true;
                send(bot, wire::SelectCharacterRequest{.character_id = c.id});
                return;
            }
        }
        if (!m.more) {
            bot.character_requested = true;
            const auto i = static_cast<std::uint8_t>(bot.index);
            send(bot, wire::CreateCharacterRequest{
                          .name = name,
                          .looks = {.body = static_cast<std::uint8_t>(i % 2),
                                    .face = static_cast<std::uint8_t>(i % 7),
                                    .hair = static_cast<std::uint8_t>(i % 5),
                                    .hair_color = static_cast<std::uint8_t>(i % 9)}});
        }
    }

    void on(Bot& bot, const wire::CharacterCreated& m) {
        ++counters.characters_created;
        send(bot, wire::SelectCharacterRequest{.character_id = m.character.id});
    }

    void on(Bot& bot, const wire::CharacterSelected&) {
        ++counters.characters_selected;
        if (o.lobby) {
            // Counted with the bots in the world, standing: it only keeps the connection alive.
            set_phase(bot, Phase::kInWorld);
            schedule(bot, next_wake(bot));
            return;
        }
        send(bot, wire::EnterWorldRequest{});
    }

    void on(Bot& bot, const wire::WorldEntered& m) {
        ++counters.entered_world;
        if (o.zone && m.entry.zone != *o.zone) {
            send(bot, wire::ChangeMapRequest{.zone = *o.zone});
            return;
        }
        enter(bot, m.entry);
    }

    void on(Bot& bot, const wire::MapChanged& m) {
        ++counters.zone_changes;
        enter(bot, m.entry);
    }

    void on(Bot& bot, const wire::Error& m) {
        count_error(wire::error_name(m.code));
        if (bot.phase == Phase::kSettingUp && setup_opcode(m.opcode)) {
            ++counters.setup_failed;
            bot.close_requested = true;
        } else if (m.code == wire::ErrorCode::kNotDead) {
            bot.dead = false;
        }
    }

    void on(Bot& bot, const wire::WorldUpdate& m) {
        ++counters.world_updates;
        counters.spawns_seen += m.spawns.size();
        counters.moves_seen += m.moves.size();
        for (const auto id : m.despawns) {
            forget(bot, id);
        }
        for (const auto& s : m.spawns) {
            if (s.kind == wire::EntityKind::kNpc && s.hp > 0) {
                remember(bot, s.entity, s.at);
            }
        }
        for (const auto& mv : m.moves) {
            for (std::size_t i = 0; i < bot.npc_count; ++i) {
                if (bot.npcs[i].entity == mv.entity) {
                    bot.npcs[i].at = mv.at;
                }
            }
        }
    }

    void on(Bot& bot, const wire::Correction& m) {
        ++counters.corrections;
        const auto reason = static_cast<std::size_t>(m.reason);
        ++counters
              .corrections_by_reason[reason < counters.corrections_by_reason.size() ? reason : 0];
        bot.at = m.at;  // the server's word: walk on from there
        if (m.reason == wire::CorrectionReason::kDead) {
            bot.dead = true;
        }
    }

    void on(Bot&, const wire::HpUpdate&) { ++counters.hp_updates; }

    void on(Bot& bot, const wire::Death& m) {
        if (m.entity == bot.entity) {
            ++counters.deaths;
            bot.dead = true;
            send(bot, wire::RespawnRequest{});
            return;
        }
        if (m.killer == bot.entity) {
            ++counters.kills;
        }
        forget(bot, m.entity);
    }

    void on(Bot& bot, const wire::Respawned& m) {
        if (m.entity == bot.entity) {
            ++counters.respawns;
            bot.dead = false;
            bot.at = m.at;
        }
    }

    void on(Bot&, const wire::ChatMessage&) { ++counters.chats_received; }
    void on(Bot&, const wire::Notice&) { ++counters.notices; }

    void on(Bot& bot, const wire::LogoutReply&) { bot.close_requested = true; }

    template <class M>
    void on(Bot&, const M&) {}  // nothing to do: TargetHp, whispers, unknown packets

    void remember(Bot& bot, std::uint32_t entity, const wire::Vec3& at) {
        std::size_t farthest = 0;
        for (std::size_t i = 0; i < bot.npc_count; ++i) {
            if (bot.npcs[i].entity == entity) {
                bot.npcs[i].at = at;
                return;
            }
            if (distance(bot.npcs[i].at, bot.at) > distance(bot.npcs[farthest].at, bot.at)) {
                farthest = i;
            }
        }
        if (bot.npc_count < kTrackedNpcs) {
            bot.npcs[bot.npc_count++] = Npc{entity, at};
        } else if (distance(at, bot.at) < distance(bot.npcs[farthest].at, bot.at)) {
            bot.npcs[farthest] = Npc{entity, at};
        }
    }

    void forget(Bot& bot, std::uint32_t entity) {
        if (entity == bot.target) {
            bot.target = 0;
        }
        for (std::size_t i = 0; i < bot.npc_count; ++i) {
            if (bot.npcs[i].entity == entity) {
                bot.npcs[i] = bot.npcs[--bot.npc_count];
                return;
            }
        }
    }

    void on_readable(Bot& bot) {
        if (!bot.client.connected()) {
            return;
        }
        auto r = bot.client.poll(
            std::chrono::milliseconds::zero(), [&](const auto& m) { on(bot, m); }, kPacketsPerWake);
        if (!r) {
            const auto& e = r.error();
            if (e.kind == client::Error::Kind::kProtocol) {
                count_error("protocol");  // that packet is skipped; the stream goes on
            } else if (!bot.close_requested) {
                if (bot.phase == Phase::kInWorld) {
                    ++counters.disconnected;
                } else if (bot.phase == Phase::kSettingUp) {
                    ++counters.setup_failed;
                }
                if (bot.phase != Phase::kLeaving) {
                    count_error(e.name());
                }
                bot.close_requested = true;
            }
        }
        settle(bot);
    }

    // ---- playing ----

    Clock::time_point next_wake(const Bot& bot) const {
        const auto alive = bot.last_sent + std::chrono::seconds(bot.idle_timeout_s / 3);
        return std::min({bot.next_move, bot.next_chat, bot.next_attack, alive});
    }

    wire::Vec3 random_waypoint(const Bot& bot) {
        std::uniform_real_distribution<float> unit(0, 1);
        const float r = static_cast<float>(o.spread) * std::sqrt(unit(rng));
        const float a = 6.2831853F * unit(rng);
        const auto clamp = [](float v, float hi) {
            return std::clamp(v, 0.5F, std::max(0.5F, hi - 0.5F));
        };
        return wire::Vec3{clamp(bot.home.x + r * std::cos(a), bot.width),
                          clamp(bot.home.y + r * std::sin(a), bot.height), bot.home.z};
    }

    void move(Bot& bot) {
        if (bot.dead) {
            return;
        }
        // The step covers the time since the last move (at most two periods), so that a late
        // wake-up does not make the bot faster or slower than its speed.
        const double period = 1.0 / o.move_hz;
        const double dt = std::min(duration<double>(now - bot.last_move).count(), 2 * period);
        bot.last_move = now;
        if (const Npc* target = tracked(bot, bot.target)) {
            if (distance(target->at, bot.at) <= kAttackReach - 1) {
                return;  // close enough: it stays and fights
            }
            bot.waypoint = target->at;
        } else {
            bot.target = 0;
        }
        float left = distance(bot.at, bot.waypoint);
        if (left < 0.5F) {
            bot.waypoint = random_waypoint(bot);
            left = distance(bot.at, bot.waypoint);
        }
        if (left <= 0) {
            return;
        }
        const float step = std::min(left, bot.speed * static_cast<float>(dt));
        const wire::Vec3 from = bot.at;
        bot.at.x += (bot.waypoint.x - bot.at.x) / left * step;
        bot.at.y += (bot.waypoint.y - bot.at.y) / left * step;
        // A path starts where the character stands (the server refuses one that starts farther
        // than [world] path_start_tolerance from it: bad_path).
        const wire::Vec3 path[] = {from, bot.at};
        if (auto s = bot.client.move(bot.seq++, path); !s) {
            count_error(s.error().name());
            bot.close_requested = true;
            return;
        }
        bot.last_sent = now;
        ++counters.moves_sent;
    }

    const Npc* tracked(const Bot& bot, std::uint32_t entity) const {
        for (std::size_t i = 0; i < bot.npc_count; ++i) {
            if (bot.npcs[i].entity == entity) {
                return &bot.npcs[i];
            }
        }
        return nullptr;
    }

    // Hunting: the bot keeps its target (the nearest NPC it remembers, near enough its entry
    // point), walks up to it (move) and attacks once within reach; from farther the server would
    // refuse (target_out_of_range).
    void attack(Bot& bot) {
        if (bot.dead) {
            return;
        }
        const Npc* target = tracked(bot, bot.target);
        if (target == nullptr) {
            bot.target = 0;
            for (std::size_t i = 0; i < bot.npc_count; ++i) {
                const Npc& n = bot.npcs[i];
                if (static_cast<double>(distance(n.at, bot.home)) <= 2 * o.spread + 1 &&
                    (target == nullptr || distance(n.at, bot.at) < distance(target->at, bot.at))) {
                    target = &n;
                }
            }
            if (target == nullptr) {
                return;
            }
            bot.target = target->entity;
        }
        if (distance(target->at, bot.at) <= kAttackReach) {
            send(bot, wire::AttackRequest{.target = target->entity});
            ++counters.attacks_sent;
        }
    }

    void on_timer(Bot& bot) {
        if (bot.phase == Phase::kSettingUp) {
            if (now >= bot.setup_deadline) {
                fail(bot, "setup_timeout");
                settle(bot);
            }
            return;
        }
        if (bot.phase != Phase::kInWorld) {
            return;
        }
        if (now >= bot.next_move) {
            move(bot);
            const auto period = seconds(1.0 / o.move_hz);
            bot.next_move += period;
            if (bot.next_move <= now) {
                bot.next_move = now + period;  // fell behind: no burst to catch up
            }
        }
        if (now >= bot.next_chat) {
            const std::string text = "hello from " + character_name(bot);
            send(bot, wire::ChatSend{.channel = wire::ChatChannel::kLocal, .text = text});
            ++counters.chats_sent;
            bot.next_chat = now + seconds(random_interval(o.chat_per_min));
        }
        if (now >= bot.next_attack) {
            attack(bot);
            bot.next_attack = now + seconds(random_interval(o.attack_per_min));
        }
        if (now >= bot.last_sent + std::chrono::seconds(bot.idle_timeout_s / 3)) {
            send(bot, wire::Alive{});
        }
        settle(bot);
        if (bot.phase == Phase::kInWorld) {
            schedule(bot, next_wake(bot));
        }
    }

    // ---- the loop ----

    void handle_events(int timeout_ms) {
        std::array<epoll_event, 256> events{};
        const int n =
            ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
        now = Clock::now();
        for (int i = 0; i < n; ++i) {
            Bot& bot = *bots[events[static_cast<std::size_t>(i)].data.u32];
            if ((events[static_cast<std::size_t>(i)].events & EPOLLOUT) != 0) {
                if (auto s = bot.client.flush(); !s) {
                    count_error(s.error().name());
                    bot.close_requested = true;
                }
            }
            on_readable(bot);
        }
    }

    void run_timers() {
        while (!timers.empty() && timers.top().at <= now) {
            const Timer t = timers.top();
            timers.pop();
            Bot& bot = *bots[t.bot];
            if (bot.timer != t.at) {
                continue;  // replaced by a later schedule
            }
            bot.timer = Clock::time_point::max();
            on_timer(bot);
        }
    }

    void run(Clock::time_point until, const std::function<bool()>& stop,
             const std::function<void()>& every_second) {
        now = Clock::now();
        const auto begin = now;
        auto next_second = now + std::chrono::seconds(1);
        while (now < until && !(stop && stop())) {
            // Connections at --connect-rate, a bounded number per turn so that the bots already
            // playing are read in between.
            const auto due = std::min<std::size_t>(
                bots.size(),
                static_cast<std::size_t>(duration<double>(now - begin).count() * o.connect_rate) +
                    1);
            for (std::size_t k = 0; started < due && k < 64; ++k) {
                start(*bots[started++]);
                now = Clock::now();
            }
            run_timers();
            auto wake = std::min({until, next_second, now + kMaxSleep});
            if (!timers.empty()) {
                wake = std::min(wake, timers.top().at);
            }
            if (started < due) {
                wake = now;
            }
            const auto ms = duration_cast<std::chrono::milliseconds>(wake - now).count();
            handle_events(static_cast<int>(std::max<std::int64_t>(0, ms)));
            if (now >= next_second) {
                next_second += std::chrono::seconds(1);
                if (every_second) {
                    every_second();
                }
            }
        }
    }

    void finish(double seconds_allowed) {
        now = Clock::now();
        for (auto& b : bots) {
            if (b->phase == Phase::kInWorld) {
                set_phase(*b, Phase::kLeaving);
                send(*b, wire::LogoutRequest{});
                settle(*b);
            } else if (b->phase == Phase::kSettingUp) {
                gone(*b);
            }
        }
        const auto until = now + seconds(seconds_allowed);
        while (now < until && population.in_world > 0) {
            handle_events(10);
        }
        for (auto& b : bots) {
            if (b->phase != Phase::kGone && b->phase != Phase::kWaiting) {
                gone(*b);
            }
        }
    }
};

Swarm::Swarm(const Options& options, std::string prefix, std::vector<std::string> tokens)
    : impl_(std::make_unique<Impl>(options, std::move(prefix), std::move(tokens))) {}

Swarm::~Swarm() = default;

void Swarm::run(Clock::time_point until, const std::function<bool()>& stop,
                const std::function<void()>& every_second) {
    impl_->run(until, stop, every_second);
}

void Swarm::finish(double seconds) {
    impl_->finish(seconds);
}

Counters Swarm::counters() const {
    Counters c = impl_->counters;
    for (const auto& b : impl_->bots) {
        const auto& t = b->client.traffic();
        c.packets_sent += t.packets_sent;
        c.bytes_sent += t.bytes_sent;
        c.packets_received += t.packets_received;
        c.bytes_received += t.bytes_received;
    }
    return c;
}

Population Swarm::population() const {
    return impl_->population;
}

bool Swarm::settled() const {
    const auto& p = impl_->population;
    return p.waiting == 0 && p.setting_up == 0;
}

}  // namespace hearth::bot
