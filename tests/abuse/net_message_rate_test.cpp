// Security part 2, item 6: raw TCP (stream) routes had no message rate, so one DracoSoft user's
// 1 MiB chat frames were relayed to every logged-in user as fast as it could send them. Stream
// routes now have WebSocket's max_messages_per_s and message_burst, and both transports a bound
// on message bytes per second per connection (max_bytes_per_s, bytes_burst). Over either a
// DracoSoft client gets "Rate limit exceeded" and is closed, a WebSocket client is closed with
// 1008; nothing it sent after the bound is handled, and everyone else is served as before.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

// ---- DracoSoft over raw TCP -----------------------------------------------------------------

std::string draco_frame(const std::string& payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)} +
           payload;
}

std::string chat(const std::string& text) {
    return draco_frame(json::serialize(json::object{{"type", "chat"}, {"message", text}}));
}

/// A DracoSoft client on a RawClient: frames out, JSON objects in.
class Draco {
public:
    explicit Draco(std::uint16_t port) : raw_(port) {}

    void write(const std::string& bytes) { raw_.write(bytes); }

    /// The next frame from the server; nullopt when the connection ended first.
    std::optional<json::object> next() {
        const std::string head = raw_.read_exactly(4);
        if (head.size() < 4) {
            return std::nullopt;
        }
        const auto* b = reinterpret_cast<const unsigned char*>(head.data());
        const std::size_t n = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) |
                              (std::size_t{b[2]} << 8) | std::size_t{b[3]};
        const std::string body = raw_.read_exactly(n);
        if (body.size() < n) {
            return std::nullopt;
        }
        return json::parse(body).as_object();
    }

    /// Registers `user` (one message) and checks that it worked.
    void register_as(const std::string& user) {
        write(draco_frame(json::serialize(json::object{{"type", "auth"},
                                                       {"action", "register"},
                                                       {"username", user},
                                                       {"password", "password-" + user}})));
        const auto answer = next();
        ASSERT_TRUE(answer.has_value());
        ASSERT_EQ(answer->at("success"), true) << json::serialize(*answer);
    }

    /// Everything until the server closes the connection.
    std::vector<json::object> until_closed() {
        std::vector<json::object> out;
        while (auto f = next()) {
            out.push_back(std::move(*f));
        }
        return out;
    }

private:
    RawClient raw_;
};

bool is_chat_from(const json::object& f, const std::string& user) {
    return f.at("type") == "chat" && f.at("from") == json::string_view(user);
}

std::uint16_t dracosoft_port(TestServer& server) {
    return server.app().server().bound_port("dracosoft");
}

Overrides dracosoft(Overrides limits) {
    limits.emplace("dracosoft.enabled", "true");
    limits.emplace("dracosoft.listen", "\"127.0.0.1:0\"");
    return limits;
}

// The flooder's relayed chats end where its bound is; the observer gets those and no more, then
// keeps working: its ping is answered next, and its own chat is relayed.
void expect_bounded_relay(Draco& flooder, Draco& observer, std::size_t relayed) {
    const auto seen = flooder.until_closed();
    ASSERT_EQ(seen.size(), relayed + 1);
    for (std::size_t i = 0; i < relayed; ++i) {
        EXPECT_TRUE(is_chat_from(seen[i], "flooder")) << json::serialize(seen[i]);
    }
    EXPECT_EQ(seen.back().at("type"), "error");
    EXPECT_EQ(seen.back().at("message"), "Rate limit exceeded");

    for (std::size_t i = 0; i < relayed; ++i) {
        const auto f = observer.next();
        ASSERT_TRUE(f.has_value());
        EXPECT_TRUE(is_chat_from(*f, "flooder")) << json::serialize(*f);
    }
    observer.write(draco_frame(R"({"type":"ping"})"));
    const auto pong = observer.next();
    ASSERT_TRUE(pong.has_value());
    EXPECT_EQ(pong->at("type"), "pong") << json::serialize(*pong);  // not one chat more
    observer.write(chat("still here"));
    const auto own = observer.next();
    ASSERT_TRUE(own.has_value());
    EXPECT_TRUE(is_chat_from(*own, "observer")) << json::serialize(*own);
    EXPECT_EQ(own->at("message"), "still here");
}

