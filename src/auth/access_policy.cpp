#include "auth/access_policy.hpp"
#include <algorithm>

namespace hearth::auth {

namespace {

bool has_any_role(const Principal& p, const std::vector<std::string>& roles) {
    return std::any_of(roles.begin(), roles.end(),
                       [&p](const std::string& role) { return p.has_role(role); });
}

}  // namespace

std::string_view to_string(Refusal refusal) noexcept {
    switch (refusal) {
        case Refusal::kNone:
            return "none";
        case Refusal::kMissingToken:
            return "missing_token";
        case Refusal::kInvalidToken:
            return "invalid_token";
        case Refusal::kKindNotAccepted:
            return "kind_not_accepted";
        case Refusal::kMissingScope:
            return "missing_scope";
        case Refusal::kMissingRole:
            return "missing_role";
        case Refusal::kForeignRealm:
            return "foreign_realm";
        case Refusal::kUnavailable:
            return "unavailable";
    }
    return "unknown";
}

Refusal AccessPolicy::check(const Principal& p) const {
    switch (p.kind) {
        case TokenKind::kApiKey:
            if (api_key_scope.empty()) {
                return Refusal::kKindNotAccepted;
            }
            if (std::find(p.scopes.begin(), p.scopes.end(), api_key_scope) == p.scopes.end()) {
                return Refusal::kMissingScope;
            }
            if (!api_key_roles.empty() && !has_any_role(p, api_key_roles)) {
                return Refusal::kMissingRole;
            }
            return Refusal::kNone;
        case TokenKind::kSession:
            if (session_roles.empty()) {
                return Refusal::kKindNotAccepted;
            }
            return has_any_role(p, session_roles) ? Refusal::kNone : Refusal::kMissingRole;
        case TokenKind::kGuest:
            if (guest_realm.empty()) {
                return Refusal::kKindNotAccepted;
            }
            return p.realm == guest_realm ? Refusal::kNone : Refusal::kForeignRealm;
    }
    return Refusal::kKindNotAccepted;
}

const AccessPolicy& operator_policy() {
    static const AccessPolicy policy{.door = "operator",
                                     .api_key_scope = "admin",
                                     .api_key_roles = {"admin"},
                                     .session_roles = {"admin"}};
    return policy;
}

}  // namespace hearth::auth
