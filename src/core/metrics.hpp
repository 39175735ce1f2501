#pragma once

// Prometheus metrics. Written by hand because Debian 12 packages no Prometheus client for C++;
// the text exposition format (0.0.4) is small and stable. Metric objects live as long as the
// registry and never move: callers look them up once and keep the reference, so the hot path is
// one relaxed atomic add.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::core {

using Labels = std::vector<std::pair<std::string, std::string>>;

/// Monotonic count. Thread-safe.
class Counter {
public:
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. Thread-safe.
class Gauge {
public:
    void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void add(std::int64_t n) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    void sub(std::int64_t n) noexcept { value_.fetch_sub(n, std::memory_order_relaxed); }
    std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::int64_t> value_{0};
};

/// Cumulative histogram with fixed upper bounds. Thread-safe; `observe` is lock-free.
class Histogram {
public:
    /// Bounds must be finite and strictly increasing (std::invalid_argument otherwise); a trailing
    /// +Inf is implied and dropped if given.
    explicit Histogram(std::vector<double> upper_bounds);

    /// NaN is ignored: it would make the sum NaN for the life of the process.
    void observe(double value) noexcept;

    struct Snapshot {
        std::vector<double> upper_bounds;
        std::vector<std::uint64_t> cumulative_counts;  // one per bound, then +Inf
        double sum = 0;
        std::uint64_t count = 0;
    };
    /// The count is the total of the buckets, so it always equals the +Inf bucket even while other
    /// threads observe; the sum may lag or lead it by the observations in flight.
    Snapshot snapshot() const;

    const std::vector<double>& upper_bounds() const noexcept { return bounds_; }

    /// Bounds for latencies in seconds, 50 us to 10 s.
    static std::vector<double> latency_seconds_bounds();

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 buckets
    std::atomic<double> sum_{0};
};

/// Writes computed samples at scrape time (process statistics, gauges derived from state). Used
/// only on the scraping thread, during the collector call. Samples merge into the registry's
/// families by name; a sample whose name is registered with another type, whose name or label names
/// are invalid, or which repeats a series already written, is skipped.
class MetricsWriter {
public:
    virtual ~MetricsWriter() = default;
    virtual void gauge(std::string_view name, std::string_view help, double value,
                       const Labels& labels = {}) = 0;
    virtual void counter(std::string_view name, std::string_view help, double value,
                         const Labels& labels = {}) = 0;
};

/// All metrics of the process. Thread-safe. Registering the same name and labels twice returns the
/// same object (labels compare as a set; the help of the first registration is kept); the same name
/// with another type, or a histogram with other bounds, throws std::logic_error. Invalid metric or
/// label names, or a repeated label name, throw std::invalid_argument (a std::logic_error).
class MetricsRegistry {
public:
    MetricsRegistry();
    ~MetricsRegistry();

    Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
    Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
    Histogram& histogram(std::string_view name, std::string_view help,
                         std::vector<double> upper_bounds, const Labels& labels = {});

    /// `collect` runs on the scraping thread, once per render, without the registry's lock held. If
    /// it throws, its samples of that render are left out.
    void add_collector(std::function<void(MetricsWriter&)> collect);

    /// Prometheus text exposition format 0.0.4: families sorted by name, HELP and TYPE once each.
    std::string render() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Registers the standard process_* metrics (CPU seconds, resident memory, open fds, max fds,
/// start time), read from /proc at scrape time.
void register_process_metrics(MetricsRegistry& registry);

/// Process figures read from /proc/self (also used by the load generator's --server-pid). A figure
/// that cannot be read (no such process, no permission) stays 0; max_fds is UINT64_MAX when
/// unlimited.
struct ProcessStats {
    double cpu_seconds = 0;            // user + system
    std::uint64_t resident_bytes = 0;  // RSS
    std::uint64_t virtual_bytes = 0;
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;
    double start_time_seconds = 0;  // since the Unix epoch
};
ProcessStats read_process_stats(int pid = 0);  // 0: this process

}  // namespace hearth::core
