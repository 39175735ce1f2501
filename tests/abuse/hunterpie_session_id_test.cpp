// Security part 2, item 4: a HunterPie session id is bounded (256 bytes) and an over-long one is
// refused while the message is parsed, so a client cannot make the server keep (and copy into the
// registry, the connection and the hub) an id of up to a whole message. Before the bound, a 1 MiB
// id was joined like any other: it became a session, a hub topic and several copies per
// connection.

#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

constexpr std::string_view kTooLong =
    R"({"type":"servermsg","level":"warn","text":"Session id cannot be longer than 256 bytes!"})";

std::string set_session(const std::string& id) {
    return R"({"type":"SetSession","isLeader":false,"sessionId":")" + id + R"("})";
}

std::string state(int players) {
    return R"({"type":"sessionstate","leaderConnected":false,"playersCount":)" +
           std::to_string(players) + "}";
}

std::string next_text(WsClient& ws) {
    auto m = ws.read();
    if (!m) {
        ADD_FAILURE() << "connection closed: " << ws.close_info()->code;
        return {};
    }
    return m->data;
}

std::string call(WsClient& ws, const std::string& text) {
    ws.send_text(text);
    return next_text(ws);
}

TEST(HunterPieAbuse, AnOverlongSessionIdIsRefusedAndNotKept) {
    // Messages up to 4 MiB, so that a 1 MiB id reaches the front-end (the transport's 1 MiB
    // default would close the connection first, which hides the front-end's own bound).
    TestServer server({{"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""},
                       {"websocket.max_message_bytes", "4194304"},
                       {"http.admin_token", "\"abuse-admin\""}});
    const auto port = server.app().server().bound_port("hunterpie");
    WsClient a(port, WsOptions{.path = "/connect?playerName=a"});
    WsClient b(port, WsOptions{.path = "/connect?playerName=b"});
    WsClient c(port, WsOptions{.path = "/connect?playerName=c"});

    // 1 MiB (parsed by Boost.JSON) and one byte over the bound (parsed by simdjson): refused,
    // and the connection stays.
    EXPECT_EQ(call(a, set_session(std::string(1 << 20, 'x'))), kTooLong);
    EXPECT_EQ(call(a, set_session(std::string(257, 'y'))), kTooLong);
    // A push naming such a session forwards nothing and is counted too.
    a.send_text(R"({"type":"Push","data":[],"sessionId":")" + std::string(1 << 20, 'x') + R"("})");
    EXPECT_EQ(call(a, "ping"), "pong");
    EXPECT_EQ(server.metric("hearth_hunterpie_refused_total", {{"reason", "session_id_too_long"}}),
              3);

    // Ids up to the bound work, for other clients: a real one, and one of exactly 256 bytes.
    // (`a` stays connected, in no session.)
    const std::string longest(256, 'z');
    EXPECT_EQ(call(b, set_session("host-abc")), state(1));
    EXPECT_EQ(call(c, set_session(longest)), state(1));
    EXPECT_EQ(server.metric("hearth_hunterpie_sessions"), 2);

    // The hub holds those two sessions and nothing else. Each subscribe was posted to its
    // topic's shard before the state reply was written (the reply goes out after the handler
    // returns), and the listing is posted to every shard after that, so it sees them without
    // polling; a subscription for `a` would have been posted before them.
    auto r = http_request(server.port(), "GET", "/api/v1/topics?prefix=hunterpie:", "",
                          {{"Authorization", "Bearer abuse-admin"}});
    ASSERT_EQ(r.status, 200) << r.body;
    std::string topics;
    const auto page = boost::json::parse(r.body);
    for (const auto& t : page.at("items").as_array()) {
        topics += std::string(t.at("topic").as_string()) + "=" +
                  std::to_string(t.at("subscribers").as_int64()) + " ";
    }
    EXPECT_EQ(topics, "hunterpie:host-abc=1 hunterpie:" + longest + "=1 ");
    EXPECT_LT(r.body.size(), 2048u);
}

}  // namespace
}  // namespace hearth::test
