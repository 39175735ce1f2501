#pragma once

// The Moonshare front-end's metrics (docs/protocol/moonshare.md, "Metrics"), the memory it holds
// for files, and the one budget its refusal log lines share. Thread-safe: metrics are atomic, the
// line budget has its own lock (util::LineThrottle).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/metrics.hpp"
#include "util/line_throttle.hpp"

namespace hearth::frontends::moonshare {

class Stats {
public:
    /// Registers every metric, each refusal reason at 0; `instances` player gauges.
    Stats(core::MetricsRegistry& metrics, std::size_t instances);

    /// File bytes held in memory (upload chunks waiting for disk, relay chunks read from it).
    void hold(std::size_t n);
    void unhold(std::size_t n);

    /// hearth_moonshare_refused_total{reason}.
    core::Counter& refusal_counter(std::string_view reason);
    void refused(std::string_view reason) { refusal_counter(reason).inc(); }

    /// Whether a line about a refusal a client triggered may be written: clients trigger them at
    /// will (from as many addresses as they hold), so they share one budget (util::LineThrottle)
    /// and the counters keep the full count. Empty: leave the line out; otherwise a suffix for it
    /// that says how many were left out before.
    std::optional<std::string> refusal_line();

private:
    core::MetricsRegistry& metrics_;
    util::LineThrottle refusal_lines_{util::TokenRate{.per_s = 20, .depth = 100}};

public:
    core::Counter& tokens_issued;
    core::Counter& tokens_rate_limited;
    core::Counter& tokens_held;
    core::Counter& tokens_full;
    core::Counter& tokens_address_full;
    core::Counter& bindings_evicted_address;
    core::Counter& bindings_evicted_full;
    core::Counter& paced_evicted;
    core::Counter& uploads_too_slow;
    core::Counter& downloads_too_slow;
    core::Counter& files_relayed;
    core::Counter& files_stored;
    core::Counter& files_delivered;
    core::Counter& files_failed;
    core::Counter& files_expired;
    core::Counter& wrong_subject;  // a valid guest token presented for another user id
    core::Counter& ignored;
    core::Gauge& buffered;
    core::Gauge& buffered_max;
    core::Gauge& uploads;
    core::Gauge& stored_bytes;
    core::Gauge& bindings_count;
    core::Gauge& bindings_bytes;
    std::vector<core::Gauge*> online;  // authenticated players, by instance
};

}  // namespace hearth::frontends::moonshare
