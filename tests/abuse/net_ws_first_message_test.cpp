// Security part 2, item 13: WebSocket connections that upgrade and then send nothing. Every route
// whose clients speak first has a deadline for the first data message ([websocket]
// first_message_timeout_ms); past it the connection is closed with 1008 "handshake timeout".
// Routes whose protocol lets a client connect and only listen (HunterPie's /connect, the log
// stream, Moonshare's /auth and gateway /ws) keep such clients.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "app/server_app.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

using Clock = std::chrono::steady_clock;

const std::string kAdmin = "first-message-admin";

Overrides all_frontends() {
    return {{"websocket.first_message_timeout_ms", "300"},
            {"http.admin_token", "\"" + kAdmin + "\""},
            {"hunterpie.enabled", "true"},
            {"hunterpie.listen", "\"127.0.0.1:0\""},
            {"moonshare.enabled", "true"},
            {"moonshare.token_listen", "\"127.0.0.1:0\""},
            {"moonshare.auth_listen", "\"127.0.0.1:0\""},
            {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
            {"moonshare.player_listen", R"(["127.0.0.1:0"])"}};
}

double open_on(const TestServer& server, const std::string& route) {
    return server.metric("hearth_ws_connections_open", {{"route", route}});
}

TEST(AbuseNetWsFirstMessage, SilentConnectionsAreClosedWith1008OnEveryRouteWhoseClientsSpeakFirst) {
    TestServer server(all_frontends());
    auto& net = server.app().server();
    const std::map<std::string, std::string> op = {{"Authorization", "Bearer " + kAdmin}};

    // Clients that may only listen, opened first: their deadline, were there one, passes first.
    WsClient hunterpie(net.bound_port("hunterpie"), {.path = "/connect"});
    WsClient logs(server.port(), {.path = "/logs/listen"});
    WsClient auth(net.bound_port("moonshare-auth"), {.path = "/auth?userId=quiet"});
    WsClient gateway(net.bound_port("moonshare-gateway"), {.path = "/ws"});
    // A client that speaks at once is not cut either.
    WsClient talker(server.port(), {.path = "/echo"});
    talker.send_text("hello");
    ASSERT_EQ(talker.read()->data, "hello");

    const auto start = Clock::now();
    struct Silent {
        std::string what;
        std::unique_ptr<WsClient> client;
    };
    std::vector<Silent> silent;
    silent.push_back(
        {"native /ws", std::make_unique<WsClient>(server.port(), WsOptions{.path = "/ws"})});
    silent.push_back(
        {"/echo", std::make_unique<WsClient>(server.port(), WsOptions{.path = "/echo"})});
    silent.push_back(
        {"moonshare /player", std::make_unique<WsClient>(net.bound_port("moonshare-alpha"),
                                                         WsOptions{.path = "/player"})});
    silent.push_back({"moonshare /sessions",
                      std::make_unique<WsClient>(net.bound_port("moonshare-auth"),
                                                 WsOptions{.path = "/sessions", .headers = op})});
    for (auto& s : silent) {
        const auto closed = s.client->wait_closed(std::chrono::seconds(3));
        EXPECT_EQ(closed.code, 1008) << s.what;
        EXPECT_EQ(closed.reason, "handshake timeout") << s.what;
    }
    EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(250));
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total",
                            {{"route", "/player"}, {"reason", "handshake_timeout"}}),
              1);

    // Past every deadline: the listening clients and the talker are still there.
    EXPECT_EQ(open_on(server, "/connect"), 1);
    EXPECT_EQ(open_on(server, "/logs/listen"), 1);
    EXPECT_EQ(open_on(server, "/auth"), 1);
    EXPECT_EQ(open_on(server, "/ws"), 1);  // the gateway's; native's was closed
    hunterpie.send_text("ping");
    EXPECT_EQ(hunterpie.read()->data, "pong");
    talker.send_text("still here");
    EXPECT_EQ(talker.read()->data, "still here");
    EXPECT_FALSE(auth.close_info().has_value());
    EXPECT_FALSE(gateway.close_info().has_value());
    EXPECT_FALSE(logs.close_info().has_value());
}

TEST(AbuseNetWsFirstMessage, ZeroDisablesTheDeadline) {
    TestServer server({{"websocket.first_message_timeout_ms", "0"},
                       {"websocket.idle_timeout_s", "1"},
                       {"websocket.ping_interval_s", "0"}});
    WsClient silent(server.port(), {.path = "/echo"});
    // Only the idle timeout closes it, with its own code.
    const auto closed = silent.wait_closed(std::chrono::seconds(3));
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "idle timeout");
}

}  // namespace
}  // namespace hearth::test
