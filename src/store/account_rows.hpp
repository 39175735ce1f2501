#pragma once

// Conversions every backend's account tables share (migration 3, include/hearth/account_store.hpp):
// the case folding of unique keys, comma-separated lists, and millisecond times. Kept here so that
// SQLite and PostgreSQL store exactly the same values.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/account_store.hpp>

namespace hearth::store::rows {

/// ASCII A-Z folded to a-z: the unique key of usernames and emails (SQL lower() differs between
/// backends and locales).
inline std::string fold(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

inline std::optional<std::string> fold_opt(const std::optional<std::string>& s) {
    return s ? std::optional<std::string>(fold(std::string_view(*s))) : std::nullopt;
}

/// Roles and scopes as stored: "a,b,c" ("" for none). Their names never hold a comma.
inline std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) {
            out += ',';
        }
        out += i;
    }
    return out;
}

/// Whether every item reads back as itself once joined: not empty, no comma.
inline bool joinable(const std::vector<std::string>& items) {
    for (const auto& i : items) {
        if (i.empty() || i.find(',') != std::string::npos) {
            return false;
        }
    }
    return true;
}

inline std::vector<std::string> split(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        const auto comma = s.find(',');
        out.emplace_back(s.substr(0, comma));
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    }
    return out;
}

inline std::int64_t ms(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::optional<std::int64_t> ms(const std::optional<TimePoint>& t) {
    return t ? std::optional<std::int64_t>(ms(*t)) : std::nullopt;
}
inline TimePoint time_of(std::int64_t ms_since_epoch) {
    return TimePoint(std::chrono::milliseconds(ms_since_epoch));
}

}  // namespace hearth::store::rows
