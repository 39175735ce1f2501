// util::TokenBucket, the bucket behind every rate limit (connections' messages, bytes and inflated
// bytes; /logs/add and registrations per address), on a fake clock.

#include "util/token_bucket.hpp"
#include <chrono>

#include <gtest/gtest.h>

namespace hearth::util {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;

const Clock::time_point t0 = Clock::time_point{} + 1000s;

TEST(TokenBucket, AFullBucketGivesItsDepthThenRefuses) {
    const TokenRate rate{10, 3};
    TokenBucket b(rate.depth, t0);
    EXPECT_TRUE(b.try_take(1, rate, t0));
    EXPECT_TRUE(b.try_take(1, rate, t0));
    EXPECT_TRUE(b.try_take(1, rate, t0));
    EXPECT_FALSE(b.try_take(1, rate, t0));
    EXPECT_DOUBLE_EQ(b.level(rate, t0), 0);
}

TEST(TokenBucket, ARefusalTakesNothing) {
    const TokenRate rate{1, 10};
    TokenBucket b(4, t0);
    EXPECT_FALSE(b.try_take(5, rate, t0));
    EXPECT_DOUBLE_EQ(b.level(rate, t0), 4);
    EXPECT_TRUE(b.try_take(4, rate, t0));
}

TEST(TokenBucket, RefillsAtTheRateUpToTheDepth) {
    const TokenRate rate{100, 50};
    TokenBucket b(0, t0);
    EXPECT_DOUBLE_EQ(b.level(rate, t0 + 100ms), 10);
    EXPECT_FALSE(b.try_take(11, rate, t0 + 100ms));
    EXPECT_TRUE(b.try_take(10, rate, t0 + 100ms));
    EXPECT_DOUBLE_EQ(b.level(rate, t0 + 100ms), 0);
    // An hour later it is full, never more.
    EXPECT_DOUBLE_EQ(b.level(rate, t0 + 1h), 50);
}

TEST(TokenBucket, SustainedTakingIsBoundedByTheRate) {
    // 1,000 takes a second for ten seconds against 100 a second with a depth of 200: what passes
    // is the depth plus what the rate refilled, whatever is asked.
    const TokenRate rate{100, 200};
    TokenBucket b(rate.depth, t0);
    int passed = 0;
    for (int i = 0; i < 10'000; ++i) {
        passed += b.try_take(1, rate, t0 + std::chrono::milliseconds(i)) ? 1 : 0;
    }
    EXPECT_GE(passed, 200 + 999 - 1);
    EXPECT_LE(passed, 200 + 1000);
}

TEST(TokenBucket, AnAmountOverTheDepthTakesAFullBucket) {
    const TokenRate rate{1, 8};
    TokenBucket b(rate.depth, t0);
    EXPECT_TRUE(b.try_take(100, rate, t0));
    EXPECT_DOUBLE_EQ(b.level(rate, t0), 0);
    EXPECT_FALSE(b.try_take(100, rate, t0 + 7s));
    EXPECT_TRUE(b.try_take(100, rate, t0 + 8s));
}

TEST(TokenBucket, ARateOfZeroNeverRefills) {
    const TokenRate rate{0, 5};
    TokenBucket b(2, t0);
    EXPECT_TRUE(b.try_take(2, rate, t0));
    EXPECT_FALSE(b.try_take(1, rate, t0 + 24h));
}

TEST(TokenBucket, AnEarlierClockReadingRefillsNothing) {
    // Several threads may read the clock before one of them takes the lock: a reading older than
    // the bucket's last use must neither refill it nor move its time back.
    const TokenRate rate{10, 100};
    TokenBucket b(0, t0 + 10s);
    EXPECT_DOUBLE_EQ(b.level(rate, t0), 0);
    EXPECT_FALSE(b.try_take(1, rate, t0));
    EXPECT_DOUBLE_EQ(b.level(rate, t0 + 10s), 0);
    EXPECT_DOUBLE_EQ(b.level(rate, t0 + 11s), 10);
}

TEST(TokenBucket, ANewRateAppliesAtTheNextUse) {
    TokenBucket b(100, t0);
    // A smaller depth caps the level; a faster rate refills faster.
    const TokenRate smaller{10, 20};
    EXPECT_DOUBLE_EQ(b.level(smaller, t0), 20);
    EXPECT_TRUE(b.try_take(20, smaller, t0));
    EXPECT_FALSE(b.try_take(1, smaller, t0));
    const TokenRate faster{1000, 20};
    EXPECT_TRUE(b.try_take(10, faster, t0 + 10ms));
}

TEST(TokenBucket, TimeUntilAnAmountIsThere) {
    const TokenRate rate{4, 8};
    TokenBucket b(0, t0);
    EXPECT_DOUBLE_EQ(b.time_until(2, rate, t0).count(), 0.5);
    EXPECT_DOUBLE_EQ(b.time_until(100, rate, t0).count(), 2.0);  // capped at the depth
    EXPECT_DOUBLE_EQ(b.time_until(2, rate, t0 + 1s).count(), 0.0);
}

}  // namespace
}  // namespace hearth::util
