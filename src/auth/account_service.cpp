#include "auth/account_service.hpp"
#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "auth/login_throttle.hpp"
#include "auth/registration_throttle.hpp"
#include "auth/secrets.hpp"
#include "auth/token_cache.hpp"
#include "core/event_sink.hpp"
#include "core/metrics.hpp"
#include "util/line_throttle.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace hearth::auth {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("auth");
    return l;
}

boost::system::error_code err(Errc e) {
    return make_error_code(e);
}

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

TokenKind to_kind(store::TokenKindCode code) {
    switch (code) {
        case store::TokenKindCode::kSession:
            return TokenKind::kSession;
        case store::TokenKindCode::kApiKey:
            return TokenKind::kApiKey;
        case store::TokenKindCode::kGuest:
            return TokenKind::kGuest;
    }
    return TokenKind::kSession;
}

/// Which queue a password hash waits in: logins go first (hash_work).
enum class HashLane : std::uint8_t {
    kLogin,         // a password check: someone is waiting to play
    kOther,         // accounts made by operators, password changes
    kRegistration,  // self-service registrations at a front-end: also capped on their own
};

Principal principal_of(const store::TokenRecord& token, const store::AccountRecord& account) {
    Principal p;
    p.account_id = account.id;
    p.username = account.username;
    p.roles = account.roles;
    p.kind = to_kind(token.kind);
    p.token_id = token.id;
    p.scopes = token.scopes;
    p.expires_at = token.expires_at.value_or(store::TimePoint::max());
    if (token.kind == store::TokenKindCode::kGuest) {
        p.subject = token.name;
        constexpr std::string_view kGuestPrefix = "guest:";
        if (std::string_view(account.username).starts_with(kGuestPrefix)) {
            p.realm = account.username.substr(kGuestPrefix.size());
        }
    }
    return p;
}

// The longest peer a login event names (an address, or a front-end's "connection N").
constexpr std::size_t kMaxEventPeerBytes = 128;

std::string event_name(std::string_view name) {
    return util::bounded_utf8(name, kMaxLoginEventNameBytes);
}

/// Who a login event says a token logged in as: the token, when Hearth issued it; the account
/// for an external session, which has no Hearth token.
std::string event_principal(const Principal& p) {
    return p.token_id != 0 ? fmt::format("token:{}", p.token_id)
                           : fmt::format("account:{}", p.account_id);
}

/// A token's kind, id and owner, for an event (never the token itself).
std::string describe(const Principal& p) {
    switch (p.kind) {
        case TokenKind::kGuest:
            return fmt::format("guest token {} of realm {} for {}", p.token_id, event_name(p.realm),
                               event_name(p.subject));
        case TokenKind::kApiKey:
            return fmt::format("API key {} of account {} ({})", p.token_id, p.account_id,
                               event_name(p.username));
        case TokenKind::kSession:
            break;
    }
    if (p.external) {
        return fmt::format("external session of account {} ({})", p.account_id,
                           event_name(p.username));
    }
    return fmt::format("session token {} of account {} ({})", p.token_id, p.account_id,
                       event_name(p.username));
}

/// What a token check found, with why it failed ("expired", ...) for the login events.
using Checked = std::function<void(Result<Principal>, std::string_view why)>;

}  // namespace

std::string guest_account_name(std::string_view realm) {
    return "guest:" + std::string(realm);
}

std::optional<std::string> check_username(std::string_view username) {
    if (username.empty() || username.size() > 64) {
        return "a username has 1 to 64 characters";
    }
    for (char c : username) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
        if (!ok) {
            return "a username has only letters, digits, '_', '-' and '.'";
        }
    }
    return std::nullopt;
}

std::optional<std::string> check_password(std::string_view password, std::size_t min_length) {
    if (password.size() < min_length) {
        return min_length == 1
                   ? std::string("a password cannot be empty")
                   : "a password has at least " + std::to_string(min_length) + " characters";
    }
    if (password.size() > 1024) {
        return "a password has at most 1024 bytes";
    }
    return std::nullopt;
}

std::optional<std::string> check_roles(std::span<const std::string> roles) {
    for (const auto& r : roles) {
        if (std::find(std::begin(kRoles), std::end(kRoles), r) == std::end(kRoles)) {
            return "unknown role \"" + r + "\" (roles: admin, moderator, player)";
        }
    }
    return std::nullopt;
}

std::optional<std::string> check_scopes(std::span<const std::string> scopes) {
    if (scopes.empty()) {
        return "an API key needs at least one scope";
    }
    for (const auto& s : scopes) {
        if (std::find(std::begin(kKnownScopes), std::end(kKnownScopes), s) ==
            std::end(kKnownScopes)) {
            return "unknown scope \"" + s +
                   "\" (scopes: admin, native, homestead, hunterpie, moonshare, dracosoft, packet)";
        }
    }
    return std::nullopt;
}

