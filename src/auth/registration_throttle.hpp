#pragma once

// Bounds self-service account creation (a front-end's `register`), which costs the server one
// password hash each: a token bucket per client address (IPv6 by its /64, which one subscriber
// usually holds whole) and one per door. Accounts made by operators never pass here.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/token_bucket.hpp"

namespace hearth::auth {

struct RegistrationPolicy {
    std::uint32_t per_address_per_hour = 20;  // bucket size, refilled evenly over an hour
    std::uint32_t per_door_per_minute = 60;   // bucket size, refilled evenly over a minute
    std::size_t max_addresses = 100'000;      // tracked addresses (see try_take)
};

/// The key an address is counted under: an IPv4 address as it is ("203.0.113.7", also when
/// written IPv4-mapped), an IPv6 address by its /64 ("2001:db8:1:2::/64"), anything unparsable as
/// given (bounded to 64 bytes).
std::string address_key(std::string_view address);

/// Thread-safe (one mutex, held for two map lookups).
class RegistrationThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit RegistrationThrottle(RegistrationPolicy policy = {}) : policy_(policy) {}

    /// Takes one registration for `door` from `address`: true when both buckets had one. Nothing
    /// is taken when either is empty. When max_addresses are tracked, addresses whose bucket has
    /// refilled are forgotten; if none has, the registration is refused (fail closed: the door's
    /// own bucket already bounds how fast new addresses can arrive).
    bool try_take(std::string_view door, std::string_view address, Clock::time_point now);

    void set_policy(const RegistrationPolicy& policy);
    std::size_t tracked_addresses() const;

private:
    mutable std::mutex mutex_;
    RegistrationPolicy policy_;
    std::unordered_map<std::string, util::TokenBucket> addresses_;
    std::unordered_map<std::string, util::TokenBucket> doors_;  // a handful: one per front-end
};

}  // namespace hearth::auth
