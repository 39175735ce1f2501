// fanout: P publishers publish to one topic that N subscribers subscribed to, over Hearth's native
// protocol (JSON text at /ws). Every message a subscriber receives is a delivery; its latency is
// measured from the send timestamp inside `data` ({"t":NANOSECONDS,"p":"padding"}).
//
// Without --rate, publishers go as fast as the subscribers keep up. A publish is acknowledged
// once the server has queued it for its subscribers, not once they have it, so a window of
// unacknowledged publishes alone would let the publishers outrun the subscribers until the
// server closes them as slow consumers, and the run would measure that. So the publishers also
// stay at most a bounded number of messages ahead of the subscribers' average (the workers'
// counters say how far), which keeps every server outbox small.
//
// Subscribers find the timestamp by scanning for "t": after "data": rather than parsing the JSON:
// the client shares the machine with the server, and parsing every delivery would cost more than
// the server's own work per recipient. Anything that is not a message takes the slow path (a real
// JSON parse): subscribe acknowledgements, errors, other notices.

#include <charconv>
#include <cmath>
#include <optional>

#include <CLI/CLI.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

namespace json = boost::json;

enum FanoutCounter : std::size_t {
    kSubscribersOpened = 0,  // subscriber connections that opened
    kSubscribeDone,          // subscribes answered (ok or error), or their connection ended first
    kSubscribed,             // subscribes acknowledged with ok
    kAcked,                  // publishes answered (ok or error)
    kSkipped,                // --rate: publishes not sent because the window was full
    kSubscribersLost,        // subscribed connections that ended before the run did
};

constexpr std::int64_t kSubscribeId = 1;
// Without --rate: how far (in bytes of messages) publishers may be ahead of the average
// subscriber. A quarter of the server's default outbox bound (websocket.max_outbound_bytes).
constexpr std::size_t kMaxLagBytes = 1024 * 1024;
constexpr auto kTickInterval = std::chrono::milliseconds(2);
constexpr double kSubscribeTimeoutS = 10;

struct FanoutSettings {
    std::size_t publishers = 1;
    std::size_t subscribers = 100;
    std::size_t size = 100;
    double rate = 0;  // publishes per second in all; 0: as fast as the window allows
    std::size_t window = 64;
    std::string topic = "bench";

    // Derived before the connections open; read-only while they run.
    std::string topic_json;
    std::string hello;
    std::string subscribe;
    std::string padding;
    std::uint64_t start_ns = 0;  // start of the measurement (the --rate schedule's origin)
    const Bench* bench = nullptr;
    std::uint64_t listening = 0;  // subscribers subscribed when publishing began
    std::uint64_t max_lag = 1;    // messages the publishers may be ahead of the subscribers
};

/// Without --rate: how many more publishes all publishers together may send now. Any thread;
/// reads every worker's counters (relaxed, so approximate, which is all a bound needs).
std::uint64_t publish_budget(const FanoutSettings& s) {
    std::uint64_t sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t lost = 0;
    for (std::size_t i = 0; i < s.bench->worker_count(); ++i) {
        const auto& c = s.bench->worker(i).counters();
        sent += c.sent.get();
        delivered += c.delivered.get();
        lost += c.custom[kSubscribersLost].get();
    }
    const std::uint64_t listening = s.listening > lost ? s.listening - lost : 0;
    if (listening == 0) {
        return s.max_lag;  // nobody to wait for: the window alone bounds the publishers
    }
    const std::uint64_t behind = delivered / listening;  // publishes the average subscriber has
    const std::uint64_t lag = sent > behind ? sent - behind : 0;
    return lag >= s.max_lag ? 0 : s.max_lag - lag;
}

/// The value of "t" after "data": in a message, or nullopt.
std::optional<std::uint64_t> scan_timestamp(std::string_view m) {
    const auto data = m.find(R"("data":)");
    if (data == std::string_view::npos) {
        return std::nullopt;
    }
    const auto key = m.find(R"("t":)", data + 7);
    if (key == std::string_view::npos) {
        return std::nullopt;
    }
    std::size_t i = key + 4;
    while (i < m.size() && m[i] == ' ') {
        ++i;
    }
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(m.data() + i, m.data() + m.size(), value);
    if (ec != std::errc{}) {
        return std::nullopt;
    }
    return value;
}

/// A server message parsed properly: the slow path.
struct Reply {
    std::string type;
    std::optional<std::int64_t> id;
    std::string code;                // of an error
    std::optional<std::uint64_t> t;  // of a message: data.t
};

