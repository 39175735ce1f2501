// Modules enabled, disabled and restarted while the server runs, by an operator (the operator API)
// and by the config file: their clients are closed with the documented code, everyone else's stay,
// listeners are released or kept as their other users need, and a module comes back on request.
// Everything through real sockets against the real server.

#include <future>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "app/server_app.hpp"
#include "core/events.hpp"
#include "core/module_registry.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

constexpr const char* kAdmin = "modules-admin";

Overrides with_frontends(Overrides extra = {}) {
    Overrides o{{"http.admin_token", std::string("\"") + kAdmin + "\""},
                {"hunterpie.enabled", "true"},
                {"hunterpie.listen", "\"127.0.0.1:0\""},
                {"homestead.enabled", "true"},
                {"homestead.listen", "\"127.0.0.1:0\""},
                {"dracosoft.enabled", "true"},
                {"dracosoft.listen", "\"127.0.0.1:0\""},
                {"packet.enabled", "true"},
                {"packet.listen", "\"127.0.0.1:0\""}};
    for (auto& [k, v] : extra) {
        o[k] = v;
    }
    return o;
}

HttpResult as_admin(std::uint16_t port, const std::string& method, const std::string& target) {
    return http_request(port, method, target, "",
                        {{"Authorization", std::string("Bearer ") + kAdmin}});
}

// An action whose answer comes once the module's clients have closed: sent from another thread,
// so that the test's clients can answer their close frames meanwhile, as real clients do.
std::future<HttpResult> act(std::uint16_t port, const std::string& module,
                            const std::string& action) {
    return std::async(std::launch::async, [=] {
        return as_admin(port, "POST", "/api/v1/modules/" + module + "/" + action);
    });
}

std::string state_of(TestServer& s, const std::string& module) {
    const auto r = as_admin(s.port(), "GET", "/api/v1/modules/" + module);
    if (r.status != 200) {
        return "HTTP " + std::to_string(r.status);
    }
    return std::string(json::parse(r.body).at("state").as_string());
}

std::uint16_t port_of(TestServer& s, const std::string& listener) {
    return s.app().server().bound_port(listener);
}

// One DracoSoft frame: a 4-byte big-endian length, then the JSON text.
std::string draco_frame(const std::string& json_text) {
    const auto n = static_cast<std::uint32_t>(json_text.size());
    std::string out{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                    static_cast<char>(n >> 8), static_cast<char>(n)};
    return out + json_text;
}

// Whether a TCP connection to `port` on loopback is refused (nothing listens there).
bool refused(std::uint16_t port) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket(io);
    boost::system::error_code ec;
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    return ec == boost::asio::error::connection_refused;
}

// The config the server runs on, with `overrides` on top (what an edited file would hold).
std::shared_ptr<const core::Config> edited(const TempDir& dir, const Overrides& overrides) {
    return test_config(overrides, dir.path());
}

TEST(Modules, TheListShowsEveryModuleToAdminsOnly) {
    TestServer s(with_frontends());
    EXPECT_EQ(http_request(s.port(), "GET", "/api/v1/modules").status, 401);
    EXPECT_EQ(http_request(s.port(), "POST", "/api/v1/modules/hunterpie/disable").status, 401);
    EXPECT_EQ(http_request(s.port(), "GET", "/api/v1/modules", "",
                           {{"Authorization", "Bearer not-the-admin"}})
                  .status,
              401);

    const auto r = as_admin(s.port(), "GET", "/api/v1/modules");
    ASSERT_EQ(r.status, 200) << r.body;
    std::vector<std::string> names;
    const auto list = json::parse(r.body);
    for (const auto& item : list.at("items").as_array()) {
        const auto& m = item.as_object();
        const std::string name(m.at("name").as_string());
        names.push_back(name);
        EXPECT_FALSE(m.at("version").as_string().empty()) << name;
        EXPECT_TRUE(m.at("needs").is_array()) << name;
        EXPECT_TRUE(m.at("counters").is_object()) << name;
        EXPECT_EQ(m.at("can_disable").as_bool(), name != "api") << name;
        EXPECT_EQ(
            std::string(m.at("state").as_string()),
            name == "moonshare" || name == "characters" || name == "world" ? "disabled" : "running")
            << name;
    }
    EXPECT_EQ(names, (std::vector<std::string>{"api", "logs", "native", "homestead", "hunterpie",
                                               "dracosoft", "moonshare", "characters", "world",
                                               "packet"}));

    // Each door says which tokens it takes: Homestead API keys of scope homestead and no
    // session; native the sessions of [native] session_roles too.
    const auto homestead = json::parse(as_admin(s.port(), "GET", "/api/v1/modules/homestead").body);
    const auto& door = homestead.at("doors").as_array().at(0).as_object();
    EXPECT_EQ(door.at("door").as_string(), "homestead");
    EXPECT_EQ(door.at("api_key_scope").as_string(), "homestead");
    EXPECT_TRUE(door.at("session_roles").as_array().empty());
    const auto native = json::parse(as_admin(s.port(), "GET", "/api/v1/modules/native").body);
    EXPECT_FALSE(native.at("doors").as_array().at(0).at("session_roles").as_array().empty());
    // The game packets: API keys of scope packet, and sessions of every role.
    const auto packet = json::parse(as_admin(s.port(), "GET", "/api/v1/modules/packet").body);
    const auto& game = packet.at("doors").as_array().at(0).as_object();
    EXPECT_EQ(game.at("door").as_string(), "packet");
    EXPECT_EQ(game.at("api_key_scope").as_string(), "packet");
    EXPECT_EQ(game.at("session_roles").as_array().size(), 3U);
}

