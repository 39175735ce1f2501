// hearth-bot's command line (tools/bot/options.hpp): the issue's flags, the identity choice, and
// the refusals a user sees before anything connects.

#include "bot/options.hpp"

#include <gtest/gtest.h>

namespace hearth::bot {
namespace {

Options parsed(const std::vector<std::string>& args) {
    auto r = parse_command_line(args);
    if (const auto* exit = std::get_if<ParseExit>(&r)) {
        ADD_FAILURE() << "refused (" << exit->code << "): " << exit->text;
        return {};
    }
    return std::get<Options>(r);
}

ParseExit refused(const std::vector<std::string>& args) {
    auto r = parse_command_line(args);
    if (const auto* exit = std::get_if<ParseExit>(&r)) {
        return *exit;
    }
    ADD_FAILURE() << "accepted";
    return {};
}

TEST(BotOptions, TheIssuesCommandLine) {
    const auto o = parsed({"--host",        "10.0.0.5", "--port",       "29000",
                           "--bots",        "2000",     "--duration",   "60",
                           "--move-hz",     "10",       "--zone",       "2",
                           "--spread",      "150",      "--api",        "http://127.0.0.1:8080",
                           "--admin-token", "secret",   "--server-pid", "4242",
                           "--json"});
    EXPECT_EQ(o.host, "10.0.0.5");
    EXPECT_EQ(o.port, 29000);
    EXPECT_EQ(o.bots, 2000U);
    EXPECT_DOUBLE_EQ(o.duration_s, 60);
    EXPECT_DOUBLE_EQ(o.move_hz, 10);
    ASSERT_TRUE(o.zone.has_value());
    EXPECT_EQ(*o.zone, 2U);
    EXPECT_DOUBLE_EQ(o.spread, 150);
    EXPECT_EQ(o.api, "http://127.0.0.1:8080");
    EXPECT_EQ(o.admin_token, "secret");
    EXPECT_TRUE(o.token.empty());
    EXPECT_EQ(o.server_pid, 4242);
    EXPECT_TRUE(o.json);
}

TEST(BotOptions, DefaultsWithOneToken) {
    const auto o = parsed({"--port", "1", "--token", "hs_abc"});
    EXPECT_EQ(o.host, "127.0.0.1");
    EXPECT_EQ(o.bots, 1U);
    EXPECT_FALSE(o.zone.has_value());
    EXPECT_EQ(o.token, "hs_abc");
    EXPECT_EQ(o.attack_per_min, 0);
    EXPECT_FALSE(o.json);
    EXPECT_EQ(o.server_pid, 0);
}

TEST(BotOptions, TheExtras) {
    const auto o = parsed({"--port", "1", "--token", "t", "--chat-per-min", "3", "--attack",
                           "--connect-rate", "50", "--seed", "7", "--prefix", "load1",
                           "--bots-per-account", "4", "--speed", "0.5", "--quiet"});
    EXPECT_DOUBLE_EQ(o.chat_per_min, 3);
    EXPECT_DOUBLE_EQ(o.attack_per_min, 12);  // --attack alone: the default rate
    EXPECT_DOUBLE_EQ(o.connect_rate, 50);
    EXPECT_EQ(o.seed, 7U);
    EXPECT_EQ(o.prefix, "load1");
    EXPECT_EQ(o.bots_per_account, 4U);
    EXPECT_DOUBLE_EQ(o.speed, 0.5);
    EXPECT_TRUE(o.quiet);
    EXPECT_FALSE(o.moving.has_value());
    EXPECT_EQ(*parsed({"--port", "1", "--token", "t", "--bots", "10", "--moving", "4"}).moving, 4U);
    EXPECT_FALSE(o.lobby);
    EXPECT_TRUE(parsed({"--port", "1", "--token", "t", "--lobby"}).lobby);
    EXPECT_DOUBLE_EQ(parsed({"--port", "1", "--token", "t", "--attack-per-min", "30", "--attack"})
                         .attack_per_min,
                     30);
}

TEST(BotOptions, AnIdentityIsRequiredAndOnlyOne) {
    EXPECT_EQ(refused({"--port", "1"}).code, 2);
    EXPECT_NE(refused({"--port", "1"}).text.find("--api"), std::string::npos);
    EXPECT_NE(refused({"--port", "1", "--api", "http://h:1"}).code, 0);  // no --admin-token
    EXPECT_NE(refused({"--port", "1", "--admin-token", "a"}).code, 0);   // no --api
    EXPECT_NE(
        refused({"--port", "1", "--token", "t", "--api", "http://h:1", "--admin-token", "a"}).code,
        0);
}

TEST(BotOptions, BadValuesAreRefusedWithTheReason) {
    EXPECT_NE(refused({"--token", "t"}).code, 0);  // --port is required
    EXPECT_NE(refused({"--port", "0", "--token", "t"}).code, 0);
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--bots", "0"}).code, 0);
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--move-hz", "-1"}).code, 0);
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--duration", "abc"}).code, 0);
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--unknown"}).code, 0);
    const auto https = refused({"--port", "1", "--api", "https://h:1", "--admin-token", "a"});
    EXPECT_NE(https.text.find("http://"), std::string::npos) << https.text;
    const auto prefix = refused({"--port", "1", "--token", "t", "--prefix", "a-b"});
    EXPECT_NE(prefix.text.find("--prefix"), std::string::npos) << prefix.text;
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--cleanup"}).code, 0);
    const auto moving = refused({"--port", "1", "--token", "t", "--bots", "2", "--moving", "3"});
    EXPECT_NE(moving.text.find("--moving"), std::string::npos) << moving.text;
    const auto lobby = refused({"--port", "1", "--token", "t", "--lobby", "--moving", "1"});
    EXPECT_NE(lobby.text.find("--lobby"), std::string::npos) << lobby.text;
    EXPECT_NE(refused({"--port", "1", "--token", "t\n"}).code, 0);
}

TEST(BotOptions, SourceAddressesSpreadALocalRunUnderThePerAddressLimit) {
    Options o;
    o.bots = 200;
    EXPECT_TRUE(source_addresses(o).empty());  // fits one address: the system's choice
    o.bots = 1000;
    const auto five = source_addresses(o);
    ASSERT_EQ(five.size(), 5U);
    EXPECT_EQ(five.front(), "127.0.0.1");
    EXPECT_EQ(five.back(), "127.0.0.5");
    o.bots = 100000;
    EXPECT_EQ(source_addresses(o).size(), 254U);
    o.source_addresses = 3;
    EXPECT_EQ(source_addresses(o).size(), 3U);
    o.host = "10.0.0.5";  // only loopback has 127.0.0.x to spare
    EXPECT_TRUE(source_addresses(o).empty());
    EXPECT_EQ(parsed({"--port", "1", "--token", "t", "--source-addresses", "9"}).source_addresses,
              9U);
    EXPECT_NE(refused({"--port", "1", "--token", "t", "--source-addresses", "255"}).code, 0);
}

TEST(BotOptions, HelpExitsZero) {
    const auto help = refused({"--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_NE(help.text.find("--move-hz"), std::string::npos);
}

TEST(BotOptions, PrefixesAreNamesTheServerTakes) {
    for (std::uint64_t seed = 1; seed < 2000; ++seed) {
        const auto p = make_prefix(seed);
        ASSERT_EQ(p.size(), 6U);
        // Letters and digits, no vowel: a character name (prefix and number) is 7 to 12 of
        // them, within the default rules, and holds no reserved word.
        for (const char c : p) {
            ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << p;
            ASSERT_EQ(std::string("aeiouy").find(c), std::string::npos) << p;
        }
    }
    EXPECT_EQ(make_prefix(5), make_prefix(5));
    EXPECT_NE(make_prefix(5), make_prefix(6));
}

}  // namespace
}  // namespace hearth::bot
