#include "util/log.hpp"
#include <algorithm>
#include <atomic>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <pthread.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hearth::util {
namespace {

using spdlog::details::log_msg;
namespace level = spdlog::level;

// Our names, not spdlog's: "warn" rather than "warning", matching the configuration values.
std::string_view level_name(level::level_enum lvl) {
    switch (lvl) {
        case level::trace:
            return "trace";
        case level::debug:
            return "debug";
        case level::info:
            return "info";
        case level::warn:
            return "warn";
        case level::err:
            return "error";
        case level::critical:
            return "critical";
        case level::off:
        case level::n_levels:
            break;
    }
    return "off";
}

std::optional<level::level_enum> parse_level(std::string_view name) {
    for (auto lvl : {level::trace, level::debug, level::info, level::warn, level::err,
                     level::critical, level::off}) {
        if (name == level_name(lvl)) {
            return lvl;
        }
    }
    if (name == "warning") {
        return level::warn;
    }
    return std::nullopt;
}

std::string_view view(spdlog::string_view_t text) {
    return {text.data(), text.size()};
}

void append(spdlog::memory_buf_t& dest, std::string_view text) {
    dest.append(text.data(), text.data() + text.size());
}

// "2026-11-21T10:00:00.123Z".
void append_utc_time(spdlog::memory_buf_t& dest, std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(time);
    const auto day = floor<days>(ms);
    const year_month_day date{day};
    const hh_mm_ss clock{ms - day};
    fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                   static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                   static_cast<unsigned>(date.day()), clock.hours().count(),
                   clock.minutes().count(), clock.seconds().count(), clock.subseconds().count());
}

// Length of the well-formed UTF-8 sequence that starts `text` (not empty), or 0 if there is none:
// JSON must be valid UTF-8, and messages may carry arbitrary bytes from peers.
std::size_t utf8_sequence_length(std::string_view text) {
    const auto lead = static_cast<unsigned char>(text[0]);
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    if (lead < 0x80) {
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code_point = lead & 0x1Fu;
    } else if ((lead & 0xF0u) == 0xE0) {
        length = 3;
        code_point = lead & 0x0Fu;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        code_point = lead & 0x07u;
    } else {
        return 0;
    }
    if (text.size() < length) {
        return 0;
    }
    for (std::size_t i = 1; i < length; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if ((byte & 0xC0u) != 0x80) {
            return 0;
        }
        code_point = (code_point << 6) | (byte & 0x3Fu);
    }
    const bool overlong =
        (length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000);
    const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
    if (overlong || surrogate || code_point > 0x10FFFF) {
        return 0;
    }
    return length;
}

// A JSON string literal; invalid UTF-8 bytes become U+FFFD.
void append_json_string(spdlog::memory_buf_t& dest, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    dest.push_back('"');
    std::size_t run_start = 0;  // bytes [run_start, i) are copied verbatim
    std::size_t i = 0;
    auto flush_run = [&] { append(dest, text.substr(run_start, i - run_start)); };
    while (i < text.size()) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x20 && byte < 0x80 && byte != '"' && byte != '\\') {
            ++i;
            continue;
        }
        if (byte >= 0x80) {
            if (const auto length = utf8_sequence_length(text.substr(i)); length > 0) {
                i += length;
                continue;
            }
        }
        flush_run();
        switch (byte) {
            case '"':
                append(dest, "\\\"");
                break;
            case '\\':
                append(dest, "\\\\");
                break;
            case '\b':
                append(dest, "\\b");
                break;
            case '\f':
                append(dest, "\\f");
                break;
            case '\n':
                append(dest, "\\n");
                break;
            case '\r':
                append(dest, "\\r");
                break;
            case '\t':
                append(dest, "\\t");
                break;
            default:
                if (byte < 0x20) {
                    const char escaped[] = {'\\', 'u', '0', '0', kHex[byte >> 4], kHex[byte & 0xF]};
                    dest.append(std::begin(escaped), std::end(escaped));
                } else {
                    append(dest, "\\ufffd");
                }
        }
        ++i;
        run_start = i;
    }
    flush_run();
    dest.push_back('"');
}

/// "2026-11-21T10:00:00.123Z info  [net] message". Used by one sink, under that sink's lock.
class TextFormatter final : public spdlog::formatter {
public:
    void format(const log_msg& msg, spdlog::memory_buf_t& dest) override {
        append_utc_time(dest, msg.time);
        dest.push_back(' ');
        const auto name = level_name(msg.level);
        // Colour sinks colour this range, and only when writing to a terminal.
        msg.color_range_start = dest.size();
        append(dest, name);
        msg.color_range_end = dest.size();
        for (auto pad = name.size(); pad < 5; ++pad) {
            dest.push_back(' ');
        }
        append(dest, " [");
        append(dest, view(msg.logger_name));
        append(dest, "] ");
        append(dest, view(msg.payload));
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<TextFormatter>();
    }
};

