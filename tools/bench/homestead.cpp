// homestead-mod and homestead-bot: the Homestead gateway's two client roles (docs/protocol/
// homestead.md). Both runs open N mods, each on its own channel, and one bot; they differ in who
// sends. homestead-mod: every mod sends chat to the bot (mod to bot). homestead-bot: the bot sends
// to the channels in turn (bot to mod). Each message carries its send time at the start of
// `content` ("NANOSECONDS xxx..."); the recipient reads it back from the forwarded frame, so the
// latency is the relay time (sent by one client, forwarded frame received by the other). Acks are
// counted by status: acks/s is the throughput, and with --server-pid the server's CPU time per
// message is reported.
//
// Without --rate, each sender keeps at most --window messages unacknowledged. An ack `completed`
// means the message was written to the recipient's socket, so the window also bounds what waits
// in the server for the recipient. The API key goes in the URL (`/sync?api_key=KEY`): the harness
// sends no other header. For top speed start the server with `[websocket] max_messages_per_s = 0`
// (the default limit closes a connection sending more than 1,000 messages/s with 1008).

#include <charconv>
#include <cmath>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum HomesteadCounter : std::size_t {
    kHandshakeDone = 0,  // handshakes answered (connected or refused), or their connection ended
    kConnected,          // handshakes answered with connected
    kCompleted,          // acks: written to the recipient
    kQueued,             // acks: stored for an offline recipient
    kFailed,             // acks: neither
    kErrorFrames,        // {"code":...} answers (malformed message, 409, ...)
    kSkipped,            // --rate: messages not sent because the window was full
};

constexpr auto kTickInterval = std::chrono::milliseconds(2);
constexpr double kHandshakeTimeoutS = 10;

struct HomesteadSettings {
    bool bot_sends = false;  // homestead-bot; else homestead-mod
    std::size_t mods = 10;
    std::size_t size = 100;  // bytes of `content`, with the timestamp
    double rate = 0;         // messages per second in all; 0: as fast as the window allows
    std::size_t window = 32;
    std::string channel_prefix = "bench-";

    // Derived before the connections open; read-only while they run.
    std::string padding;
    std::uint64_t start_ns = 0;
    std::size_t senders = 1;
};

/// The timestamp at the start of a forwarded frame's content, or nullopt.
std::optional<std::uint64_t> scan_content_time(std::string_view frame) {
    constexpr std::string_view kKey = R"("content":")";
    const auto at = frame.find(kKey);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    const char* begin = frame.data() + at + kKey.size();
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(begin, frame.data() + frame.size(), value);
    if (ec != std::errc{} || end == begin) {
        return std::nullopt;
    }
    return value;
}

/// A mod (index < mods) or the bot. Runs on: its worker thread.
class Peer final : public Connection {
public:
    Peer(Worker& worker, const HomesteadSettings& settings, std::size_t index)
        : Connection(worker),
          settings_(settings),
          index_(index),
          bot_(index == settings.mods),
          sender_(bot_ == settings.bot_sends) {}

    bool sender() const noexcept { return sender_; }

    /// Without --rate: sends what the window allows.
    void pump() {
        if (!is_open() || !connected_ || !worker_.measuring()) {
            return;
        }
        while (unacked_ < settings_.window && send_one()) {
        }
        flush();
    }

    /// With --rate: sends what the schedule asks for by `now`, within the window.
    void tick(std::uint64_t now) {
        if (!is_open() || !connected_) {
            return;
        }
        const double per_sender = settings_.rate / static_cast<double>(settings_.senders);
        const auto due = static_cast<std::uint64_t>(
            per_sender * static_cast<double>(now - settings_.start_ns) / 1e9);
        while (issued_ < due) {
            if (unacked_ >= settings_.window || !send_one()) {
                worker_.counters().custom[kSkipped].add(due - issued_);
                issued_ = due;
                break;
            }
            ++issued_;
        }
        flush();
    }

protected:
    void on_open() override {
        const std::string handshake = bot_
                                          ? R"({"type":"bot","data":{"bot_id":"bench-bot"}})"
                                          : R"({"type":"mod","data":{"server_id":")" + server_id() +
                                                R"(","channel_id":")" + channel(index_) + R"("}})";
        (void)queue(Opcode::kText, {handshake});
    }

    void on_message(std::string_view payload, bool) override {
        auto& c = worker_.counters();
        if (payload.starts_with(R"({"type":)")) {
            const auto phase = worker_.phase();
            if (phase != Phase::kMeasure && phase != Phase::kDrain) {
                return;  // a message queued by an earlier run, flushed on the handshake
            }
            if (const auto t = scan_content_time(payload); t && *t <= now_ns()) {
                worker_.histogram().record(now_ns() - *t);
            }
            c.delivered.add();
            return;
        }
        if (payload.starts_with(R"({"status":"connected")")) {
            connected_ = true;
            c.custom[kConnected].add();
            handshake_done();
            return;
        }
        if (payload.starts_with(R"({"status":")")) {
            const auto status = payload.substr(11);
            c.custom[status.starts_with("completed") ? kCompleted
                     : status.starts_with("queued")  ? kQueued
                                                     : kFailed]
                .add();
            acknowledged();
            return;
        }
        c.errors.add();
        c.custom[kErrorFrames].add();
        worker_.count_reason(fmt::format(
            "homestead: {}", payload.substr(0, std::min<std::size_t>(payload.size(), 60))));
        if (!connected_) {
            handshake_done();  // refused (409, malformed): the close follows
        } else {
            acknowledged();  // a malformed message's answer takes its ack's place
        }
    }

    void on_closed(bool) override { handshake_done(); }

