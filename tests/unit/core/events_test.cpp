#include "core/events.hpp"
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "core/metrics.hpp"

namespace hearth::core {
namespace {

std::vector<std::uint64_t> seqs(const std::vector<Event>& events) {
    std::vector<std::uint64_t> out;
    for (const auto& e : events) {
        out.push_back(e.seq);
    }
    return out;
}

TEST(EventBus, KeepsTheMostRecentUpToCapacity) {
    EventBus ring(3);
    EXPECT_EQ(ring.capacity(), 3u);
    EXPECT_TRUE(ring.recent(10).empty());
    for (int i = 1; i <= 5; ++i) {
        ring.publish(EventKind::kConnectionOpened, "native", "conn-" + std::to_string(i),
                     "from 127.0.0.1");
    }
    const auto events = ring.recent(10);
    EXPECT_EQ(seqs(events), (std::vector<std::uint64_t>{3, 4, 5}));
    EXPECT_EQ(events.front().subject, "conn-3");
    EXPECT_EQ(events.back().kind, EventKind::kConnectionOpened);
    EXPECT_EQ(events.back().module, "native");
    EXPECT_EQ(events.back().detail, "from 127.0.0.1");
    EXPECT_EQ(ring.dropped(), 2u);
}

TEST(EventBus, RecentReturnsTheNewestOldestFirst) {
    EventBus ring(10);
    const auto before = std::chrono::system_clock::now();
    for (int i = 0; i < 6; ++i) {
        ring.publish(EventKind::kOperatorAction, "core", "s", "d");
    }
    const auto after = std::chrono::system_clock::now();
    EXPECT_EQ(seqs(ring.recent(2)), (std::vector<std::uint64_t>{5, 6}));
    EXPECT_TRUE(ring.recent(0).empty());
    for (const auto& e : ring.recent(10)) {
        EXPECT_GE(e.time, before);
        EXPECT_LE(e.time, after);
    }
    EXPECT_EQ(ring.dropped(), 0u);
}

TEST(EventBus, AfterSeqSkipsWhatTheCallerHasSeen) {
    EventBus ring(4);
    for (int i = 0; i < 6; ++i) {
        ring.publish(EventKind::kOperatorAction, "core", std::to_string(i), "");
    }
    // Kept: 3..6.
    EXPECT_EQ(seqs(ring.recent(10, 0)), (std::vector<std::uint64_t>{3, 4, 5, 6}));
    EXPECT_EQ(seqs(ring.recent(10, 1)), (std::vector<std::uint64_t>{3, 4, 5, 6}));
    EXPECT_EQ(seqs(ring.recent(10, 4)), (std::vector<std::uint64_t>{5, 6}));
    EXPECT_EQ(seqs(ring.recent(1, 4)), (std::vector<std::uint64_t>{6}));
    EXPECT_TRUE(ring.recent(10, 6).empty());
    EXPECT_TRUE(ring.recent(10, 100).empty());
}

TEST(EventBus, ZeroCapacityKeepsNothingButCountsSeqAndDrops) {
    EventBus ring(0);
    for (int i = 0; i < 3; ++i) {
        ring.publish(EventKind::kOperatorAction, "core", "s", "d");
    }
    EXPECT_TRUE(ring.recent(10).empty());
    EXPECT_EQ(ring.dropped(), 3u);
}

TEST(EventBus, ConcurrentWritersAndReaders) {
    constexpr int kWriters = 4;
    constexpr int kEach = 1000;
    EventBus ring(100);
    std::atomic<bool> done{false};
    std::atomic<int> bad_reads{0};
    std::thread reader([&] {
        while (!done.load()) {
            const auto events = ring.recent(50);
            for (std::size_t i = 1; i < events.size(); ++i) {
                if (events[i].seq != events[i - 1].seq + 1) {
                    bad_reads.fetch_add(1);
                }
            }
        }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&ring, w] {
            for (int i = 0; i < kEach; ++i) {
                ring.publish(EventKind::kOperatorAction, "core", std::to_string(w),
                             std::to_string(i));
            }
        });
    }
    for (auto& t : writers) {
        t.join();
    }
    done.store(true);
    reader.join();
    EXPECT_EQ(bad_reads.load(), 0);
    const auto events = ring.recent(1000);
    ASSERT_EQ(events.size(), 100u);
    EXPECT_EQ(events.back().seq, std::uint64_t{kWriters} * kEach);
    EXPECT_EQ(ring.dropped(), std::uint64_t{kWriters} * kEach - 100);
}

// A client connecting in a loop triggers connection events at will: past their rate they are left
// out and counted, so that they cannot push the operators' other events out of the history.
TEST(EventBus, KindsAClientTriggersAtWillAreBoundedAndCounted) {
    MetricsRegistry metrics;
    EventBus bus(10'000);
    bus.attach_metrics(metrics);
    for (int i = 0; i < 1000; ++i) {
        bus.publish(EventKind::kConnectionOpened, "native", std::to_string(i), "opened");
    }
    bus.publish(EventKind::kConfigReloaded, "core", "hearth.toml", "applied");
    const auto opened = bus.recent(10'000, 0, {.kind = EventKind::kConnectionOpened});
    // The burst, and what the rate refilled while the loop ran (well under a second here).
    EXPECT_GE(opened.size(), 100u);
    EXPECT_LT(opened.size(), 200u);
    const auto& suppressed =
        metrics.counter("hearth_events_suppressed_total", "", {{"kind", "connection.open"}});
    EXPECT_EQ(suppressed.value() + opened.size(), 1000u);
    // A kind no client triggers is never refused.
    EXPECT_EQ(bus.recent(10, 0, {.kind = EventKind::kConfigReloaded}).size(), 1u);
}

TEST(EventBus, KindsHaveStableNames) {
    EXPECT_EQ(to_string(EventKind::kConnectionOpened), "connection.open");
    EXPECT_EQ(to_string(EventKind::kConfigRejected), "config.reload_rejected");
    for (auto kind : all_event_kinds()) {
        EXPECT_EQ(event_kind_named(to_string(kind)), kind);
    }
    EXPECT_FALSE(event_kind_named("connection.opened").has_value());
}

TEST(EventBus, RecentFiltersByKindModuleAndTime) {
    EventBus bus(100);
    bus.publish(EventKind::kConnectionOpened, "native", "c1", "");
    bus.publish(EventKind::kConnectionOpened, "homestead", "c2", "");
    bus.publish(EventKind::kConnectionClosed, "native", "c1", "");
    const auto cut = bus.recent(1).back().time;
    bus.publish(EventKind::kConnectionOpened, "native", "c3", "");

    EXPECT_EQ(seqs(bus.recent(10, 0, {.kind = EventKind::kConnectionOpened})),
              (std::vector<std::uint64_t>{1, 2, 4}));
    EXPECT_EQ(seqs(bus.recent(10, 0, {.module = "native"})), (std::vector<std::uint64_t>{1, 3, 4}));
    EXPECT_EQ(seqs(bus.recent(10, 0, {.kind = EventKind::kConnectionOpened, .module = "native"})),
              (std::vector<std::uint64_t>{1, 4}));
    // Two events may share a clock reading, so the expectation is taken from the times themselves.
    std::vector<std::uint64_t> at_or_after_cut;
    for (const auto& e : bus.recent(10)) {
        if (e.time >= cut) {
            at_or_after_cut.push_back(e.seq);
        }
    }
    ASSERT_GE(at_or_after_cut.size(), 2u);
    EXPECT_EQ(seqs(bus.recent(10, 0, {.since = cut})), at_or_after_cut);
    EXPECT_EQ(seqs(bus.recent(10, 0, {.since = cut + std::chrono::hours(1)})),
              std::vector<std::uint64_t>{});
    // The limit counts matches, newest first, and the cursor still applies.
    EXPECT_EQ(seqs(bus.recent(1, 0, {.module = "native"})), (std::vector<std::uint64_t>{4}));
    EXPECT_EQ(seqs(bus.recent(10, 1, {.module = "native"})), (std::vector<std::uint64_t>{3, 4}));
}

// Records what handlers saw, in order, from the dispatch thread.
struct Seen {
    std::mutex mutex;
    std::vector<std::string> calls;
    void add(std::string s) {
        std::lock_guard lock(mutex);
        calls.push_back(std::move(s));
    }
    std::vector<std::string> get() {
        std::lock_guard lock(mutex);
        return calls;
    }
};

TEST(EventBus, HandlersRunByPriorityAndMayStopPropagation) {
    EventBus bus(10);
    Seen seen;
    auto low = bus.subscribe(0, {}, [&](const Event& e) {
        seen.add("low:" + e.subject);
        return Propagation::kContinue;
    });
    auto high = bus.subscribe(10, {}, [&](const Event& e) {
        seen.add("high:" + e.subject);
        return e.subject == "stop" ? Propagation::kStop : Propagation::kContinue;
    });
    auto mid_a = bus.subscribe(5, {}, [&](const Event& e) {
        seen.add("midA:" + e.subject);
        return Propagation::kContinue;
    });
    auto mid_b = bus.subscribe(5, {}, [&](const Event& e) {
        seen.add("midB:" + e.subject);
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "go", "");
    bus.publish(EventKind::kOperatorAction, "core", "stop", "");
    bus.wait_dispatched();
    EXPECT_EQ(seen.get(),
              (std::vector<std::string>{"high:go", "midA:go", "midB:go", "low:go", "high:stop"}));
}

TEST(EventBus, HandlersSeeOnlyMatchingEventsPublishedAfterTheySubscribed) {
    EventBus bus(10);
    Seen seen;
    bus.publish(EventKind::kConnectionOpened, "native", "before", "");
    auto sub = bus.subscribe(0, {.kind = EventKind::kConnectionOpened}, [&](const Event& e) {
        seen.add(e.subject);
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kConnectionClosed, "native", "other kind", "");
    bus.publish(EventKind::kConnectionOpened, "native", "after", "");
    bus.wait_dispatched();
    EXPECT_EQ(seen.get(), (std::vector<std::string>{"after"}));
    sub.reset();
    bus.publish(EventKind::kConnectionOpened, "native", "gone", "");
    bus.wait_dispatched();
    EXPECT_EQ(seen.get(), (std::vector<std::string>{"after"}));
}

TEST(EventBus, HandlersRunOffThePublishersThread) {
    EventBus bus(10);
    std::thread::id handler_thread;
    auto sub = bus.subscribe(0, {}, [&](const Event&) {
        handler_thread = std::this_thread::get_id();
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kServerStarted, "core", "hearth", "");
    bus.wait_dispatched();
    EXPECT_NE(handler_thread, std::thread::id{});
    EXPECT_NE(handler_thread, std::this_thread::get_id());
}

// A slow handler never slows a publisher: past the dispatch bound, events skip the handlers (and
// are counted) but the history keeps every one of them.
TEST(EventBus, ASlowHandlerDropsDispatchNotHistory) {
    EventBus bus(100, 4);
    std::mutex gate_mutex;
    std::condition_variable gate_cv;
    bool open = false;
    bool entered = false;
    Seen seen;
    auto sub = bus.subscribe(0, {}, [&](const Event& e) {
        std::unique_lock lock(gate_mutex);
        entered = true;
        gate_cv.notify_all();
        gate_cv.wait(lock, [&] { return open; });
        seen.add(e.subject);
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "0", "");
    {
        std::unique_lock lock(gate_mutex);
        gate_cv.wait(lock, [&] { return entered; });
    }
    // Event 0 is with the handler; 1..4 fill the queue; 5..9 skip dispatch.
    for (int i = 1; i < 10; ++i) {
        bus.publish(EventKind::kOperatorAction, "core", std::to_string(i), "");
    }
    EXPECT_EQ(bus.dispatch_dropped(), 5u);
    {
        std::lock_guard lock(gate_mutex);
        open = true;
    }
    gate_cv.notify_all();
    bus.wait_dispatched();
    EXPECT_EQ(seen.get(), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
    EXPECT_EQ(bus.recent(100).size(), 10u);
}

TEST(EventBus, AThrowingHandlerDoesNotStopTheOthers) {
    EventBus bus(10);
    Seen seen;
    auto bad = bus.subscribe(
        1, {}, [&](const Event&) -> Propagation { throw std::runtime_error("handler bug"); });
    auto good = bus.subscribe(0, {}, [&](const Event& e) {
        seen.add(e.subject);
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "a", "");
    bus.publish(EventKind::kOperatorAction, "core", "b", "");
    bus.wait_dispatched();
    EXPECT_EQ(seen.get(), (std::vector<std::string>{"a", "b"}));
}

// After reset() returns the handler is not running, so it may capture what dies next; a handler
// may also unsubscribe itself.
TEST(EventBus, UnsubscribeWaitsForARunningHandler) {
    EventBus bus(10);
    std::mutex m;
    std::condition_variable cv;
    bool entered = false;
    bool release = false;
    std::atomic<bool> finished{false};
    auto sub = bus.subscribe(0, {}, [&](const Event&) {
        std::unique_lock lock(m);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        finished.store(true);
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "x", "");
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return entered; });
    }
    std::thread releaser([&] {
        std::lock_guard lock(m);
        release = true;
        cv.notify_all();
    });
    sub.reset();
    EXPECT_TRUE(finished.load());
    releaser.join();

    EventBus::Subscription self;
    int calls = 0;
    self = bus.subscribe(0, {}, [&](const Event&) {
        ++calls;
        self.reset();
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "1", "");
    bus.publish(EventKind::kOperatorAction, "core", "2", "");
    bus.wait_dispatched();
    EXPECT_EQ(calls, 1);
}

// An io thread cannot wait for the bus's thread: detach returns while the handler still runs.
TEST(EventBus, DetachDoesNotWaitForARunningHandler) {
    EventBus bus(10);
    std::mutex m;
    std::condition_variable cv;
    bool entered = false;
    bool release = false;
    int calls = 0;
    auto sub = bus.subscribe(0, {}, [&](const Event&) {
        std::unique_lock lock(m);
        ++calls;
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return Propagation::kContinue;
    });
    bus.publish(EventKind::kOperatorAction, "core", "x", "");
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return entered; });
    }
    sub.detach();  // returns although the handler is blocked: reset() would wait forever here
    EXPECT_FALSE(static_cast<bool>(sub));
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    bus.publish(EventKind::kOperatorAction, "core", "after", "");
    bus.wait_dispatched();
    EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace hearth::core