/// One JSON object per line. Used by one sink, under that sink's lock.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const log_msg& msg, spdlog::memory_buf_t& dest) override {
        append(dest, "{\"time\":\"");
        append_utc_time(dest, msg.time);
        append(dest, "\",\"level\":\"");
        append(dest, level_name(msg.level));
        append(dest, "\",\"logger\":");
        append_json_string(dest, view(msg.logger_name));
        append(dest, ",\"message\":");
        append_json_string(dest, view(msg.payload));
        append(dest, "}\n");
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
    if (format == LogFormat::kJson) {
        return std::make_unique<JsonFormatter>();
    }
    return std::make_unique<TextFormatter>();
}

/// Feeds log_ring(). Runs on the logging thread (or the caller's, when synchronous).
class RingSink final : public spdlog::sinks::sink {
public:
    void log(const log_msg& msg) override {
        log_ring().push(msg.time, std::string(level_name(msg.level)),
                        std::string(view(msg.logger_name)), std::string(view(msg.payload)));
    }
    void flush() override {}
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
};

/// The rotating file, flushed whenever the queue runs empty: the file is current when the server is
/// quiet, and a burst costs one write per batch rather than per line. Runs on the logging thread.
class FileSink final : public spdlog::sinks::sink {
public:
    FileSink(std::shared_ptr<spdlog::sinks::sink> file, spdlog::details::thread_pool& pool)
        : file_(std::move(file)), pool_(pool) {}

    void log(const log_msg& msg) override {
        file_->log(msg);
        if (pool_.queue_size() == 0) {
            file_->flush();
        }
    }
    void flush() override { file_->flush(); }
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

private:
    std::shared_ptr<spdlog::sinks::sink> file_;
    spdlog::details::thread_pool& pool_;  // owns the thread that calls us, so outlives the calls
};

std::atomic<std::uint64_t> g_retired_drops{0};  // queue overruns of thread pools already stopped

/// Where the lines of every logger go: either through the async queue, or straight to the sinks.
/// Immutable once built; replaced as a whole by init_logging and shutdown_logging.
struct Backend {
    std::shared_ptr<spdlog::details::thread_pool> pool;  // null: synchronous
    std::vector<spdlog::sink_ptr> sinks;
    // Carries lines through the pool: the worker hands each line to its sinks with the line's
    // own logger name. Holds the pool only weakly; `pool` is the one owner.
    std::shared_ptr<spdlog::async_logger> stage;

    Backend() = default;
    Backend(const Backend&) = delete;
    Backend& operator=(const Backend&) = delete;

    // Runs where the last reference goes, normally in init_logging or shutdown_logging.
    ~Backend() {
        if (pool) {
            g_retired_drops.fetch_add(pool->overrun_counter(), std::memory_order_relaxed);
            pool.reset();  // writes what is queued, then joins the logging thread
        }
        for (auto& sink : sinks) {
            try {
                sink->flush();
            } catch (const std::exception&) {
                // Nowhere left to report it; the lines that reached the sink are what we have.
            }
        }
    }
};

spdlog::sink_ptr make_stderr_sink(LogFormat format) {
    spdlog::sink_ptr err;
    if (format == LogFormat::kJson) {
        err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
        err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
    }
    err->set_formatter(make_formatter(format));
    return err;
}

std::shared_ptr<Backend> make_sync_backend(LogFormat format) {
    auto backend = std::make_shared<Backend>();
    backend->sinks = {make_stderr_sink(format), std::make_shared<RingSink>()};
    return backend;
}

std::shared_ptr<Backend> make_async_backend(const LogSettings& settings) {
    if (settings.queue_lines == 0) {
        throw std::invalid_argument("log queue_lines must be at least 1");
    }
    auto backend = std::make_shared<Backend>();
    backend->pool = std::make_shared<spdlog::details::thread_pool>(
        settings.queue_lines, 1, [] { ::pthread_setname_np(::pthread_self(), "hearth-log"); });
    backend->sinks.push_back(make_stderr_sink(settings.format));
    if (!settings.file.empty()) {
        auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
            settings.file, settings.file_max_bytes, settings.file_count);
        file->set_formatter(make_formatter(settings.format));
        backend->sinks.push_back(std::make_shared<FileSink>(std::move(file), *backend->pool));
    }
    // Last, so that a subscriber that sees a line knows it is already on stderr and in the file.
    backend->sinks.push_back(std::make_shared<RingSink>());
    backend->stage = std::make_shared<spdlog::async_logger>(
        "hearth", backend->sinks.begin(), backend->sinks.end(), backend->pool,
        spdlog::async_overflow_policy::overrun_oldest);
    backend->stage->set_level(level::trace);
    return backend;
}

