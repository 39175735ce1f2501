#include "util/utf8.hpp"
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace hearth::util {
namespace {

// What a lead byte allows, from the Unicode standard's table of well-formed byte sequences
// (Table 3-7): how many continuation bytes follow, and the range of the first of them. The
// narrowed first ranges are what exclude overlongs (E0, F0), surrogates (ED) and code points above
// U+10FFFF (F4); every later continuation byte is 80..BF. Bytes that cannot start a character
// (continuations, C0, C1, F5..FF) have no continuation count and are rejected.
struct Lead {
    std::uint8_t continuations = 0xFF;  // 0xFF: not a lead byte
    std::uint8_t lo = 0x80;
    std::uint8_t hi = 0xBF;
};

constexpr std::array<Lead, 256> make_leads() {
    std::array<Lead, 256> t{};
    for (unsigned b = 0; b < 0x80; ++b) {
        t[b].continuations = 0;
    }
    for (unsigned b = 0xC2; b <= 0xDF; ++b) {
        t[b].continuations = 1;
    }
    for (unsigned b = 0xE0; b <= 0xEF; ++b) {
        t[b].continuations = 2;
    }
    t[0xE0].lo = 0xA0;
    t[0xED].hi = 0x9F;
    for (unsigned b = 0xF0; b <= 0xF4; ++b) {
        t[b].continuations = 3;
    }
    t[0xF0].lo = 0x90;
    t[0xF4].hi = 0x8F;
    return t;
}

constexpr std::array<Lead, 256> kLeads = make_leads();

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

}  // namespace

bool valid_utf8(std::string_view text) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const unsigned char* const end = p + text.size();
    while (p != end) {
        // Most traffic is ASCII (JSON): skip it a word at a time.
        while (end - p >= 8) {
            std::uint64_t word = 0;
            std::memcpy(&word, p, sizeof word);
            if ((word & kHighBits) != 0) {
                break;
            }
            p += 8;
        }
        if (p == end) {
            break;
        }
        const Lead lead = kLeads[*p];
        if (lead.continuations == 0) {
            ++p;
            continue;
        }
        if (lead.continuations == 0xFF || end - p <= lead.continuations) {
            return false;
        }
        if (p[1] < lead.lo || p[1] > lead.hi) {
            return false;
        }
        for (unsigned i = 2; i <= lead.continuations; ++i) {
            if ((p[i] & 0xC0U) != 0x80U) {
                return false;
            }
        }
        p += 1 + lead.continuations;
    }
    return true;
}

std::string bounded_utf8(std::string_view text, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(text.size(), max_bytes));
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const unsigned char* const end = p + text.size();
    while (p != end) {
        const Lead lead = kLeads[*p];
        std::size_t length = 1;
        bool well_formed = lead.continuations != 0xFF;
        if (well_formed && lead.continuations > 0) {
            well_formed = end - p > lead.continuations && p[1] >= lead.lo && p[1] <= lead.hi;
            for (unsigned i = 2; well_formed && i <= lead.continuations; ++i) {
                well_formed = (p[i] & 0xC0U) == 0x80U;
            }
            length = well_formed ? 1U + lead.continuations : 1U;
        }
        if (out.size() + length > max_bytes) {
            break;
        }
        if (well_formed) {
            out.append(reinterpret_cast<const char*>(p), length);
        } else {
            out.push_back('?');
        }
        p += length;
    }
    return out;
}

}  // namespace hearth::util