TEST(Modules, ActionsThatCannotBeDoneAreRefusedWithAReason) {
    TestServer s(with_frontends());
    auto r = as_admin(s.port(), "POST", "/api/v1/modules/api/disable");
    EXPECT_EQ(r.status, 409);
    EXPECT_THAT(r.body, HasSubstr("module_required"));
    r = as_admin(s.port(), "POST", "/api/v1/modules/api/restart");
    EXPECT_EQ(r.status, 409);
    r = as_admin(s.port(), "POST", "/api/v1/modules/warp/enable");
    EXPECT_EQ(r.status, 404);
    EXPECT_THAT(r.body, HasSubstr("unknown_module"));
    r = as_admin(s.port(), "POST", "/api/v1/modules/native/explode");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(as_admin(s.port(), "GET", "/api/v1/modules/warp").status, 404);
    EXPECT_EQ(state_of(s, "api"), "running");
    EXPECT_EQ(state_of(s, "native"), "running");
}

// HunterPie shares its port with the log routes (as the original serves them): disabling it
// closes its clients and answers its paths with 404, the logs stay on that port, and everyone
// else's connections are untouched.
TEST(Modules, DisablingHunterpieClosesItsClientsAndKeepsTheSharedListener) {
    TestServer s(with_frontends());
    const auto hunterpie = port_of(s, "hunterpie");
    WsClient player(hunterpie, {.path = "/connect?playerName=Ayla"});
    WsClient echo(s.port(), {.path = "/echo"});
    RawClient draco(port_of(s, "dracosoft"));

    auto disabling = act(s.port(), "hunterpie", "disable");
    const auto closed = player.wait_closed();
    auto r = disabling.get();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(std::string(json::parse(r.body).at("state").as_string()), "disabled");
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "hunterpie disabled");

    echo.send_text("still here");
    ASSERT_EQ(echo.read()->data, "still here");
    EXPECT_EQ(http_request(hunterpie, "GET", "/version").status, 404);
    EXPECT_EQ(http_request(hunterpie, "GET", "/logs.html").status, 200);
    EXPECT_EQ(as_admin(s.port(), "POST", "/api/v1/hunterpie/servermsg").status, 404);

    r = as_admin(s.port(), "POST", "/api/v1/modules/hunterpie/enable");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(port_of(s, "hunterpie"), hunterpie);  // the listener never closed
    EXPECT_EQ(http_request(hunterpie, "GET", "/version").status, 200);
    WsClient again(hunterpie, {.path = "/connect?playerName=Ayla"});
    // The DracoSoft connection was never touched: it still answers.
    draco.write(draco_frame(R"({"type":"ping"})"));
    EXPECT_EQ(draco.read_exactly(4).size(), 4u);
}

