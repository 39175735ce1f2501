#pragma once

// Validated tokens, so that a busy client does not cost a store read per request. Bounded in size
// and in age: an entry is trusted for at most `max_age` (1 s by default), so a revocation made on
// another node takes effect here within that time; a revocation on this node erases the entry at
// once.

#include <chrono>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "auth/principal.hpp"

namespace hearth::auth {

/// Thread-safe (one mutex, held for a lookup).
class TokenCache {
public:
    using Clock = std::chrono::steady_clock;

    TokenCache(std::size_t max_entries, std::chrono::milliseconds max_age)
        : max_entries_(std::max<std::size_t>(1, max_entries)), max_age_(max_age) {}

    /// The principal of a token digest validated less than max_age ago and not expired since.
    std::optional<Principal> get(const std::string& digest, Clock::time_point now,
                                 std::chrono::system_clock::time_point wall_now);
    /// Remembers a validated token; at the bound the least recently used entry goes.
    void put(const std::string& digest, Principal principal, Clock::time_point now);
    /// Forgets one token (revoked, logged out).
    void erase(const std::string& digest);
    /// Forgets every token of an account (disabled, deleted, roles changed).
    void erase_account(std::uint64_t account_id);
    std::size_t size() const;

private:
    struct Entry {
        Principal principal;
        Clock::time_point validated;
        std::list<std::string>::iterator order;
    };

    mutable std::mutex mutex_;
    std::size_t max_entries_;
    std::chrono::milliseconds max_age_;
    std::unordered_map<std::string, Entry> entries_;
    std::list<std::string> recency_;  // least recently used first
};

}  // namespace hearth::auth
