// Smoke tests of the load generator's roles for the DracoSoft and Moonshare front-ends: a short run
// of each against an in-process server, checking that the role works and reports what it
// measured, and how it reports a refusal (never a speed).

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "net/server.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

std::uint64_t u64(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        throw std::runtime_error("no \"" + std::string(key) + "\" in " + json::serialize(o));
    }
    return v->to_number<std::uint64_t>();
}

std::string notes_of(const json::object& r) {
    std::string all;
    for (const auto& n : r.at("notes").as_array()) {
        all += std::string(n.as_string()) + "\n";
    }
    return all;
}

// The test defaults already set the cheapest argon2id costs (support/server.cpp).
std::string dracosoft_url(TestServer& server) {
    return "tcp://127.0.0.1:" + std::to_string(server.app().server().bound_port("dracosoft"));
}

TEST(BenchRoles, DracosoftChatRegistersLogsInAndChats) {
    TestServer server{{"dracosoft.enabled", "true"}, {"dracosoft.listen", "\"127.0.0.1:0\""}};
    const auto url = dracosoft_url(server);
    const auto run = run_bench_drained({"dracosoft-chat", "--url", url, "--clients", "4", "--auth",
                                        "both", "--rate", "20", "--duration", "1", "--json",
                                        "--server-pid", std::to_string(getpid())});
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    EXPECT_EQ(u64(r, "logged_in"), 4U);
    EXPECT_EQ(u64(r, "connections_opened"), 4U);
    EXPECT_EQ(u64(r.at("register_latency_ms").as_object(), "count"), 4U);
    EXPECT_EQ(u64(r.at("login_latency_ms").as_object(), "count"), 4U);
    // Each client chats at its first tick, then by the schedule: never ahead of it (20 per second
    // from its start, elapsed_s covering the whole measured phase). How many a busy machine got
    // through is no test.
    EXPECT_GE(u64(r, "chats_sent"), 4U);
    EXPECT_LE(static_cast<double>(u64(r, "chats_sent")),
              4 * (20 * (r.at("elapsed_s").to_number<double>() + 0.001) + 1))
        << json::serialize(r);
    // Every chat reached every logged-in client, the sender included.
    EXPECT_EQ(u64(r, "chat_deliveries"), u64(r, "chats_sent") * 4) << json::serialize(r);
    EXPECT_EQ(u64(r, "deliveries_expected"), u64(r, "chat_deliveries"));
    EXPECT_EQ(u64(r.at("latency_us").as_object(), "count"), u64(r, "chat_deliveries"));
    // The server's CPU time was read (a second of this may round to 0 ticks of /proc).
    EXPECT_TRUE(r.contains("server_cpu_s")) << json::serialize(r);
    // The server's side agrees.
    EXPECT_EQ(server.metric("hearth_dracosoft_chat_messages_total"),
              static_cast<double>(u64(r, "chats_sent")));
    EXPECT_EQ(
        server.metric("hearth_dracosoft_auth_total", {{"action", "register"}, {"result", "ok"}}),
        4.0);
    EXPECT_EQ(server.metric("hearth_dracosoft_auth_total", {{"action", "login"}, {"result", "ok"}}),
              4.0);

    // The same accounts again, by their run id: a login run; as fast as possible this time.
    const std::string run_id(r.at("run_id").as_string());
    const auto again =
        run_bench_drained({"dracosoft-chat", "--url", url, "--clients", "4", "--auth", "login",
                           "--run-id", run_id, "--rate", "0", "--duration", "1", "--json"});
    ASSERT_EQ(again.exit_code, 0) << again.out;
    const auto r2 = report_of(again);
    EXPECT_EQ(u64(r2, "errors"), 0U) << json::serialize(r2);
    EXPECT_EQ(u64(r2, "logged_in"), 4U);
    EXPECT_FALSE(r2.contains("register_latency_ms"));
    EXPECT_EQ(u64(r2.at("login_latency_ms").as_object(), "count"), 4U);
    EXPECT_GT(u64(r2, "chats_sent"), 0U);
    EXPECT_EQ(u64(r2, "chat_deliveries"), u64(r2, "chats_sent") * 4) << json::serialize(r2);

    // Registering them once more is refused, and the report says what the server answered.
    const auto taken = run_bench({"dracosoft-chat", "--url", url, "--clients", "2", "--run-id",
                                  run_id, "--duration", "1", "--json"});
    EXPECT_EQ(taken.exit_code, 1) << taken.out;
    const auto r3 = report_of(taken);
    EXPECT_EQ(u64(r3, "auth_refused"), 2U);
    EXPECT_EQ(u64(r3.at("close_reasons").as_object(), "register refused: Username already exists"),
              2U)
        << json::serialize(r3);
    EXPECT_NE(notes_of(r3).find("Username already exists"), std::string::npos) << notes_of(r3);
}