/// The only sink of every named logger; swapping its backend re-points them all at once. Called
/// from any thread; lock-free apart from the shared_ptr's own.
class DispatchSink final : public spdlog::sinks::sink {
public:
    explicit DispatchSink(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {}

    void log(const log_msg& msg) override {
        const auto backend = backend_.load(std::memory_order_acquire);
        if (backend->pool) {
            // overrun_oldest: a full queue loses its oldest line, the caller never waits.
            backend->pool->post_log(std::shared_ptr(backend->stage), msg,
                                    spdlog::async_overflow_policy::overrun_oldest);
            return;
        }
        for (auto& target : backend->sinks) {
            if (target->should_log(msg.level)) {
                target->log(msg);
            }
        }
    }
    void flush() override {
        const auto backend = backend_.load(std::memory_order_acquire);
        if (backend->pool) {
            backend->pool->post_flush(std::shared_ptr(backend->stage),
                                      spdlog::async_overflow_policy::overrun_oldest);
            return;
        }
        for (auto& target : backend->sinks) {
            target->flush();
        }
    }
    // The format comes from LogSettings only.
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

    std::shared_ptr<Backend> exchange(std::shared_ptr<Backend> next) {
        return backend_.exchange(std::move(next), std::memory_order_acq_rel);
    }
    std::shared_ptr<Backend> current() const { return backend_.load(std::memory_order_acquire); }

private:
    std::atomic<std::shared_ptr<Backend>> backend_;
};

struct State {
    std::mutex mutex;  // guards the members below; never held while a line is written
    std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
    level::level_enum level = level::info;
    LogFormat format = LogFormat::kText;
    const std::shared_ptr<DispatchSink> dispatch =
        std::make_shared<DispatchSink>(make_sync_backend(LogFormat::kText));
};

// Never destroyed: loggers held in other statics may log during exit.
State& state() {
    static auto* instance = new State();
    return *instance;
}

}  // namespace

// ---- logging ----

void init_logging(const LogSettings& settings) {
    const auto lvl = parse_level(settings.level);
    if (!lvl) {
        throw std::invalid_argument("unknown log level '" + settings.level + "'");
    }
    auto next = make_async_backend(settings);  // may throw; nothing has changed yet
    log_ring().set_capacity(settings.ring_lines);
    auto& s = state();
    std::shared_ptr<Backend> previous;
    {
        std::lock_guard lock(s.mutex);
        s.level = *lvl;
        s.format = settings.format;
        for (auto& [name, log] : s.loggers) {
            log->set_level(*lvl);
        }
        previous = s.dispatch->exchange(std::move(next));
    }
    // Outside the lock: this drains the previous queue, which may take a moment.
    previous.reset();
}

void shutdown_logging() {
    auto& s = state();
    std::shared_ptr<Backend> previous;
    {
        std::lock_guard lock(s.mutex);
        previous = s.dispatch->exchange(make_sync_backend(s.format));
    }
    previous.reset();
}

bool set_log_level(std::string_view name) {
    const auto lvl = parse_level(name);
    if (!lvl) {
        return false;
    }
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.level = *lvl;
    for (auto& [logger_name, log] : s.loggers) {
        log->set_level(*lvl);
    }
    return true;
}

std::shared_ptr<spdlog::logger> logger(std::string_view subsystem) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (auto it = s.loggers.find(subsystem); it != s.loggers.end()) {
        return it->second;
    }
    auto log = std::make_shared<spdlog::logger>(std::string(subsystem), s.dispatch);
    log->set_level(s.level);
    s.loggers.emplace(std::string(subsystem), log);
    return log;
}

std::uint64_t dropped_log_lines() {
    std::uint64_t dropped = g_retired_drops.load(std::memory_order_relaxed);
    if (const auto backend = state().dispatch->current(); backend->pool) {
        dropped += backend->pool->overrun_counter();
    }
    return dropped;
}

// ---- LogRing ----

