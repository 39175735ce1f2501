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
#include <vector>

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

/// Browsers cannot set headers on a WebSocket, so an operator's page passes its token as the
/// subprotocol `hearth.bearer.<the token in base64url without padding>` beside the stream's own.
inline constexpr std::string_view kBearerSubprotocolPrefix = "hearth.bearer.";

/// The token an operator stream's upgrade presents, and how.
struct PresentedToken {
    enum class Kind : std::uint8_t { kNone, kHeader, kSubprotocol, kMalformed };
    Kind kind = Kind::kNone;
    std::string token;  // kSubprotocol: decoded; kHeader: the Authorization header's value
};

/// Authorization (any scheme: a non-Bearer one is refused later as a token that is not valid)
/// wins over the bearer subprotocol; the first bearer subprotocol offered counts.
PresentedToken presented_token(const HttpRequest& req);

/// Whether a browser page of this request's Origin may open an operator stream: no Origin (not a
/// browser), an Origin whose host[:port] is the Host the request was sent to (the scheme is not
/// compared, so that a proxy may terminate TLS), or one of `allowed` (case-insensitive).
bool origin_allowed(const HttpRequest& req, const std::vector<std::string>& allowed);

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

    /// For a WebSocket upgrade that streams operator data: the token of `presented` (from
    /// `presented_token`), which must be there and well-formed (else 401), from a page of an
    /// allowed Origin (else 403 `forbidden_origin`: a page of another origin must not use an
    /// operator's browser and token), then as `authorize`.
    void authorize_upgrade(const HttpRequest& req, const PresentedToken& presented,
                           const std::vector<std::string>& allowed_origins,
                           std::function<void(Outcome)> then) const;

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
