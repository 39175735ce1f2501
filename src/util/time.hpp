#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hearth::util {

/// A time given by an operator, in milliseconds since the Unix epoch: either that number itself,
/// or an RFC 3339 time such as 2026-11-22T03:04:05Z or 2026-11-22T03:04:05.250+01:00 (fractions
/// beyond milliseconds are ignored). Nothing when it is neither.
std::optional<std::int64_t> parse_time_ms(std::string_view s);

}  // namespace hearth::util
