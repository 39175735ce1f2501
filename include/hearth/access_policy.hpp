#pragma once

// Which tokens a front-end (or any other door: the operator API, the logs stream) lets in. Public
// because a module declares its doors (ModuleInfo, GET /api/v1/modules). Every door declares one
// AccessPolicy and asks AccountService::authorize with it; nothing is accepted
// that the declaration does not name (docs/security.md has the table of every door).
//
// Token kinds keep their meaning everywhere: an API key carries its scopes, a session (Hearth's
// own or an external web application's) carries its account's roles, a guest token carries the
// realm that issued it and is valid there alone.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::auth {

struct Principal;  // auth/principal.hpp

/// Why a door refused a token. The names are the `reason` label of
/// hearth_auth_refusals_total and appear in the refusal's log line.
enum class Refusal : std::uint8_t {
    kNone,             // accepted
    kMissingToken,     // nothing presented
    kInvalidToken,     // unknown, expired, revoked, or its account is disabled
    kKindNotAccepted,  // this door takes no token of this kind
    kMissingScope,     // an API key without the door's scope
    kMissingRole,      // a session (or API key) whose account has none of the door's roles
    kForeignRealm,     // a guest token issued by another realm
    kUnavailable,      // the token could not be checked (store or external validator down)
};

std::string_view to_string(Refusal refusal) noexcept;

struct AccessPolicy {
    /// The door's name: the `door` label of the refusal metric and the log lines
    /// ("homestead", "native", "operator", ...).
    std::string door = {};
    /// API keys are accepted when they carry this scope; empty: no API key is accepted.
    std::string api_key_scope = {};
    /// ... and, when not empty, when their account also has one of these roles (the operator
    /// API: scope admin on an admin account).
    std::vector<std::string> api_key_roles = {};
    /// Sessions (Hearth's own and external ones) are accepted when their account has one of
    /// these roles; empty: no session is accepted.
    std::vector<std::string> session_roles = {};
    /// Guest tokens of this realm are accepted; empty: no guest token is.
    std::string guest_realm = {};

    /// Whether `p` may pass this door: kNone, or why not.
    Refusal check(const Principal& p) const;

    bool operator==(const AccessPolicy&) const = default;
};

/// Which account tokens the operator endpoints (OperatorAuth) take: an admin account's session,
/// or an API key with scope admin of an admin account. The `[http] admin_token` is checked
/// before it.
const AccessPolicy& operator_policy();

}  // namespace hearth::auth
