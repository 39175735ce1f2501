#pragma once

// The live part of the logs subsystem (docs/logs.md): entries posted by clients and the server's
// own log lines, stamped with serverTime and seqNumber, buffered per room and sent to WebSocket
// listeners in one batch per room every 100 ms; each batch is also handed to the store (when
// storage is on), which keeps entries within the retention bounds. The server's own lines go only
// to operator listeners unless they are public (`LogAccess`).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include <hearth/connection.hpp>
#include <hearth/store.hpp>

#include "core/shard_set.hpp"
#include "logs/add_throttle.hpp"
#include "util/log.hpp"

namespace hearth::core {
class Counter;
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::logs {

/// Bounds of the pending buffer (entries not yet sent). At a room's entry bound, or at the byte
/// bound, the oldest entries of the entry's own room are dropped (the new entry itself when its
/// room has nothing left to drop); a new room past the room bound has its entry dropped. Every
/// drop counts in hearth_logs_dropped_total.
struct LogStreamLimits {
    std::size_t max_pending_per_room = 10'000;
    std::size_t max_pending_rooms = 1'000;
    std::size_t max_pending_bytes = 64 << 20;  // serialized entries, all rooms together
    std::chrono::milliseconds batch_interval{100};
};

/// How long stored entries are kept: whichever bound is reached first deletes the oldest.
struct LogRetention {
    std::chrono::days max_age{7};  // zero: no age bound
    std::uint64_t max_rows = 1'000'000;
    std::uint64_t max_bytes = std::uint64_t{256} << 20;  // of the entries' JSON text
    bool operator==(const LogRetention&) const = default;
};

/// Who may receive the server's own lines, and which browser origins may open an operator stream
/// ([logs] public_server_lines and allowed_origins).
struct LogAccess {
    bool public_server_lines = false;          // every listener gets them, as in the original
    std::vector<std::string> allowed_origins;  // besides the request's own Host
    AddRate add_rate;                          // POST /logs/add per client address
    bool operator==(const LogAccess&) const = default;
};

/// The `user` of the server's own lines. A posted entry may not claim it: its `user` becomes
/// "<what it said> (posted)" (any ASCII case, surrounding blanks ignored).
inline constexpr std::string_view kServerUser = "server";
/// Whether a posted entry's `user` claims the server's name.
bool claims_server_user(std::string_view user);

/// Identifies a listener registered with `LogStream::add_listener`.
enum class ListenerId : std::uint64_t {};

/// Who a listener is: an operator (a valid operator token) receives the server's own lines; the
/// public receives them only while `LogAccess::public_server_lines` is on. Posted entries go to
/// both.
enum class Audience : std::uint8_t { kPublic, kOperator };

/// The log stream. Thread-safe: `ingest`, `add_listener` and `remove_listener` are called from io
/// threads (routes) and from the logging thread (the server's own lines, via the ring
/// subscription); every call holds one mutex briefly and never blocks otherwise. The batcher runs
/// on shard 0 (a timer of the shard set given to `start`). Owned by the logs module through a
/// shared_ptr; routes and handlers hold weak pointers. May be destroyed while the io threads run
/// (the module disabled): the destructor waits for a batch under way on shard 0, if any.
class LogStream : public std::enable_shared_from_this<LogStream> {
public:
    /// `storage`, when given, receives every batch and must outlive the stream; its writes are
    /// bounded by the store's queue: a batch the store refuses or fails is counted in
    /// hearth_logs_store_failed_total and not retried (the live stream has it already).
    LogStream(core::MetricsRegistry& metrics, LogStreamLimits limits = {},
              store::Logs* storage = nullptr, LogRetention retention = {}, LogAccess access = {});
    ~LogStream();
    LogStream(const LogStream&) = delete;
    LogStream& operator=(const LogStream&) = delete;

    /// Starts the batch timer on shard 0 of `shards` and subscribes to the server's log ring.
    /// Call once, on the control thread, before the io threads run or while they run.
    void start(const core::ShardSet& shards);

    /// Adds one client entry: keeps its members in their order, sets `room` to "" when absent or
    /// null, renames a `user` that claims the server's name (`claims_server_user`), and appends
    /// `serverTime` and `seqNumber`. Fails (nothing added) when `room` is neither a string nor
    /// null.
    [[nodiscard]] boost::system::result<void, std::string> ingest(boost::json::object entry);

    /// A listener receives every room's entries (`room` nullopt) or room R's and the "" room's;
    /// the server's own lines (room "") only when it is an operator or they are public.
    ListenerId add_listener(ConnectionHandle connection, std::optional<std::string> room,
                            Audience audience);
    void remove_listener(ListenerId id);

    /// Applies new retention bounds from the next prune on. Thread-safe.
    void set_retention(LogRetention retention);

    /// Takes one POST /logs/add of `bytes` from `peer` ("ip:port") out of its address's bucket
    /// (`LogAccess::add_rate`): nullopt when allowed, else the seconds to wait (Retry-After).
    /// Thread-safe.
    std::optional<std::chrono::seconds> admit_add(std::string_view peer, std::uint64_t bytes);

    /// Applies new access rules: `public_server_lines` from the next batch on, to listeners
    /// already connected too; `allowed_origins` to the next upgrades; `add_rate` to the next
    /// posts. Thread-safe.
    void set_access(LogAccess access);
    LogAccess access() const;

    /// Sends the pending entries now and stores them (the batcher's work; public for tests).
    void flush();

private:
    /// One entry waiting for the next batch: its JSON text and what storage indexes.
    struct Pending {
        std::string text;
        std::uint64_t seq = 0;
        std::int64_t server_time_ms = 0;
        std::string user;
        std::string level;
        bool server = false;  // one of the server's own lines
        std::size_t bytes() const noexcept { return text.size() + user.size() + level.size(); }
    };

    void ingest_locked(boost::json::object entry, const std::string& room, bool server);
    struct Listener {
        ConnectionHandle connection;
        std::optional<std::string> room;
        Audience audience = Audience::kPublic;
    };

    void send_batch(const std::map<std::string, std::deque<Pending>>& batch,
                    const std::vector<Listener>& listeners, bool public_server_lines);
    void store_batch(const std::map<std::string, std::deque<Pending>>& batch);
    void prune();
    void on_log_line(const util::LogRecord& record);

    LogStreamLimits limits_;
    store::Logs* storage_;
    core::Counter& entries_;
    core::Counter& dropped_;
    core::Counter& stored_;
    core::Counter& store_failed_;
    core::Counter& pruned_;
    core::Counter& renamed_;
    core::Counter& add_evicted_;
    AddThrottle add_throttle_;  // thread-safe on its own
    // Storage bookkeeping, touched only by the batcher (flush runs on one io thread) and by store
    // completions through the atomic.
    std::chrono::steady_clock::time_point last_prune_{};
    bool stored_since_prune_ = false;       // entries were stored after the last prune began
    std::atomic<bool> prune_again_{false};  // the last prune hit its budget: more to delete
    mutable std::mutex mutex_;              // guards everything below except timer_
    LogRetention retention_;
    LogAccess access_;
    std::uint64_t next_seq_ = 1;
    std::uint64_t next_listener_ = 1;
    std::map<std::string, std::deque<Pending>> pending_;  // room -> entries, oldest first
    std::size_t pending_bytes_ = 0;                       // sum of pending_'s Pending::bytes()
    std::map<std::uint64_t, Listener> listeners_;
    core::ShardTimer batches_;  // flush(), every batch_interval
    // Last: destroyed first, so that no log line arrives into a half-destroyed stream.
    util::LogRing::Subscription subscription_;
};

/// Formats a server log line's `text`: `HH:MM:SS:mmm [LEVEL] msg` in local time.
std::string format_server_text(std::chrono::system_clock::time_point time, std::string_view level,
                               std::string_view msg);

}  // namespace hearth::logs
