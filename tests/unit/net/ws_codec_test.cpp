#include "net/ws_codec.hpp"
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

namespace hearth::net::ws {
namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;
using Type = FrameEvent::Type;

constexpr std::array<std::uint8_t, 4> kMask = {0x37, 0xFA, 0x21, 0x3D};
constexpr std::size_t kMiB = 1 << 20;

std::vector<std::uint8_t> bytes_of(std::string_view s) {
    return {s.begin(), s.end()};
}

std::string client(Opcode op, std::string_view payload, bool fin = true, bool rsv1 = false) {
    return encode_client_frame(op, payload, kMask, fin, rsv1);
}

// A masked frame header written by hand, for the encodings encode_client_frame refuses to make.
std::string raw_header(std::uint8_t b0, std::uint8_t len7, std::vector<std::uint8_t> ext = {},
                       bool masked = true) {
    std::string h;
    h.push_back(static_cast<char>(b0));
    h.push_back(static_cast<char>((masked ? 0x80 : 0x00) | len7));
    for (const std::uint8_t b : ext) {
        h.push_back(static_cast<char>(b));
    }
    if (masked) {
        h.append(reinterpret_cast<const char*>(kMask.data()), kMask.size());
    }
    return h;
}

std::string close_frame(std::uint16_t code, std::string_view reason = {}) {
    return client(Opcode::kClose, close_payload(code, reason));
}

// An event with its data copied out of the parser's or the caller's buffer.
struct Seen {
    Type type = Type::kNeedMore;
    MessageKind kind = MessageKind::kText;
    std::uint16_t code = 0;
    std::string data;

    // An error's reason is free text: only its code is compared.
    bool operator==(const Seen& o) const {
        return type == o.type && kind == o.kind && code == o.code &&
               (type == Type::kError || data == o.data);
    }
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
    return os << "{type=" << static_cast<int>(s.type) << " kind=" << static_cast<int>(s.kind)
              << " code=" << s.code << " data.size=" << s.data.size() << "}";
}

Seen seen(const FrameEvent& e) {
    Seen s{e.type, MessageKind::kText, e.code, std::string(e.data)};
    if (e.type == Type::kMessage) {
        s.kind = e.kind;
    }
    return s;
}

Seen message(std::string_view data, MessageKind kind = MessageKind::kText) {
    return {Type::kMessage, kind, 0, std::string(data)};
}
Seen ping(std::string_view data) {
    return {Type::kPing, MessageKind::kText, 0, std::string(data)};
}
Seen pong(std::string_view data) {
    return {Type::kPong, MessageKind::kText, 0, std::string(data)};
}
Seen closed(std::uint16_t code, std::string_view reason = {}) {
    return {Type::kClose, MessageKind::kText, code, std::string(reason)};
}
Seen error(std::uint16_t code) {
    return {Type::kError, MessageKind::kText, code, {}};
}

struct Fed {
    std::vector<Seen> events;
    std::vector<std::size_t> consumed;  // per event
    std::size_t left_over = 0;          // bytes still in the caller's buffer at the end
};

// The caller's read loop: `wire` arrives `step` bytes at a time into a buffer; after each arrival
// `next` runs until kNeedMore, and the consumed prefix is erased after every call.
Fed feed(FrameParser& parser, std::string_view wire, std::size_t step) {
    Fed fed;
    std::vector<std::uint8_t> buffer;
    std::size_t absorbed = 0;  // consumed by kNeedMore results since the last event
    for (std::size_t i = 0; i < wire.size(); i += step) {
        const std::string_view chunk = wire.substr(i, step);
        buffer.insert(buffer.end(), chunk.begin(), chunk.end());
        for (;;) {
            auto [event, consumed] = parser.next(buffer);
            EXPECT_LE(consumed, buffer.size());
            consumed = std::min(consumed, buffer.size());
            const Seen s = seen(event);
            buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
            if (s.type == Type::kNeedMore) {
                absorbed += consumed;
                break;
            }
            fed.events.push_back(s);
            fed.consumed.push_back(absorbed + consumed);
            absorbed = 0;
            if (s.type == Type::kError) {
                fed.left_over = buffer.size();
                return fed;
            }
        }
    }
    fed.left_over = buffer.size();
    return fed;
}

// Feeds `wire` whole and in several split sizes to fresh parsers; every way must give `expected`.
void expect_events(std::string_view wire, const std::vector<Seen>& expected, bool deflate = false,
                   std::size_t max_message_bytes = kMiB) {
    for (const std::size_t step : {wire.size() + 1, std::size_t{1}, std::size_t{2}, std::size_t{3},
                                   std::size_t{5}, std::size_t{7}, std::size_t{64}}) {
        Inflater inflater;
        FrameParser parser({max_message_bytes}, deflate, &inflater);
        const Fed fed = feed(parser, wire, std::max<std::size_t>(step, 1));
        EXPECT_EQ(fed.events, expected) << "step " << step;
        if (!expected.empty() && expected.back().type != Type::kError) {
            EXPECT_EQ(fed.left_over, 0U) << "step " << step;
        }
    }
}

// Parses one whole frame: every strict prefix must be kNeedMore consuming nothing and leaving the
// bytes alone; the whole frame gives one event consuming exactly the frame.
Seen parse_growing(std::string_view wire, bool deflate = false, std::size_t limit = kMiB) {
    Inflater inflater;
    FrameParser parser({limit}, deflate, &inflater);
    std::vector<std::uint8_t> buffer = bytes_of(wire);
    const std::vector<std::uint8_t> original = buffer;
    for (std::size_t n = 0; n < buffer.size(); ++n) {
        const auto [event, consumed] = parser.next(std::span(buffer.data(), n));
        if (event.type != Type::kNeedMore || consumed != 0) {
            ADD_FAILURE() << "prefix " << n << " of " << wire.size() << ": " << seen(event)
                          << " consumed " << consumed;
            return seen(event);
        }
    }
    EXPECT_EQ(buffer, original) << "an incomplete frame was modified";
    const auto [event, consumed] = parser.next(buffer);
    EXPECT_EQ(consumed, event.type == Type::kError ? 0 : wire.size());
    return seen(event);
}

std::string text_of_size(std::size_t n) {
    std::string s;
    s.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        s.push_back(static_cast<char>('a' + i % 26));
    }
    return s;
}

std::string binary_of_size(std::size_t n, std::uint32_t seed = 1) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) {
        c = static_cast<char>(rng() & 0xFF);
    }
    return s;
}

// ---- small functions ----

TEST(WsAcceptKey, Rfc6455Example) {
    // RFC 6455 section 1.3: SHA-1 b3 7a 4f 2c c0 62 4f 16 90 f6 ..., base64 below.
    EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsAcceptKey, AnotherKey) {
    // Computed independently (Python hashlib and base64).
    EXPECT_EQ(accept_key("wDqumtseNBJdhkihL6PW7w=="), "0FFP+2nmNIf/h+4BP36k9uzrYGk=");
}

