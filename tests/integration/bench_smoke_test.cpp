// Smoke tests of the load generator: a short run of each hearth-bench scenario against an
// in-process server, checking that the tool works and reports (never a speed).

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/server.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

std::uint64_t u64(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        throw std::runtime_error("no \"" + std::string(key) + "\" in " + json::serialize(o));
    }
    return v->to_number<std::uint64_t>();
}

double number(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        throw std::runtime_error("no \"" + std::string(key) + "\" in " + json::serialize(o));
    }
    return v->to_number<double>();
}

std::string url(const TestServer& server, const std::string& path) {
    return "ws://127.0.0.1:" + std::to_string(server.port()) + path;
}

// The server's per-connection message rate limit (1000/s by default) would close a benchmark
// connection within its first second.
const Overrides kNoRateLimit{{"websocket.max_messages_per_s", "0"}};

TEST(BenchSmoke, Echo) {
    TestServer server(kNoRateLimit);
    const auto run =
        run_bench({"echo", "--url", url(server, "/echo"), "--connections", "4", "--size", "64",
                   "--duration", "1", "--json", "--server-pid", std::to_string(getpid())});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(r.at("scenario").as_string(), "echo");
    EXPECT_GT(u64(r, "delivered"), 0U);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    EXPECT_EQ(u64(r, "sent"), u64(r, "delivered"));  // every round trip completed in the drain
    EXPECT_EQ(u64(r, "connections_opened"), 4U);
    EXPECT_GE(number(r, "server_cpu_s"), 0.0);
    const auto& latency = r.at("latency_us").as_object();
    EXPECT_GT(number(latency, "p50"), 0.0);
    EXPECT_LE(number(latency, "p50"), number(latency, "p99"));
    EXPECT_LE(number(latency, "p99"), number(latency, "max"));
}

TEST(BenchSmoke, Connections) {
    TestServer server;
    const auto run = run_bench({"connections", "--url", url(server, "/echo"), "--count", "60",
                                "--source-addresses", "3", "--duration", "1", "--json",
                                "--server-pid", std::to_string(getpid())});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "opened"), 60U) << json::serialize(r);
    EXPECT_EQ(u64(r, "open_at_end"), 60U);
    EXPECT_EQ(u64(r, "delivered"), 60U);  // a delivery is a completed handshake
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    EXPECT_GE(number(r, "server_cpu_s"), 0.0);
    EXPECT_TRUE(r.contains("server_rss_bytes_per_connection"));
}

TEST(BenchSmoke, Fanout) {
    TestServer server(kNoRateLimit);
    const auto run = run_bench({"fanout", "--url", url(server, "/ws"), "--publishers", "2",
                                "--subscribers", "5", "--size", "128", "--duration", "1", "--json",
                                "--server-pid", std::to_string(getpid())});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "subscribed"), 5U) << json::serialize(r);
    EXPECT_GT(u64(r, "delivered"), 0U);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    // Every publish reached every subscriber (the run drains what is in flight).
    EXPECT_EQ(u64(r, "delivered"), u64(r, "sent") * 5);
    EXPECT_GE(number(r, "server_cpu_s"), 0.0);
}

TEST(BenchSmoke, FanoutAtAFixedRate) {
    TestServer server(kNoRateLimit);
    const auto run =
        run_bench({"fanout", "--url", url(server, "/ws"), "--publishers", "1", "--subscribers", "3",
                   "--rate", "200", "--duration", "1", "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    // About 200 publishes in one second; generous bounds, this is no speed test.
    EXPECT_GT(u64(r, "sent"), 50U);
    EXPECT_LE(u64(r, "sent"), 220U);
    EXPECT_EQ(u64(r, "delivered"), u64(r, "sent") * 3);
}

TEST(BenchSmoke, HunterpieWithCompression) {
    // Both roles with permessage-deflate negotiated: leaders send their pushes compressed, the
    // server forwards them compressed, members inflate each one and check it byte for byte
    // against what their leader sent (a push that differs would be an error, not a delivery).
    TestServer server({{"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""},
                       {"websocket.max_messages_per_s", "0"}});
    const std::string hunterpie_url =
        "ws://127.0.0.1:" + std::to_string(server.app().server().bound_port("hunterpie")) +
        "/connect";
    std::uint64_t delivered_total = 0;
    double push_bytes = 0;
    for (const std::string role : {"hunterpie-leader", "hunterpie-member"}) {
        SCOPED_TRACE(role);
        const auto run = run_bench({role, "--url", hunterpie_url, "--sessions", "2", "--members",
                                    "3", "--interval-ms", "20", "--duration", "1", "--compression",
                                    "--json", "--server-pid", std::to_string(getpid())});
        ASSERT_EQ(run.exit_code, 0) << run.out;
        const auto r = report_of(run);
        EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
        EXPECT_TRUE(r.at("compression").as_bool());
        EXPECT_EQ(u64(r, "connections_opened"), 8U);
        EXPECT_EQ(u64(r, "compression_negotiated"), 8U) << json::serialize(r);
        EXPECT_GT(u64(r, "pushes_sent"), 10U);
        EXPECT_EQ(u64(r, "pushes_delivered"), u64(r, "pushes_expected")) << json::serialize(r);
        EXPECT_EQ(u64(r, "pushes_expected"), u64(r, "pushes_sent") * 3);
        // Everything the members received came compressed (pushes and sessionstates), and the
        // leaders compressed every push.
        EXPECT_GE(u64(r, "messages_inflated"), u64(r, "pushes_delivered"));
        EXPECT_GE(u64(r, "messages_deflated"), u64(r, "pushes_sent"));
        const auto& latency = r.at("latency_us").as_object();
        EXPECT_EQ(u64(latency, "count"), u64(r, "pushes_delivered"));
        EXPECT_GT(number(latency, "p50"), 0.0);
        delivered_total += u64(r, "pushes_delivered");
        push_bytes = number(r, "push_bytes");
    }
    // The server's side: what it wrote on /connect is far less than the pushes' plain size.
    const double bytes_out = server.metric("hearth_ws_bytes_out_total", {{"route", "/connect"}});
    EXPECT_GT(bytes_out, 0.0);
    EXPECT_LT(bytes_out, 0.8 * static_cast<double>(delivered_total) * push_bytes)
        << "deliveries " << delivered_total << " of " << push_bytes << " bytes";
    EXPECT_EQ(server.metric("hearth_hunterpie_push_dropped_total"), 0.0);
}

TEST(BenchSmoke, EndsByItselfWhenNobodyListens) {
    // A port that was free a moment ago: connections are refused.
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    close(s);
    const auto run = run_bench(
        {"echo", "--url", "ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/echo",
         "--connections", "3", "--duration", "1", "--json"},
        30s);
    EXPECT_EQ(run.exit_code, 1) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "connections_failed"), 3U);
    EXPECT_EQ(u64(r, "errors"), 3U);
}

TEST(BenchSmoke, EndsByItselfWhenTheServerNeverAnswers) {
    // A listener that never accepts: TCP connects (the kernel's backlog), the upgrade is never
    // answered, so only the handshake deadline ends each connection.
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(s, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
    const auto start = std::chrono::steady_clock::now();
    const auto run = run_bench(
        {"connections", "--url", "ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/echo",
         "--count", "3", "--handshake-timeout", "0.5", "--duration", "1", "--json"},
        30s);
    close(s);
    EXPECT_EQ(run.exit_code, 1) << run.out;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "connections_failed"), 3U);
    EXPECT_EQ(u64(r.at("close_reasons").as_object(), "handshake timed out"), 3U)
        << json::serialize(r);
}

}  // namespace
}  // namespace hearth::test
