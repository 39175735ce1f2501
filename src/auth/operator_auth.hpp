#pragma once

// Who may call the operator endpoints (/api/v1/...). Today: the `[http] admin_token` bearer
// token. The accounts issue adds admin accounts' session tokens and API keys here, so that every
// operator route keeps asking this one object.

#include <array>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <hearth/http.hpp>

namespace hearth::auth {

/// Thread-safe: routes check requests from io threads while the control thread applies a reload.
class OperatorAuth {
public:
    /// Replaces the admin token; empty means no token is accepted.
    void set_admin_token(std::string_view token);

    /// Nothing when `req` carries `Authorization: Bearer <admin token>`; otherwise the response to
    /// send: 401 `unauthorized` (no token, or not a valid one) with `WWW-Authenticate: Bearer`.
    std::optional<HttpResponse> check(const HttpRequest& req) const;

private:
    using Digest = std::array<unsigned char, 32>;
    static Digest digest(std::string_view token);

    mutable std::mutex mutex_;
    bool token_set_ = false;
    // Compared as SHA-256 digests in constant time, so that neither the comparison's duration nor
    // the token's length tells a caller how close a guess was.
    Digest token_digest_{};
};

}  // namespace hearth::auth
