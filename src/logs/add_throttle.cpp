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

namespace {

// A whole second at least, for Retry-After.
std::chrono::seconds retry_after(std::chrono::duration<double> wait) {
    return std::chrono::seconds(std::max<std::int64_t>(1, std::llround(std::ceil(wait.count()))));
}

}  // namespace

std::optional<std::chrono::seconds> AddThrottle::try_take(std::string_view peer,
                                                          std::uint64_t bytes,
                                                          Clock::time_point now, bool* evicted) {
    const double cost = static_cast<double>(std::max(bytes, kMinAddCostBytes));
    std::string key = add_address_key(peer);
    std::lock_guard lock(mutex_);
    if (rate_.bytes_per_s == 0) {
        return std::nullopt;
    }
    const util::TokenRate rate{static_cast<double>(rate_.bytes_per_s),
                               static_cast<double>(rate_.burst_bytes)};
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        // At the bound only buckets that have refilled are forgotten (they carry no state). If the
        // least recently seen has not, the new address waits until it has: forgetting it would
        // hand a client with many addresses a full bucket per address, and no limit at all.
        while (!lru_.empty() && buckets_.size() >= std::max<std::size_t>(1, rate_.max_addresses)) {
            const auto oldest = buckets_.find(lru_.back());
            if (oldest->second.tokens.level(rate, now) < rate.depth) {
                return retry_after(oldest->second.tokens.time_until(rate.depth, rate, now));
            }
            buckets_.erase(oldest);
            lru_.pop_back();
            if (evicted != nullptr) {
                *evicted = true;
            }
        }
        lru_.push_front(key);
        it = buckets_
                 .emplace(std::move(key), Bucket{util::TokenBucket(rate.depth, now), lru_.begin()})
                 .first;
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    // A cost over the burst (a body larger than add_burst_bytes) takes a full bucket.
    util::TokenBucket& b = it->second.tokens;
    if (b.try_take(cost, rate, now)) {
        return std::nullopt;
    }
    return retry_after(b.time_until(cost, rate, now));
}

void AddThrottle::set_rate(const AddRate& rate) {
    std::lock_guard lock(mutex_);
    rate_ = rate;  // buckets keep their level, capped at the new burst at their next use
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
