#include "auth/login_throttle.hpp"
#include <algorithm>

namespace hearth::auth {

std::chrono::milliseconds LoginThrottle::delay_after(std::uint32_t failures) const {
    if (failures <= policy_.free_failures) {
        return std::chrono::milliseconds(0);
    }
    const std::uint32_t doublings =
        std::min<std::uint32_t>(failures - policy_.free_failures - 1, 30);
    const auto delay = policy_.base_delay * (std::int64_t{1} << doublings);
    return std::min(delay, policy_.max_delay);
}

std::optional<std::chrono::milliseconds> LoginThrottle::wait_locked(const Entry& e,
                                                                    Clock::time_point now) const {
    if (e.failures + e.in_flight < policy_.free_failures) {
        return std::nullopt;
    }
    const auto allowed_at = e.last_failure + delay_after(e.failures);
    if (e.in_flight == 0 && now >= allowed_at) {
        return std::nullopt;
    }
    // Past the free failures one attempt runs at a time: the one in flight decides first.
    auto wait = allowed_at > now ? allowed_at - now : Clock::duration::zero();
    if (e.in_flight > 0) {
        wait = std::max<Clock::duration>(wait, policy_.base_delay);
    }
    // Rounded up: a client that waits exactly this long is allowed.
    return std::chrono::ceil<std::chrono::milliseconds>(wait);
}

std::optional<std::chrono::milliseconds> LoginThrottle::wait_before_attempt(const std::string& key,
                                                                            Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    // A quiet key is forgotten, unless attempts are in flight: they still count.
    if (it->second.in_flight == 0 && now - it->second.last_failure >= policy_.forget_after) {
        recency_.erase(it->second.order);
        entries_.erase(it);
        return std::nullopt;
    }
    return wait_locked(it->second, now);
}

std::unordered_map<std::string, LoginThrottle::Entry>::iterator LoginThrottle::entry(
    const std::string& key, Clock::time_point now) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (entries_.size() >= std::max<std::size_t>(1, policy_.max_keys)) {
            entries_.erase(recency_.front());
            recency_.pop_front();
        }
        recency_.push_back(key);
        // A new key has no failure: its "last failure" is far enough back to be free.
        it = entries_
                 .emplace(key, Entry{0, 0, now - policy_.forget_after, std::prev(recency_.end())})
                 .first;
    } else if (now - it->second.last_failure >= policy_.forget_after) {
        it->second.failures = 0;
    }
    return it;
}

std::optional<std::chrono::milliseconds> LoginThrottle::try_begin(const std::string& key,
                                                                  Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entry(key, now);
    auto wait = wait_locked(it->second, now);
    if (!wait) {
        ++it->second.in_flight;
    }
    return wait;
}

void LoginThrottle::cancel(const std::string& key) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end() && it->second.in_flight > 0) {
        --it->second.in_flight;
    }
}

void LoginThrottle::failed(const std::string& key, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entry(key, now);
    if (it->second.in_flight > 0) {
        --it->second.in_flight;
    }
    ++it->second.failures;
    it->second.last_failure = now;
    recency_.splice(recency_.end(), recency_, it->second.order);
}

void LoginThrottle::succeeded(const std::string& key) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) {
        recency_.erase(it->second.order);
        entries_.erase(it);
    }
}

std::size_t LoginThrottle::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

void LoginThrottle::set_policy(const ThrottlePolicy& policy) {
    std::lock_guard lock(mutex_);
    policy_ = policy;
}

}  // namespace hearth::auth
