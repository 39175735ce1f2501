#pragma once

#include <string_view>

namespace hearth::util {

/// Whether `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

}  // namespace hearth::util