TEST(AbuseNetRate, ADracosoftFloodIsClosedAtTheMessageRateAndOthersAreServed) {
    // Ten messages at once and almost no refill (one every 1,000 s), so the count is exact; no
    // byte rate, so that only the message rate can close.
    TestServer server(dracosoft({{"dracosoft.max_messages_per_s", "0.001"},
                                 {"dracosoft.message_burst", "10"},
                                 {"dracosoft.max_bytes_per_s", "0"}}));
    Draco observer(dracosoft_port(server));
    observer.register_as("observer");
    Draco flooder(dracosoft_port(server));
    flooder.register_as("flooder");  // one of its ten

    // A hundred chats in one write: nine are relayed, then the rest, already read by the server,
    // is not handled.
    std::string flood;
    for (int i = 0; i < 100; ++i) {
        flood += chat("flood " + std::to_string(i));
    }
    flooder.write(flood);
    expect_bounded_relay(flooder, observer, 9);

    EXPECT_EQ(server.metric("hearth_stream_disconnects_total",
                            {{"listener", "dracosoft"}, {"reason", "rate_limited"}}),
              1);
    EXPECT_EQ(server.metric("hearth_dracosoft_chat_messages_total"), 9 + 1);
}

TEST(AbuseNetRate, ADracosoftFloodOfLargeFramesIsClosedAtTheByteRate) {
    // A byte rate of almost nothing: the bucket is one largest frame (1 MiB, the floor of
    // bytes_burst) and barely refills. The message rate stays at its default.
    TestServer server(
        dracosoft({{"dracosoft.max_bytes_per_s", "1"}, {"dracosoft.bytes_burst", "0"}}));
    Draco observer(dracosoft_port(server));
    observer.register_as("observer");
    Draco flooder(dracosoft_port(server));
    flooder.register_as("flooder");

    // Five chats of 300 KiB: three fit in the 1 MiB that the registration left, the fourth does
    // not.
    const std::string big(300 * 1024, 'x');
    std::string flood;
    for (int i = 0; i < 5; ++i) {
        flood += chat(big);
    }
    flooder.write(flood);
    expect_bounded_relay(flooder, observer, 3);

    EXPECT_EQ(server.metric("hearth_stream_disconnects_total",
                            {{"listener", "dracosoft"}, {"reason", "byte_rate_limited"}}),
              1);
    EXPECT_EQ(server.metric("hearth_stream_disconnects_total",
                            {{"listener", "dracosoft"}, {"reason", "rate_limited"}}),
              0);
}

TEST(AbuseNetRate, ADracosoftClientWithinTheDefaultsIsServed) {
    // The defaults leave a client that sends a largest frame and a burst of small ones alone.
    TestServer server(dracosoft({}));
    Draco alice(dracosoft_port(server));
    alice.register_as("alice");
    std::string burst = chat(std::string(500 * 1024, 'y'));
    for (int i = 0; i < 200; ++i) {
        burst += chat("hi " + std::to_string(i));
    }
    alice.write(burst);
    for (int i = 0; i < 201; ++i) {
        const auto f = alice.next();
        ASSERT_TRUE(f.has_value()) << "closed after " << i << " chats";
        ASSERT_EQ(f->at("type"), "chat");
    }
    EXPECT_EQ(server.metric("hearth_stream_disconnects_total",
                            {{"listener", "dracosoft"}, {"reason", "rate_limited"}}),
              0);
    EXPECT_EQ(server.metric("hearth_stream_disconnects_total",
                            {{"listener", "dracosoft"}, {"reason", "byte_rate_limited"}}),
              0);
}

// ---- WebSocket --------------------------------------------------------------------------------

struct Seen {
    int data_frames = 0;
    std::optional<RawFrame> close;
};

