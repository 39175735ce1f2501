#include "frontends/moonshare/token_pace.hpp"
#include <iterator>

namespace hearth::frontends::moonshare {

TokenPace::Verdict TokenPace::take(std::string key, Clock::time_point now) {
    Verdict verdict;
    if (limits_.per_minute == 0) {
        return verdict;
    }
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
        it = entries_.emplace(std::move(key), Entry{now, 0, false, {}}).first;
        it->second.lru = std::prev(fresh_.end());
    } else {
        auto& in = it->second.authenticated ? known_ : fresh_;
        in.splice(in.end(), in, it->second.lru);  // the most recently seen
    }
    auto& w = it->second;
    if (now - w.start >= std::chrono::minutes(1)) {
        w.start = now;
        w.count = 0;
    }
    if (w.count >= limits_.per_minute) {
        verdict.allowed = false;
        verdict.first_refusal = w.count++ == limits_.per_minute;
        return verdict;
    }
    ++w.count;
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
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (now - it->second.start >= std::chrono::minutes(1)) {
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
