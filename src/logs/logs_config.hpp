#pragma once

// The `[logs]` config section: storage and retention of log entries, the bounds of the live
// stream's pending buffer, and who may listen to the server's own lines (docs/logs.md).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "logs/log_stream.hpp"

namespace hearth::logs {

struct LogsConfig {
    static constexpr std::string_view kName = "logs";
    static constexpr std::string_view kDescription =
        "Log entries posted to /logs/add and the server's own lines: the live stream's buffer, "
        "storage in the store and its retention, and who may listen to the server's lines.";

    bool enabled = true;
    bool store = true;                  // keep entries for GET /api/v1/logs
    std::int64_t retention_days = 7;    // 0: no age limit (the other bounds still apply)
    std::int64_t max_rows = 1'000'000;  // the oldest go first
    std::int64_t retention_max_bytes = std::int64_t{256} << 20;  // the oldest go first
    std::int64_t max_pending_per_room = 10'000;
    std::int64_t max_pending_rooms = 1'000;
    std::int64_t max_pending_bytes = 64 << 20;
    bool public_server_lines = false;          // the original streams them to anyone
    std::vector<std::string> allowed_origins;  // besides the request's own Host
    std::int64_t add_bytes_per_s = 64 * 1024;  // per client address; 0: no limit
    std::int64_t add_burst_bytes = 1 << 20;    // at least one largest body (kMaxAddBodyBytes)
    std::int64_t add_max_addresses = 100'000;  // past it the least recently used is forgotten

    template <class V>
    void visit(V& v) {
        v("enabled", enabled,
          {.help = "Serve /logs/add, /logs/listen and /logs.html (on the HTTP API listener and, "
                   "as the original does, on HunterPie's) and GET /api/v1/logs."});
        v("store", store,
          {.help = "Keep log entries in the store, for GET /api/v1/logs; false: live stream only.",
           .restart = true});
        v("retention_days", retention_days,
          {.help = "Stored entries older than this many days are deleted; 0 keeps them whatever "
                   "their age (max_rows and retention_max_bytes still apply).",
           .min = 0,
           .max = 36'500});
        v("max_rows", max_rows,
          {.help = "Most stored entries; past it the oldest are deleted.",
           .min = 1,
           .max = std::int64_t{1} << 40});
        v("retention_max_bytes", retention_max_bytes,
          {.help = "Most bytes of stored entries (their JSON text, as streamed); past it the "
                   "oldest are deleted. The database file is larger by its indexes and overhead.",
           .min = 1024,
           .max = std::int64_t{1} << 50});
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
        v("public_server_lines", public_server_lines,
          {.help = "Stream the server's own log lines to every /logs/listen client (and so to "
                   "/logs.html) without a token, as the HunterPie original does; false: only to "
                   "listeners with an operator token. Posted entries are public either way."});
        v("allowed_origins", allowed_origins,
          {.help = "Browser origins (\"https://host[:port]\") that may open /logs/listen with an "
                   "operator token besides the server's own (the request's Host), e.g. behind a "
                   "proxy that rewrites Host."});
        v("add_bytes_per_s", add_bytes_per_s,
          {.help = "POST /logs/add per client address (IPv6 by /64): bytes of bodies per second, "
                   "each request counting at least 1024; past it 429 with Retry-After. 0: no "
                   "limit.",
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("add_burst_bytes", add_burst_bytes,
          {.help = "POST /logs/add per client address: bytes that may be posted at once after a "
                   "quiet time (the token bucket's size); at least the largest body, 102400.",
           .min = 102'400,
           .max = std::int64_t{1} << 40});
        v("add_max_addresses", add_max_addresses,
          {.help = "Client addresses the /logs/add rate limit tracks; past it the least recently "
                   "seen is forgotten (and starts again with a full bucket).",
           .min = 1,
           .max = 10'000'000});
    }
    /// Every allowed origin is scheme://authority: no path, no wildcard.
    void validate(core::ConfigErrors& errors) const {
        core::check_origins("logs.allowed_origins", allowed_origins, errors);
    }
    bool operator==(const LogsConfig&) const = default;

    LogStreamLimits stream_limits() const {
        LogStreamLimits l;
        l.max_pending_per_room = static_cast<std::size_t>(max_pending_per_room);
        l.max_pending_rooms = static_cast<std::size_t>(max_pending_rooms);
        l.max_pending_bytes = static_cast<std::size_t>(max_pending_bytes);
        return l;
    }
    LogAccess access() const {
        return LogAccess{
            .public_server_lines = public_server_lines,
            .allowed_origins = allowed_origins,
            .add_rate = AddRate{.bytes_per_s = static_cast<std::uint64_t>(add_bytes_per_s),
                                .burst_bytes = static_cast<std::uint64_t>(add_burst_bytes),
                                .max_addresses = static_cast<std::size_t>(add_max_addresses)}};
    }
    LogRetention retention() const {
        return LogRetention{.max_age = std::chrono::days(retention_days),
                            .max_rows = static_cast<std::uint64_t>(max_rows),
                            .max_bytes = static_cast<std::uint64_t>(retention_max_bytes)};
    }
};

}  // namespace hearth::logs
