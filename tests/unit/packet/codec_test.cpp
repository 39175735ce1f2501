#include "frontends/packet/codec.hpp"
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hearth::packet {
namespace {

// A packet with any size, type and crc fields (the size need not match the payload).
std::string raw(std::uint16_t size, std::uint16_t type, std::uint16_t crc,
                std::string_view payload) {
    std::string p;
    p.push_back(static_cast<char>(size & 0xFF));
    p.push_back(static_cast<char>(size >> 8));
    p.push_back(static_cast<char>(type & 0xFF));
    p.push_back(static_cast<char>(type >> 8));
    p.push_back(static_cast<char>(crc & 0xFF));
    p.push_back(static_cast<char>(crc >> 8));
    p.append(payload);
    return p;
}

std::string pkt(std::uint16_t type, std::string_view payload, std::uint16_t crc = 0) {
    return raw(static_cast<std::uint16_t>(kHeaderBytes + payload.size()), type, crc, payload);
}

struct Got {
    std::uint16_t type;
    std::string payload;
    bool operator==(const Got&) const = default;
};

struct Fed {
    std::vector<Got> packets;
    FrameStatus end = FrameStatus::kNeedMore;
    std::size_t max_buffered = 0;
};

// Feeds `pieces` one after the other, the way a connection hands over its reads.
Fed feed(FrameDecoder& d, const std::vector<std::string>& pieces) {
    Fed run;
    for (const auto& piece : pieces) {
        std::string_view in = piece;
        while (!in.empty() && run.end == FrameStatus::kNeedMore) {
            const FrameResult r = d.next(in);
            EXPECT_LE(r.consumed, in.size());
            in.remove_prefix(r.consumed);
            run.max_buffered = std::max(run.max_buffered, d.buffered());
            if (r.status == FrameStatus::kPacket) {
                run.packets.push_back({r.packet.type, std::string(r.packet.payload)});
            } else if (r.status != FrameStatus::kNeedMore) {
                run.end = r.status;
            } else {
                EXPECT_TRUE(in.empty()) << "need more with input left";
            }
        }
    }
    return run;
}

std::vector<std::string> split_at(const std::string& s, std::size_t at) {
    return {s.substr(0, at), s.substr(at)};
}

TEST(PacketFraming, DecodesAWholePacketAsAViewIntoTheInput) {
    const std::string bytes = pkt(0x0708, "abc") + "tail";
    const FrameResult r = decode_packet(bytes, kDefaultMaxPacketBytes);
    ASSERT_EQ(r.status, FrameStatus::kPacket);
    EXPECT_EQ(r.consumed, 9U);
    EXPECT_EQ(r.packet.type, 0x0708);
    EXPECT_EQ(r.packet.payload, "abc");
    EXPECT_EQ(r.packet.payload.data(), bytes.data() + kHeaderBytes);
}

TEST(PacketFraming, LittleEndianHeader) {
    const std::string bytes("\x09\x00\x53\x07\x00\x00xyz", 9);
    const FrameResult r = decode_packet(bytes, kDefaultMaxPacketBytes);
    ASSERT_EQ(r.status, FrameStatus::kPacket);
    EXPECT_EQ(r.packet.type, 0x0753);
    EXPECT_EQ(r.packet.payload, "xyz");
}

TEST(PacketFraming, EmptyPayloadIsAPacket) {
    const std::string bytes = pkt(0x0700, "");
    const FrameResult r = decode_packet(bytes, kDefaultMaxPacketBytes);
    ASSERT_EQ(r.status, FrameStatus::kPacket);
    EXPECT_EQ(r.consumed, kHeaderBytes);
    EXPECT_TRUE(r.packet.payload.empty());
}

TEST(PacketFraming, CrcIsIgnored) {
    for (const std::uint16_t crc : {0x0000, 0x0001, 0xBEEF, 0xFFFF}) {
        const std::string bytes = pkt(0x0712, "q", static_cast<std::uint16_t>(crc));
        const FrameResult r = decode_packet(bytes, kDefaultMaxPacketBytes);
        ASSERT_EQ(r.status, FrameStatus::kPacket) << crc;
        EXPECT_EQ(r.packet.type, 0x0712);
        EXPECT_EQ(r.packet.payload, "q");
    }
}

TEST(PacketFraming, NeedsMoreUntilWholeAndConsumesNothing) {
    const std::string bytes = pkt(0x0708, "hello");
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        const FrameResult r = decode_packet(std::string_view(bytes).substr(0, n), 0x7FF);
        EXPECT_EQ(r.status, FrameStatus::kNeedMore) << n;
        EXPECT_EQ(r.consumed, 0U) << n;
    }
}

TEST(PacketFraming, SizeBelowTheHeaderIsRefused) {
    for (std::uint16_t size = 0; size < kHeaderBytes; ++size) {
        const FrameResult r = decode_packet(raw(size, 0x0708, 0, "abcdef"), 0x7FF);
        EXPECT_EQ(r.status, FrameStatus::kTooSmall) << size;
        EXPECT_EQ(r.declared_size, size);
        EXPECT_EQ(r.consumed, 0U);
    }
}

TEST(PacketFraming, SizeAboveTheMaximumIsRefusedFromTheHeaderAlone) {
    // Only the 6 header bytes: the refusal does not wait for the payload.
    const FrameResult r = decode_packet(raw(0x800, 0x0708, 0, ""), 0x7FF);
    EXPECT_EQ(r.status, FrameStatus::kTooLarge);
    EXPECT_EQ(r.declared_size, 0x800);
    const std::string at_max = pkt(0x0708, std::string(0x7FF - kHeaderBytes, 'x'));
    EXPECT_EQ(decode_packet(at_max, 0x7FF).status, FrameStatus::kPacket);
    EXPECT_EQ(decode_packet(at_max, 0x7FE).status, FrameStatus::kTooLarge);
}

TEST(PacketFraming, LargestPacketUnderTheLargestMaximum) {
    const std::string biggest = pkt(0x1003, std::string(0xFFFF - kHeaderBytes, 'y'));
    ASSERT_EQ(biggest.size(), 0xFFFFU);
    FrameDecoder d(kLargestMaxPacketBytes);
    const Fed run = feed(d, split_at(biggest, 30000));
    ASSERT_EQ(run.packets.size(), 1U);
    EXPECT_EQ(run.packets[0].payload.size(), 0xFFFFU - kHeaderBytes);
}

TEST(PacketFraming, MaximumIsClamped) {
    EXPECT_EQ(FrameDecoder(1'000'000).max_packet_bytes(), kLargestMaxPacketBytes);
    EXPECT_EQ(FrameDecoder(0).max_packet_bytes(), kHeaderBytes);
    EXPECT_EQ(FrameDecoder().max_packet_bytes(), 0x7FFU);
}

TEST(PacketDecoder, SameResultForEverySplitPoint) {
    const std::string stream = pkt(0x0708, std::string("\x00\x05"
                                                       "alice",
                                                       7)) +
                               pkt(0x0700, "") + pkt(0x1001, std::string(40, 'p'), 0x1234) +
                               pkt(0x0712, "z");
    const std::vector<Got> expected = {{0x0708, std::string("\x00\x05"
                                                            "alice",
                                                            7)},
                                       {0x0700, ""},
                                       {0x1001, std::string(40, 'p')},
                                       {0x0712, "z"}};
    for (std::size_t at = 0; at <= stream.size(); ++at) {
        FrameDecoder d;
        const Fed run = feed(d, split_at(stream, at));
        EXPECT_EQ(run.packets, expected) << "split at " << at;
        EXPECT_EQ(run.end, FrameStatus::kNeedMore);
        EXPECT_EQ(d.buffered(), 0U);
    }
    for (std::size_t a = 1; a < stream.size(); ++a) {
        for (std::size_t b = a; b < stream.size(); ++b) {
            FrameDecoder d;
            const Fed run =
                feed(d, {stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)});
            ASSERT_EQ(run.packets, expected) << "split at " << a << " and " << b;
        }
    }
}

