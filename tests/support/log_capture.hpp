#pragma once

// Every line the server logs while a LogCapture exists, read from the process's log ring: for
// tests of what is logged (warnings, and bounds on lines a client can trigger).

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "util/log.hpp"

namespace hearth::test {

/// Every line the server logs while it exists, from the ring.
class LogCapture {
public:
    LogCapture()
        : subscription_(util::log_ring().subscribe([this](const util::LogRecord& r) {
              std::lock_guard lock(mutex_);
              lines_.push_back(r.logger + " " + r.level + " " + r.message);
              changed_.notify_all();
          })) {}

    /// Logs a marker and waits until the ring delivered it: every line logged before it has been
    /// seen. Returns how many lines so far contain `needle`.
    int count_after_marker(const std::string& needle) {
        const std::string marker = "marker " + std::to_string(++markers_);
        util::logger("test")->warn("{}", marker);
        std::unique_lock lock(mutex_);
        EXPECT_TRUE(changed_.wait_for(lock, kDeadline, [&] {
            return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& l) {
                return l.find(marker) != std::string::npos;
            });
        }));
        return static_cast<int>(std::count_if(
            lines_.begin(), lines_.end(),
            [&](const std::string& l) { return l.find(needle) != std::string::npos; }));
    }

    /// Waits for a line that contains every one of `needles`; returns it. Throws past the
    /// deadline.
    std::string wait_for(const std::vector<std::string>& needles) {
        std::unique_lock lock(mutex_);
        std::string found;
        const bool ok = changed_.wait_for(lock, kDeadline, [&] {
            for (const auto& line : lines_) {
                bool all = true;
                for (const auto& n : needles) {
                    all = all && line.find(n) != std::string::npos;
                }
                if (all) {
                    found = line;
                    return true;
                }
            }
            return false;
        });
        if (!ok) {
            std::string wanted;
            for (const auto& n : needles) {
                wanted += " \"" + n + "\"";
            }
            throw std::runtime_error("deadline passed waiting for a log line with" + wanted);
        }
        return found;
    }

    /// Whether any line so far contains `needle`.
    bool contains(const std::string& needle) {
        std::lock_guard lock(mutex_);
        for (const auto& line : lines_) {
            if (line.find(needle) != std::string::npos) {
                return true;
            }
        }
        return false;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<std::string> lines_;
    int markers_ = 0;
    util::LogRing::Subscription subscription_;  // last: unsubscribed before the members above go
};

}  // namespace hearth::test