/// Everything the service's callbacks need, kept alive by them (see the header).
struct AccountService::State : std::enable_shared_from_this<State> {
    State(store::AccountStore& s, BlockingExecutor b, core::MetricsRegistry& m, const AuthConfig& c)
        : accounts(s),
          blocking(std::move(b)),
          cache(static_cast<std::size_t>(c.token_cache_entries),
                std::chrono::milliseconds(c.token_cache_ttl_ms)),
          throttle(c.throttle_policy()),
          registrations(c.registration_policy()),
          config(c),
          metrics(m),
          logins_ok(m.counter("hearth_auth_logins_total", "Password logins, by result.",
                              {{"result", "ok"}})),
          logins_invalid(m.counter("hearth_auth_logins_total", "Password logins, by result.",
                                   {{"result", "invalid_credentials"}})),
          logins_disabled(m.counter("hearth_auth_logins_total", "Password logins, by result.",
                                    {{"result", "account_disabled"}})),
          logins_throttled(m.counter("hearth_auth_logins_total", "Password logins, by result.",
                                     {{"result", "throttled"}})),
          validations_cached(m.counter("hearth_auth_token_validations_total",
                                       "Token validations, by how they were answered.",
                                       {{"result", "cache"}})),
          validations_store(m.counter("hearth_auth_token_validations_total",
                                      "Token validations, by how they were answered.",
                                      {{"result", "store"}})),
          validations_refused(m.counter("hearth_auth_token_validations_total",
                                        "Token validations, by how they were answered.",
                                        {{"result", "refused"}})),
          validations_external(m.counter("hearth_auth_token_validations_total",
                                         "Token validations, by how they were answered.",
                                         {{"result", "external"}})),
          hashes_refused(m.counter(
              "hearth_auth_hashes_refused_total",
              "Password hashes refused because max_pending_hashes were already waiting.")),
          pending_gauge(m.gauge("hearth_auth_pending_hashes",
                                "Password hashes waiting for or running on the blocking "
                                "pool.")),
          login_events_suppressed(m.counter(
              "hearth_auth_login_events_suppressed_total",
              "Failed logins not published as login.failed events: past 20 a second after a "
              "burst of 100, over every door.")) {}

    AuthConfig settings() const {
        std::lock_guard lock(mutex);
        return config;
    }

    std::shared_ptr<ExternalValidator> external_validator() const {
        std::lock_guard lock(mutex);
        return external;
    }

    /// Runs `work` on the blocking executor unless max_pending_hashes are already waiting (or, for
    /// a registration, max_pending_registration_hashes registrations), then `then` with its
    /// result; kUnavailable at once when refused. Logins run before anything queued in the other
    /// lanes: each post to the executor runs the most urgent job queued, not its own, so a flood
    /// of registrations cannot make a login wait behind it.
    template <class T>
    void hash_work(HashLane lane, std::function<T()> work, std::function<void(Result<T>)> then) {
        const auto limits = settings();
        const auto limit = static_cast<std::size_t>(limits.max_pending_hashes);
        if (pending.fetch_add(1) >= limit) {
            pending.fetch_sub(1);
            hashes_refused.inc();
            then(err(Errc::kUnavailable));
            return;
        }
        if (lane == HashLane::kRegistration &&
            pending_registrations.fetch_add(1) >=
                static_cast<std::size_t>(limits.max_pending_registration_hashes)) {
            pending_registrations.fetch_sub(1);
            pending.fetch_sub(1);
            hashes_refused.inc();
            then(err(Errc::kUnavailable));
            return;
        }
        pending_gauge.add(1);
        auto job = [self = shared_from_this(), lane, work = std::move(work),
                    then = std::move(then)] {
            Result<T> r = err(Errc::kInternal);
            try {
                r = work();
            } catch (const std::exception& e) {
                log()->error("password hashing failed: {}", e.what());
            }
            if (lane == HashLane::kRegistration) {
                self->pending_registrations.fetch_sub(1);
            }
            self->pending.fetch_sub(1);
            self->pending_gauge.sub(1);
            then(std::move(r));
        };
        {
            std::lock_guard lock(hash_mutex);
            (lane == HashLane::kLogin ? urgent_hashes : other_hashes).push_back(std::move(job));
        }
        blocking([self = shared_from_this()] { self->run_most_urgent_hash(); });
    }

    void create(NewAccount account, HashLane lane, Done<store::AccountRecord> done) {
        if (check_username(account.username) || check_roles(account.roles) ||
            auth::check_password(account.password,
                                 static_cast<std::size_t>(settings().min_password_length))) {
            done(err(Errc::kInvalidArgument));
            return;
        }
        const auto cost = settings().password_cost();
        // Taken out first: the two lambdas below are arguments of one call, constructed in an
        // unspecified order.
        std::string password = std::move(account.password);
        hash_work<std::string>(
            lane, [password = std::move(password), cost] { return hash_password(password, cost); },
            [state = shared_from_this(), account = std::move(account),
             done = std::move(done)](Result<std::string> hash) mutable {
                if (!hash) {
                    done(hash.error());
                    return;
                }
                store::AccountRecord r;
                r.username = std::move(account.username);
                r.email = std::move(account.email);
                r.password_hash = std::move(*hash);
                r.roles = std::move(account.roles);
                r.created_at = std::chrono::system_clock::now();
                state->accounts.create_account(std::move(r), std::move(done));
            });
    }

