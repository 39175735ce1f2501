#include "frontends/dracosoft/codec.hpp"
#include <regex>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "frontends/dracosoft/dracosoft.hpp"

namespace hearth::frontends::dracosoft {
namespace {

namespace json = boost::json;

std::string header(std::uint32_t n) {
    std::string h(4, '\0');
    h[0] = static_cast<char>(n >> 24);
    h[1] = static_cast<char>(n >> 16);
    h[2] = static_cast<char>(n >> 8);
    h[3] = static_cast<char>(n);
    return h;
}

// Feeds `bytes` to a reader in pieces of `step` bytes and collects every frame.
std::vector<std::string> frames_of(const std::string& bytes, std::size_t step,
                                   bool* bad = nullptr) {
    FrameReader reader;
    std::vector<std::string> out;
    for (std::size_t i = 0; i < bytes.size(); i += step) {
        reader.feed(std::string_view(bytes).substr(i, step));
        for (;;) {
            auto r = reader.next();
            if (r.status == DecodeStatus::kNeedMore) {
                break;
            }
            if (r.status == DecodeStatus::kBadLength) {
                if (bad != nullptr) {
                    *bad = true;
                }
                return out;
            }
            out.emplace_back(r.payload);
        }
    }
    return out;
}

TEST(DracosoftCodec, EncodeFrameIsBigEndianLengthThenPayload) {
    EXPECT_EQ(encode_frame("{}"), std::string("\0\0\0\x02{}", 6));
    const std::string big(0x012345, 'x');
    const auto f = encode_frame(big);
    ASSERT_EQ(f.size(), 4 + big.size());
    EXPECT_EQ(f.substr(0, 4), std::string("\x00\x01\x23\x45", 4));
}

TEST(DracosoftCodec, DecodeNeedsTheWholeFrame) {
    const auto f = encode_frame(R"({"type":"ping"})");
    for (std::size_t n = 0; n < f.size(); ++n) {
        const auto r = decode_frame(std::string_view(f).substr(0, n));
        EXPECT_EQ(r.status, DecodeStatus::kNeedMore) << n;
        EXPECT_EQ(r.consumed, 0u);
    }
    const std::string more = f + "extra";
    const auto r = decode_frame(more);
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(r.consumed, f.size());
    EXPECT_EQ(r.payload, R"({"type":"ping"})");
}

TEST(DracosoftCodec, ReaderByteByByte) {
    const std::string a = R"({"type":"ping"})";
    const std::string b = R"({"type":"chat","message":"hi"})";
    const std::string c = "x";
    const auto bytes = encode_frame(a) + encode_frame(b) + encode_frame(c);
    for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 19u, 1000u}) {
        const auto frames = frames_of(bytes, step);
        ASSERT_EQ(frames.size(), 3u) << "step " << step;
        EXPECT_EQ(frames[0], a);
        EXPECT_EQ(frames[1], b);
        EXPECT_EQ(frames[2], c);
    }
}

TEST(DracosoftCodec, SeveralFramesInOneRead) {
    FrameReader reader;
    reader.feed(encode_frame("1") + encode_frame("22") + encode_frame("333").substr(0, 5));
    auto r = reader.next();
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(r.payload, "1");
    r = reader.next();
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(r.payload, "22");
    EXPECT_EQ(reader.next().status, DecodeStatus::kNeedMore);
    EXPECT_EQ(reader.buffered(), 5u);
    reader.feed("33");
    r = reader.next();
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(r.payload, "333");
    EXPECT_EQ(reader.buffered(), 0u);
}

TEST(DracosoftCodec, ZeroLengthIsInvalid) {
    EXPECT_EQ(decode_frame(header(0)).status, DecodeStatus::kBadLength);
    bool bad = false;
    const auto frames = frames_of(encode_frame("ok") + header(0) + encode_frame("never"), 1, &bad);
    EXPECT_TRUE(bad);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0], "ok");
}

TEST(DracosoftCodec, LengthLimit) {
    // 1 MiB exactly is allowed; one more byte is not, and is refused from the header alone.
    EXPECT_EQ(decode_frame(header(kMaxFrameBytes)).status, DecodeStatus::kNeedMore);
    EXPECT_EQ(decode_frame(header(kMaxFrameBytes + 1)).status, DecodeStatus::kBadLength);
    EXPECT_EQ(decode_frame(header(0xFFFFFFFF)).status, DecodeStatus::kBadLength);
    const auto max = encode_frame(std::string(kMaxFrameBytes, 'a'));
    const auto r = decode_frame(max);
    ASSERT_EQ(r.status, DecodeStatus::kFrame);
    EXPECT_EQ(r.payload.size(), kMaxFrameBytes);
}

