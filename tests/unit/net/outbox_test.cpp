#include "net/outbox.hpp"

#include <gtest/gtest.h>

namespace hearth::net {
namespace {

OutFrame data_frame(std::string bytes) {
    OutFrame f;
    f.header_size = 2;
    f.header = {0x82, static_cast<std::uint8_t>(bytes.size())};
    auto payload = make_binary(std::move(bytes));
    f.shared_body = payload->bytes();
    f.keeper = std::move(payload);
    return f;
}

OutFrame control_frame(std::uint8_t opcode, std::string bytes) {
    OutFrame f;
    f.header_size = 2;
    f.header = {static_cast<std::uint8_t>(0x80 | opcode), static_cast<std::uint8_t>(bytes.size())};
    f.owned = std::move(bytes);
    return f;
}

std::string flatten(const std::vector<boost::asio::const_buffer>& buffers) {
    std::string out;
    for (const auto& b : buffers) {
        out.append(static_cast<const char*>(b.data()), b.size());
    }
    return out;
}

TEST(Outbox, CountsQueuedDataBytesButNotControlFrames) {
    Outbox box;
    box.push_data(data_frame("abcd"));  // 6 bytes on the wire
    box.push_data(data_frame("ij"));
    box.push_control(control_frame(0x9, "p"));
    EXPECT_EQ(box.data_bytes(), 10u);
    std::vector<boost::asio::const_buffer> buffers;
    ASSERT_EQ(box.gather(buffers, 10, 1000), 3u);
    EXPECT_EQ(box.data_bytes(), 10u) << "in flight still counts";
    (void)box.complete();
    EXPECT_EQ(box.data_bytes(), 0u);
}

TEST(Outbox, ControlFramesGoFirstButNotIntoABatchInFlight) {
    Outbox box;
    box.push_data(data_frame("d1"));
    std::vector<boost::asio::const_buffer> buffers;
    EXPECT_EQ(box.gather(buffers, 10, 1000), 1u);
    box.push_data(data_frame("d2"));
    box.push_control(control_frame(0x9, "p"));
    std::vector<boost::asio::const_buffer> more;
    EXPECT_EQ(box.gather(more, 10, 1000), 0u);  // one batch at a time
    EXPECT_EQ(flatten(buffers).substr(2), "d1");
    (void)box.complete();
    buffers.clear();
    EXPECT_EQ(box.gather(buffers, 10, 1000), 2u);
    const auto wire = flatten(buffers);
    EXPECT_EQ(wire.substr(2, 1), "p");  // the ping before d2
    EXPECT_EQ(wire.substr(5), "d2");
    (void)box.complete();
    EXPECT_TRUE(box.empty());
    EXPECT_EQ(box.data_bytes(), 0u);
}

TEST(Outbox, CloseFrameGoesAfterQueuedData) {
    Outbox box;
    box.push_data(data_frame("d1"));
    box.push_last(control_frame(0x8, "bye"));
    std::vector<boost::asio::const_buffer> buffers;
    EXPECT_EQ(box.gather(buffers, 10, 1000), 2u);
    EXPECT_EQ(flatten(buffers).substr(6), "bye");
}

TEST(Outbox, PongsCoalesce) {
    Outbox box;
    for (int i = 0; i < 100; ++i) {
        box.push_pong(control_frame(0xA, std::to_string(i)));
    }
    EXPECT_EQ(box.queued(), 1u);
    std::vector<boost::asio::const_buffer> buffers;
    box.gather(buffers, 10, 1000);
    EXPECT_EQ(flatten(buffers).substr(2), "99");
}

TEST(Outbox, BatchIsLimitedByFramesAndBytes) {
    Outbox box;
    for (int i = 0; i < 10; ++i) {
        box.push_data(data_frame(std::string(100, 'x')));
    }
    std::vector<boost::asio::const_buffer> buffers;
    EXPECT_EQ(box.gather(buffers, 4, 1 << 20), 4u);
    (void)box.complete();
    buffers.clear();
    EXPECT_EQ(box.gather(buffers, 100, 250), 3u);  // stops adding once 250 bytes are reached
    (void)box.complete();
    EXPECT_EQ(box.data_bytes(), 3u * 102);
}

TEST(Outbox, DropQueuedDataKeepsTheBatchInFlight) {
    Outbox box;
    box.push_data(data_frame("d1"));
    std::vector<boost::asio::const_buffer> buffers;
    box.gather(buffers, 10, 1000);
    box.push_data(data_frame("d2"));
    box.drop_queued_data();
    EXPECT_EQ(box.data_bytes(), 4u);  // d1 is still being written
    EXPECT_EQ(flatten(buffers).substr(2), "d1");
    (void)box.complete();
    EXPECT_TRUE(box.empty());
    EXPECT_EQ(box.data_bytes(), 0u);
}

TEST(Outbox, SharedPayloadIsNotCopiedPerRecipient) {
    auto payload = make_text("broadcast");
    Outbox a;
    Outbox b;
    for (Outbox* box : {&a, &b}) {
        OutFrame f;
        f.keeper = payload;
        f.shared_body = payload->bytes();
        box->push_data(std::move(f));
    }
    std::vector<boost::asio::const_buffer> ba;
    std::vector<boost::asio::const_buffer> bb;
    a.gather(ba, 10, 1000);
    b.gather(bb, 10, 1000);
    EXPECT_EQ(ba[0].data(), bb[0].data());
    EXPECT_EQ(ba[0].data(), payload->bytes().data());
}

TEST(Outbox, WrittenCallbacksComeBackFromCompleteAndClear) {
    Outbox box;
    std::vector<std::string> seen;
    for (const char* name : {"a", "b", "c"}) {
        OutFrame f = data_frame(name);
        f.on_written = [&seen, name](bool ok) {
            seen.push_back(std::string(name) + (ok ? "+" : "-"));
        };
        box.push_data(std::move(f));
    }
    std::vector<boost::asio::const_buffer> buffers;
    EXPECT_EQ(box.gather(buffers, 1, 1000), 1u);
    for (auto& cb : box.complete()) {
        cb(true);
    }
    buffers.clear();
    box.gather(buffers, 1, 1000);  // "b" in flight
    for (auto& cb : box.clear()) {
        cb(false);
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"a+", "b-", "c-"}));
}

}  // namespace
}  // namespace hearth::net
