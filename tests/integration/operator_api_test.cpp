// The operator API's views of the running server through real sockets: topics and their
// subscribers (native clients), mailboxes (Homestead's offline queue) with purge, the event ring,
// and the rights every route needs.

#include <cctype>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdmin = "operator-api-admin";

json::value get(std::uint16_t port, const std::string& target, int expected = 200,
                const std::string& method = "GET") {
    auto r = http_request(port, method, target, "",
                          {{"Authorization", std::string("Bearer ") + kAdmin}});
    EXPECT_EQ(r.status, expected) << target << " " << r.body;
    return r.body.empty() ? json::value() : json::parse(r.body);
}

class Native {
public:
    explicit Native(std::uint16_t port) : ws_(port, WsOptions{.path = "/ws"}) {}
    json::object call(const std::string& text) {
        ws_.send_text(text);
        auto m = ws_.read();
        return m ? json::parse(m->data).as_object() : json::object();
    }

    WsClose wait_closed() { return ws_.wait_closed(); }

private:
    WsClient ws_;
};

TEST(OperatorApi, TopicsAndTheirSubscribers) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    Native a(port);
    Native b(port);
    const std::string a_id(a.call(R"({"type":"hello"})").at("connection").as_string());
    ASSERT_EQ(a.call(R"({"type":"subscribe","topic":"lobby"})").at("type").as_string(), "ok");
    ASSERT_EQ(b.call(R"({"type":"subscribe","topic":"lobby"})").at("type").as_string(), "ok");
    ASSERT_EQ(a.call(R"({"type":"subscribe","topic":"arena"})").at("type").as_string(), "ok");

    auto topics = get(port, "/api/v1/topics");
    const auto& items = topics.at("items").as_array();
    ASSERT_EQ(items.size(), 2U) << json::serialize(topics);
    EXPECT_EQ(items[0].at("topic").as_string(), "native:arena");
    EXPECT_EQ(items[0].at("subscribers").as_int64(), 1);
    EXPECT_EQ(items[1].at("topic").as_string(), "native:lobby");
    EXPECT_EQ(items[1].at("subscribers").as_int64(), 2);
    EXPECT_TRUE(topics.at("next").is_null());

    auto first = get(port, "/api/v1/topics?limit=1");
    ASSERT_EQ(first.at("items").as_array().size(), 1U);
    const std::string cursor(first.at("next").as_string());
    auto second = get(port, "/api/v1/topics?limit=1&cursor=" + cursor);
    EXPECT_EQ(second.at("items").as_array()[0].at("topic").as_string(), "native:lobby");
    EXPECT_EQ(get(port, "/api/v1/topics?prefix=native:l").at("items").as_array().size(), 1U);

    auto subs = get(port, "/api/v1/topics/subscribers?topic=native:arena");
    ASSERT_EQ(subs.at("items").as_array().size(), 1U);
    EXPECT_EQ(subs.at("items").as_array()[0].at("connection").as_string(), a_id);
    EXPECT_EQ(subs.at("items").as_array()[0].at("principal").as_string(), "anonymous");
    EXPECT_TRUE(
        get(port, "/api/v1/topics/subscribers?topic=native:none").at("items").as_array().empty());
    get(port, "/api/v1/topics/subscribers", 400);
}

/// A DracoSoft frame: 4-byte big-endian length, then the JSON.
std::string draco_frame(const std::string& payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)} +
           payload;
}

std::string draco_read(RawClient& c) {
    const auto h = c.read_exactly(4);
    EXPECT_EQ(h.size(), 4U);
    const auto* b = reinterpret_cast<const unsigned char*>(h.data());
    const std::size_t n = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) |
                          (std::size_t{b[2]} << 8) | std::size_t{b[3]};
    return c.read_exactly(n);
}

const json::object* find_connection(const json::value& page, const std::string& id) {
    for (const auto& item : page.at("items").as_array()) {
        if (item.at("id").as_string() == id) {
            return &item.as_object();
        }
    }
    return nullptr;
}

