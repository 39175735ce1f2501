// Moonshare's sans-I/O pieces: System.Text.Json's default escaping, .NET's TimeSpan and round-trip
// date formats, the plugin's StableHash, and the [moonshare] config section's validation.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "core/config.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {
namespace {

using namespace std::chrono_literals;

TEST(MoonshareJson, PlainAsciiIsUnchanged) {
    EXPECT_EQ(json_string("hello world 123 _-.:/?!@#$%^*()[]{}=|~;,"),
              R"("hello world 123 _-.:/?!@#$%^*()[]{}=|~;,")");
}

TEST(MoonshareJson, HtmlSensitiveCharactersAreEscaped) {
    EXPECT_EQ(json_string("<>&'\"+`"), R"("\u003C\u003E\u0026\u0027\u0022\u002B\u0060")");
}

TEST(MoonshareJson, BackslashAndControls) {
    EXPECT_EQ(json_string("a\\b"), R"("a\\b")");
    EXPECT_EQ(json_string("\b\t\n\f\r"), R"("\b\t\n\f\r")");
    EXPECT_EQ(json_string(std::string("\x00\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001F\u007F")");
}

TEST(MoonshareJson, NonAsciiBecomesUtf16Escapes) {
    EXPECT_EQ(json_string("caf\xc3\xa9"), R"("caf\u00E9")");
    EXPECT_EQ(json_string("\xe6\x97\xa5"), R"("\u65E5")");
    EXPECT_EQ(json_string("\xf0\x9f\x98\x80"), R"("\uD83D\uDE00")");  // U+1F600
}

TEST(MoonshareJson, InvalidUtf8BecomesReplacementCharacters) {
    EXPECT_EQ(json_string("a\xff"
                          "b"),
              R"("a\uFFFDb")");
    EXPECT_EQ(json_string("\xc3"), R"("\uFFFD")");                      // truncated sequence
    EXPECT_EQ(json_string("\xc0\xaf"), R"("\uFFFD\uFFFD")");            // overlong
    EXPECT_EQ(json_string("\xed\xa0\x80"), R"("\uFFFD\uFFFD\uFFFD")");  // a surrogate
}

TEST(MoonshareTimeSpan, HoursMinutesSecondsAndDaysOnlyWhenNonZero) {
    EXPECT_EQ(timespan(0s), "00:00:00");
    EXPECT_EQ(timespan(59s), "00:00:59");
    EXPECT_EQ(timespan(3661s), "01:01:01");
    EXPECT_EQ(timespan(86'399s), "23:59:59");
    EXPECT_EQ(timespan(86'400s), "1.00:00:00");
    EXPECT_EQ(timespan(93'784s), "1.02:03:04");
    EXPECT_EQ(timespan(std::chrono::seconds(12LL * 86'400 + 5)), "12.00:00:05");
    EXPECT_EQ(timespan(-61s), "-00:01:01");
}

TEST(MoonshareIsoTime, SevenFractionalDigitsAndZ) {
    const auto t = std::chrono::system_clock::time_point(
        std::chrono::microseconds(1'753'449'015'123'456LL));  // 2025-07-25T13:10:15.123456Z
    EXPECT_EQ(iso_time(t), "2025-07-25T13:10:15.1234560Z");
    EXPECT_EQ(iso_time(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.0000000Z");
}

TEST(MoonshareStableHash, MatchesThePlugin) {
    EXPECT_EQ(stable_hash(""), 23u);
    EXPECT_EQ(stable_hash("abc"), 781'547u);
    EXPECT_EQ(stable_hash("\xc3\xa9"), 946u);                // one UTF-16 unit
    EXPECT_EQ(stable_hash("\xf0\x9f\x98\x80"), 1'795'002u);  // two (a surrogate pair)
    // Wraps around at 32 bits, then takes the absolute value of the signed result.
    EXPECT_EQ(stable_hash("3f2504e0-4f89-11d3-9a0c-0305e82c3301"), 1'285'913'558u);
    EXPECT_EQ(stable_hash("Moonshare user with a long name"), 1'922'458'670u);
    EXPECT_EQ(instance_of("abc", 3), 2u);
    EXPECT_EQ(instance_of("\xf0\x9f\x98\x80", 3), 0u);
}

TEST(MoonshareConfigTest, DefaultsAreValid) {
    MoonshareConfig c;
    core::ConfigErrors errors;
    c.validate(errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(c.player_listen.size(), 3u);
    EXPECT_EQ(instance_name(0), "Alpha");
    EXPECT_EQ(instance_name(1), "Beta");
    EXPECT_EQ(instance_name(2), "Gamma");
}

TEST(MoonshareConfigTest, BadListensAreErrors) {
    MoonshareConfig c;
    c.token_listen = "nope";
    c.player_listen = {"127.0.0.1:5000", "bad"};
    core::ConfigErrors errors;
    c.validate(errors);
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_NE(errors[0].find("moonshare.token_listen"), std::string::npos);
    EXPECT_NE(errors[1].find("moonshare.player_listen"), std::string::npos);
    c = MoonshareConfig{};
    c.player_listen.clear();
    errors.clear();
    c.validate(errors);
    EXPECT_EQ(errors.size(), 1u);
}

TEST(MoonshareConfigTest, PlayerRouteTurnsCompressionOff) {
    core::WebSocketConfig ws;
    ws.compression = true;
    const auto s = player_route_settings(MoonshareConfig{}, ws);
    EXPECT_FALSE(s.compression);
}

TEST(MoonshareConfigTest, PlayerRouteHasNoByteRate) {
    // Files come at link speed, several in a row: only the message rate applies to /player.
    core::WebSocketConfig ws;
    ws.max_bytes_per_s = 1024;
    ws.max_messages_per_s = 7;
    const auto s = player_route_settings(MoonshareConfig{}, ws);
    EXPECT_EQ(s.max_bytes_per_s, 0U);
    EXPECT_DOUBLE_EQ(s.max_messages_per_s, 7);
}

}  // namespace
}  // namespace hearth::frontends::moonshare
