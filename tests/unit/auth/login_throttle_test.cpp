// The login throttle: free failures, a doubling delay up to its cap, forgetting, success, bound.

#include "auth/login_throttle.hpp"

#include <gtest/gtest.h>

namespace hearth::auth {
namespace {

using namespace std::chrono_literals;
using Clock = LoginThrottle::Clock;

const ThrottlePolicy kPolicy{.free_failures = 2,
                             .base_delay = 1000ms,
                             .max_delay = 4000ms,
                             .forget_after = 60s,
                             .max_keys = 3};

TEST(LoginThrottle, DelayStartsAfterTheFreeFailuresAndDoublesToItsCap) {
    LoginThrottle t(kPolicy);
    const auto t0 = Clock::now();
    EXPECT_FALSE(t.wait_before_attempt("user:a", t0));
    t.failed("user:a", t0);
    t.failed("user:a", t0);
    EXPECT_FALSE(t.wait_before_attempt("user:a", t0));  // two free failures
    t.failed("user:a", t0);
    EXPECT_EQ(t.wait_before_attempt("user:a", t0), 1000ms);
    EXPECT_EQ(t.wait_before_attempt("user:a", t0 + 400ms), 600ms);
    EXPECT_FALSE(t.wait_before_attempt("user:a", t0 + 1000ms));
    t.failed("user:a", t0 + 1000ms);
    EXPECT_EQ(t.wait_before_attempt("user:a", t0 + 1000ms), 2000ms);
    t.failed("user:a", t0 + 3000ms);
    EXPECT_EQ(t.wait_before_attempt("user:a", t0 + 3000ms), 4000ms);
    t.failed("user:a", t0 + 7000ms);
    EXPECT_EQ(t.wait_before_attempt("user:a", t0 + 7000ms), 4000ms);  // capped
    // Other keys are not affected.
    EXPECT_FALSE(t.wait_before_attempt("user:b", t0 + 7000ms));
}

TEST(LoginThrottle, AttemptsInFlightCountAsFailuresToCome) {
    LoginThrottle t(kPolicy);  // two free failures
    const auto t0 = Clock::now();
    EXPECT_FALSE(t.try_begin("user:a", t0));
    EXPECT_FALSE(t.try_begin("user:a", t0));
    EXPECT_TRUE(t.try_begin("user:a", t0));  // a third at once would outrun the first verdicts
    // Asking how long to wait (for Retry-After) forgets nothing in flight.
    EXPECT_EQ(t.wait_before_attempt("user:a", t0 + 2h), 1000ms);
    EXPECT_TRUE(t.try_begin("user:a", t0));
    t.cancel("user:a");  // one ends without a verdict: a place is free
    EXPECT_FALSE(t.try_begin("user:a", t0));
    t.failed("user:a", t0);
    t.failed("user:a", t0);
    // Past the free failures, and no delay due yet: one attempt at a time.
    EXPECT_FALSE(t.try_begin("user:a", t0));
    EXPECT_TRUE(t.try_begin("user:a", t0));
    t.failed("user:a", t0);
    EXPECT_EQ(t.try_begin("user:a", t0), 1000ms);
    EXPECT_FALSE(t.try_begin("user:a", t0 + 1000ms));
    t.succeeded("user:a");
    EXPECT_FALSE(t.try_begin("user:a", t0 + 1000ms));
}

TEST(LoginThrottle, SuccessAndQuietTimeForget) {
    LoginThrottle t(kPolicy);
    const auto t0 = Clock::now();
    for (int i = 0; i < 5; ++i) {
        t.failed("ip:1", t0);
    }
    EXPECT_TRUE(t.wait_before_attempt("ip:1", t0));
    t.succeeded("ip:1");
    EXPECT_FALSE(t.wait_before_attempt("ip:1", t0));
    for (int i = 0; i < 5; ++i) {
        t.failed("ip:2", t0);
    }
    EXPECT_FALSE(t.wait_before_attempt("ip:2", t0 + 60s));
    EXPECT_EQ(t.size(), 0U);
    // A failure after a quiet period counts from one again.
    t.failed("ip:3", t0);
    t.failed("ip:3", t0);
    t.failed("ip:3", t0 + 61s);
    EXPECT_FALSE(t.wait_before_attempt("ip:3", t0 + 61s));
}

TEST(LoginThrottle, BoundForgetsTheLeastRecentlyFailedKey) {
    LoginThrottle t(kPolicy);
    const auto t0 = Clock::now();
    for (const char* key : {"a", "b", "c"}) {
        for (int i = 0; i < 3; ++i) {
            t.failed(key, t0);
        }
    }
    t.failed("a", t0 + 1ms);  // a is now the most recent
    t.failed("d", t0 + 2ms);  // evicts b
    EXPECT_EQ(t.size(), 3U);
    EXPECT_TRUE(t.wait_before_attempt("a", t0 + 2ms));
    EXPECT_FALSE(t.wait_before_attempt("b", t0 + 2ms));
    EXPECT_TRUE(t.wait_before_attempt("c", t0 + 2ms));
}

}  // namespace
}  // namespace hearth::auth