TEST(OperatorApi, ConnectionsAreListedFilteredAndKicked) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""},
                       {"dracosoft.enabled", "true"},
                       {"dracosoft.listen", "\"127.0.0.1:0\""}});
    const auto port = server.port();
    Native a(port);
    Native b(port);
    const std::string a_id(a.call(R"({"type":"hello"})").at("connection").as_string());
    const std::string b_id(b.call(R"({"type":"hello"})").at("connection").as_string());
    RawClient draco(server.app().server().bound_port("dracosoft"));
    draco.write(draco_frame(
        R"({"type":"auth","action":"register","username":"listed-user","password":"long-enough-password"})"));
    ASSERT_NE(draco_read(draco).find("Registration successful"), std::string::npos);

    auto all = get(port, "/api/v1/connections");
    const auto* na = find_connection(all, a_id);
    ASSERT_NE(na, nullptr) << json::serialize(all);
    EXPECT_EQ(na->at("kind").as_string(), "websocket");
    EXPECT_EQ(na->at("frontend").as_string(), "native");
    EXPECT_EQ(na->at("listener").as_string(), "http");
    EXPECT_EQ(na->at("route").as_string(), "/ws");
    EXPECT_EQ(na->at("principal").as_string(), "anonymous");
    EXPECT_TRUE(na->at("peer").as_string().starts_with("127.0.0.1:"));
    EXPECT_GT(na->at("bytes_in").as_int64(), 0);
    EXPECT_GT(na->at("bytes_out").as_int64(), 0);
    EXPECT_EQ(na->at("since").as_string().size(), std::string("2026-11-22T03:04:05.123Z").size());
    EXPECT_TRUE(all.at("next").is_null());

    auto stream = get(port, "/api/v1/connections?frontend=dracosoft");
    ASSERT_EQ(stream.at("items").as_array().size(), 1U) << json::serialize(stream);
    const auto& d = stream.at("items").as_array()[0].as_object();
    EXPECT_EQ(d.at("kind").as_string(), "stream");
    EXPECT_EQ(d.at("principal").as_string(), "listed-user");
    EXPECT_FALSE(d.contains("route"));
    EXPECT_EQ(get(port, "/api/v1/connections?principal=listed-user").at("items").as_array().size(),
              1U);
    EXPECT_TRUE(get(port, "/api/v1/connections?frontend=homestead").at("items").as_array().empty());

    // Pages by id.
    auto first = get(port, "/api/v1/connections?frontend=native&limit=1");
    ASSERT_EQ(first.at("items").as_array().size(), 1U);
    EXPECT_EQ(first.at("items").as_array()[0].at("id").as_string(), a_id);
    const std::string cursor(first.at("next").as_string());
    auto second = get(port, "/api/v1/connections?frontend=native&limit=1&cursor=" + cursor);
    ASSERT_EQ(second.at("items").as_array().size(), 1U);
    EXPECT_EQ(second.at("items").as_array()[0].at("id").as_string(), b_id);
    EXPECT_TRUE(second.at("next").is_null());
    get(port, "/api/v1/connections?cursor=x", 400);

    // A kick closes the connection and only it, and is audited.
    auto kicked = get(port, "/api/v1/connections/" + a_id, 200, "DELETE");
    EXPECT_TRUE(kicked.at("kicked").as_bool());
    EXPECT_EQ(a.wait_closed().code, 1008);
    EXPECT_EQ(b.call(R"({"type":"subscribe","topic":"still-here"})").at("type").as_string(), "ok");
    get(port, "/api/v1/connections/" + a_id, 404, "DELETE");
    get(port, "/api/v1/connections/nope", 404, "DELETE");
    auto d_id = std::string(d.at("id").as_string());
    get(port, "/api/v1/connections/" + d_id, 200, "DELETE");
    EXPECT_TRUE(draco.read_until_eof().empty());
    auto audit = get(port, "/api/v1/audit?action=connection.kick");
    ASSERT_EQ(audit.at("items").as_array().size(), 2U);
    EXPECT_EQ(audit.at("items").as_array()[1].at("target").as_string(), "connection:" + a_id);
}