TEST(PacketDecoder, ByteByByteKeepsAtMostOnePacket) {
    std::string stream;
    std::vector<Got> expected;
    for (int i = 0; i < 20; ++i) {
        const std::string payload(static_cast<std::size_t>(i * 7), static_cast<char>('a' + i));
        stream += pkt(static_cast<std::uint16_t>(0x1000 + i), payload);
        expected.push_back({static_cast<std::uint16_t>(0x1000 + i), payload});
    }
    std::vector<std::string> bytes;
    for (const char c : stream) {
        bytes.emplace_back(1, c);
    }
    FrameDecoder d;
    const Fed run = feed(d, bytes);
    EXPECT_EQ(run.packets, expected);
    // The largest packet is 6 + 133 bytes; the decoder never held more.
    EXPECT_LE(run.max_buffered, kHeaderBytes + 19 * 7);
}

TEST(PacketDecoder, WholePacketsInOneInputAreViewsIntoIt) {
    const std::string stream = pkt(0x0700, "one") + pkt(0x0707, "two");
    FrameDecoder d;
    std::string_view in = stream;
    const FrameResult a = d.next(in);
    ASSERT_EQ(a.status, FrameStatus::kPacket);
    EXPECT_EQ(a.packet.payload.data(), stream.data() + kHeaderBytes);
    in.remove_prefix(a.consumed);
    const FrameResult b = d.next(in);
    ASSERT_EQ(b.status, FrameStatus::kPacket);
    EXPECT_EQ(b.packet.payload.data(), stream.data() + 9 + kHeaderBytes);
    EXPECT_EQ(d.buffered(), 0U);
}

