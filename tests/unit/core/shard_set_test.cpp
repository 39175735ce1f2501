#include "core/shard_set.hpp"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace hearth::core {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;
constexpr auto kFast = 1ms;

// A value several threads change, and a wait for a condition on it with a deadline.
template <class T>
class Watched {
public:
    explicit Watched(T initial = {}) : value_(std::move(initial)) {}

    template <class F>
    void change(F&& f) {
        {
            std::lock_guard lock(mutex_);
            f(value_);
        }
        cv_.notify_all();
    }

    template <class P>
    [[nodiscard]] bool wait(P&& predicate) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, kDeadline, [&] { return predicate(value_); });
    }

    T get() {
        std::lock_guard lock(mutex_);
        return value_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    T value_;
};

// Captured by a callback: tells when the callback has been destroyed.
class Token {
public:
    explicit Token(std::function<void()> on_destroyed) : on_destroyed_(std::move(on_destroyed)) {}
    ~Token() { on_destroyed_(); }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;

private:
    std::function<void()> on_destroyed_;
};

TEST(ShardSet, ShardOfIsStableAndSpreadsKeys) {
    Runtime runtime(4, 1);
    ShardSet shards(runtime);
    ASSERT_EQ(shards.size(), 4u);
    std::vector<int> per_shard(4, 0);
    for (int i = 0; i < 4000; ++i) {
        const std::string key = "zone-" + std::to_string(i);
        const auto shard = shards.shard_of(key);
        ASSERT_LT(shard, 4u);
        EXPECT_EQ(shards.shard_of(key), shard);
        EXPECT_EQ(ShardSet::shard_of(key, 4), shard);
        // Where the hub has always put a topic of that name.
        EXPECT_EQ(std::hash<std::string>{}(key) % 4, shard);
        ++per_shard[shard];
    }
    for (int n : per_shard) {
        EXPECT_GT(n, 800);  // 1,000 each on average
    }
    // Another set over the same runtime is the same mapping.
    EXPECT_EQ(ShardSet(runtime).shard_of("native:chat"), shards.shard_of("native:chat"));
}

TEST(ShardSet, PostRunsOnTheShardsThread) {
    Runtime runtime(3, 1);
    ShardSet shards(runtime);
    runtime.start();
    EXPECT_EQ(ShardSet::current(), std::nullopt);
    Watched<std::vector<int>> seen(std::vector<int>(3, -1));
    for (std::size_t i = 0; i < 3; ++i) {
        shards.post(i, [&seen, i] {
            const int thread = Runtime::current_io_thread();
            const bool on = ShardSet::on(i) && ShardSet::current() == i;
            seen.change([&](auto& v) { v[i] = on ? thread : -2; });
        });
    }
    ASSERT_TRUE(seen.wait([](const auto& v) { return v[0] >= 0 && v[1] >= 0 && v[2] >= 0; }))
        << "a post did not run, or not on its shard";
    EXPECT_EQ(seen.get(), (std::vector<int>{0, 1, 2}));
    runtime.stop();
}

TEST(ShardSet, DispatchRunsInlineOnItsShardAndPostsElsewhere) {
    Runtime runtime(2, 1);
    ShardSet shards(runtime);
    runtime.start();
    struct Seen {
        bool inline_on_shard = false;
        int other_thread = -1;
    };
    Watched<Seen> seen;
    shards.post(0, [&] {
        bool ran = false;
        shards.dispatch(0, [&ran] { ran = true; });
        seen.change([ran](Seen& s) { s.inline_on_shard = ran; });
        shards.dispatch(1, [&seen] {
            const int t = Runtime::current_io_thread();
            seen.change([t](Seen& s) { s.other_thread = t; });
        });
    });
    ASSERT_TRUE(seen.wait([](const Seen& s) { return s.other_thread >= 0; }));
    EXPECT_TRUE(seen.get().inline_on_shard);
    EXPECT_EQ(seen.get().other_thread, 1);  // posted there, not run on shard 0
    runtime.stop();
}

TEST(ShardSet, EveryFiresRepeatedlyOnItsShard) {
    Runtime runtime(2, 1);
    ShardSet shards(runtime);
    runtime.start();
    Watched<std::vector<int>> runs;
    auto timer = shards.every(1, kFast, [&runs] {
        const int t = Runtime::current_io_thread();
        runs.change([t](auto& v) { v.push_back(t); });
    });
    EXPECT_TRUE(timer);
    ASSERT_TRUE(runs.wait([](const auto& v) { return v.size() >= 5; }));
    timer.cancel();
    EXPECT_FALSE(timer);
    for (int t : runs.get()) {
        EXPECT_EQ(t, 1);
    }
    runtime.stop();
}