TEST(WsEncodeHeader, LengthEncodings) {
    struct Case {
        std::uint64_t length;
        std::vector<std::uint8_t> expected;
    };
    const Case cases[] = {
        {0, {0x81, 0x00}},
        {1, {0x81, 0x01}},
        {125, {0x81, 0x7D}},
        {126, {0x81, 0x7E, 0x00, 0x7E}},
        {127, {0x81, 0x7E, 0x00, 0x7F}},
        {65535, {0x81, 0x7E, 0xFF, 0xFF}},
        {65536, {0x81, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}},
        {0x0102030405060708ULL, {0x81, 0x7F, 1, 2, 3, 4, 5, 6, 7, 8}},
    };
    for (const Case& c : cases) {
        std::array<std::uint8_t, kMaxHeaderBytes> out{};
        const std::size_t n = encode_header(out, Opcode::kText, true, false, c.length);
        EXPECT_EQ(std::vector<std::uint8_t>(out.begin(), out.begin() + static_cast<long>(n)),
                  c.expected)
            << c.length;
    }
}

TEST(WsEncodeHeader, FirstByteBits) {
    std::array<std::uint8_t, kMaxHeaderBytes> out{};
    EXPECT_EQ(encode_header(out, Opcode::kBinary, false, false, 3), 2U);
    EXPECT_EQ(out[0], 0x02);
    encode_header(out, Opcode::kText, true, true, 3);
    EXPECT_EQ(out[0], 0xC1);
    encode_header(out, Opcode::kContinuation, true, false, 3);
    EXPECT_EQ(out[0], 0x80);
    encode_header(out, Opcode::kClose, true, false, 2);
    EXPECT_EQ(out[0], 0x88);
    encode_header(out, Opcode::kPong, true, false, 0);
    EXPECT_EQ(out[0], 0x8A);
    EXPECT_EQ(out[1], 0x00);  // server frames are not masked
}

TEST(WsEncodeFrame, ServerFrame) {
    EXPECT_EQ(encode_frame(Opcode::kText, "hi"), "\x81\x02hi"sv);
    EXPECT_EQ(encode_frame(Opcode::kPing, ""), "\x89\x00"sv);
    const std::string big = encode_frame(Opcode::kBinary, std::string(300, 'x'), false, true);
    EXPECT_EQ(big.substr(0, 4), "\x42\x7E\x01\x2C"sv);
    EXPECT_EQ(big.size(), 304U);
}

TEST(WsEncodeFrame, ClientFrameRfcExample) {
    // RFC 6455 section 5.7: a masked "Hello".
    const std::string frame = encode_client_frame(Opcode::kText, "Hello", {0x37, 0xfa, 0x21, 0x3d});
    EXPECT_EQ(frame, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"sv);
}

TEST(WsClosePayload, CodeAndReason) {
    EXPECT_EQ(close_payload(1000, ""), "\x03\xE8"sv);
    EXPECT_EQ(close_payload(4001, "bye"),
              "\x0F\xA1"
              "bye"sv);
    const std::string exact(123, 'r');
    EXPECT_EQ(close_payload(1000, exact).size(), 125U);
}

TEST(WsClosePayload, TruncatesAtCharacterBoundary) {
    EXPECT_EQ(close_payload(1000, std::string(200, 'r')).size(), 125U);
    // 122 ASCII bytes then a 2-byte character: 124 bytes do not fit, the cut falls before it.
    const std::string reason = std::string(122, 'r') + "\xC3\xA9" + "tail";
    const std::string p = close_payload(1001, reason);
    EXPECT_EQ(p.size(), 124U);
    EXPECT_EQ(p.substr(2), std::string(122, 'r'));
    // A 4-byte character straddling the limit.
    const std::string emoji = std::string(121, 'r') + "\xF0\x9F\x98\x80";
    EXPECT_EQ(close_payload(1001, emoji).substr(2), std::string(121, 'r'));
    // Characters that end exactly at the limit are kept.
    const std::string fits = std::string(120, 'r') + "\xE2\x82\xAC" + "x";
    EXPECT_EQ(close_payload(1001, fits).substr(2), std::string(120, 'r') + "\xE2\x82\xAC");
}

// ---- byte by byte ----

TEST(WsParserByteByByte, EveryFrameKind) {
    EXPECT_EQ(parse_growing(client(Opcode::kText, "hello")), message("hello"));
    EXPECT_EQ(parse_growing(client(Opcode::kText, "")), message(""));
    EXPECT_EQ(parse_growing(client(Opcode::kBinary, "\x00\xFF\x80"sv)),
              message("\x00\xFF\x80"sv, MessageKind::kBinary));
    EXPECT_EQ(parse_growing(client(Opcode::kPing, "are you there")), ping("are you there"));
    EXPECT_EQ(parse_growing(client(Opcode::kPing, "")), ping(""));
    EXPECT_EQ(parse_growing(client(Opcode::kPong, "yes")), pong("yes"));
    EXPECT_EQ(parse_growing(client(Opcode::kClose, "")), closed(1005));
    EXPECT_EQ(parse_growing(close_frame(1000)), closed(1000));
    EXPECT_EQ(parse_growing(close_frame(4000, "game over \xE2\x9C\x93")),
              closed(4000, "game over \xE2\x9C\x93"));
    EXPECT_EQ(parse_growing(client(Opcode::kPing, std::string(125, 'p'))),
              ping(std::string(125, 'p')));
}

TEST(WsParserByteByByte, CompressedFrame) {
    const std::string text = "{\"op\":\"chat\",\"text\":\"hello hello hello hello\"}";
    const std::string wire = client(Opcode::kText, deflate_message(text), true, true);
    EXPECT_EQ(parse_growing(wire, true), message(text));
}

TEST(WsParserByteByByte, LengthBoundaries) {
    struct Case {
        std::size_t length;
        std::size_t header;
    };
    for (const Case c : {Case{0, 6}, Case{1, 6}, Case{125, 6}, Case{126, 8}, Case{127, 8},
                         Case{65535, 8}, Case{65536, 14}, Case{70000, 14}}) {
        for (const Opcode op : {Opcode::kText, Opcode::kBinary}) {
            const std::string payload =
                op == Opcode::kText ? text_of_size(c.length) : binary_of_size(c.length);
            const std::string wire = client(op, payload);
            ASSERT_EQ(wire.size(), c.header + c.length);
            const MessageKind kind =
                op == Opcode::kText ? MessageKind::kText : MessageKind::kBinary;
            EXPECT_EQ(parse_growing(wire), message(payload, kind)) << c.length;
        }
    }
}

TEST(WsParser, SingleFrameIsUnmaskedInPlaceWithoutCopy) {
    FrameParser parser({}, false, nullptr);
    std::vector<std::uint8_t> buffer = bytes_of(client(Opcode::kBinary, std::string(300, 'z')));
    const auto [event, consumed] = parser.next(buffer);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(consumed, buffer.size());
    EXPECT_EQ(static_cast<const void*>(event.data.data()),
              static_cast<const void*>(buffer.data() + 8));
    EXPECT_EQ(event.data, std::string(300, 'z'));
}

TEST(WsParser, UnmasksEveryLengthAndAlignment) {
    for (std::size_t n = 0; n <= 40; ++n) {
        const std::string payload = binary_of_size(n, static_cast<std::uint32_t>(n + 7));
        // A leading pad byte puts the payload at every alignment relative to 8.
        for (std::size_t pad = 0; pad < 8; ++pad) {
            FrameParser parser({}, false, nullptr);
            std::vector<std::uint8_t> buffer(pad, 0);
            const std::string wire = encode_client_frame(
                Opcode::kBinary, payload, {static_cast<std::uint8_t>(n), 0x9C, 0x00, 0xF1});
            buffer.insert(buffer.end(), wire.begin(), wire.end());
            const auto [event, consumed] = parser.next(std::span(buffer).subspan(pad));
            ASSERT_EQ(event.type, Type::kMessage);
            EXPECT_EQ(consumed, wire.size());
            EXPECT_EQ(event.data, payload) << n << " " << pad;
        }
    }
}

TEST(WsParser, SeveralFramesInOneBuffer) {
    const std::string wire = client(Opcode::kText, "one") + client(Opcode::kPing, "p") +
                             client(Opcode::kBinary, "two") + close_frame(1000, "done");
    expect_events(wire, {message("one"), ping("p"), message("two", MessageKind::kBinary),
                         closed(1000, "done")});
}

// ---- fragmentation ----

TEST(WsParserFragments, TextSplitInsideACharacter) {
    // "h€llo 😀": the euro sign and the emoji are each cut across fragments.
    const std::string text =
        "h\xE2\x82\xAC"
        "llo \xF0\x9F\x98\x80";
    const std::string wire = client(Opcode::kText, text.substr(0, 2), false) +
                             client(Opcode::kContinuation, text.substr(2, 7), false) +
                             client(Opcode::kContinuation, text.substr(9, 1), false) +
                             client(Opcode::kContinuation, text.substr(10), true);
    expect_events(wire, {message(text)});
}

TEST(WsParserFragments, ConsumedCountsEveryFragment) {
    const std::string f1 = client(Opcode::kBinary, "abc", false);
    const std::string f2 = client(Opcode::kContinuation, "def", false);
    const std::string f3 = client(Opcode::kContinuation, "ghi", true);
    FrameParser parser({}, false, nullptr);

    // Whole first fragment and part of the second: the first is absorbed, the second left alone.
    std::vector<std::uint8_t> buffer = bytes_of(f1 + f2.substr(0, 5));
    auto [event, consumed] = parser.next(buffer);
    EXPECT_EQ(event.type, Type::kNeedMore);
    EXPECT_EQ(consumed, f1.size());

    buffer = bytes_of(f2 + f3);
    std::tie(event, consumed) = parser.next(buffer);
    EXPECT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.kind, MessageKind::kBinary);
    EXPECT_EQ(event.data, "abcdefghi");
    EXPECT_EQ(consumed, f2.size() + f3.size());
}

