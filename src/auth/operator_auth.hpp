#pragma once

// Who may call the operator endpoints (/api/v1/...): the `[http] admin_token` bearer token, or a
// token of an admin account (a session token, or an API key with the "admin" scope) validated by
// the account service. Every operator route asks this one object.

#include <array>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <hearth/http.hpp>

#include "auth/access_policy.hpp"
#include "auth/principal.hpp"

namespace hearth::auth {

class AccountService;

/// Who made an operator request, for the audit log.
struct Actor {
    std::string name;                         // "admin_token" or "account:<username>"
    std::optional<Principal> principal = {};  // absent for the admin token
    std::string peer;                         // the caller's address ("ip:port")
};

/// The bearer token of a request ("" when there is none).
std::string_view bearer_token(const HttpRequest& req);

/// Thread-safe: routes check requests from io threads while the control thread applies a reload.
class OperatorAuth {
public:
    using Outcome = std::variant<Actor, HttpResponse>;

    /// Replaces the admin token; empty means only admin accounts' tokens are accepted.
    void set_admin_token(std::string_view token);
    /// Lets admin accounts' tokens in; `accounts` must outlive this object's routes.
    void set_accounts(AccountService* accounts);

    /// The actor, or the response to send: 401 `unauthorized` (no token, or not a valid one, with
    /// `WWW-Authenticate: Bearer`), 403 `forbidden` (a valid token without the admin right), 503
    /// when the account store cannot answer. `then` runs on the calling thread (admin token) or a
    /// store thread (account tokens).
    void authorize(const HttpRequest& req, std::function<void(Outcome)> then) const;

    /// The admin-token check alone, answered at once (nothing when accepted).
    std::optional<HttpResponse> check(const HttpRequest& req) const;

private:
    using Digest = std::array<unsigned char, 32>;
    static Digest digest(std::string_view token);
    bool is_admin_token(std::string_view presented) const;

    mutable std::mutex mutex_;
    bool token_set_ = false;
    // Compared as SHA-256 digests in constant time, so that neither the comparison's duration nor
    // the token's length tells a caller how close a guess was.
    Digest token_digest_{};
    AccountService* accounts_ = nullptr;
};

/// The 401 answer of every operator endpoint.
HttpResponse unauthorized(std::string_view message);

}  // namespace hearth::auth