TEST(DracosoftCodec, BadLengthIsFinal) {
    FrameReader reader;
    reader.feed(header(kMaxFrameBytes + 1).substr(0, 3));
    EXPECT_EQ(reader.next().status, DecodeStatus::kNeedMore);
    reader.feed(header(kMaxFrameBytes + 1).substr(3));
    EXPECT_EQ(reader.next().status, DecodeStatus::kBadLength);
    reader.feed(encode_frame("{}"));
    EXPECT_EQ(reader.next().status, DecodeStatus::kBadLength);
    EXPECT_EQ(reader.buffered(), 0u);
}

// ---- json.dumps ------------------------------------------------------------------------------

std::string dumps(std::string_view json_text) {
    return py_dumps(json::parse(json_text));
}

TEST(DracosoftPyDumps, SeparatorsAndOrder) {
    EXPECT_EQ(dumps(R"({"b":1,"a":[1,2,{"c":null}],"t":true,"f":false})"),
              R"({"b": 1, "a": [1, 2, {"c": null}], "t": true, "f": false})");
    EXPECT_EQ(dumps("{}"), "{}");
    EXPECT_EQ(dumps("[]"), "[]");
    EXPECT_EQ(dumps("-7"), "-7");
    EXPECT_EQ(dumps("18446744073709551615"), "18446744073709551615");
}

TEST(DracosoftPyDumps, FloatsLikePythonRepr) {
    EXPECT_EQ(dumps("1.0"), "1.0");
    EXPECT_EQ(dumps("1.5"), "1.5");
    EXPECT_EQ(dumps("0.1"), "0.1");
    EXPECT_EQ(dumps("-2.0"), "-2.0");
    EXPECT_EQ(dumps("1e15"), "1000000000000000.0");
    EXPECT_EQ(dumps("1e16"), "1e+16");
    EXPECT_EQ(dumps("0.0001"), "0.0001");
    EXPECT_EQ(dumps("0.00001"), "1e-05");
    EXPECT_EQ(dumps("1.5e300"), "1.5e+300");
}

TEST(DracosoftPyDumps, StringEscapesLikeEnsureAscii) {
    // json.dumps("\"\\\n\r\t\b\f\x01\x1f\x7f /<>&'")
    EXPECT_EQ(py_dumps(json::value(std::string("\"\\\n\r\t\b\f\x01\x1f\x7f /<>&'"))),
              R"("\"\\\n\r\t\b\f\u0001\u001f\u007f /<>&'")");
    // NUL inside a string.
    EXPECT_EQ(py_dumps(json::value(std::string("a\0b", 3))), R"("a\u0000b")");
    // json.dumps("é€\u2028") == '"\\u00e9\\u20ac\\u2028"'
    EXPECT_EQ(py_dumps(json::value("\xC3\xA9\xE2\x82\xAC\xE2\x80\xA8")), R"("\u00e9\u20ac\u2028")");
    // Above the BMP: a surrogate pair, lower-case hex. json.dumps("😀") == '"\\ud83d\\ude00"'
    EXPECT_EQ(py_dumps(json::value("\xF0\x9F\x98\x80")), R"("\ud83d\ude00")");
    EXPECT_EQ(py_dumps(json::value("\xF4\x8F\xBF\xBF")), R"("\udbff\udfff")");
    // Keys are escaped the same way.
    EXPECT_EQ(dumps(R"({"k\u00e9y":"v"})"), R"({"k\u00e9y": "v"})");
}

TEST(DracosoftPyDumps, InvalidUtf8BecomesReplacementCharacter) {
    std::string out;
    py_dumps_string(out,
                    "a\xFF"
                    "b\xC3");
    EXPECT_EQ(out, R"("a\ufffdb\ufffd")");
    out.clear();
    py_dumps_string(out, "\xED\xA0\x80");  // an encoded surrogate is not UTF-8
    EXPECT_EQ(out, R"("\ufffd\ufffd\ufffd")");
    out.clear();
    py_dumps_string(out, "\xC0\xAF");  // overlong
    EXPECT_EQ(out, R"("\ufffd\ufffd")");
}

// ---- server messages -------------------------------------------------------------------------

std::string payload_of(const std::string& frame) {
    const auto r = decode_frame(frame);
    EXPECT_EQ(r.status, DecodeStatus::kFrame);
    return std::string(r.payload);
}

TEST(DracosoftMessages, ExactBytes) {
    const std::string ts = "2026-11-21T23:19:17.484124";
    EXPECT_EQ(payload_of(pong_frame(ts)),
              R"({"type": "pong", "timestamp": "2026-11-21T23:19:17.484124"})");
    EXPECT_EQ(payload_of(auth_response_frame(true, "Login successful", ts, std::string("tok"))),
              R"({"type": "auth_response", "success": true, "message": "Login successful", )"
              R"("timestamp": "2026-11-21T23:19:17.484124", "token": "tok"})");
    EXPECT_EQ(payload_of(auth_response_frame(false, "Authentication required", ts)),
              R"({"type": "auth_response", "success": false, "message": )"
              R"("Authentication required", "timestamp": "2026-11-21T23:19:17.484124"})");
    EXPECT_EQ(payload_of(error_frame("Invalid JSON", ts)),
              R"({"type": "error", "message": "Invalid JSON", "timestamp": )"
              R"("2026-11-21T23:19:17.484124"})");
    EXPECT_EQ(payload_of(chat_frame("b\xC3\xB6", "say \"hi\"\n", ts)),
              R"({"type": "chat", "from": "b\u00f6", "message": "say \"hi\"\n", )"
              R"("timestamp": "2026-11-21T23:19:17.484124"})");
}