TEST(WsParserFragments, ControlFramesBetweenFragments) {
    const std::string f1 = client(Opcode::kText, "Hel", false);
    const std::string p = client(Opcode::kPing, "ping!");
    const std::string f2 = client(Opcode::kContinuation, "lo, ", false);
    const std::string q = client(Opcode::kPong, "");
    const std::string f3 = client(Opcode::kContinuation, "world", true);
    const std::string wire = f1 + p + f2 + q + f3;
    expect_events(wire, {ping("ping!"), pong(""), message("Hello, world")});

    FrameParser parser({}, false, nullptr);
    const Fed fed = feed(parser, wire, wire.size());
    EXPECT_EQ(fed.consumed,
              (std::vector<std::size_t>{f1.size() + p.size(), f2.size() + q.size(), f3.size()}));
}

TEST(WsParserFragments, CloseBetweenFragments) {
    const std::string wire = client(Opcode::kBinary, "ab", false) + close_frame(1001, "away");
    expect_events(wire, {closed(1001, "away")});
}

TEST(WsParserFragments, EmptyFragments) {
    const std::string wire =
        client(Opcode::kText, "", false) + client(Opcode::kContinuation, "", false) +
        client(Opcode::kContinuation, "x", false) + client(Opcode::kContinuation, "", true);
    expect_events(wire, {message("x")});
}

TEST(WsParserFragments, LargeMessageBufferIsReleased) {
    const std::string payload = text_of_size(300000);
    const std::string wire = client(Opcode::kText, payload.substr(0, 100000), false) +
                             client(Opcode::kContinuation, payload.substr(100000), true) +
                             client(Opcode::kText, "next");
    FrameParser parser({}, false, nullptr);
    std::vector<std::uint8_t> buffer = bytes_of(wire);
    auto [event, consumed] = parser.next(buffer);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, payload);
    EXPECT_GE(parser.buffered_capacity(), payload.size());
    std::tie(event, consumed) = parser.next(std::span(buffer).subspan(consumed));
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, "next");
    EXPECT_LE(parser.buffered_capacity(), 2 * FrameParser::kRetainedBufferBytes);
}

// ---- protocol errors ----

struct ErrorCase {
    std::string_view name;
    std::string wire;
    std::uint16_t code;
    bool deflate = false;
    std::size_t limit = kMiB;
};