private:
    std::string server_id() const { return "bench-server-" + std::to_string(index_); }
    std::string channel(std::size_t i) const {
        return settings_.channel_prefix + std::to_string(i);
    }

    void handshake_done() {
        if (!handshake_counted_) {
            handshake_counted_ = true;
            worker_.counters().custom[kHandshakeDone].add();
        }
    }

    bool send_one() {
        thread_local std::string head;
        char digits[24];
        head.clear();
        head += R"({"msg_id":")";
        head.append(digits, std::to_chars(digits, digits + sizeof digits, next_id_).ptr);
        head += R"(","id":")";
        if (bot_) {
            head += channel(next_channel_);  // a bot's id is the channel
            head += '"';
            next_channel_ = (next_channel_ + 1) % settings_.mods;
        } else {
            head += server_id();
            head += R"(","destination":{"channel_id":")";
            head += channel(index_);
            head += R"("})";
        }
        head += R"(,"author":{"id":"bench"},"content":")";
        const std::size_t content_start = head.size();
        head.append(digits, std::to_chars(digits, digits + sizeof digits, now_ns()).ptr);
        head += ' ';
        const std::size_t used = head.size() - content_start;
        const std::size_t pad = settings_.size > used ? settings_.size - used : 0;
        static constexpr std::string_view kTail = R"("})";
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
        if (settings_.rate == 0) {
            pump();
        }
    }

    const HomesteadSettings& settings_;
    std::size_t index_;
    bool bot_;
    bool sender_;
    bool connected_ = false;
    bool handshake_counted_ = false;
    std::uint64_t next_id_ = 1;
    std::size_t next_channel_ = 0;
    std::size_t unacked_ = 0;
    std::uint64_t issued_ = 0;
};

class HomesteadScenario final : public Scenario {
public:
    explicit HomesteadScenario(bool bot_sends) { s_.bot_sends = bot_sends; }