TEST(BenchRoles, DracosoftChatShowsAFailedLogin) {
    TestServer server{{"dracosoft.enabled", "true"}, {"dracosoft.listen", "\"127.0.0.1:0\""}};
    const auto run =
        run_bench({"dracosoft-chat", "--url", dracosoft_url(server), "--clients", "3", "--auth",
                   "login", "--run-id", "nobody", "--duration", "1", "--json"});
    EXPECT_EQ(run.exit_code, 1) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "logged_in"), 0U);
    EXPECT_EQ(u64(r, "auth_refused"), 3U);
    EXPECT_EQ(u64(r, "errors"), 3U);
    EXPECT_EQ(u64(r.at("close_reasons").as_object(), "login refused: Invalid username or password"),
              3U)
        << json::serialize(r);
    EXPECT_NE(notes_of(r).find("Invalid username or password"), std::string::npos) << notes_of(r);
}

TEST(BenchRoles, DracosoftChatNeedsATcpUrl) {
    const auto run = run_bench({"dracosoft-chat", "--url", "ws://127.0.0.1:1/", "--json"});
    EXPECT_EQ(run.exit_code, 2) << run.out;
}

// ---- moonshare-player -----------------------------------------------------------------------

const Overrides kMoonshare{
    {"moonshare.enabled", "true"},
    {"moonshare.token_listen", "\"127.0.0.1:0\""},
    {"moonshare.auth_listen", "\"127.0.0.1:0\""},
    {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
    {"moonshare.player_listen", R"(["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"])"},
    {"websocket.max_messages_per_s", "0"}};

std::vector<std::string> moonshare_args(TestServer& server) {
    const auto& s = server.app().server();
    const auto alpha = std::to_string(s.bound_port("moonshare-alpha"));
    return {"moonshare-player",
            "--url",
            "ws://127.0.0.1:" + alpha + "/player",
            "--token-url",
            "http://127.0.0.1:" + std::to_string(s.bound_port("moonshare-token")),
            "--instance-ports",
            alpha + "," + std::to_string(s.bound_port("moonshare-beta")) + "," +
                std::to_string(s.bound_port("moonshare-gamma"))};
}

TEST(BenchRoles, MoonsharePlayersExchangeFiles) {
    auto server = std::make_unique<TestServer>(kMoonshare);
    auto args = moonshare_args(*server);
    args.insert(args.end(), {"--players", "4", "--file-size", "100000", "--duration", "1", "--json",
                             "--server-pid", std::to_string(getpid())});
    const auto run = run_bench_drained(args);
    ASSERT_EQ(run.exit_code, 0) << run.out;
    const auto r = report_of(run);
    EXPECT_EQ(u64(r, "errors"), 0U) << json::serialize(r);
    EXPECT_EQ(u64(r, "authenticated"), 4U);
    EXPECT_GT(u64(r, "files_sent"), 0U);
    // Every file acknowledged was received whole, checked byte for byte, by its recipient.
    EXPECT_EQ(u64(r, "files_received"), u64(r, "files_sent")) << json::serialize(r);
    EXPECT_EQ(u64(r, "files_begun"), u64(r, "files_sent"));
    EXPECT_EQ(u64(r, "files_failed"), 0U);
    EXPECT_EQ(u64(r.at("latency_us").as_object(), "count"), u64(r, "files_received"));
    EXPECT_EQ(u64(r.at("send_latency_ms").as_object(), "count"), u64(r, "files_sent"));
    EXPECT_DOUBLE_EQ(r.at("mb_received").to_number<double>(),
                     static_cast<double>(u64(r, "files_received")) * 0.1);
}

TEST(BenchRoles, MoonsharePlayerShowsWhatTheTokenEndpointSaid) {
    auto server = std::make_unique<TestServer>(kMoonshare);
    auto args = moonshare_args(*server);
    // Hearth's own HTTP listener has no /sessions: 404.
    args[4] = "http://127.0.0.1:" + std::to_string(server->port());
    args.insert(args.end(), {"--players", "2", "--duration", "1", "--json"});
    const auto run = run_bench(args);
    EXPECT_EQ(run.exit_code, 1) << run.out;
    const auto r = report_of(run);
    EXPECT_NE(notes_of(r).find("404"), std::string::npos) << notes_of(r);
}

}  // namespace
}  // namespace hearth::test
