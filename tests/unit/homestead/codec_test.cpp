// The Homestead codec byte for byte: what Go's encoding/json would read and write.

#include "frontends/homestead/codec.hpp"
#include <chrono>
#include <random>

#include <gtest/gtest.h>

namespace hearth::frontends::homestead {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

std::string go_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

Clock::time_point at(std::int64_t unix_ns) {
    return Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(unix_ns)));
}

// 2025-12-08T10:30:00Z
constexpr std::int64_t kBase = 1'765'189'800LL * 1'000'000'000LL;

// ---- strings ------------------------------------------------------------------------------------

TEST(HomesteadCodec, StringsArePlainWhenNothingNeedsEscaping) {
    EXPECT_EQ(go_string(""), R"("")");
    EXPECT_EQ(go_string("hello world"), R"("hello world")");
    EXPECT_EQ(go_string("caf\xc3\xa9 \xf0\x9f\x94\xa5"), "\"caf\xc3\xa9 \xf0\x9f\x94\xa5\"");
    EXPECT_EQ(go_string("\x7f"), "\"\x7f\"");  // DEL is not escaped by Go
    EXPECT_EQ(go_string("a/b"), R"("a/b")");
}

TEST(HomesteadCodec, StringsEscapeLikeGo) {
    EXPECT_EQ(go_string("\"\\"), R"("\"\\")");
    EXPECT_EQ(go_string("\b\f\n\r\t"), R"("\b\f\n\r\t")");
    EXPECT_EQ(go_string(std::string("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
    EXPECT_EQ(go_string("<b>&amp;</b>"), R"("\u003cb\u003e\u0026amp;\u003c/b\u003e")");
    EXPECT_EQ(go_string("a\xe2\x80\xa8z\xe2\x80\xa9"), R"("a\u2028z\u2029")");
}

TEST(HomesteadCodec, InvalidUtf8BecomesOneReplacementPerByte) {
    EXPECT_EQ(go_string("a\xff"
                        "b"),
              R"("a\ufffdb")");
    EXPECT_EQ(go_string("\xc0\x80"), R"("\ufffd\ufffd")");                      // overlong
    EXPECT_EQ(go_string("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // a surrogate
    EXPECT_EQ(go_string("\xe2\x82"), R"("\ufffd\ufffd")");                      // truncated
    EXPECT_EQ(go_string("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
    EXPECT_EQ(go_string("\xe2\x82\xac"), "\"\xe2\x82\xac\"");  // the euro sign is fine
}

TEST(HomesteadCodec, CompactKeepsValuesAsSentAndEscapesHtml) {
    EXPECT_EQ(compact_json(" { \"a\" : [ 1 , 2.50 , -0 , 1e2 , 1E+2 ] ,\n\t\"b\" : null } "),
              R"({"a":[1,2.50,-0,1e2,1E+2],"b":null})");
    EXPECT_EQ(compact_json(R"({"s":"\u00e9\n\/ x <&> "})"),
              R"({"s":"\u00e9\n\/ x \u003c\u0026\u003e "})");
    EXPECT_EQ(compact_json("{\"s\":\"\xe2\x80\xa8\"}"), R"({"s":"\u2028"})");
    EXPECT_EQ(compact_json(R"({"k":"a \" b"})"), R"({"k":"a \" b"})");
    EXPECT_EQ(compact_json(R"({"nested":{"deep":[{"x":true,"y":false}]}})"),
              R"({"nested":{"deep":[{"x":true,"y":false}]}})");
}

// ---- times --------------------------------------------------------------------------------------

TEST(HomesteadCodec, TimesAreRfc3339NanoInUtcWithTrailingZerosTrimmed) {
    EXPECT_EQ(format_time(at(kBase)), "2025-12-08T10:30:00Z");
    EXPECT_EQ(format_time(at(kBase + 100'000'000)), "2025-12-08T10:30:00.1Z");
    EXPECT_EQ(format_time(at(kBase + 102'000'000)), "2025-12-08T10:30:00.102Z");
    EXPECT_EQ(format_time(at(kBase + 123'456'789)), "2025-12-08T10:30:00.123456789Z");
    EXPECT_EQ(format_time(at(kBase + 1)), "2025-12-08T10:30:00.000000001Z");
    EXPECT_EQ(format_time(at(0)), "1970-01-01T00:00:00Z");
    EXPECT_EQ(format_time(at(951'782'400LL * 1'000'000'000LL)), "2000-02-29T00:00:00Z");
    EXPECT_EQ(format_time(at(1'767'225'599LL * 1'000'000'000LL + 999'999'999)),
              "2025-12-31T23:59:59.999999999Z");
}

TEST(HomesteadCodec, Rfc3339ValidationFollowsGo) {
    for (const char* ok :
         {"2025-12-08T10:30:00Z", "2025-12-08T10:30:00.1Z", "2025-12-08T10:30:00.123456789012Z",
          "2025-12-08T10:30:00+01:00", "2025-12-08T10:30:00-23:59", "2024-02-29T00:00:00Z",
          "2025-12-08T10:30:00,5Z", "0000-01-01T00:00:00Z"}) {
        EXPECT_TRUE(valid_rfc3339(ok)) << ok;
    }
    for (const char* bad :
         {"", "2025-12-08", "2025-12-08 10:30:00Z", "2025-12-08T10:30:00", "2025-12-08T10:30:00z",
          "2025-13-08T10:30:00Z", "2025-02-29T00:00:00Z", "2025-12-32T00:00:00Z",
          "2025-12-08T24:00:00Z", "2025-12-08T10:60:00Z", "2025-12-08T10:30:60Z",
          "2025-12-08T10:30:00.Z", "2025-12-08T10:30:00+0100", "2025-12-08T10:30:00+24:00",
          "2025-12-08T10:30:00+01:60", "2025-12-08T10:30:00ZZ", "20a5-12-08T10:30:00Z",
          "2025/12/08T10:30:00Z"}) {
        EXPECT_FALSE(valid_rfc3339(bad)) << bad;
    }
}

// ---- fixed frames
// ---------------------------------------------------------------------------------

TEST(HomesteadCodec, FixedFramesAreByteExact) {
    EXPECT_EQ(encode_error(400, "Malformed handshake."), kMalformedHandshake);
    EXPECT_EQ(encode_error(400, "Malformed mod handshake."), kMalformedModHandshake);
    EXPECT_EQ(encode_error(400, "Malformed bot handshake."), kMalformedBotHandshake);
    EXPECT_EQ(encode_error(400, "Unknown handshake."), kUnknownHandshake);
    EXPECT_EQ(encode_error(409, "Bot already connected."), kBotAlreadyConnected);
    EXPECT_EQ(encode_error(400, "Malformed message."), kMalformedMessage);
    EXPECT_EQ(encode_error(401, "Invalid API key."), kInvalidApiKey);
    EXPECT_EQ(kMalformedMessage, "{\"code\":400,\"message\":\"Malformed message.\"}\n");
    EXPECT_EQ(encode_status("connected", Kind::kMod),
              "{\"status\":\"connected\",\"type\":\"mod\"}\n");
    EXPECT_EQ(encode_status("completed", Kind::kBot),
              "{\"status\":\"completed\",\"type\":\"bot\"}\n");
    EXPECT_EQ(encode_status("queued", Kind::kMod), "{\"status\":\"queued\",\"type\":\"mod\"}\n");
    EXPECT_EQ(encode_status("failed", Kind::kBot), "{\"status\":\"failed\",\"type\":\"bot\"}\n");
    EXPECT_EQ(kHealthy, "{\"status\":\"healthy\"}\n");
    EXPECT_EQ(handshake_error_frame(HandshakeError::kMalformed), kMalformedHandshake);
    EXPECT_EQ(handshake_error_frame(HandshakeError::kMalformedMod), kMalformedModHandshake);
    EXPECT_EQ(handshake_error_frame(HandshakeError::kMalformedBot), kMalformedBotHandshake);
    EXPECT_EQ(handshake_error_frame(HandshakeError::kUnknown), kUnknownHandshake);
}

// ---- handshake
// ------------------------------------------------------------------------------------

Handshake ok_handshake(std::string_view text) {
    auto r = parse_handshake(text);
    if (!std::holds_alternative<Handshake>(r)) {
        ADD_FAILURE() << "refused: " << text;
        return {};
    }
    return std::get<Handshake>(r);
}

HandshakeError refused(std::string_view text) {
    auto r = parse_handshake(text);
    if (!std::holds_alternative<HandshakeError>(r)) {
        ADD_FAILURE() << "accepted: " << text;
        return HandshakeError::kMalformed;
    }
    return std::get<HandshakeError>(r);
}

TEST(HomesteadCodec, ModAndBotHandshakes) {
    auto mod = ok_handshake(R"({"type":"mod","data":{"server_id":"S","channel_id":"C"}})");
    EXPECT_EQ(mod.kind, Kind::kMod);
    EXPECT_EQ(mod.server_id, "S");
    EXPECT_EQ(mod.channel_id, "C");
    auto bot = ok_handshake(" {\n \"type\" : \"bot\", \"data\": {\"bot_id\": \"discord-bot\"}}\n");
    EXPECT_EQ(bot.kind, Kind::kBot);
    EXPECT_EQ(bot.bot_id, "discord-bot");
    // Extra fields are ignored, as Go ignores unknown struct fields.
    ok_handshake(R"({"type":"bot","data":{"bot_id":"B","channel_id":"x"},"extra":[1,{"a":2}]})");
}

TEST(HomesteadCodec, HandshakeKeysMatchIgnoringCaseAndTheLastDuplicateWins) {
    auto hs = ok_handshake(R"({"TYPE":"mod","Data":{"Server_ID":"S","channel_id":"C"}})");
    EXPECT_EQ(hs.server_id, "S");
    hs = ok_handshake(R"({"type":"bot","type":"mod","data":{"server_id":"a","server_id":"b",)"
                      R"("channel_id":"C"}})");
    EXPECT_EQ(hs.kind, Kind::kMod);
    EXPECT_EQ(hs.server_id, "b");
    hs = ok_handshake(R"({"\u0074ype":"bot","data":{"bot_id":"\u0042\n"}})");
    EXPECT_EQ(hs.bot_id, "B\n");
}

TEST(HomesteadCodec, MalformedHandshakes) {
    for (const char* text :
         {"", "not json", "{", R"({"type":"mod"})", R"({"type":"mod","data":{})",
          R"({"type":"mod","data":{}} x)", R"([{"type":"mod"}])", "null", R"("mod")",
          R"({"type":5,"data":{}})", R"({"type":"mod","data":{"server_id":"S",}})",
          R"({"type":"mod",'data':{}})", "{\"type\":\"mod\",\"data\":{\"server_id\":\"a\x01\"}}"}) {
        EXPECT_EQ(refused(text), HandshakeError::kMalformed) << text;
    }
}

TEST(HomesteadCodec, MalformedModAndBotHandshakes) {
    for (const char* text : {R"({"type":"mod","data":{}})", R"({"type":"mod","data":null})",
                             R"({"type":"mod","data":{"server_id":"S"}})",
                             R"({"type":"mod","data":{"channel_id":"C"}})",
                             R"({"type":"mod","data":{"server_id":"","channel_id":"C"}})",
                             R"({"type":"mod","data":{"server_id":"S","channel_id":null}})",
                             R"({"type":"mod","data":{"server_id":"S","channel_id":7}})",
                             R"({"type":"mod","data":"S"})", R"({"type":"mod","data":[]})"}) {
        EXPECT_EQ(refused(text), HandshakeError::kMalformedMod) << text;
    }
    for (const char* text :
         {R"({"type":"bot","data":{}})", R"({"type":"bot","data":{"bot_id":""}})",
          R"({"type":"bot","data":{"channel_id":"C"}})", R"({"type":"bot","data":{"bot_id":true}})",
          R"({"type":"bot","data":1})"}) {
        EXPECT_EQ(refused(text), HandshakeError::kMalformedBot) << text;
    }
}

TEST(HomesteadCodec, UnknownHandshakes) {
    for (const char* text : {R"({"type":"admin","data":{}})", R"({"data":{"bot_id":"B"}})",
                             R"({"type":"","data":{}})", R"({"type":null,"data":{}})",
                             R"({"type":"Mod","data":{"server_id":"S","channel_id":"C"}})"}) {
        EXPECT_EQ(refused(text), HandshakeError::kUnknown) << text;
    }
}

// ---- messages
// ---------------------------------------------------------------------------------------

const Handshake kMod{Kind::kMod, "server-1", "C", ""};
const Handshake kBot{Kind::kBot, "", "", "discord-bot"};

constexpr std::string_view kModMessage =
    R"({"msg_id":"m-1","id":"server-1","destination":{"channel_id":"C"},)"
    R"("author":{"id":"player-uuid","name":"Steve"},"content":"hello","meta":{"world":"overworld"},)"
    R"("ts":"2025-12-08T10:30:00Z"})";

TEST(HomesteadCodec, ModMessageIsForwardedExactlyAsTheSpecShows) {
    auto m = parse_message(kMod, kModMessage);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->msg_id, "m-1");
    EXPECT_EQ(m->channel_id, "C");
    const auto prefix = encode_forward_prefix(Kind::kMod, *m, at(kBase + 100'000'000));
    EXPECT_TRUE(valid_forward_prefix(prefix));
    EXPECT_EQ(finish_forward(prefix, at(kBase + 102'000'000)),
              R"({"type":"mod","channel_id":"C","author":{"id":"player-uuid","name":"Steve"},)"
              R"("content":"hello","meta":{"world":"overworld"},"ts":"2025-12-08T10:30:00Z",)"
              R"("received_at":"2025-12-08T10:30:00.1Z","forwarded_at":"2025-12-08T10:30:00.102Z"})"
              "\n");
}

TEST(HomesteadCodec, BotMessageUsesItsIdAsTheChannelAndDefaultsAbsentFields) {
    auto m =
        parse_message(kBot, R"({"msg_id":"d-1","id":"C2","author":{"id":"u-1"},"content":"hi"})");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->channel_id, "C2");
    const auto out =
        finish_forward(encode_forward_prefix(Kind::kBot, *m, at(kBase)), at(kBase + 5));
    EXPECT_EQ(out,
              R"({"type":"bot","channel_id":"C2","author":{"id":"u-1","name":""},"content":"hi",)"
              R"("meta":{},"ts":"2025-12-08T10:30:00Z","received_at":"2025-12-08T10:30:00Z",)"
              R"("forwarded_at":"2025-12-08T10:30:00.000000005Z"})"
              "\n");
    // A bot's destination is ignored; null fields read as absent.
    m = parse_message(kBot,
                      R"({"msg_id":"d","id":"C","author":{"id":"u","name":null},"content":"x",)"
                      R"("destination":{"channel_id":"other"},"meta":null,"ts":null})");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->channel_id, "C");
    EXPECT_EQ(m->meta, "{}");
    EXPECT_EQ(m->ts, "");
}

TEST(HomesteadCodec, ForwardedStringsAreReencodedAndMetaIsCompactedAsSent) {
    auto m = parse_message(
        kBot,
        "{\"msg_id\":\"d\",\"id\":\"C\",\"author\":{\"id\":\"u\",\"name\":\"A\\u0026B <3\"},"
        "\"content\":\"\\u00e9\\ud83d\\udd25 \\ud800 x\\/y \xe2\x80\xa8\",\"meta\":{ \"n\" : "
        "1.50, \"h\":\"<i>\", \"u\":\"\\u00e9\" },\"ts\":\"2025-12-08T11:30:00.500+01:00\"}");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->author_name, "A&B <3");
    EXPECT_EQ(m->content, "\xc3\xa9\xf0\x9f\x94\xa5 \xef\xbf\xbd x/y \xe2\x80\xa8");
    EXPECT_EQ(m->meta, R"({"n":1.50,"h":"\u003ci\u003e","u":"\u00e9"})");
    const auto prefix = encode_forward_prefix(Kind::kBot, *m, at(kBase));
    EXPECT_EQ(prefix,
              "{\"type\":\"bot\",\"channel_id\":\"C\",\"author\":{\"id\":\"u\",\"name\":"
              "\"A\\u0026B \\u003c3\"},\"content\":\"\xc3\xa9\xf0\x9f\x94\xa5 \xef\xbf\xbd x/y "
              "\\u2028\",\"meta\":{\"n\":1.50,\"h\":\"\\u003ci\\u003e\",\"u\":\"\\u00e9\"},"
              "\"ts\":\"2025-12-08T11:30:00.500+01:00\",\"received_at\":\"2025-12-08T10:30:00Z\"");
}

TEST(HomesteadCodec, InvalidUtf8InsideStringsIsReplaced) {
    // Reachable through binary frames, which the original reads like text ones.
    auto m =
        parse_message(kBot,
                      "{\"msg_id\":\"d\",\"id\":\"C\",\"author\":{\"id\":\"u\"},\"content\":\"a\xff"
                      "b\",\"meta\":{\"k\":\"\xc0z\"}}");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->content,
              "a\xef\xbf\xbd"
              "b");
    EXPECT_EQ(m->meta, R"({"k":"\ufffdz"})");
}

TEST(HomesteadCodec, ValidMessagesOfEveryShape) {
    EXPECT_TRUE(parse_message(kMod,
                              R"({"msg_id":"m","id":"server-1","destination":{"channel_id":"C"},)"
                              R"("author":{"id":"p"},"content":"x"})"));
    // Case-insensitive keys, as Go reads them.
    EXPECT_TRUE(parse_message(kMod,
                              R"({"MSG_ID":"m","Id":"server-1","Destination":{"Channel_Id":"C"},)"
                              R"("Author":{"ID":"p"},"Content":"x"})"));
    // ts: empty means absent; offsets and fractions are kept as sent.
    auto m =
        parse_message(kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","ts":""})");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->ts, "");
}

TEST(HomesteadCodec, MalformedMessages) {
    const std::string ok_tail = R"("author":{"id":"p","name":"n"},"content":"x")";
    const std::vector<std::pair<const Handshake*, std::string>> cases = {
        {&kMod, "not json"},
        {&kMod, "[]"},
        {&kMod, "null"},
        {&kMod, R"({})"},
        {&kMod, R"({"id":"server-1","destination":{"channel_id":"C"},)" + ok_tail + "}"},  // msg_id
        {&kMod,
         R"({"msg_id":"","id":"server-1","destination":{"channel_id":"C"},)" + ok_tail + "}"},
        {&kMod, R"({"msg_id":"m","destination":{"channel_id":"C"},)" + ok_tail + "}"},  // id
        {&kMod, R"({"msg_id":"m","id":"other","destination":{"channel_id":"C"},)" + ok_tail + "}"},
        {&kMod, R"({"msg_id":"m","id":"server-1",)" + ok_tail + "}"},  // no destination
        {&kMod,
         R"({"msg_id":"m","id":"server-1","destination":{"channel_id":""},)" + ok_tail + "}"},
        {&kMod,
         R"({"msg_id":"m","id":"server-1","destination":{"channel_id":"D"},)" + ok_tail + "}"},
        {&kMod, R"({"msg_id":"m","id":"server-1","destination":"C",)" + ok_tail + "}"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"name":"n"},"content":"x"})"},  // author.id
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":""},"content":"x"})"},
        {&kBot, R"({"msg_id":"m","id":"C","content":"x"})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":"p","content":"x"})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"}})"},  // content
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":""})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":5})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p","name":1},"content":"x"})"},
        {&kBot, R"({"msg_id":1,"id":"C","author":{"id":"p"},"content":"x"})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","meta":[]})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","meta":"m"})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","ts":"yesterday"})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","ts":1765189800})"},
        {&kBot, R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x"} {})"},
        {&kBot, R"({"msg_id":"m","id":"","author":{"id":"p"},"content":"x"})"},
    };
    for (const auto& [hs, text] : cases) {
        EXPECT_FALSE(parse_message(*hs, text)) << text;
    }
}

