#pragma once

// The io threads seen as shards: state that belongs to a key (a hub topic, later a world zone)
// lives on the shard the key hashes to and is touched only there; other threads post to it.
// Periodic work (housekeeping, batches, ticks) runs as a timer on a shard instead of a timer of
// each subsystem's own.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/asio/post.hpp>

#include "core/post_batch.hpp"
#include "core/runtime.hpp"

namespace hearth::core {

namespace detail {
struct TimerControl;
}  // namespace detail

/// A periodic callback on one shard, made by `ShardSet::every`. Owns the callback; move-only.
///
/// Guarantee: once `cancel()` (or the destructor) returns, the callback is not running and never
/// runs again, and it has been destroyed (with what it captured): an object the callback points
/// to may be freed right after. Called while the callback runs on its shard, cancel() waits for
/// that run to end, so it must not be called from a thread the callback waits for. The exception:
/// called from inside the callback itself (directly or through what it calls), cancel() returns
/// at once; that run completes, none follows, and the callback is destroyed on its shard when the
/// run returns.
///
/// Safe from any thread, while the io threads run, while they stop and after they stopped, and
/// after the runtime is gone: the Asio timer lives with the waits on the shard (never in the
/// handle), and is destroyed there or with its io_context.
class ShardTimer {
public:
    ShardTimer() = default;
    ~ShardTimer() { cancel(); }
    ShardTimer(ShardTimer&&) noexcept = default;
    ShardTimer& operator=(ShardTimer&& other) noexcept;
    ShardTimer(const ShardTimer&) = delete;
    ShardTimer& operator=(const ShardTimer&) = delete;

    /// Stops the timer (see the class comment); the handle becomes empty. Idempotent.
    void cancel() noexcept;

    /// The period from the next wait on (the one under way keeps its expiry). Any thread.
    /// Throws std::invalid_argument unless positive.
    void set_interval(std::chrono::steady_clock::duration interval);

    /// Whether it holds a timer that was not cancelled.
    explicit operator bool() const noexcept { return control_ != nullptr; }

private:
    friend class ShardSet;
    explicit ShardTimer(std::shared_ptr<detail::TimerControl> control)
        : control_(std::move(control)) {}

    std::shared_ptr<detail::TimerControl> control_;
};

/// One shard per io thread of the runtime: shard i is io thread i. A view over the runtime,
/// cheap to copy (copies are interchangeable); the runtime must outlive it (not its timers).
///
/// Bounds: `post` and `dispatch` go to Asio's queue of the shard, as any post to an io thread,
/// unbounded: callers bound what they post (the hub posts one job per operation a connection
/// makes, and connections are bounded by their rate limits and outboxes). A timer costs one
/// pending wait and never queues more than one run.
class ShardSet {
public:
    explicit ShardSet(Runtime& runtime) noexcept : runtime_(&runtime) {}

    std::size_t size() const noexcept { return runtime_->io_thread_count(); }

    /// The shard that owns `key`: always the same for the same key in a process (and across runs
    /// of the same build: libstdc++'s string hash, a Murmur hash with a fixed seed). The same
    /// shard as std::hash<std::string> modulo size() gives, which is where the hub has always
    /// put its topics.
    std::size_t shard_of(std::string_view key) const noexcept { return shard_of(key, size()); }
    static std::size_t shard_of(std::string_view key, std::size_t shards) noexcept {
        return std::hash<std::string_view>{}(key) % shards;
    }

    /// The shard the calling thread is, nullopt off the io threads.
    static std::optional<std::size_t> current() noexcept {
        const int index = Runtime::current_io_thread();
        if (index < 0) {
            return std::nullopt;
        }
        return static_cast<std::size_t>(index);
    }
    static bool on(std::size_t shard) noexcept { return current() == shard; }

    /// Runs `f` on `shard`'s io thread, later (never inline). Any thread. Dropped, not run, once
    /// the runtime stopped.
    /// Inside a PostBatch, gathered and posted in order with the batch's other posts there.
    template <class F>
    void post(std::size_t shard, F&& f) const {
        if (!PostBatch::open()) {
            boost::asio::post(runtime_->io_context(shard), std::forward<F>(f));
        } else if constexpr (std::is_copy_constructible_v<std::decay_t<F>>) {
            PostBatch::post(runtime_->io_context(shard), std::forward<F>(f));
        } else {
            PostBatch::post(
                runtime_->io_context(shard),
                [f = std::make_shared<std::decay_t<F>>(std::forward<F>(f))] { (*f)(); });
        }
    }

    /// Runs `f` now when called on `shard`, else posts it there.
    template <class F>
    void dispatch(std::size_t shard, F&& f) const {
        if (on(shard)) {
            std::forward<F>(f)();
        } else {
            post(shard, std::forward<F>(f));
        }
    }

    /// Runs `fn` on `shard` every `interval` until the returned handle is cancelled or destroyed
    /// (`ShardTimer` says what that guarantees). The first run comes one interval after the timer
    /// reaches its shard. Runs keep to a fixed rate (no drift); a run late by more than an
    /// interval is followed by one at once, then the rate resumes: missed runs are not made up
    /// in a burst. An exception from `fn` is logged and the timer goes on. Any thread, before the
    /// runtime starts too (the timer begins when it does). Throws std::invalid_argument unless
    /// `interval` is positive, std::out_of_range for a shard past size().
    [[nodiscard]] ShardTimer every(std::size_t shard, std::chrono::steady_clock::duration interval,
                                   std::function<void()> fn) const;
    /// The same, and each run is given the time it was scheduled for (by the rule above), so that
    /// the callback can tell how late it runs against the timer's own schedule rather than keep a
    /// schedule of its own that drifts from it after a late run.
    [[nodiscard]] ShardTimer every(
        std::size_t shard, std::chrono::steady_clock::duration interval,
        std::function<void(std::chrono::steady_clock::time_point scheduled)> fn) const;

    /// The runtime whose io threads the shards are (for its blocking pool).
    Runtime& runtime() const noexcept { return *runtime_; }

private:
    Runtime* runtime_;
};

}  // namespace hearth::core
