#include "util/utf8.hpp"
#include <cstdint>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace hearth::util {
namespace {

using namespace std::string_view_literals;

struct Case {
    std::string_view name;
    std::string_view bytes;
    bool valid;
};

// Sequences at the edges of each rule of the Unicode standard's Table 3-7.
constexpr Case kCases[] = {
    {"empty", ""sv, true},
    {"ascii", "hello"sv, true},
    {"nul", "\x00"sv, true},
    {"del", "\x7F"sv, true},
    {"2-byte min U+0080", "\xC2\x80"sv, true},
    {"2-byte max U+07FF", "\xDF\xBF"sv, true},
    {"3-byte min U+0800", "\xE0\xA0\x80"sv, true},
    {"3-byte U+FFFF", "\xEF\xBF\xBF"sv, true},
    {"before surrogates U+D7FF", "\xED\x9F\xBF"sv, true},
    {"after surrogates U+E000", "\xEE\x80\x80"sv, true},
    {"BOM U+FEFF", "\xEF\xBB\xBF"sv, true},
    {"4-byte min U+10000", "\xF0\x90\x80\x80"sv, true},
    {"max U+10FFFF", "\xF4\x8F\xBF\xBF"sv, true},
    {"mixed", "a\xC3\xA9z\xE2\x82\xAC!\xF0\x9F\x98\x80."sv, true},
    {"Autobahn 6.2.1", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"sv, true},

    {"overlong 2-byte C0 80", "\xC0\x80"sv, false},
    {"overlong 2-byte C1 BF", "\xC1\xBF"sv, false},
    {"overlong 3-byte E0 9F BF", "\xE0\x9F\xBF"sv, false},
    {"overlong 3-byte E0 80 80", "\xE0\x80\x80"sv, false},
    {"overlong 4-byte F0 8F BF BF", "\xF0\x8F\xBF\xBF"sv, false},
    {"overlong 4-byte F0 80 80 80", "\xF0\x80\x80\x80"sv, false},
    {"surrogate U+D800", "\xED\xA0\x80"sv, false},
    {"surrogate U+DBFF", "\xED\xAF\xBF"sv, false},
    {"surrogate U+DC00", "\xED\xB0\x80"sv, false},
    {"surrogate U+DFFF", "\xED\xBF\xBF"sv, false},
    {"surrogate pair as CESU-8", "\xED\xA0\xBD\xED\xB8\x80"sv, false},
    {"above max U+110000", "\xF4\x90\x80\x80"sv, false},
    {"F5 lead", "\xF5\x80\x80\x80"sv, false},
    {"F7 lead", "\xF7\xBF\xBF\xBF"sv, false},
    {"5-byte form", "\xF8\x88\x80\x80\x80"sv, false},
    {"6-byte form", "\xFC\x84\x80\x80\x80\x80"sv, false},
    {"FE", "\xFE"sv, false},
    {"FF", "\xFF"sv, false},
    {"lone continuation 80", "\x80"sv, false},
    {"lone continuation BF", "\xBF"sv, false},
    {"continuation after ascii", "abc\x80"sv, false},
    {"extra continuation", "\xC3\xA9\xA9"sv, false},
    {"truncated 2-byte", "\xC3"sv, false},
    {"truncated 3-byte after 1", "\xE2"sv, false},
    {"truncated 3-byte after 2", "\xE2\x82"sv, false},
    {"truncated 4-byte after 3", "\xF0\x9F\x98"sv, false},
    {"truncated at end of text", "hello \xF0\x9F\x98"sv, false},
    {"lead then ascii", "\xC3("sv, false},
    {"3-byte bad third", "\xE2\x82("sv, false},
    {"4-byte bad fourth", "\xF0\x9F\x98("sv, false},
    {"4-byte bad second", "\xF0(\x98\x80"sv, false},
    {"Autobahn 6.3.1",
     "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64"sv, false},
};

TEST(Utf8Table, EachCase) {
    for (const Case& c : kCases) {
        EXPECT_EQ(valid_utf8(c.bytes), c.valid) << c.name;
    }
}

// The same cases after every length of ASCII prefix and suffix, so that each lands on either
// side of the 8-byte fast path's boundaries.
TEST(Utf8Table, EachCaseAtEveryAlignment) {
    for (const Case& c : kCases) {
        for (std::size_t before = 0; before <= 17; ++before) {
            for (std::size_t after = 0; after <= 9; ++after) {
                const std::string text =
                    std::string(before, 'x') + std::string(c.bytes) + std::string(after, 'y');
                // ASCII around a sequence never changes the verdict: it is no continuation byte.
                EXPECT_EQ(valid_utf8(text), c.valid)
                    << c.name << " before=" << before << " after=" << after;
            }
        }
    }
}

TEST(Utf8FastPath, AsciiBoundaries) {
    for (std::size_t n = 0; n <= 40; ++n) {
        std::string text(n, 'a');
        EXPECT_TRUE(valid_utf8(text)) << n;
        for (std::size_t i = 0; i < n; ++i) {
            std::string bad = text;
            bad[i] = '\x80';
            EXPECT_FALSE(valid_utf8(bad)) << n << " " << i;
            std::string high = text;
            high[i] = '\xFF';
            EXPECT_FALSE(valid_utf8(high)) << n << " " << i;
        }
    }
}

TEST(Utf8FastPath, MultiByteAtEveryOffset) {
    const std::string_view euro = "\xE2\x82\xAC";
    for (std::size_t i = 0; i <= 24; ++i) {
        std::string text(24, 'a');
        text.insert(i, euro);
        EXPECT_TRUE(valid_utf8(text)) << i;
        // The same character cut by the end of the text.
        EXPECT_FALSE(valid_utf8(std::string_view(text).substr(0, i + 2))) << i;
    }
}

// Every code point, encoded by a reference encoder, is accepted; every surrogate is rejected.
TEST(Utf8Exhaustive, EveryCodePoint) {
    const auto encode = [](std::uint32_t cp) {
        std::string s;
        if (cp < 0x80) {
            s.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
            s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
            s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        return s;
    };
    int failures = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF && failures < 10; ++cp) {
        const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (valid_utf8(encode(cp)) == surrogate) {
            ADD_FAILURE() << std::hex << cp;
            ++failures;
        }
    }
}

// Every 2-byte sequence, checked against the decoding rules written out longhand.
TEST(Utf8Exhaustive, EveryTwoBytePair) {
    for (unsigned a = 0; a < 256; ++a) {
        for (unsigned b = 0; b < 256; ++b) {
            const char bytes[2] = {static_cast<char>(a), static_cast<char>(b)};
            const bool a_ascii = a < 0x80;
            const bool b_ascii = b < 0x80;
            const bool pair = a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF;
            EXPECT_EQ(valid_utf8(std::string_view(bytes, 2)), (a_ascii && b_ascii) || pair)
                << a << " " << b;
        }
    }
}

TEST(BoundedUtf8, CutsAtACharacterBoundaryAndNeverPastTheBound) {
    EXPECT_EQ(bounded_utf8("hello", 64), "hello");
    EXPECT_EQ(bounded_utf8("hello", 3), "hel");
    EXPECT_EQ(bounded_utf8("", 3), "");
    EXPECT_EQ(bounded_utf8("abc", 0), "");
    // "a€" is 4 bytes: a bound of 2 or 3 keeps "a", not half of the euro sign.
    EXPECT_EQ(bounded_utf8("a\xE2\x82\xAC", 2), "a");
    EXPECT_EQ(bounded_utf8("a\xE2\x82\xAC", 3), "a");
    EXPECT_EQ(bounded_utf8("a\xE2\x82\xAC", 4), "a\xE2\x82\xAC");
}

TEST(BoundedUtf8, IllFormedBytesBecomeQuestionMarks) {
    EXPECT_EQ(bounded_utf8("a\xFF\x80z", 64), "a??z");
    EXPECT_EQ(bounded_utf8("\xED\xA0\x80", 64), "???");        // a surrogate
    EXPECT_EQ(bounded_utf8("ok \xF0\x9F\x98", 64), "ok ???");  // cut by the end of the text
    for (const Case& c : kCases) {
        for (std::size_t max = 0; max <= c.bytes.size() + 1; ++max) {
            const auto out = bounded_utf8(c.bytes, max);
            EXPECT_TRUE(valid_utf8(out)) << c.name << " " << max;
            EXPECT_LE(out.size(), max) << c.name;
        }
        if (c.valid) {
            EXPECT_EQ(bounded_utf8(c.bytes, c.bytes.size()), c.bytes) << c.name;
        }
    }
}

}  // namespace
}  // namespace hearth::util