std::optional<Reply> parse_reply(std::string_view text) {
    boost::system::error_code ec;
    const json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec || !v.is_object()) {
        return std::nullopt;
    }
    const auto& o = v.get_object();
    Reply r;
    if (const auto* type = o.if_contains("type"); type != nullptr && type->is_string()) {
        r.type = std::string(type->get_string());
    }
    if (const auto* id = o.if_contains("id"); id != nullptr && id->is_int64()) {
        r.id = id->get_int64();
    }
    if (const auto* code = o.if_contains("code"); code != nullptr && code->is_string()) {
        r.code = std::string(code->get_string());
    }
    if (const auto* data = o.if_contains("data"); data != nullptr && data->is_object()) {
        if (const auto* t = data->get_object().if_contains("t"); t != nullptr) {
            if (t->is_uint64()) {
                r.t = t->get_uint64();
            } else if (t->is_int64() && t->get_int64() >= 0) {
                r.t = static_cast<std::uint64_t>(t->get_int64());
            }
        }
    }
    return r;
}

/// Runs on: its worker thread.
class Subscriber final : public Connection {
public:
    Subscriber(Worker& worker, const FanoutSettings& settings)
        : Connection(worker), settings_(settings) {}

protected:
    void on_open() override {
        worker_.counters().custom[kSubscribersOpened].add();
        if (!settings_.hello.empty()) {
            (void)queue(Opcode::kText, {settings_.hello});
        }
        (void)queue(Opcode::kText, {settings_.subscribe});
    }

    void on_message(std::string_view payload, bool) override {
        if (payload.starts_with(R"({"type":"message")")) {
            if (auto t = scan_timestamp(payload)) {
                deliver(*t);
                return;
            }
        }
        const auto reply = parse_reply(payload);
        if (!reply) {
            worker_.counters().errors.add();
            worker_.count_reason("fanout: a server message that is not a JSON object");
            return;
        }
        if (reply->type == "message") {
            if (reply->t) {
                deliver(*reply->t);
            } else {
                worker_.counters().errors.add();
                worker_.count_reason("fanout: a message without data.t");
            }
        } else if (reply->type == "ok" && reply->id == kSubscribeId && !answered_) {
            answered_ = true;
            subscribed_ = true;
            worker_.counters().custom[kSubscribeDone].add();
            worker_.counters().custom[kSubscribed].add();
        } else if (reply->type == "error") {
            worker_.counters().errors.add();
            worker_.count_reason("error reply: " + reply->code);
            if (reply->id == kSubscribeId && !answered_) {
                answered_ = true;
                worker_.counters().custom[kSubscribeDone].add();
            }
        }
        // Anything else (welcome, presence notices) is not this scenario's business.
    }

    void on_closed(bool) override {
        if (!answered_) {
            answered_ = true;
            worker_.counters().custom[kSubscribeDone].add();
        }
        if (subscribed_ && worker_.phase() != Phase::kDone) {
            worker_.counters().custom[kSubscribersLost].add();
        }
    }

private:
    void deliver(std::uint64_t t) {
        const auto phase = worker_.phase();
        if (phase != Phase::kMeasure && phase != Phase::kDrain) {
            return;
        }
        const std::uint64_t now = now_ns();
        if (t <= now) {
            worker_.histogram().record(now - t);
        }
        worker_.counters().delivered.add();
    }

    const FanoutSettings& settings_;
    bool answered_ = false;
    bool subscribed_ = false;
};

/// Runs on: its worker thread.
class Publisher final : public Connection {
public:
    Publisher(Worker& worker, const FanoutSettings& settings)
        : Connection(worker), settings_(settings) {}

    /// Without --rate: sends what the window and the subscribers' lag allow. Called on each
    /// acknowledgement and by the worker's ticker (the subscribers catching up sends no event to
    /// the publishers).
    void pump() {
        if (!is_open() || !worker_.measuring() || unacked_ >= settings_.window) {
            return;
        }
        // A fair share of the common budget, so that one publisher does not take it all.
        const std::uint64_t budget = publish_budget(settings_);
        const std::uint64_t share = (budget + settings_.publishers - 1) / settings_.publishers;
        std::uint64_t n = std::min<std::uint64_t>(settings_.window - unacked_, share);
        while (n-- > 0 && publish()) {
        }
        flush();
    }

    /// With --rate: sends what the schedule asks for by `now`, within the window.
    void tick(std::uint64_t now) {
        if (!is_open()) {
            return;
        }
        const double per_publisher = settings_.rate / static_cast<double>(settings_.publishers);
        const auto due = static_cast<std::uint64_t>(
            per_publisher * static_cast<double>(now - settings_.start_ns) / 1e9);
        while (issued_ < due) {
            if (unacked_ >= settings_.window || !publish()) {
                worker_.counters().custom[kSkipped].add(due - issued_);
                issued_ = due;
                break;
            }
            ++issued_;
        }
        flush();
    }