/// Everything the server sent until it closed the connection, frame by frame.
Seen read_all(RawClient& client) {
    const std::string all = client.read_until_eof();
    Seen seen;
    std::size_t offset = 0;
    while (offset < all.size()) {
        std::size_t used = 0;
        auto frame = parse_server_frame(all.substr(offset), used);
        if (!frame) {
            break;
        }
        offset += used;
        if (frame->opcode == 0x1 || frame->opcode == 0x2) {
            ++seen.data_frames;
        } else if (frame->opcode == 0x8) {
            seen.close = frame;
        }
    }
    return seen;
}

int close_code_of(const RawFrame& close) {
    return close.payload.size() < 2 ? 0
                                    : (static_cast<std::uint8_t>(close.payload[0]) << 8) |
                                          static_cast<std::uint8_t>(close.payload[1]);
}

Overrides ws_bytes_budget() {
    // 256 KiB of message bytes at once (max_message_bytes, the floor of bytes_burst), barely
    // refilled; no message rate, so that only the byte rate can close.
    return {{"websocket.max_message_bytes", "262144"},
            {"websocket.max_bytes_per_s", "1"},
            {"websocket.bytes_burst", "0"},
            {"websocket.max_messages_per_s", "0"}};
}

TEST(AbuseNetRate, AWebSocketClientOverTheByteRateIsClosedWith1008) {
    TestServer server(ws_bytes_budget());
    RawClient client(server.port());
    ASSERT_EQ(client.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0U);
    // Six messages of 100 KiB at once: two fit in the 256 KiB bucket.
    std::string burst;
    for (int i = 0; i < 6; ++i) {
        burst += client_frame(0x2, std::string(100 * 1024, static_cast<char>('a' + i)));
    }
    client.write(burst);
    const Seen seen = read_all(client);
    EXPECT_EQ(seen.data_frames, 2);
    ASSERT_TRUE(seen.close.has_value());
    EXPECT_EQ(close_code_of(*seen.close), 1008);
    EXPECT_EQ(seen.close->payload.substr(2), "data rate limit exceeded");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "byte_rate_limited"}}),
              1);

    // Another client of the same route is served: the bucket is per connection.
    WsClient other(server.port());
    other.send_text(std::string(200 * 1024, 'o'));
    const auto echo = other.read();
    ASSERT_TRUE(echo.has_value());
    EXPECT_EQ(echo->data.size(), 200U * 1024U);
}

TEST(AbuseNetRate, AWebSocketMessageOfTheLargestSizePassesAFullByteBucket) {
    TestServer server(ws_bytes_budget());
    WsClient client(server.port());
    client.send_binary(std::string(262144, 'z'));
    const auto echo = client.read();
    ASSERT_TRUE(echo.has_value());
    EXPECT_EQ(echo->data.size(), 262144U);
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "byte_rate_limited"}}),
              0);
}

TEST(AbuseNetRate, NothingIsParsedAfterTheMessageRateClose) {
    // Three messages at once, almost no refill. The fourth closes the connection; the frames
    // after it in the same write are not parsed: the invalid frame (a reserved opcode) behind
    // them would otherwise be found and counted as a second disconnect.
    TestServer server(
        {{"websocket.max_messages_per_s", "0.001"}, {"websocket.message_burst", "3"}});
    RawClient client(server.port());
    ASSERT_EQ(client.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0U);
    std::string burst;
    for (int i = 0; i < 10; ++i) {
        burst += client_frame(0x1, "m" + std::to_string(i));
    }
    burst += client_frame(0x3, "reserved opcode");
    client.write(burst);
    const Seen seen = read_all(client);
    EXPECT_EQ(seen.data_frames, 3);
    ASSERT_TRUE(seen.close.has_value());
    EXPECT_EQ(close_code_of(*seen.close), 1008);
    EXPECT_EQ(seen.close->payload.substr(2), "message rate limit exceeded");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "rate_limited"}}),
              1);
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/echo"}, {"reason", "protocol_error"}}),
              0);
}

}  // namespace
}  // namespace hearth::test
