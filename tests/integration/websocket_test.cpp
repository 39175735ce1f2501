// WebSocket connections through real sockets against the /echo route: framing, limits, timeouts,
// compression, abuse limits and slow consumers.

#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

#include "core/events.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

TEST(WebSocket, EchoesTextAndBinary) {
    TestServer server;
    WsClient client(server.port());
    client.send_text("hello");
    auto m = client.read();
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->text);
    EXPECT_EQ(m->data, "hello");

    std::string binary("\x00\x01\xff\xfe", 4);
    client.send_binary(binary);
    m = client.read();
    ASSERT_TRUE(m);
    EXPECT_FALSE(m->text);
    EXPECT_EQ(m->data, binary);
}

TEST(WebSocket, OpenAndCloseAreRecordedAsEvents) {
    TestServer server;
    {
        WsClient client(server.port());
        client.send_text("x");
        ASSERT_TRUE(client.read());
        client.close(4001, "done");
    }
    // The server records the close once it has seen the client's close frame; wait for it through
    // a request that the server answers after (the same thread order does not hold across threads,
    // so poll the ring with a deadline).
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    std::vector<core::Event> events;
    for (;;) {
        events = server.app().events().recent(100);
        const bool closed = std::any_of(events.begin(), events.end(), [](const core::Event& e) {
            return e.kind == core::EventKind::kConnectionClosed;
        });
        if (closed || std::chrono::steady_clock::now() > until) {
            break;
        }
        (void)http_request(server.port(), "GET", "/health");
    }
    auto find = [&](core::EventKind kind) {
        return std::find_if(events.begin(), events.end(),
                            [&](const core::Event& e) { return e.kind == kind; });
    };
    const auto opened = find(core::EventKind::kConnectionOpened);
    const auto closed = find(core::EventKind::kConnectionClosed);
    ASSERT_NE(opened, events.end());
    ASSERT_NE(closed, events.end());
    EXPECT_NE(closed->detail.find("4001 done (by client)"), std::string::npos) << closed->detail;
    EXPECT_EQ(opened->subject, closed->subject);
}

TEST(WebSocket, ShutdownIsAnEvent) {
    TestServer server;
    server.app().shutdown();
    const auto stopping =
        server.app().events().recent(10, 0, {.kind = core::EventKind::kServerStopping});
    ASSERT_EQ(stopping.size(), 1u);
    EXPECT_EQ(stopping[0].module, "core");
}

TEST(WebSocket, EchoesMessagesUpToTheLimitInOrder) {
    TestServer server({{"websocket.max_message_bytes", "200000"}});
    WsClient client(server.port());
    const std::size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 199999, 200000};
    for (std::size_t size : sizes) {
        std::string payload(size, 'a');
        for (std::size_t i = 0; i < size; ++i) {
            payload[i] = static_cast<char>('a' + i % 26);
        }
        client.send_binary(payload);
        auto m = client.read();
        ASSERT_TRUE(m) << size;
        EXPECT_EQ(m->data, payload) << size;
    }
}

TEST(WebSocket, OversizeMessageClosesWith1009) {
    TestServer server({{"websocket.max_message_bytes", "1000"}});
    WsClient client(server.port());
    client.send_text(std::string(1001, 'x'));
    auto closed = client.wait_closed();
    EXPECT_EQ(closed.code, 1009);
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "too_big"}}), 1);
}

TEST(WebSocket, FragmentedMessageFromARawClientIsReassembled) {
    TestServer server;
    RawClient raw(server.port());
    auto head = raw.upgrade("/echo");
    ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
    EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
              std::string::npos)
        << head;
    raw.write(client_frame(0x1, "hel", false) + client_frame(0x9, "p") +
              client_frame(0x0, "lo", true));
    std::string bytes;
    std::vector<RawFrame> frames;
    while (frames.size() < 2) {
        bytes += raw.read_exactly(1);
        std::size_t used = 0;
        if (auto f = parse_server_frame(bytes, used)) {
            frames.push_back(*f);
            bytes.erase(0, used);
        }
    }
    EXPECT_EQ(frames[0].opcode, 0xA);  // the pong, answering the ping between fragments
    EXPECT_EQ(frames[0].payload, "p");
    EXPECT_EQ(frames[1].opcode, 0x1);
    EXPECT_EQ(frames[1].payload, "hello");
}

TEST(WebSocket, ProtocolErrorClosesWith1002) {
    TestServer server;
    RawClient raw(server.port());
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(std::string("\x81\x05hello", 7));  // unmasked client frame
    auto rest = raw.read_until_eof();
    std::size_t used = 0;
    auto f = parse_server_frame(rest, used);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->opcode, 0x8);
    ASSERT_GE(f->payload.size(), 2u);
    EXPECT_EQ((static_cast<unsigned char>(f->payload[0]) << 8) |
                  static_cast<unsigned char>(f->payload[1]),
              1002);
}

