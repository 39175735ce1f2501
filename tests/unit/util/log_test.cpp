#include "util/log.hpp"
#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/common.h>
#include <unistd.h>

namespace hearth::util {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr auto kDeadline = 10s;

/// Collects the lines a ring hands to subscribers. The callback runs on the logging thread.
class Collector {
public:
    explicit Collector(LogRing& ring)
        : subscription_(ring.subscribe([this](const LogRecord& record) {
              std::lock_guard lock(mutex_);
              lines_.push_back(record);
              cv_.notify_all();
          })) {}

    /// Whether a line with this message arrived before the deadline.
    bool wait_for(std::string_view message) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, kDeadline, [&] {
            return std::any_of(lines_.begin(), lines_.end(),
                               [&](const LogRecord& r) { return r.message == message; });
        });
    }
    bool has(std::string_view message) const {
        std::lock_guard lock(mutex_);
        return std::any_of(lines_.begin(), lines_.end(),
                           [&](const LogRecord& r) { return r.message == message; });
    }
    /// Lines from one logger, in arrival order.
    std::vector<LogRecord> from(std::string_view logger_name) const {
        std::lock_guard lock(mutex_);
        std::vector<LogRecord> out;
        std::copy_if(lines_.begin(), lines_.end(), std::back_inserter(out),
                     [&](const LogRecord& r) { return r.logger == logger_name; });
        return out;
    }
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return lines_.size();
    }
    void stop() { subscription_ = {}; }

private:
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<LogRecord> lines_;
    LogRing::Subscription subscription_;  // last: unsubscribed before the members above go
};

std::vector<std::string> read_lines(const fs::path& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

std::string utc_millis(std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(time);
    const auto day = floor<days>(ms);
    const year_month_day date{day};
    const hh_mm_ss clock{ms - day};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02lld.%03lldZ",
                  static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                  static_cast<unsigned>(date.day()), static_cast<long>(clock.hours().count()),
                  static_cast<long>(clock.minutes().count()),
                  static_cast<long long>(clock.seconds().count()),
                  static_cast<long long>(clock.subseconds().count()));
    return buf;
}

// ---- A deliberately small JSON reader: objects of string values, which is all a log line is ----

bool is_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80         ? 1
                        : (c >> 5) == 6  ? 2
                        : (c >> 4) == 14 ? 3
                        : (c >> 3) == 30 ? 4
                                         : 0;
        if (n == 0 || i + n > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) {
                return false;
            }
        }
        i += n;
    }
    return true;
}

void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::optional<std::string> parse_string(std::string_view s, std::size_t& i) {
    if (i >= s.size() || s[i] != '"') {
        return std::nullopt;
    }
    std::string out;
    for (++i; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '"') {
            ++i;
            return out;
        }
        if (static_cast<unsigned char>(c) < 0x20) {
            return std::nullopt;  // raw control characters are not allowed in JSON strings
        }
        if (c != '\\') {
            out += c;
            continue;
        }
        if (++i >= s.size()) {
            return std::nullopt;
        }
        switch (s[i]) {
            case '"':
            case '\\':
            case '/':
                out += s[i];
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                if (i + 4 >= s.size()) {
                    return std::nullopt;
                }
                unsigned cp = 0;
                for (int k = 1; k <= 4; ++k) {
                    const char h = s[i + static_cast<std::size_t>(k)];
                    if (!std::isxdigit(static_cast<unsigned char>(h))) {
                        return std::nullopt;
                    }
                    cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h))
                                                             ? h - '0'
                                                             : (h | 0x20) - 'a' + 10);
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    return std::nullopt;  // we never emit surrogates
                }
                append_utf8(out, cp);
                i += 4;
                break;
            }
            default:
                return std::nullopt;
        }
    }
    return std::nullopt;
}

using JsonObject = std::vector<std::pair<std::string, std::string>>;

std::optional<JsonObject> parse_object(std::string_view s) {
    if (!is_utf8(s) || s.empty() || s[0] != '{') {
        return std::nullopt;
    }
    JsonObject object;
    std::size_t i = 1;
    while (true) {
        auto key = parse_string(s, i);
        if (!key || i >= s.size() || s[i++] != ':') {
            return std::nullopt;
        }
        auto value = parse_string(s, i);
        if (!value || i >= s.size()) {
            return std::nullopt;
        }
        object.emplace_back(std::move(*key), std::move(*value));
        if (s[i] == '}') {
            return i + 1 == s.size() ? std::optional(object) : std::nullopt;
        }
        if (s[i++] != ',') {
            return std::nullopt;
        }
    }
}

