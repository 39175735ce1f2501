#pragma once

// The `[auth]` config section: password hashing costs, session lifetime, the token cache and the
// login throttle (docs/security.md).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "auth/login_throttle.hpp"
#include "auth/secrets.hpp"
#include "core/config.hpp"

namespace hearth::auth {

struct AuthConfig {
    static constexpr std::string_view kName = "auth";
    static constexpr std::string_view kDescription =
        "Accounts and tokens: password hashing costs, session lifetime, token cache, login "
        "throttling.";

    std::int64_t password_ops_limit = 2;          // argon2id passes (libsodium INTERACTIVE)
    std::int64_t password_mem_limit_kib = 65536;  // argon2id memory (libsodium INTERACTIVE)
    std::int64_t session_ttl_s = 86'400;
    std::int64_t token_cache_entries = 100'000;
    std::int64_t token_cache_ttl_ms = 1'000;  // a revocation elsewhere applies within it
    std::int64_t throttle_free_failures = 5;
    std::int64_t throttle_base_delay_ms = 1'000;
    std::int64_t throttle_max_delay_ms = 300'000;
    std::int64_t max_pending_hashes = 64;  // password hashes queued on the blocking pool

    template <class V>
    void visit(V& v) {
        v("password_ops_limit", password_ops_limit,
          {.help = "argon2id passes per password hash; changing it rehashes each password at its "
                   "next login.",
           .min = 1,
           .max = 100});
        v("password_mem_limit_kib", password_mem_limit_kib,
          {.help = "argon2id memory per password hash, in KiB; changing it rehashes each "
                   "password at its next login.",
           .min = 8,
           .max = 4 * 1024 * 1024});
        v("session_ttl_s", session_ttl_s,
          {.help = "Lifetime of a session token from login or refresh, in seconds.",
           .min = 60,
           .max = 365 * 86'400});
        v("token_cache_entries", token_cache_entries,
          {.help = "Validated tokens remembered per node; past it the least recently used go.",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("token_cache_ttl_ms", token_cache_ttl_ms,
          {.help = "How long a validated token is trusted without asking the store: a revocation "
                   "made on another node takes effect here within this time.",
           .restart = true,
           .min = 0,
           .max = 60'000});
        v("throttle_free_failures", throttle_free_failures,
          {.help = "Failed logins per username (and per address) before attempts are delayed.",
           .min = 1,
           .max = 1'000});
        v("throttle_base_delay_ms", throttle_base_delay_ms,
          {.help = "The first delay after the free failures, in milliseconds; it doubles with "
                   "each further failure.",
           .min = 1,
           .max = 3'600'000});
        v("throttle_max_delay_ms", throttle_max_delay_ms,
          {.help = "The longest delay between attempts, in milliseconds.",
           .min = 1,
           .max = 86'400'000});
        v("max_pending_hashes", max_pending_hashes,
          {.help = "Password hashes (logins, account changes) waiting for the blocking pool; past "
                   "it new ones fail at once with 503 busy.",
           .min = 1,
           .max = 100'000});
    }
    bool operator==(const AuthConfig&) const = default;

    PasswordCost password_cost() const {
        return PasswordCost{
            .ops_limit = static_cast<std::uint64_t>(password_ops_limit),
            .mem_limit_bytes = static_cast<std::size_t>(password_mem_limit_kib) * 1024};
    }
    ThrottlePolicy throttle_policy() const {
        ThrottlePolicy p;
        p.free_failures = static_cast<std::uint32_t>(throttle_free_failures);
        p.base_delay = std::chrono::milliseconds(throttle_base_delay_ms);
        p.max_delay = std::chrono::milliseconds(throttle_max_delay_ms);
        return p;
    }
};

}  // namespace hearth::auth