    /// Revokes every live session token of `account`, a page at a time (after token id
    /// `after`), then `done` with how many were revoked.
    void revoke_sessions(std::uint64_t account, std::uint64_t after, std::uint64_t revoked_so_far,
                         Done<std::uint64_t> done) {
        constexpr std::size_t kPage = 100;
        store::TokenFilter filter;
        filter.account_id = account;
        filter.kind = store::TokenKindCode::kSession;
        filter.after_id = after;
        filter.limit = kPage;
        accounts.list_tokens(
            filter, [self = shared_from_this(), account, revoked_so_far,
                     done = std::move(done)](Result<std::vector<store::TokenRecord>> page) mutable {
                if (!page) {
                    done(page.error());
                    return;
                }
                if (page->empty()) {
                    done(revoked_so_far);
                    return;
                }
                const bool last = page->size() < kPage;
                const auto next_after = page->back().id;
                struct Round {
                    std::size_t left;
                    std::uint64_t revoked;
                    std::optional<boost::system::error_code> failed;
                    Done<std::uint64_t> done;
                };
                auto round = std::make_shared<Round>(
                    Round{page->size(), revoked_so_far, std::nullopt, std::move(done)});
                std::mutex* round_mutex = &self->revoke_mutex;
                const auto now = std::chrono::system_clock::now();
                for (const auto& token : *page) {
                    self->accounts.revoke_token(token.id, now,
                                                [self, account, last, next_after, round,
                                                 round_mutex](Result<store::TokenRecord> r) {
                                                    bool finished = false;
                                                    {
                                                        std::lock_guard lock(*round_mutex);
                                                        if (r) {
                                                            ++round->revoked;
                                                        } else if (!round->failed) {
                                                            round->failed = r.error();
                                                        }
                                                        finished = --round->left == 0;
                                                    }
                                                    if (!finished) {
                                                        return;
                                                    }
                                                    if (round->failed) {
                                                        round->done(*round->failed);
                                                    } else if (last) {
                                                        round->done(round->revoked);
                                                    } else {
                                                        self->revoke_sessions(
                                                            account, next_after, round->revoked,
                                                            std::move(round->done));
                                                    }
                                                });
                }
            });
    }

    void run_most_urgent_hash() {
        std::function<void()> job;
        {
            std::lock_guard lock(hash_mutex);
            auto& queue = urgent_hashes.empty() ? other_hashes : urgent_hashes;
            if (queue.empty()) {
                return;  // cannot happen: one post per queued job
            }
            job = std::move(queue.front());
            queue.pop_front();
        }
        job();
    }

    /// Issues a session token for `account` and records the login (and a rehash, if any).
    void start_session(store::AccountRecord account, std::optional<std::string> new_hash,
                       Done<SessionToken> done) {
        const auto now = std::chrono::system_clock::now();
        const auto ttl = std::chrono::seconds(settings().session_ttl_s);
        std::string token = new_token();
        store::TokenRecord record;
        record.account_id = account.id;
        record.kind = store::TokenKindCode::kSession;
        record.name = "session";
        record.digest = token_digest(token);
        record.created_at = now;
        record.expires_at = now + ttl;
        store::AccountPatch patch;
        patch.last_login_at = now;
        patch.password_hash = std::move(new_hash);
        // The login is recorded alongside; its failure does not undo the session.
        accounts.update_account(account.id, std::move(patch), [](Result<store::AccountRecord>) {});
        accounts.insert_token(std::move(record),
                              [token = std::move(token), account = std::move(account),
                               done = std::move(done)](Result<store::TokenRecord> r) mutable {
                                  if (!r) {
                                      done(r.error());
                                      return;
                                  }
                                  SessionToken s;
                                  s.token = std::move(token);
                                  s.expires_at = *r->expires_at;
                                  s.principal = principal_of(*r, account);
                                  done(std::move(s));
                              });
    }

    /// Asks `validator` about a token the store does not know; caches what it accepts.
    void validate_external(ExternalValidator& validator, std::string token, std::string digest,
                           Checked done) {
        validator.validate(std::move(token), [self = shared_from_this(), digest = std::move(digest),
                                              done = std::move(done)](Result<Principal> p) {
            if (!p) {
                const bool refused = p.error() == make_error_code(Errc::kUnauthenticated);
                if (refused) {
                    self->validations_refused.inc();
                }
                done(p.error(), refused ? "unknown" : "the external validator cannot answer");
                return;
            }
            self->validations_external.inc();
            self->cache.put(digest, *p, TokenCache::Clock::now());
            done(std::move(*p), {});
        });
    }

    void publish_login_ok(std::string_view door, std::string_view peer, std::string principal,
                          std::string detail) {
        events.publish(core::EventKind::kLoginSucceeded, event_name(door),
                       util::bounded_utf8(peer, kMaxEventPeerBytes), std::move(detail),
                       std::move(principal));
    }

    /// `claimed`: the username the client gave (bounded already), empty for a token.
    void publish_login_failed(std::string_view door, std::string_view peer, std::string claimed,
                              std::string detail) {
        if (!events.connected()) {
            return;
        }
        const auto admitted = failed_login_events.admit();
        if (!admitted) {
            login_events_suppressed.inc();
            return;
        }
        if (*admitted > 0) {
            detail += fmt::format(" ({} failed logins left out before)", *admitted);
        }
        events.publish(core::EventKind::kLoginFailed, event_name(door),
                       util::bounded_utf8(peer, kMaxEventPeerBytes), std::move(detail),
                       std::move(claimed));
    }

