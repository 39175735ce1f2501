#include "util/time.hpp"
#include <charconv>
#include <ctime>

namespace hearth::util {

namespace {

template <class T>
std::optional<T> parse_int(std::string_view s) {
    T v{};
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, v);
    if (ec != std::errc() || ptr != end || s.empty()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

std::optional<std::int64_t> parse_time_ms(std::string_view s) {
    if (auto ms = parse_int<std::int64_t>(s)) {
        return ms;
    }
    // YYYY-MM-DDTHH:MM:SS, then an optional fraction, then Z or +HH:MM / -HH:MM.
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return std::nullopt;
    }
    const auto field = [&](std::size_t at, std::size_t len) {
        return parse_int<int>(s.substr(at, len));
    };
    const auto year = field(0, 4), month = field(5, 2), day = field(8, 2), hour = field(11, 2),
               minute = field(14, 2), second = field(17, 2);
    if (!year || !month || !day || !hour || !minute || !second || *month < 1 || *month > 12 ||
        *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    std::size_t i = 19;
    std::int64_t millis = 0;
    if (i < s.size() && s[i] == '.') {
        std::size_t digits = 0;
        for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits) {
            if (digits < 3) {
                millis = millis * 10 + (s[i] - '0');
            }
        }
        if (digits == 0) {
            return std::nullopt;
        }
        for (; digits < 3; ++digits) {
            millis *= 10;
        }
    }
    std::int64_t offset_s = 0;
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        const auto oh = field(i + 1, 2), om = field(i + 4, 2);
        if (!oh || !om || *oh > 23 || *om > 59) {
            return std::nullopt;
        }
        offset_s = (s[i] == '-' ? -1 : 1) * (*oh * 3600 + *om * 60);
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) {
        return std::nullopt;
    }
    std::tm t{};
    t.tm_year = *year - 1900;
    t.tm_mon = *month - 1;
    t.tm_mday = *day;
    t.tm_hour = *hour;
    t.tm_min = *minute;
    t.tm_sec = *second;
    const std::time_t secs = timegm(&t);
    return (static_cast<std::int64_t>(secs) - offset_s) * 1000 + millis;
}

}  // namespace hearth::util
