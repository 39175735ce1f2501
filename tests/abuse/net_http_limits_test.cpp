// Security part 2, item 9: HTTP connections that hold the server without completing requests
// (slowloris). Each test reproduces the attack over real sockets and checks its bounded outcome:
// a request head that trickles in is closed by [http] header_timeout_ms, connections over
// [http] max_connections_per_ip or max_connections are closed at once, and other clients are
// served meanwhile.

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <boost/asio/ip/address.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/server_state.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

using Clock = std::chrono::steady_clock;

/// A blocking TCP client bound to a chosen loopback address, for the per-address limits. Every
/// wait has a deadline.
class Socket {
public:
    Socket(std::uint16_t port, const std::string& local_address = "127.0.0.1") {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) {
            throw std::runtime_error("socket failed");
        }
        sockaddr_in local{};
        local.sin_family = AF_INET;
        ::inet_pton(AF_INET, local_address.c_str(), &local.sin_addr);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
            throw std::runtime_error("bind failed");
        }
        sockaddr_in remote{};
        remote.sin_family = AF_INET;
        remote.sin_port = htons(port);
        ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
            throw std::runtime_error("connect failed");
        }
    }
    ~Socket() { ::close(fd_); }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    /// False when the connection is gone.
    bool send(const std::string& bytes) {
        return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }

    /// Waits up to `timeout` for the server to end the connection (EOF or reset), discarding what
    /// it sends; true when it ended.
    bool closed_within(std::chrono::milliseconds timeout) {
        const auto until = Clock::now() + timeout;
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
            pollfd p{fd_, POLLIN, 0};
            const int ready =
                ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
            if (ready <= 0) {
                return false;
            }
            char buffer[4096];
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n <= 0) {
                return true;
            }
            received_.append(buffer, static_cast<std::size_t>(n));
        }
    }

    /// Waits up to `timeout` until what the server sent from offset `from` on contains `needle`.
    bool received_within(const std::string& needle, std::chrono::milliseconds timeout,
                         std::size_t from = 0) {
        const auto until = Clock::now() + timeout;
        while (received_.find(needle, from) == std::string::npos) {
            if (Clock::now() >= until ||
                closed_within(
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::min<Clock::duration>(
                        until - Clock::now(), std::chrono::milliseconds(10))))) {
                return received_.find(needle, from) != std::string::npos;
            }
        }
        return true;
    }

    /// One keep-alive request answered: the server's session for this connection runs (and counts
    /// in the connection limits) once this returns true.
    bool served() {
        const auto before = received_.size();
        return send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n") &&
               received_within("{\"status\":\"ok\"}", kDeadline, before);
    }

    const std::string& received() const noexcept { return received_; }

private:
    int fd_ = -1;
    std::string received_;
};

/// Waits (with a deadline) until `f` holds, polling the server's own state.
TEST(AbuseNetHttpLimits, TricklingRequestHeadsAreClosedByTheHeaderDeadline) {
    // The keep-alive and body timeouts are long: only the head's own deadline can close these.
    TestServer server({{"http.header_timeout_ms", "300"},
                       {"http.keepalive_timeout_s", "60"},
                       {"http.request_timeout_ms", "60000"}});
    constexpr int kSlow = 4;
    std::vector<std::unique_ptr<Socket>> slow;
    const auto start = Clock::now();
    for (int i = 0; i < kSlow; ++i) {
        slow.push_back(std::make_unique<Socket>(server.port()));
        ASSERT_TRUE(slow.back()->send("GET /health HTTP/1.1\r\nHost: x\r\n"));
    }
    // One header byte per connection every 50 ms (the attack: the head never completes, and each
    // byte arrives well within any per-read timeout), until the server closes them all.
    const std::string header = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    std::vector<bool> closed(kSlow, false);
    int open = kSlow;
    bool served_meanwhile = false;
    for (std::size_t byte = 0; open > 0 && Clock::now() - start < std::chrono::seconds(4); ++byte) {
        for (int i = 0; i < kSlow; ++i) {
            if (closed[i]) {
                continue;
            }
            const bool sent = slow[i]->send(std::string(1, header[byte % header.size()]));
            if (!sent || slow[i]->closed_within(std::chrono::milliseconds(50 / kSlow))) {
                closed[i] = true;
                --open;
            }
        }
        if (!served_meanwhile && byte == 2) {
            // Another client is served while the slow ones trickle.
            served_meanwhile = http_request(server.port(), "GET", "/health").status == 200;
        }
    }
    const auto elapsed = Clock::now() - start;
    EXPECT_EQ(open, 0) << "slow heads still open after 4 s";
    EXPECT_LT(elapsed, std::chrono::seconds(3));
    EXPECT_TRUE(served_meanwhile);
    for (const auto& s : slow) {
        EXPECT_EQ(s->received(), "") << "closed without a response";
    }
    EXPECT_TRUE(eventually([&] {
        return server.metric("hearth_http_timeouts_total",
                             {{"listener", "http"}, {"phase", "header"}}) == kSlow;
    }));
    EXPECT_EQ(http_request(server.port(), "GET", "/health").status, 200);
}

