#pragma once

// The per-address rate limit of POST /logs/add (docs/logs.md, "Bounds and metrics"): a token
// bucket of bytes per client address (IPv6 by its /64, as auth's registration throttle counts),
// in a table of bounded size whose least recently used address is forgotten first.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/token_bucket.hpp"

namespace hearth::logs {

/// How fast one client address may post ([logs] add_bytes_per_s, add_burst_bytes,
/// add_max_addresses).
struct AddRate {
    std::uint64_t bytes_per_s = 64 * 1024;  // refill rate; 0: no limit
    std::uint64_t burst_bytes = 1 << 20;    // bucket size: at least one largest body
    std::size_t max_addresses = 100'000;    // tracked addresses; past it the least recently used go
    bool operator==(const AddRate&) const = default;
};

/// What one request costs: its body, at least this much, so that a flood of tiny posts is bounded
/// in requests too.
inline constexpr std::uint64_t kMinAddCostBytes = 1024;

/// The client address an "ip:port" or "[ipv6]:port" peer is counted under (auth::address_key of
/// its address part).
std::string add_address_key(std::string_view peer);

/// Token buckets per address. Thread-safe: one mutex, held for a hash lookup and a list splice.
class AddThrottle {
public:
    using Clock = std::chrono::steady_clock;

    explicit AddThrottle(AddRate rate = {}) : rate_(rate) {}

    /// Takes `bytes` (at least kMinAddCostBytes) from `peer`'s bucket. nullopt when taken; else
    /// nothing is taken and the answer is how long until the bucket holds enough (a whole second
    /// at least, for Retry-After). A new address starts with a full bucket; when max_addresses
    /// are tracked, the least recently used one is forgotten if its bucket has refilled
    /// (`evicted` says so); if it has not, the new address waits (fail closed).
    std::optional<std::chrono::seconds> try_take(std::string_view peer, std::uint64_t bytes,
                                                 Clock::time_point now, bool* evicted = nullptr);

    /// Applies a new rate; buckets keep their level (capped at the new burst).
    void set_rate(const AddRate& rate);
    std::size_t tracked_addresses() const;

private:
    struct Bucket {
        util::TokenBucket tokens;
        std::list<std::string>::iterator lru;  // its key's place in lru_
    };

    mutable std::mutex mutex_;
    AddRate rate_;
    std::unordered_map<std::string, Bucket> buckets_;
    std::list<std::string> lru_;  // keys, most recently used first
};

}  // namespace hearth::logs
