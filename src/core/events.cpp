#include "core/events.hpp"
#include <algorithm>

namespace hearth::core {

EventRing::EventRing(std::size_t capacity) : capacity_(capacity) {}

void EventRing::record(std::string kind, std::string subject, std::string detail) {
    std::lock_guard lock(mutex_);
    const std::uint64_t seq = next_seq_++;
    if (capacity_ == 0) {
        ++dropped_;
        return;
    }
    if (events_.size() == capacity_) {
        events_.pop_front();
        ++dropped_;
    }
    // The time is taken under the lock so that times never go backwards as seq goes forwards.
    events_.push_back({seq, std::chrono::system_clock::now(), std::move(kind), std::move(subject),
                       std::move(detail)});
}

std::vector<Event> EventRing::recent(std::size_t max, std::uint64_t after_seq) const {
    std::lock_guard lock(mutex_);
    if (events_.empty() || max == 0) {
        return {};
    }
    // Kept events have consecutive seqs, so the first one after `after_seq` is found by arithmetic.
    const std::uint64_t first_seq = events_.front().seq;
    std::size_t begin =
        after_seq < first_seq ? 0 : static_cast<std::size_t>(after_seq - first_seq + 1);
    if (begin >= events_.size()) {
        return {};
    }
    begin = std::max(begin, events_.size() - std::min(max, events_.size()));
    return {events_.begin() + static_cast<std::ptrdiff_t>(begin), events_.end()};
}

std::size_t EventRing::capacity() const {
    std::lock_guard lock(mutex_);
    return capacity_;
}

std::uint64_t EventRing::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

}  // namespace hearth::core
