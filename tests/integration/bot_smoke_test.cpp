// Smoke tests of hearth-bot (tools/bot, docs/hearth-bot.md): a short run of a few bots against
// an in-process server with the packet front-end, the characters and the world, checking from
// its JSON summary that the bots made their identities, logged in, entered the world (and changed
// zone) and received world updates (never a speed: every count is compared with the number of
// bots or with zero).

#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <unistd.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdminToken = "bot-smoke-admin-token";

std::uint64_t u64(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        throw std::runtime_error("no \"" + std::string(key) + "\" in " + json::serialize(o));
    }
    return v->to_number<std::uint64_t>();
}

struct BotRun {
    int exit_code = -1;
    json::object summary;
    std::string out;
};

class BotSmoke : public ::testing::Test {
protected:
    void SetUp() override {
        server_ = std::make_unique<TestServer>(
            Overrides{{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                      {"packet.enabled", "true"},
                      {"packet.listen", "\"127.0.0.1:0\""},
                      {"characters.enabled", "true"},
                      {"world.enabled", "true"}});
    }

    std::vector<std::string> base_args(int bots) const {
        return {"--port",        std::to_string(server_->app().server().bound_port("packet")),
                "--bots",        std::to_string(bots),
                "--api",         "http://127.0.0.1:" + std::to_string(server_->port()),
                "--admin-token", kAdminToken,
                "--server-pid",  std::to_string(getpid()),
                "--json",        "--quiet"};
    }

    static BotRun run(std::vector<std::string> args) {
        ChildProcess child(args, {}, "", ChildOptions{built_binary("hearth-bot"), false});
        BotRun r;
        r.exit_code = child.wait_exit(std::chrono::seconds(120));
        r.out = child.output();
        r.summary = report_of(BenchRun{r.exit_code, r.out});
        return r;
    }

    std::unique_ptr<TestServer> server_;
};

TEST_F(BotSmoke, BotsMakeTheirIdentitiesAndPlayInTheWorld) {
    auto args = base_args(3);
    // Zone 2 (Caves) is not where characters start: each bot changes zone.
    args.insert(args.end(), {"--duration", "3", "--prefix", "smoke1", "--zone", "2", "--move-hz",
                             "5", "--chat-per-min", "60", "--attack"});
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    const auto& s = r.summary;
    EXPECT_EQ(s.at("prefix").as_string(), "smoke1");
    EXPECT_EQ(u64(s.at("connections").as_object(), "ok"), 3U) << r.out;
    EXPECT_EQ(u64(s.at("connections").as_object(), "failed"), 0U) << r.out;
    EXPECT_EQ(u64(s, "logged_in"), 3U) << r.out;
    EXPECT_EQ(u64(s, "characters_created"), 3U) << r.out;
    EXPECT_EQ(u64(s, "characters_selected"), 3U) << r.out;
    EXPECT_EQ(u64(s, "entered_world"), 3U) << r.out;
    EXPECT_EQ(u64(s, "zone_changes"), 3U) << r.out;
    EXPECT_EQ(u64(s, "in_world_at_end"), 3U) << r.out;
    EXPECT_EQ(u64(s, "setup_failed"), 0U) << r.out;
    EXPECT_EQ(u64(s, "disconnected"), 0U) << r.out;
    EXPECT_GT(u64(s, "world_updates"), 0U) << r.out;
    EXPECT_GE(u64(s, "spawns_seen"), 6U) << r.out;  // each bot sees the two others at least
    EXPECT_GT(u64(s, "moves_sent"), 0U) << r.out;
    EXPECT_GT(u64(s, "packets_sent"), 0U);
    EXPECT_GT(u64(s, "bytes_received"), 0U);
    EXPECT_FALSE(s.at("server_cpu_s").is_null()) << r.out;  // --server-pid read
    EXPECT_FALSE(s.at("settled_s").is_null()) << r.out;
    // The zones' figures from the operator API: both shipped zones, the bots in the Caves.
    ASSERT_TRUE(s.at("zones").is_array()) << r.out;
    bool caves = false;
    for (const auto& z : s.at("zones").as_array()) {
        if (z.as_object().at("id").to_number<int>() == 2) {
            caves = true;
            EXPECT_TRUE(z.as_object().contains("tick")) << r.out;
        }
    }
    EXPECT_TRUE(caves) << r.out;

    // The same prefix again: the accounts are reused (new keys), the characters selected, and
    // they enter where they left (the Caves: no zone change).
    const auto again = run(args);
    EXPECT_EQ(u64(again.summary, "logged_in"), 3U) << again.out;
    EXPECT_EQ(u64(again.summary, "characters_created"), 0U) << again.out;
    EXPECT_EQ(u64(again.summary, "characters_selected"), 3U) << again.out;
    EXPECT_EQ(u64(again.summary, "entered_world"), 3U) << again.out;
    EXPECT_EQ(u64(again.summary, "zone_changes"), 0U) << again.out;
}

TEST_F(BotSmoke, OneTokenServesBotsOfOneAccount) {
    const std::map<std::string, std::string> admin{
        {"Authorization", std::string("Bearer ") + kAdminToken},
        {"Content-Type", "application/json"}};
    ASSERT_EQ(http_request(server_->port(), "POST", "/api/v1/accounts",
                           R"({"username":"tokenbots","password":"long enough password"})", admin)
                  .status,
              201);
    const auto key =
        http_request(server_->port(), "POST", "/api/v1/tokens",
                     R"({"account":"tokenbots","name":"bots","scopes":["packet"]})", admin);
    ASSERT_EQ(key.status, 201) << key.body;
    const std::string token(json::parse(key.body).as_object().at("token").as_string());
    const auto r =
        run({"--port", std::to_string(server_->app().server().bound_port("packet")), "--bots", "2",
             "--token", token, "--duration", "1", "--prefix", "tok", "--json", "--quiet"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(u64(r.summary, "logged_in"), 2U) << r.out;
    EXPECT_EQ(u64(r.summary, "characters_created"), 2U) << r.out;  // tok0 and tok1, one account
    EXPECT_EQ(u64(r.summary, "entered_world"), 2U) << r.out;
    EXPECT_TRUE(r.summary.at("zones").is_null());
    EXPECT_NE(r.summary.at("zones_error").as_string().find("--api"), json::string::npos);
}

// --lobby: logged in with a character selected, and never in the world (the memory baseline).
TEST_F(BotSmoke, LobbyBotsSelectTheirCharacterAndStayOutOfTheWorld) {
    auto args = base_args(2);
    args.insert(args.end(), {"--duration", "1", "--prefix", "lobby", "--lobby"});
    const auto r = run(args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(u64(r.summary, "logged_in"), 2U) << r.out;
    EXPECT_EQ(u64(r.summary, "characters_selected"), 2U) << r.out;
    EXPECT_EQ(u64(r.summary, "entered_world"), 0U) << r.out;
    EXPECT_EQ(u64(r.summary, "in_world_at_end"), 2U) << r.out;  // connected, standing
    EXPECT_EQ(u64(r.summary, "disconnected"), 0U) << r.out;
    EXPECT_EQ(u64(r.summary, "moving"), 0U) << r.out;
    EXPECT_TRUE(r.summary.at("lobby").as_bool()) << r.out;
    for (const auto& z : r.summary.at("zones").as_array()) {
        EXPECT_EQ(z.as_object().at("players").to_number<int>(), 0) << r.out;
    }
}

TEST_F(BotSmoke, CleanupDeletesTheAccountsMade) {
    auto args = base_args(2);
    args.insert(args.end(), {"--duration", "0.5", "--prefix", "smoke2", "--cleanup"});
    const auto r = run(args);
    EXPECT_EQ(u64(r.summary, "entered_world"), 2U) << r.out;
    const auto response = http_request(server_->port(), "GET", "/api/v1/accounts?q=smoke2", "",
                                       {{"Authorization", std::string("Bearer ") + kAdminToken}});
    ASSERT_EQ(response.status, 200) << response.body;
    EXPECT_TRUE(json::parse(response.body).as_object().at("items").as_array().empty())
        << response.body;
}

}  // namespace
}  // namespace hearth::test
