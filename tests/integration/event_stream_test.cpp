// /api/v1/events/stream: the event bus live over a WebSocket, for operators only, with filters and
// a replay from a cursor that neither misses nor repeats an event.

#include <set>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdmin = "event-stream-admin";

Overrides with_admin(Overrides o = {}) {
    o["http.admin_token"] = std::string("\"") + kAdmin + "\"";
    return o;
}

std::map<std::string, std::string> bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
}

json::object next_event(WsClient& ws) {
    auto m = ws.read();
    if (!m) {
        ADD_FAILURE() << "the stream closed";
        return {};
    }
    return json::parse(m->data).as_object();
}

// Opens and closes an echo WebSocket: two events (connection.open, connection.close).
void touch_echo(std::uint16_t port) {
    WsClient ws(port, WsOptions{.path = "/echo"});
    ws.send_text("x");
    ASSERT_TRUE(ws.read());
    ws.close();
    ws.wait_closed();
}

TEST(EventStream, OnlyOperatorsMayListen) {
    TestServer server(with_admin({{"http.operator_origins", R"(["https://console.example"])"}}));
    const auto port = server.port();
    const std::string path = "/api/v1/events/stream";

    auto r = refused_upgrade(port, path, {});
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
    EXPECT_EQ(refused_upgrade(port, path, bearer("nope")).status, 401);
    EXPECT_EQ(refused_upgrade(port, path,
                              {{"Sec-WebSocket-Protocol", "hearth.events, hearth.bearer.not/b64"}})
                  .status,
              401);
    // A page of another origin may not use an operator's browser, token or not.
    auto foreign = bearer(kAdmin);
    foreign["Origin"] = "http://evil.example";
    r = refused_upgrade(port, path, foreign);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.body.at("error").at("code").as_string(), "forbidden_origin");
    // Bad filters are named.
    r = refused_upgrade(port, path + "?type=nope", bearer(kAdmin));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body.at("error").at("code").as_string(), "invalid_parameter");

    // The configured origin, by the subprotocol a browser uses.
    WsClient browser(port,
                     WsOptions{.path = path,
                               .headers = {{"Origin", "https://console.example"},
                                           {"Sec-WebSocket-Protocol",
                                            "hearth.events, hearth.bearer." + base64url(kAdmin)}}});
    EXPECT_EQ(browser.upgrade_headers().at("sec-websocket-protocol"), "hearth.events");
}

TEST(EventStream, StreamsLiveEventsThatMatchItsFilter) {
    TestServer server(with_admin());
    const auto port = server.port();
    WsClient stream(port, WsOptions{.path = "/api/v1/events/stream?type=connection.open",
                                    .headers = bearer(kAdmin)});
    touch_echo(port);
    touch_echo(port);
    const auto first = next_event(stream);
    const auto second = next_event(stream);
    EXPECT_EQ(first.at("kind").as_string(), "connection.open");
    EXPECT_EQ(second.at("kind").as_string(), "connection.open");
    EXPECT_LT(first.at("seq").as_int64(), second.at("seq").as_int64());
    EXPECT_TRUE(first.contains("time"));
    EXPECT_TRUE(first.contains("module"));
    EXPECT_NE(first.at("subject"), second.at("subject"));
}

// The cursor a client last saw: the history after it, then the live events, each once and in
// order, whatever arrives while the replay is being sent.
TEST(EventStream, ACursorReplaysTheHistoryThenGoesLive) {
    TestServer server(with_admin());
    const auto port = server.port();
    const auto page =
        json::parse(http_request(port, "GET", "/api/v1/events", "", bearer(kAdmin)).body);
    const std::string cursor(page.at("next").as_string());
    touch_echo(port);
    touch_echo(port);  // four events after the cursor
    WsClient stream(port, WsOptions{.path = "/api/v1/events/stream?cursor=" + cursor,
                                    .headers = bearer(kAdmin)});
    touch_echo(port);  // and live ones (the stream's own upgrade adds one too)
    std::set<std::int64_t> seen;
    std::int64_t last = std::stoll(cursor);
    int opened = 0;
    while (opened < 4) {  // 2 replayed + the stream's own + 1 live
        const auto e = next_event(stream);
        if (e.empty()) {
            break;
        }
        const auto seq = e.at("seq").as_int64();
        EXPECT_EQ(seq, last + 1) << json::serialize(e);  // no gap, no repeat
        last = seq;
        EXPECT_TRUE(seen.insert(seq).second);
        if (e.at("kind").as_string() == "connection.open") {
            ++opened;
        }
    }
    EXPECT_EQ(opened, 4);
}

TEST(EventStream, TheNumberOfStreamsIsBounded) {
    TestServer server(with_admin());
    const auto port = server.port();
    std::vector<std::unique_ptr<WsClient>> streams;
    for (int i = 0; i < 32; ++i) {
        streams.push_back(std::make_unique<WsClient>(
            port, WsOptions{.path = "/api/v1/events/stream", .headers = bearer(kAdmin)}));
    }
    auto r = refused_upgrade(port, "/api/v1/events/stream", bearer(kAdmin));
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body.at("error").at("code").as_string(), "too_many_streams");
    // One closes: there is room again.
    streams.back()->close();
    streams.back()->wait_closed();
    streams.pop_back();
    bool admitted = false;
    for (int attempt = 0; attempt < 100 && !admitted; ++attempt) {
        // The slot comes back once the server has destroyed the closed stream's handler, on its
        // io thread, just after the close: a few attempts at most.
        try {
            WsClient again(port,
                           WsOptions{.path = "/api/v1/events/stream", .headers = bearer(kAdmin)});
            admitted = true;
        } catch (const std::exception&) {
        }
    }
    EXPECT_TRUE(admitted);
}

}  // namespace
}  // namespace hearth::test
