#pragma once

// Helpers for the store tests: temporary directories, waiting for completions with a deadline,
// reading metrics, capturing log lines.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "util/log.hpp"

namespace hearth::store::test {

using namespace std::chrono_literals;
constexpr auto kDeadline = 10s;

/// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern =
            (std::filesystem::path(base != nullptr ? base : "/tmp") / "hearth-store-XXXXXX")
                .string();
        if (mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const noexcept { return path_; }
    std::string str() const { return path_.string(); }
    std::string file(std::string_view name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

/// Calls `call` with a completion and waits (up to kDeadline) for its result.
template <class T, class Call>
Result<T> sync(Call&& call) {
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto future = promise->get_future();
    call([promise](Result<T> r) { promise->set_value(std::move(r)); });
    if (future.wait_for(kDeadline) != std::future_status::ready) {
        ADD_FAILURE() << "no completion within the deadline";
        return make_error_code(Errc::kTimeout);
    }
    return future.get();
}

inline Result<AppendResult> append(Mailboxes& m, std::string key, std::string body,
                                   std::size_t max_depth = 1000) {
    return sync<AppendResult>(
        [&](auto done) { m.append(std::move(key), std::move(body), max_depth, std::move(done)); });
}
inline Result<std::vector<MailboxEntry>> read(Mailboxes& m, std::string key,
                                              std::size_t max = 1000) {
    return sync<std::vector<MailboxEntry>>(
        [&](auto done) { m.read(std::move(key), max, std::move(done)); });
}
inline Result<std::vector<MailboxEntry>> read_prefix(Mailboxes& m, std::string prefix,
                                                     std::size_t max = 1000) {
    return sync<std::vector<MailboxEntry>>(
        [&](auto done) { m.read_prefix(std::move(prefix), max, std::move(done)); });
}
inline Result<void> remove(Mailboxes& m, std::string key, std::uint64_t seq) {
    return sync<void>([&](auto done) { m.remove(std::move(key), seq, std::move(done)); });
}
inline Result<std::uint64_t> remove_up_to(Mailboxes& m, std::string key, std::uint64_t up_to) {
    return sync<std::uint64_t>(
        [&](auto done) { m.remove_up_to(std::move(key), up_to, std::move(done)); });
}
inline Result<std::uint64_t> depth(Mailboxes& m, std::string key) {
    return sync<std::uint64_t>([&](auto done) { m.depth(std::move(key), std::move(done)); });
}

inline Result<std::uint64_t> depth_prefix(Mailboxes& m, std::string prefix) {
    return sync<std::uint64_t>(
        [&](auto done) { m.depth_prefix(std::move(prefix), std::move(done)); });
}

inline std::vector<std::string> bodies(const std::vector<MailboxEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) {
        out.push_back(e.body);
    }
    return out;
}

/// A counter's value (registering it again returns the same object).
inline std::uint64_t counter(core::MetricsRegistry& metrics, std::string_view name,
                             const core::Labels& labels = {}) {
    return metrics.counter(name, "", labels).value();
}

/// Collects the log lines of the "store" logger. The callback runs on the logging thread (or the
/// logging caller's thread before logging is set up).
class LogCapture {
public:
    LogCapture()
        : subscription_(util::log_ring().subscribe([this](const util::LogRecord& r) {
              if (r.logger != "store") {
                  return;
              }
              std::lock_guard lock(mutex_);
              lines_.push_back(r.level + " " + r.message);
              cv_.notify_all();
          })) {}

    /// Whether a line containing every one of `parts` arrived before the deadline.
    bool wait_for(std::vector<std::string> parts) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, kDeadline, [&] { return count_locked(parts) > 0; });
    }
    std::size_t count(const std::vector<std::string>& parts) {
        std::lock_guard lock(mutex_);
        return count_locked(parts);
    }
    std::string all() {
        std::lock_guard lock(mutex_);
        std::string out;
        for (const auto& l : lines_) {
            out += l + "\n";
        }
        return out;
    }

private:
    std::size_t count_locked(const std::vector<std::string>& parts) const {
        return static_cast<std::size_t>(
            std::count_if(lines_.begin(), lines_.end(), [&](const std::string& line) {
                return std::all_of(parts.begin(), parts.end(), [&](const std::string& p) {
                    return line.find(p) != std::string::npos;
                });
            }));
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> lines_;
    util::LogRing::Subscription subscription_;  // last: unsubscribed before the members above go
};

}  // namespace hearth::store::test
