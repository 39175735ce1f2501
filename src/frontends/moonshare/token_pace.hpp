#pragma once

// The pace of Moonshare's token requests per client address (token_requests_per_ip_per_min,
// max_paced_addresses; docs/protocol/moonshare.md, "Token endpoint"): each token is a row in the
// store until a day after it expires, so that one script cannot fill it. Thread-safe: one mutex,
// held for a hash lookup and a list splice, never with another lock. Time is passed in.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

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
        bool first_refusal = false;  // the first refusal of the address this minute: log it
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

    /// Forgets the addresses that hold no state worth keeping.
    void prune(Clock::time_point now);

    std::size_t tracked() const;

private:
    struct Entry {
        Clock::time_point start;
        std::uint64_t count = 0;
        bool authenticated = false;            // a player authenticated from the address
        std::list<std::string>::iterator lru;  // its place in fresh_ or known_
    };

    const Limits limits_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;  // by address key
    std::list<std::string> fresh_;  // never authenticated, least recently seen first
    std::list<std::string> known_;  // authenticated a player, least recently seen first
};

}  // namespace hearth::frontends::moonshare
