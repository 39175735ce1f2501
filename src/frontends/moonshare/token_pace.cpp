#include "frontends/moonshare/token_pace.hpp"
#include <iterator>

namespace hearth::frontends::moonshare {

util::TokenRate TokenPace::rate() const noexcept {
    // The whole minute's requests at once, then refilled evenly over the minute.
    const auto per_minute = static_cast<double>(limits_.per_minute);
    return util::TokenRate{.per_s = per_minute / 60.0, .depth = per_minute};
}

TokenPace::Verdict TokenPace::take(std::string key, Clock::time_point now) {
    Verdict verdict;
    if (limits_.per_minute == 0) {
        return verdict;
    }
    const auto r = rate();
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        while (!entries_.empty() && entries_.size() >= limits_.max_addresses) {
            auto& from = fresh_.empty() ? known_ : fresh_;
            entries_.erase(from.front());
            from.pop_front();
            ++verdict.evicted;
        }
        fresh_.push_back(key);
        it = entries_
                 .emplace(
                     std::move(key),
                     Entry{util::TokenBucket(r.depth, now), Clock::time_point::min(), false, {}})
                 .first;
        it->second.lru = std::prev(fresh_.end());
    } else {
        auto& in = it->second.authenticated ? known_ : fresh_;
        in.splice(in.end(), in, it->second.lru);  // the most recently seen
    }
    auto& e = it->second;
    if (e.tokens.try_take(1, r, now)) {
        return verdict;
    }
    verdict.allowed = false;
    // One line per address and minute, however many refusals follow.
    if (e.logged <= now - std::chrono::minutes(1)) {
        e.logged = now;
        verdict.first_refusal = true;
    }
    return verdict;
}

void TokenPace::authenticated(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.authenticated) {
        return;
    }
    known_.splice(known_.end(), fresh_, it->second.lru);
    it->second.authenticated = true;
}

void TokenPace::prune(Clock::time_point now) {
    const auto r = rate();
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
        // A full bucket is what a new address starts with: forgetting it changes nothing.
        if (it->second.tokens.level(r, now) >= r.depth) {
            (it->second.authenticated ? known_ : fresh_).erase(it->second.lru);
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
}

std::size_t TokenPace::tracked() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace hearth::frontends::moonshare
