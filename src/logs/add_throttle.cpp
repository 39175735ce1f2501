#include "logs/add_throttle.hpp"
#include <algorithm>
#include <cmath>

#include "auth/registration_throttle.hpp"

namespace hearth::logs {

std::string add_address_key(std::string_view peer) {
    std::string_view address = peer;
    if (address.starts_with('[')) {
        address = address.substr(1, address.find(']') - 1);  // npos - 1: the rest
    } else if (const auto colon = address.rfind(':'); colon != std::string_view::npos) {
        address = address.substr(0, colon);
    }
    return auth::address_key(address);
}

std::optional<std::chrono::seconds> AddThrottle::try_take(std::string_view peer,
                                                          std::uint64_t bytes,
                                                          Clock::time_point now, bool* evicted) {
    const double cost = static_cast<double>(std::max(bytes, kMinAddCostBytes));
    std::string key = add_address_key(peer);
    std::lock_guard lock(mutex_);
    if (rate_.bytes_per_s == 0) {
        return std::nullopt;
    }
    const double capacity = static_cast<double>(rate_.burst_bytes);
    const double rate = static_cast<double>(rate_.bytes_per_s);
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        // At the bound only buckets that have refilled are forgotten (they carry no state). If the
        // least recently seen has not, the new address waits until it has: forgetting it would
        // hand a client with many addresses a full bucket per address, and no limit at all.
        while (!lru_.empty() && buckets_.size() >= std::max<std::size_t>(1, rate_.max_addresses)) {
            const auto oldest = buckets_.find(lru_.back());
            const std::chrono::duration<double> idle = now - oldest->second.at;
            const double refilled = oldest->second.tokens + std::max(0.0, idle.count()) * rate;
            if (refilled < capacity) {
                return std::chrono::seconds(std::max<std::int64_t>(
                    1, std::llround(std::ceil((capacity - refilled) / rate))));
            }
            buckets_.erase(oldest);
            lru_.pop_back();
            if (evicted != nullptr) {
                *evicted = true;
            }
        }
        lru_.push_front(key);
        it = buckets_.emplace(std::move(key), Bucket{capacity, now, lru_.begin()}).first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    Bucket& b = it->second;
    const std::chrono::duration<double> elapsed = now - b.at;
    b.tokens = std::min(capacity, b.tokens + std::max(0.0, elapsed.count()) * rate);
    b.at = now;
    // A cost over the burst (a body larger than add_burst_bytes) takes a full bucket.
    const double need = std::min(cost, capacity);
    if (b.tokens >= need) {
        b.tokens -= need;
        return std::nullopt;
    }
    const double missing = need - b.tokens;
    return std::chrono::seconds(std::max<std::int64_t>(1, std::llround(std::ceil(missing / rate))));
}

void AddThrottle::set_rate(const AddRate& rate) {
    std::lock_guard lock(mutex_);
    rate_ = rate;
    for (auto& [key, b] : buckets_) {
        b.tokens = std::min(b.tokens, static_cast<double>(rate.burst_bytes));
    }
    while (!lru_.empty() && buckets_.size() > std::max<std::size_t>(1, rate_.max_addresses)) {
        buckets_.erase(lru_.back());
        lru_.pop_back();
    }
}

std::size_t AddThrottle::tracked_addresses() const {
    std::lock_guard lock(mutex_);
    return buckets_.size();
}

}  // namespace hearth::logs
