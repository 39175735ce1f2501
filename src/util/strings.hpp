#pragma once

#include <string>
#include <string_view>

namespace hearth::util {

/// ASCII case-insensitive equality (header names, extension tokens, protocol keywords): locale
/// independent, unlike strcasecmp, and without allocating.
constexpr bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = static_cast<char>(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = static_cast<char>(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

/// Calls `f` with each item of a comma-separated header list (Sec-WebSocket-Protocol,
/// Sec-WebSocket-Extensions, Connection), spaces and tabs around it removed, empty items skipped;
/// stops early when `f` returns true. Returns whether it stopped early.
template <class F>
constexpr bool for_each_list_item(std::string_view list, F&& f) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
            item.remove_prefix(1);
        }
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
            item.remove_suffix(1);
        }
        if (!item.empty() && f(item)) {
            return true;
        }
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
    return false;
}

/// The address part of a connection's peer as the transport writes it: "1.2.3.4:5" -> "1.2.3.4",
/// "[::1]:5" -> "::1" (what per-address throttles and counts key on).
inline std::string ip_of_peer(std::string_view peer) {
    const auto colon = peer.rfind(':');
    std::string_view ip = colon == std::string_view::npos ? peer : peer.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    return std::string(ip);
}

}  // namespace hearth::util
