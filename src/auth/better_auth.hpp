#pragma once

// The better-auth bridge (docs/better-auth.md): a session token issued by a web application that
// uses better-auth is valid here while its session row's expiry is in the future. Hearth only
// reads the web application's PostgreSQL database (one prepared SELECT joining the session and
// user tables, names from `[auth.better_auth]`), and maps each external user to a Hearth account,
// created on first sight with external_id "better-auth:<user id>".
//
// Threads: `pool_size` threads of its own, each with one blocking libpq connection, take
// validations from one bounded queue (`max_pending`; past it: kUnavailable at once), so nothing
// blocks the caller's (io) thread. A query waits at most `query_timeout_ms`. A broken connection
// is opened again on the next validation (which runs once more on it when the old connection
// broke before answering); after a failed attempt, validations fail at once with kUnavailable for
// `retry_interval_ms`. Failures are logged once per run (the database named with its password
// masked), and once more when it works again.
//
// Completions run on a bridge thread or a store thread (the account mapping), never on the
// caller's. Errors (hearth::Errc):
//   kUnauthenticated  unknown token, expired session, or the Hearth account is disabled
//   kUnavailable      the database cannot be reached or answer in time, or the queue is full
//   kShuttingDown     the bridge was destroyed before the validation ran
//   others            from the account store while mapping the user (kStorageFailure, ...)

#include <memory>
#include <string>
#include <string_view>

#include <hearth/account_store.hpp>

#include "auth/account_service.hpp"
#include "auth/better_auth_config.hpp"

namespace hearth::core {
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::auth {

/// The prefix of a Hearth account's external_id for a better-auth user: "better-auth:<id>".
inline constexpr std::string_view kBetterAuthPrefix = "better-auth:";

/// The SELECT the bridge prepares for `config`, every name quoted ("userId" keeps its case). Its
/// columns: user id (text), expiry (epoch milliseconds), still valid (bool, compared with the
/// database's now()), name, email. Requires valid identifiers (valid_sql_identifier).
std::string better_auth_query(const BetterAuthConfig& config);

/// A Hearth username made from a better-auth user: its name, else its email's local part, else
/// "user-<id>", kept to letters, digits, '_', '-' and '.' (spaces become '_'), at most 64
/// characters; `attempt` 2, 3, ... appends "-2", "-3", ... (shortening the rest to fit).
std::string better_auth_username(std::string_view name, std::string_view email,
                                 std::string_view user_id, int attempt);

/// Thread-safe. Owned by the app, shared with the AccountService it is given to. `accounts` and
/// `metrics` must outlive it and every validation in flight. The destructor fails the queued
/// validations with kShuttingDown and joins its threads (waiting for queries in progress, at most
/// about query_timeout_ms); it may run on any thread, including one of its own.
class BetterAuthBridge final : public ExternalValidator {
public:
    /// Starts the threads, which connect at once (a database down at startup is logged, not
    /// fatal). Throws std::invalid_argument when a table or column name is not a valid identifier
    /// (the config section's validation refuses those first).
    BetterAuthBridge(const BetterAuthConfig& config, store::AccountStore& accounts,
                     core::MetricsRegistry& metrics);
    ~BetterAuthBridge() override;
    BetterAuthBridge(const BetterAuthBridge&) = delete;
    BetterAuthBridge& operator=(const BetterAuthBridge&) = delete;

    /// The principal of a better-auth session token (kind session, token_id 0, expiring with the
    /// session), its Hearth account created on first sight.
    void validate(std::string token, Done<Principal> done) override;

    /// False while the external database cannot be used (the last attempt to connect or query
    /// failed), for /ready.
    bool healthy() const noexcept;

    struct Core;

private:
    std::shared_ptr<Core> core_;
};

}  // namespace hearth::auth
