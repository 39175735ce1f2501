// Abuse regression of the native protocol's hello (security part 2, item 1): while a hello's
// token is checked, the client's next messages are held so that they are answered in order. Held
// without a byte bound, 256 messages of up to 1 MiB each (far more once inflated) stayed in memory
// per unauthenticated connection. Now at most 64 KiB (or one message of any size) is held; past
// it the connection is closed 1008.
//
// To hold the check open deterministically, the token goes to the better-auth bridge (a token
// Hearth does not know is looked up there) whose "PostgreSQL server" is a socket that never
// accepts: the bridge's connection attempt hangs until the test closes it.

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;

/// A listening socket that never accepts: the kernel completes TCP handshakes into its backlog,
/// and nothing ever answers. Closing it resets the waiting connections.
class SilentListener {
public:
    SilentListener() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {}
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void close() {
        boost::system::error_code ec;
        acceptor_.close(ec);
    }

private:
    asio::io_context io_;
    asio::ip::tcp::acceptor acceptor_;
};

/// A server whose better-auth lookups hang until `release()`.
struct SlowTokenServer {
    SlowTokenServer() {
        const std::string url =
            "postgresql://hearth@127.0.0.1:" + std::to_string(pg.port()) + "/app?sslmode=disable";
        server = std::make_unique<TestServer>(Overrides{
            {"auth.better_auth.enabled", "true"},
            {"auth.better_auth.postgres_url", "\"" + url + "\""},
            {"auth.better_auth.query_timeout_ms", "20000"},
        });
    }
    ~SlowTokenServer() {
        release();  // else the bridge's threads wait for their connection attempt at shutdown
        server.reset();
    }
    void release() { pg.close(); }

    SilentListener pg;
    std::unique_ptr<TestServer> server;
};

std::string publish(std::size_t data_bytes) {
    return R"({"type":"publish","topic":"t","data":")" + std::string(data_bytes, 'x') + "\"}";
}

TEST(NativeAbuse, MessagesHeldDuringTheHelloCheckAreBoundedInBytes) {
    SlowTokenServer f;
    const auto port = f.server->port();
    WsClient flood(port, WsOptions{.path = "/ws", .compression = true});
    flood.send_text(R"({"type":"hello","token":"not-a-hearth-token","id":1})");
    // A little over 16 KiB each, with the JSON around the data: the fourth is past 64 KiB held.
    // (Before the fix all five, and 251 more, were held; nothing was closed.)
    for (int i = 0; i < 5; ++i) {
        flood.send_text(publish(16 * 1024));
    }
    const auto close = flood.wait_closed(std::chrono::seconds(3));
    EXPECT_EQ(close.code, 1008);
    EXPECT_EQ(close.reason, "too much sent before the hello was answered");
    EXPECT_EQ(f.server->metric("hearth_native_hello_held_overflow_total"), 1);

    // One message of any size is held when none is: a client may send its first message (any
    // size up to max_message_bytes) with its hello. It is answered after the hello, in order.
    WsClient pipelined(port, WsOptions{.path = "/ws"});
    pipelined.send_text(R"({"type":"hello","token":"not-a-hearth-token","id":1})");
    pipelined.send_text(R"({"type":"publish","topic":"t","id":2,"data":")" +
                        std::string(200 * 1024, 'y') + "\"}");
    f.release();  // the check fails (the database is unreachable): unavailable
    auto hello = pipelined.read(std::chrono::seconds(5));
    ASSERT_TRUE(hello.has_value());
    auto h = json::parse(hello->data).as_object();
    EXPECT_EQ(h.at("id").as_int64(), 1) << hello->data;
    EXPECT_EQ(h.at("type").as_string(), "error") << hello->data;
    auto next = pipelined.read(std::chrono::seconds(5));
    ASSERT_TRUE(next.has_value());
    auto n = json::parse(next->data).as_object();
    EXPECT_EQ(n.at("id").as_int64(), 2) << next->data;
    EXPECT_EQ(f.server->metric("hearth_native_hello_held_overflow_total"), 1);
}

}  // namespace
}  // namespace hearth::test