// A module with a listener of its own releases it: the port refuses connections until the module
// is enabled again.
TEST(Modules, DisablingHomesteadReleasesItsListenerAndEnablingBindsItAgain) {
    TestServer s(with_frontends());
    const auto homestead = port_of(s, "homestead");
    WsClient bot(homestead, {.path = "/sync?api_key=gateway"});

    auto disabling = act(s.port(), "homestead", "disable");
    const auto closed = bot.wait_closed();
    ASSERT_EQ(disabling.get().status, 200);
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "homestead disabled");
    EXPECT_TRUE(refused(homestead));
    EXPECT_EQ(state_of(s, "homestead"), "disabled");

    ASSERT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/homestead/enable").status, 200);
    const auto rebound = port_of(s, "homestead");  // port 0: a fresh one
    EXPECT_EQ(http_request(rebound, "GET", "/health").status, 200);
    WsClient back(rebound, {.path = "/sync?api_key=gateway"});
    EXPECT_EQ(state_of(s, "homestead"), "running");
}

// A restart tells WebSocket clients to come back (1012); raw TCP clients see the connection end.
TEST(Modules, ARestartClosesWith1012AndServesAgain) {
    TestServer s(with_frontends());
    WsClient native(s.port(), {.path = "/ws"});
    auto draco = std::make_unique<RawClient>(port_of(s, "dracosoft"));

    auto restarting = act(s.port(), "native", "restart");
    const auto closed = native.wait_closed();
    ASSERT_EQ(restarting.get().status, 200);
    EXPECT_EQ(closed.code, 1012);
    EXPECT_EQ(closed.reason, "native restarting");
    WsClient again(s.port(), {.path = "/ws"});

    // The server closes its side and waits for the client to close its own (a graceful close).
    restarting = act(s.port(), "dracosoft", "restart");
    EXPECT_EQ(draco->read_until_eof(), "");
    draco.reset();
    ASSERT_EQ(restarting.get().status, 200);
    RawClient draco_again(port_of(s, "dracosoft"));
    draco_again.write(draco_frame(R"({"type":"ping"})"));
    EXPECT_EQ(draco_again.read_exactly(4).size(), 4u);
    EXPECT_EQ(state_of(s, "dracosoft"), "running");
}

// Every action is in the audit log and every state change is an event.
TEST(Modules, ActionsAreAuditedAndStateChangesAreEvents) {
    TestServer s(with_frontends());
    ASSERT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/dracosoft/disable").status, 200);
    const auto audit = as_admin(s.port(), "GET", "/api/v1/audit");
    ASSERT_EQ(audit.status, 200);
    EXPECT_THAT(audit.body, HasSubstr("module.disable"));
    EXPECT_THAT(audit.body, HasSubstr("module:dracosoft"));

    std::vector<std::string> states;
    for (const auto& e : s.app().events().recent(
             100, 0, {.kind = core::EventKind::kModuleStateChanged, .module = "dracosoft"})) {
        states.push_back(e.detail);
    }
    EXPECT_EQ(states, (std::vector<std::string>{"starting", "running", "stopping", "disabled"}));
}

