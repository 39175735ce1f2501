#include "core/runtime.hpp"
#include <atomic>
#include <thread>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

namespace hearth::core {
namespace {

// Found by make test-tsan: stop() freed the blocking pool while a thread that is not the
// runtime's (a store thread completing a password check posts the hash there) could still post to
// it. A post racing stop(), or coming after it, must find a stopped pool, not freed memory.
TEST(Runtime, PostsToTheBlockingPoolRacingStopAreDropped) {
    Runtime runtime(1, 2);
    runtime.start();
    std::atomic<bool> posting{true};
    std::atomic<int> posted{0};
    std::atomic<int> ran{0};
    std::thread poster([&] {
        while (posting.load()) {
            boost::asio::post(runtime.blocking_pool(), [&ran] { ran.fetch_add(1); });
            posted.fetch_add(1);
        }
    });
    while (posted.load() < 1000) {
        std::this_thread::yield();  // posting is under way
    }
    runtime.stop();
    const int at_stop = posted.load();
    while (posted.load() < at_stop + 1000) {
        std::this_thread::yield();  // and goes on after the stop
    }
    posting.store(false);
    poster.join();
    const int ran_after_stop = ran.load();
    boost::asio::post(runtime.blocking_pool(), [&ran] { ran.fetch_add(1); });
    EXPECT_EQ(ran.load(), ran_after_stop);  // nothing runs on a stopped pool
}

}  // namespace
}  // namespace hearth::core