TEST(WebSocket, InvalidUtf8TextClosesWith1007) {
    TestServer server;
    WsClient client(server.port());
    RawClient raw(server.port());
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(client_frame(0x1, "\xc3\x28"));
    auto rest = raw.read_until_eof();
    std::size_t used = 0;
    auto f = parse_server_frame(rest, used);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->opcode, 0x8);
    EXPECT_EQ((static_cast<unsigned char>(f->payload[0]) << 8) |
                  static_cast<unsigned char>(f->payload[1]),
              1007);
    // Other connections are unaffected.
    client.send_text("still here");
    EXPECT_EQ(client.read()->data, "still here");
}

TEST(WebSocket, ClientCloseIsEchoed) {
    TestServer server;
    RawClient raw(server.port());
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(client_frame(0x8, std::string("\x0f\xa0", 2) + "bye"));  // 4000
    auto rest = raw.read_until_eof();
    std::size_t used = 0;
    auto f = parse_server_frame(rest, used);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->opcode, 0x8);
    EXPECT_EQ(f->payload.substr(0, 2), std::string("\x0f\xa0", 2));
}

TEST(WebSocket, UnknownPathIs404AndBadVersionIs426) {
    TestServer server;
    {
        RawClient raw(server.port());
        auto head = raw.upgrade("/nowhere");
        EXPECT_EQ(head.rfind("HTTP/1.1 404", 0), 0u) << head;
    }
    {
        RawClient raw(server.port());
        raw.write(
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
        auto head = raw.read_http_head();
        EXPECT_EQ(head.rfind("HTTP/1.1 426", 0), 0u) << head;
        EXPECT_NE(head.find("Sec-WebSocket-Version: 13"), std::string::npos) << head;
    }
}

TEST(WebSocket, CompressionNegotiatedWhenOffered) {
    TestServer server;
    WsClient client(server.port(), WsOptions{.compression = true});
    EXPECT_EQ(client.upgrade_headers().at("sec-websocket-extensions"),
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    std::string big(10000, 'z');
    client.send_text(big);
    EXPECT_EQ(client.read()->data, big);
    client.send_text("tiny");
    EXPECT_EQ(client.read()->data, "tiny");
    // Compressed on the wire: far fewer bytes out than the 10 KB echoed.
    EXPECT_LT(server.metric("hearth_ws_bytes_out_total", {{"route", "/echo"}}), 2000);
}

TEST(WebSocket, CompressionNotUsedWhenNotOffered) {
    TestServer server;
    WsClient client(server.port());
    EXPECT_EQ(client.upgrade_headers().count("sec-websocket-extensions"), 0u);
    std::string big(10000, 'z');
    client.send_text(big);
    EXPECT_EQ(client.read()->data, big);
}

TEST(WebSocket, CompressionOnlyAboveTheThreshold) {
    TestServer server({{"websocket.compression_threshold_bytes", "50"}});
    RawClient raw(server.port());
    auto head = raw.upgrade(
        "/echo", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    ASSERT_NE(head.find("Sec-WebSocket-Extensions: permessage-deflate"), std::string::npos) << head;
    raw.write(client_frame(0x1, std::string(49, 'a')) + client_frame(0x1, std::string(50, 'b')));
    std::string bytes;
    std::vector<RawFrame> frames;
    while (frames.size() < 2) {
        bytes += raw.read_exactly(1);
        std::size_t used = 0;
        if (auto f = parse_server_frame(bytes, used)) {
            frames.push_back(*f);
            bytes.erase(0, used);
        }
    }
    EXPECT_FALSE(frames[0].rsv1);
    EXPECT_EQ(frames[0].payload, std::string(49, 'a'));
    EXPECT_TRUE(frames[1].rsv1);
    EXPECT_LT(frames[1].payload.size(), 50u);
}

TEST(WebSocket, IdleConnectionIsClosed) {
    TestServer server({{"websocket.idle_timeout_s", "1"}, {"websocket.ping_interval_s", "0"}});
    RawClient raw(server.port());
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    auto rest = raw.read_until_eof();
    std::size_t used = 0;
    auto f = parse_server_frame(rest, used);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->opcode, 0x8);
    EXPECT_EQ((static_cast<unsigned char>(f->payload[0]) << 8) |
                  static_cast<unsigned char>(f->payload[1]),
              1001);
    EXPECT_EQ(f->payload.substr(2), "idle timeout");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "idle_timeout"}}), 1);
}

