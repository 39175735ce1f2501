#include "frontends/moonshare/common.hpp"
#include <algorithm>
#include <cctype>

#include "auth/registration_throttle.hpp"

namespace hearth::frontends::moonshare {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("moonshare");
    return l;
}

std::string ip_of(const std::string& peer) {
    const auto colon = peer.rfind(':');
    std::string ip = colon == std::string::npos ? peer : peer.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    return ip;
}

std::string address_key_of(const std::string& peer) {
    return auth::address_key(ip_of(peer));
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace hearth::frontends::moonshare