// ---- LogRing on its own ----

TEST(LogRing, KeepsTheMostRecentLinesUpToItsCapacity) {
    LogRing ring(3);
    const auto now = std::chrono::system_clock::now();
    for (int i = 1; i <= 5; ++i) {
        ring.push(now, "info", "net", "line " + std::to_string(i));
    }
    auto lines = ring.recent(10);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0].seq, 3u);
    EXPECT_EQ(lines[0].message, "line 3");
    EXPECT_EQ(lines[2].seq, 5u);
    EXPECT_EQ(lines[2].level, "info");
    EXPECT_EQ(lines[2].logger, "net");
    EXPECT_EQ(lines[2].time, now);
    EXPECT_EQ(ring.recent(2)[0].seq, 4u);
    EXPECT_EQ(ring.recent(10, 4).size(), 1u);
    EXPECT_TRUE(ring.recent(10, 5).empty());
    EXPECT_EQ(ring.recent(10, 1).size(), 3u);

    ring.set_capacity(1);
    EXPECT_EQ(ring.capacity(), 1u);
    lines = ring.recent(10);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].message, "line 5");
}

TEST(LogRing, ZeroCapacityKeepsNothingButSubscribersSeeEveryLine) {
    LogRing ring(0);
    Collector collector(ring);
    ring.push(std::chrono::system_clock::now(), "warn", "core", "a");
    ring.push(std::chrono::system_clock::now(), "warn", "core", "b");
    EXPECT_TRUE(ring.recent(10).empty());
    const auto seen = collector.from("core");
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].seq, 1u);
    EXPECT_EQ(seen[1].seq, 2u);
}

TEST(LogRing, DroppingOrReplacingASubscriptionStopsDelivery) {
    LogRing ring(10);
    int first = 0;
    int second = 0;
    auto subscription = ring.subscribe([&](const LogRecord&) { ++first; });
    ring.push({}, "info", "t", "1");
    subscription = ring.subscribe([&](const LogRecord&) { ++second; });
    ring.push({}, "info", "t", "2");
    {
        LogRing::Subscription moved = std::move(subscription);
        ring.push({}, "info", "t", "3");
    }
    ring.push({}, "info", "t", "4");
    EXPECT_EQ(first, 1);
    EXPECT_EQ(second, 2);
}

TEST(LogRing, ASubscriberMayDropItsOwnSubscription) {
    LogRing ring(10);
    int calls = 0;
    LogRing::Subscription subscription;
    subscription = ring.subscribe([&](const LogRecord&) {
        ++calls;
        subscription = {};
    });
    ring.push({}, "info", "t", "1");
    ring.push({}, "info", "t", "2");
    EXPECT_EQ(calls, 1);
}

TEST(LogRing, SubscriptionMayOutliveTheRing) {
    LogRing::Subscription subscription;
    {
        LogRing ring(10);
        subscription = ring.subscribe([](const LogRecord&) {});
    }
    subscription = {};  // must not touch the dead ring
}

TEST(LogRing, UnsubscribingWaitsForACallbackInProgress) {
    LogRing ring(10);
    std::mutex mutex;
    std::condition_variable cv;
    bool entered = false;
    bool release = false;
    std::atomic<bool> callback_done{false};
    std::atomic<int> calls{0};
    auto subscription =
        std::make_unique<LogRing::Subscription>(ring.subscribe([&](const LogRecord&) {
            calls.fetch_add(1);
            std::unique_lock lock(mutex);
            entered = true;
            cv.notify_all();
            cv.wait_for(lock, kDeadline, [&] { return release; });
            callback_done.store(true);
        }));

    std::thread logging_thread([&] { ring.push({}, "info", "t", "slow"); });
    auto release_callback = [&] {
        {
            std::lock_guard lock(mutex);
            release = true;
        }
        cv.notify_all();
    };
    bool was_entered = false;
    {
        std::unique_lock lock(mutex);
        was_entered = cv.wait_for(lock, kDeadline, [&] { return entered; });
    }
    if (!was_entered) {
        release_callback();
        logging_thread.join();
        FAIL() << "the subscriber was not called";
    }
    std::atomic<bool> done_when_unsubscribed{false};
    std::thread unsubscriber([&] {
        subscription.reset();
        done_when_unsubscribed.store(callback_done.load());
    });
    // Not synchronisation: only gives the unsubscriber time to reach its wait, so that a missing
    // guard shows. The assertion below holds whatever the interleaving.
    std::this_thread::sleep_for(20ms);
    release_callback();
    unsubscriber.join();
    logging_thread.join();
    EXPECT_TRUE(done_when_unsubscribed.load());
    ring.push({}, "info", "t", "after");
    EXPECT_EQ(calls.load(), 1);
}

