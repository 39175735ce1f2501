// Abuse regressions of POST /logs/add (security part 2, item 7): it is open to anyone, with CORS
// `*`. Each test reproduces the attack over real sockets and checks the bounded outcome:
// - retention is bounded in bytes, not only in rows (100 KiB entries could fill ~100 GB);
// - posting is rate-limited per client address (429 with Retry-After), in a bounded table;
// - a posted entry cannot pass for one of the server's own lines ("user":"server").

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdminToken = "abuse-logs-admin-token";

std::string quoted(const std::string& s) {
    return "\"" + s + "\"";
}

/// An entry of about `size` bytes: `msg` and a filler.
std::string entry(const std::string& msg, std::size_t size, const std::string& extra = "") {
    return R"({"msg":")" + msg + R"(",)" + extra + R"("pad":")" + std::string(size, 'x') + "\"}";
}

/// Every stored entry, newest first (GET /api/v1/logs, one page of up to 1000).
std::vector<json::object> stored(std::uint16_t port, const std::string& query = "") {
    auto r = http_request(port, "GET", "/api/v1/logs?limit=1000" + query, "",
                          {{"Authorization", std::string("Bearer ") + kAdminToken}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<json::object> out;
    auto v = json::parse(r.body);
    for (auto& item : v.at("items").as_array()) {
        out.push_back(item.as_object());
    }
    return out;
}

std::string msg_of(const json::object& e) {
    const auto* m = e.if_contains("msg");
    return m && m->is_string() ? std::string(m->get_string()) : std::string();
}

// 100 KiB bodies at a client's full speed: the first spends the burst, the next is refused with
// 429, Retry-After and the CORS header (a browser page must be able to read it), and counted.
// Another address is not affected. Before the fix every post was accepted.
TEST(LogsAbuse, AddIsRateLimitedPerAddressWithRetryAfter) {
    TestServer server{{"logs.add_bytes_per_s", "1024"}, {"logs.add_burst_bytes", "102400"}};
    const std::string big = entry("big", 102'300);  // just under the 102,400-byte body bound
    ASSERT_LE(big.size(), 102'400u);
    auto first = http_request(server.port(), "POST", "/logs/add", big,
                              {{"Content-Type", "application/json"}});
    EXPECT_EQ(first.status, 200) << first.body;

    auto second = http_request(server.port(), "POST", "/logs/add", big,
                               {{"Content-Type", "application/json"}});
    ASSERT_EQ(second.status, 429) << second.body;
    EXPECT_EQ(second.headers["access-control-allow-origin"], "*");
    ASSERT_TRUE(second.headers.contains("retry-after"));
    // The bucket refills 1 KiB a second and the post needs ~100 KiB more: about 100 s.
    const int retry_after = std::atoi(second.headers["retry-after"].c_str());
    EXPECT_GE(retry_after, 90);
    EXPECT_LE(retry_after, 100);
    EXPECT_EQ(json::parse(second.body).at("error").at("code").as_string(), "rate_limited");

    // Even a tiny post is refused now: each costs at least 1 KiB.
    EXPECT_EQ(http_request(server.port(), "POST", "/logs/add", R"({"msg":"tiny"})").status, 429);

    // Another address has its own bucket (its empty body is then refused as invalid JSON: the
    // rate limit came first and let it through).
    EXPECT_EQ(http_request_from("127.0.0.2", server.port(), "POST", "/logs/add").status, 400);

    EXPECT_EQ(
        server.metric("hearth_logs_refused_total",
                      {{"listener", "http"}, {"route", "/logs/add"}, {"reason", "rate_limited"}}),
        2);
}

// The per-address table is bounded: at add_max_addresses, the least recently seen address is
// forgotten (and counted), so memory stays bounded whatever the number of addresses; a forgotten
// address starts again with a full bucket.
TEST(LogsAbuse, AddRateTableIsBoundedAndANewAddressGetsNoFreshBucket) {
    TestServer server{{"logs.add_bytes_per_s", "1"},
                      {"logs.add_burst_bytes", "102400"},
                      {"logs.add_max_addresses", "1"}};
    const std::string big = entry("big", 99'000);
    EXPECT_EQ(http_request(server.port(), "POST", "/logs/add", big).status, 200);
    EXPECT_EQ(http_request(server.port(), "POST", "/logs/add", big).status, 429);
    // The only place is held by a bucket still in debt: a second address waits rather than
    // pushing it out (cycling addresses must not reset anyone's limit), and 127.0.0.1 stays
    // limited.
    EXPECT_EQ(http_request_from("127.0.0.2", server.port(), "POST", "/logs/add").status, 429);
    EXPECT_EQ(server.metric("hearth_logs_add_addresses_evicted_total"), 0);
    EXPECT_EQ(http_request(server.port(), "POST", "/logs/add", big).status, 429);
}

// Entries of ~1 KiB against a 4 KiB byte bound (and the default million rows): the oldest are
// deleted until the stored bytes are within the bound. Before the fix only rows were counted and
// all eight stayed.
TEST(LogsAbuse, RetentionIsBoundedInBytesOldestFirst) {
    TestServer server{{"logs.retention_max_bytes", "4096"},
                      {"http.admin_token", quoted(kAdminToken)}};
    WsClient listener(server.port(), WsOptions{.path = "/logs/listen"});
    std::string batch = "[";
    for (int i = 0; i < 8; ++i) {
        batch += (i ? "," : "") + entry("big-" + std::to_string(i), 1000);
    }
    batch += "]";
    ASSERT_EQ(http_request(server.port(), "POST", "/logs/add", batch).status, 200);

    // Retention runs with the batch that stores the entries, then at most once a second while
    // entries arrive. Ticks (one per 100 ms batch, paced by the listener) keep entries arriving in
    // case the eight were split over two batches.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(4);
    std::size_t bytes = 0;
    std::set<std::string> msgs;
    int tick = 0;
    for (;;) {
        bytes = 0;
        msgs.clear();
        for (const auto& e : stored(server.port())) {
            bytes += json::serialize(e).size();
            msgs.insert(msg_of(e));
        }
        if (bytes <= 4096 && !msgs.contains("big-0") && msgs.contains("big-7")) {
            break;
        }
        ASSERT_LT(std::chrono::steady_clock::now(), deadline)
            << "stored " << bytes << " bytes, big-0 " << (msgs.contains("big-0") ? "kept" : "gone");
        const std::string name = "tick-" + std::to_string(tick++);
        ASSERT_EQ(
            http_request(server.port(), "POST", "/logs/add", R"({"msg":")" + name + "\"}").status,
            200);
        for (bool seen = false; !seen;) {
            auto m = listener.read(std::chrono::seconds(2));
            ASSERT_TRUE(m.has_value());
            seen = m->data.find(name) != std::string::npos;
        }
    }
    EXPECT_GT(bytes, 0u);
    EXPECT_GE(server.metric("hearth_logs_pruned_total"), 5);  // at least big-0 .. big-4
}

// A posted entry claiming the server's name is renamed "<user> (posted)", in the live stream and
// in the store, so that neither listeners nor ?user=server can take it for a server line. Before
// the fix it went out as "user":"server".
TEST(LogsAbuse, PostedEntryCannotClaimTheServersName) {
    TestServer server{{"http.admin_token", quoted(kAdminToken)}};
    WsClient listener(server.port(), WsOptions{.path = "/logs/listen"});
    const std::string body = R"([{"msg":"spoof-1","user":"server","level":"INFO"},)"
                             R"({"msg":"spoof-2","user":" Server\t"},)"
                             R"({"msg":"fine","user":"servers"}])";
    ASSERT_EQ(http_request(server.port(), "POST", "/logs/add", body).status, 200);

    std::map<std::string, std::string> user_of;
    while (user_of.size() < 3) {
        auto m = listener.read(std::chrono::seconds(3));
        ASSERT_TRUE(m.has_value());
        const auto frame = json::parse(m->data);
        for (const auto& v : frame.as_array()) {
            const auto& e = v.as_object();
            const auto msg = msg_of(e);
            if (msg == "spoof-1" || msg == "spoof-2" || msg == "fine") {
                user_of[msg] = std::string(e.at("user").as_string());
            }
        }
    }
    EXPECT_EQ(user_of["spoof-1"], "server (posted)");
    EXPECT_EQ(user_of["spoof-2"], " Server\t (posted)");
    EXPECT_EQ(user_of["fine"], "servers");
    // Stored as streamed: the batch is written right after it is sent; a few reads find it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (;;) {
        const auto posted = stored(server.port(), "&user=server%20(posted)");
        if (!posted.empty()) {
            EXPECT_EQ(msg_of(posted.front()), "spoof-1");
            break;
        }
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the entries were not stored";
    }
    for (const auto& e : stored(server.port(), "&user=server")) {
        EXPECT_FALSE(msg_of(e).starts_with("spoof")) << json::serialize(e);
    }
    EXPECT_EQ(server.metric("hearth_logs_user_renamed_total"), 2);
}

}  // namespace
}  // namespace hearth::test