std::vector<ErrorCase> error_cases() {
    std::vector<ErrorCase> cases = {
        {"unmasked text", raw_header(0x81, 2, {}, false) + "hi", 1002},
        {"unmasked ping", raw_header(0x89, 0, {}, false), 1002},
        {"RSV2", raw_header(0xA1, 0), 1002},
        {"RSV3", raw_header(0x91, 0), 1002},
        {"RSV2 and RSV3 with deflate", raw_header(0xB1, 0), 1002, true},
        {"RSV1 without deflate", client(Opcode::kText, "x", true, true), 1002},
        {"RSV1 on a continuation",
         client(Opcode::kText, deflate_message("ab"), false, true) +
             client(Opcode::kContinuation, "", true, true),
         1002, true},
        {"RSV1 on a ping", client(Opcode::kPing, "", true, true), 1002, true},
        {"RSV1 on a close", client(Opcode::kClose, "", true, true), 1002, true},
        {"fragmented ping", client(Opcode::kPing, "x", false), 1002},
        {"fragmented close", client(Opcode::kClose, "", false), 1002},
        {"ping of 126 bytes", raw_header(0x89, 126, {0, 126}) + std::string(126, 'p'), 1002},
        {"pong with a 64-bit length", raw_header(0x8A, 127, {0, 0, 0, 0, 0, 1, 0, 0}), 1002},
        {"continuation without a message", client(Opcode::kContinuation, "x"), 1002},
        {"text inside a fragmented text",
         client(Opcode::kText, "a", false) + client(Opcode::kText, "b"), 1002},
        {"binary inside a fragmented text",
         client(Opcode::kText, "a", false) + client(Opcode::kBinary, "b"), 1002},
        {"continuation after a complete message",
         client(Opcode::kText, "a") + client(Opcode::kContinuation, "b"), 1002},
        {"64-bit length with the top bit set", raw_header(0x82, 127, {0x80, 0, 0, 0, 0, 0, 0, 1}),
         1002, false, std::numeric_limits<std::size_t>::max()},
        {"16-bit length of 125", raw_header(0x82, 126, {0, 125}) + std::string(125, 'x'), 1002},
        {"16-bit length of 0", raw_header(0x82, 126, {0, 0}), 1002},
        {"64-bit length of 65535",
         raw_header(0x82, 127, {0, 0, 0, 0, 0, 0, 0xFF, 0xFF}) + std::string(65535, 'x'), 1002},
        {"64-bit length of 5", raw_header(0x82, 127, {0, 0, 0, 0, 0, 0, 0, 5}) + "hello", 1002},
        {"invalid UTF-8 text", client(Opcode::kText, "ok \xC0\xAF"), 1007},
        {"surrogate in text", client(Opcode::kText, "\xED\xA0\x80"), 1007},
        {"truncated UTF-8 at the end of a message", client(Opcode::kText, "ab\xE2\x82"), 1007},
        {"invalid UTF-8 across fragments",
         client(Opcode::kText, "ab\xE2", false) + client(Opcode::kContinuation, "\x82(", true),
         1007},
        {"close with a 1-byte payload", client(Opcode::kClose, "\x03"), 1002},
        {"close reason not UTF-8", client(Opcode::kClose, "\x03\xE8\xFF"), 1007},
        {"frame over the limit", client(Opcode::kBinary, std::string(101, 'x')), 1009, false, 100},
        {"fragments over the limit",
         client(Opcode::kText, std::string(60, 'x'), false) +
             client(Opcode::kContinuation, std::string(41, 'x')),
         1009, false, 100},
        {"empty message with a zero limit", client(Opcode::kText, "x"), 1009, false, 0},
        {"corrupt deflate data", client(Opcode::kText, "\xFF\xFF\xFF\xFF", true, true), 1007, true},
        {"compressed text that is not UTF-8",
         client(Opcode::kText, deflate_message("bad \xFF byte"), true, true), 1007, true},
        {"compressed message over the limit",
         client(Opcode::kBinary, deflate_message(std::string(101, 'x')), true, true), 1009, true,
         100},
    };
    for (const std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        cases.push_back(
            {"unknown opcode", raw_header(static_cast<std::uint8_t>(0x80 | op), 0), 1002});
    }
    for (const std::uint16_t code :
         {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        const char payload[2] = {static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
        cases.push_back(
            {"invalid close code", client(Opcode::kClose, std::string(payload, 2)), 1002});
    }
    return cases;
}

TEST(WsParserErrors, EachRuleWithItsCloseCode) {
    for (const ErrorCase& c : error_cases()) {
        SCOPED_TRACE(std::string(c.name));
        for (const std::size_t step : {c.wire.size(), std::size_t{1}}) {
            Inflater inflater;
            FrameParser parser({c.limit}, c.deflate, &inflater);
            const Fed fed = feed(parser, c.wire, step);
            ASSERT_FALSE(fed.events.empty()) << "step " << step;
            EXPECT_EQ(fed.events.back().type, Type::kError) << "step " << step;
            EXPECT_EQ(fed.events.back().code, c.code) << "step " << step;
            EXPECT_FALSE(fed.events.back().data.empty()) << "a reason is given";
            // Sticky: the parser refuses to go on.
            std::vector<std::uint8_t> more = bytes_of(client(Opcode::kText, "more"));
            const auto [again, consumed] = parser.next(more);
            EXPECT_EQ(again.type, Type::kError);
            EXPECT_EQ(again.code, c.code);
            EXPECT_EQ(consumed, 0U);
        }
    }
}

TEST(WsParserErrors, ValidCloseCodes) {
    for (const std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                     1013, 1014, 3000, 3999, 4000, 4999}) {
        EXPECT_EQ(parse_growing(close_frame(code, "r")), closed(code, "r")) << code;
    }
}

TEST(WsParserErrors, DetectedFromTheFirstTwoBytes) {
    // These need no more than the first two bytes to be refused.
    for (const std::string_view two :
         {"\x01\x00"sv, "\xA1\x80"sv, "\x83\x80"sv, "\x09\x80"sv, "\x89\xFE"sv, "\x80\x80"sv}) {
        FrameParser parser({}, false, nullptr);
        std::vector<std::uint8_t> buffer = bytes_of(two);
        const auto [event, consumed] = parser.next(buffer);
        EXPECT_EQ(event.type, Type::kError) << static_cast<int>(two[0]);
        EXPECT_EQ(event.code, 1002);
        EXPECT_EQ(consumed, 0U);
    }
}

TEST(WsParserErrors, OversizeFrameRefusedFromItsHeader) {
    // Only the header has arrived: the payload is never waited for, let alone buffered.
    {
        FrameParser parser({1000}, false, nullptr);
        std::vector<std::uint8_t> header = bytes_of(raw_header(0x82, 126, {0x03, 0xE9}));
        header.resize(4);  // not even the mask yet
        const auto [event, consumed] = parser.next(header);
        EXPECT_EQ(event.type, Type::kError);
        EXPECT_EQ(event.code, 1009);
        EXPECT_EQ(consumed, 0U);
    }
    {
        FrameParser parser({kMiB}, false, nullptr);
        std::vector<std::uint8_t> header =
            bytes_of(raw_header(0x82, 127, {0x40, 0, 0, 0, 0, 0, 0, 0}));
        header.resize(10);
        const auto [event, consumed] = parser.next(header);
        EXPECT_EQ(event.type, Type::kError);
        EXPECT_EQ(event.code, 1009);
    }
    {
        // The second fragment's header pushes the total over.
        FrameParser parser({100}, false, nullptr);
        std::vector<std::uint8_t> buffer = bytes_of(
            client(Opcode::kText, std::string(90, 'x'), false) + raw_header(0x80, 11).substr(0, 2));
        const auto [event, consumed] = parser.next(buffer);
        EXPECT_EQ(event.type, Type::kError);
        EXPECT_EQ(event.code, 1009);
        EXPECT_EQ(consumed, 96U);  // the first fragment, absorbed before the offending frame
    }
}

TEST(WsParserErrors, MessageExactlyAtTheLimit) {
    expect_events(client(Opcode::kText, std::string(100, 'x')), {message(std::string(100, 'x'))},
                  false, 100);
    expect_events(client(Opcode::kText, std::string(50, 'x'), false) +
                      client(Opcode::kContinuation, std::string(50, 'y')),
                  {message(std::string(50, 'x') + std::string(50, 'y'))}, false, 100);
}

// ---- permessage-deflate ----

std::string json_like(std::size_t n) {
    std::string s = "[";
    for (int i = 0; s.size() < n; ++i) {
        s += "{\"id\":" + std::to_string(i) + ",\"name\":\"player" + std::to_string(i % 17) +
             "\",\"x\":" + std::to_string(i * 37 % 1000) + ",\"online\":true},";
    }
    s.back() = ']';
    return s;
}

std::string raw_deflate_finish(std::string_view data) {
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(out.size() - zs.avail_out);
    deflateEnd(&zs);
    return out;
}

TEST(WsDeflate, RoundTripThroughInflater) {
    Inflater inflater;
    for (const std::string& m :
         {std::string(), std::string("a"), json_like(2048), binary_of_size(100000),
          std::string(500000, '\0'), text_of_size(70000)}) {
        const std::string compressed = deflate_message(m);
        ASSERT_GE(compressed.size(), 1U);
        if (compressed.size() >= 4) {
            EXPECT_NE(compressed.substr(compressed.size() - 4), "\x00\x00\xFF\xFF"sv);
        }
        std::string out = "stale";
        EXPECT_EQ(inflater.inflate(compressed, m.size(), out), Inflater::Status::kOk);
        EXPECT_EQ(out, m);
        if (!m.empty()) {
            EXPECT_EQ(inflater.inflate(compressed, m.size() - 1, out), Inflater::Status::kTooBig);
        }
    }
}

TEST(WsDeflate, CompressesJson) {
    const std::string m = json_like(2048);
    EXPECT_LT(deflate_message(m).size(), m.size() / 3);
}

TEST(WsDeflate, EmptyMessageForms) {
    Inflater inflater;
    std::string out;
    // What RFC 7692 7.2.3.6 describes, what older zlib sync flushes give, and nothing at all.
    for (const std::string_view c : {"\x00"sv, "\x02\x00"sv, ""sv, "\x03\x00"sv}) {
        out = "stale";
        EXPECT_EQ(inflater.inflate(c, 100, out), Inflater::Status::kOk) << c.size();
        EXPECT_EQ(out, "");
    }
    const std::string empty = deflate_message("");
    EXPECT_EQ(inflater.inflate(empty, 0, out), Inflater::Status::kOk);
    EXPECT_EQ(out, "");
}

TEST(WsDeflate, AcceptsFinalBlockStreams) {
    // A sender may end with BFINAL set (RFC 7692 7.2.3.3); what follows it is ignored.
    Inflater inflater;
    std::string out;
    const std::string m = json_like(3000);
    const std::string finished = raw_deflate_finish(m);
    EXPECT_EQ(inflater.inflate(finished, m.size(), out), Inflater::Status::kOk);
    EXPECT_EQ(out, m);
    EXPECT_EQ(inflater.inflate(finished + '\x00', m.size(), out), Inflater::Status::kOk);
    EXPECT_EQ(out, m);
}

TEST(WsDeflate, CorruptAndTruncatedData) {
    Inflater inflater;
    std::string out;
    EXPECT_EQ(inflater.inflate("\xFF\xFF\xFF\xFF", kMiB, out), Inflater::Status::kCorrupt);
    // A stored block whose length and its complement disagree.
    EXPECT_EQ(inflater.inflate("\x00\x05\x00\x00\x00"sv, kMiB, out), Inflater::Status::kCorrupt);
    const std::string good = deflate_message(json_like(4000));
    for (const std::size_t cut : {good.size() / 3, good.size() / 2, good.size() - 3}) {
        EXPECT_EQ(inflater.inflate(std::string_view(good).substr(0, cut), kMiB, out),
                  Inflater::Status::kCorrupt)
            << cut;
    }
    // The inflater is reset between messages: a good one still works after failures.
    EXPECT_EQ(inflater.inflate(good, kMiB, out), Inflater::Status::kOk);
    EXPECT_EQ(out, json_like(4000));
}

TEST(WsDeflate, ZipBombStopsAtTheLimit) {
    const std::string bomb = deflate_message(std::string(10 * kMiB, '\0'));
    EXPECT_LT(bomb.size(), 20000U);
    Inflater inflater;
    std::string out;
    EXPECT_EQ(inflater.inflate(bomb, kMiB, out), Inflater::Status::kTooBig);
    // Never more than the limit plus one chunk.
    EXPECT_LE(out.capacity(), kMiB + 16 * 1024);

    FrameParser parser({kMiB}, true, &inflater);
    std::vector<std::uint8_t> wire = bytes_of(client(Opcode::kBinary, bomb, true, true));
    const auto [event, consumed] = parser.next(wire);
    EXPECT_EQ(event.type, Type::kError);
    EXPECT_EQ(event.code, 1009);
    EXPECT_EQ(consumed, 0U);
    EXPECT_LE(parser.buffered_capacity(), 2 * FrameParser::kRetainedBufferBytes);
}

TEST(WsDeflate, CompressedFrameThroughTheParser) {
    for (const std::string& m : {std::string(), std::string("hi"), json_like(2048),
                                 std::string("caf\xC3\xA9 \xF0\x9F\x98\x80")}) {
        expect_events(client(Opcode::kText, deflate_message(m), true, true), {message(m)}, true);
    }
    const std::string bin = binary_of_size(5000);
    expect_events(client(Opcode::kBinary, deflate_message(bin), true, true),
                  {message(bin, MessageKind::kBinary)}, true);
}

TEST(WsDeflate, UncompressedFramesStillAcceptedWhenNegotiated) {
    expect_events(client(Opcode::kText, "plain") +
                      client(Opcode::kText, deflate_message("packed"), true, true) +
                      client(Opcode::kText, "plain again"),
                  {message("plain"), message("packed"), message("plain again")}, true);
}

TEST(WsDeflate, CompressedFragmentedMessage) {
    const std::string m = json_like(6000);
    const std::string c = deflate_message(m);
    const std::size_t a = c.size() / 3;
    const std::size_t b = 2 * c.size() / 3;
    const std::string wire = client(Opcode::kText, c.substr(0, a), false, true) +
                             client(Opcode::kPing, "mid") +
                             client(Opcode::kContinuation, c.substr(a, b - a), false) +
                             client(Opcode::kContinuation, c.substr(b), true) +
                             client(Opcode::kText, deflate_message("second"), true, true);
    expect_events(wire, {ping("mid"), message(m), message("second")}, true);
}

TEST(WsDeflate, InflatedSizeIsHeldToTheLimit) {
    const std::string m(1000, 'x');
    const std::string wire = client(Opcode::kText, deflate_message(m), true, true);
    expect_events(wire, {message(m)}, true, 1000);
    expect_events(wire, {error(1009)}, true, 999);
}

TEST(WsDeflate, CompressedSizeIsBoundedFromTheHeader) {
    // Incompressible data may grow a little when compressed: within the slack it is accepted.
    const std::string noise = binary_of_size(1000);
    const std::string c = deflate_message(noise);
    ASSERT_GT(c.size(), noise.size());
    expect_events(client(Opcode::kBinary, c, true, true), {message(noise, MessageKind::kBinary)},
                  true, 1000);
    // Beyond the slack it is refused before the payload arrives.
    const std::size_t too_long = 1000 + FrameParser::deflate_slack_bytes(1000) + 1;
    FrameParser parser({1000}, true, nullptr);  // no inflater: deflate is off, RSV1 refused
    Inflater inflater;
    FrameParser deflating({1000}, true, &inflater);
    std::vector<std::uint8_t> header = bytes_of(raw_header(
        0xC2, 126,
        {static_cast<std::uint8_t>(too_long >> 8), static_cast<std::uint8_t>(too_long)}));
    auto [event, consumed] = deflating.next(header);
    EXPECT_EQ(event.code, 1009);
    std::tie(event, consumed) = parser.next(header);
    EXPECT_EQ(event.code, 1002);
}

TEST(WsDeflate, SharedInflaterAcrossParsers) {
    Inflater inflater;
    FrameParser a({}, true, &inflater);
    FrameParser b({}, true, &inflater);
    std::vector<std::uint8_t> wa =
        bytes_of(client(Opcode::kText, deflate_message("from a"), true, true));
    std::vector<std::uint8_t> wb =
        bytes_of(client(Opcode::kText, deflate_message("from b"), true, true));
    // Inflated messages live in the shared inflater's buffer: each event is read before the next
    // call to any parser sharing it (the connection's read loop does exactly that).
    const auto [ea, ca] = a.next(wa);
    EXPECT_EQ(ea.data, "from a");
    EXPECT_EQ(ca, wa.size());
    const auto [eb, cb] = b.next(wb);
    EXPECT_EQ(eb.data, "from b");
    EXPECT_EQ(cb, wb.size());
}

TEST(WsDeflate, InflaterReusesItsOutputBuffer) {
    Inflater inflater;
    const std::string m = json_like(2048);
    const std::string c = deflate_message(m);
    ASSERT_EQ(inflater.inflate(c, kMiB), Inflater::Status::kOk);
    EXPECT_EQ(inflater.output(), m);
    const char* const buffer = inflater.output().data();
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(inflater.inflate(c, kMiB), Inflater::Status::kOk);
        EXPECT_EQ(inflater.output(), m);
        EXPECT_EQ(inflater.output().data(), buffer);  // no allocation per message
    }
    // The limit holds whatever room the kept buffer has.
    EXPECT_EQ(inflater.inflate(c, m.size() - 1), Inflater::Status::kTooBig);
    ASSERT_EQ(inflater.inflate(deflate_message("short"), kMiB), Inflater::Status::kOk);
    EXPECT_EQ(inflater.output(), "short");
    // A big message's buffer is not kept past the next message.
    const std::string big = text_of_size(3 * Inflater::kRetainedOutputBytes);
    ASSERT_EQ(inflater.inflate(deflate_message(big), kMiB), Inflater::Status::kOk);
    EXPECT_EQ(inflater.output(), big);
    ASSERT_EQ(inflater.inflate(c, kMiB), Inflater::Status::kOk);
    EXPECT_EQ(inflater.output(), m);
    EXPECT_LE(inflater.output().size(), Inflater::kRetainedOutputBytes);
    // Corrupt input leaves no stale output.
    EXPECT_EQ(inflater.inflate("\xFF\xFF\xFF\xFF", kMiB), Inflater::Status::kCorrupt);
    EXPECT_EQ(inflater.output(), "");
}