// ---- The loggers ----

class Logging : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("hearth-log-test-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        shutdown_logging();
        set_log_level("info");
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    LogSettings settings(LogFormat format = LogFormat::kText) const {
        LogSettings s;
        s.level = "trace";
        s.format = format;
        s.file = log_file().string();
        return s;
    }
    fs::path log_file() const { return dir_ / "hearth.log"; }

    fs::path dir_;
};

TEST_F(Logging, JsonLinesAreValidJsonWithEverythingEscaped) {
    init_logging(settings(LogFormat::kJson));
    const std::string message =
        "quote \" backslash \\ slash / nl \n cr \r tab \t ctrl \x01\x1f del \x7f "
        "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \xff lone \xc3 overlong \xc0\x80 "
        "surrogate \xed\xa0\x80 braces {}";
    const auto before = std::chrono::system_clock::now();
    logger("json \"test\"")->info("{}", message);
    shutdown_logging();
    const auto after = std::chrono::system_clock::now();

    const auto lines = read_lines(log_file());
    ASSERT_EQ(lines.size(), 1u);
    const std::string& line = lines[0];
    const std::string expected_tail =
        "\",\"level\":\"info\",\"logger\":\"json \\\"test\\\"\",\"message\":\""
        "quote \\\" backslash \\\\ slash / nl \\n cr \\r tab \\t ctrl \\u0001\\u001f del \x7f "
        "utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 bad \\ufffd lone \\ufffd overlong "
        "\\ufffd\\ufffd surrogate \\ufffd\\ufffd\\ufffd braces {}\"}";
    ASSERT_GE(line.size(), 9u + 24u);
    EXPECT_EQ(line.substr(0, 9), "{\"time\":\"");
    EXPECT_EQ(line.substr(9 + 24), expected_tail);

    const auto object = parse_object(line);
    ASSERT_TRUE(object.has_value()) << line;
    ASSERT_EQ(object->size(), 4u);
    EXPECT_EQ((*object)[0].first, "time");
    EXPECT_GE((*object)[0].second, utc_millis(before));
    EXPECT_LE((*object)[0].second, utc_millis(after));
    EXPECT_EQ((*object)[1], (std::pair<std::string, std::string>{"level", "info"}));
    EXPECT_EQ((*object)[2], (std::pair<std::string, std::string>{"logger", "json \"test\""}));
    const std::string replacement = "\xef\xbf\xbd";
    std::string decoded = message;
    for (std::string_view bad : {"\xff", "\xc3 ", "\xc0\x80", "\xed\xa0\x80"}) {
        std::string repl;
        for (char c : bad) {
            repl += c == ' ' ? std::string(" ") : replacement;
        }
        decoded.replace(decoded.find(bad), bad.size(), repl);
    }
    EXPECT_EQ((*object)[3], (std::pair<std::string, std::string>{"message", decoded}));
}

