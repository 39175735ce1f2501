#include "util/line_throttle.hpp"

#include <gtest/gtest.h>

namespace hearth::util {
namespace {

using Clock = TokenBucket::Clock;
using std::chrono::milliseconds;

TEST(LineThrottle, ABurstThenTheRateAndACountOfWhatWasLeftOut) {
    const auto t0 = Clock::time_point{} + std::chrono::hours(1);
    LineThrottle lines(TokenRate{.per_s = 10, .depth = 3}, t0);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(lines.admit(t0), 0u);
    }
    EXPECT_FALSE(lines.admit(t0).has_value());
    EXPECT_FALSE(lines.admit(t0 + milliseconds(50)).has_value());
    // 100 ms refill one line, which says how many were left out before it.
    EXPECT_EQ(lines.admit(t0 + milliseconds(100)), 2u);
    EXPECT_FALSE(lines.admit(t0 + milliseconds(100)).has_value());
    EXPECT_EQ(lines.admit(t0 + milliseconds(200)), 1u);
    // A quiet second refills the burst, no more.
    const auto later = t0 + std::chrono::seconds(10);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(lines.admit(later), 0u);
    }
    EXPECT_FALSE(lines.admit(later).has_value());
}

}  // namespace
}  // namespace hearth::util