TEST(PacketDecoder, OversizeIsStickyAndKeepsNothing) {
    for (std::size_t at = 1; at <= kHeaderBytes; ++at) {
        FrameDecoder d(100);
        const std::string stream = raw(101, 0x0708, 0, std::string(95, 'x')) + pkt(0x0700, "");
        const Fed run = feed(d, split_at(stream, at));
        EXPECT_TRUE(run.packets.empty());
        EXPECT_EQ(run.end, FrameStatus::kTooLarge) << at;
        EXPECT_TRUE(d.failed());
        EXPECT_EQ(d.buffered(), 0U);
        const FrameResult again = d.next(pkt(0x0700, ""));
        EXPECT_EQ(again.status, FrameStatus::kTooLarge);
        EXPECT_EQ(again.declared_size, 101);
        EXPECT_EQ(again.consumed, 0U);
    }
}

TEST(PacketDecoder, UndersizeIsStickyAfterGoodPackets) {
    const std::string stream = pkt(0x0700, "ok") + raw(3, 0x0708, 0, "") + pkt(0x0700, "");
    for (std::size_t at = 0; at <= stream.size(); ++at) {
        FrameDecoder d;
        const Fed run = feed(d, split_at(stream, at));
        ASSERT_EQ(run.packets.size(), 1U) << at;
        EXPECT_EQ(run.end, FrameStatus::kTooSmall) << at;
        EXPECT_EQ(d.next(pkt(0x0700, "")).status, FrameStatus::kTooSmall);
    }
}

TEST(PacketDecoder, ReusesItsBufferForSplitPacketsUpTo4KiB) {
    FrameDecoder d(kLargestMaxPacketBytes);
    const std::string whole = pkt(0x0700, "w");
    (void)feed(d, {whole});
    EXPECT_EQ(d.buffer_capacity(), 0U) << "whole packets are never copied";

    const std::string p = pkt(0x1003, std::string(1000, 'u'));
    ASSERT_EQ(feed(d, split_at(p, 500)).packets.size(), 1U);
    const std::size_t capacity = d.buffer_capacity();
    EXPECT_GE(capacity, p.size());
    ASSERT_EQ(feed(d, split_at(p, 3)).packets.size(), 1U);
    ASSERT_EQ(feed(d, split_at(p, 700)).packets.size(), 1U);
    ASSERT_EQ(feed(d, {whole}).packets.size(), 1U);
    EXPECT_EQ(d.buffer_capacity(), capacity) << "the storage is reused";

    const std::string big = pkt(0x1003, std::string(5000, 'b'));
    ASSERT_EQ(feed(d, split_at(big, 2500)).packets.size(), 1U);
    ASSERT_EQ(feed(d, {whole}).packets.size(), 1U);
    EXPECT_EQ(d.buffer_capacity(), 0U) << "storage above 4 KiB is given back";
}

// ---- UTF-8 ------------------------------------------------------------------------------------

