#pragma once

// Logging: spdlog with a named logger per subsystem ("core", "net", "http", "ws", ...). Lines go
// to standard error (text or JSON), optionally to a rotating file, and to an in-memory ring that
// the live log viewer subscribes to. Logging is asynchronous: a full queue drops the oldest line
// rather than blocking an io thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>

namespace hearth::util {

enum class LogFormat : std::uint8_t { kText, kJson };

struct LogSettings {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off
    LogFormat format = LogFormat::kText;
    std::string file;                       // empty: no file
    std::size_t file_max_bytes = 64 << 20;  // rotation size
    std::size_t file_count = 5;             // rotated files kept
    std::size_t ring_lines = 2000;          // lines kept in memory
    std::size_t queue_lines = 8192;         // async queue; at its bound the oldest line is dropped
};

/// Sets up sinks and the async queue. Call once at startup, before any `logger()` call that should
/// use them (loggers created earlier are re-pointed). Safe to call again in tests: the previous
/// queue is drained first. Throws std::invalid_argument for an unknown level or a zero queue, and
/// spdlog::spdlog_ex when the file cannot be opened. Before the first call, lines go synchronously
/// to standard error as text, and to the ring. Any thread.
void init_logging(const LogSettings& settings);
/// Flushes and stops the async thread; call it before the process exits, or queued lines are lost.
/// Loggers stay usable (they then log synchronously to stderr, in the configured format, and to the
/// ring).
void shutdown_logging();
/// Applies a new level to every logger, and to loggers created later (config reload). Returns false
/// for an unknown level name. Any thread.
bool set_log_level(std::string_view level);

/// The named logger of a subsystem, created on first use with the shared sinks. Any thread; the
/// same name always returns the same logger, which stays valid across init and shutdown.
std::shared_ptr<spdlog::logger> logger(std::string_view subsystem);

/// Lines the async queue dropped because it was full, since the process started. Any thread.
std::uint64_t dropped_log_lines();

/// One log line as the ring keeps it.
struct LogRecord {
    std::uint64_t seq = 0;
    std::chrono::system_clock::time_point time;
    std::string level;   // "info", "warn", ...
    std::string logger;  // subsystem
    std::string message;
};

/// The in-memory ring of recent lines. Thread-safe. At its capacity the oldest line is dropped.
class LogRing {
public:
    using Subscriber = std::function<void(const LogRecord&)>;

    explicit LogRing(std::size_t capacity_lines);
    ~LogRing();
    LogRing(const LogRing&) = delete;
    LogRing& operator=(const LogRing&) = delete;

    /// Keeps at most `lines` (dropping the oldest now if needed); 0 keeps nothing, subscribers
    /// still see every line.
    void set_capacity(std::size_t lines);
    std::size_t capacity() const;

    /// Appends a line (seq assigned here) and hands it to every subscriber, on the calling thread.
    /// Called by the logging thread's ring sink; concurrent calls are delivered in seq order.
    void push(std::chrono::system_clock::time_point time, std::string level, std::string logger,
              std::string message);

    /// Up to `max` most recent lines with seq > `after_seq`, oldest first.
    std::vector<LogRecord> recent(std::size_t max, std::uint64_t after_seq = 0) const;

    /// `on_line` runs on the logging thread for every new line; it must be quick and must not log
    /// (post the work elsewhere). Unsubscribed when the returned handle is destroyed or assigned
    /// over: once that returns, `on_line` is not running and never runs again (it may itself drop
    /// its own handle). The handle may outlive the ring.
    class Subscription {
    public:
        Subscription() = default;
        Subscription(Subscription&&) noexcept = default;
        Subscription& operator=(Subscription&&) noexcept = default;
        ~Subscription();

    private:
        friend class LogRing;
        explicit Subscription(std::shared_ptr<void> token) : token_(std::move(token)) {}
        std::shared_ptr<void> token_;  // its deleter unsubscribes
    };
    [[nodiscard]] Subscription subscribe(Subscriber on_line);

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared with the subscriptions, which may outlive the ring
};

/// The process's ring, fed by every logger. Never destroyed, so the logging thread may still use it
/// during exit.
LogRing& log_ring();

}  // namespace hearth::util
