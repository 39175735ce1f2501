#pragma once

// Slows down password guessing: after a few failures for one username (or from one address), the
// next attempt is refused until a delay has passed, and the delay doubles with each further
// failure. Refusing (429 with Retry-After) rather than sleeping keeps io threads free and costs an
// attacker a round trip per guess without costing the server a hash.

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace hearth::auth {

struct ThrottlePolicy {
    std::uint32_t free_failures = 5;                  // failures before any delay
    std::chrono::milliseconds base_delay{1'000};      // after the first counted failure
    std::chrono::milliseconds max_delay{300'000};     // the doubling stops here
    std::chrono::milliseconds forget_after{900'000};  // a quiet key starts over
    std::size_t max_keys = 100'000;  // at the bound, the least recently failed key is forgotten
};

/// Thread-safe (one mutex, held for a map lookup). Keys are whatever the caller throttles on,
/// e.g. "user:alice" and "ip:203.0.113.7".
class LoginThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit LoginThrottle(ThrottlePolicy policy = {}) : policy_(policy) {}

    /// How long `key` must still wait before its next attempt; nothing when it may try now.
    std::optional<std::chrono::milliseconds> wait_before_attempt(const std::string& key,
                                                                 Clock::time_point now);
    /// Starts an attempt: nothing when it may go on (it is then in flight until failed,
    /// succeeded or cancelled), else how long to wait. Attempts in flight count as failures to
    /// come, so concurrent attempts cannot all pass the check before the first fails: at most
    /// `free_failures` run at once per key, and past the free failures one at a time.
    std::optional<std::chrono::milliseconds> try_begin(const std::string& key,
                                                       Clock::time_point now);
    /// Ends an attempt begun without a verdict (the store could not answer).
    void cancel(const std::string& key);
    /// Records a failed attempt (ending one in flight, if any).
    void failed(const std::string& key, Clock::time_point now);
    /// Forgets `key`'s failures (a successful login).
    void succeeded(const std::string& key);

    /// Keys with failures on record (for the metric and tests).
    std::size_t size() const;
    void set_policy(const ThrottlePolicy& policy);

private:
    struct Entry {
        std::uint32_t failures = 0;
        std::uint32_t in_flight = 0;
        Clock::time_point last_failure;
        std::list<std::string>::iterator order;  // its place in recency_
    };
    std::chrono::milliseconds delay_after(std::uint32_t failures) const;
    std::optional<std::chrono::milliseconds> wait_locked(const Entry& e,
                                                         Clock::time_point now) const;
    /// The entry of `key`, made (evicting the least recently failed at the bound) when absent.
    std::unordered_map<std::string, Entry>::iterator entry(const std::string& key,
                                                           Clock::time_point now);

    mutable std::mutex mutex_;
    ThrottlePolicy policy_;
    std::unordered_map<std::string, Entry> entries_;
    std::list<std::string> recency_;  // least recently failed first
};

}  // namespace hearth::auth