    /// The size of a publish message as sent (the padding makes it --size, unless --size is
    /// smaller than the message without padding).
    static std::size_t message_size(const FanoutSettings& s) {
        std::string head;
        build_head(head, s, 1, now_ns());
        return std::max(s.size, head.size() + kTail.size());
    }

protected:
    void on_open() override {
        if (!settings_.hello.empty()) {
            (void)queue(Opcode::kText, {settings_.hello});
        }
    }

    void on_message(std::string_view payload, bool) override {
        if (payload.starts_with(R"({"type":"ok")")) {
            acknowledged();
            return;
        }
        const auto reply = parse_reply(payload);
        if (!reply) {
            worker_.counters().errors.add();
            worker_.count_reason("fanout: a server message that is not a JSON object");
            return;
        }
        if (reply->type == "ok") {
            acknowledged();
        } else if (reply->type == "error") {
            worker_.counters().errors.add();
            worker_.count_reason("error reply: " + reply->code);
            if (reply->id) {
                acknowledged();  // the answer to a publish (a hello's error has no id)
            }
        }
    }

private:
    static constexpr std::string_view kTail = R"("}})";

    static void build_head(std::string& head, const FanoutSettings& s, std::uint64_t id,
                           std::uint64_t t) {
        char digits[24];
        head.clear();
        head += R"({"type":"publish","topic":)";
        head += s.topic_json;
        head += R"(,"id":)";
        head.append(digits, std::to_chars(digits, digits + sizeof digits, id).ptr);
        head += R"(,"data":{"t":)";
        head.append(digits, std::to_chars(digits, digits + sizeof digits, t).ptr);
        head += R"(,"p":")";
    }

    bool publish() {
        if (!is_open()) {
            return false;
        }
        thread_local std::string head;
        build_head(head, settings_, next_id_, now_ns());
        const std::size_t used = head.size() + kTail.size();
        const std::size_t pad = settings_.size > used ? settings_.size - used : 0;
        if (!queue(Opcode::kText,
                   {head, std::string_view(settings_.padding).substr(0, pad), kTail})) {
            return false;
        }
        ++next_id_;
        ++unacked_;
        worker_.counters().sent.add();
        return true;
    }

    void acknowledged() {
        if (unacked_ > 0) {
            --unacked_;
        }
        worker_.counters().custom[kAcked].add();
        if (settings_.rate == 0) {
            pump();  // its flush waits for the end of the read batch
        }
    }

    const FanoutSettings& settings_;
    std::uint64_t next_id_ = kSubscribeId + 1;
    std::size_t unacked_ = 0;
    std::uint64_t issued_ = 0;
};