    void publish_decision(std::string_view door, std::string_view peer, const AccessDecision& d) {
        if (d.accepted()) {
            publish_login_ok(door, peer, event_principal(d.principal), describe(d.principal));
            return;
        }
        std::string detail(to_string(d.refusal));
        if (!d.why.empty()) {
            detail += ": " + d.why;
        }
        publish_login_failed(door, peer, {}, std::move(detail));
    }

    /// The principal a token acts as, or why not (for the login events): the cache, then the
    /// store, then the external validator.
    void check_token(std::string token, Checked done) {
        if (token.empty() || token.size() > 512) {
            validations_refused.inc();
            done(err(Errc::kUnauthenticated), "malformed");
            return;
        }
        std::string digest = token_digest(token);
        if (auto cached =
                cache.get(digest, TokenCache::Clock::now(), std::chrono::system_clock::now())) {
            validations_cached.inc();
            done(std::move(*cached), {});
            return;
        }
        accounts.token_by_digest(
            digest, [self = shared_from_this(), token = std::move(token), digest,
                     done = std::move(done)](Result<store::TokenLookup> r) mutable {
                if (!r) {
                    if (r.error() == make_error_code(Errc::kNotFound)) {
                        if (auto validator = self->external_validator()) {
                            self->validate_external(*validator, std::move(token), std::move(digest),
                                                    std::move(done));
                            return;
                        }
                        self->validations_refused.inc();
                        done(err(Errc::kUnauthenticated), "unknown");
                    } else {
                        done(r.error(), "the account store failed");
                    }
                    return;
                }
                const auto now = std::chrono::system_clock::now();
                const char* refused = r->token.revoked_at ? "revoked"
                                      : r->token.expires_at && *r->token.expires_at <= now
                                          ? "expired"
                                      : r->account.disabled ? "account disabled"
                                                            : nullptr;
                if (refused != nullptr) {
                    self->validations_refused.inc();
                    done(err(Errc::kUnauthenticated), refused);
                    return;
                }
                Principal p = principal_of(r->token, r->account);
                self->validations_store.inc();
                self->cache.put(digest, p, TokenCache::Clock::now());
                done(std::move(p), {});
            });
    }

    store::AccountStore& accounts;
    BlockingExecutor blocking;
    TokenCache cache;
    LoginThrottle throttle;
    RegistrationThrottle registrations;
    mutable std::mutex mutex;  // guards config and external
    AuthConfig config;
    std::shared_ptr<ExternalValidator> external;
    std::map<std::string, std::uint64_t> guest_accounts;  // realm -> account id (under mutex)
    std::chrono::steady_clock::time_point next_purge{};   // under mutex
    std::atomic<std::size_t> pending{0};
    std::atomic<std::size_t> pending_registrations{0};
    std::mutex revoke_mutex;                          // guards revoke_sessions' rounds
    std::mutex hash_mutex;                            // guards the two queues below
    std::deque<std::function<void()>> urgent_hashes;  // logins
    std::deque<std::function<void()>> other_hashes;   // account creation and password changes
    core::MetricsRegistry& metrics;
    // Refused-token log lines: 20 a second after a burst of 100, for every door together.
    util::LineThrottle refusal_lines{util::TokenRate{.per_s = 20, .depth = 100}};
    core::Counter& logins_ok;
    core::Counter& logins_invalid;
    core::Counter& logins_disabled;
    core::Counter& logins_throttled;
    core::Counter& validations_cached;
    core::Counter& validations_store;
    core::Counter& validations_refused;
    core::Counter& validations_external;
    core::Counter& hashes_refused;
    core::Gauge& pending_gauge;
    core::EventSink events;
    // Failed-login events: a client can fail as fast as it can send, and each event would push
    // an older one out of the bus's history. 20 a second after a burst of 100, for every door.
    util::LineThrottle failed_login_events{util::TokenRate{.per_s = 20, .depth = 100}};
    core::Counter& login_events_suppressed;
    // Verified against when a username is unknown, so that an unknown name costs the same time as
    // a wrong password and response times do not reveal which usernames exist.
    std::string dummy_hash;
};

AccountService::AccountService(store::AccountStore& accounts, BlockingExecutor blocking,
                               core::MetricsRegistry& metrics, const AuthConfig& config)
    : state_(std::make_shared<State>(accounts, std::move(blocking), metrics, config)) {
    init_crypto();
    state_->dummy_hash = hash_password("hearth-dummy-password", config.password_cost());
}

AccountService::~AccountService() {
    // Operations in flight keep the state; they publish nothing once the service is gone.
    state_->events.set(nullptr);
}

void AccountService::set_events(core::EventBus* events) {
    state_->events.set(events);
}

store::AccountStore& AccountService::store() noexcept {
    return state_->accounts;
}

void AccountService::reload(const AuthConfig& config) {
    state_->throttle.set_policy(config.throttle_policy());
    state_->registrations.set_policy(config.registration_policy());
    std::lock_guard lock(state_->mutex);
    state_->config = config;
}

void AccountService::create_account(NewAccount account, Done<store::AccountRecord> done) {
    state_->create(std::move(account), HashLane::kOther, std::move(done));
}