TEST(WsDeflate, InflaterTellsWhetherTheInputEndedWithTheMessage) {
    Inflater inflater;
    std::string out;
    const std::string m = json_like(3000);
    EXPECT_EQ(inflater.inflate(deflate_message(m), kMiB, out), Inflater::Status::kOk);
    EXPECT_TRUE(inflater.exact());
    const std::string finished = raw_deflate_finish(m);
    EXPECT_EQ(inflater.inflate(finished, kMiB, out), Inflater::Status::kOk);
    EXPECT_TRUE(inflater.exact());
    // Bytes after a final block are ignored, but such a message is not forwarded as it is.
    EXPECT_EQ(inflater.inflate(finished + "junk", kMiB, out), Inflater::Status::kOk);
    EXPECT_EQ(out, m);
    EXPECT_FALSE(inflater.exact());
    EXPECT_EQ(inflater.inflate(finished, kMiB), Inflater::Status::kOk);
    EXPECT_TRUE(inflater.exact());
}

// A raw deflate of `m` that is not what deflate_message gives: two self-contained halves, each
// with its own sync flush. Any inflater reads it as one message.
std::string deflate_in_two_parts(std::string_view m) {
    const std::size_t half = m.size() / 2;
    return deflate_message(m.substr(0, half)) + "\x00\x00\xFF\xFF"s +
           deflate_message(m.substr(half));
}

