#pragma once

// The `[auth]` config section: password hashing costs, session lifetime, the token cache and the
// login throttle (docs/security.md).

#include <chrono>
#include <cstdint>
#include <string_view>

#include "auth/login_throttle.hpp"
#include "auth/registration_throttle.hpp"
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
    std::int64_t max_pending_hashes = 64;  // password hashes queued on the hashing threads
    std::int64_t max_pending_registration_hashes = 8;  // of which self-service registrations
    std::int64_t hash_threads = 2;
    std::int64_t min_password_length = 8;
    std::int64_t registrations_per_address_per_hour = 20;
    std::int64_t registrations_per_door_per_minute = 60;

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
          {.help = "Password hashes (logins, account changes) waiting for or running on the "
                   "hashing threads; past it new ones fail at once with 503 busy.",
           .min = 1,
           .max = 100'000});
        v("max_pending_registration_hashes", max_pending_registration_hashes,
          {.help = "Of those, hashes for self-service registrations (DracoSoft's register); past "
                   "it registrations are refused, so that logins always find room. Logins are "
                   "hashed before any waiting registration.",
           .min = 1,
           .max = 100'000});
        v("hash_threads", hash_threads,
          {.help = "Threads that hash passwords (argon2id), apart from the blocking pool that "
                   "does file work; each uses password_mem_limit_kib while it hashes.",
           .restart = true,
           .min = 1,
           .max = 256});
        v("min_password_length", min_password_length,
          {.help = "Shortest password a new account or a password change may have, in bytes. "
                   "Lower it (down to 1) for a community moved from a server that took any "
                   "password.",
           .min = 1,
           .max = 1024});
        v("registrations_per_address_per_hour", registrations_per_address_per_hour,
          {.help = "Self-service registrations (a front-end's register) one client address may "
                   "make per hour, IPv6 counted by /64; 0 closes self-service registration. "
                   "Accounts made by operators are not counted.",
           .min = 0,
           .max = 1'000'000});
        v("registrations_per_door_per_minute", registrations_per_door_per_minute,
          {.help = "Self-service registrations one front-end accepts per minute from all "
                   "addresses together; 0 closes self-service registration.",
           .min = 0,
           .max = 1'000'000});
    }
    bool operator==(const AuthConfig&) const = default;

    PasswordCost password_cost() const {
        return PasswordCost{
            .ops_limit = static_cast<std::uint64_t>(password_ops_limit),
            .mem_limit_bytes = static_cast<std::size_t>(password_mem_limit_kib) * 1024};
    }
    RegistrationPolicy registration_policy() const {
        RegistrationPolicy p;
        p.per_address_per_hour = static_cast<std::uint32_t>(registrations_per_address_per_hour);
        p.per_door_per_minute = static_cast<std::uint32_t>(registrations_per_door_per_minute);
        return p;
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
