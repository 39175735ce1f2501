// Stored logs through the real HTTP API: GET /api/v1/logs with the admin token, each filter,
// paging, the errors, retention by max_rows, storage turned off, and entries surviving a restart;
// every test on SQLite and on PostgreSQL.

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kToken = "logs-test-admin-token";

Overrides with_token(Overrides o = {}) {
    o["http.admin_token"] = std::string("\"") + kToken + "\"";
    return o;
}

HttpResult get_logs(std::uint16_t port, const std::string& query,
                    const std::string& token = kToken) {
    std::map<std::string, std::string> headers;
    if (!token.empty()) {
        headers["Authorization"] = "Bearer " + token;
    }
    return http_request(port, "GET", "/api/v1/logs" + query, "", headers);
}

void post(std::uint16_t port, const std::string& body) {
    auto r = http_request(port, "POST", "/logs/add", body, {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 200) << r.body;
}

struct Page {
    std::vector<json::object> items;
    std::optional<std::string> next;
};

Page parse_page(const HttpResult& r) {
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
    Page p;
    auto v = json::parse(r.body);
    for (auto& item : v.at("items").as_array()) {
        p.items.push_back(item.as_object());
    }
    if (const auto& n = v.at("next"); n.is_string()) {
        p.next = std::string(n.get_string());
    } else {
        EXPECT_TRUE(n.is_null()) << r.body;
    }
    return p;
}

std::vector<std::string> msgs(const Page& p) {
    std::vector<std::string> out;
    for (const auto& e : p.items) {
        const auto* m = e.if_contains("msg");
        out.push_back(m && m->is_string() ? std::string(m->get_string()) : "");
    }
    return out;
}

/// Queries until `done(page)` holds; entries are stored at the live stream's next batch (every
/// 100 ms), so a freshly posted entry shows up within a few polls. Fails past the deadline.
template <class Done>
Page query_until(std::uint16_t port, const std::string& query, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    for (;;) {
        Page p = parse_page(get_logs(port, query));
        if (done(p) || std::chrono::steady_clock::now() > deadline) {
            EXPECT_TRUE(done(p)) << "condition not reached for " << query;
            return p;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync
    }
}

std::string error_code_of(const HttpResult& r) {
    return std::string(json::parse(r.body).at("error").at("code").as_string());
}

// Every test runs on SQLite and on PostgreSQL (support/store_backend.hpp).
class LogsApi : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(LogsApi);

TEST_P(LogsApi, RequiresTheAdminToken) {
    TestServer server(with_token());
    auto none = get_logs(server.port(), "", "");
    EXPECT_EQ(none.status, 401);
    EXPECT_EQ(error_code_of(none), "unauthorized");
    EXPECT_EQ(none.headers["www-authenticate"], "Bearer");
    EXPECT_EQ(get_logs(server.port(), "", "wrong").status, 401);
    EXPECT_EQ(get_logs(server.port(), "", std::string(kToken) + "x").status, 401);
    EXPECT_EQ(get_logs(server.port(), "").status, 200);

    // No admin token configured: nothing is accepted, not even an empty bearer.
    TestServer open_server;
    EXPECT_EQ(get_logs(open_server.port(), "", "").status, 401);
    EXPECT_EQ(
        http_request(open_server.port(), "GET", "/api/v1/logs", "", {{"Authorization", "Bearer "}})
            .status,
        401);
}

TEST_P(LogsApi, EveryFilterNewestFirst) {
    TestServer server(with_token());
    const auto port = server.port();
    post(port, R"([
        {"msg":"a1","user":"alice","level":"info","room":"r1"},
        {"msg":"b1","user":"bob","level":"ERROR","room":"r1"},
        {"msg":"a2","user":"alice","level":"warn","room":"r2"},
        {"msg":"c1","user":"carol","level":"Debug"}
    ])");
    auto all = query_until(port, "?room=r1", [](const Page& p) { return p.items.size() == 2; });
    EXPECT_EQ(msgs(all), (std::vector<std::string>{"b1", "a1"}));
    EXPECT_FALSE(all.next);
    // Stored as streamed: the client's fields plus room, serverTime, seqNumber.
    EXPECT_EQ(all.items[0].at("user").as_string(), "bob");
    EXPECT_TRUE(all.items[0].at("serverTime").is_int64());
    EXPECT_GT(all.items[0].at("seqNumber").to_number<std::int64_t>(),
              all.items[1].at("seqNumber").to_number<std::int64_t>());

    EXPECT_EQ(msgs(parse_page(get_logs(port, "?user=alice"))),
              (std::vector<std::string>{"a2", "a1"}));
    EXPECT_EQ(msgs(parse_page(get_logs(port, "?user=alice&room=r2"))),
              (std::vector<std::string>{"a2"}));
    // Levels match case-insensitively, several at once.
    EXPECT_EQ(msgs(parse_page(get_logs(port, "?level=error,WARN&room=r1"))),
              (std::vector<std::string>{"b1"}));
    EXPECT_EQ(msgs(parse_page(get_logs(port, "?level=debug&user=carol"))),
              (std::vector<std::string>{"c1"}));
    // The common room is "" when a client sends none.
    auto carol = parse_page(get_logs(port, "?user=carol"));
    ASSERT_EQ(carol.items.size(), 1U);
    EXPECT_EQ(carol.items[0].at("room").as_string(), "");

    // since: milliseconds or RFC 3339; in the future: nothing, in the past: everything.
    const auto a1_time = all.items[1].at("serverTime").to_number<std::int64_t>();
    EXPECT_EQ(msgs(parse_page(get_logs(port, "?room=r1&since=" + std::to_string(a1_time)))),
              (std::vector<std::string>{"b1", "a1"}));
    EXPECT_TRUE(parse_page(get_logs(port, "?room=r1&since=" + std::to_string(a1_time + 3'600'000)))
                    .items.empty());
    EXPECT_EQ(parse_page(get_logs(port, "?room=r1&since=2000-01-01T00:00:00Z")).items.size(), 2U);
    EXPECT_EQ(
        parse_page(get_logs(port, "?room=r1&since=2000-01-01T01:00:00.5%2B01:00")).items.size(),
        2U);
    EXPECT_TRUE(parse_page(get_logs(port, "?room=r1&since=2999-01-01T00:00:00Z")).items.empty());
    EXPECT_TRUE(parse_page(get_logs(port, "?room=nobody")).items.empty());
}

TEST_P(LogsApi, PagesWithAnOpaqueCursor) {
    TestServer server(with_token());
    const auto port = server.port();
    std::string body = "[";
    for (int i = 1; i <= 7; ++i) {
        body += std::string(i > 1 ? "," : "") + R"({"msg":"m)" + std::to_string(i) +
                R"(","room":"paged"})";
    }
    body += "]";
    post(port, body);
    query_until(port, "?room=paged", [](const Page& p) { return p.items.size() == 7; });

    std::vector<std::string> seen;
    std::string query = "?room=paged&limit=3";
    int pages = 0;
    for (;;) {
        Page p = parse_page(get_logs(port, query));
        ++pages;
        for (auto& m : msgs(p)) {
            seen.push_back(m);
        }
        if (!p.next) {
            break;
        }
        query = "?room=paged&limit=3&cursor=" + *p.next;
        ASSERT_LT(pages, 10);
    }
    EXPECT_EQ(pages, 3);
    EXPECT_EQ(seen, (std::vector<std::string>{"m7", "m6", "m5", "m4", "m3", "m2", "m1"}));
    // A page that ends exactly at the last entry says so: no next.
    EXPECT_FALSE(parse_page(get_logs(port, "?room=paged&limit=7")).next);
}

