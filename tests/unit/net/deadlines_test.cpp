#include "net/deadlines.hpp"
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace hearth::net {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Records the order in which deadlines came; `also` runs from inside its callback.
struct Recorder : DeadlineClient {
    Recorder(std::vector<int>& fired, int id) : log(fired), name(id) {}
    void on_deadline() override {
        log.push_back(name);
        if (also) {
            also();
        }
    }
    std::vector<int>& log;
    int name;
    std::function<void()> also;
};

TEST(Deadlines, FireInOrderOfTimeNotOfScheduling) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    const auto now = Clock::now();
    std::vector<std::shared_ptr<Recorder>> clients;
    for (int i : {5, 1, 4, 2, 3}) {
        clients.push_back(std::make_shared<Recorder>(log, i));
        deadlines.schedule(clients.back(), now + milliseconds(i * 5));
    }
    EXPECT_EQ(deadlines.size(), 5u);
    io.run();  // returns when nothing is left to wait for
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3, 4, 5}));
    EXPECT_EQ(deadlines.size(), 0u);
    for (auto& c : clients) {
        EXPECT_FALSE(c->deadline_scheduled());
    }
}

TEST(Deadlines, MovingADeadlineKeepsOneEntry) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    const auto now = Clock::now();
    auto a = std::make_shared<Recorder>(log, 1);
    auto b = std::make_shared<Recorder>(log, 2);
    deadlines.schedule(a, now + milliseconds(5));
    deadlines.schedule(b, now + milliseconds(10));
    deadlines.schedule(a, now + milliseconds(20));  // later: now after b
    deadlines.schedule(a, now + milliseconds(15));
    EXPECT_EQ(deadlines.size(), 2u);
    EXPECT_EQ(a->scheduled_deadline(), now + milliseconds(15));
    io.run();
    EXPECT_EQ(log, (std::vector<int>{2, 1}));
}

TEST(Deadlines, AnEarlierDeadlineRearmsTheTimer) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    auto slow = std::make_shared<Recorder>(log, 1);
    auto fast = std::make_shared<Recorder>(log, 2);
    deadlines.schedule(slow, Clock::now() + std::chrono::hours(1));
    deadlines.schedule(fast, Clock::now() + milliseconds(1));
    // The fast one fires and cancels the slow one: run() returns, which it would not do for an
    // hour had the timer stayed armed for the first deadline only.
    fast->also = [&] { deadlines.cancel(*slow); };
    io.run();
    EXPECT_EQ(log, (std::vector<int>{2}));
    EXPECT_FALSE(slow->deadline_scheduled());
}

TEST(Deadlines, CancelledClientsAreNotCalledAndTheHeapStaysValid) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    const auto now = Clock::now();
    std::vector<std::shared_ptr<Recorder>> clients;
    for (int i = 0; i < 50; ++i) {
        clients.push_back(std::make_shared<Recorder>(log, i));
        deadlines.schedule(clients.back(), now + milliseconds((i * 7) % 50));
    }
    for (int i = 0; i < 50; i += 3) {
        deadlines.cancel(*clients[static_cast<std::size_t>(i)]);
        deadlines.cancel(*clients[static_cast<std::size_t>(i)]);  // twice: nothing more
    }
    io.run();
    std::vector<int> expected;
    for (int t = 0; t < 50; ++t) {
        for (int i = 0; i < 50; ++i) {
            if (i % 3 != 0 && (i * 7) % 50 == t) {
                expected.push_back(i);
            }
        }
    }
    EXPECT_EQ(log, expected);
}

TEST(Deadlines, AClientMayScheduleItselfAgainFromItsCallback) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    auto c = std::make_shared<Recorder>(log, 7);
    int rounds = 0;
    c->also = [&] {
        if (++rounds < 3) {
            deadlines.schedule(c, Clock::now() + milliseconds(1));
        }
    };
    deadlines.schedule(c, Clock::now());
    io.run();
    EXPECT_EQ(log, (std::vector<int>{7, 7, 7}));
}

TEST(Deadlines, TheHeapKeepsItsClientsAliveUntilCleared) {
    boost::asio::io_context io;
    Deadlines deadlines(io);
    std::vector<int> log;
    auto c = std::make_shared<Recorder>(log, 1);
    std::weak_ptr<Recorder> weak = c;
    deadlines.schedule(c, Clock::now() + std::chrono::hours(1));
    c.reset();
    EXPECT_FALSE(weak.expired());  // as an Asio timer's pending wait would
    deadlines.clear();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(deadlines.size(), 0u);
    io.run();  // the timer was cancelled: nothing waits
    EXPECT_TRUE(log.empty());
}

}  // namespace
}  // namespace hearth::net