    void add_options(CLI::App& cmd) override {
        cmd.add_option("--mods", s_.mods, "Mods, each on its own channel (plus one bot)")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--size", s_.size, "Bytes of each message's content (with its timestamp)")
            ->check(CLI::Range(21, 16 * 1024 * 1024))
            ->capture_default_str();
        cmd.add_option("--rate", s_.rate,
                       "Messages per second, shared by the senders; without it, as fast as the "
                       "window allows")
            ->check(CLI::Range(0.0, 1e9));
        cmd.add_option("--window", s_.window,
                       "Unacknowledged messages per sender (with --rate, sends beyond it are "
                       "skipped and counted)")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--channel-prefix", s_.channel_prefix,
                       "Channel ids are this prefix and the mod's number")
            ->capture_default_str();
    }

    std::string validate(const CommonOptions& options) override {
        if (options.url.find("api_key=") == std::string::npos) {
            return "put the API key in the URL, e.g. --url "
                   "'ws://127.0.0.1:3333/sync?api_key=gateway'";
        }
        return {};
    }

    std::size_t connections() const override { return s_.mods + 1; }

    double expected_seconds(const CommonOptions& options) const override {
        return options.duration_s + kHandshakeTimeoutS;
    }

    void run(Bench& bench, Report& report) override {
        s_.padding.assign(s_.size, 'x');
        s_.senders = s_.bot_sends ? 1 : s_.mods;
        report.latency_meaning = s_.bot_sends ? "relay: bot sent to forwarded frame at its mod"
                                              : "relay: mod sent to forwarded frame at the bot";
        report.figures["mods"] = s_.mods;
        report.figures["direction"] = s_.bot_sends ? "bot_to_mod" : "mod_to_bot";
        report.figures["content_size"] = s_.size;
        if (s_.rate > 0) {
            report.figures["rate"] = s_.rate;
        }
        report.figures["window"] = s_.window;

        const std::size_t opened = bench.open(connections(), [this](Worker& w, std::size_t i) {
            return std::make_unique<Peer>(w, s_, i);
        });
        if (opened == 0) {
            return;
        }
        bench.wait(kHandshakeTimeoutS, "handshake",
                   [&bench, opened] { return bench.totals().custom[kHandshakeDone] >= opened; });
        const auto connected = bench.totals().custom[kConnected];
        report.figures["connected"] = connected;
        if (connected < connections()) {
            bench.note(
                fmt::format("{} of {} handshakes succeeded (a 409 means another bot is "
                            "connected to this server)",
                            connected, connections()));
        }
        // Queued messages of earlier runs may still be arriving; let them pass unmeasured.
        bench.wait(0.5, "settle");

        const Snapshot begin = bench.snapshot();
        s_.start_ns = now_ns();
        bench.set_phase(Phase::kMeasure);
        bench.on_workers([this](Worker& w) {
            std::vector<Peer*> senders;
            for (auto& c : w.connections()) {
                auto* p = static_cast<Peer*>(c.get());
                if (p->sender()) {
                    senders.push_back(p);
                }
            }
            if (senders.empty()) {
                return;
            }
            const bool rate = s_.rate > 0;
            w.start_ticker(kTickInterval, [&w, senders, rate] {
                if (!w.measuring()) {
                    return false;
                }
                const std::uint64_t now = now_ns();
                for (auto* p : senders) {
                    if (rate) {
                        p->tick(now);
                    } else {
                        p->pump();
                    }
                }
                return true;
            });
        });
        bench.wait(bench.options().duration_s, s_.bot_sends ? "homestead-bot" : "homestead-mod");

        bench.set_phase(Phase::kDrain);
        const auto acks = [](const Totals& t) {
            return t.custom[kCompleted] + t.custom[kQueued] + t.custom[kFailed] +
                   t.custom[kErrorFrames];
        };
        bench.wait(bench.options().drain_s, "drain", [&] {
            const auto t = bench.totals();
            return acks(t) >= t.sent && t.delivered >= t.custom[kCompleted];
        });
        const Snapshot end = bench.snapshot();
        Bench::fill_window(report, begin, end);
        const auto& t = end.totals;
        if (acks(t) < t.sent) {
            bench.note(fmt::format("{} messages were unacknowledged {} s after the last send",
                                   t.sent - acks(t), bench.options().drain_s));
        }
        report.figures["acks_completed"] = t.custom[kCompleted];
        report.figures["acks_queued"] = t.custom[kQueued];
        report.figures["acks_failed"] = t.custom[kFailed];
        if (s_.rate > 0) {
            report.figures["skipped"] = t.custom[kSkipped];
        }
        const auto acked = acks(t) - acks(begin.totals);
        if (report.elapsed_s > 0) {
            report.figures["acks_per_s"] =
                std::round(static_cast<double>(acked) / report.elapsed_s);
        }
        if (report.server_cpu_s && *report.server_cpu_s > 0 && acked > 0) {
            report.figures["server_cpu_us_per_message"] =
                std::round(*report.server_cpu_s * 1e6 / static_cast<double>(acked) * 100) / 100;
            report.figures["messages_per_server_cpu_s"] =
                std::round(static_cast<double>(acked) / *report.server_cpu_s);
        }
        if (end.server) {
            report.figures["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

private:
    HomesteadSettings s_;
};

const RegisterScenario kRegisteredMod{
    {"homestead-mod",
     "Homestead gateway: N mods on N channels send chat to one bot (mod to bot); acks/s and relay "
     "latency.",
     [] { return std::make_unique<HomesteadScenario>(false); }}};

const RegisterScenario kRegisteredBot{
    {"homestead-bot",
     "Homestead gateway: one bot sends chat to N mods' channels in turn (bot to mod); acks/s and "
     "relay latency.",
     [] { return std::make_unique<HomesteadScenario>(true); }}};

}  // namespace

}  // namespace hearth::bench
