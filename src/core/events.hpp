#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::core {

/// A notable event for operators: a connection opened or closed, a failed handshake or login, an
/// operator action. Not a log line: structured, and kept for the operator API.
struct Event {
    std::uint64_t seq = 0;  // increasing from 1
    std::chrono::system_clock::time_point time;
    std::string kind;     // e.g. "connection.open", "handshake.failed", "config.reload"
    std::string subject;  // what it is about: a connection id, a listener, an account
    std::string detail;   // human-readable
};

/// The core's bounded ring of recent events. Thread-safe. At its capacity the oldest event is
/// dropped (and `dropped()` counts it).
class EventRing {
public:
    explicit EventRing(std::size_t capacity);

    void record(std::string kind, std::string subject, std::string detail);

    /// Up to `max` most recent events with seq > `after_seq`, oldest first.
    std::vector<Event> recent(std::size_t max, std::uint64_t after_seq = 0) const;

    std::size_t capacity() const;
    std::uint64_t dropped() const;

private:
    mutable std::mutex mutex_;
    std::size_t capacity_;
    std::deque<Event> events_;
    std::uint64_t next_seq_ = 1;
    std::uint64_t dropped_ = 0;
};

}  // namespace hearth::core
