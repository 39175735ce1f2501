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

bool RegistrationThrottle::try_take(std::string_view door, std::string_view address,
                                    Clock::time_point now) {
    const std::string key = address_key(address);
    std::lock_guard lock(mutex_);
    // Each bucket holds its hour's (or minute's) allowance and refills it evenly over that time.
    const double per_address_depth = policy_.per_address_per_hour;
    const double per_door_depth = policy_.per_door_per_minute;
    const util::TokenRate per_address{per_address_depth / 3600.0, per_address_depth};
    const util::TokenRate per_door{per_door_depth / 60.0, per_door_depth};

    auto d = doors_.find(std::string(door));
    if (d == doors_.end()) {
        d = doors_.emplace(std::string(door), util::TokenBucket(per_door_depth, now)).first;
    }

    auto a = addresses_.find(key);
    if (a == addresses_.end()) {
        if (addresses_.size() >= policy_.max_addresses) {
            for (auto it = addresses_.begin(); it != addresses_.end();) {
                it = it->second.level(per_address, now) >= per_address_depth ? addresses_.erase(it)
                                                                             : std::next(it);
            }
            if (addresses_.size() >= policy_.max_addresses) {
                return false;
            }
        }
        a = addresses_.emplace(key, util::TokenBucket(per_address_depth, now)).first;
    }

    // Both are checked before either is taken from, so that a refusal takes nothing. A whole
    // registration is needed: a bucket of depth 0 (registrations closed) never gives one.
    if (d->second.level(per_door, now) < 1 || a->second.level(per_address, now) < 1) {
        return false;
    }
    return d->second.try_take(1, per_door, now) && a->second.try_take(1, per_address, now);
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
