#include "frontends/moonshare/common.hpp"
#include <algorithm>
#include <cctype>

#include "auth/registration_throttle.hpp"
#include "util/strings.hpp"

namespace hearth::frontends::moonshare {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("moonshare");
    return l;
}

std::string address_key_of(const std::string& peer) {
    return auth::address_key(util::ip_of_peer(peer));
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
