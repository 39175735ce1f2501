// Security part 2, item 12: permessage-deflate as a CPU amplifier. A 1 KiB frame may inflate to
// max_message_bytes; [websocket] max_inflated_bytes_per_s bounds what one connection's compressed
// messages inflate to (a token bucket in bytes). Over it the connection is closed with 1008 and
// counted; a client under it is served as before.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "net/ws_codec.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

constexpr const char* kDeflate =
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n";

/// A masked, compressed (RSV1) text frame carrying `message`.
std::string compressed_frame(const std::string& message) {
    return net::ws::encode_client_frame(net::ws::Opcode::kText, net::ws::deflate_message(message),
                                        {1, 2, 3, 4}, true, true);
}

/// Reads until `count` whole frames arrived (or the connection closed); returns them.
std::vector<RawFrame> read_frames(RawClient& client, std::size_t count) {
    std::vector<RawFrame> frames;
    std::string bytes;
    while (frames.size() < count) {
        std::size_t used = 0;
        if (auto frame = parse_server_frame(bytes, used)) {
            frames.push_back(*frame);
            bytes.erase(0, used);
            continue;
        }
        const std::string more = client.read_exactly(1);
        if (more.empty()) {
            break;
        }
        bytes += more;
    }
    return frames;
}

Overrides budget() {
    // 256 KiB/s with a 256 KiB bucket; messages of up to 256 KiB; the message rate unlimited, so
    // that only the inflate budget can close.
    return {{"websocket.max_message_bytes", "262144"},
            {"websocket.max_inflated_bytes_per_s", "262144"},
            {"websocket.inflated_burst_bytes", "262144"},
            {"websocket.max_messages_per_s", "0"}};
}

TEST(AbuseNetWsInflate, CompressedFramesBeyondTheBudgetAreClosedWith1008) {
    TestServer server(budget());
    RawClient client(server.port());
    const auto head = client.upgrade("/echo", kDeflate);
    ASSERT_NE(head.find("101"), std::string::npos);
    ASSERT_NE(head.find("permessage-deflate"), std::string::npos);

    // 16 frames of a few hundred bytes each, every one inflating to 256 KiB: 4 MiB at once.
    const std::string bomb(256 * 1024, 'a');
    std::string burst;
    for (int i = 0; i < 16; ++i) {
        burst += compressed_frame(bomb);
    }
    ASSERT_LT(burst.size(), 16 * 1024U);
    client.write(burst);

    const std::string all = client.read_until_eof();
    std::size_t offset = 0;
    int echoed = 0;
    std::optional<RawFrame> close;
    while (offset < all.size()) {
        std::size_t used = 0;
        auto frame = parse_server_frame(all.substr(offset), used);
        if (!frame) {
            break;
        }
        offset += used;
        if (frame->opcode == 0x1) {
            ++echoed;
        } else if (frame->opcode == 0x8) {
            close = frame;
        }
    }
    ASSERT_TRUE(close.has_value());
    ASSERT_GE(close->payload.size(), 2U);
    const int code = (static_cast<std::uint8_t>(close->payload[0]) << 8) |
                     static_cast<std::uint8_t>(close->payload[1]);
    EXPECT_EQ(code, 1008);
    EXPECT_EQ(close->payload.substr(2), "inflated data rate limit exceeded");
    EXPECT_EQ(echoed, 1);  // the bucket held one message of the largest size
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "inflate_rate_limited"}}),
              1);
}

TEST(AbuseNetWsInflate, AClientUnderTheBudgetIsServed) {
    TestServer server(budget());
    RawClient client(server.port());
    ASSERT_NE(client.upgrade("/echo", kDeflate).find("permessage-deflate"), std::string::npos);
    // 6 messages of 32 KiB: 192 KiB, within the 256 KiB bucket.
    std::string burst;
    for (int i = 0; i < 6; ++i) {
        burst += compressed_frame(std::string(32 * 1024, static_cast<char>('a' + i)));
    }
    client.write(burst);
    const auto frames = read_frames(client, 6);
    ASSERT_EQ(frames.size(), 6U);
    for (const auto& f : frames) {
        EXPECT_EQ(f.opcode, 0x1);
    }
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "inflate_rate_limited"}}),
              0);
}

}  // namespace
}  // namespace hearth::test
