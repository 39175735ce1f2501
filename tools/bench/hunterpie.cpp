// hunterpie-leader and hunterpie-member: the HunterPie sync protocol's two client roles
// (docs/protocol/hunterpie.md). Both runs open S sessions of one leader and M members each; the
// leaders push monster data like the real SyncPlugin (every --interval-ms, default 150 ms, about
// --size bytes), or as fast as possible with --interval-ms 0: then each leader keeps at most
// --window pushes not yet received by every member of its session (the protocol has no acks; the
// members' receipts are counted per session), so that the run measures the server rather than
// the slow-consumer policy. hunterpie-leader reports
// from the leaders' side (pushes sent), hunterpie-member from the members' (pushes delivered);
// both print every figure. Each push carries its send time as the first monster's id, which the
// members read back from the forwarded frame: the latency is the relay time. The rest of a push
// is monster data shaped like the plugin's (monsters of parts' health and ailments' buildup,
// pseudo-random numbers fixed for the run, so it compresses like real data rather than like
// padding), and every member checks each push it receives, byte for byte, against what its
// leader sent: a push that differs is an error, not a delivery.
//
// Pushes delivered/s is the throughput; with --server-pid, deliveries per server CPU-second. For
// top speed start the server with `[websocket] max_messages_per_s = 0` (the default limit closes a
// connection sending more than 1,000 messages/s with 1008). With --compression every connection
// offers permessage-deflate as the plugin's client library does (no context takeover); leaders
// then send their pushes compressed and members inflate what arrives compressed.

#include <atomic>
#include <charconv>
#include <cmath>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum HunterpieCounter : std::size_t {
    kJoined = 0,  // connections that received their first sessionstate, or ended
    kStates,      // sessionstate messages received
    kOther,       // servermsg and anything else
};

constexpr auto kTickInterval = std::chrono::milliseconds(2);
constexpr double kJoinTimeoutS = 10;
constexpr std::size_t kMaxBurst = 64;  // pushes per leader per tick with --interval-ms 0

struct HunterpieSettings {
    bool member_view = false;
    std::size_t sessions = 10;
    std::size_t members = 3;
    std::size_t size = 2048;
    double interval_ms = 150;
    bool stagger = false;  // leaders push at evenly spread phases instead of together
    std::string session_prefix = "bench-";
    std::size_t window = 32;

    // Derived before the connections open; read-only while they run. A push is
    // `{"sessionId":"<id>","type":"Push","data":[["T<send time ns>` followed by `push_rest`.
    std::string push_rest;
    std::uint64_t start_ns = 0;
    // Pushes received by the members of each session (any worker thread).
    std::unique_ptr<std::atomic<std::uint64_t>[]> session_delivered;
};

std::string push_prefix(std::string_view session) {
    return std::string(R"({"sessionId":")") + std::string(session) +
           R"(","type":"Push","data":[["T)";
}

/// What follows a push's timestamp: the rest of the first monster, then monsters shaped like the
/// plugin's (`[id, [[part, health]...], [[ailment, buildup]...]]`) until the push is about `size`
/// bytes long (`head` bytes come before). The numbers are pseudo-random, the same every run.
std::string make_push_rest(std::size_t size, std::size_t head) {
    std::string rest = R"(",[[0,99.5],[1,1200.25]],[[1,12]]])";
    constexpr std::string_view kEnd = "]}";
    std::uint64_t seed = 0x9E3779B97F4A7C15ULL;
    const auto next = [&seed](std::uint64_t bound) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return (seed >> 33) % bound;
    };
    // Room left once `more` bytes and the closing brackets ("],[" and "]]" at most) are added.
    const auto fits = [&](std::size_t more) {
        return head + rest.size() + more + 5 + kEnd.size() <= size;
    };
    bool full = false;
    while (!full) {
        std::string m = fmt::format(R"(,["em{:03}_00",[)", 1 + next(120));
        const std::size_t parts = 8 + next(10);
        const std::size_t ailments = 4 + next(8);
        std::size_t added = 0;
        for (std::size_t p = 0; p < parts && !full; ++p) {
            auto e = fmt::format("{}[{},{}.{}]", p ? "," : "", p, next(30000), next(100));
            if (!fits(m.size() + e.size())) {
                full = true;
                break;
            }
            m += e;
            ++added;
        }
        m += "],[";
        for (std::size_t a = 0; a < ailments && !full; ++a) {
            auto e = fmt::format("{}[{},{}]", a ? "," : "", a, next(500));
            if (!fits(m.size() + e.size())) {
                full = true;
                break;
            }
            m += e;
        }
        m += "]]";
        if (added == 0) {
            break;  // not even one part fits: the push ends with the monsters so far
        }
        rest += m;
    }
    rest += kEnd;
    return rest;
}

