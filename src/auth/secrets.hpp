#pragma once

// Passwords and tokens: how they are made, hashed and compared (docs/security.md). libsodium does
// the cryptography; nothing here is hand-written beyond choosing its parameters.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hearth::auth {

/// Costs of argon2id (libsodium crypto_pwhash_str). Hashing takes ~50-500 ms of one core at these
/// costs: it runs on the blocking pool, never on an io thread.
struct PasswordCost {
    std::uint64_t ops_limit = 2;              // crypto_pwhash_OPSLIMIT_INTERACTIVE
    std::size_t mem_limit_bytes = 64u << 20;  // crypto_pwhash_MEMLIMIT_INTERACTIVE
    bool operator==(const PasswordCost&) const = default;
};

/// Calls sodium_init once; throws std::runtime_error if libsodium cannot start (no entropy).
void init_crypto();

/// An argon2id hash in libsodium's string form ("$argon2id$v=19$m=...,t=...,p=1$salt$hash").
/// Throws std::runtime_error when the memory cost cannot be allocated. Blocking.
std::string hash_password(std::string_view password, const PasswordCost& cost);

/// Whether `password` matches `stored` (a hash_password string). Blocking. A malformed `stored`
/// never matches.
bool verify_password(std::string_view stored, std::string_view password);

/// Whether `stored` was made with other costs than `cost` (then rehash on the next login).
bool needs_rehash(std::string_view stored, const PasswordCost& cost);

/// A new secret token: 256 random bits as base64url without padding (43 characters).
std::string new_token();

/// A new secret of `bytes` random bytes as lower-case hex (Moonshare's tokens: 16 bytes, 32
/// characters).
std::string new_hex_token(std::size_t bytes);

/// What the store keeps of a token: its SHA-256, lower-case hex. Tokens are 256-bit random
/// values, so a fast hash is enough (no salt, no stretching), and it lets a lookup find the row.
std::string token_digest(std::string_view token);

/// A short, non-secret reference to a token for listings and logs: the first 8 hex characters of
/// its digest.
std::string token_fingerprint(std::string_view token);

/// Constant-time equality of two strings of the same length (different lengths: false at once;
/// callers compare digests, whose length is public).
bool equal_constant_time(std::string_view a, std::string_view b);

}  // namespace hearth::auth
