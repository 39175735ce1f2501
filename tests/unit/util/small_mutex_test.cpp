#include "util/small_mutex.hpp"
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace hearth::util {
namespace {

TEST(SmallMutex, IsTheSizeOfAnInt) {
    EXPECT_EQ(sizeof(SmallMutex), 4u);
}

TEST(SmallMutex, TryLockFailsWhileHeld) {
    SmallMutex m;
    ASSERT_TRUE(m.try_lock());
    EXPECT_FALSE(m.try_lock());
    m.unlock();
    EXPECT_TRUE(m.try_lock());
    m.unlock();
}

// Increments that are not atomic themselves lose updates unless the mutex excludes: with four
// threads contending, the count comes out exact only if every critical section ran alone (and
// every waiter was woken, or the test would hang).
TEST(SmallMutex, ExcludesUnderContention) {
    SmallMutex m;
    std::uint64_t count = 0;
    constexpr int kThreads = 4;
    constexpr int kRounds = 20000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kRounds; ++i) {
                std::lock_guard lock(m);
                const std::uint64_t seen = count;
                if (i % 64 == 0) {
                    std::this_thread::yield();  // widen the window another thread could enter
                }
                count = seen + 1;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(count, static_cast<std::uint64_t>(kThreads) * kRounds);
}

}  // namespace
}  // namespace hearth::util
