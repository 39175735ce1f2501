#include "logs/log_stream.hpp"
#include <cctype>
#include <ctime>
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

LogStream::LogStream(core::MetricsRegistry& metrics, LogStreamLimits limits)
    : limits_(limits),
      entries_(metrics.counter("hearth_logs_entries_total",
                               "Log entries accepted into the live stream (posted and the "
                               "server's own lines).")),
      dropped_(metrics.counter("hearth_logs_dropped_total",
                               "Log entries dropped before being sent because a room's pending "
                               "buffer, or the number of pending rooms, was at its bound.")) {}

LogStream::~LogStream() {
    // Explicitly first: once this returns, on_log_line is not running and never runs again.
    subscription_ = {};
}

void LogStream::start(boost::asio::io_context& io) {
    timer_ = std::make_unique<boost::asio::steady_timer>(io);
    arm_timer();
    // on_log_line captures `this`: subscription_ is destroyed before anything else (see the
    // destructor), which guarantees the callback is no longer running.
    subscription_ =
        util::log_ring().subscribe([this](const util::LogRecord& record) { on_log_line(record); });
}

void LogStream::arm_timer() {
    timer_->expires_after(limits_.batch_interval);
    // A weak pointer: the stream may be gone when a cancelled wait completes during shutdown.
    timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) {
            return;
        }
        if (auto self = weak.lock()) {
            self->flush();
            self->arm_timer();
        }
    });
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
    std::lock_guard lock(mutex_);
    ingest_locked(std::move(entry), room);
    return {};
}

void LogStream::ingest_locked(json::object entry, const std::string& room) {
    // Assigned under the lock, so that seqNumber grows in the order entries enter their rooms.
    entry["serverTime"] = ms_since_epoch(std::chrono::system_clock::now());
    entry["seqNumber"] = next_seq_++;
    entries_.inc();
    auto it = pending_.find(room);
    if (it == pending_.end()) {
        if (pending_.size() >= limits_.max_pending_rooms) {
            dropped_.inc();
            return;
        }
        it = pending_.emplace(room, std::deque<std::string>{}).first;
    }
    auto& queue = it->second;
    std::string text = json::serialize(entry);
    while (!queue.empty() && (queue.size() >= limits_.max_pending_per_room ||
                              pending_bytes_ + text.size() > limits_.max_pending_bytes)) {
        pending_bytes_ -= queue.front().size();
        queue.pop_front();
        dropped_.inc();
    }
    if (pending_bytes_ + text.size() > limits_.max_pending_bytes) {
        dropped_.inc();  // other rooms hold the bytes: the new entry goes
        if (queue.empty()) {
            pending_.erase(it);
        }
        return;
    }
    pending_bytes_ += text.size();
    queue.push_back(std::move(text));
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
    entry["user"] = "server";
    entry["room"] = "";
    std::lock_guard lock(mutex_);
    ingest_locked(std::move(entry), std::string());
}

ListenerId LogStream::add_listener(ConnectionHandle connection, std::optional<std::string> room) {
    std::lock_guard lock(mutex_);
    const auto id = next_listener_++;
    listeners_.emplace(id, Listener{std::move(connection), std::move(room)});
    return ListenerId{id};
}

void LogStream::remove_listener(ListenerId id) {
    std::lock_guard lock(mutex_);
    listeners_.erase(static_cast<std::uint64_t>(id));
}

void LogStream::flush() {
    std::map<std::string, std::deque<std::string>> batch;
    std::vector<Listener> listeners;
    {
        std::lock_guard lock(mutex_);
        if (pending_.empty()) {
            return;
        }
        batch.swap(pending_);
        pending_bytes_ = 0;
        listeners.reserve(listeners_.size());
        for (const auto& [id, l] : listeners_) {
            listeners.push_back(l);
        }
    }
    if (listeners.empty()) {
        return;  // nobody listens: the entries are gone (storage is not done yet)
    }
    // One immutable payload per room, shared by every listener that receives it.
    std::map<std::string, SharedPayload> frames;
    for (auto& [room, entries] : batch) {
        std::string text = "[";
        for (std::size_t i = 0; i < entries.size(); ++i) {
            if (i != 0) {
                text += ',';
            }
            text += entries[i];
        }
        text += ']';
        frames.emplace(room, make_text(std::move(text)));
    }
    const auto common = frames.find("");
    for (const auto& l : listeners) {
        auto connection = l.connection.lock();
        if (!connection) {
            continue;
        }
        // A full outbox applies the route's overflow policy; the result needs no handling here.
        if (!l.room) {
            for (const auto& [room, frame] : frames) {
                (void)connection->send(frame);
            }
            continue;
        }
        if (common != frames.end()) {
            (void)connection->send(common->second);
        }
        if (!l.room->empty()) {
            if (auto it = frames.find(*l.room); it != frames.end()) {
                (void)connection->send(it->second);
            }
        }
    }
}

}  // namespace hearth::logs
