#pragma once

// Who a request or connection acts as, once its token is validated.

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
    std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max();

    bool has_role(std::string_view role) const {
        return std::find(roles.begin(), roles.end(), role) != roles.end();
    }
    /// Whether the token may be used for `scope` ("native", "homestead", "admin"): session and
    /// guest tokens carry their account's rights; an API key only its scopes.
    bool allows(std::string_view scope) const {
        if (kind != TokenKind::kApiKey) {
            return scope != "admin" || has_role("admin");
        }
        return std::find(scopes.begin(), scopes.end(), scope) != scopes.end() &&
               (scope != "admin" || has_role("admin"));
    }
};

}  // namespace hearth::auth
