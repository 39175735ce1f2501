#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hearth::util {

/// Whether `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

/// `text` as at most `max_bytes` bytes of well-formed UTF-8, for a field that a client chose and an
/// operator reads (an event, a JSON document): cut at a character boundary, and each byte of an
/// ill-formed sequence replaced by '?'. Never longer than `max_bytes`, whatever `text` is.
std::string bounded_utf8(std::string_view text, std::size_t max_bytes);

}  // namespace hearth::util