// `m` as stored (uncompressed) deflate blocks: bigger than `m`, but valid.
std::string deflate_stored(std::string_view m) {
    std::string out;
    out.push_back('\x00');  // BFINAL 0, BTYPE 00, padding
    const auto n = static_cast<std::uint16_t>(m.size());
    out.push_back(static_cast<char>(n & 0xFF));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(~n & 0xFF));
    out.push_back(static_cast<char>((~n >> 8) & 0xFF));
    out.append(m);
    out.push_back('\x00');  // the header of the empty stored block the 00 00 FF FF tail ends
    return out;
}

TEST(WsDeflate, ParserOffersTheCompressedFormToForward) {
    Inflater inflater;
    FrameParser parser({}, true, &inflater);
    const std::string m = json_like(2048);
    const std::string parts = deflate_in_two_parts(m);
    ASSERT_NE(parts, deflate_message(m));
    ASSERT_LT(parts.size(), m.size());

    // One frame: the payload as received.
    std::vector<std::uint8_t> wire = bytes_of(client(Opcode::kText, parts, true, true));
    auto [event, consumed] = parser.next(wire);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, m);
    EXPECT_EQ(event.deflated, parts);
    EXPECT_EQ(consumed, wire.size());
    std::string out;
    Inflater other;
    EXPECT_EQ(other.inflate(std::string(event.deflated), kMiB, out), Inflater::Status::kOk);
    EXPECT_EQ(out, m);

    // Fragments: the whole compressed payload, reassembled.
    const std::size_t cut = parts.size() / 3;
    wire = bytes_of(client(Opcode::kText, std::string_view(parts).substr(0, cut), false, true) +
                    client(Opcode::kContinuation, std::string_view(parts).substr(cut)));
    std::tie(event, consumed) = parser.next(wire);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, m);
    EXPECT_EQ(event.deflated, parts);

    // Not offered: an uncompressed message, data after a final block, a compressed form no
    // smaller than the message.
    wire = bytes_of(client(Opcode::kText, m));
    std::tie(event, consumed) = parser.next(wire);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_TRUE(event.deflated.empty());
    wire = bytes_of(client(Opcode::kText, raw_deflate_finish(m) + "\x00\x01"s, true, true));
    std::tie(event, consumed) = parser.next(wire);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, m);
    EXPECT_TRUE(event.deflated.empty());
    const std::string stored = deflate_stored(m);
    EXPECT_EQ(other.inflate(stored, kMiB, out), Inflater::Status::kOk);
    EXPECT_EQ(out, m);
    wire = bytes_of(client(Opcode::kText, stored, true, true));
    std::tie(event, consumed) = parser.next(wire);
    ASSERT_EQ(event.type, Type::kMessage);
    EXPECT_EQ(event.data, m);
    EXPECT_TRUE(event.deflated.empty());
}

TEST(WsDeflate, APrecomputedDerivedFormIsSentAsItIs) {
    const std::string m = json_like(2048);
    const std::string parts = deflate_in_two_parts(m);
    const SharedPayload p = make_text(m, parts);
    EXPECT_EQ(p->bytes(), m);
    bool computed = false;
    EXPECT_EQ(p->derived([&](std::string_view b) {
        computed = true;
        return deflate_message(b);
    }),
              parts);
    EXPECT_FALSE(computed);
    const SharedPayload q = make_text(m);
    EXPECT_EQ(q->derived([](std::string_view b) { return deflate_message(b); }),
              deflate_message(m));
}

// ---- negotiation ----

constexpr std::string_view kAccepted =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

