// echo: N connections to an echo route, each with one message in flight: send, wait for the
// echo, send the next. A round trip is one delivery; its latency is measured from the send
// timestamp the message carries (its first 8 bytes).

#include <cmath>
#include <cstring>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum EchoCounter : std::size_t {
    kLost = 0,    // round trips in flight when their connection ended
    kBadReplies,  // replies that differ from the message sent (also counted as errors)
};

struct EchoSettings {
    std::size_t connections = 100;
    std::size_t size = 100;
    std::string padding;  // the bytes after the timestamp; read-only while connections run
};

/// Runs on: its worker thread.
class EchoConnection final : public Connection {
public:
    EchoConnection(Worker& worker, const EchoSettings& settings)
        : Connection(worker), settings_(settings) {}

    void send_next() {
        if (!is_open() || awaiting_) {
            return;
        }
        const std::uint64_t t = now_ns();
        char stamp[8];
        std::memcpy(stamp, &t, sizeof stamp);
        if (!queue(Opcode::kBinary, {std::string_view(stamp, sizeof stamp), settings_.padding})) {
            return;  // cannot happen with one message in flight: the outbox is empty
        }
        awaiting_ = true;
        worker_.counters().sent.add();
        flush();
    }

protected:
    void on_message(std::string_view payload, bool text) override {
        auto& counters = worker_.counters();
        if (!awaiting_) {
            abort("echo: a message nobody asked for");
            return;
        }
        awaiting_ = false;
        std::uint64_t t = 0;
        if (payload.size() == settings_.size) {
            std::memcpy(&t, payload.data(), sizeof t);
        }
        const std::uint64_t now = now_ns();
        if (text || payload.size() != settings_.size || t > now ||
            std::memcmp(payload.data() + 8, settings_.padding.data(), settings_.padding.size()) !=
                0) {
            counters.errors.add();
            counters.custom[kBadReplies].add();
            worker_.count_reason("echo: the reply differs from the message sent");
        } else {
            worker_.histogram().record(now - t);
            counters.delivered.add();
        }
        if (worker_.measuring()) {
            send_next();
        }
    }

    void on_closed(bool) override {
        if (awaiting_) {
            awaiting_ = false;
            worker_.counters().custom[kLost].add();
        }
    }

private:
    const EchoSettings& settings_;
    bool awaiting_ = false;
};

class EchoScenario final : public Scenario {
public:
    void add_options(CLI::App& cmd) override {
        cmd.add_option("--connections", settings_.connections,
                       "Connections, each keeping one message in flight")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--size", settings_.size,
                       "Message size in bytes: an 8-byte send timestamp, then padding")
            ->check(CLI::Range(8, 16 * 1024 * 1024))
            ->capture_default_str();
    }

    std::size_t connections() const override { return settings_.connections; }

    void run(Bench& bench, Report& report) override {
        settings_.padding.assign(settings_.size - 8, 'x');
        const std::size_t opened =
            bench.open(settings_.connections, [this](Worker& w, std::size_t) {
                return std::make_unique<EchoConnection>(w, settings_);
            });
        report.latency_meaning = "round trip (send to echo received)";
        report.figures["connections"] = settings_.connections;
        report.figures["size"] = settings_.size;
        if (opened == 0) {
            return;
        }
        const Snapshot begin = bench.snapshot();
        bench.set_phase(Phase::kMeasure);
        bench.for_each<EchoConnection>([](EchoConnection& c) { c.send_next(); });
        bench.wait(bench.options().duration_s, "echo");
        // No new sends; the round trips in flight complete (or their connections end).
        bench.set_phase(Phase::kDrain);
        const auto unanswered = [&bench] {
            const auto t = bench.totals();
            const auto answered = t.delivered + t.custom[kBadReplies] + t.custom[kLost];
            return t.sent > answered ? t.sent - answered : 0;
        };
        bench.wait(bench.options().drain_s, "drain", [&] { return unanswered() == 0; });
        const Snapshot end = bench.snapshot();
        if (const auto n = unanswered(); n > 0) {
            bench.note(fmt::format("{} messages were still unanswered {} s after the last send", n,
                                   bench.options().drain_s));
        }
        Bench::fill_window(report, begin, end);
        if (report.server_cpu_s && *report.server_cpu_s > 0) {
            report.figures["round_trips_per_server_cpu_s"] =
                std::round(static_cast<double>(end.totals.delivered - begin.totals.delivered) /
                           *report.server_cpu_s);
        }
        if (end.server) {
            report.figures["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

private:
    EchoSettings settings_;
};

const RegisterScenario kRegistered{
    {"echo", "Round trips against an echo route (/echo): each connection sends, waits, repeats.",
     [] { return std::make_unique<EchoScenario>(); }}};

}  // namespace

}  // namespace hearth::bench
