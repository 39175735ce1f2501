#include "auth/registration_throttle.hpp"
#include <algorithm>
#include <array>
#include <cstdio>

#include <arpa/inet.h>

namespace hearth::auth {

namespace {

constexpr std::size_t kMaxUnparsedKeyBytes = 64;

}  // namespace

std::string address_key(std::string_view address) {
    // inet_pton needs a terminated string; an address is at most 45 characters (and a zone id).
    if (address.size() >= INET6_ADDRSTRLEN) {
        return std::string(address.substr(0, kMaxUnparsedKeyBytes));
    }
    char text[INET6_ADDRSTRLEN] = {};
    std::copy(address.begin(), address.end(), text);
    std::array<unsigned char, 16> v6{};
    if (inet_pton(AF_INET6, text, v6.data()) == 1) {
        constexpr std::array<unsigned char, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::equal(kMapped.begin(), kMapped.end(), v6.begin())) {
            char v4[INET_ADDRSTRLEN] = {};
            inet_ntop(AF_INET, v6.data() + 12, v4, sizeof v4);
            return v4;
        }
        std::fill(v6.begin() + 8, v6.end(), 0);
        char prefix[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, v6.data(), prefix, sizeof prefix);
        return std::string(prefix) + "/64";
    }
    return std::string(address);
}

void RegistrationThrottle::refill(Bucket& b, double capacity, std::chrono::duration<double> period,
                                  Clock::time_point now) {
    const std::chrono::duration<double> elapsed = now - b.at;
    b.tokens = std::min(capacity, b.tokens + elapsed / period * capacity);
    b.at = now;
}

bool RegistrationThrottle::try_take(std::string_view door, std::string_view address,
                                    Clock::time_point now) {
    using namespace std::chrono_literals;
    const std::string key = address_key(address);
    std::lock_guard lock(mutex_);
    const double per_address = policy_.per_address_per_hour;
    const double per_door = policy_.per_door_per_minute;

    auto d = doors_.find(std::string(door));
    if (d == doors_.end()) {
        d = doors_.emplace(std::string(door), Bucket{per_door, now}).first;
    }
    refill(d->second, per_door, 60s, now);

    auto a = addresses_.find(key);
    if (a == addresses_.end()) {
        if (addresses_.size() >= policy_.max_addresses) {
            for (auto it = addresses_.begin(); it != addresses_.end();) {
                refill(it->second, per_address, 3600s, now);
                it = it->second.tokens >= per_address ? addresses_.erase(it) : std::next(it);
            }
            if (addresses_.size() >= policy_.max_addresses) {
                return false;
            }
        }
        a = addresses_.emplace(key, Bucket{per_address, now}).first;
    }
    refill(a->second, per_address, 3600s, now);

    if (d->second.tokens < 1 || a->second.tokens < 1) {
        return false;
    }
    d->second.tokens -= 1;
    a->second.tokens -= 1;
    return true;
}

void RegistrationThrottle::set_policy(const RegistrationPolicy& policy) {
    std::lock_guard lock(mutex_);
    policy_ = policy;
}

std::size_t RegistrationThrottle::tracked_addresses() const {
    std::lock_guard lock(mutex_);
    return addresses_.size();
}

}  // namespace hearth::auth