void AccountService::register_account(NewAccount account, std::string_view door,
                                      std::string_view peer_ip, Done<store::AccountRecord> done) {
    if (!state_->registrations.try_take(door, peer_ip, RegistrationThrottle::Clock::now())) {
        state_->metrics
            .counter("hearth_auth_registrations_total",
                     "Self-service registrations at the front-ends, by door and result.",
                     {{"door", std::string(door)}, {"result", "throttled"}})
            .inc();
        log()->info("{}: registration from {} throttled ([auth] registrations_per_*)", door,
                    peer_ip);
        done(err(Errc::kLimitReached));
        return;
    }
    state_->create(std::move(account), HashLane::kRegistration,
                   [state = state_, door = std::string(door),
                    done = std::move(done)](Result<store::AccountRecord> r) {
                       state->metrics
                           .counter("hearth_auth_registrations_total",
                                    "Self-service registrations at the front-ends, by door and "
                                    "result.",
                                    {{"door", door}, {"result", r ? "ok" : "failed"}})
                           .inc();
                       done(std::move(r));
                   });
}

std::optional<std::string> AccountService::check_password(std::string_view password) const {
    return auth::check_password(password,
                                static_cast<std::size_t>(state_->settings().min_password_length));
}

void AccountService::change_account(std::uint64_t id, AccountChange change,
                                    Done<store::AccountRecord> done) {
    if (change.password && check_password(*change.password)) {
        done(err(Errc::kInvalidArgument));
        return;
    }
    if (change.roles && check_roles(*change.roles)) {
        done(err(Errc::kInvalidArgument));
        return;
    }
    auto shared_done = std::make_shared<Done<store::AccountRecord>>(std::move(done));
    auto apply = [state = state_, id, change,
                  shared_done](std::optional<std::string> hash) mutable {
        store::AccountPatch patch;
        patch.email = std::move(change.email);
        patch.roles = std::move(change.roles);
        patch.disabled = change.disabled;
        const bool new_password = hash.has_value();
        patch.password_hash = std::move(hash);
        state->accounts.update_account(
            id, std::move(patch),
            [state, id, new_password, shared_done](Result<store::AccountRecord> r) {
                // Rights or status may have changed: cached tokens must be validated again.
                state->cache.erase_account(id);
                if (!r || !new_password) {
                    (*shared_done)(std::move(r));
                    return;
                }
                // A new password ends every session the old one opened: whoever learnt the old
                // password (the reason to change it) must not stay logged in. API keys are
                // separate credentials and stay.
                state->revoke_sessions(id, 0, 0,
                                       [state, id, shared_done, account = std::move(*r)](
                                           Result<std::uint64_t> revoked) mutable {
                                           state->cache.erase_account(id);
                                           if (!revoked) {
                                               (*shared_done)(revoked.error());
                                               return;
                                           }
                                           (*shared_done)(std::move(account));
                                       });
            });
    };
    if (!change.password) {
        apply(std::nullopt);
        return;
    }
    const auto cost = state_->settings().password_cost();
    state_->hash_work<std::string>(
        HashLane::kOther,
        [password = *change.password, cost] { return hash_password(password, cost); },
        [apply = std::move(apply), shared_done](Result<std::string> hash) mutable {
            if (!hash) {
                (*shared_done)(hash.error());
                return;
            }
            apply(std::move(*hash));
        });
}

void AccountService::delete_account(std::uint64_t id, Done<void> done) {
    state_->accounts.delete_account(id,
                                    [state = state_, id, done = std::move(done)](Result<void> r) {
                                        state->cache.erase_account(id);
                                        done(std::move(r));
                                    });
}

namespace {

// A username that cannot exist is throttled under this one key: it is never copied into the
// throttle's table (a 1 MiB name would be kept, twice, for 15 minutes).
constexpr std::string_view kImpossibleUserKey = "user:<invalid>";

std::string user_key_of(std::string_view username) {
    return check_username(username) ? std::string(kImpossibleUserKey)
                                    : "user:" + lower_ascii(username);
}

std::string ip_key_of(std::string_view peer_ip) {
    return "ip:" + address_key(peer_ip);
}

}  // namespace

std::chrono::milliseconds AccountService::retry_after(const std::string& username,
                                                      const std::string& peer_ip) const {
    const auto now = LoginThrottle::Clock::now();
    const auto by_user = state_->throttle.wait_before_attempt(user_key_of(username), now);
    const auto by_ip = state_->throttle.wait_before_attempt(ip_key_of(peer_ip), now);
    return std::max(by_user.value_or(std::chrono::milliseconds(0)),
                    by_ip.value_or(std::chrono::milliseconds(0)));
}

