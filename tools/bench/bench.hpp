#pragma once

// The harness every scenario runs in: worker threads, bounded connection opening spread over
// source addresses, waits with deadlines and progress lines, the server's /proc figures, and the
// closing of everything at the end.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/scenario.hpp"
#include "bench/worker.hpp"
#include "core/metrics.hpp"

namespace hearth::bench {

/// Sums of the workers' counters.
struct Totals {
    std::uint64_t sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t errors = 0;
    std::uint64_t opened = 0;
    std::uint64_t failed = 0;
    std::uint64_t closed = 0;
    std::uint64_t negotiated = 0;  // permessage-deflate (--compression)
    std::uint64_t inflated = 0;
    std::uint64_t deflated = 0;
    std::array<std::uint64_t, 8> custom{};
    std::uint64_t open() const noexcept { return opened - closed; }
};

/// A point of the run: when, the counters, the server's process figures.
struct Snapshot {
    Clock::time_point at;
    Totals totals;
    std::optional<core::ProcessStats> server;
    double client_cpu_s = 0;  // this process's CPU time
};

/// Runs on: the main thread. Owns the workers; destroying it stops them.
class Bench {
public:
    Bench(std::string scenario, const CommonOptions& options, Target target,
          std::size_t connections);
    ~Bench();
    Bench(const Bench&) = delete;
    Bench& operator=(const Bench&) = delete;

    const CommonOptions& options() const noexcept { return options_; }
    const Target& target() const noexcept { return shared_.target; }
    std::size_t worker_count() const noexcept { return workers_.size(); }
    Worker& worker(std::size_t i) { return *workers_[i]; }
    const Worker& worker(std::size_t i) const { return *workers_[i]; }

    /// Main thread. Entering kDrain waits until every worker has seen it (see bench.cpp).
    void set_phase(Phase phase);
    Phase phase() const { return shared_.phase.load(std::memory_order_relaxed); }

    /// `{"type":"hello","token":...}` for the native protocol; empty without --token.
    std::string hello_message() const;

    using Factory = std::function<std::unique_ptr<Connection>(Worker&, std::size_t index)>;
    /// Creates `count` connections with `factory` (called on the worker threads: connection i on
    /// worker i % threads, from source address i % K) and opens them, at most --concurrency
    /// handshakes at once. Waits until every one opened or failed, or --connect-timeout; returns
    /// how many opened. Call once per run.
    std::size_t open(std::size_t count, const Factory& factory);

    /// Runs `fn` on every worker thread; waits until all ran (at most 10 s). False on timeout.
    bool on_workers(const std::function<void(Worker&)>& fn);
    /// Runs `fn` for every connection, each on its worker thread. `C` is the scenario's
    /// connection type: every connection of a run comes from its factory.
    template <class C>
    bool for_each(const std::function<void(C&)>& fn) {
        return on_workers([&fn](Worker& w) {
            for (auto& c : w.connections()) {
                fn(static_cast<C&>(*c));
            }
        });
    }

    /// Waits up to `seconds` for `done` (checked every 10 ms; none: wait the whole time),
    /// printing a progress line about once a second unless --json. True when `done` held; false
    /// at the deadline or, when `interruptible`, on SIGINT/SIGTERM.
    bool wait(double seconds, std::string_view label, const std::function<bool()>& done = {},
              bool interruptible = true);

    Totals totals() const;
    /// Notes once when --server-pid is set but the process is gone.
    Snapshot snapshot();
    /// The server's figures (--server-pid); nullopt without it or when the process is gone.
    std::optional<core::ProcessStats> server() const;
    /// Fills the report's window and server CPU from two snapshots.
    static void fill_window(Report& report, const Snapshot& begin, const Snapshot& end);

    /// Stops new handshakes, closes every connection (closing handshake) for up to `seconds`,
    /// then stops the workers. Idempotent.
    void finish(double seconds);
    /// After finish(): the merged latency histogram and close reasons.
    LatencyHistogram histogram() const;
    std::map<std::string, std::uint64_t> reasons() const;

    /// A remark for the report ("notes") and, unless --json, standard error.
    void note(const std::string& text);
    const std::vector<std::string>& notes() const noexcept { return notes_; }

    /// SIGINT or SIGTERM arrived: waits end early and the run reports what it has.
    static bool interrupted() noexcept;
    static void install_signal_handlers();

private:
    void progress_line(std::string_view label, double elapsed_s, const Totals& now);

    std::string scenario_;
    CommonOptions options_;
    RunShared shared_;
    unsigned source_count_ = 0;  // 0: no bind, the kernel picks the source address
    std::vector<std::unique_ptr<Worker>> workers_;
    bool finished_ = false;
    bool server_gone_noted_ = false;
    std::vector<std::string> notes_;
    Clock::time_point started_;
    Clock::time_point last_progress_;
    std::uint64_t last_progress_delivered_ = 0;
};

}  // namespace hearth::bench
