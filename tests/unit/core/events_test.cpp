#include "core/events.hpp"
#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace hearth::core {
namespace {

std::vector<std::uint64_t> seqs(const std::vector<Event>& events) {
    std::vector<std::uint64_t> out;
    for (const auto& e : events) {
        out.push_back(e.seq);
    }
    return out;
}

TEST(EventRing, KeepsTheMostRecentUpToCapacity) {
    EventRing ring(3);
    EXPECT_EQ(ring.capacity(), 3u);
    EXPECT_TRUE(ring.recent(10).empty());
    for (int i = 1; i <= 5; ++i) {
        ring.record("connection.open", "conn-" + std::to_string(i), "from 127.0.0.1");
    }
    const auto events = ring.recent(10);
    EXPECT_EQ(seqs(events), (std::vector<std::uint64_t>{3, 4, 5}));
    EXPECT_EQ(events.front().subject, "conn-3");
    EXPECT_EQ(events.back().kind, "connection.open");
    EXPECT_EQ(events.back().detail, "from 127.0.0.1");
    EXPECT_EQ(ring.dropped(), 2u);
}

TEST(EventRing, RecentReturnsTheNewestOldestFirst) {
    EventRing ring(10);
    const auto before = std::chrono::system_clock::now();
    for (int i = 0; i < 6; ++i) {
        ring.record("k", "s", "d");
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

TEST(EventRing, AfterSeqSkipsWhatTheCallerHasSeen) {
    EventRing ring(4);
    for (int i = 0; i < 6; ++i) {
        ring.record("k", std::to_string(i), "");
    }
    // Kept: 3..6.
    EXPECT_EQ(seqs(ring.recent(10, 0)), (std::vector<std::uint64_t>{3, 4, 5, 6}));
    EXPECT_EQ(seqs(ring.recent(10, 1)), (std::vector<std::uint64_t>{3, 4, 5, 6}));
    EXPECT_EQ(seqs(ring.recent(10, 4)), (std::vector<std::uint64_t>{5, 6}));
    EXPECT_EQ(seqs(ring.recent(1, 4)), (std::vector<std::uint64_t>{6}));
    EXPECT_TRUE(ring.recent(10, 6).empty());
    EXPECT_TRUE(ring.recent(10, 100).empty());
}

TEST(EventRing, ZeroCapacityKeepsNothingButCountsSeqAndDrops) {
    EventRing ring(0);
    for (int i = 0; i < 3; ++i) {
        ring.record("k", "s", "d");
    }
    EXPECT_TRUE(ring.recent(10).empty());
    EXPECT_EQ(ring.dropped(), 3u);
}

TEST(EventRing, ConcurrentWritersAndReaders) {
    constexpr int kWriters = 4;
    constexpr int kEach = 1000;
    EventRing ring(100);
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
                ring.record("k", std::to_string(w), std::to_string(i));
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

}  // namespace
}  // namespace hearth::core