void AccountService::login(std::string username, std::string password, std::string peer_ip,
                           std::string door, Done<SessionToken> done) {
    const std::string user_key = user_key_of(username);
    const std::string ip_key = ip_key_of(peer_ip);
    // Every outcome is published once (the username the client claimed, bounded; never the
    // password), then answered.
    auto answer = [state = state_, door = std::move(door), peer = std::move(peer_ip),
                   claimed = event_name(username),
                   done = std::move(done)](Result<SessionToken> r, std::string_view failure) {
        if (r) {
            state->publish_login_ok(
                door, peer, fmt::format("account:{}", r->principal.account_id),
                fmt::format("password login of {}; session token {}",
                            event_name(r->principal.username), r->principal.token_id));
        } else {
            state->publish_login_failed(door, peer, claimed, std::string(failure));
        }
        done(std::move(r));
    };
    const auto started = LoginThrottle::Clock::now();
    // Both keys' attempts start here, before the hash: concurrent guesses are counted as they
    // are made, not when their hashes finish.
    if (state_->throttle.try_begin(user_key, started)) {
        state_->logins_throttled.inc();
        answer(err(Errc::kLimitReached), "throttled: too many failed logins for this username");
        return;
    }
    if (state_->throttle.try_begin(ip_key, started)) {
        state_->throttle.cancel(user_key);
        state_->logins_throttled.inc();
        answer(err(Errc::kLimitReached), "throttled: too many failed logins from this address");
        return;
    }
    // Ends both attempts without a verdict when the check cannot be made.
    auto cancel = [state = state_, user_key, ip_key] {
        state->throttle.cancel(user_key);
        state->throttle.cancel(ip_key);
    };
    if (user_key == kImpossibleUserKey) {
        username.clear();  // no such account: checked against the dummy hash below, like any
    }
    state_->accounts.account_by_name(
        username, [state = state_, password = std::move(password), user_key, ip_key, cancel,
                   answer = std::move(answer)](Result<store::AccountRecord> found) mutable {
            if (!found && found.error() != make_error_code(Errc::kNotFound)) {
                cancel();
                answer(found.error(), "unavailable: the account store failed");
                return;
            }
            struct Check {
                bool matched = false;
                std::optional<std::string> rehash;
            };
            std::string stored =
                found && !found->password_hash.empty() ? found->password_hash : state->dummy_hash;
            const bool real = found && !found->password_hash.empty();
            const auto cost = state->settings().password_cost();
            state->hash_work<Check>(
                HashLane::kLogin,
                [stored = std::move(stored), password = std::move(password), real, cost] {
                    Check c;
                    c.matched = verify_password(stored, password) && real;
                    if (c.matched && needs_rehash(stored, cost)) {
                        c.rehash = hash_password(password, cost);
                    }
                    return c;
                },
                [state, found = std::move(found), user_key, ip_key, cancel,
                 answer = std::move(answer)](Result<Check> check) mutable {
                    if (!check) {
                        cancel();
                        answer(check.error(), check.error() == make_error_code(Errc::kUnavailable)
                                                  ? "unavailable: too many password checks waiting"
                                                  : "unavailable: the password check failed");
                        return;
                    }
                    const auto now = LoginThrottle::Clock::now();
                    if (!check->matched) {
                        state->throttle.failed(user_key, now);
                        state->throttle.failed(ip_key, now);
                        state->logins_invalid.inc();
                        answer(err(Errc::kUnauthenticated),
                               found ? "bad_password" : "unknown_user");
                        return;
                    }
                    state->throttle.succeeded(user_key);
                    state->throttle.succeeded(ip_key);
                    if (found->disabled) {
                        state->logins_disabled.inc();
                        answer(err(Errc::kNotAllowed), "account_disabled");
                        return;
                    }
                    state->logins_ok.inc();
                    state->start_session(std::move(*found), std::move(check->rehash),
                                         [answer](Result<SessionToken> s) mutable {
                                             answer(std::move(s),
                                                    "unavailable: the session could not be stored");
                                         });
                });
        });
}

void AccountService::open_session(store::AccountRecord account, std::string door,
                                  std::string peer_ip, Done<SessionToken> done) {
    if (account.disabled) {
        state_->publish_login_failed(door, peer_ip, event_name(account.username),
                                     "account_disabled");
        done(err(Errc::kNotAllowed));
        return;
    }
    state_->start_session(
        std::move(account), std::nullopt,
        [state = state_, door = std::move(door), peer = std::move(peer_ip),
         done = std::move(done)](Result<SessionToken> r) {
            if (r) {
                state->publish_login_ok(
                    door, peer, fmt::format("account:{}", r->principal.account_id),
                    fmt::format("registered and logged in as {}; session "
                                "token {}",
                                event_name(r->principal.username), r->principal.token_id));
            } else {
                state->publish_login_failed(door, peer, {},
                                            "unavailable: the session could not be stored");
            }
            done(std::move(r));
        });
}

void AccountService::validate(std::string token, Done<Principal> done) {
    state_->check_token(
        std::move(token),
        [done = std::move(done)](Result<Principal> p, std::string_view) { done(std::move(p)); });
}

