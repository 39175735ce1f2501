#pragma once

#include <atomic>
#include <cstdint>

namespace hearth::util {

/// A mutex in 4 bytes, for state that every connection has but other threads rarely touch (a
/// WebSocket's writes from other threads): std::mutex is 40 bytes on glibc, which is 40 bytes per
/// idle connection. Uncontended, lock and unlock are one atomic operation each; a contended lock
/// sleeps in the kernel (C++20 atomic wait: a futex on Linux), so a holder that is preempted does
/// not make others spin. The three states are those of Drepper's "Futexes Are Tricky" (mutex 3):
/// only an unlock that saw a waiter wakes one. No standard or Boost type offers this size.
/// Satisfies Lockable (std::lock_guard, std::unique_lock).
class SmallMutex {
public:
    void lock() noexcept {
        std::uint32_t state = kUnlocked;
        if (state_.compare_exchange_strong(state, kLocked, std::memory_order_acquire)) {
            return;
        }
        if (state != kContended) {
            state = state_.exchange(kContended, std::memory_order_acquire);
        }
        while (state != kUnlocked) {
            state_.wait(kContended, std::memory_order_relaxed);
            state = state_.exchange(kContended, std::memory_order_acquire);
        }
    }

    bool try_lock() noexcept {
        std::uint32_t state = kUnlocked;
        return state_.compare_exchange_strong(state, kLocked, std::memory_order_acquire);
    }

    void unlock() noexcept {
        if (state_.exchange(kUnlocked, std::memory_order_release) == kContended) {
            state_.notify_one();
        }
    }

private:
    static constexpr std::uint32_t kUnlocked = 0;
    static constexpr std::uint32_t kLocked = 1;
    static constexpr std::uint32_t kContended = 2;  // locked, and someone may be waiting

    std::atomic<std::uint32_t> state_{kUnlocked};
};

}  // namespace hearth::util