TEST_P(LogsApi, BadParametersAreRefusedWithTheirName) {
    TestServer server(with_token());
    const auto port = server.port();
    for (const auto& [query, parameter] : std::vector<std::pair<std::string, std::string>>{
             {"?limit=0", "limit"},
             {"?limit=1001", "limit"},
             {"?limit=ten", "limit"},
             {"?since=yesterday", "since"},
             {"?since=2026-13-01T00:00:00Z", "since"},
             {"?since=2026-11-22T00:00:00", "since"},  // no zone: ambiguous
             {"?level=ERR-OR", "level"},
             {"?level=,", "level"},
             {"?cursor=abc", "cursor"},
             {"?levels=ERROR", "levels"},
         }) {
        auto r = get_logs(port, query);
        EXPECT_EQ(r.status, 400) << query << " " << r.body;
        EXPECT_EQ(error_code_of(r), "invalid_parameter") << query;
        const auto message = std::string(json::parse(r.body).at("error").at("message").as_string());
        EXPECT_TRUE(message.starts_with(parameter + ":")) << query << " " << message;
    }
}

TEST_P(LogsApi, RetentionKeepsAtMostMaxRowsNewestFirst) {
    TestServer server(with_token({{"logs.max_rows", "5"}}));
    const auto port = server.port();
    std::string body = "[";
    for (int i = 1; i <= 12; ++i) {
        body += std::string(i > 1 ? "," : "") + R"({"msg":"k)" + std::to_string(i) +
                R"(","room":"kept"})";
    }
    body += "]";
    post(port, body);
    // Everything stored, server lines included, is bounded; the newest of ours survive.
    auto p = query_until(port, "?limit=1000", [](const Page& page) {
        const auto seen = msgs(page);  // one vector: its begin and end must belong together
        return page.items.size() <= 5 && !page.items.empty() &&
               std::find(seen.begin(), seen.end(), "k12") != seen.end();
    });
    auto kept = msgs(parse_page(get_logs(port, "?room=kept")));
    ASSERT_FALSE(kept.empty());
    EXPECT_LE(kept.size(), 5U);
    EXPECT_EQ(kept.front(), "k12");
    EXPECT_GE(server.metric("hearth_logs_pruned_total"), 7.0);
    EXPECT_GE(server.metric("hearth_logs_stored_total"), 12.0);
}

TEST_P(LogsApi, StorageOffAnswersWithItsOwnCode) {
    TestServer server(with_token({{"logs.store", "false"}}));
    auto r = get_logs(server.port(), "");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(error_code_of(r), "logs_not_stored");
    // The live stream still takes entries.
    post(server.port(), R"({"msg":"live only"})");
    EXPECT_EQ(server.metric("hearth_logs_stored_total"), 0.0);
}

TEST_P(LogsApi, StoredEntriesSurviveARestart) {
    TempDir data;
    const auto overrides = with_token({{"server.data_dir", "\"" + data.path() + "\""}});
    {
        TestServer first(overrides);
        post(first.port(), R"({"msg":"before restart","room":"durable"})");
        query_until(first.port(), "?room=durable",
                    [](const Page& p) { return p.items.size() == 1; });
    }
    TestServer second(overrides);
    EXPECT_EQ(msgs(parse_page(get_logs(second.port(), "?room=durable"))),
              (std::vector<std::string>{"before restart"}));
}

}  // namespace
}  // namespace hearth::test