/// A leader (index % (members + 1) == 0) or a member. Runs on: its worker thread.
class Player final : public Connection {
public:
    Player(Worker& worker, const HunterpieSettings& settings, std::size_t index)
        : Connection(worker),
          settings_(settings),
          session_index_(index / (settings.members + 1)),
          session_(settings.session_prefix + std::to_string(session_index_)),
          prefix_(push_prefix(session_)),
          leader_(index % (settings.members + 1) == 0),
          // --stagger: session i's leader starts i/sessions of an interval late.
          phase_ns_(settings.stagger
                        ? settings.interval_ms * 1e6 * static_cast<double>(session_index_) /
                              static_cast<double>(settings.sessions)
                        : 0.0) {}

    bool leader() const noexcept { return leader_; }

    void tick(std::uint64_t now) {
        if (!is_open() || !joined_) {
            return;
        }
        if (settings_.interval_ms <= 0) {
            const std::uint64_t members = settings_.members;
            for (std::size_t i = 0; i < kMaxBurst; ++i) {
                const auto received =
                    settings_.session_delivered[session_index_].load(std::memory_order_relaxed);
                if (members > 0 && sent_ * members >= received + settings_.window * members) {
                    break;
                }
                if (!send_one()) {
                    break;
                }
            }
        } else {
            const double since = static_cast<double>(now - settings_.start_ns) - phase_ns_;
            if (since < 0) {
                flush();
                return;
            }
            const auto due = static_cast<std::uint64_t>(since / (settings_.interval_ms * 1e6));
            // A late tick sends one push, not a burst: the real plugin skips missed frames.
            if (issued_ < due + 1) {
                issued_ = due + 1;
                (void)send_one();
            }
        }
        flush();
    }

protected:
    void on_open() override {
        (void)queue(Opcode::kText, {R"({"sessionId":")", session_, R"(","type":"SetSession",)",
                                    leader_ ? R"("isLeader":true})" : R"("isLeader":false})"});
    }

    void on_message(std::string_view payload, bool) override {
        auto& c = worker_.counters();
        if (payload.starts_with(R"({"type":"sessionstate")")) {
            c.custom[kStates].add();
            if (!joined_) {
                joined_ = true;
                c.custom[kJoined].add();
            }
            return;
        }
        if (payload.starts_with(R"({"sessionId")")) {
            const auto phase = worker_.phase();
            if (phase != Phase::kMeasure && phase != Phase::kDrain) {
                return;
            }
            const auto t = check_push(payload);
            if (!t) {
                c.errors.add();
                worker_.count_reason("hunterpie: a push differs from what the leader sent");
                return;
            }
            if (const auto now = now_ns(); *t <= now) {
                worker_.histogram().record(now - *t);
            }
            c.delivered.add();
            settings_.session_delivered[session_index_].fetch_add(1, std::memory_order_relaxed);
            return;
        }
        c.custom[kOther].add();
        worker_.count_reason(fmt::format(
            "hunterpie: {}", payload.substr(0, std::min<std::size_t>(payload.size(), 60))));
    }

    void on_closed(bool) override {
        if (!joined_) {
            joined_ = true;
            worker_.counters().custom[kJoined].add();
        }
    }

private:
    /// The send time of a push when it is, byte for byte, one this member's leader sent.
    std::optional<std::uint64_t> check_push(std::string_view frame) const {
        if (!frame.starts_with(prefix_)) {
            return std::nullopt;
        }
        const char* begin = frame.data() + prefix_.size();
        const char* last = frame.data() + frame.size();
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(begin, last, value);
        if (ec != std::errc{} || end == begin ||
            std::string_view(end, static_cast<std::size_t>(last - end)) != settings_.push_rest) {
            return std::nullopt;
        }
        return value;
    }

    bool send_one() {
        char digits[24];
        const std::string_view time(
            digits, static_cast<std::size_t>(
                        std::to_chars(digits, digits + sizeof digits, now_ns()).ptr - digits));
        if (!queue(Opcode::kText, {prefix_, time, settings_.push_rest})) {
            return false;
        }
        worker_.counters().sent.add();
        ++sent_;
        return true;
    }

    const HunterpieSettings& settings_;
    std::size_t session_index_;
    std::string session_;
    std::string prefix_;  // of this session's pushes, up to the timestamp's digits
    bool leader_;
    bool joined_ = false;
    std::uint64_t issued_ = 0;
    const double phase_ns_;  // when, within each interval, this leader pushes
    std::uint64_t sent_ = 0;
};

class HunterpieScenario final : public Scenario {
public:
    explicit HunterpieScenario(bool member_view) { s_.member_view = member_view; }