TEST_F(Logging, TextLinesHaveUtcTimestampsLevelsAndNoColourInFiles) {
    init_logging(settings(LogFormat::kText));
    const auto before = std::chrono::system_clock::now();
    auto log = logger("text-test");
    log->info("hello {}", "world");
    log->warn("careful");
    log->error("broken");
    log->critical("down");
    log->debug("details");
    shutdown_logging();
    const auto after = std::chrono::system_clock::now();

    const auto lines = read_lines(log_file());
    ASSERT_EQ(lines.size(), 5u);
    const std::regex stamp(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
    for (const auto& line : lines) {
        ASSERT_GT(line.size(), 25u);
        EXPECT_TRUE(std::regex_match(line.substr(0, 24), stamp)) << line;
        EXPECT_GE(line.substr(0, 24), utc_millis(before));
        EXPECT_LE(line.substr(0, 24), utc_millis(after));
        EXPECT_EQ(line[24], ' ');
        EXPECT_EQ(line.find('\x1b'), std::string::npos) << "colour codes in the file";
    }
    EXPECT_EQ(lines[0].substr(25), "info  [text-test] hello world");
    EXPECT_EQ(lines[1].substr(25), "warn  [text-test] careful");
    EXPECT_EQ(lines[2].substr(25), "error [text-test] broken");
    EXPECT_EQ(lines[3].substr(25), "critical [text-test] down");
    EXPECT_EQ(lines[4].substr(25), "debug [text-test] details");
}

TEST_F(Logging, NamedLoggersFeedRingSubscribersOnTheLoggingThread) {
    init_logging(settings());
    Collector collector(log_ring());
    logger("sub-net")->info("first {}", 1);
    logger("sub-http")->warn("second");
    ASSERT_TRUE(collector.wait_for("second"));

    const auto net = collector.from("sub-net");
    const auto http = collector.from("sub-http");
    ASSERT_EQ(net.size(), 1u);
    ASSERT_EQ(http.size(), 1u);
    EXPECT_EQ(net[0].message, "first 1");
    EXPECT_EQ(net[0].level, "info");
    EXPECT_EQ(http[0].level, "warn");
    EXPECT_LT(net[0].seq, http[0].seq);

    const auto recent = log_ring().recent(10, net[0].seq - 1);
    ASSERT_GE(recent.size(), 2u);
    EXPECT_EQ(recent[0].message, "first 1");
    EXPECT_EQ(recent[1].message, "second");

    // After one subscriber leaves, another still sees lines; the one that left sees no more.
    Collector barrier(log_ring());
    collector.stop();
    logger("sub-net")->info("after stop");
    ASSERT_TRUE(barrier.wait_for("after stop"));
    EXPECT_FALSE(collector.has("after stop"));
}

TEST_F(Logging, RingKeepsRingLinesFromSettings) {
    auto s = settings();
    s.ring_lines = 3;
    init_logging(s);
    EXPECT_EQ(log_ring().capacity(), 3u);
    Collector collector(log_ring());
    for (int i = 0; i < 6; ++i) {
        logger("ring-bound")->info("r{}", i);
    }
    ASSERT_TRUE(collector.wait_for("r5"));
    const auto recent = log_ring().recent(100);
    ASSERT_EQ(recent.size(), 3u);
    EXPECT_EQ(recent[0].message, "r3");
    EXPECT_EQ(recent[2].message, "r5");
    log_ring().set_capacity(LogSettings{}.ring_lines);
}

TEST_F(Logging, SetLogLevelAppliesToExistingAndFutureLoggers) {
    auto s = settings();
    s.level = "info";
    init_logging(s);
    Collector collector(log_ring());
    auto early = logger("lvl-early");
    early->debug("hidden-0");

    EXPECT_TRUE(set_log_level("warn"));
    EXPECT_FALSE(set_log_level("loud"));  // unknown: nothing changes
    auto late = logger("lvl-late");
    EXPECT_EQ(late->level(), spdlog::level::warn);
    EXPECT_EQ(early->level(), spdlog::level::warn);
    early->info("hidden-1");
    late->info("hidden-2");
    late->warn("shown-1");
    early->error("shown-2");
    // One queue, one thread: lines arrive in order, so the hidden ones would be here by now.
    ASSERT_TRUE(collector.wait_for("shown-2"));
    EXPECT_TRUE(collector.has("shown-1"));
    EXPECT_FALSE(collector.has("hidden-0"));
    EXPECT_FALSE(collector.has("hidden-1"));
    EXPECT_FALSE(collector.has("hidden-2"));

    EXPECT_TRUE(set_log_level("debug"));
    late->debug("visible-debug");
    ASSERT_TRUE(collector.wait_for("visible-debug"));
    EXPECT_TRUE(set_log_level("off"));
    late->critical("hidden-3");
    EXPECT_TRUE(set_log_level("trace"));
    late->trace("visible-trace");
    ASSERT_TRUE(collector.wait_for("visible-trace"));
    EXPECT_FALSE(collector.has("hidden-3"));
}

TEST_F(Logging, RotatingFileIsWrittenAndRotated) {
    auto s = settings();
    s.file_max_bytes = 1024;
    s.file_count = 2;
    init_logging(s);
    auto log = logger("rot");
    for (int i = 0; i < 40; ++i) {
        log->info("line {:02} {}", i, std::string(60, 'x'));
    }
    shutdown_logging();
    EXPECT_TRUE(fs::exists(dir_ / "hearth.log"));
    EXPECT_TRUE(fs::exists(dir_ / "hearth.1.log"));
    EXPECT_TRUE(fs::exists(dir_ / "hearth.2.log"));
    EXPECT_FALSE(fs::exists(dir_ / "hearth.3.log"));
    EXPECT_LE(fs::file_size(dir_ / "hearth.log"), 1024u);
    const auto lines = read_lines(dir_ / "hearth.log");
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.back().find("[rot] line 39 xxx"), std::string::npos) << lines.back();
}