TEST(WsNegotiateDeflate, RealClientOffers) {
    for (const std::string_view offer : {
             "permessage-deflate; client_max_window_bits"sv,  // Chrome, node ws
             "permessage-deflate"sv,                          // Firefox
             "permessage-deflate; client_max_window_bits=15; client_no_context_takeover; "
             "server_no_context_takeover"sv,  // .NET
             "permessage-deflate; server_max_window_bits=15"sv,
             "permessage-deflate; client_max_window_bits=8"sv,
             "permessage-deflate; client_max_window_bits=\"10\""sv,
             "permessage-deflate; server_max_window_bits=\"15\"; client_max_window_bits"sv,
             "PerMessage-Deflate; Client_Max_Window_Bits; SERVER_NO_CONTEXT_TAKEOVER"sv,
             "  permessage-deflate ;client_max_window_bits = 15\t"sv,
             "permessage-deflate;client_no_context_takeover"sv,
         }) {
        EXPECT_EQ(negotiate_deflate(offer), std::optional<std::string>(kAccepted)) << offer;
    }
}

// Forwarding a client's compressed message as it is (HunterPie pushes) relies on two things the
// response guarantees: client_no_context_takeover, always (each client message inflates on its
// own), and never a server window under 15 bits (any client's 15-bit stream is then readable by
// every recipient).
TEST(WsNegotiateDeflate, AlwaysNoContextTakeoverAndNeverASmallServerWindow) {
    for (int bits = 8; bits <= 15; ++bits) {
        const std::string offer =
            "permessage-deflate; server_max_window_bits=" + std::to_string(bits);
        const auto answer = negotiate_deflate(offer);
        if (bits < 15) {
            EXPECT_EQ(answer, std::nullopt) << offer;
        } else {
            ASSERT_TRUE(answer.has_value());
        }
        // A later acceptable offer is taken instead.
        const auto fallback = negotiate_deflate(offer + ", permessage-deflate");
        ASSERT_TRUE(fallback.has_value()) << offer;
        EXPECT_EQ(*fallback, kAccepted);
        EXPECT_NE(fallback->find("client_no_context_takeover"), std::string::npos);
        EXPECT_EQ(fallback->find("max_window_bits"), std::string::npos);
    }
}

TEST(WsNegotiateDeflate, DeclinedOffers) {
    for (const std::string_view offer : {
             ""sv,
             "   "sv,
             "x-webkit-deflate-frame"sv,
             "permessage-deflate; server_max_window_bits=10"sv,
             "permessage-deflate; server_max_window_bits=8"sv,
             "permessage-deflate; server_max_window_bits"sv,
             "permessage-deflate; server_max_window_bits=16"sv,
             "permessage-deflate; client_max_window_bits=7"sv,
             "permessage-deflate; client_max_window_bits=16"sv,
             "permessage-deflate; client_max_window_bits=015"sv,
             "permessage-deflate; client_max_window_bits=abc"sv,
             "permessage-deflate; client_max_window_bits=\"\""sv,
             "permessage-deflate; server_no_context_takeover=true"sv,
             "permessage-deflate; client_no_context_takeover=1"sv,
             "permessage-deflate; mystery_param"sv,
             "permessage-deflate; client_no_context_takeover; client_no_context_takeover"sv,
             "permessage-deflate; client_max_window_bits; client_max_window_bits=15"sv,
             "permessage-deflate; server_max_window_bits=15; server_max_window_bits=15"sv,
             "permessage-deflate-x"sv,
             // Malformed headers: no offer boundaries can be trusted.
             "permessage-deflate; ="sv,
             "permessage-deflate; client_max_window_bits=\"15"sv,
             "permessage-deflate client_max_window_bits"sv,
             "; permessage-deflate"sv,
         }) {
        EXPECT_EQ(negotiate_deflate(offer), std::nullopt) << offer;
    }
}

TEST(WsNegotiateDeflate, FirstAcceptableOfferWins) {
    EXPECT_EQ(
        negotiate_deflate("permessage-deflate; server_max_window_bits=10, permessage-deflate"),
        std::optional<std::string>(kAccepted));
    EXPECT_EQ(
        negotiate_deflate("permessage-deflate; foo, permessage-deflate; client_max_window_bits"),
        std::optional<std::string>(kAccepted));
    EXPECT_EQ(negotiate_deflate("x-webkit-deflate-frame, permessage-deflate"),
              std::optional<std::string>(kAccepted));
    EXPECT_EQ(negotiate_deflate("foo; bar=\"a, b; c\", permessage-deflate"),
              std::optional<std::string>(kAccepted));
    EXPECT_EQ(negotiate_deflate(", ,permessage-deflate,"), std::optional<std::string>(kAccepted));
    EXPECT_EQ(negotiate_deflate("permessage-deflate; server_max_window_bits=9, "
                                "permessage-deflate; server_max_window_bits=12"),
              std::nullopt);
}

// ---- split points ----

