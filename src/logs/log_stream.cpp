#include "logs/log_stream.hpp"
#include <algorithm>
#include <cctype>
#include <ctime>
#include <limits>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>

#include "core/metrics.hpp"

namespace hearth::logs {

namespace json = boost::json;

namespace {

// The logger of this subsystem. Its lines are not fed back into the stream (see on_log_line), so
// that a line about the stream can never cause another one.
constexpr std::string_view kLoggerName = "logs";

// Retention runs at most this often while entries arrive (so max_rows may be passed by up to a
// second of entries), and at least this often when none do (so that age still applies).
constexpr auto kPruneWhileBusy = std::chrono::seconds(1);
constexpr auto kPruneWhileIdle = std::chrono::seconds(60);
// Rows one prune may delete: a bigger delete would hold the store's writer for long. A prune that
// deletes this many runs again at the next batch tick.
constexpr std::uint64_t kPruneBudget = 10'000;

std::int64_t ms_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

}  // namespace

bool claims_server_user(std::string_view user) {
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!user.empty() && blank(user.front())) {
        user.remove_prefix(1);
    }
    while (!user.empty() && blank(user.back())) {
        user.remove_suffix(1);
    }
    return user.size() == kServerUser.size() &&
           std::equal(user.begin(), user.end(), kServerUser.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           });
}

std::string format_server_text(std::chrono::system_clock::time_point time, std::string_view level,
                               std::string_view msg) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(time);
    std::tm local{};
    localtime_r(&secs, &local);
    const auto ms = ms_since_epoch(time) % 1000;
    char buf[16];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d:%03d", local.tm_hour, local.tm_min, local.tm_sec,
                  static_cast<int>(ms < 0 ? ms + 1000 : ms));
    std::string out(buf);
    out += " [";
    out += level;
    out += "] ";
    out += msg;
    return out;
}

LogStream::LogStream(core::MetricsRegistry& metrics, LogStreamLimits limits, store::Logs* storage,
                     LogRetention retention, LogAccess access)
    : limits_(limits),
      storage_(storage),
      entries_(metrics.counter("hearth_logs_entries_total",
                               "Log entries accepted into the live stream (posted and the "
                               "server's own lines).")),
      dropped_(metrics.counter("hearth_logs_dropped_total",
                               "Log entries dropped before being sent because a room's pending "
                               "buffer, or the number of pending rooms, was at its bound.")),
      stored_(metrics.counter("hearth_logs_stored_total", "Log entries written to the store.")),
      store_failed_(metrics.counter(
          "hearth_logs_store_failed_total",
          "Log entries the store refused (its queue was full) or failed to write; they were "
          "streamed live but are not stored.")),
      pruned_(metrics.counter(
          "hearth_logs_pruned_total",
          "Stored log entries deleted by retention (age, max_rows or retention_max_bytes).")),
      renamed_(metrics.counter("hearth_logs_user_renamed_total",
                               "Posted log entries whose user claimed the server's own name "
                               "(\"server\"); they were renamed \"<user> (posted)\".")),
      add_evicted_(metrics.counter(
          "hearth_logs_add_addresses_evicted_total",
          "Client addresses forgotten by the /logs/add rate limit because add_max_addresses "
          "were tracked (the least recently used first).")),
      add_throttle_(access.add_rate),
      retention_(retention),
      access_(std::move(access)) {}

void LogStream::set_retention(LogRetention retention) {
    std::lock_guard lock(mutex_);
    retention_ = retention;
}

void LogStream::set_access(LogAccess access) {
    add_throttle_.set_rate(access.add_rate);
    std::lock_guard lock(mutex_);
    access_ = std::move(access);
}

std::optional<std::chrono::seconds> LogStream::admit_add(std::string_view peer,
                                                         std::uint64_t bytes) {
    bool evicted = false;
    auto wait = add_throttle_.try_take(peer, bytes, AddThrottle::Clock::now(), &evicted);
    if (evicted) {
        add_evicted_.inc();
    }
    return wait;
}

LogAccess LogStream::access() const {
    std::lock_guard lock(mutex_);
    return access_;
}

LogStream::~LogStream() {
    // Explicitly first: once these return, on_log_line and flush are not running and never run
    // again.
    subscription_ = {};
    batches_.cancel();
}

void LogStream::start(const core::ShardSet& shards) {
    // `this`: the destructor cancels the timer, which guarantees flush is no longer running.
    batches_ = shards.every(0, limits_.batch_interval, [this] { flush(); });
    // on_log_line captures `this`: subscription_ is destroyed before anything else (see the
    // destructor), which guarantees the callback is no longer running.
    subscription_ =
        util::log_ring().subscribe([this](const util::LogRecord& record) { on_log_line(record); });
}

