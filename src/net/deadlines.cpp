#include "net/deadlines.hpp"
#include <utility>

namespace hearth::net {

Deadlines::Deadlines(boost::asio::io_context& io) : timer_(io) {}

void Deadlines::place(std::size_t i, Entry e) noexcept {
    e.client->slot_ = static_cast<std::uint32_t>(i + 1);
    heap_[i] = std::move(e);
}

void Deadlines::sift_up(std::size_t i) noexcept {
    Entry e = std::move(heap_[i]);
    while (i > 0) {
        const std::size_t parent = (i - 1) / 2;
        if (heap_[parent].when <= e.when) {
            break;
        }
        place(i, std::move(heap_[parent]));
        i = parent;
    }
    place(i, std::move(e));
}

void Deadlines::sift_down(std::size_t i) noexcept {
    Entry e = std::move(heap_[i]);
    const std::size_t n = heap_.size();
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && heap_[child + 1].when < heap_[child].when) {
            ++child;
        }
        if (e.when <= heap_[child].when) {
            break;
        }
        place(i, std::move(heap_[child]));
        i = child;
    }
    place(i, std::move(e));
}

void Deadlines::schedule(std::shared_ptr<DeadlineClient> client, Clock::time_point when) {
    DeadlineClient& c = *client;
    c.when_ = when;
    if (c.slot_ != 0) {
        const std::size_t i = c.slot_ - 1;
        const bool earlier = when < heap_[i].when;
        heap_[i].when = when;
        if (earlier) {
            sift_up(i);
        } else {
            sift_down(i);
        }
    } else {
        heap_.push_back(Entry{when, std::move(client)});
        sift_up(heap_.size() - 1);
    }
    if (heap_.front().when < armed_) {
        rearm();
    }
}

void Deadlines::remove_at(std::size_t i) noexcept {
    heap_[i].client->slot_ = 0;
    const std::size_t last = heap_.size() - 1;
    if (i != last) {
        heap_[i] = std::move(heap_[last]);
        heap_[i].client->slot_ = static_cast<std::uint32_t>(i + 1);
        heap_.pop_back();
        if (i > 0 && heap_[i].when < heap_[(i - 1) / 2].when) {
            sift_up(i);
        } else {
            sift_down(i);
        }
    } else {
        heap_.pop_back();
    }
    if (heap_.empty() && heap_.capacity() > 1024) {
        std::vector<Entry>().swap(heap_);  // a burst of connections is over: give the memory back
    }
}

void Deadlines::cancel(DeadlineClient& client) noexcept {
    if (client.slot_ == 0) {
        return;
    }
    // The caller may hold its last reference only through the heap: keep it until we are done.
    auto keep = heap_[client.slot_ - 1].client;
    remove_at(client.slot_ - 1);
    // The Asio timer stays armed: firing early for a cancelled deadline costs one wake-up, while
    // re-arming on every cancel would cost a wait operation each time.
}

void Deadlines::clear() noexcept {
    for (auto& e : heap_) {
        e.client->slot_ = 0;
    }
    // Moved out first: a client's destructor must not find itself in a heap being destroyed.
    auto entries = std::move(heap_);
    heap_.clear();
    timer_.cancel();
    armed_ = Clock::time_point::max();
    entries.clear();
}

void Deadlines::rearm() {
    armed_ = heap_.front().when;
    timer_.expires_at(armed_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) {
            return;  // re-armed for an earlier deadline, or cleared
        }
        on_timer();
    });
}

void Deadlines::on_timer() {
    armed_ = Clock::time_point::max();
    const auto now = Clock::now();
    // One client at a time: a client may cancel or schedule others (or itself) from its callback.
    while (!heap_.empty() && heap_.front().when <= now) {
        auto client = heap_.front().client;
        remove_at(0);
        client->on_deadline();
    }
    if (!heap_.empty() && heap_.front().when < armed_) {
        rearm();
    }
}

}  // namespace hearth::net