TEST(AbuseNetHttpLimits, TheNextHeadOnAKeptAliveConnectionHasTheSameDeadline) {
    TestServer server({{"http.header_timeout_ms", "300"}, {"http.keepalive_timeout_s", "60"}});
    Socket client(server.port());
    ASSERT_TRUE(client.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(eventually([&] {
        client.closed_within(std::chrono::milliseconds(0));
        return client.received().find("\r\n\r\n{\"status\":\"ok\"}") != std::string::npos;
    }));
    // Idle between requests is allowed (keepalive_timeout_s); a head that starts and trickles is
    // not.
    const auto start = Clock::now();
    bool closed = !client.send("GET /health HTTP/1.1\r\n");
    for (int i = 0; !closed && Clock::now() - start < std::chrono::seconds(4); ++i) {
        closed = !client.send("X") || client.closed_within(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

TEST(AbuseNetHttpLimits, OverThePerAddressCapANewConnectionIsClosedAtOnce) {
    TestServer server({{"http.max_connections_per_ip", "3"},
                       {"http.header_timeout_ms", "30000"},
                       {"http.keepalive_timeout_s", "60"}});
    // The held connections come from 127.0.0.5; the test's own metric requests from 127.0.0.1.
    std::vector<std::unique_ptr<Socket>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<Socket>(server.port(), "127.0.0.5"));
        ASSERT_TRUE(held.back()->served());  // counted by the server now
    }
    Socket over(server.port(), "127.0.0.5");
    const auto start = Clock::now();
    EXPECT_TRUE(over.closed_within(std::chrono::seconds(2)));
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
    EXPECT_EQ(over.received(), "");  // closed without a response
    EXPECT_EQ(server.metric("hearth_http_connections_refused_total",
                            {{"listener", "http"}, {"reason", "max_connections_per_ip"}}),
              1);
    // Another address is served meanwhile, and the held connections are untouched.
    EXPECT_EQ(http_request(server.port(), "GET", "/health").status, 200);
    for (auto& h : held) {
        EXPECT_TRUE(h->served());
    }
    // A slot given back is usable again.
    held.pop_back();
    EXPECT_TRUE(eventually([&] { return Socket(server.port(), "127.0.0.5").served(); }));
}

TEST(AbuseNetHttpLimits, OverTheGlobalCapANewConnectionIsClosedAtOnce) {
    TestServer server({{"http.max_connections", "2"},
                       {"http.max_connections_per_ip", "0"},
                       {"http.header_timeout_ms", "30000"}});
    auto a = std::make_unique<Socket>(server.port(), "127.0.0.3");
    ASSERT_TRUE(a->served());
    Socket b(server.port(), "127.0.0.4");
    ASSERT_TRUE(b.served());
    Socket over(server.port(), "127.0.0.5");
    EXPECT_TRUE(over.closed_within(std::chrono::seconds(2)));
    a.reset();
    // The metric request itself needs a free slot: wait until a's is given back.
    double refused = -1;
    EXPECT_TRUE(eventually([&] {
        try {
            refused = server.metric("hearth_http_connections_refused_total",
                                    {{"listener", "http"}, {"reason", "max_connections"}});
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }));
    EXPECT_EQ(refused, 1);
}

TEST(AbuseNetHttpLimits, ATricklingBodyIsClosedByTheRequestDeadline) {
    TestServer server({{"http.request_timeout_ms", "300"}, {"http.keepalive_timeout_s", "60"}});
    Socket client(server.port());
    ASSERT_TRUE(client.send("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"));
    const auto start = Clock::now();
    bool closed = false;
    for (int i = 0; !closed && Clock::now() - start < std::chrono::seconds(4); ++i) {
        closed = !client.send("x") || client.closed_within(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
    EXPECT_TRUE(eventually([&] {
        return server.metric("hearth_http_timeouts_total",
                             {{"listener", "http"}, {"phase", "body"}}) == 1;
    }));
}

TEST(AbuseNetHttpLimits, IPv6AddressesAreCountedByTheirSlash64) {
    namespace ip = boost::asio::ip;
    const auto key = [](const char* a) { return net::address_key(ip::make_address(a)); };
    EXPECT_EQ(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    EXPECT_NE(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    EXPECT_EQ(key("::ffff:192.0.2.7"), "192.0.2.7");
    EXPECT_EQ(key("192.0.2.7"), "192.0.2.7");
}

}  // namespace
}  // namespace hearth::test