boost::system::result<void, std::string> LogStream::ingest(json::object entry) {
    std::string room;
    if (auto* r = entry.if_contains("room")) {
        if (r->is_string()) {
            room = std::string(r->get_string());
        } else if (r->is_null()) {
            *r = "";
        } else {
            return std::string("\"room\" must be a string");
        }
    } else {
        entry["room"] = "";
    }
    // Only the server's own lines say "user":"server": listeners, the log page and the query
    // API's ?user=server tell them apart by it.
    if (auto* user = entry.if_contains("user");
        user && user->is_string() && claims_server_user(user->get_string())) {
        std::string renamed(user->get_string());
        renamed += " (posted)";
        *user = renamed;
        renamed_.inc();
    }
    std::lock_guard lock(mutex_);
    ingest_locked(std::move(entry), room, false);
    return {};
}

void LogStream::ingest_locked(json::object entry, const std::string& room, bool server) {
    // Assigned under the lock, so that seqNumber grows in the order entries enter their rooms.
    Pending p;
    p.server = server;
    p.server_time_ms = ms_since_epoch(std::chrono::system_clock::now());
    p.seq = next_seq_++;
    entry["serverTime"] = p.server_time_ms;
    entry["seqNumber"] = p.seq;
    if (const auto* user = entry.if_contains("user"); user && user->is_string()) {
        p.user = std::string(user->get_string());
    }
    if (const auto* level = entry.if_contains("level"); level && level->is_string()) {
        p.level = upper(level->get_string());
    }
    entries_.inc();
    auto it = pending_.find(room);
    if (it == pending_.end()) {
        if (pending_.size() >= limits_.max_pending_rooms) {
            dropped_.inc();
            return;
        }
        it = pending_.emplace(room, std::deque<Pending>{}).first;
    }
    auto& queue = it->second;
    p.text = json::serialize(entry);
    const std::size_t size = p.bytes();
    while (!queue.empty() && (queue.size() >= limits_.max_pending_per_room ||
                              pending_bytes_ + size > limits_.max_pending_bytes)) {
        pending_bytes_ -= queue.front().bytes();
        queue.pop_front();
        dropped_.inc();
    }
    if (pending_bytes_ + size > limits_.max_pending_bytes) {
        dropped_.inc();  // other rooms hold the bytes: the new entry goes
        if (queue.empty()) {
            pending_.erase(it);
        }
        return;
    }
    pending_bytes_ += size;
    queue.push_back(std::move(p));
}

void LogStream::on_log_line(const util::LogRecord& record) {
    if (record.logger == kLoggerName) {
        return;
    }
    // Runs on the logging thread: a short critical section, no I/O and no logging.
    const std::string level = upper(record.level);
    json::object entry;
    entry["timestamp"] = ms_since_epoch(record.time);
    entry["level"] = level;
    entry["msg"] = record.message;
    entry["text"] = format_server_text(record.time, level, record.message);
    entry["user"] = kServerUser;
    entry["room"] = "";
    std::lock_guard lock(mutex_);
    ingest_locked(std::move(entry), std::string(), true);
}

ListenerId LogStream::add_listener(ConnectionHandle connection, std::optional<std::string> room,
                                   Audience audience) {
    std::lock_guard lock(mutex_);
    const auto id = next_listener_++;
    listeners_.emplace(id, Listener{std::move(connection), std::move(room), audience});
    return ListenerId{id};
}

void LogStream::remove_listener(ListenerId id) {
    std::lock_guard lock(mutex_);
    listeners_.erase(static_cast<std::uint64_t>(id));
}

void LogStream::flush() {
    std::map<std::string, std::deque<Pending>> batch;
    std::vector<Listener> listeners;
    bool public_server_lines = false;
    {
        std::lock_guard lock(mutex_);
        batch.swap(pending_);
        pending_bytes_ = 0;
        public_server_lines = access_.public_server_lines;
        if (!batch.empty()) {
            listeners.reserve(listeners_.size());
            for (const auto& [id, l] : listeners_) {
                listeners.push_back(l);
            }
        }
    }
    if (!batch.empty()) {
        send_batch(batch, listeners, public_server_lines);
        store_batch(batch);
    }
    if (storage_ != nullptr) {
        // Entries stored within a second of the last prune are pruned at the first tick a second
        // after it, batch or not: waiting for the next batch could leave them over the bounds for
        // the idle interval.
        stored_since_prune_ = stored_since_prune_ || !batch.empty();
        const auto now = std::chrono::steady_clock::now();
        const auto since = now - last_prune_;
        if ((stored_since_prune_ && since >= kPruneWhileBusy) || since >= kPruneWhileIdle ||
            prune_again_.exchange(false)) {
            last_prune_ = now;
            stored_since_prune_ = false;
            prune();
        }
    }
}