TEST(DracosoftMessages, HandBuiltEqualsPyDumps) {
    json::object o;
    o["type"] = "chat";
    o["from"] = "\xE2\x98\x83";
    o["message"] = "\x01\xF0\x9F\x98\x80";
    o["timestamp"] = "t";
    EXPECT_EQ(payload_of(chat_frame("\xE2\x98\x83", "\x01\xF0\x9F\x98\x80", "t")), py_dumps(o));
}

TEST(DracosoftMessages, TimestampIsLocalIsoWithMicroseconds) {
    const auto ts = iso_timestamp(std::chrono::system_clock::now());
    EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?)")))
        << ts;
    // Whole seconds have no fraction, as in Python's isoformat().
    const auto whole =
        iso_timestamp(std::chrono::system_clock::time_point(std::chrono::seconds(0)));
    EXPECT_TRUE(std::regex_match(whole, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)"))) << whole;
    const auto micro = iso_timestamp(std::chrono::system_clock::time_point(
        std::chrono::seconds(100) + std::chrono::microseconds(42)));
    EXPECT_TRUE(micro.ends_with(".000042")) << micro;
}

// ---- client messages -------------------------------------------------------------------------

TEST(DracosoftParse, ObjectsOnly) {
    EXPECT_EQ(parse_message(R"({"type":"ping"})").error, ParseError::kNone);
    EXPECT_EQ(parse_message("[1,2]").error, ParseError::kNotObject);
    EXPECT_EQ(parse_message("\"s\"").error, ParseError::kNotObject);
    EXPECT_EQ(parse_message("3").error, ParseError::kNotObject);
    EXPECT_EQ(parse_message("null").error, ParseError::kNotObject);
    EXPECT_EQ(parse_message("{").error, ParseError::kInvalidJson);
    EXPECT_EQ(parse_message("not json").error, ParseError::kInvalidJson);
    EXPECT_EQ(parse_message("{\"a\":\"\xFF\"}").error, ParseError::kInvalidJson);
    EXPECT_EQ(parse_message(R"({"a":1} x)").error, ParseError::kInvalidJson);
    // Deep nesting is fine up to Python's neighbourhood.
    EXPECT_EQ(parse_message(std::string(500, '[') + std::string(500, ']')).error,
              ParseError::kNotObject);
}

TEST(DracosoftParse, StringFields) {
    const auto p = parse_message(R"({"a":"x","b":"","c":3,"d":null})");
    ASSERT_EQ(p.error, ParseError::kNone);
    EXPECT_EQ(string_field(p.object, "a"), "x");
    EXPECT_EQ(string_field(p.object, "b"), std::nullopt);
    EXPECT_EQ(string_field(p.object, "c"), std::nullopt);
    EXPECT_EQ(string_field(p.object, "d"), std::nullopt);
    EXPECT_EQ(string_field(p.object, "e"), std::nullopt);
}

TEST(DracosoftConfigSection, DefaultsAndValidation) {
    DracosoftConfig c;
    EXPECT_FALSE(c.enabled);
    EXPECT_EQ(c.listen, "0.0.0.0:8889");
    EXPECT_EQ(c.client_timeout_s, 300);
    core::ConfigErrors errors;
    c.validate(errors);
    EXPECT_TRUE(errors.empty());
    c.listen = "nope";
    c.validate(errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0].find("dracosoft.listen"), std::string::npos);
}

TEST(DracosoftConfigSection, RatesAreCheckedAsWebSocketsAre) {
    DracosoftConfig c;
    EXPECT_DOUBLE_EQ(c.max_messages_per_s, 1000);
    EXPECT_DOUBLE_EQ(c.message_burst, 2000);
    EXPECT_EQ(c.max_bytes_per_s, 1024 * 1024);
    EXPECT_EQ(c.bytes_burst, 2 * 1024 * 1024);
    c.max_messages_per_s = -1;
    core::ConfigErrors errors;
    c.validate(errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0],
              "dracosoft.max_messages_per_s: must be at least 0 (0 means unlimited), got -1.0");
    c.max_messages_per_s = 10;
    c.message_burst = 0.5;
    errors.clear();
    c.validate(errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(
        errors[0],
        "dracosoft.message_burst: must be at least 1 when max_messages_per_s is set, got 0.5");
    // Unlimited: the burst does not matter.
    c.max_messages_per_s = 0;
    c.message_burst = 0;
    errors.clear();
    c.validate(errors);
    EXPECT_TRUE(errors.empty());
}

}  // namespace
}  // namespace hearth::frontends::dracosoft