TEST(OperatorApi, MailboxesAreListedAndPurgedWithAnAuditEntry) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""},
                       {"homestead.enabled", "true"},
                       {"homestead.listen", "\"127.0.0.1:0\""},
                       {"homestead.api_key", "\"gateway\""}});
    const auto port = server.port();
    {
        // A mod with no bot connected: its messages wait in the bot's mailbox.
        WsClient mod(server.app().server().bound_port("homestead"),
                     WsOptions{.path = "/sync?api_key=gateway"});
        mod.send_text(R"({"type":"mod","data":{"server_id":"s1","channel_id":"C"}})");
        ASSERT_TRUE(mod.read());  // connected
        for (int i = 0; i < 3; ++i) {
            mod.send_text(
                R"({"msg_id":"m)" + std::to_string(i) +
                R"(","id":"s1","destination":{"channel_id":"C"},"author":{"id":"p","name":"P"},"content":"hi","meta":{},"ts":"2025-12-08T10:30:00Z"})");
            auto ack = mod.read();
            ASSERT_TRUE(ack);
            ASSERT_NE(ack->data.find("queued"), std::string::npos) << ack->data;
        }
    }
    auto list = get(port, "/api/v1/mailboxes?prefix=homestead:");
    const auto& items = list.at("items").as_array();
    ASSERT_EQ(items.size(), 1U) << json::serialize(list);
    const std::string key(items[0].at("key").as_string());
    EXPECT_EQ(items[0].at("depth").as_int64(), 3);

    auto purged = get(port, "/api/v1/mailboxes?key=" + key, 200, "DELETE");
    EXPECT_EQ(purged.at("deleted").as_int64(), 3);
    EXPECT_TRUE(get(port, "/api/v1/mailboxes").at("items").as_array().empty());
    get(port, "/api/v1/mailboxes", 400, "DELETE");

    auto audit = get(port, "/api/v1/audit?action=mailbox.purge");
    ASSERT_EQ(audit.at("items").as_array().size(), 1U);
    EXPECT_EQ(audit.at("items").as_array()[0].at("target").as_string(), "mailbox:" + key);
    EXPECT_EQ(audit.at("items").as_array()[0].at("detail").at("deleted").as_int64(), 3);
}

TEST(OperatorApi, EventsAreATailWithACursor) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    auto events = get(port, "/api/v1/events");
    const auto& items = events.at("items").as_array();
    ASSERT_FALSE(items.empty());
    // The modules start first (module.state events), then the server says it is up.
    EXPECT_EQ(items.front().at("kind").as_string(), "module.state");
    EXPECT_EQ(items.back().at("kind").as_string(), "server.start");
    const std::string cursor(events.at("next").as_string());
    // Nothing new yet: an empty page that keeps the cursor.
    auto later = get(port, "/api/v1/events?cursor=" + cursor);
    EXPECT_EQ(later.at("next").as_string(), cursor);
    // A WebSocket connection opening is an event.
    WsClient ws(port, WsOptions{.path = "/echo"});
    ws.send_text("x");
    ASSERT_TRUE(ws.read());
    auto newer = get(port, "/api/v1/events?cursor=" + cursor);
    ASSERT_FALSE(newer.at("items").as_array().empty());
    EXPECT_EQ(newer.at("items").as_array()[0].at("kind").as_string(), "connection.open");
    get(port, "/api/v1/events?cursor=x", 400);
}

