// The validated-token cache: age bound, token expiry, revocation, account-wide eviction, LRU bound.

#include "auth/token_cache.hpp"

#include <gtest/gtest.h>

namespace hearth::auth {
namespace {

using namespace std::chrono_literals;
using Clock = TokenCache::Clock;
using Wall = std::chrono::system_clock;

Principal principal(std::uint64_t account, Wall::time_point expires = Wall::time_point::max()) {
    Principal p;
    p.account_id = account;
    p.username = "user" + std::to_string(account);
    p.expires_at = expires;
    return p;
}

TEST(TokenCache, EntriesAreTrustedForMaxAgeOnly) {
    TokenCache cache(10, 1000ms);
    const auto t0 = Clock::now();
    const auto w0 = Wall::now();
    cache.put("d1", principal(1), t0);
    ASSERT_TRUE(cache.get("d1", t0 + 999ms, w0));
    EXPECT_EQ(cache.get("d1", t0 + 999ms, w0)->username, "user1");
    EXPECT_FALSE(cache.get("d1", t0 + 1000ms, w0));
    EXPECT_EQ(cache.size(), 0U);
}

TEST(TokenCache, AnExpiredTokenIsNotServedFromTheCache) {
    TokenCache cache(10, 1000ms);
    const auto t0 = Clock::now();
    const auto w0 = Wall::now();
    cache.put("d1", principal(1, w0 + 10ms), t0);
    EXPECT_TRUE(cache.get("d1", t0, w0));
    EXPECT_FALSE(cache.get("d1", t0, w0 + 10ms));
}

TEST(TokenCache, RevocationAndAccountEvictionTakeEffectAtOnce) {
    TokenCache cache(10, 1000ms);
    const auto t0 = Clock::now();
    const auto w0 = Wall::now();
    cache.put("a1", principal(1), t0);
    cache.put("a2", principal(1), t0);
    cache.put("b1", principal(2), t0);
    cache.erase("b1");
    EXPECT_FALSE(cache.get("b1", t0, w0));
    cache.erase_account(1);
    EXPECT_FALSE(cache.get("a1", t0, w0));
    EXPECT_FALSE(cache.get("a2", t0, w0));
    EXPECT_EQ(cache.size(), 0U);
}

TEST(TokenCache, BoundEvictsTheLeastRecentlyUsed) {
    TokenCache cache(2, 1000ms);
    const auto t0 = Clock::now();
    const auto w0 = Wall::now();
    cache.put("x", principal(1), t0);
    cache.put("y", principal(2), t0);
    EXPECT_TRUE(cache.get("x", t0, w0));  // y is now the least recently used
    cache.put("z", principal(3), t0);
    EXPECT_TRUE(cache.get("x", t0, w0));
    EXPECT_FALSE(cache.get("y", t0, w0));
    EXPECT_TRUE(cache.get("z", t0, w0));
}

}  // namespace
}  // namespace hearth::auth
