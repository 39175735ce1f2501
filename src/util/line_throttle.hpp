#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "util/token_bucket.hpp"

namespace hearth::util {

/// Bounds how many log lines one kind of client-triggered event may write (refused tokens, bad
/// requests): an attacker can trigger them at will, and each line would otherwise cost the log
/// ring, the file and the operator's attention. Lines past the rate are counted, and the next line
/// allowed says how many were left out. Thread-safe.
class LineThrottle {
public:
    explicit LineThrottle(TokenRate rate,
                          TokenBucket::Clock::time_point now = TokenBucket::Clock::now())
        : rate_(rate), bucket_(rate.depth, now) {}

    /// Whether a line may be written now; when it may, how many were suppressed since the last
    /// one written (0 most of the time).
    std::optional<std::uint64_t> admit(
        TokenBucket::Clock::time_point now = TokenBucket::Clock::now()) {
        std::lock_guard lock(mutex_);
        if (!bucket_.try_take(1, rate_, now)) {
            ++suppressed_;
            return std::nullopt;
        }
        const auto suppressed = suppressed_;
        suppressed_ = 0;
        return suppressed;
    }

private:
    std::mutex mutex_;
    TokenRate rate_;
    TokenBucket bucket_;
    std::uint64_t suppressed_ = 0;
};

}  // namespace hearth::util
