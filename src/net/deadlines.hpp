#pragma once

// The deadlines of every connection of one io thread, kept by one Asio timer.

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace hearth::net {

class Deadlines;

/// A connection with a deadline (idle, ping, write stall, closing handshake). Runs on: its io
/// thread, like the Deadlines that schedules it.
class DeadlineClient {
public:
    virtual ~DeadlineClient() = default;

    /// The scheduled time has come. The client is no longer scheduled; it schedules itself again
    /// if it still needs to.
    virtual void on_deadline() = 0;

    bool deadline_scheduled() const noexcept { return slot_ != 0; }
    std::chrono::steady_clock::time_point scheduled_deadline() const noexcept { return when_; }

private:
    friend class Deadlines;
    std::chrono::steady_clock::time_point when_{};
    std::uint32_t slot_ = 0;  // heap position + 1; 0: not scheduled
};

/// One timer per io thread instead of one per connection: an idle connection then owns no Asio
/// timer (120 bytes) and no pending wait operation (about 100 more), which is most of what an idle
/// connection would otherwise cost beyond its socket. A binary min-heap whose entries know their
/// position, so moving a deadline is O(log n) and a client is never in it twice; Asio has no such
/// structure to reuse (its timer queue allocates an operation per wait).
///
/// The heap holds a strong reference to each scheduled client, as the pending wait of an Asio
/// timer did: a connection lives while it has a deadline. `clear` drops them all (the server
/// calls it once the io threads have stopped, to break the cycle through the server state).
/// Runs on: its io thread; not thread-safe.
class Deadlines {
public:
    using Clock = std::chrono::steady_clock;

    explicit Deadlines(boost::asio::io_context& io);
    Deadlines(const Deadlines&) = delete;
    Deadlines& operator=(const Deadlines&) = delete;

    /// Schedules `client` at `when`, or moves its deadline there when it is scheduled already.
    void schedule(std::shared_ptr<DeadlineClient> client, Clock::time_point when);
    /// Unschedules `client`; nothing when it is not scheduled.
    void cancel(DeadlineClient& client) noexcept;
    /// Unschedules everything without calling anyone; the timer is cancelled.
    void clear() noexcept;

    std::size_t size() const noexcept { return heap_.size(); }

private:
    struct Entry {
        Clock::time_point when;
        std::shared_ptr<DeadlineClient> client;
    };

    void place(std::size_t i, Entry e) noexcept;
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    void remove_at(std::size_t i) noexcept;
    void rearm();
    void on_timer();

    std::vector<Entry> heap_;
    boost::asio::steady_timer timer_;
    Clock::time_point armed_ = Clock::time_point::max();  // when the Asio timer fires; max: idle
};

}  // namespace hearth::net
