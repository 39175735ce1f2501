// The pace of Moonshare's token requests per address (src/frontends/moonshare/token_pace.hpp): a
// token bucket per address, a bounded table that forgets the least recently seen address first
// among those that never authenticated a player, and pruning. Time is passed in.

#include "frontends/moonshare/token_pace.hpp"
#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace hearth::frontends::moonshare {
namespace {

using namespace std::chrono_literals;
using Clock = TokenPace::Clock;

const Clock::time_point t0 = Clock::now();

TEST(MoonshareTokenPace, AMinutesRequestsAtOnceThenEvenlyOverTheMinute) {
    TokenPace pace({.per_minute = 6, .max_addresses = 10});
    for (int i = 0; i < 6; ++i) {
        EXPECT_TRUE(pace.take("a", t0).allowed) << i;
    }
    const auto refused = pace.take("a", t0);
    EXPECT_FALSE(refused.allowed);
    EXPECT_TRUE(refused.first_refusal);
    // 6 a minute: one more every 10 s.
    EXPECT_FALSE(pace.take("a", t0 + 9s).allowed);
    EXPECT_TRUE(pace.take("a", t0 + 10s).allowed);
    EXPECT_FALSE(pace.take("a", t0 + 10s).allowed);
    // After a whole minute without a request, the whole minute's requests again, not more.
    for (int i = 0; i < 6; ++i) {
        EXPECT_TRUE(pace.take("a", t0 + 200s).allowed) << i;
    }
    EXPECT_FALSE(pace.take("a", t0 + 200s).allowed);
}

TEST(MoonshareTokenPace, AddressesArePacedApart) {
    TokenPace pace({.per_minute = 1, .max_addresses = 10});
    EXPECT_TRUE(pace.take("a", t0).allowed);
    EXPECT_FALSE(pace.take("a", t0).allowed);
    EXPECT_TRUE(pace.take("b", t0).allowed);
    EXPECT_EQ(pace.tracked(), 2U);
}

TEST(MoonshareTokenPace, OneRefusalLinePerAddressAndMinute) {
    TokenPace pace({.per_minute = 1, .max_addresses = 10});
    EXPECT_TRUE(pace.take("a", t0).allowed);
    EXPECT_TRUE(pace.take("a", t0 + 1s).first_refusal);
    EXPECT_FALSE(pace.take("a", t0 + 2s).first_refusal);
    EXPECT_FALSE(pace.take("a", t0 + 30s).first_refusal);
    EXPECT_FALSE(pace.take("b", t0 + 30s).first_refusal);  // allowed: nothing to log
    EXPECT_TRUE(pace.take("b", t0 + 30s).first_refusal);   // each address its own line
    // A minute after the last line, the next refusal is logged again.
    EXPECT_TRUE(pace.take("a", t0 + 61s).allowed);  // refilled meanwhile
    EXPECT_TRUE(pace.take("a", t0 + 61s).first_refusal);
}

TEST(MoonshareTokenPace, ZeroMeansUnlimited) {
    TokenPace pace({.per_minute = 0, .max_addresses = 1});
    for (int i = 0; i < 1000; ++i) {
        EXPECT_TRUE(pace.take("a" + std::to_string(i % 3), t0).allowed);
    }
    EXPECT_EQ(pace.tracked(), 0U);
}

TEST(MoonshareTokenPace, AFullTableForgetsAnAddressThatNeverAuthenticatedFirst) {
    TokenPace pace({.per_minute = 1, .max_addresses = 3});
    EXPECT_TRUE(pace.take("player", t0).allowed);
    pace.authenticated("player");
    EXPECT_TRUE(pace.take("minted-1", t0 + 1s).allowed);
    EXPECT_TRUE(pace.take("minted-2", t0 + 2s).allowed);
    // A newcomer is admitted; the least recently seen address that never authenticated goes.
    const auto newcomer = pace.take("newcomer", t0 + 3s);
    EXPECT_TRUE(newcomer.allowed);
    EXPECT_EQ(newcomer.evicted, 1U);
    EXPECT_EQ(pace.tracked(), 3U);
    EXPECT_FALSE(pace.take("player", t0 + 4s).allowed);    // still paced
    EXPECT_FALSE(pace.take("minted-2", t0 + 4s).allowed);  // still paced
    // minted-1 starts over (and takes the place of the least recently seen fresh one).
    const auto back = pace.take("minted-1", t0 + 5s);
    EXPECT_TRUE(back.allowed);
    EXPECT_EQ(back.evicted, 1U);
}

TEST(MoonshareTokenPace, AuthenticatedAddressesGoOnlyWhenNoOtherIsLeft) {
    TokenPace pace({.per_minute = 1, .max_addresses = 2});
    EXPECT_TRUE(pace.take("p1", t0).allowed);
    EXPECT_TRUE(pace.take("p2", t0 + 1s).allowed);
    pace.authenticated("p1");
    pace.authenticated("p2");
    EXPECT_EQ(pace.take("new", t0 + 2s).evicted, 1U);  // p1: the longest known
    EXPECT_TRUE(pace.take("p1", t0 + 3s).allowed);     // forgotten: starts over
    EXPECT_FALSE(pace.take("p2", t0 + 3s).allowed);    // kept
}

TEST(MoonshareTokenPace, PruneForgetsOnlyRefilledBuckets) {
    TokenPace pace({.per_minute = 2, .max_addresses = 10});
    EXPECT_TRUE(pace.take("a", t0).allowed);
    EXPECT_TRUE(pace.take("b", t0 + 20s).allowed);
    pace.prune(t0 + 30s);  // a refilled at t0 + 30s (one token in 30 s), b not yet
    EXPECT_EQ(pace.tracked(), 1U);
    pace.prune(t0 + 50s);
    EXPECT_EQ(pace.tracked(), 0U);
}

}  // namespace
}  // namespace hearth::frontends::moonshare
