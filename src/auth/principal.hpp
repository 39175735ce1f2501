#pragma once

// Who a request or connection acts as, once its token is validated. What a principal may do is
// decided by each door's AccessPolicy (access_policy.hpp), never by the principal alone.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::auth {

enum class TokenKind : std::uint8_t { kSession, kApiKey, kGuest };

inline std::string_view to_string(TokenKind kind) noexcept {
    switch (kind) {
        case TokenKind::kSession:
            return "session";
        case TokenKind::kApiKey:
            return "api";
        case TokenKind::kGuest:
            return "guest";
    }
    return "unknown";
}

struct Principal {
    std::uint64_t account_id = 0;
    std::string username;
    std::vector<std::string> roles;  // "admin", "moderator", "player"
    TokenKind kind = TokenKind::kSession;
    std::uint64_t token_id = 0;
    std::vector<std::string> scopes;  // API keys: front-end names and "admin"; empty otherwise
    // Guest tokens: who the token was issued for (e.g. a Moonshare user id), shared guest account
    // of its realm in `username` ("guest:moonshare"); empty for other kinds.
    std::string subject;
    // Guest tokens: the realm that issued the token ("moonshare"); a guest token is valid there
    // alone. Empty for other kinds.
    std::string realm;
    // A session of an external web application (the better-auth bridge), not issued by Hearth.
    bool external = false;
    std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max();

    bool has_role(std::string_view role) const {
        return std::find(roles.begin(), roles.end(), role) != roles.end();
    }
};

}  // namespace hearth::auth