// A callback measures its lateness against the time it was scheduled for: that schedule keeps a
// fixed rate, and a run that ends past its successor's time moves the schedule to its end.
TEST(ShardSet, EveryTellsEachRunTheTimeItWasScheduledFor) {
    using Clock = std::chrono::steady_clock;
    struct Run {
        Clock::time_point scheduled;
        Clock::time_point started;
        Clock::time_point finished;
    };
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    runtime.start();
    Watched<std::vector<Run>> runs;
    static constexpr auto kInterval = 2ms;
    auto timer = shards.every(0, kInterval, [&runs](Clock::time_point scheduled) {
        Run r{scheduled, Clock::now(), {}};
        if (runs.get().size() == 2) {
            // The third run overruns three intervals (by the clock, not by sleeping).
            while (Clock::now() < r.started + 3 * kInterval) {
            }
        }
        r.finished = Clock::now();
        runs.change([&r](auto& v) { v.push_back(r); });
    });
    ASSERT_TRUE(runs.wait([](const auto& v) { return v.size() >= 6; }));
    timer.cancel();
    const auto v = runs.get();
    for (std::size_t k = 0; k < v.size(); ++k) {
        EXPECT_GE(v[k].started, v[k].scheduled) << "run " << k;
        if (k + 1 < v.size()) {
            const auto next = v[k + 1].scheduled;
            EXPECT_GE(next, v[k].scheduled + kInterval) << "run " << k;
            // On the fixed rate, or moved to the end of a run that overran it.
            EXPECT_TRUE(next == v[k].scheduled + kInterval || next >= v[k].finished) << "run " << k;
        }
    }
    EXPECT_GE(v[3].scheduled, v[2].finished);  // the overrun is not made up in a burst
    runtime.stop();
}

TEST(ShardSet, EveryRefusesANonPositiveIntervalAndAShardPastTheEnd) {
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    EXPECT_THROW((void)shards.every(0, 0ms, [] {}), std::invalid_argument);
    EXPECT_THROW((void)shards.every(0, -1ms, [] {}), std::invalid_argument);
    EXPECT_THROW((void)shards.every(1, kFast, [] {}), std::out_of_range);
    auto timer = shards.every(0, kFast, [] {});
    EXPECT_THROW(timer.set_interval(0ms), std::invalid_argument);
    timer.set_interval(2ms);
}

// The guarantee the front-ends rely on when a module stops while its timer's callback runs: when
// cancel() returns on another thread, the run in progress has ended and the callback (and what it
// captured) has been destroyed.
TEST(ShardSet, CancelFromAnotherThreadWaitsForTheRunningCallback) {
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    runtime.start();
    struct State {
        int entered = 0;
        int finished = 0;
        bool cancel_called = false;
    };
    Watched<State> state;
    auto token = std::make_shared<Token>([] {});
    std::weak_ptr<Token> weak = token;
    auto timer = shards.every(0, kFast, [&state, token = std::move(token)] {
        state.change([](State& s) { ++s.entered; });
        // Held until the test thread is about to cancel, so that the cancel comes while a run is
        // under way (this one, or the next if this one ends before cancel() takes effect).
        EXPECT_TRUE(state.wait([](const State& s) { return s.cancel_called; }));
        state.change([](State& s) { ++s.finished; });
    });
    ASSERT_TRUE(state.wait([](const State& s) { return s.entered > 0; }));
    state.change([](State& s) { s.cancel_called = true; });
    timer.cancel();
    const auto after = state.get();
    EXPECT_EQ(after.finished, after.entered) << "cancel() returned while the callback ran";
    EXPECT_TRUE(weak.expired()) << "the callback outlived cancel()";
    runtime.stop();
    EXPECT_EQ(state.get().entered, after.entered) << "a run after cancel() returned";
}

TEST(ShardSet, CancelFromInsideTheCallbackEndsTheTimerAfterThatRun) {
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    Watched<int> runs(0);
    auto token = std::make_shared<Token>([&runs] { runs.change([](int&) {}); });
    std::weak_ptr<Token> weak = token;
    std::optional<ShardTimer> timer;
    // Made before the runtime starts, so that the callback never races this assignment.
    timer = shards.every(0, kFast, [&, token = std::move(token)] {
        int n = 0;
        runs.change([&n](int& r) { n = ++r; });
        if (n == 3) {
            timer->cancel();  // returns at once: waiting for this run would never end
            EXPECT_FALSE(weak.expired()) << "destroyed while running";
            timer.reset();  // the handle's destruction, from inside too
        }
    });
    runtime.start();
    ASSERT_TRUE(runs.wait([&weak](int) { return weak.expired(); }))
        << "the callback was not destroyed after the run that cancelled it";
    EXPECT_EQ(runs.get(), 3);
    runtime.stop();
    EXPECT_EQ(runs.get(), 3);
}