void AccountService::authorize(std::string token, const AccessPolicy& policy, std::string peer,
                               std::function<void(AccessDecision)> done) {
    auto refuse = [state = state_, door = policy.door, peer](
                      Refusal why, const Principal* p, std::string about,
                      std::function<void(AccessDecision)>& answer) {
        state->metrics
            .counter("hearth_auth_refusals_total",
                     "Tokens refused at a door (front-end, operator API, log stream), by door and "
                     "reason.",
                     {{"door", door}, {"reason", std::string(to_string(why))}})
            .inc();
        // Never the token: the kind and the account are enough to find the client that erred.
        // A client can be refused as often as it likes: the lines are rate-limited (the counter
        // above is not).
        const auto admitted = state->refusal_lines.admit();
        if (!admitted) {
            answer(AccessDecision{.refusal = why, .principal = {}, .why = std::move(about)});
            return;
        }
        const std::string left_out =
            *admitted == 0 ? "" : fmt::format(" ({} refusal lines left out before)", *admitted);
        if (p != nullptr) {
            log()->info("{}: refused a {} token of account {} from {}: {}{}", door,
                        to_string(p->kind), p->username, peer, to_string(why), left_out);
        } else {
            log()->info("{}: refused a token from {}: {}{}", door, peer, to_string(why), left_out);
        }
        answer(AccessDecision{.refusal = why, .principal = {}, .why = std::move(about)});
    };
    if (token.empty()) {
        refuse(Refusal::kMissingToken, nullptr, {}, done);
        return;
    }
    state_->check_token(
        std::move(token), [policy, refuse = std::move(refuse), done = std::move(done)](
                              Result<Principal> p, std::string_view why) mutable {
            if (!p) {
                refuse(p.error() == make_error_code(Errc::kUnauthenticated) ? Refusal::kInvalidToken
                                                                            : Refusal::kUnavailable,
                       nullptr, std::string(why), done);
                return;
            }
            if (const auto refusal = policy.check(*p); refusal != Refusal::kNone) {
                refuse(refusal, &*p, describe(*p), done);
                return;
            }
            done(AccessDecision{.refusal = Refusal::kNone, .principal = std::move(*p)});
        });
}

void AccountService::authorize_login(std::string token, const AccessPolicy& policy,
                                     std::string peer, std::function<void(AccessDecision)> done) {
    authorize(std::move(token), policy, peer,
              [state = state_, door = policy.door, peer,
               done = std::move(done)](AccessDecision d) mutable {
                  state->publish_decision(door, peer, d);
                  done(std::move(d));
              });
}

void AccountService::publish_login_ok(std::string_view door, std::string_view peer,
                                      const Principal& who) {
    state_->publish_login_ok(door, peer, event_principal(who), describe(who));
}

void AccountService::publish_login_failed(std::string_view door, std::string_view peer,
                                          std::string_view claimed, std::string reason) {
    state_->publish_login_failed(door, peer, event_name(claimed), std::move(reason));
}

void AccountService::set_external(std::shared_ptr<ExternalValidator> external) {
    std::lock_guard lock(state_->mutex);
    state_->external = std::move(external);
}

void AccountService::refresh(std::string token, Done<SessionToken> done) {
    std::string old_digest = token_digest(token);
    validate(std::move(token), [state = state_, old_digest = std::move(old_digest),
                                done = std::move(done)](Result<Principal> p) {
        if (!p) {
            done(p.error());
            return;
        }
        // An external session (token_id 0) belongs to the system that issued it.
        if (p->kind != TokenKind::kSession || p->token_id == 0) {
            done(err(Errc::kNotAllowed));
            return;
        }
        const auto old_id = p->token_id;
        state->accounts.account_by_id(
            p->account_id, [state, old_id, old_digest,
                            done = std::move(done)](Result<store::AccountRecord> account) mutable {
                if (!account) {
                    done(account.error() == make_error_code(Errc::kNotFound)
                             ? err(Errc::kUnauthenticated)
                             : account.error());
                    return;
                }
                // The new session first: if revoking the old one fails, the client still has a
                // working token and the old one expires on its own.
                state->start_session(std::move(*account), std::nullopt,
                                     [state, old_id, old_digest,
                                      done = std::move(done)](Result<SessionToken> s) mutable {
                                         if (!s) {
                                             done(s.error());
                                             return;
                                         }
                                         // Submitted before the answer, so every later validation
                                         // (a store read, ordered after this write) sees it; the
                                         // cache forgets the token now.
                                         state->accounts.revoke_token(
                                             old_id, std::chrono::system_clock::now(),
                                             [](Result<store::TokenRecord>) {});
                                         state->cache.erase(old_digest);
                                         done(std::move(s));
                                     });
            });
    });
}

void AccountService::logout(std::string token, Done<void> done) {
    validate(std::move(token), [state = state_, done = std::move(done)](Result<Principal> p) {
        if (!p) {
            done(p.error());
            return;
        }
        if (p->token_id == 0) {  // an external session: its issuer ends it
            done(err(Errc::kNotAllowed));
            return;
        }
        state->accounts.revoke_token(p->token_id, std::chrono::system_clock::now(),
                                     [state, done = std::move(done)](Result<store::TokenRecord> r) {
                                         if (!r) {
                                             done(r.error());
                                             return;
                                         }
                                         state->cache.erase(r->digest);
                                         done(Result<void>{});
                                     });
    });
}

void AccountService::issue_token(NewToken request, Done<IssuedToken> done) {
    if (request.kind == store::TokenKindCode::kApiKey && check_scopes(request.scopes)) {
        done(err(Errc::kInvalidArgument));
        return;
    }
    std::string token = new_token();
    const auto now = std::chrono::system_clock::now();
    store::TokenRecord record;
    record.account_id = request.account_id;
    record.kind = request.kind;
    record.name = std::move(request.name);
    record.digest = token_digest(token);
    record.scopes = std::move(request.scopes);
    record.created_at = now;
    if (request.ttl) {
        record.expires_at = now + *request.ttl;
    }
    state_->accounts.insert_token(
        std::move(record),
        [token = std::move(token), done = std::move(done)](Result<store::TokenRecord> r) mutable {
            if (!r) {
                done(r.error());
                return;
            }
            done(IssuedToken{std::move(token), std::move(*r)});
        });
}