TEST(PacketUtf8, AcceptsWellFormedAndRefusesTheRest) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("plain ASCII"));
    EXPECT_TRUE(valid_utf8("caf\xC3\xA9"));
    EXPECT_TRUE(valid_utf8("\xE2\x82\xAC"));      // U+20AC
    EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));  // U+1F600
    EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
    EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));      // U+D7FF
    EXPECT_TRUE(valid_utf8(std::string_view("\0", 1)));
    EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation
    EXPECT_FALSE(valid_utf8("\xC0\xAF"));          // overlong '/'
    EXPECT_FALSE(valid_utf8("\xC1\xBF"));          // overlong
    EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // overlong
    EXPECT_FALSE(valid_utf8("\xF0\x80\x80\xAF"));  // overlong
    EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // U+D800, a surrogate
    EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(valid_utf8("\xF5\x80\x80\x80"));
    EXPECT_FALSE(valid_utf8("\xFF"));
    EXPECT_FALSE(valid_utf8("\xC3"));          // truncated
    EXPECT_FALSE(valid_utf8("\xE2\x82"));      // truncated
    EXPECT_FALSE(valid_utf8("\xE2\x28\xA1"));  // bad continuation
    EXPECT_FALSE(valid_utf8("\xF0\x9F\x98\x28"));
}

// ---- Writer and Reader ------------------------------------------------------------------------

TEST(PacketWriter, WritesLittleEndianFields) {
    std::string out;
    Writer w(out);
    w.u8(0xAB);
    w.u16(0x1234);
    w.u32(0x89ABCDEF);
    w.u64(0x0102030405060708ULL);
    w.i32(-2);
    w.f32(1.0F);
    w.str("h\xC3\xA9", 10);
    EXPECT_TRUE(w.ok());
    EXPECT_EQ(out, std::string("\xAB"
                               "\x34\x12"
                               "\xEF\xCD\xAB\x89"
                               "\x08\x07\x06\x05\x04\x03\x02\x01"
                               "\xFE\xFF\xFF\xFF"
                               "\x00\x00\x80\x3F"
                               "\x03\x00h\xC3\xA9",
                               1 + 2 + 4 + 8 + 4 + 4 + 5));
}

TEST(PacketWriter, KeepsTheFirstError) {
    std::string out;
    Writer w(out);
    w.str("abcd", 3);
    EXPECT_EQ(w.error(), WireError::kStringTooLong);
    w.str("\xFF", 10);
    EXPECT_EQ(w.error(), WireError::kStringTooLong);

    std::string out2;
    Writer w2(out2);
    w2.str("\xC0\xAF", 10);
    EXPECT_EQ(w2.error(), WireError::kBadUtf8);

    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
        std::string o;
        Writer w3(o);
        w3.f32(bad);
        EXPECT_EQ(w3.error(), WireError::kBadValue);
    }

    std::string o4;
    Writer w4(o4);
    w4.count_u8(17, 16);
    EXPECT_EQ(w4.error(), WireError::kTooMany);
}

TEST(PacketWriter, StringOfExactly65535BytesIsTheLongest) {
    std::string out;
    Writer w(out);
    w.str(std::string(0xFFFF, 'a'), 0x10000);
    EXPECT_TRUE(w.ok());
    EXPECT_EQ(out.size(), 2U + 0xFFFF);
    std::string out2;
    Writer w2(out2);
    w2.str(std::string(0x10000, 'a'), 0x20000);
    EXPECT_EQ(w2.error(), WireError::kStringTooLong);
}

TEST(PacketWriter, FinishPacketSetsTheSizeOrRemovesThePacket) {
    std::string out = "prefix";
    Writer w(out);
    const std::size_t start = begin_packet(out, 0x1100);
    w.str("hi", 10);
    ASSERT_EQ(finish_packet(w, start, 0x7FF), WireError::kNone);
    EXPECT_EQ(out, std::string("prefix\x0A\x00\x00\x11\x00\x00\x02\x00hi", 16));

    const std::size_t start2 = begin_packet(out, 0x1100);
    w.str(std::string(100, 'x'), 200);
    EXPECT_EQ(finish_packet(w, start2, 107), WireError::kTooLarge);
    EXPECT_EQ(out.size(), 16U) << "the packet over the maximum is removed";

    const std::size_t start3 = begin_packet(out, 0x1100);
    w.str(std::string(100, 'x'), 200);
    EXPECT_EQ(finish_packet(w, start3, 108), WireError::kNone);
    EXPECT_EQ(out.size(), 16U + 108U);

    Writer bad(out);
    const std::size_t start4 = begin_packet(out, 0x1100);
    bad.str("\xFF", 10);
    EXPECT_EQ(finish_packet(bad, start4, 0x7FF), WireError::kBadUtf8);
    EXPECT_EQ(out.size(), 16U + 108U);
}

