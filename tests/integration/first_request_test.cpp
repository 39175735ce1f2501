// The first request of a plain connection (net/http_session.cpp, FirstRequest): an upgrade
// completed from one read, and what it hands to the HTTP session (a head split over reads).

#include <string>

#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

const std::string kUpgrade =
    "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// Reads server frames until one of `opcode` arrives; returns its payload.
std::string read_frame(RawClient& raw, std::string& bytes, std::uint8_t opcode) {
    for (;;) {
        std::size_t used = 0;
        if (auto f = parse_server_frame(bytes, used)) {
            bytes.erase(0, used);
            if (f->opcode == opcode) {
                return f->payload;
            }
            continue;
        }
        const auto more = raw.read_exactly(1);
        if (more.empty()) {
            return "<closed>";
        }
        bytes += more;
    }
}

// Frames that arrive in the same read as the upgrade request are the connection's first input.
TEST(FirstRequest, FramesInTheSameWriteAsTheUpgradeAreRead) {
    TestServer server;
    RawClient raw(server.port());
    raw.write(kUpgrade + client_frame(0x1, "first") + client_frame(0x1, "second"));
    const auto head = raw.read_http_head();
    ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
    EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
              std::string::npos);
    std::string bytes;
    EXPECT_EQ(read_frame(raw, bytes, 0x1), "first");
    EXPECT_EQ(read_frame(raw, bytes, 0x1), "second");
    EXPECT_EQ(server.metric("hearth_http_requests_total",
                            {{"listener", "http"}, {"route", "/echo"}, {"status", "101"}}),
              1);
}

// A head that does not arrive in one read continues in the HTTP session, which completes the
// same upgrade with the bytes read first.
TEST(FirstRequest, AnUpgradeSplitOverSeveralWritesIsCompleted) {
    TestServer server;
    RawClient raw(server.port());
    const auto split = kUpgrade.find("Sec-WebSocket-Key");
    raw.write(kUpgrade.substr(0, split));
    // Accepted before the rest is sent, so the server most likely reads the first part alone
    // (reading both at once would complete the upgrade just the same).
    EXPECT_TRUE(eventually([&] {
        return server.metric("hearth_net_connections_open",
                             {{"listener", "http"}, {"kind", "http"}}) >= 1;
    }));
    raw.write(kUpgrade.substr(split) + client_frame(0x1, "after a split head"));
    const auto head = raw.read_http_head();
    ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
    EXPECT_NE(head.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
              std::string::npos);
    std::string bytes;
    EXPECT_EQ(read_frame(raw, bytes, 0x1), "after a split head");
}

// A client that connects and sends nothing is closed at the head deadline, counted, and answered
// nothing; another client is served meanwhile.
TEST(FirstRequest, ASilentConnectionIsClosedAtTheHeadDeadline) {
    TestServer server({{"http.header_timeout_ms", "200"}, {"http.keepalive_timeout_s", "60"}});
    RawClient silent(server.port());
    EXPECT_EQ(http_request(server.port(), "GET", "/health").status, 200);
    EXPECT_EQ(silent.read_until_eof(), "");
    EXPECT_TRUE(eventually([&] {
        return server.metric("hearth_http_timeouts_total",
                             {{"listener", "http"}, {"phase", "header"}}) == 1;
    }));
}

}  // namespace
}  // namespace hearth::test