TEST(WebSocket, ServerPingsAndAPongKeepsTheConnection) {
    TestServer server({{"websocket.ping_interval_s", "1"},
                       {"websocket.pong_timeout_s", "1"},
                       {"websocket.idle_timeout_s", "30"}});
    RawClient raw(server.port());
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    std::string bytes;
    // Three pings, each answered: the connection stays open well past the pong timeout.
    for (int pings = 0; pings < 3;) {
        bytes += raw.read_exactly(1);
        std::size_t used = 0;
        if (auto f = parse_server_frame(bytes, used)) {
            bytes.erase(0, used);
            ASSERT_EQ(f->opcode, 0x9) << "expected only pings";
            raw.write(client_frame(0xA, f->payload));
            ++pings;
        }
    }
    raw.write(client_frame(0x1, "still open"));
    for (;;) {
        bytes += raw.read_exactly(1);
        std::size_t used = 0;
        if (auto f = parse_server_frame(bytes, used)) {
            bytes.erase(0, used);
            if (f->opcode == 0x9) {
                continue;
            }
            EXPECT_EQ(f->opcode, 0x1);
            EXPECT_EQ(f->payload, "still open");
            break;
        }
    }
}

TEST(WebSocket, MissingPongClosesTheConnection) {
    TestServer server({{"websocket.ping_interval_s", "1"},
                       {"websocket.pong_timeout_s", "1"},
                       {"websocket.idle_timeout_s", "30"}});
    RawClient raw(server.port());  // never answers
    ASSERT_EQ(raw.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    auto rest = raw.read_until_eof();
    std::size_t used = 0;
    auto ping = parse_server_frame(rest, used);
    ASSERT_TRUE(ping);
    EXPECT_EQ(ping->opcode, 0x9);
    rest.erase(0, used);
    auto close = parse_server_frame(rest, used);
    ASSERT_TRUE(close);
    EXPECT_EQ(close->opcode, 0x8);
    EXPECT_EQ(close->payload.substr(2), "ping timeout");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "pong_timeout"}}), 1);
}

TEST(WebSocket, ConnectionsPerAddressAreCapped) {
    TestServer server({{"websocket.max_connections_per_ip", "2"}});
    WsClient a(server.port(), WsOptions{.local_address = "127.0.0.2"});
    WsClient b(server.port(), WsOptions{.local_address = "127.0.0.2"});
    WsClient c(server.port(), WsOptions{.local_address = "127.0.0.2"});
    auto closed = c.wait_closed();
    EXPECT_EQ(closed.code, 1008);
    EXPECT_EQ(closed.reason, "too many connections from your address");
    // Another address is not affected, nor are the first two.
    WsClient d(server.port(), WsOptions{.local_address = "127.0.0.3"});
    d.send_text("d");
    EXPECT_EQ(d.read()->data, "d");
    a.send_text("a");
    EXPECT_EQ(a.read()->data, "a");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "too_many_connections"}}),
              1);
}

TEST(WebSocket, MessageRateIsLimited) {
    TestServer server({{"websocket.max_messages_per_s", "1"}, {"websocket.message_burst", "3"}});
    WsClient client(server.port());
    for (int i = 0; i < 10; ++i) {
        client.send_text("m");
    }
    int echoed = 0;
    while (client.read()) {
        ++echoed;
    }
    EXPECT_LE(echoed, 4);  // the burst, plus at most one token refilled meanwhile
    EXPECT_GE(echoed, 3);
    EXPECT_EQ(client.close_info()->code, 1008);
    EXPECT_EQ(client.close_info()->reason, "message rate limit exceeded");
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "rate_limited"}}), 1);
}

TEST(WebSocket, SlowConsumerIsClosedWithoutDelayingAFastOne) {
    TestServer server(
        {{"websocket.max_outbound_bytes", "65536"}, {"websocket.max_message_bytes", "1048576"}});
    // The slow client asks for a lot of echo and never reads it: the kernel buffers fill, then the
    // outbox bound is reached and the server closes it.
    RawClient slow(server.port());
    ASSERT_EQ(slow.upgrade("/echo").rfind("HTTP/1.1 101", 0), 0u);
    WsClient fast(server.port());
    const std::string chunk = client_frame(0x2, std::string(512 * 1024, 's'));
    int round_trips = 0;
    while (server.metric("hearth_ws_disconnects_total", {{"reason", "slow_consumer"}}) == 0) {
        ASSERT_LT(round_trips, 400) << "the slow consumer was never closed";
        try {
            slow.write(chunk);
        } catch (const std::exception&) {
            break;  // the server already closed it
        }
        fast.send_text("ping " + std::to_string(round_trips));
        auto m = fast.read();
        ASSERT_TRUE(m);
        EXPECT_EQ(m->data, "ping " + std::to_string(round_trips));
        ++round_trips;
    }
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "slow_consumer"}}), 1);
    fast.send_text("after");
    EXPECT_EQ(fast.read()->data, "after");
}

}  // namespace
}  // namespace hearth::test