void AccountService::revoke_token(std::uint64_t token_id, Done<store::TokenRecord> done) {
    state_->accounts.revoke_token(
        token_id, std::chrono::system_clock::now(),
        [state = state_, done = std::move(done)](Result<store::TokenRecord> r) {
            if (r) {
                state->cache.erase(r->digest);
            }
            done(std::move(r));
        });
}

namespace {

bool valid_realm(std::string_view realm) {
    if (realm.empty() || realm.size() > 32) {
        return false;
    }
    return std::all_of(realm.begin(), realm.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

// How long an expired or revoked token stays in the store before a purge deletes it.
constexpr auto kPurgeGrace = std::chrono::hours(24);
// Purges run at most this often.
constexpr auto kPurgeInterval = std::chrono::minutes(1);

}  // namespace

void AccountService::issue_guest_token(std::string realm, std::string subject,
                                       std::chrono::seconds ttl, GuestTokenFormat format,
                                       Done<GuestToken> done) {
    if (!valid_realm(realm) || subject.empty() || subject.size() > 256 || ttl.count() <= 0) {
        done(err(Errc::kInvalidArgument));
        return;
    }
    auto state = state_;
    // Expired guest tokens must not pile up: an issue starts a purge now and then.
    {
        const auto now = std::chrono::steady_clock::now();
        std::unique_lock lock(state->mutex);
        if (now >= state->next_purge) {
            state->next_purge = now + kPurgeInterval;
            lock.unlock();
            state->accounts.purge_tokens(
                std::chrono::system_clock::now() - kPurgeGrace, [](Result<std::uint64_t> r) {
                    if (!r) {
                        log()->warn("token purge failed: {}", r.error().message());
                    } else if (*r > 0) {
                        log()->debug("purged {} ended token(s)", *r);
                    }
                });
        }
    }
    auto issue = [state, subject = std::move(subject), ttl, format,
                  done = std::move(done)](Result<std::uint64_t> account_id) mutable {
        if (!account_id) {
            done(account_id.error());
            return;
        }
        std::string token = format == GuestTokenFormat::kHex128 ? new_hex_token(16) : new_token();
        const auto now = std::chrono::system_clock::now();
        store::TokenRecord record;
        record.account_id = *account_id;
        record.kind = store::TokenKindCode::kGuest;
        record.name = std::move(subject);
        record.digest = token_digest(token);
        record.created_at = now;
        record.expires_at = now + ttl;
        state->accounts.insert_token(
            std::move(record), [token = std::move(token),
                                done = std::move(done)](Result<store::TokenRecord> r) mutable {
                if (!r) {
                    done(r.error());
                    return;
                }
                done(GuestToken{std::move(token), std::move(*r)});
            });
    };
    {
        std::lock_guard lock(state->mutex);
        if (auto it = state->guest_accounts.find(realm); it != state->guest_accounts.end()) {
            issue(it->second);
            return;
        }
    }
    // First use of the realm (per process): find or create its guest account. Two concurrent
    // first uses may both try to create it; the loser finds the winner's.
    auto shared_issue = std::make_shared<decltype(issue)>(std::move(issue));
    auto remember = [state, realm](const store::AccountRecord& a) -> bool {
        if (!a.guest) {
            log()->error("account {} exists but is not a guest account", a.username);
            return false;
        }
        std::lock_guard lock(state->mutex);
        state->guest_accounts[realm] = a.id;
        return true;
    };
    const std::string name = guest_account_name(realm);
    state->accounts.account_by_name(name, [state, name, remember,
                                           shared_issue](Result<store::AccountRecord> found) {
        if (found) {
            (*shared_issue)(remember(*found) ? Result<std::uint64_t>(found->id)
                                             : Result<std::uint64_t>(err(Errc::kInternal)));
            return;
        }
        if (found.error() != make_error_code(Errc::kNotFound)) {
            (*shared_issue)(found.error());
            return;
        }
        store::AccountRecord r;
        r.username = name;
        r.guest = true;
        r.created_at = std::chrono::system_clock::now();
        state->accounts.create_account(std::move(r), [state, name, remember, shared_issue](
                                                         Result<store::AccountRecord> created) {
            if (created) {
                remember(*created);
                (*shared_issue)(created->id);
                return;
            }
            if (created.error() != make_error_code(Errc::kAlreadyExists)) {
                (*shared_issue)(created.error());
                return;
            }
            state->accounts.account_by_name(
                name, [remember, shared_issue](Result<store::AccountRecord> again) {
                    if (!again) {
                        (*shared_issue)(again.error());
                        return;
                    }
                    (*shared_issue)(remember(*again) ? Result<std::uint64_t>(again->id)
                                                     : Result<std::uint64_t>(err(Errc::kInternal)));
                });
        });
    });
}

}  // namespace hearth::auth
