#pragma once

// The account system every front-end and the operator API use (docs/security.md): accounts,
// logins, session tokens, API keys, validation through a bounded cache, login throttling.
// Persistence is the store's (include/hearth/account_store.hpp); password hashing runs on the
// blocking executor, never on the calling (io) thread.
//
// Completions run on a store thread or on the blocking executor's thread: a caller on an io
// thread wraps its completion with core::post_to_current_thread to get back home. Errors are
// std::error_code values of hearth::Errc:
//   kUnauthenticated  wrong password, unknown user, unknown/expired/revoked token
//   kNotAllowed       the account is disabled (only said after the password matched)
//   kLimitReached     login throttled: retry_after() says for how long
//   kInvalidArgument  a bad username, password, role or scope (invalid_argument_reason())
//   kAlreadyExists    username or email taken
//   kNotFound         no such account or token
//   kUnavailable      too many password hashes pending, or the store is overloaded
//   kStorageFailure   the store failed

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/account_store.hpp>

#include "auth/access_policy.hpp"
#include "auth/auth_config.hpp"
#include "auth/principal.hpp"

namespace hearth::core {
class EventBus;
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::auth {

/// Runs blocking work (password hashing) somewhere else than the caller's thread; the server uses
/// its blocking pool, the CLI runs it inline.
using BlockingExecutor = std::function<void(std::function<void()>)>;

template <class T>
using Done = std::function<void(Result<T>)>;

struct NewAccount {
    std::string username;
    std::string password;
    std::optional<std::string> email = {};
    std::vector<std::string> roles = {"player"};
};

struct AccountChange {
    std::optional<std::string> password = {};
    std::optional<std::optional<std::string>> email = {};
    std::optional<std::vector<std::string>> roles = {};
    std::optional<bool> disabled = {};
};

struct SessionToken {
    std::string token;  // the secret: shown once, never stored
    store::TimePoint expires_at;
    Principal principal;
};

struct IssuedToken {
    std::string token;  // the secret: shown once, never stored
    store::TokenRecord record;
};

struct NewToken {
    std::uint64_t account_id = 0;
    store::TokenKindCode kind = store::TokenKindCode::kApiKey;
    std::string name;
    std::vector<std::string> scopes = {};
    std::optional<std::chrono::seconds> ttl = {};  // none: until revoked
};

/// The form of a guest token's secret.
enum class GuestTokenFormat : std::uint8_t {
    kDefault,  // like every Hearth token: 256 random bits, base64url (43 characters)
    kHex128,   // 128 random bits as 32 lower-case hex digits (Moonshare's plugin expects these)
};

/// A guest token just issued: the secret (shown once, stored only as its digest) and its record
/// (`name` holds the subject).
struct GuestToken {
    std::string token;
    store::TokenRecord record;
};

/// The shared guest account of a realm: every guest token of "moonshare" belongs to the account
/// named "guest:moonshare" (a name check_username refuses, so no user can take it). The account
/// has no password and no roles; it is created on first use.
std::string guest_account_name(std::string_view realm);

/// Scopes an API key may carry: the front-ends' names and "admin".
inline constexpr std::string_view kKnownScopes[] = {
    "admin", "native", "homestead", "hunterpie", "moonshare", "dracosoft", "packet"};
inline constexpr std::string_view kRoles[] = {"admin", "moderator", "player"};

/// Why a username, password, role or scope is refused; nothing when it is fine.
std::optional<std::string> check_username(std::string_view username);
/// `min_length` is `[auth] min_password_length`; AccountService::check_password applies it.
std::optional<std::string> check_password(std::string_view password, std::size_t min_length);
std::optional<std::string> check_roles(std::span<const std::string> roles);
std::optional<std::string> check_scopes(std::span<const std::string> scopes);

/// Validates tokens that Hearth did not issue (the better-auth bridge, better_auth.hpp).
/// Thread-safe; `done` may run on any thread.
class ExternalValidator {
public:
    virtual ~ExternalValidator() = default;
    /// The principal of `token`: kUnauthenticated when the other system refuses it, kUnavailable
    /// when it cannot be asked.
    virtual void validate(std::string token, Done<Principal> done) = 0;
};

/// The longest claimed username, account name or guest subject a login event carries, in bytes.
inline constexpr std::size_t kMaxLoginEventNameBytes = 64;

/// Thread-safe. Owned by the app (or the CLI); callbacks keep its state alive, so it may be
/// destroyed while operations are in flight.
///
/// Logins are events (set_events): a password login (`login`), a registration that logs in
/// (`open_session`) and a connection's first token check (`authorize_login`) publish `login.ok`
/// or `login.failed` with module = the door, subject = the peer, and never a password or token.
/// A token checked on every request (`authorize`, `validate`) is no login and publishes nothing.
/// Failed logins are published at most 20 a second after a burst of 100; the rest are counted in
/// hearth_auth_login_events_suppressed_total, and the next one published says how many.
class AccountService {
public:
    AccountService(store::AccountStore& accounts, BlockingExecutor blocking,
                   core::MetricsRegistry& metrics, const AuthConfig& config);
    ~AccountService();
    AccountService(const AccountService&) = delete;
    AccountService& operator=(const AccountService&) = delete;

    /// Applies reloadable settings (costs, session lifetime, throttling).
    void reload(const AuthConfig& config);

    /// Publishes logins on `events` from now on; null stops it (after the call returns nothing
    /// is published any more, even by operations still in flight, so the bus may go). Without a
    /// bus (the CLI, unit tests) logins are not published. Any thread.
    void set_events(core::EventBus* events);

    /// An account made by an operator (API, CLI) or a trusted system: no registration limits.
    void create_account(NewAccount account, Done<store::AccountRecord> done);
    /// A self-service registration at `door` (a front-end) from `peer_ip`: limited per address
    /// (IPv6 by /64) and per door by `[auth] registrations_per_*` (kLimitReached past them), and
    /// its password hash waits behind logins, at most `max_pending_registration_hashes` at once
    /// (kUnavailable past it). Counted in hearth_auth_registrations_total{door,result}.
    void register_account(NewAccount account, std::string_view door, std::string_view peer_ip,
                          Done<store::AccountRecord> done);
    /// Why `password` is refused under the current `[auth] min_password_length`; nothing when it
    /// is fine.
    std::optional<std::string> check_password(std::string_view password) const;
    void change_account(std::uint64_t id, AccountChange change, Done<store::AccountRecord> done);
    void delete_account(std::uint64_t id, Done<void> done);

    /// Checks the password and issues a session token. `peer_ip` is throttled as well as the
    /// username. `door` (the front-end or API that asked) is the module of the login event.
    void login(std::string username, std::string password, std::string peer_ip, std::string door,
               Done<SessionToken> done);
    /// Issues a session token for `account` without a password check, for a front-end that has
    /// just created the account with the password in hand (a registration that logs in): one
    /// hash instead of two, and no login throttle in the way. A disabled account: kNotAllowed.
    /// Published as a login at `door` from `peer_ip`.
    void open_session(store::AccountRecord account, std::string door, std::string peer_ip,
                      Done<SessionToken> done);
    /// How long `username` or `peer_ip` must wait before the next login attempt; zero if none.
    std::chrono::milliseconds retry_after(const std::string& username,
                                          const std::string& peer_ip) const;

    /// The principal a token acts as (any kind). A token unknown to the store is then asked of
    /// the external validator, if any; its answers are cached like the store's.
    void validate(std::string token, Done<Principal> done);
    /// Validates `token` and checks it against the door's `policy` (access_policy.hpp): the
    /// principal when the door takes it, else why not. Each refusal is counted in
    /// hearth_auth_refusals_total{door,reason} and logged with `peer` (never the token). `done`
    /// runs on the calling thread (an empty token, a cached token) or a store thread.
    void authorize(std::string token, const AccessPolicy& policy, std::string peer,
                   std::function<void(AccessDecision)> done);
    /// `authorize` for a connection's first authentication (a hello, a WebSocket upgrade): its
    /// decision is also published as a login at the policy's door (publish_login).
    void authorize_login(std::string token, const AccessPolicy& policy, std::string peer,
                         std::function<void(AccessDecision)> done);
    /// For a door that decides more than its policy does (Moonshare checks the token's subject,
    /// its holder and its own capacity): it calls `authorize`, then one of these with its verdict.
    /// `peer` is the client's address; `claimed` who the client said it is (bounded here), `reason`
    /// why it was refused (never a secret). Failures are rate-limited as above. Any thread.
    void publish_login_ok(std::string_view door, std::string_view peer, const Principal& who);
    void publish_login_failed(std::string_view door, std::string_view peer,
                              std::string_view claimed, std::string reason);
    /// Sets (or, with null, removes) the external validator. Any thread.
    void set_external(std::shared_ptr<ExternalValidator> external);
    /// A new session token for a valid session token, which is revoked.
    void refresh(std::string token, Done<SessionToken> done);
    /// Revokes the session token itself.
    void logout(std::string token, Done<void> done);

    void issue_token(NewToken request, Done<IssuedToken> done);

    /// Issues a guest token for `subject` (1 to 256 bytes, e.g. a Moonshare user id) in `realm`
    /// (letters, digits, '_', '-'), valid for `ttl`: no password and no account per subject; the
    /// token belongs to the realm's shared guest account (guest_account_name). Validating it
    /// gives a Principal of kind kGuest whose `subject` is `subject`. Guest tokens end like any
    /// token (expiry, revocation). Expired and revoked tokens (of every kind) are deleted from the
    /// store a day after they ended: a purge runs at most once a minute, started by an issue.
    void issue_guest_token(std::string realm, std::string subject, std::chrono::seconds ttl,
                           GuestTokenFormat format, Done<GuestToken> done);
    void revoke_token(std::uint64_t token_id, Done<store::TokenRecord> done);

    store::AccountStore& store() noexcept;

    struct State;

private:
    std::shared_ptr<State> state_;
};

}  // namespace hearth::auth
