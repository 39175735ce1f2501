// The outbound bound as the threads that send to a connection see it (net/send_bound.hpp): posted
// and queued bytes together under one bound, decided by the sender. The connections' use of it,
// through real sockets: tests/integration/dracosoft_test.cpp (DracosoftStreamLayer).

#include "net/send_bound.hpp"
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace hearth::net {
namespace {

TEST(SendBound, PostedBytesCountAgainstTheBound) {
    SendBound b(100);
    EXPECT_TRUE(b.reserve(60));
    EXPECT_TRUE(b.posted());
    EXPECT_TRUE(b.reserve(40));         // exactly the bound
    EXPECT_FALSE(b.reserve(1));         // one byte past it: nothing reserved
    EXPECT_EQ(b.posted_bytes(), 100u);  // the refused byte is not counted
    EXPECT_FALSE(b.fits(1, 0));         // the connection's own sends see what is posted
    b.release(60);
    EXPECT_TRUE(b.fits(60, 0));
    EXPECT_FALSE(b.fits(61, 0));
}

TEST(SendBound, QueuedBytesCountAgainstTheBound) {
    SendBound b(100);
    b.set_queued(70);
    EXPECT_FALSE(b.reserve(31));
    EXPECT_TRUE(b.reserve(30));
    EXPECT_FALSE(b.fits(1, 70));
    // The posted send ran: its bytes are queued before they stop counting as posted.
    b.set_queued(100);
    b.release(30);
    EXPECT_FALSE(b.posted());
    EXPECT_FALSE(b.reserve(1));
    b.set_queued(0);  // written
    EXPECT_TRUE(b.reserve(100));
}

TEST(SendBound, OnePayloadLargerThanTheBoundPassesWhenNothingIsHeld) {
    SendBound b(100);
    EXPECT_TRUE(b.fits(500, 0));
    EXPECT_TRUE(b.reserve(500));
    EXPECT_FALSE(b.reserve(1));
    b.release(500);
    b.set_queued(500);
    EXPECT_FALSE(b.reserve(500));
    EXPECT_FALSE(b.fits(1, 500));
}

TEST(SendBound, AReloadedBoundAppliesToTheNextSend) {
    SendBound b(100);
    EXPECT_TRUE(b.reserve(80));
    b.set_max(50);
    EXPECT_FALSE(b.reserve(1));
    b.release(80);
    EXPECT_TRUE(b.reserve(50));
    EXPECT_FALSE(b.reserve(1));
}

TEST(SendBound, TheFirstOverflowIsReportedOnce) {
    SendBound b(100);
    EXPECT_TRUE(b.reserve(10));
    EXPECT_FALSE(b.overflowed());
    EXPECT_TRUE(b.overflow());
    EXPECT_FALSE(b.overflow());
    EXPECT_TRUE(b.overflowed());
    // What was posted before still runs and is released; nothing more is reserved.
    EXPECT_EQ(b.posted_bytes(), 10u);
    EXPECT_FALSE(b.reserve(1));
    b.release(10);
    EXPECT_FALSE(b.posted());
    EXPECT_FALSE(b.reserve(1));
    EXPECT_TRUE(b.overflowed());
}

TEST(SendBound, IdleOnlyWhileNothingIsPostedOrQueuedAndNeverAfterAnOverflow) {
    SendBound b(1000);
    EXPECT_TRUE(b.idle());
    ASSERT_TRUE(b.reserve(10));
    EXPECT_FALSE(b.idle()) << "posted";
    b.set_queued(10);
    b.release(10);
    EXPECT_FALSE(b.idle()) << "queued";
    b.set_queued(0);
    EXPECT_TRUE(b.idle());
    ASSERT_TRUE(b.overflow());
    EXPECT_FALSE(b.idle()) << "overflowed";
}

TEST(SendBound, SendersOnManyThreadsNeverReserveMoreThanTheBound) {
    // Nothing is released meanwhile (the connection's thread is busy): what all senders got
    // reserved together is at most the bound, whatever their interleaving.
    constexpr std::size_t kMax = 64 * 1024;
    SendBound b(kMax);
    std::atomic<std::size_t> reserved{0};
    std::vector<std::thread> senders;
    for (int t = 0; t < 4; ++t) {
        senders.emplace_back([&] {
            for (int i = 0; i < 10'000; ++i) {
                if (b.reserve(100)) {
                    reserved.fetch_add(100);
                }
            }
        });
    }
    for (auto& s : senders) {
        s.join();
    }
    EXPECT_LE(reserved.load(), kMax);
    EXPECT_EQ(reserved.load(), b.posted_bytes());
    EXPECT_GE(reserved.load(), kMax - 100);  // refused only at the bound
}

}  // namespace
}  // namespace hearth::net
