// connections: open N idle WebSocket connections, hold them, and report what they cost the server
// in memory. A delivery here is a completed handshake; the latency is the handshake's (TCP
// connect, TLS, upgrade).

#include <cmath>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum IdleCounter : std::size_t {
    kMessages = 0,  // messages the server sent to idle connections (a hello's reply, ...)
};

/// Runs on: its worker thread. Sends nothing but pongs (the base answers pings) and, on the native
/// protocol with --token, a hello.
class IdleConnection final : public Connection {
public:
    IdleConnection(Worker& worker, const std::string& hello) : Connection(worker), hello_(hello) {}

protected:
    void on_open() override {
        worker_.histogram().record(now_ns() - started_ns());
        worker_.counters().delivered.add();
        if (!hello_.empty()) {
            (void)queue(Opcode::kText, {hello_});
            worker_.counters().sent.add();
        }
    }
    void on_message(std::string_view, bool) override { worker_.counters().custom[kMessages].add(); }

private:
    const std::string& hello_;
};

class ConnectionsScenario final : public Scenario {
public:
    void add_options(CLI::App& cmd) override {
        cmd.add_option("--count", count_, "Connections to open and hold")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--hold", hold_s_, "Seconds to hold them open (default: --duration)")
            ->check(CLI::Range(0.0, 86400.0));
    }

    std::size_t connections() const override { return count_; }

    double expected_seconds(const CommonOptions& options) const override { return hold(options); }

    void run(Bench& bench, Report& report) override {
        // The hello belongs to the native protocol, at /ws.
        const bool native = bench.target().path == "/ws" || bench.target().path.starts_with("/ws?");
        hello_ = native ? bench.hello_message() : std::string();
        report.latency_meaning = "handshake (connect, TLS, upgrade)";
        report.figures["count"] = count_;

        const Snapshot before = bench.snapshot();
        bench.set_phase(Phase::kMeasure);
        const std::size_t opened = bench.open(count_, [this](Worker& w, std::size_t) {
            return std::make_unique<IdleConnection>(w, hello_);
        });
        const Snapshot connected = bench.snapshot();
        Bench::fill_window(report, before, connected);
        report.figures["opened"] = opened;

        const double hold_s = hold(bench.options());
        report.figures["hold_s"] = hold_s;
        if (opened > 0) {
            // Ends early only when every connection has gone: there is nothing left to hold.
            bench.wait(hold_s, "hold", [&bench] { return bench.totals().open() == 0; });
        }
        const Snapshot held = bench.snapshot();
        report.figures["open_at_end"] = held.totals.open();
        report.figures["server_messages"] = held.totals.custom[kMessages];
        if (before.server && connected.server) {
            const auto rss_before = static_cast<double>(before.server->resident_bytes);
            const auto rss_after = static_cast<double>(connected.server->resident_bytes);
            report.figures["server_rss_before_bytes"] = before.server->resident_bytes;
            report.figures["server_rss_after_connect_bytes"] = connected.server->resident_bytes;
            if (held.server) {
                report.figures["server_rss_after_hold_bytes"] = held.server->resident_bytes;
                report.figures["server_cpu_hold_s"] =
                    std::round((held.server->cpu_seconds - connected.server->cpu_seconds) * 1000) /
                    1000;
            }
            if (opened > 0) {
                report.figures["server_rss_bytes_per_connection"] =
                    std::round((rss_after - rss_before) / static_cast<double>(opened));
            }
            if (report.server_cpu_s && *report.server_cpu_s > 0) {
                report.figures["handshakes_per_server_cpu_s"] =
                    std::round(static_cast<double>(opened) / *report.server_cpu_s);
            }
        }
        if (opened < count_) {
            bench.note(fmt::format("{} of {} connections opened", opened, count_));
        }
    }

private:
    double hold(const CommonOptions& options) const {
        return hold_s_ >= 0 ? hold_s_ : options.duration_s;
    }

    std::size_t count_ = 1000;
    double hold_s_ = -1;
    std::string hello_;
};

const RegisterScenario kRegistered{
    {"connections",
     "Open --count idle WebSocket connections, hold them --hold seconds, report the server's "
     "memory per connection.",
     [] { return std::make_unique<ConnectionsScenario>(); }}};

}  // namespace

}  // namespace hearth::bench
