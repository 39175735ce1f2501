// Smoke tests of the load generator: a short run of each hearth-bench scenario against an
// in-process server, checking that the tool works and reports (never a speed).
//
// Deterministic on a loaded machine (ASan, two cores shared with other tests): every count is
// compared with another count, never with what a second of wall time should hold; the drain after
// --duration waits for what is in flight with a generous --drain (run_bench_drained); and no test
// reuses a port it let go of.

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
    const auto run = run_bench_drained({"echo", "--url", url(server, "/echo"), "--connections", "4",
                                        "--size", "64", "--duration", "1", "--json", "--server-pid",
                                        std::to_string(getpid())});
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
    const auto run = run_bench_drained({"fanout", "--url", url(server, "/ws"), "--publishers", "2",
                                        "--subscribers", "5", "--size", "128", "--duration", "1",
                                        "--json", "--server-pid", std::to_string(getpid())});
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
        run_bench_drained({"fanout", "--url", url(server, "/ws"), "--publishers", "1",
                           "--subscribers", "3", "--rate", "200", "--duration", "1", "--json"});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    // The schedule never runs ahead: by any moment t of the measured phase, 200 x t publishes are
    // due, each sent or (the window full) skipped; elapsed_s (from before the first to after the
    // drain, in ms) covers every moment of it. How many a busy machine got through is no test.
    EXPECT_GT(u64(r, "sent"), 0U);
    EXPECT_LE(static_cast<double>(u64(r, "sent") + u64(r, "publish_skipped")),
              200 * (number(r, "elapsed_s") + 0.001))
        << json::serialize(r);
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
        const auto run =
            run_bench_drained({role, "--url", hunterpie_url, "--sessions", "2", "--members", "3",
                               "--interval-ms", "20", "--duration", "1", "--compression", "--json",
                               "--server-pid", std::to_string(getpid())});
        ASSERT_EQ(run.exit_code, 0) << run.out;
        const auto r = report_of(run);
        EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
        EXPECT_TRUE(r.at("compression").as_bool());
        EXPECT_EQ(u64(r, "connections_opened"), 8U);
        EXPECT_EQ(u64(r, "compression_negotiated"), 8U) << json::serialize(r);
        // Each leader pushes at its first tick of the measured phase; how many more a busy
        // machine fits into the second is no test.
        EXPECT_GE(u64(r, "pushes_sent"), 2U);
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

/// A child process that only waits (`busy` false) or only spins, until the test ends. Forked from
/// this multithreaded process, it calls nothing but async-signal-safe functions.
class CpuChild {
public:
    explicit CpuChild(bool busy) : pid_(fork()) {
        if (pid_ == 0) {
            if (busy) {
                volatile unsigned long spins = 0;
                for (;;) {
                    spins = spins + 1;
                }
            }
            for (;;) {
                pause();
            }
        }
    }
    ~CpuChild() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    CpuChild(const CpuChild&) = delete;
    CpuChild& operator=(const CpuChild&) = delete;
    pid_t pid() const noexcept { return pid_; }

private:
    pid_t pid_;
};

TEST(BenchSmoke, ServerCpuIsTheCpuTimeOfTheNamedProcess) {
    // server_cpu_s is the --server-pid process's CPU time over the window (tests/unit/core/
    // process_cpu_test.cpp checks the /proc reading against the process's own clock): a process
    // that waits the whole run shows none, however long the run; one that spins shows some, and
    // one thread cannot show more than the window's wall time.
    TestServer server(kNoRateLimit);
    const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
    for (const bool busy : {false, true}) {
        SCOPED_TRACE(busy ? "spinning" : "waiting");
        CpuChild child(busy);
        ASSERT_GT(child.pid(), 0);
        const auto run = run_bench_drained({"echo", "--url", url(server, "/echo"), "--connections",
                                            "2", "--duration", "1", "--json", "--server-pid",
                                            std::to_string(child.pid())});
        ASSERT_EQ(run.exit_code, 0) << run.out;
        const auto r = report_of(run);
        const double elapsed = number(r, "elapsed_s");
        const double cpu = number(r, "server_cpu_s");
        EXPECT_GE(elapsed, 1.0);
        if (busy) {
            EXPECT_GT(cpu, 0.0) << json::serialize(r);
            EXPECT_LE(cpu, elapsed + 2 * tick) << json::serialize(r);
        } else {
            EXPECT_LE(cpu, 2 * tick) << json::serialize(r);  // rounding of the two readings
        }
    }
}

TEST(BenchSmoke, EndsByItselfWhenNobodyListens) {
    // A port bound by this test but not listening: connections to it are refused (RST), and
    // since the socket stays bound (without SO_REUSEADDR) for the whole run, no other process can
    // take the port and accept them, as it could a port that was merely free a moment ago.
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const auto run = run_bench(
        {"echo", "--url", "ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/echo",
         "--connections", "3", "--duration", "1", "--json"},
        30s);
    close(s);
    EXPECT_EQ(run.exit_code, 1) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "connections_failed"), 3U);
    EXPECT_EQ(u64(r, "errors"), 3U);
}

TEST(BenchSmoke, EndsByItselfWhenTheServerNeverAnswers) {
    // A listener that never accepts: TCP connects (the kernel's backlog), the upgrade is never
    // answered, so only the handshake deadline ends each connection.
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
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
