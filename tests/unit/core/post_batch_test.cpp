#include "core/post_batch.hpp"
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/runtime.hpp"
#include "core/shard_set.hpp"

// The io contexts here are not run by threads: the test polls them, so that what has been posted
// to them (and what not yet) is seen exactly, without waiting.

namespace hearth::core {
namespace {

using Log = std::vector<std::string>;

/// A delivery's target: records the bytes it is handed (shared or its own), with the bytes
/// reserved for each.
struct Recipient {
    Log* log;
    void take(const PostBatch::Delivery& d) {
        const std::string bytes = d.keeper ? std::string(d.view) : "own:" + d.own;
        log->push_back(bytes + "/" + std::to_string(d.reserved));
    }
    static void deliver(void* self, PostBatch::Delivery&& d) {
        static_cast<Recipient*>(self)->take(d);
    }
};

PostBatch::Delivery shared(std::string bytes, std::size_t reserved) {
    auto payload = make_binary(std::move(bytes));
    const std::string_view view = payload->bytes();
    return {.keeper = std::move(payload), .view = view, .own = {}, .reserved = reserved};
}
PostBatch::Delivery own(std::string bytes, std::size_t reserved) {
    return {.keeper = nullptr, .view = {}, .own = std::move(bytes), .reserved = reserved};
}

TEST(PostBatch, WithoutABatchEachPostIsPostedAtOnceAndNeverRunsInline) {
    boost::asio::io_context io;
    Log log;
    auto recipient = std::make_shared<Recipient>(Recipient{&log});
    EXPECT_FALSE(PostBatch::open());
    PostBatch::post(io, [&] { log.push_back("a"); });
    PostBatch::post_delivery(io, recipient, &Recipient::deliver, shared("b", 1));
    PostBatch::post_delivery(io, recipient, &Recipient::deliver, own("c", 1));
    EXPECT_TRUE(log.empty());
    EXPECT_EQ(io.poll(), 3U);  // one handler per post
    EXPECT_EQ(log, (Log{"a", "b/1", "own:c/1"}));
}

TEST(PostBatch, GathersUntilItClosesThenPostsOneRunPerIoContextInOrder) {
    boost::asio::io_context first;
    boost::asio::io_context second;
    Log on_first;
    Log on_second;
    auto to_first = std::make_shared<Recipient>(Recipient{&on_first});
    std::weak_ptr<Recipient> kept = to_first;
    {
        PostBatch batch;
        EXPECT_TRUE(PostBatch::open());
        PostBatch::post(first, [&] { on_first.push_back("a"); });
        PostBatch::post_delivery(first, to_first, &Recipient::deliver, shared("b", 7));
        PostBatch::post_delivery(first, std::move(to_first), &Recipient::deliver, own("b2", 2));
        PostBatch::post(second, [&] { on_second.push_back("c"); });
        PostBatch::post(first, [&] { on_first.push_back("d"); });
        EXPECT_EQ(first.poll(), 0U);  // nothing posted while the batch is open
        EXPECT_EQ(second.poll(), 0U);
        first.restart();
        second.restart();
        EXPECT_FALSE(kept.expired()) << "the batch keeps a delivery's target alive";
    }
    EXPECT_FALSE(PostBatch::open());
    EXPECT_TRUE(on_first.empty());
    EXPECT_EQ(first.poll(), 1U);  // one handler for the three
    EXPECT_EQ(on_first, (Log{"a", "b/7", "own:b2/2", "d"}));
    EXPECT_TRUE(kept.expired()) << "and lets it go once delivered";
    EXPECT_EQ(second.poll(), 1U);
    EXPECT_EQ(on_second, (Log{"c"}));
}

TEST(PostBatch, AnInnerBatchIsPartOfTheOuterOne) {
    boost::asio::io_context io;
    Log log;
    {
        PostBatch outer;
        {
            PostBatch inner;
            PostBatch::post(io, [&] { log.push_back("a"); });
        }
        EXPECT_TRUE(PostBatch::open());
        PostBatch::post(io, [&] { log.push_back("b"); });
        EXPECT_EQ(io.poll(), 0U);
        io.restart();
    }
    EXPECT_EQ(io.poll(), 1U);
    EXPECT_EQ(log, (Log{"a", "b"}));
}

TEST(PostBatch, ABatchIsItsThreadsOnly) {
    boost::asio::io_context io;
    Log log;
    PostBatch batch;
    std::thread other([&] {
        EXPECT_FALSE(PostBatch::open());
        PostBatch::post(io, [&] { log.push_back("other"); });
    });
    other.join();
    EXPECT_EQ(io.poll(), 1U);  // posted at once: the other thread had no batch
    EXPECT_EQ(log, (Log{"other"}));
}

TEST(PostBatch, APostThatThrowsCostsOnlyItself) {
    boost::asio::io_context io;
    Log log;
    {
        PostBatch batch;
        PostBatch::post(io, [&] { log.push_back("a"); });
        PostBatch::post(io, [] { throw std::runtime_error("a bug"); });
        PostBatch::post(io, [&] { log.push_back("c"); });
    }
    EXPECT_NO_THROW(io.poll());
    EXPECT_EQ(log, (Log{"a", "c"}));
}

TEST(PostBatch, ShardSetPostsJoinTheBatchInOrderMoveOnlyOnesToo) {
    Runtime runtime(2, 1);  // not started: the test polls its io contexts
    const ShardSet shards(runtime);
    Log log;
    {
        PostBatch batch;
        shards.post(1, [&] { log.push_back("a"); });
        shards.post(1, [&, only = std::make_unique<int>(2)] {
            log.push_back("b" + std::to_string(*only));
        });
        PostBatch::post(runtime.io_context(1), [&] { log.push_back("c"); });
        EXPECT_EQ(runtime.io_context(1).poll(), 0U);
        runtime.io_context(1).restart();
    }
    EXPECT_EQ(runtime.io_context(0).poll(), 0U);
    EXPECT_EQ(runtime.io_context(1).poll(), 1U);
    EXPECT_EQ(log, (Log{"a", "b2", "c"}));
}

}  // namespace
}  // namespace hearth::core
