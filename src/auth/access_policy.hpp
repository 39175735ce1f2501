#pragma once

// The declaration itself is public (include/hearth/access_policy.hpp): modules list their doors.
// Checking a principal against it needs the principal's definition.

#include <hearth/access_policy.hpp>

#include "auth/principal.hpp"

namespace hearth::auth {

/// The outcome of AccountService::authorize: the principal when `refusal` is kNone.
struct AccessDecision {
    Refusal refusal = Refusal::kInvalidToken;
    Principal principal = {};
    /// For a refusal, more about it for the operator's events ("expired", "revoked", the refused
    /// token's kind and account); never the token, and never told to the client.
    std::string why = {};

    bool accepted() const noexcept { return refusal == Refusal::kNone; }
};

}  // namespace hearth::auth
