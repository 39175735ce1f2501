#pragma once

// The `[logs]` config section: storage and retention of log entries, and the bounds of the live
// stream's pending buffer (docs/logs.md).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "core/config.hpp"
#include "logs/log_stream.hpp"

namespace hearth::logs {

struct LogsConfig {
    static constexpr std::string_view kName = "logs";
    static constexpr std::string_view kDescription =
        "Log entries posted to /logs/add and the server's own lines: the live stream's buffer, "
        "storage in the store and its retention.";

    bool store = true;                  // keep entries for GET /api/v1/logs
    std::int64_t retention_days = 7;    // 0: no age limit (max_rows still applies)
    std::int64_t max_rows = 1'000'000;  // the oldest go first
    std::int64_t max_pending_per_room = 10'000;
    std::int64_t max_pending_rooms = 1'000;
    std::int64_t max_pending_bytes = 64 << 20;

    template <class V>
    void visit(V& v) {
        v("store", store,
          {.help = "Keep log entries in the store, for GET /api/v1/logs; false: live stream only.",
           .restart = true});
        v("retention_days", retention_days,
          {.help = "Stored entries older than this many days are deleted; 0 keeps them whatever "
                   "their age (max_rows still applies).",
           .min = 0,
           .max = 36'500});
        v("max_rows", max_rows,
          {.help = "Most stored entries; past it the oldest are deleted.",
           .min = 1,
           .max = std::int64_t{1} << 40});
        v("max_pending_per_room", max_pending_per_room,
          {.help = "Entries of one room waiting for the next 100 ms batch; past it the room's "
                   "oldest are dropped (counted in hearth_logs_dropped_total).",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("max_pending_rooms", max_pending_rooms,
          {.help = "Rooms with entries waiting for the next batch; an entry of one more room is "
                   "dropped.",
           .restart = true,
           .min = 1,
           .max = 1'000'000});
        v("max_pending_bytes", max_pending_bytes,
          {.help = "Bytes of entries waiting for the next batch, all rooms together; past it the "
                   "oldest of the entry's room are dropped.",
           .restart = true,
           .min = 1024,
           .max = std::int64_t{1} << 34});
    }
    bool operator==(const LogsConfig&) const = default;

    LogStreamLimits stream_limits() const {
        LogStreamLimits l;
        l.max_pending_per_room = static_cast<std::size_t>(max_pending_per_room);
        l.max_pending_rooms = static_cast<std::size_t>(max_pending_rooms);
        l.max_pending_bytes = static_cast<std::size_t>(max_pending_bytes);
        return l;
    }
    LogRetention retention() const {
        return LogRetention{.max_age = std::chrono::days(retention_days),
                            .max_rows = static_cast<std::uint64_t>(max_rows)};
    }
};

}  // namespace hearth::logs
