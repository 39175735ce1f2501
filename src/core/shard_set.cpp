#include "core/shard_set.hpp"
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/steady_timer.hpp>

#include "util/log.hpp"

namespace hearth::core {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t checked_interval(Clock::duration interval) {
    if (interval <= Clock::duration::zero()) {
        throw std::invalid_argument("shard timer: the interval must be positive");
    }
    return interval.count();
}

struct Waiter;

}  // namespace

namespace detail {

// What the handle and the waits share. The Asio timer is not here: the handle may outlive the
// io_context, and a timer must be destroyed on its thread or with its context (Waiter).
struct TimerControl {
    std::mutex mutex;
    std::condition_variable idle;  // signalled when a run ends
    bool cancelled = false;
    bool running = false;
    std::thread::id runner;  // the shard's thread, while running
    // Whether a Waiter exists: then its io_context does too, and a cancel may post to it. Both
    // change under `mutex`, so a post never races the context's destruction (which destroys the
    // Waiter, which takes `mutex`).
    bool waiting = false;
    std::weak_ptr<Waiter> waiter;
    std::function<void(Clock::time_point)> fn;  // given the time the run was scheduled for
    std::atomic<Clock::rep> interval;
    boost::asio::io_context* io = nullptr;

    TimerControl(Clock::duration i, std::function<void(Clock::time_point)> f,
                 boost::asio::io_context& c)
        : fn(std::move(f)), interval(checked_interval(i)), io(&c) {}
};

}  // namespace detail

namespace {

// The timer and its chain of waits, on the shard's thread. Owned by its pending operation (the
// wait, or the post that starts it): destroyed on the shard when the chain ends, or with the
// io_context when the runtime is destroyed first (Asio destroys pending handlers then, which is
// what that ownership is for).
struct Waiter {
    Waiter(boost::asio::io_context& io, std::shared_ptr<detail::TimerControl> c)
        : timer(io), control(std::move(c)), due(Clock::now()) {}
    ~Waiter() {
        std::lock_guard lock(control->mutex);
        control->waiting = false;
    }
    Waiter(const Waiter&) = delete;
    Waiter& operator=(const Waiter&) = delete;

    boost::asio::steady_timer timer;
    std::shared_ptr<detail::TimerControl> control;
    Clock::time_point due;
};

void arm(std::shared_ptr<Waiter> w);

void fire(std::shared_ptr<Waiter> w) {
    auto& c = *w->control;
    {
        std::lock_guard lock(c.mutex);
        if (c.cancelled) {
            return;
        }
        c.running = true;
        c.runner = std::this_thread::get_id();
    }
    // `fn` is used without the lock: cancel() leaves it alone while `running` is set.
    try {
        c.fn(w->due);
    } catch (const std::exception& e) {
        util::logger("core")->error("shard timer: the callback threw: {}", e.what());
    } catch (...) {
        util::logger("core")->error("shard timer: the callback threw");
    }
    bool cancelled = false;
    {
        std::lock_guard lock(c.mutex);
        cancelled = c.cancelled;
        if (!cancelled) {
            c.running = false;
            c.runner = {};
        }
    }
    if (!cancelled) {
        arm(std::move(w));
        return;
    }
    // Cancelled by this run, or by another thread that waits for it to end: the callback is
    // destroyed before the run is over, and outside the lock (what it captured may cancel
    // timers, this one included: that cancel sees the run on its own thread and returns).
    {
        auto gone = std::move(c.fn);
        c.fn = nullptr;
    }
    {
        std::lock_guard lock(c.mutex);
        c.running = false;
        c.runner = {};
    }
    c.idle.notify_all();
}

void arm(std::shared_ptr<Waiter> w) {
    const auto interval = Clock::duration(w->control->interval.load(std::memory_order_relaxed));
    w->due = std::max(w->due + interval, Clock::now());
    w->timer.expires_at(w->due);
    auto& timer = w->timer;
    timer.async_wait([w = std::move(w)](const boost::system::error_code& ec) mutable {
        if (ec) {
            return;  // cancelled: only cancel() cancels it
        }
        fire(std::move(w));
    });
}

}  // namespace

ShardTimer& ShardTimer::operator=(ShardTimer&& other) noexcept {
    if (this != &other) {
        cancel();
        control_ = std::move(other.control_);
    }
    return *this;
}

void ShardTimer::cancel() noexcept {
    if (!control_) {
        return;
    }
    auto control = std::move(control_);
    control_.reset();
    auto& c = *control;
    decltype(c.fn) gone;  // destroyed after the lock is released
    {
        std::unique_lock lock(c.mutex);
        c.cancelled = true;
        if (c.running && c.runner == std::this_thread::get_id()) {
            return;  // from inside the callback: fire() destroys it when the run returns
        }
        c.idle.wait(lock, [&c] { return !c.running; });
        gone = std::move(c.fn);
        c.fn = nullptr;
        if (c.waiting) {
            // Ends the pending wait now rather than at its expiry, so that the Waiter goes. A
            // stopped runtime drops this; the Waiter then goes with its io_context.
            boost::asio::post(*c.io, [weak = c.waiter] {
                if (auto w = weak.lock()) {
                    w->timer.cancel();
                }
            });
        }
    }
}

void ShardTimer::set_interval(std::chrono::steady_clock::duration interval) {
    const auto count = checked_interval(interval);
    if (control_) {
        control_->interval.store(count, std::memory_order_relaxed);
    }
}

ShardTimer ShardSet::every(std::size_t shard, std::chrono::steady_clock::duration interval,
                           std::function<void()> fn) const {
    if (!fn) {
        throw std::invalid_argument("shard timer: the callback is empty");
    }
    return every(shard, interval,
                 [fn = std::move(fn)](std::chrono::steady_clock::time_point) { fn(); });
}

ShardTimer ShardSet::every(std::size_t shard, std::chrono::steady_clock::duration interval,
                           std::function<void(std::chrono::steady_clock::time_point)> fn) const {
    if (!fn) {
        throw std::invalid_argument("shard timer: the callback is empty");
    }
    auto& io = runtime_->io_context(shard);
    auto control = std::make_shared<detail::TimerControl>(interval, std::move(fn), io);
    boost::asio::post(io, [control, &io] {
        std::shared_ptr<Waiter> w;
        {
            std::lock_guard lock(control->mutex);
            if (control->cancelled) {
                return;
            }
            w = std::make_shared<Waiter>(io, control);
            control->waiter = w;
            control->waiting = true;
        }
        arm(std::move(w));
    });
    return ShardTimer(std::move(control));
}

}  // namespace hearth::core