TEST(HomesteadCodec, NestingIsLimitedLikeGo) {
    const auto with_meta_depth = [](int depth) {
        std::string meta;
        for (int i = 0; i < depth - 1; ++i) {
            meta += "[";
        }
        for (int i = 0; i < depth - 1; ++i) {
            meta += "]";
        }
        return R"({"msg_id":"m","id":"C","author":{"id":"p"},"content":"x","meta":{"a":)" + meta +
               "}}";
    };
    // The message object, meta and its arrays: 10,000 levels in all are accepted, 10,001 are not.
    EXPECT_TRUE(parse_message(kBot, with_meta_depth(9'999)));
    EXPECT_FALSE(parse_message(kBot, with_meta_depth(10'000)));
}

TEST(HomesteadCodec, EveryTruncationAndRandomMutationIsHandled) {
    // The reader is fed partial and corrupt input without crashing (ASan watches) and never
    // accepts a strict prefix of a valid message.
    const std::string text(kModMessage);
    for (std::size_t n = 0; n < text.size(); ++n) {
        EXPECT_FALSE(parse_message(kMod, text.substr(0, n))) << n;
        (void)parse_handshake(text.substr(0, n));
    }
    std::mt19937 rng(42);
    for (int i = 0; i < 20'000; ++i) {
        std::string mutated = text;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            mutated[rng() % mutated.size()] = static_cast<char>(rng() % 256);
        }
        if (auto m = parse_message(kMod, mutated)) {
            const auto out =
                finish_forward(encode_forward_prefix(Kind::kMod, *m, at(kBase)), at(kBase));
            EXPECT_TRUE(out.ends_with("Z\"}\n"));
        }
        (void)parse_handshake(mutated);
    }
}

TEST(HomesteadCodec, QueryValuesAreDecodedLikeGo) {
    EXPECT_EQ(query_value("api_key=gateway", "api_key"), "gateway");
    EXPECT_EQ(query_value("a=1&api_key=gate%77ay&api_key=second", "api_key"), "gateway");
    EXPECT_EQ(query_value("api_key=a+b%2Bc%20d", "api_key"), "a b+c d");
    EXPECT_EQ(query_value("api%5Fkey=x", "api_key"), "x");
    EXPECT_EQ(query_value("api_key", "api_key"), "");
    EXPECT_EQ(query_value("api_key=", "api_key"), "");
    EXPECT_EQ(query_value("", "api_key"), std::nullopt);
    EXPECT_EQ(query_value("other=1", "api_key"), std::nullopt);
    // A pair with a bad escape or a semicolon is skipped, as Go's ParseQuery skips it.
    EXPECT_EQ(query_value("api_key=%zz&api_key=ok", "api_key"), "ok");
    EXPECT_EQ(query_value("api_key=%4", "api_key"), std::nullopt);
    EXPECT_EQ(query_value("api_key=a;b&api_key=ok", "api_key"), "ok");
    EXPECT_EQ(query_value("&&api_key=ok&", "api_key"), "ok");
}

TEST(HomesteadCodec, StoredPrefixesAreRecognised) {
    auto m = parse_message(kMod, kModMessage);
    ASSERT_TRUE(m);
    EXPECT_TRUE(valid_forward_prefix(encode_forward_prefix(Kind::kMod, *m, at(kBase))));
    EXPECT_FALSE(valid_forward_prefix(""));
    EXPECT_FALSE(valid_forward_prefix("{\"type\":\"mod\"}"));
    EXPECT_FALSE(valid_forward_prefix("garbage"));
}

}  // namespace
}  // namespace hearth::frontends::homestead