TEST(PacketReader, ReadsWhatTheWriterWrote) {
    std::string out;
    Writer w(out);
    w.u8(200);
    w.u16(60000);
    w.u32(4000000000U);
    w.u64(0xFEDCBA9876543210ULL);
    w.i32(-123456);
    w.f32(-2.5F);
    w.str("\xE2\x82\xAC uro", 16);
    w.str("", 0);
    ASSERT_TRUE(w.ok());

    Reader r(out);
    EXPECT_EQ(r.u8(), 200);
    EXPECT_EQ(r.u16(), 60000);
    EXPECT_EQ(r.u32(), 4000000000U);
    EXPECT_EQ(r.u64(), 0xFEDCBA9876543210ULL);
    EXPECT_EQ(r.i32(), -123456);
    EXPECT_EQ(r.f32(), -2.5F);
    EXPECT_EQ(r.str(16), "\xE2\x82\xAC uro");
    EXPECT_EQ(r.str(0), "");
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0U);
}

TEST(PacketReader, TruncatedAtEveryLength) {
    std::string out;
    Writer w(out);
    w.u8(1);
    w.u16(2);
    w.u32(3);
    w.u64(4);
    w.f32(5.0F);
    w.str("six", 3);
    for (std::size_t n = 0; n < out.size(); ++n) {
        Reader r(std::string_view(out).substr(0, n));
        (void)r.u8();
        (void)r.u16();
        (void)r.u32();
        (void)r.u64();
        (void)r.f32();
        const std::string_view s = r.str(3);
        EXPECT_EQ(r.error(), WireError::kTruncated) << n;
        EXPECT_TRUE(s.empty());
    }
}

TEST(PacketReader, ErrorsAreStickyAndReadsAfterThemAreZero) {
    const std::string bytes("\x05\x00toolong\x07\x00\x00\x00", 13);
    Reader r(bytes);
    EXPECT_EQ(r.str(4), "");
    EXPECT_EQ(r.error(), WireError::kStringTooLong);
    EXPECT_EQ(r.u32(), 0U);
    EXPECT_EQ(r.error(), WireError::kStringTooLong);
}

TEST(PacketReader, RefusesBadUtf8) {
    const std::string bytes("\x02\x00\xC0\xAF", 4);
    Reader r(bytes);
    EXPECT_EQ(r.str(10), "");
    EXPECT_EQ(r.error(), WireError::kBadUtf8);
}

TEST(PacketReader, StringLengthBeyondThePayloadIsTruncated) {
    const std::string bytes(
        "\xFF\xFF"
        "abc",
        5);
    Reader r(bytes);
    EXPECT_EQ(r.str(0xFFFF), "");
    EXPECT_EQ(r.error(), WireError::kTruncated);
}

TEST(PacketReader, RefusesNonFiniteFloats) {
    for (const std::string_view bits : {std::string_view("\x00\x00\xC0\x7F", 4),     // NaN
                                        std::string_view("\x00\x00\x80\x7F", 4),     // +inf
                                        std::string_view("\x00\x00\x80\xFF", 4)}) {  // -inf
        Reader r(bits);
        EXPECT_EQ(r.f32(), 0.0F);
        EXPECT_EQ(r.error(), WireError::kBadValue);
    }
}

TEST(PacketReader, CountAboveItsBoundIsTooMany) {
    const std::string bytes("\x11\x01\x01", 3);
    Reader r(bytes);
    EXPECT_EQ(r.count_u8(16), 0U);
    EXPECT_EQ(r.error(), WireError::kTooMany);
    Reader r2(std::string_view(bytes).substr(1));
    EXPECT_EQ(r2.count_u16(0x100), 0U);
    EXPECT_EQ(r2.error(), WireError::kTooMany);
    Reader r3(std::string_view(bytes).substr(1));
    EXPECT_EQ(r3.count_u16(0x101), 0x101U);
    EXPECT_TRUE(r3.ok());
}

TEST(PacketWireError, EveryErrorHasAText) {
    for (int e = 0; e <= static_cast<int>(WireError::kUnknownOpcode); ++e) {
        EXPECT_NE(wire_error_text(static_cast<WireError>(e)), "unknown error") << e;
    }
}

}  // namespace
}  // namespace hearth::packet