void LogStream::send_batch(const std::map<std::string, std::deque<Pending>>& batch,
                           const std::vector<Listener>& listeners, bool public_server_lines) {
    if (listeners.empty()) {
        return;
    }
    // Per room, one immutable payload of every entry and, when the room holds server lines (only
    // the "" room does), one of its posted entries alone; each is shared by every listener that
    // receives it. `posted` is null when the room holds nothing but server lines.
    struct Frames {
        SharedPayload all;
        SharedPayload posted;
    };
    const auto encode = [](const std::deque<Pending>& entries, bool with_server) {
        std::string text = "[";
        bool first = true;
        for (const auto& e : entries) {
            if (e.server && !with_server) {
                continue;
            }
            if (!first) {
                text += ',';
            }
            first = false;
            text += e.text;
        }
        text += ']';
        return first ? SharedPayload() : make_text(std::move(text));
    };
    std::map<std::string, Frames> frames;
    for (const auto& [room, entries] : batch) {
        Frames f;
        f.all = encode(entries, true);
        const bool has_server =
            std::any_of(entries.begin(), entries.end(), [](const Pending& e) { return e.server; });
        f.posted = has_server ? encode(entries, false) : f.all;
        frames.emplace(room, std::move(f));
    }
    const auto common = frames.find("");
    for (const auto& l : listeners) {
        auto connection = l.connection.lock();
        if (!connection) {
            continue;
        }
        const bool server_lines = l.audience == Audience::kOperator || public_server_lines;
        // A full outbox applies the route's overflow policy; the result needs no handling here.
        const auto send = [&](const Frames& f) {
            if (const auto& frame = server_lines ? f.all : f.posted) {
                (void)connection->send(frame);
            }
        };
        if (!l.room) {
            for (const auto& [room, f] : frames) {
                send(f);
            }
            continue;
        }
        if (common != frames.end()) {
            send(common->second);
        }
        if (!l.room->empty()) {
            if (auto it = frames.find(*l.room); it != frames.end()) {
                send(it->second);
            }
        }
    }
}

void LogStream::store_batch(const std::map<std::string, std::deque<Pending>>& batch) {
    if (storage_ == nullptr) {
        return;
    }
    std::vector<store::LogRow> rows;
    for (const auto& [room, entries] : batch) {
        for (const auto& e : entries) {
            rows.push_back(store::LogRow{.id = e.seq,  // sorted on below, assigned by the store
                                         .server_time_ms = e.server_time_ms,
                                         .room = room,
                                         .user = e.user,
                                         .level = e.level,
                                         .body = e.text});
        }
    }
    // Stored in seqNumber order, so that the store's ids (the query order) follow it.
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    const auto n = rows.size();
    // The completion runs on a store thread, possibly after the stream is gone: it touches only
    // the counters, which belong to the metrics registry (it outlives the store).
    storage_->append(std::move(rows), [n, &stored = stored_,
                                       &failed = store_failed_](Result<void> r) {
        if (r) {
            stored.inc(n);
            return;
        }
        failed.inc(n);
        // The store logged the cause (once per run of failures); this says
        // what it cost.
        util::logger(kLoggerName)->debug("{} log entries not stored: {}", n, r.error().message());
    });
}

void LogStream::prune() {
    LogRetention r;
    {
        std::lock_guard lock(mutex_);
        r = retention_;
    }
    const std::int64_t older_than =
        r.max_age.count() == 0
            ? std::numeric_limits<std::int64_t>::min()
            : ms_since_epoch(
                  std::chrono::system_clock::now() -
                  std::chrono::duration_cast<std::chrono::system_clock::duration>(r.max_age));
    storage_->prune(older_than, r.max_rows, r.max_bytes, kPruneBudget,
                    [&pruned = pruned_, weak = weak_from_this()](Result<std::uint64_t> n) {
                        if (!n) {
                            return;  // the store logged it; the next prune tries again
                        }
                        pruned.inc(*n);
                        if (*n >= kPruneBudget) {
                            if (auto self = weak.lock()) {
                                self->prune_again_.store(true);
                            }
                        }
                    });
}

}  // namespace hearth::logs