TEST(OperatorApi, EventsFilterByTypeModuleAndTime) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    {
        WsClient ws(port, WsOptions{.path = "/echo"});
        ws.send_text("x");
        ASSERT_TRUE(ws.read());
    }
    auto started = get(port, "/api/v1/events?type=server.start&module=core");
    const auto& only_start = started.at("items").as_array();
    ASSERT_EQ(only_start.size(), 1U) << json::serialize(started);
    EXPECT_EQ(only_start[0].at("kind").as_string(), "server.start");
    EXPECT_EQ(only_start[0].at("module").as_string(), "core");
    EXPECT_TRUE(only_start[0].at("principal").is_null());
    // The cursor of a filtered page moves past what the filter skipped.
    const auto all = get(port, "/api/v1/events");
    EXPECT_EQ(started.at("next").as_string(), all.at("next").as_string());

    auto opened = get(port, "/api/v1/events?type=connection.open");
    for (const auto& e : opened.at("items").as_array()) {
        EXPECT_EQ(e.at("kind").as_string(), "connection.open");
    }
    EXPECT_FALSE(opened.at("items").as_array().empty());
    EXPECT_TRUE(get(port, "/api/v1/events?module=no-such-module").at("items").as_array().empty());
    // since: an RFC 3339 time or epoch milliseconds; far in the future matches nothing.
    EXPECT_TRUE(
        get(port, "/api/v1/events?since=2999-01-01T00:00:00Z").at("items").as_array().empty());
    EXPECT_FALSE(get(port, "/api/v1/events?since=0").at("items").as_array().empty());

    const auto bad_type = get(port, "/api/v1/events?type=connection.opened", 400);
    EXPECT_EQ(bad_type.at("error").at("code").as_string(), "invalid_parameter");
    EXPECT_NE(json::serialize(bad_type).find("connection.open"), std::string::npos);
    get(port, "/api/v1/events?since=yesterday", 400);
}

TEST(OperatorApi, EveryOperatorRouteNeedsTheAdminRight) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
             {"GET", "/api/v1/connections"},
             {"DELETE", "/api/v1/connections/1"},
             {"GET", "/api/v1/topics"},
             {"GET", "/api/v1/topics/subscribers?topic=x"},
             {"GET", "/api/v1/mailboxes"},
             {"DELETE", "/api/v1/mailboxes?key=x"},
             {"GET", "/api/v1/events"},
             {"GET", "/api/v1/accounts"},
             {"GET", "/api/v1/tokens"},
             {"GET", "/api/v1/audit"},
             {"GET", "/api/v1/logs"},
         }) {
        EXPECT_EQ(http_request(server.port(), method, path).status, 401) << path;
        EXPECT_EQ(http_request(server.port(), method, path, "", {{"Authorization", "Bearer nope"}})
                      .status,
                  401)
            << path;
    }
}

TEST(OperatorApi, TheOpenApiDocumentMatchesTheRegisteredRoutes) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""},
                       {"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""}});
    auto r = http_request(server.port(), "GET", "/api/v1/openapi.json");  // no token needed
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "application/json");
    const auto doc = json::parse(r.body);
    EXPECT_EQ(doc.at("openapi").as_string().subview(0, 2), "3.");

    std::set<std::string> documented;
    for (const auto& [path, item] : doc.at("paths").as_object()) {
        for (const auto& [method, op] : item.as_object()) {
            if (method == "parameters") {
                continue;
            }
            std::string upper(method);
            for (char& c : upper) {
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
            documented.insert(upper + " " + std::string(path));
            // Public routes say so with an empty security list; every other one needs the bearer.
            (void)op;
        }
    }
    std::set<std::string> registered;
    for (const auto& route : server.app().api_routes()) {
        registered.insert(route.method + " " + route.pattern);
        const auto& path_item = doc.at("paths").as_object();
        if (route.access == api::Access::kPublic && path_item.contains(route.pattern)) {
            std::string lower = route.method;
            for (char& c : lower) {
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            }
            const auto& op = path_item.at(route.pattern).at(lower).as_object();
            if (route.pattern == "/api/v1/auth/login" || route.pattern == "/api/v1/openapi.json") {
                EXPECT_TRUE(op.at("security").as_array().empty()) << route.pattern;
            }
        }
    }
    EXPECT_EQ(documented, registered);
}

}  // namespace
}  // namespace hearth::test
