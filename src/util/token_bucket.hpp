#pragma once

// The token bucket behind every rate limit of Hearth: a connection's messages and bytes per
// second (WebSocket and raw TCP routes), what its compressed messages inflate to, and the
// per-address tables of /logs/add and registrations.

#include <algorithm>
#include <chrono>

namespace hearth::util {

/// How a bucket refills: `per_s` tokens a second, up to `depth`. A rate of 0 never refills; what
/// "no limit" means is the caller's to decide (most skip the bucket).
struct TokenRate {
    double per_s = 0;
    double depth = 0;
    bool operator==(const TokenRate&) const = default;
};

/// One bucket's level: a count and when it was last refilled. The rate is passed to each call
/// rather than kept, so that a table of buckets (one per client address) costs 16 bytes an entry
/// and a new rate (a configuration reload) applies to every bucket at its next use. Not
/// thread-safe: its owner serialises calls. Time is passed in, so tests need no clock.
class TokenBucket {
public:
    using Clock = std::chrono::steady_clock;

    /// Empty as of the clock's epoch (which may be recent: a bucket is given its start level).
    TokenBucket() = default;
    /// Holding `tokens` at `now`.
    TokenBucket(double tokens, Clock::time_point now) noexcept : tokens_(tokens), at_(now) {}

    /// The level at `now`: refilled since the last use, never more than the depth. Does not
    /// change the bucket. A `now` earlier than the last use (another thread's clock reading)
    /// refills nothing.
    double level(const TokenRate& rate, Clock::time_point now) const noexcept {
        const std::chrono::duration<double> elapsed = now - at_;
        return std::min(rate.depth, tokens_ + std::max(0.0, elapsed.count()) * rate.per_s);
    }

    /// Refills to `now`, then takes `amount` if the bucket holds it. An amount larger than the
    /// depth takes a full bucket, so that the largest cost still passes, at the bucket's pace.
    /// False: nothing is taken.
    [[nodiscard]] bool try_take(double amount, const TokenRate& rate,
                                Clock::time_point now) noexcept {
        tokens_ = level(rate, now);
        at_ = std::max(at_, now);
        const double need = std::min(amount, rate.depth);
        if (tokens_ < need) {
            return false;
        }
        tokens_ -= need;
        return true;
    }

    /// How long until the bucket holds `amount` (capped at the depth, as try_take takes it); zero
    /// when it does now. Meaningless with a rate of 0 (infinite).
    std::chrono::duration<double> time_until(double amount, const TokenRate& rate,
                                             Clock::time_point now) const noexcept {
        const double missing = std::min(amount, rate.depth) - level(rate, now);
        return std::chrono::duration<double>(missing <= 0 ? 0.0 : missing / rate.per_s);
    }

private:
    double tokens_ = 0;
    Clock::time_point at_{};
};

}  // namespace hearth::util