// One stream of every kind of frame, delivered split at every point in two pieces: the events
// never depend on where the reads happen to end.
TEST(WsParserSplits, EveryTwoWaySplit) {
    const std::string c = deflate_message(json_like(400));
    const std::string wire = client(Opcode::kText, "caf\xC3\xA9") +
                             client(Opcode::kBinary, std::string(130, 'b')) +
                             client(Opcode::kText, "fr\xC3", false) + client(Opcode::kPing, "x") +
                             client(Opcode::kContinuation, "\xA9", true) +
                             client(Opcode::kText, c.substr(0, 10), false, true) +
                             client(Opcode::kContinuation, c.substr(10), true) +
                             client(Opcode::kPong, "") + close_frame(1000, "bye");
    const std::vector<Seen> expected = {message("caf\xC3\xA9"),
                                        message(std::string(130, 'b'), MessageKind::kBinary),
                                        ping("x"),
                                        message("fr\xC3\xA9"),
                                        message(json_like(400)),
                                        pong(""),
                                        closed(1000, "bye")};
    for (std::size_t split = 0; split <= wire.size(); ++split) {
        Inflater inflater;
        FrameParser parser({}, true, &inflater);
        std::vector<Seen> events;
        std::vector<std::uint8_t> buffer = bytes_of(wire.substr(0, split));
        std::size_t total = 0;
        for (int round = 0; round < 2; ++round) {
            if (round == 1) {
                const std::string rest = wire.substr(split);
                buffer.insert(buffer.end(), rest.begin(), rest.end());
            }
            for (;;) {
                const auto [event, consumed] = parser.next(buffer);
                ASSERT_LE(consumed, buffer.size());
                total += consumed;
                const Seen s = seen(event);
                buffer.erase(buffer.begin(),
                             buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
                if (s.type == Type::kNeedMore) {
                    break;
                }
                events.push_back(s);
            }
        }
        EXPECT_EQ(events, expected) << "split " << split;
        EXPECT_EQ(total, wire.size()) << "split " << split;
    }
}

// ---- streamed binary messages (Limits::stream_binary) ----

// What a streaming caller sees: the binary messages rebuilt from their parts (each checked to start
// with `first` and end with `last`), with the other events in order, and the most bytes the caller
// ever had to keep between reads.
struct Streamed {
    std::vector<Seen> events;  // binary messages as kMessage events rebuilt from their parts
    std::size_t parts = 0;
    std::size_t most_kept = 0;
    bool well_formed = true;  // every message had exactly one first and one last part
};

Streamed feed_streaming(FrameParser& parser, std::string_view wire, std::size_t step) {
    Streamed out;
    std::vector<std::uint8_t> buffer;
    std::optional<std::string> building;
    for (std::size_t i = 0; i < wire.size(); i += step) {
        const std::string_view chunk = wire.substr(i, step);
        buffer.insert(buffer.end(), chunk.begin(), chunk.end());
        for (;;) {
            auto [event, consumed] = parser.next(buffer);
            if (event.type == Type::kBinaryPart) {
                ++out.parts;
                if (event.first == building.has_value()) {
                    out.well_formed = false;
                }
                if (event.first) {
                    building.emplace();
                }
                if (building) {
                    building->append(event.data);
                }
                if (event.last && building) {
                    out.events.push_back(message(*building, MessageKind::kBinary));
                    building.reset();
                }
            } else if (event.type != Type::kNeedMore) {
                out.events.push_back(seen(event));
            }
            buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
            if (event.type == Type::kError) {
                return out;
            }
            if (event.type == Type::kNeedMore) {
                break;
            }
        }
        out.most_kept = std::max(out.most_kept, buffer.size());
    }
    if (building) {
        out.well_formed = false;
    }
    return out;
}

TEST(WsParserStreaming, BinaryComesInPartsWithEveryOtherEventInOrder) {
    const std::string file = binary_of_size(70'000, 3);
    const std::string wire =
        client(Opcode::kText, "begin") + client(Opcode::kBinary, file.substr(0, 30'000), false) +
        client(Opcode::kPing, "p") + client(Opcode::kContinuation, file.substr(30'000, 40'000)) +
        client(Opcode::kBinary, "one frame") + client(Opcode::kBinary, "") +
        client(Opcode::kText, "end") + close_frame(1000);
    const std::vector<Seen> expected = {message("begin"),
                                        ping("p"),
                                        message(file, MessageKind::kBinary),
                                        message("one frame", MessageKind::kBinary),
                                        message("", MessageKind::kBinary),
                                        message("end"),
                                        closed(1000)};
    // Text stays limited to max_message_bytes; binary is not held to it.
    const FrameParser::Limits limits{.max_message_bytes = 1024, .stream_binary = true};
    for (const std::size_t step :
         {wire.size(), std::size_t{1}, std::size_t{5}, std::size_t{4096}, std::size_t{16'384}}) {
        FrameParser parser(limits, false, nullptr);
        const auto got = feed_streaming(parser, wire, step);
        EXPECT_EQ(got.events, expected) << "step " << step;
        EXPECT_TRUE(got.well_formed) << "step " << step;
        if (step < 1000) {
            // Only a header's bytes are ever kept: payload goes out as it comes.
            EXPECT_LE(got.most_kept, 14U + step) << "step " << step;
            EXPECT_GT(got.parts, 70'000 / step / 2) << "step " << step;
        }
    }
}

TEST(WsParserStreaming, EveryTwoWaySplitUnmasksEachPartFromItsOffset) {
    const std::string data = binary_of_size(300, 5);
    const std::string wire = client(Opcode::kBinary, data.substr(0, 131), false) +
                             client(Opcode::kContinuation, data.substr(131), true) +
                             client(Opcode::kText, "after");
    const FrameParser::Limits limits{.stream_binary = true};
    for (std::size_t split = 0; split <= wire.size(); ++split) {
        FrameParser parser(limits, false, nullptr);
        Streamed got;
        std::vector<std::uint8_t> buffer = bytes_of(wire.substr(0, split));
        std::string rebuilt;
        std::vector<Seen> others;
        for (int round = 0; round < 2; ++round) {
            if (round == 1) {
                const std::string rest = wire.substr(split);
                buffer.insert(buffer.end(), rest.begin(), rest.end());
            }
            for (;;) {
                const auto [event, consumed] = parser.next(buffer);
                if (event.type == Type::kBinaryPart) {
                    rebuilt.append(event.data);
                } else if (event.type != Type::kNeedMore) {
                    others.push_back(seen(event));
                }
                buffer.erase(buffer.begin(),
                             buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
                if (event.type == Type::kNeedMore) {
                    break;
                }
            }
        }
        EXPECT_EQ(rebuilt, data) << "split " << split;
        EXPECT_EQ(others, std::vector<Seen>{message("after")}) << "split " << split;
        EXPECT_TRUE(buffer.empty()) << "split " << split;
    }
}

TEST(WsParserStreaming, StreamedBoundIsCheckedFromEachHeader) {
    const FrameParser::Limits limits{
        .max_message_bytes = 16, .stream_binary = true, .max_streamed_message_bytes = 1000};
    // Exactly at the bound, over two frames: fine.
    FrameParser ok(limits, false, nullptr);
    const auto at = feed_streaming(ok,
                                   client(Opcode::kBinary, std::string(600, 'a'), false) +
                                       client(Opcode::kContinuation, std::string(400, 'b')),
                                   7);
    EXPECT_EQ(at.events, std::vector<Seen>{message(std::string(600, 'a') + std::string(400, 'b'),
                                                   MessageKind::kBinary)});
    // One byte more: refused when the second header arrives, before its payload.
    FrameParser over(limits, false, nullptr);
    std::string wire = client(Opcode::kBinary, std::string(600, 'a'), false) +
                       client(Opcode::kContinuation, std::string(401, 'b'));
    wire.resize(wire.size() - 401);  // the second frame's payload never comes
    const auto got = feed_streaming(over, wire, 7);
    ASSERT_FALSE(got.events.empty());
    EXPECT_EQ(got.events.back(), error(1009));
    // Text is still reassembled and held to max_message_bytes.
    FrameParser text(limits, false, nullptr);
    EXPECT_EQ(feed_streaming(text, client(Opcode::kText, std::string(17, 't')), 64).events,
              std::vector<Seen>{error(1009)});
}

TEST(WsParserStreaming, CompressedBinaryStillComesWhole) {
    const std::string data = binary_of_size(10, 9) + std::string(500, 'z');
    const std::string c = deflate_message(data);
    Inflater inflater;
    FrameParser parser({.stream_binary = true}, true, &inflater);
    const auto got = feed_streaming(parser, client(Opcode::kBinary, c, true, true), 3);
    EXPECT_EQ(got.parts, 0U);
    EXPECT_EQ(got.events, std::vector<Seen>{message(data, MessageKind::kBinary)});
}

TEST(WsParserStreaming, ProtocolErrorsInsideAStreamedMessage) {
    const FrameParser::Limits limits{.stream_binary = true};
    FrameParser parser(limits, false, nullptr);
    const auto got = feed_streaming(
        parser, client(Opcode::kBinary, "abc", false) + client(Opcode::kText, "new message inside"),
        4);
    ASSERT_FALSE(got.events.empty());
    EXPECT_EQ(got.events.back(), error(1002));
    FrameParser rsv(limits, true, nullptr);  // no inflater: RSV1 is refused
    EXPECT_EQ(feed_streaming(rsv, client(Opcode::kBinary, "abc", true, true), 4).events,
              std::vector<Seen>{error(1002)});
}

}  // namespace
}  // namespace hearth::net::ws