struct LogRing::Impl {
    struct SubscriberState {
        // Held while `on_line` runs, so that unsubscribing waits for a delivery in progress.
        // Recursive so that a subscriber may drop its own subscription from inside `on_line`.
        std::recursive_mutex mutex;
        bool active = true;
        Subscriber on_line;
    };
    using SubscriberList = std::vector<std::shared_ptr<SubscriberState>>;

    // What a Subscription holds; destroying it unsubscribes.
    struct Token {
        std::weak_ptr<Impl> ring;
        std::shared_ptr<SubscriberState> subscriber;

        Token(std::weak_ptr<Impl> r, std::shared_ptr<SubscriberState> s)
            : ring(std::move(r)), subscriber(std::move(s)) {}
        Token(const Token&) = delete;
        Token& operator=(const Token&) = delete;
        ~Token() {
            if (auto impl = ring.lock()) {
                std::lock_guard lock(impl->mutex);
                auto next = std::make_shared<SubscriberList>(*impl->subscribers);
                std::erase(*next, subscriber);
                impl->subscribers = std::move(next);
            }
            // A push may have copied the list just before; it checks `active` under this lock.
            std::lock_guard lock(subscriber->mutex);
            subscriber->active = false;
        }
    };

    explicit Impl(std::size_t capacity_lines) : capacity(capacity_lines) {}

    std::mutex delivery_mutex;  // one push at a time, so subscribers see lines in seq order
    mutable std::mutex mutex;   // guards the members below; not held while subscribers run
    std::size_t capacity;
    std::deque<LogRecord> lines;
    std::uint64_t next_seq = 1;
    // Copied on write, so a push takes a snapshot without copying the list.
    std::shared_ptr<const SubscriberList> subscribers = std::make_shared<const SubscriberList>();
};

LogRing::LogRing(std::size_t capacity_lines) : impl_(std::make_shared<Impl>(capacity_lines)) {}
LogRing::~LogRing() = default;

void LogRing::set_capacity(std::size_t lines) {
    std::lock_guard lock(impl_->mutex);
    impl_->capacity = lines;
    while (impl_->lines.size() > lines) {
        impl_->lines.pop_front();
    }
}

std::size_t LogRing::capacity() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->capacity;
}

void LogRing::push(std::chrono::system_clock::time_point time, std::string level,
                   std::string logger, std::string message) {
    std::lock_guard delivery(impl_->delivery_mutex);
    LogRecord record{0, time, std::move(level), std::move(logger), std::move(message)};
    std::shared_ptr<const Impl::SubscriberList> subscribers;
    {
        std::lock_guard lock(impl_->mutex);
        record.seq = impl_->next_seq++;
        if (impl_->capacity > 0) {
            if (impl_->lines.size() >= impl_->capacity) {
                impl_->lines.pop_front();
            }
            impl_->lines.push_back(record);
        }
        subscribers = impl_->subscribers;
    }
    for (const auto& subscriber : *subscribers) {
        std::lock_guard lock(subscriber->mutex);
        if (!subscriber->active) {
            continue;
        }
        try {
            subscriber->on_line(record);
        } catch (...) {
            // A subscriber's failure must not stop the logging thread; it cannot be logged here.
        }
    }
}

std::vector<LogRecord> LogRing::recent(std::size_t max, std::uint64_t after_seq) const {
    std::lock_guard lock(impl_->mutex);
    const auto& lines = impl_->lines;
    if (lines.empty() || max == 0) {
        return {};
    }
    // Kept lines have consecutive seqs, so the first one after `after_seq` is found by arithmetic.
    const std::uint64_t first_seq = lines.front().seq;
    std::size_t begin =
        after_seq < first_seq ? 0 : static_cast<std::size_t>(after_seq - first_seq + 1);
    if (begin >= lines.size()) {
        return {};
    }
    begin = std::max(begin, lines.size() - std::min(max, lines.size()));
    return {lines.begin() + static_cast<std::ptrdiff_t>(begin), lines.end()};
}

LogRing::Subscription LogRing::subscribe(Subscriber on_line) {
    auto subscriber = std::make_shared<Impl::SubscriberState>();
    subscriber->on_line = std::move(on_line);
    {
        std::lock_guard lock(impl_->mutex);
        auto next = std::make_shared<Impl::SubscriberList>(*impl_->subscribers);
        next->push_back(subscriber);
        impl_->subscribers = std::move(next);
    }
    return Subscription(std::make_shared<Impl::Token>(impl_, std::move(subscriber)));
}

LogRing::Subscription::~Subscription() = default;

LogRing& log_ring() {
    static auto* ring = new LogRing(LogSettings{}.ring_lines);
    return *ring;
}

}  // namespace hearth::util