class FanoutScenario final : public Scenario {
public:
    void add_options(CLI::App& cmd) override {
        cmd.add_option("--publishers", s_.publishers, "Publishing connections")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--subscribers", s_.subscribers, "Subscribed connections")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--size", s_.size, "Size of a publish message in bytes (padded)")
            ->check(CLI::Range(1, 16 * 1024 * 1024))
            ->capture_default_str();
        cmd.add_option("--rate", s_.rate,
                       "Publishes per second, shared by the publishers; without it, as fast as "
                       "the window allows")
            ->check(CLI::Range(0.0, 1e9));
        cmd.add_option("--window", s_.window,
                       "Unacknowledged publishes per publisher (with --rate, sends beyond it are "
                       "skipped and counted)")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--topic", s_.topic, "Topic name")->capture_default_str();
    }

    std::size_t connections() const override { return s_.publishers + s_.subscribers; }

    double expected_seconds(const CommonOptions& options) const override {
        return options.duration_s + kSubscribeTimeoutS;
    }

    void run(Bench& bench, Report& report) override {
        s_.topic_json = json::serialize(json::value(s_.topic));
        s_.hello = bench.hello_message();
        s_.subscribe = R"({"type":"subscribe","topic":)" + s_.topic_json + R"(,"id":)" +
                       std::to_string(kSubscribeId) + "}";
        s_.padding.assign(s_.size, 'x');
        report.latency_meaning = "publish sent to message received by a subscriber";
        report.figures["publishers"] = s_.publishers;
        report.figures["subscribers"] = s_.subscribers;
        report.figures["size"] = Publisher::message_size(s_);
        if (s_.rate > 0) {
            report.figures["rate"] = s_.rate;
        }
        report.figures["window"] = s_.window;

        const std::size_t opened = bench.open(
            connections(), [this](Worker& w, std::size_t i) -> std::unique_ptr<Connection> {
                if (i < s_.subscribers) {
                    return std::make_unique<Subscriber>(w, s_);
                }
                return std::make_unique<Publisher>(w, s_);
            });
        if (opened == 0) {
            return;
        }
        bench.wait(kSubscribeTimeoutS, "subscribe", [&bench] {
            const auto t = bench.totals();
            return t.custom[kSubscribeDone] >= t.custom[kSubscribersOpened];
        });
        const auto subscribed = bench.totals().custom[kSubscribed];
        report.figures["subscribed"] = subscribed;
        if (subscribed < s_.subscribers) {
            bench.note(fmt::format("{} of {} subscribers were subscribed when publishing began",
                                   subscribed, s_.subscribers));
        }

        s_.bench = &bench;
        s_.listening = subscribed;
        s_.max_lag = std::max<std::uint64_t>(
            1, std::min<std::uint64_t>(s_.window * s_.publishers,
                                       kMaxLagBytes / Publisher::message_size(s_)));
        if (s_.rate == 0) {
            report.figures["max_lag_messages"] = s_.max_lag;
        }
        const Snapshot begin = bench.snapshot();
        s_.start_ns = now_ns();
        bench.set_phase(Phase::kMeasure);
        bench.on_workers([this](Worker& w) {
            std::vector<Publisher*> publishers;
            for (auto& c : w.connections()) {
                if (auto* p = dynamic_cast<Publisher*>(c.get())) {
                    publishers.push_back(p);
                }
            }
            if (publishers.empty()) {
                return;
            }
            const bool rate = s_.rate > 0;
            w.start_ticker(kTickInterval, [&w, publishers, rate] {
                if (!w.measuring()) {
                    return false;
                }
                const std::uint64_t now = now_ns();
                for (auto* p : publishers) {
                    if (rate) {
                        p->tick(now);
                    } else {
                        p->pump();
                    }
                }
                return true;
            });
            if (!rate) {
                for (auto* p : publishers) {
                    p->pump();
                }
            }
        });
        bench.wait(bench.options().duration_s, "fanout");

        // No new publishes; what is in flight is acknowledged and delivered, within --drain.
        bench.set_phase(Phase::kDrain);
        struct Pending {
            std::uint64_t acks = 0;
            std::uint64_t deliveries = 0;
        };
        const auto pending = [&bench] {
            const auto t = bench.totals();
            const auto lost = t.custom[kSubscribersLost];
            const auto listening = t.custom[kSubscribed] > lost ? t.custom[kSubscribed] - lost : 0;
            const auto expected = t.sent * listening;
            return Pending{t.sent > t.custom[kAcked] ? t.sent - t.custom[kAcked] : 0,
                           expected > t.delivered ? expected - t.delivered : 0};
        };
        bench.wait(bench.options().drain_s, "drain", [&] {
            const auto p = pending();
            return p.acks == 0 && p.deliveries == 0;
        });
        const Snapshot end = bench.snapshot();
        if (const auto p = pending(); p.acks > 0 || p.deliveries > 0) {
            bench.note(
                fmt::format("{} s after the last publish, {} publishes were unacknowledged and {} "
                            "deliveries missing",
                            bench.options().drain_s, p.acks, p.deliveries));
        }
        Bench::fill_window(report, begin, end);

        const auto& t = end.totals;
        report.figures["acked"] = t.custom[kAcked];
        if (s_.rate > 0) {
            report.figures["publish_skipped"] = t.custom[kSkipped];
        }
        report.figures["subscribers_lost"] = t.custom[kSubscribersLost];
        if (t.custom[kSubscribersLost] == 0) {
            report.figures["deliveries_expected"] = t.sent * subscribed;
        } else {
            bench.note(fmt::format(
                "{} subscribers were closed during the run (see close_reasons: a \"slow "
                "consumer\" close means the server dropped a subscriber that fell behind)",
                t.custom[kSubscribersLost]));
        }
        if (report.server_cpu_s && *report.server_cpu_s > 0) {
            report.figures["deliveries_per_server_cpu_s"] = std::round(
                static_cast<double>(t.delivered - begin.totals.delivered) / *report.server_cpu_s);
        }
        if (end.server) {
            report.figures["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

private:
    FanoutSettings s_;
};

const RegisterScenario kRegistered{
    {"fanout",
     "Publishers publish to one topic with many subscribers, over the native protocol (/ws).",
     [] { return std::make_unique<FanoutScenario>(); }}};

}  // namespace

}  // namespace hearth::bench
