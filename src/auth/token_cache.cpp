#include "auth/token_cache.hpp"

namespace hearth::auth {

std::optional<Principal> TokenCache::get(const std::string& digest, Clock::time_point now,
                                         std::chrono::system_clock::time_point wall_now) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(digest);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    if (now - it->second.validated >= max_age_ || wall_now >= it->second.principal.expires_at) {
        recency_.erase(it->second.order);
        entries_.erase(it);
        return std::nullopt;
    }
    recency_.splice(recency_.end(), recency_, it->second.order);
    return it->second.principal;
}

void TokenCache::put(const std::string& digest, Principal principal, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(digest); it != entries_.end()) {
        it->second.principal = std::move(principal);
        it->second.validated = now;
        recency_.splice(recency_.end(), recency_, it->second.order);
        return;
    }
    if (entries_.size() >= max_entries_) {
        entries_.erase(recency_.front());
        recency_.pop_front();
    }
    recency_.push_back(digest);
    entries_.emplace(digest, Entry{std::move(principal), now, std::prev(recency_.end())});
}

void TokenCache::erase(const std::string& digest) {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(digest); it != entries_.end()) {
        recency_.erase(it->second.order);
        entries_.erase(it);
    }
}

void TokenCache::erase_account(std::uint64_t account_id) {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.principal.account_id == account_id) {
            recency_.erase(it->second.order);
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
}

std::size_t TokenCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace hearth::auth