TEST_F(Logging, FileIsFlushedWhileTheServerRuns) {
    init_logging(settings());
    Collector collector(log_ring());
    logger("flush")->info("quiet now");
    ASSERT_TRUE(collector.wait_for("quiet now"));
    // The ring sink comes after the file sink, on the same thread: the line was written, and
    // flushed because the queue ran empty, before the subscriber saw it.
    const auto lines = read_lines(log_file());
    ASSERT_FALSE(lines.empty());
    EXPECT_TRUE(lines.back().ends_with("[flush] quiet now")) << lines.back();
}

TEST_F(Logging, LoggersSurviveReinitAndShutdown) {
    auto held = logger("persist");  // created before init: re-pointed by it

    init_logging(settings());
    held->info("after init");
    // A second init drains the first queue into the first file before it returns.
    auto second = settings();
    second.file = (dir_ / "second.log").string();
    init_logging(second);
    EXPECT_EQ(read_lines(log_file()).size(), 1u);
    held->info("after reinit");
    shutdown_logging();
    const auto lines = read_lines(dir_ / "second.log");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_TRUE(lines[0].ends_with("[persist] after reinit"));

    // After shutdown, lines are written synchronously: already in the ring on return.
    held->info("after shutdown");
    logger("new-after-shutdown")->warn("new logger");
    auto recent = log_ring().recent(2);
    ASSERT_EQ(recent.size(), 2u);
    EXPECT_EQ(recent[0].message, "after shutdown");
    EXPECT_EQ(recent[1].message, "new logger");
    EXPECT_EQ(recent[1].logger, "new-after-shutdown");
    shutdown_logging();  // twice is harmless
    held->flush();
}

TEST_F(Logging, AFullQueueDropsTheOldestLinesInsteadOfBlocking) {
    auto s = settings();
    s.queue_lines = 8;
    s.file.clear();
    init_logging(s);
    const auto dropped_before = dropped_log_lines();

    std::mutex mutex;
    std::condition_variable cv;
    bool entered = false;
    bool release = false;
    // Holds the logging thread, as a stuck disk would.
    auto blocker = log_ring().subscribe([&](const LogRecord& record) {
        if (record.message != "block") {
            return;
        }
        std::unique_lock lock(mutex);
        entered = true;
        cv.notify_all();
        cv.wait_for(lock, kDeadline, [&] { return release; });
    });
    Collector collector(log_ring());
    auto log = logger("flood");
    log->info("block");
    {
        std::unique_lock lock(mutex);
        ASSERT_TRUE(cv.wait_for(lock, kDeadline, [&] { return entered; }));
    }
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
        log->info("flood {}", i);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    {
        std::lock_guard lock(mutex);
        release = true;
    }
    cv.notify_all();

    EXPECT_LT(elapsed, kDeadline / 2) << "logging blocked on a full queue";
    ASSERT_TRUE(collector.wait_for("flood 999"));  // the newest line survives
    EXPECT_FALSE(collector.has("flood 0"));        // the oldest did not
    EXPECT_GE(dropped_log_lines() - dropped_before, 1000u - 8u);
}

TEST_F(Logging, InvalidSettingsThrowAndLeaveLoggingWorking) {
    auto s = settings();
    s.level = "loud";
    EXPECT_THROW(init_logging(s), std::invalid_argument);
    s = settings();
    s.queue_lines = 0;
    EXPECT_THROW(init_logging(s), std::invalid_argument);
    std::ofstream(dir_ / "a-file") << "x";
    s = settings();
    s.file = (dir_ / "a-file" / "hearth.log").string();
    EXPECT_THROW(init_logging(s), spdlog::spdlog_ex);

    logger("still-works")->info("yes");
    const auto recent = log_ring().recent(1);
    ASSERT_EQ(recent.size(), 1u);
    EXPECT_EQ(recent[0].message, "yes");
}

}  // namespace
}  // namespace hearth::util
