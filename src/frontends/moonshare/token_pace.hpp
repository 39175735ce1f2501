#pragma once

// The pace of Moonshare's token requests per client address (token_requests_per_ip_per_min,
// max_paced_addresses; docs/protocol/moonshare.md, "Token endpoint"): each token is a row in the
// store until a day after it expires, so that one script cannot fill it. Each address has a
// util::TokenBucket of token_requests_per_ip_per_min tokens, refilled evenly over a minute: a
// whole minute's requests at once, then one every 60/N seconds. Thread-safe: one mutex, held for
// a hash lookup and a list splice, never with another lock. Time is passed in.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "util/token_bucket.hpp"

namespace hearth::frontends::moonshare {

class TokenPace {
public:
    using Clock = std::chrono::steady_clock;

    struct Limits {
        std::uint64_t per_minute = 60;       // token_requests_per_ip_per_min; 0: unlimited
        std::size_t max_addresses = 10'000;  // max_paced_addresses
    };
    explicit TokenPace(Limits limits) : limits_(limits) {}

    struct Verdict {
        bool allowed = true;
        bool first_refusal = false;  // the address's first refusal in a minute: log it
        std::size_t evicted = 0;     // addresses forgotten to make room for this one
    };

    /// Counts a token request from the address `key` (IPv6 by /64). At most max_addresses are
    /// tracked: a new address takes the place of the least recently seen, among those that never
    /// authenticated a player if there is one. Refusing newcomers instead would let whoever fills
    /// the table (an IPv6 client rotating prefixes, a botnet) lock every new player out; the cost
    /// is that a client cycling through more prefixes than the table holds gets a fresh count
    /// each time it comes back (max_bindings still bounds the user ids it can hold).
    Verdict take(std::string key, Clock::time_point now);

    /// A player from `key` authenticated: its address is kept longest.
    void authenticated(const std::string& key);

    /// Forgets the addresses whose bucket has refilled: a new address starts full, so they hold
    /// no state worth keeping.
    void prune(Clock::time_point now);

    std::size_t tracked() const;

private:
    struct Entry {
        util::TokenBucket tokens;
        Clock::time_point logged = Clock::time_point::min();  // its last refusal logged
        bool authenticated = false;            // a player authenticated from the address
        std::list<std::string>::iterator lru;  // its place in fresh_ or known_
    };

    util::TokenRate rate() const noexcept;

    const Limits limits_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;  // by address key
    std::list<std::string> fresh_;  // never authenticated, least recently seen first
    std::list<std::string> known_;  // authenticated a player, least recently seen first
};

}  // namespace hearth::frontends::moonshare
