#pragma once

// Moonshare's wire details that are not I/O (docs/protocol/moonshare.md): JSON written the way
// the original .NET servers write it (System.Text.Json's default escaping), .NET's TimeSpan and
// round-trip date formats, and the plugin's StableHash. Pure functions: no I/O, any thread.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::frontends::moonshare {

/// Appends `s` (UTF-8) as a JSON string literal, quotes included, escaped as System.Text.Json's
/// default encoder (JavaScriptEncoder.Default) does: `"` `&` `'` `+` `<` `>` and '`' as \uXXXX,
/// `\` as \\, \b \t \n \f \r short, other controls and DEL as \u00XX, every non-ASCII character as
/// \uXXXX (UTF-16, surrogate pairs for astral ones), hex digits upper-case. Invalid UTF-8 becomes
/// \uFFFD per bad byte, as .NET's decoder does for lone bytes.
void append_json_string(std::string& out, std::string_view s);
/// The same, returned.
std::string json_string(std::string_view s);

/// .NET's TimeSpan.ToString() of whole seconds: "hh:mm:ss", with "d." in front when there are
/// days ("1.02:03:04"); negative values get a leading '-'.
std::string timespan(std::chrono::seconds value);

/// .NET's round-trip ("O") form of a UTC DateTime: "2025-07-25T13:10:15.1234567Z" (seven
/// fractional digits).
std::string iso_time(std::chrono::system_clock::time_point t);

/// The plugin's StableHash of a user id: h = 23, then h = h * 31 + c for each UTF-16 code unit c
/// of the id (32-bit wrap-around), then abs(h). For the one value whose abs overflows
/// (h = INT32_MIN, where .NET's Math.Abs throws) the result is 2147483648.
std::uint32_t stable_hash(std::string_view utf8);

/// The player instance the plugin picks for a user id: StableHash(userId) % instances.
inline std::size_t instance_of(std::string_view user_id, std::size_t instances) {
    return instances == 0 ? 0 : stable_hash(user_id) % instances;
}

/// Decodes UTF-8 into UTF-16 code units (invalid bytes become U+FFFD), calling `unit` per unit.
template <class F>
void for_each_utf16(std::string_view s, F&& unit);

}  // namespace hearth::frontends::moonshare

// ---- template definition -----------------------------------------------------------------------

namespace hearth::frontends::moonshare {

template <class F>
void for_each_utf16(std::string_view s, F&& unit) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char b = p[i];
        std::uint32_t cp = 0xFFFD;
        std::size_t len = 1;
        if (b < 0x80) {
            cp = b;
        } else {
            std::size_t need = 0;
            std::uint32_t min = 0;
            if ((b & 0xE0) == 0xC0) {
                need = 1;
                cp = b & 0x1F;
                min = 0x80;
            } else if ((b & 0xF0) == 0xE0) {
                need = 2;
                cp = b & 0x0F;
                min = 0x800;
            } else if ((b & 0xF8) == 0xF0) {
                need = 3;
                cp = b & 0x07;
                min = 0x10000;
            }
            bool ok = need > 0;
            for (std::size_t k = 1; ok && k <= need; ++k) {
                if (i + k >= n || (p[i + k] & 0xC0) != 0x80) {
                    ok = false;
                } else {
                    cp = (cp << 6) | (p[i + k] & 0x3F);
                }
            }
            if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) {
                ok = false;
            }
            if (ok) {
                len = need + 1;
            } else {
                cp = 0xFFFD;
                len = 1;
            }
        }
        if (cp >= 0x10000) {
            const std::uint32_t v = cp - 0x10000;
            unit(static_cast<char16_t>(0xD800 + (v >> 10)));
            unit(static_cast<char16_t>(0xDC00 + (v & 0x3FF)));
        } else {
            unit(static_cast<char16_t>(cp));
        }
        i += len;
    }
}

}  // namespace hearth::frontends::moonshare
