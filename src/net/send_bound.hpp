#pragma once

// The outbound bound of one connection as the threads that send to it see it: what other threads
// posted to the connection's thread and it has not queued yet counts against the same bound as
// what is queued, decided by the sending thread at the moment of the send. Shared by raw TCP
// (net/tcp_connection.cpp) and WebSocket (net/ws_connection.hpp) connections.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace hearth::net {

/// Posted and queued bytes of one connection against its `max_outbound_bytes`. Pure logic (no
/// I/O, no posting), unit-tested without sockets.
///
/// Threads: `reserve` and `overflowed` from any thread; the rest from the connection's thread.
/// Invariant (but for one payload bigger than the whole bound, accepted when nothing is queued
/// or posted): posted + queued <= max, so what other threads can make a connection hold while its
/// thread is busy is bounded as what its own thread queues is. A send from another thread that
/// would break it is refused at once, on the sending thread, before anything is allocated for it
/// on the connection's thread: the caller applies its slow-consumer policy.
class SendBound {
public:
    explicit SendBound(std::size_t max_bytes) noexcept : max_(max_bytes) {}

    /// Connection thread: the bound from now on (a settings reload).
    void set_max(std::size_t max_bytes) noexcept {
        max_.store(max_bytes, std::memory_order_relaxed);
    }
    std::size_t max() const noexcept { return max_.load(std::memory_order_relaxed); }

    /// Any thread: reserves `bytes` for a send about to be posted to the connection's thread.
    /// False: over the bound; nothing is reserved.
    [[nodiscard]] bool reserve(std::size_t bytes) noexcept {
        const std::size_t max_bytes = max();
        // `queued_` may be a little stale: the connection's thread publishes it after each change,
        // and what it publishes never dips below the truth for long (a posted send's bytes are
        // published as queued before they stop counting as posted).
        const std::size_t queued = queued_.load(std::memory_order_relaxed);
        const std::uint64_t word = posted_.fetch_add(bytes, std::memory_order_acq_rel);
        const std::size_t before = word & kBytes;
        if ((word & kOverflowed) != 0 ||
            (before + queued > 0 && before + queued + bytes > max_bytes)) {
            posted_.fetch_sub(bytes, std::memory_order_acq_rel);
            return false;
        }
        return true;
    }

    /// Connection thread: whether a send of `bytes` made there fits beside `queued` (the outbox's
    /// data bytes, exact on this thread) and what other threads posted.
    [[nodiscard]] bool fits(std::size_t bytes, std::size_t queued) const noexcept {
        const std::size_t held = queued + posted_bytes();
        return held == 0 || held + bytes <= max();
    }

    /// Connection thread: a reserved send ran (its bytes are queued, or it was dropped). Call it
    /// after `set_queued` has published them.
    void release(std::size_t bytes) noexcept {
        posted_.fetch_sub(bytes, std::memory_order_acq_rel);
    }

    /// Connection thread: the outbox's data bytes, published for `reserve` on other threads.
    void set_queued(std::size_t bytes) noexcept { queued_.store(bytes, std::memory_order_relaxed); }

    /// Whether sends posted by other threads have yet to run on the connection's thread: a send
    /// (or a close) made there now must be posted behind them, or it would overtake them.
    bool posted() const noexcept { return posted_bytes() != 0; }
    std::size_t posted_bytes() const noexcept {
        return posted_.load(std::memory_order_acquire) & kBytes;
    }

    /// Any thread: nothing is posted or queued (as last published), and the bound was never
    /// overflowed: the connection keeps up with what it is sent.
    bool idle() const noexcept {
        return posted_.load(std::memory_order_acquire) == 0 &&
               queued_.load(std::memory_order_relaxed) == 0;
    }

    /// Any thread: marks the connection as overflowed; true for the first caller only, who closes
    /// it and counts it. Later reservations are refused.
    [[nodiscard]] bool overflow() noexcept {
        return (posted_.fetch_or(kOverflowed, std::memory_order_acq_rel) & kOverflowed) == 0;
    }
    bool overflowed() const noexcept {
        return (posted_.load(std::memory_order_acquire) & kOverflowed) != 0;
    }

private:
    // The flag shares the posted bytes' word: a reservation reads both in its one atomic add, and
    // an idle WebSocket connection pays 24 bytes for this class, not 32.
    static constexpr std::uint64_t kOverflowed = std::uint64_t{1} << 63;
    static constexpr std::uint64_t kBytes = kOverflowed - 1;

    std::atomic<std::uint64_t> posted_{0};  // reserved by other threads, not yet run here; the flag
    std::atomic<std::size_t> queued_{0};    // the outbox's data bytes, as last published
    std::atomic<std::size_t> max_;          // set by the connection's thread, read by senders
};

static_assert(sizeof(SendBound) == 24, "every idle WebSocket connection holds one");

}  // namespace hearth::net
