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

std::optional<std::chrono::milliseconds> LoginThrottle::wait_before_attempt(const std::string& key,
                                                                            Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    if (now - it->second.last_failure >= policy_.forget_after) {
        recency_.erase(it->second.order);
        entries_.erase(it);
        return std::nullopt;
    }
    const auto allowed_at = it->second.last_failure + delay_after(it->second.failures);
    if (now >= allowed_at) {
        return std::nullopt;
    }
    // Rounded up: a client that waits exactly this long is allowed.
    return std::chrono::ceil<std::chrono::milliseconds>(allowed_at - now);
}

void LoginThrottle::failed(const std::string& key, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (entries_.size() >= std::max<std::size_t>(1, policy_.max_keys)) {
            entries_.erase(recency_.front());
            recency_.pop_front();
        }
        recency_.push_back(key);
        it = entries_.emplace(key, Entry{0, now, std::prev(recency_.end())}).first;
    } else if (now - it->second.last_failure >= policy_.forget_after) {
        it->second.failures = 0;
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