TEST(ShardSet, CancelBeforeTheTimerReachesItsShard) {
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    std::atomic<int> runs{0};
    auto token = std::make_shared<Token>([] {});
    std::weak_ptr<Token> weak = token;
    auto timer = shards.every(0, kFast, [&runs, token = std::move(token)] { ++runs; });
    timer.cancel();
    EXPECT_TRUE(weak.expired());
    runtime.start();
    // A timer made after the cancelled one, on the same shard, runs after its start was handled.
    Watched<int> later(0);
    auto probe = shards.every(0, kFast, [&later] { later.change([](int& n) { ++n; }); });
    ASSERT_TRUE(later.wait([](int n) { return n >= 2; }));
    EXPECT_EQ(runs.load(), 0);
    runtime.stop();
}

TEST(ShardSet, DestroyingTheHandleAfterTheRuntimeStoppedIsSafe) {
    Runtime runtime(2, 1);
    ShardSet shards(runtime);
    runtime.start();
    Watched<int> runs(0);
    auto token = std::make_shared<Token>([] {});
    std::weak_ptr<Token> weak = token;
    std::optional<ShardTimer> timer = shards.every(
        1, kFast, [&runs, token = std::move(token)] { runs.change([](int& n) { ++n; }); });
    ASSERT_TRUE(runs.wait([](int n) { return n >= 1; }));
    runtime.stop();
    timer.reset();  // its pending wait stays in the stopped io_context
    EXPECT_TRUE(weak.expired());
}

TEST(ShardSet, TheHandleMayOutliveTheRuntime) {
    auto runtime = std::make_unique<Runtime>(1, 1);
    ShardSet shards(*runtime);
    runtime->start();
    Watched<int> runs(0);
    auto running = shards.every(0, kFast, [&runs] { runs.change([](int& n) { ++n; }); });
    auto never_started = ShardSet(*runtime).every(0, 1h, [] {});
    ASSERT_TRUE(runs.wait([](int n) { return n >= 1; }));
    runtime->stop();
    runtime.reset();  // destroys the io_context with the timers' waits
    running.cancel();
    never_started.cancel();
    // A timer whose runtime never ran.
    auto idle = std::make_unique<Runtime>(1, 1);
    auto orphan = ShardSet(*idle).every(0, kFast, [] {});
    idle.reset();
}

TEST(ShardSet, AThrowingCallbackIsLoggedAndTheTimerGoesOn) {
    Runtime runtime(1, 1);
    ShardSet shards(runtime);
    runtime.start();
    Watched<int> runs(0);
    auto timer = shards.every(0, kFast, [&runs] {
        int n = 0;
        runs.change([&n](int& r) { n = ++r; });
        if (n == 1) {
            throw std::runtime_error("first run fails");
        }
    });
    ASSERT_TRUE(runs.wait([](int n) { return n >= 3; }));
    timer.cancel();
    runtime.stop();
}

// Many timers cancelled while they run, from another thread, as modules disabled under load:
// no run after its cancel returned, nothing touched after it was freed (ASan, TSan).
TEST(ShardSet, CancelRacingRunsOnSeveralShards) {
    Runtime runtime(2, 1);
    ShardSet shards(runtime);
    runtime.start();
    for (int round = 0; round < 50; ++round) {
        struct Probe {
            std::atomic<int> runs{0};
            std::atomic<bool> cancelled{false};
            std::atomic<bool> ran_after_cancel{false};
        };
        std::vector<std::unique_ptr<Probe>> probes;
        std::vector<ShardTimer> timers;
        for (std::size_t i = 0; i < 8; ++i) {
            probes.push_back(std::make_unique<Probe>());
            auto* p = probes.back().get();
            timers.push_back(shards.every(i % 2, std::chrono::microseconds(100), [p] {
                if (p->cancelled.load()) {
                    p->ran_after_cancel = true;
                }
                ++p->runs;
            }));
        }
        for (std::size_t i = 0; i < timers.size(); ++i) {
            timers[i].cancel();
            probes[i]->cancelled = true;
        }
        for (const auto& p : probes) {
            EXPECT_FALSE(p->ran_after_cancel.load());
        }
        probes.clear();  // freed at once: a late run would touch freed memory
    }
    runtime.stop();
}

}  // namespace
}  // namespace hearth::core