// The config file's `enabled` applies without a restart, both ways.
TEST(Modules, TheConfigsEnabledKeyStartsAndStopsAModule) {
    TempDir dir;
    TestServer s(with_frontends());
    WsClient player(port_of(s, "hunterpie"), {.path = "/connect?playerName=Ayla"});

    auto applying = std::async(std::launch::async, [&] {
        s.app().apply(edited(dir, with_frontends({{"hunterpie.enabled", "false"}})));
    });
    EXPECT_EQ(player.wait_closed().code, 1001);
    applying.get();
    EXPECT_EQ(state_of(s, "hunterpie"), "disabled");

    s.app().apply(edited(dir, with_frontends({{"moonshare.enabled", "true"},
                                              {"moonshare.token_listen", "\"127.0.0.1:0\""},
                                              {"moonshare.auth_listen", "\"127.0.0.1:0\""},
                                              {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
                                              {"moonshare.player_listen", R"(["127.0.0.1:0"])"}})));
    EXPECT_EQ(state_of(s, "hunterpie"), "running");
    EXPECT_EQ(state_of(s, "moonshare"), "running");
    const auto token = http_request(port_of(s, "moonshare-token"), "GET", "/sessions?userId=abc");
    EXPECT_EQ(token.status, 200) << token.body;
}

// A listen address the module cannot bind leaves it on its running section, serving; the reason
// is in its status history (the reload's log says it too).
TEST(Modules, AListenAddressThatCannotBeBoundKeepsTheRunningSection) {
    TempDir dir;
    TestServer s(with_frontends());
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor taken(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto busy = taken.local_endpoint().port();

    s.app().apply(edited(
        dir, with_frontends({{"homestead.listen", "\"127.0.0.1:" + std::to_string(busy) + "\""}})));
    EXPECT_EQ(state_of(s, "homestead"), "running");
    EXPECT_EQ(http_request(port_of(s, "homestead"), "GET", "/health").status, 200);
    bool failed_on_busy_port = false;
    for (const auto& e : s.app().events().recent(
             100, 0, {.kind = core::EventKind::kModuleStateChanged, .module = "homestead"})) {
        failed_on_busy_port |= e.detail.find(std::to_string(busy)) != std::string::npos;
    }
    EXPECT_TRUE(failed_on_busy_port);
}

TEST(Modules, AModuleThatCannotStartStopsTheServerByDefault) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor taken(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto busy = std::to_string(taken.local_endpoint().port());
    try {
        TestServer s(with_frontends({{"homestead.listen", "\"127.0.0.1:" + busy + "\""}}));
        FAIL() << "the server started with homestead's port in use";
    } catch (const std::exception& e) {
        EXPECT_THAT(e.what(), HasSubstr("homestead"));
        EXPECT_THAT(e.what(), HasSubstr(busy));
    }
}

TEST(Modules, WithContinueTheServerStartsWithoutTheModuleThatFailed) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor taken(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto busy = std::to_string(taken.local_endpoint().port());
    TestServer s(with_frontends({{"homestead.listen", "\"127.0.0.1:" + busy + "\""},
                                 {"server.on_module_failure", "\"continue\""}}));
    const auto r = as_admin(s.port(), "GET", "/api/v1/modules/homestead");
    ASSERT_EQ(r.status, 200);
    const auto m = json::parse(r.body).as_object();
    EXPECT_EQ(std::string(m.at("state").as_string()), "failed");
    EXPECT_THAT(std::string(m.at("last_error").as_string()), HasSubstr(busy));
    EXPECT_EQ(state_of(s, "hunterpie"), "running");

    // Once the port is free, an operator can start it.
    taken.close();
    EXPECT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/homestead/enable").status, 200);
    EXPECT_EQ(http_request(port_of(s, "homestead"), "GET", "/health").status, 200);
}

// Moonshare's players are closed and its four listeners released; it serves again once enabled.
TEST(Modules, MoonshareDisabledClosesItsPlayersAndComesBack) {
    TestServer s(with_frontends({{"moonshare.enabled", "true"},
                                 {"moonshare.token_listen", "\"127.0.0.1:0\""},
                                 {"moonshare.auth_listen", "\"127.0.0.1:0\""},
                                 {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
                                 {"moonshare.player_listen", R"(["127.0.0.1:0"])"}}));
    const auto token_port = port_of(s, "moonshare-token");
    ASSERT_EQ(http_request(token_port, "GET", "/sessions?userId=abc").status, 200);
    WsClient player(port_of(s, "moonshare-alpha"), {.path = "/player"});

    auto disabling = act(s.port(), "moonshare", "disable");
    const auto closed = player.wait_closed();
    ASSERT_EQ(disabling.get().status, 200);
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "moonshare disabled");
    EXPECT_TRUE(refused(token_port));

    ASSERT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/moonshare/enable").status, 200);
    EXPECT_EQ(http_request(port_of(s, "moonshare-token"), "GET", "/sessions?userId=def").status,
              200);
    WsClient back(port_of(s, "moonshare-alpha"), {.path = "/player"});
}

// The logs module serves on the HTTP API listener and on HunterPie's: both go, both come back.
TEST(Modules, LogsDisabledLeavesBothListenersWithoutTheLogRoutes) {
    TestServer s(with_frontends());
    const auto hunterpie = port_of(s, "hunterpie");
    WsClient listener(s.port(), {.path = "/logs/listen"});

    auto disabling = act(s.port(), "logs", "disable");
    const auto closed = listener.wait_closed();
    ASSERT_EQ(disabling.get().status, 200);
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "logs disabled");
    EXPECT_EQ(http_request(s.port(), "POST", "/logs/add", R"({"message":"x"})").status, 404);
    EXPECT_EQ(http_request(hunterpie, "GET", "/logs.html").status, 404);
    EXPECT_EQ(as_admin(s.port(), "GET", "/api/v1/logs").status, 404);
    EXPECT_EQ(http_request(hunterpie, "GET", "/version").status, 200);  // HunterPie stays

    ASSERT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/logs/enable").status, 200);
    EXPECT_EQ(http_request(hunterpie, "GET", "/logs.html").status, 200);
    EXPECT_EQ(http_request(s.port(), "GET", "/logs.html").status, 200);
    EXPECT_EQ(as_admin(s.port(), "GET", "/api/v1/logs").status, 200);
}

// Disabling keeps a module's stored data: a message a mod sent while no bot was connected is
// still queued after Homestead was disabled and enabled again, and reaches the bot then.
TEST(Modules, HomesteadKeepsItsQueuedMessagesAcrossADisable) {
    TestServer s(with_frontends());
    {
        WsClient mod(port_of(s, "homestead"), {.path = "/sync?api_key=gateway"});
        mod.send_text(R"({"type":"mod","data":{"server_id":"srv","channel_id":"C"}})");
        ASSERT_EQ(mod.read()->data, "{\"status\":\"connected\",\"type\":\"mod\"}\n");
        mod.send_text(R"({"msg_id":"m-1","id":"srv","destination":{"channel_id":"C"},)"
                      R"("author":{"id":"p","name":"Steve"},"content":"kept across a disable",)"
                      R"("meta":{},"ts":"2026-12-07T10:30:00Z"})");
        ASSERT_EQ(mod.read()->data, "{\"status\":\"queued\",\"type\":\"mod\"}\n");

        auto disabling = act(s.port(), "homestead", "disable");
        EXPECT_EQ(mod.wait_closed().code, 1001);
        ASSERT_EQ(disabling.get().status, 200);
    }
    ASSERT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/homestead/enable").status, 200);

    WsClient bot(port_of(s, "homestead"), {.path = "/sync?api_key=gateway"});
    bot.send_text(R"({"type":"bot","data":{"bot_id":"discord-bot"}})");
    ASSERT_EQ(bot.read()->data, "{\"status\":\"connected\",\"type\":\"bot\"}\n");
    const auto delivered = bot.read();
    ASSERT_TRUE(delivered);
    EXPECT_THAT(delivered->data, HasSubstr("kept across a disable"));
}

// Actions wait for a module's clients to close, one at a time; those waiting are bounded, and the
// next gets 503 busy at once instead of queueing behind them.
TEST(Modules, ActionsWaitingForTheControlThreadAreBounded) {
    // The deadline is far away: the stuck client, not the clock, decides when the disable ends.
    TestServer s(with_frontends({{"server.shutdown_timeout_ms", "60000"}}));
    // A client that never answers the close frame holds the first disable until it goes away.
    auto stuck = std::make_unique<RawClient>(port_of(s, "hunterpie"));
    ASSERT_EQ(stuck->upgrade("/connect?playerName=Stuck").rfind("HTTP/1.1 101", 0), 0u);
    std::vector<std::future<HttpResult>> waiting;
    waiting.push_back(act(s.port(), "hunterpie", "disable"));
    // The close frame arriving proves the control thread is inside that disable, so the restarts
    // below queue behind it instead of racing ahead of it.
    const auto close_frame = stuck->read_exactly(2);
    ASSERT_EQ(close_frame.size(), 2u);
    ASSERT_EQ(static_cast<unsigned char>(close_frame[0]), 0x88u);
    for (int i = 1; i < 4; ++i) {
        waiting.push_back(act(s.port(), "native", "restart"));
    }
    ASSERT_TRUE(eventually([&] { return s.metric("hearth_module_actions_pending") == 4; }));

    const auto refused = as_admin(s.port(), "POST", "/api/v1/modules/dracosoft/restart");
    EXPECT_EQ(refused.status, 503);
    EXPECT_THAT(refused.body, HasSubstr("busy"));
    stuck.reset();  // the disable ends when its last client leaves, then the others run
    for (auto& w : waiting) {
        EXPECT_EQ(w.get().status, 200);
    }
    // An action answers before it leaves the count.
    EXPECT_TRUE(eventually([&] { return s.metric("hearth_module_actions_pending") == 0; }));
    EXPECT_EQ(as_admin(s.port(), "POST", "/api/v1/modules/dracosoft/restart").status, 200);
}

}  // namespace
}  // namespace hearth::test