    void add_options(CLI::App& cmd) override {
        cmd.add_option("--sessions", s_.sessions, "Sessions, each with one leader")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--members", s_.members, "Non-leader members per session")
            ->check(CLI::Range(0, 100'000))
            ->capture_default_str();
        cmd.add_option("--size", s_.size,
                       "Bytes of each push (about; monster data fills what the header leaves)")
            ->check(CLI::Range(1, 16 * 1024 * 1024))
            ->capture_default_str();
        cmd.add_option("--interval-ms", s_.interval_ms,
                       "Milliseconds between a leader's pushes (the plugin: 150); 0: as fast as "
                       "the outbox allows")
            ->check(CLI::Range(0.0, 3'600'000.0))
            ->capture_default_str();
        cmd.add_flag("--stagger", s_.stagger,
                     "Leaders push at phases spread evenly over the interval, as independent "
                     "players do (default: all together, every interval)");
        cmd.add_option("--window", s_.window,
                       "With --interval-ms 0: pushes a leader may have ahead of its members")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--session-prefix", s_.session_prefix,
                       "Session ids are this prefix and the session's number")
            ->capture_default_str();
    }

    std::size_t connections() const override { return s_.sessions * (s_.members + 1); }

    double expected_seconds(const CommonOptions& options) const override {
        return options.duration_s + kJoinTimeoutS + 5;
    }

    void run(Bench& bench, Report& report) override {
        const std::size_t head =
            push_prefix(s_.session_prefix + "0").size() + std::to_string(now_ns()).size();
        s_.push_rest = make_push_rest(s_.size, head);
        s_.session_delivered = std::make_unique<std::atomic<std::uint64_t>[]>(s_.sessions);
        report.latency_meaning = "relay: leader sent push to forwarded frame at a member";
        report.figures["view"] = s_.member_view ? "member" : "leader";
        report.figures["sessions"] = s_.sessions;
        report.figures["members_per_session"] = s_.members;
        report.figures["push_size"] = s_.size;
        report.figures["push_bytes"] = head + s_.push_rest.size();  // session 0's
        report.figures["interval_ms"] = s_.interval_ms;
        report.figures["stagger"] = s_.stagger;
        if (s_.interval_ms <= 0) {
            report.figures["window"] = s_.window;
        }

        const std::size_t opened = bench.open(connections(), [this](Worker& w, std::size_t i) {
            return std::make_unique<Player>(w, s_, i);
        });
        if (opened == 0) {
            return;
        }
        bench.wait(kJoinTimeoutS, "join",
                   [&bench, opened] { return bench.totals().custom[kJoined] >= opened; });
        // Late sessionstates (members joining after others) arrive before the measured phase.
        bench.wait(0.5, "settle");

        const Snapshot begin = bench.snapshot();
        s_.start_ns = now_ns();
        bench.set_phase(Phase::kMeasure);
        bench.on_workers([this](Worker& w) {
            std::vector<Player*> leaders;
            for (auto& c : w.connections()) {
                auto* p = static_cast<Player*>(c.get());
                if (p->leader()) {
                    leaders.push_back(p);
                }
            }
            if (leaders.empty()) {
                return;
            }
            w.start_ticker(kTickInterval, [&w, leaders] {
                if (!w.measuring()) {
                    return false;
                }
                const std::uint64_t now = now_ns();
                for (auto* p : leaders) {
                    p->tick(now);
                }
                return true;
            });
        });
        bench.wait(bench.options().duration_s,
                   s_.member_view ? "hunterpie-member" : "hunterpie-leader");

        bench.set_phase(Phase::kDrain);
        const std::uint64_t fanout = s_.members;
        bench.wait(bench.options().drain_s, "drain", [&] {
            const auto t = bench.totals();
            return t.delivered >= t.sent * fanout;
        });
        const Snapshot end = bench.snapshot();
        Bench::fill_window(report, begin, end);
        const auto& t = end.totals;
        const auto sent = t.sent - begin.totals.sent;
        const auto delivered = t.delivered - begin.totals.delivered;
        report.figures["pushes_sent"] = sent;
        report.figures["pushes_delivered"] = delivered;
        report.figures["pushes_expected"] = sent * fanout;
        if (delivered < sent * fanout) {
            bench.note(fmt::format("{} of {} push deliveries missing {} s after the last push",
                                   sent * fanout - delivered, sent * fanout,
                                   bench.options().drain_s));
        }
        if (report.elapsed_s > 0) {
            report.figures["pushes_sent_per_s"] =
                std::round(static_cast<double>(sent) / report.elapsed_s);
            report.figures["pushes_delivered_per_s"] =
                std::round(static_cast<double>(delivered) / report.elapsed_s);
        }
        if (report.server_cpu_s && *report.server_cpu_s > 0 && delivered > 0) {
            report.figures["deliveries_per_server_cpu_s"] =
                std::round(static_cast<double>(delivered) / *report.server_cpu_s);
        }
        if (end.server) {
            report.figures["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

private:
    HunterpieSettings s_;
};

const RegisterScenario kRegisteredLeader{
    {"hunterpie-leader",
     "HunterPie sync: S sessions of one leader and M members; leaders push monster data (every "
     "150 ms or as fast as possible); pushes sent and delivered/s, relay latency.",
     [] { return std::make_unique<HunterpieScenario>(false); }}};

const RegisterScenario kRegisteredMember{
    {"hunterpie-member",
     "HunterPie sync, as the members see it: S sessions of one leader and M members; pushes "
     "delivered/s, relay latency, deliveries per server CPU-second.",
     [] { return std::make_unique<HunterpieScenario>(true); }}};

}  // namespace

}  // namespace hearth::bench
