#pragma once

// A client thread of the load generator: one io_context, its connections, its counters and its
// latency histogram. Nothing here is shared between threads except the counters, which only the
// worker writes and the main thread reads for progress lines.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bench/connection.hpp"
#include "bench/histogram.hpp"

namespace hearth::bench {

/// What the whole run is doing; workers read it (relaxed) to decide whether to keep sending.
enum class Phase : int {
    kSetup,    // connecting, subscribing: nothing measured yet
    kMeasure,  // sending and counting
    kDrain,    // no new sends; what is in flight may still arrive
    kDone,     // closing
};

/// Settings and state shared read-only (but for `phase`) by every worker.
struct RunShared {
    Target target;
    std::string extra_headers;  // upgrade header lines, each ending in "\r\n"
    std::chrono::milliseconds handshake_timeout{10'000};
    std::chrono::milliseconds close_timeout{2'000};
    bool compression = false;  // offer permessage-deflate (--compression)
    std::atomic<Phase> phase{Phase::kSetup};
};

/// A counter written by one thread and read by others: a relaxed load and store instead of a
/// locked read-modify-write, since there is a single writer.
class Count {
public:
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// One worker's figures. Written by the worker thread only; on its own cache lines.
struct alignas(64) Counters {
    Count sent;        // messages sent (publishes, echo requests)
    Count delivered;   // messages received that count (echo replies, fan-out deliveries)
    Count errors;      // failed handshakes, unexpected closes, error replies, bad payloads
    Count opened;      // upgrades that succeeded
    Count failed;      // connections that never opened
    Count closed;      // connections that were open and ended
    Count negotiated;  // connections that negotiated permessage-deflate
    Count inflated;    // compressed messages received (and inflated)
    Count deflated;    // messages sent compressed
    std::array<Count, 8> custom;  // a scenario's own counters (see its file)
};

/// Runs on: its own thread (io_context with concurrency hint 1). Created and destroyed by the
/// main thread; between start() and stop() only the worker thread touches anything but the
/// counters.
class Worker {
public:
    static constexpr std::size_t kReadBufferBytes = 64 * 1024;
    static constexpr std::size_t kMaxCloseReasons = 32;
    static constexpr std::size_t kMaxReasonBytes = 100;

    Worker(std::size_t index, RunShared& shared);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    void start();  // the thread
    void stop();   // stops the io_context and joins; idempotent

    std::size_t index() const noexcept { return index_; }
    asio::io_context& io() noexcept { return io_; }
    const RunShared& shared() const noexcept { return shared_; }
    Phase phase() const noexcept { return shared_.phase.load(std::memory_order_relaxed); }
    bool measuring() const noexcept { return phase() == Phase::kMeasure; }

    Counters& counters() noexcept { return counters_; }
    const Counters& counters() const noexcept { return counters_; }
    LatencyHistogram& histogram() noexcept { return histogram_; }
    /// Counts why a connection failed or ended ("closed by server: 1008 slow consumer"); at most
    /// kMaxCloseReasons distinct texts of at most kMaxReasonBytes, the rest as "other".
    void count_reason(std::string_view reason);
    const std::map<std::string, std::uint64_t, std::less<>>& reasons() const { return reasons_; }

    /// Worker thread only. Shared by the worker's plain connections: a read fills it and the
    /// bytes are parsed at once.
    std::uint8_t* read_buffer() noexcept { return read_buffer_.get(); }
    /// Worker thread only: the zlib streams of the worker's compressed connections, and the
    /// buffers a received message is inflated into (valid during on_message) and an outgoing
    /// one deflated into (before it is framed).
    MessageDeflate& deflate() noexcept { return deflate_; }
    std::string& inflate_buffer() noexcept { return inflate_buffer_; }
    std::string& deflate_buffer() noexcept { return deflate_buffer_; }
    std::uint64_t random() noexcept;

    // ---- connections (worker thread only) ---------------------------------------------------
    /// Adds a connection to open later, from `source` when set.
    void add(std::unique_ptr<Connection> connection, std::optional<asio::ip::address> source);
    /// Starts handshakes, at most `max_in_progress` at once, until every added connection started.
    void start_connecting(std::size_t max_in_progress);
    /// A connection's handshake ended (opened or failed): the next one may start.
    void handshake_done();
    /// Starts no more handshakes (the run is ending).
    void stop_connecting();
    /// Checks `connection`'s deadline from now on (handshake, closing); see Connection::watch.
    void watch(Connection* connection);
    std::vector<std::unique_ptr<Connection>>& connections() noexcept { return connections_; }

    /// Calls `tick` every `interval` until it returns false or stop_ticker(). Worker thread only.
    void start_ticker(std::chrono::microseconds interval, std::function<bool()> tick);
    void stop_ticker();

private:
    void start_next();
    void arm_sweep();
    void arm_ticker();

    std::size_t index_;
    RunShared& shared_;
    // Declared first so that it is destroyed last: sockets and timers need it while they go.
    asio::io_context io_{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::thread thread_;

    Counters counters_;
    LatencyHistogram histogram_;
    std::map<std::string, std::uint64_t, std::less<>> reasons_;
    std::unique_ptr<std::uint8_t[]> read_buffer_;
    MessageDeflate deflate_;
    std::string inflate_buffer_;
    std::string deflate_buffer_;
    std::uint64_t rng_;

    asio::steady_timer sweep_;
    bool sweep_armed_ = false;
    std::vector<Connection*> watched_;

    asio::steady_timer ticker_;
    std::chrono::microseconds tick_interval_{};
    Clock::time_point next_tick_{};
    std::function<bool()> tick_;

    std::vector<std::unique_ptr<Connection>> connections_;
    std::vector<std::optional<asio::ip::address>> sources_;
    std::size_t next_start_ = 0;
    std::size_t in_progress_ = 0;
    std::size_t max_in_progress_ = 0;
};

}  // namespace hearth::bench
