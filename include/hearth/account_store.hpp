#pragma once

// Accounts, tokens and the audit log as the store keeps them (docs/security.md). Same threading,
// order and error rules as the rest of the store (store.hpp): asynchronous, completions on store
// threads, bounded queues. The account logic (hashing, throttling, caching, rights) lives in
// src/auth; this is persistence only. Secrets are never stored: passwords as argon2id hashes,
// tokens as SHA-256 digests.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <hearth/store.hpp>

namespace hearth::store {

using TimePoint = std::chrono::system_clock::time_point;

struct AccountRecord {
    std::uint64_t id = 0;
    std::string username;                   // as given; unique case-insensitively (ASCII)
    std::optional<std::string> email = {};  // unique case-insensitively when set
    std::string password_hash;              // argon2id string; "" for guests and external accounts
    bool disabled = false;
    bool guest = false;                           // a user id without a password (Moonshare)
    std::vector<std::string> roles = {};          // "admin", "moderator", "player"
    std::optional<std::string> external_id = {};  // better-auth user id, when mapped
    TimePoint created_at{};
    std::optional<TimePoint> last_login_at = {};
};

/// Changes to an account; unset fields stay.
struct AccountPatch {
    std::optional<std::optional<std::string>> email = {};  // set to nullopt to clear
    std::optional<std::string> password_hash = {};
    std::optional<bool> disabled = {};
    std::optional<std::vector<std::string>> roles = {};
    std::optional<TimePoint> last_login_at = {};
};

struct AccountFilter {
    std::optional<bool> disabled = {};
    std::optional<std::string> role = {};
    std::optional<std::string> username_prefix = {};  // case-insensitive
    std::optional<std::uint64_t> after_id = {};       // the page cursor: ids greater than it
    std::size_t limit = 100;
};

enum class TokenKindCode : std::uint8_t { kSession = 0, kApiKey = 1, kGuest = 2 };

struct TokenRecord {
    std::uint64_t id = 0;
    std::uint64_t account_id = 0;
    TokenKindCode kind = TokenKindCode::kSession;
    std::string name;                      // API keys: the operator's label
    std::string digest;                    // SHA-256 of the token, hex; unique
    std::vector<std::string> scopes = {};  // API keys
    TimePoint created_at{};
    std::optional<TimePoint> expires_at = {};
    std::optional<TimePoint> revoked_at = {};
};

/// A token found by its digest, with what validation needs of its account.
struct TokenLookup {
    TokenRecord token;
    AccountRecord account;
};

struct TokenFilter {
    std::optional<std::uint64_t> account_id = {};
    std::optional<TokenKindCode> kind = {};
    bool include_revoked = false;
    std::optional<std::uint64_t> after_id = {};
    std::size_t limit = 100;
};

struct AuditEntry {
    std::uint64_t id = 0;
    TimePoint at{};
    std::string actor;   // "account:alice", "admin_token", "cli"
    std::string action;  // "account.create", "token.revoke", "connection.kick", ...
    std::string target;  // "account:bob", "token:17", ...
    std::string peer;    // the caller's address, "" from the CLI
    std::string detail;  // JSON object text, "" when none
};

struct AuditFilter {
    std::optional<std::string> actor = {};
    std::optional<std::string> action = {};
    std::optional<std::uint64_t> before_id = {};  // newest first: ids lower than it
    std::size_t limit = 100;
};

/// Semantics shared by every backend: usernames and emails are unique case-insensitively (ASCII
/// letters folded; the store folds them itself); roles and scopes are stored in their order;
/// times have millisecond precision; ids are increasing and never reused. Filters match exactly
/// except `username_prefix` (case-insensitive prefix).
class AccountStore {
public:
    virtual ~AccountStore() = default;

    /// kAlreadyExists when the username or the email is taken (case-insensitively).
    virtual void create_account(AccountRecord account, Completion<AccountRecord> done) = 0;
    /// kNotFound when there is no such account.
    virtual void account_by_id(std::uint64_t id, Completion<AccountRecord> done) = 0;
    virtual void account_by_name(std::string username, Completion<AccountRecord> done) = 0;
    virtual void account_by_external_id(std::string external_id,
                                        Completion<AccountRecord> done) = 0;
    /// Ordered by id.
    virtual void list_accounts(AccountFilter filter,
                               Completion<std::vector<AccountRecord>> done) = 0;
    /// The account after the change; kNotFound, kAlreadyExists (email taken).
    virtual void update_account(std::uint64_t id, AccountPatch patch,
                                Completion<AccountRecord> done) = 0;
    /// Deletes the account and its tokens; kNotFound.
    virtual void delete_account(std::uint64_t id, Completion<void> done) = 0;

    /// The new token's record (its id assigned); kAlreadyExists for a digest already stored.
    virtual void insert_token(TokenRecord token, Completion<TokenRecord> done) = 0;
    /// kNotFound when no token has this digest (revoked and expired ones are returned: the caller
    /// decides).
    virtual void token_by_digest(std::string digest, Completion<TokenLookup> done) = 0;
    virtual void token_by_id(std::uint64_t id, Completion<TokenRecord> done) = 0;
    /// Ordered by id.
    virtual void list_tokens(TokenFilter filter, Completion<std::vector<TokenRecord>> done) = 0;
    /// Marks the token revoked at `at` (a no-op for one already revoked); the record after it;
    /// kNotFound.
    virtual void revoke_token(std::uint64_t id, TimePoint at, Completion<TokenRecord> done) = 0;
    /// Deletes tokens expired or revoked before `before`; the number deleted.
    virtual void purge_tokens(TimePoint before, Completion<std::uint64_t> done) = 0;

    virtual void append_audit(AuditEntry entry, Completion<AuditEntry> done) = 0;
    /// Newest first.
    virtual void list_audit(AuditFilter filter, Completion<std::vector<AuditEntry>> done) = 0;
};

}  // namespace hearth::store
