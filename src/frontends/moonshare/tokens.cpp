#include "frontends/moonshare/tokens.hpp"
#include <utility>

#include "auth/account_service.hpp"
#include "auth/operator_auth.hpp"
#include "auth/secrets.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/shared.hpp"
#include "util/strings.hpp"

namespace hearth::frontends::moonshare {

using SysClock = std::chrono::system_clock;

namespace {

// Sessions remembered for the /sessions listings; past it the oldest are forgotten (their tokens
// stay valid).
constexpr std::size_t kMaxListedSessions = 10'000;

constexpr std::string_view kJsonUtf8 = "application/json; charset=utf-8";

/// Issues a token for `user` to `ip`, which Bindings::request granted; `done` gets the token or
/// nothing, on a store thread.
void issue(const std::shared_ptr<Shared>& shared, std::string user, std::string ip,
           std::function<void(std::optional<std::string>)> done) {
    const auto ttl = std::chrono::seconds(shared->config.token_ttl_s);
    shared->accounts.issue_guest_token(
        std::string(kRealm), user, ttl, auth::GuestTokenFormat::kHex128,
        [self = shared, user, ip = std::move(ip),
         done = std::move(done)](Result<auth::GuestToken> r) {
            if (!r) {
                self->bindings.failed(user);
                log()->warn("token for {} not issued: {}", user, r.error().message());
                done(std::nullopt);
                return;
            }
            const auto expires = r->record.expires_at.value_or(SysClock::time_point::max());
            self->bindings.issued(user, ip, r->record.digest, expires, SysClock::now());
            self->stats.tokens_issued.inc();
            self->sessions.add({.user = user,
                                .fingerprint = "sha256:" + r->record.digest.substr(0, 12),
                                .created = r->record.created_at,
                                .expires = expires});
            done(std::move(r->token));
        });
}

void decide_token(const std::shared_ptr<Shared>& shared, std::string user, std::string peer,
                  std::optional<std::string> proof, bool showed_proof,
                  std::function<void(Issued, std::optional<std::string>)> done) {
    auto& s = *shared;
    const auto ip = util::ip_of_peer(peer);
    Bindings::Eviction evicted = Bindings::Eviction::kNone;
    // Lock order: the bindings' mutex, then the registry's or the file store's (in_use).
    const auto decision = s.bindings.request(
        user, ip, proof, SysClock::now(),
        [&s](const std::string& u) { return s.players.is_online(u) || s.files.has_waiting(u); },
        &evicted);
    if (evicted == Bindings::Eviction::kAddressCap) {
        s.stats.bindings_evicted_address.inc();
        log()->debug(
            "a user id binding ended for a new one from the same address "
            "(max_bindings_per_address)");
    } else if (evicted == Bindings::Eviction::kFull) {
        s.stats.bindings_evicted_full.inc();
        log()->info(
            "a user id binding that never authenticated ended for a new one "
            "({} user ids are bound: max_bindings)",
            s.config.max_bindings);
    }
    if (decision == Bindings::Decision::kAddressFull) {
        s.stats.tokens_address_full.inc();
        if (auto more = s.stats.refusal_line()) {
            log()->info(
                "token for user id {} refused: {} user ids in use from its address "
                "(max_bindings_per_address){}",
                user, s.config.max_bindings_per_address, *more);
        }
        done(Issued::kFull, std::nullopt);
        return;
    }
    if (decision == Bindings::Decision::kHeld) {
        s.stats.tokens_held.inc();
        if (auto more = s.stats.refusal_line()) {
            log()->info("token for user id {} refused: held by another client{}{}", user,
                        showed_proof ? " (the token shown is not the holder's)" : "", *more);
        }
        done(Issued::kHeld, std::nullopt);
        return;
    }
    if (decision == Bindings::Decision::kFull) {
        s.stats.tokens_full.inc();
        if (auto more = s.stats.refusal_line()) {
            log()->warn("token for user id {} refused: {} user ids are bound (max_bindings){}",
                        user, s.config.max_bindings, *more);
        }
        done(Issued::kFull, std::nullopt);
        return;
    }
    issue(shared, std::move(user), ip, [done = std::move(done)](std::optional<std::string> token) {
        done(token ? Issued::kToken : Issued::kUnavailable, std::move(token));
    });
}

HttpResponse json_utf8(int status, std::string body) {
    HttpResponse r = HttpResponse::json(status, std::move(body));
    r.content_type = std::string(kJsonUtf8);
    return r;
}

/// /auth. Runs on its connection's io thread.
class AuthHandler final : public WsHandler {
public:
    AuthHandler(std::shared_ptr<Shared> shared, std::optional<std::string> user, std::string proof)
        : shared_(std::move(shared)), user_(std::move(user)), proof_(std::move(proof)) {}

    void on_open(const ConnectionPtr& connection) override {
        if (!user_ || is_blank(*user_) || user_->size() > kMaxUserIdBytes) {
            connection->close(close_code::kPolicyViolation, "Missing userId");
            return;
        }
        if (!allow_token_request(*shared_, connection->peer_address())) {
            connection->close(close_code::kTryAgainLater, "Too many requests");
            return;
        }
        request_token(shared_, *user_, connection->peer_address(), std::move(proof_),
                      [handle = ConnectionHandle(connection)](Issued outcome,
                                                              std::optional<std::string> token) {
                          auto c = handle.lock();
                          if (!c) {
                              return;
                          }
                          switch (outcome) {
                              case Issued::kToken:
                                  (void)c->send(make_text(encode_session_token(*token)));
                                  break;
                              case Issued::kHeld:
                                  c->close(close_code::kPolicyViolation, kUserIdHeld);
                                  break;
                              case Issued::kFull:
                                  c->close(close_code::kTryAgainLater, kTooManyUsers);
                                  break;
                              case Issued::kUnavailable:
                                  c->close(close_code::kTryAgainLater, "Service unavailable");
                                  break;
                          }
                      });
    }
    void on_message(MessageKind, std::string_view) override {}  // the original ignores them
    void on_close(const CloseInfo&) override {}

private:
    std::shared_ptr<Shared> shared_;
    std::optional<std::string> user_;
    std::string proof_;  // the bearer token of the upgrade request, "" when none
};

/// /sessions, for operators only (the upgrade is refused without the operator's token). Runs on
/// its connection's io thread.
class SessionsHandler final : public WsHandler {
public:
    explicit SessionsHandler(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    void on_open(const ConnectionPtr& connection) override { connection_ = connection; }
    void on_message(MessageKind kind, std::string_view data) override {
        if (kind == MessageKind::kText && data == "GET_SESSIONS") {
            (void)connection_->send(make_text(shared_->sessions.json(true)));
        } else {
            (void)connection_->send(make_text("ERROR:UnknownCommand"));
        }
    }
    void on_close(const CloseInfo&) override { connection_.reset(); }

private:
    std::shared_ptr<Shared> shared_;
    ConnectionPtr connection_;
};

}  // namespace

// ---- the list of issued tokens ------------------------------------------------------------------

void SessionList::add(Session s) {
    std::lock_guard lock(mutex_);
    prune_locked(SysClock::now());
    if (sessions_.size() >= kMaxListedSessions) {
        sessions_.pop_front();
    }
    sessions_.push_back(std::move(s));
}

void SessionList::prune(SysClock::time_point now) {
    std::lock_guard lock(mutex_);
    prune_locked(now);
}

void SessionList::prune_locked(SysClock::time_point now) {
    // Every session has the same lifetime, so they expire in the order they were added.
    while (!sessions_.empty() && sessions_.front().expires <= now) {
        sessions_.pop_front();
    }
}

std::string SessionList::json(bool full) {
    std::vector<Session> copy;
    const auto now = SysClock::now();
    {
        std::lock_guard lock(mutex_);
        prune_locked(now);
        copy.assign(sessions_.begin(), sessions_.end());
    }
    std::string out = "[";
    for (std::size_t i = 0; i < copy.size(); ++i) {
        out += i ? "," : "";
        JsonObject o;
        o.str("UserId", copy[i].user)
            .str("SessionToken", copy[i].fingerprint)
            .str("CreatedAt", iso_time(copy[i].created));
        if (full) {
            o.str("ClientAddress", "").boolean("IsActive", copy[i].expires > now);
        }
        out += std::move(o).done();
    }
    return out + "]";
}

// ---- issuing ------------------------------------------------------------------------------------

bool allow_token_request(Shared& shared, const std::string& peer) {
    const auto verdict = shared.pace.take(address_key_of(peer), TokenPace::Clock::now());
    if (verdict.evicted > 0) {
        shared.stats.paced_evicted.inc(verdict.evicted);
    }
    if (verdict.allowed) {
        return true;
    }
    shared.stats.tokens_rate_limited.inc();
    if (verdict.first_refusal) {  // one line per address and minute, however many follow
        if (auto more = shared.stats.refusal_line()) {
            log()->info("token requests from one address refused: over {} this minute{}",
                        shared.config.token_requests_per_ip_per_min, *more);
        }
    }
    return false;
}

void request_token(const std::shared_ptr<Shared>& shared, std::string user, std::string peer,
                   std::string proof,
                   std::function<void(Issued, std::optional<std::string>)> done) {
    if (proof.empty()) {
        decide_token(shared, std::move(user), std::move(peer), std::nullopt, false,
                     std::move(done));
        return;
    }
    // The proof must be a valid token of this user id (not expired, not revoked): the store
    // says so; the binding then says whether it is one of the holder's.
    shared->accounts.validate(proof, [shared, user = std::move(user), peer = std::move(peer),
                                      digest = auth::token_digest(proof),
                                      done = std::move(done)](Result<auth::Principal> p) mutable {
        const bool valid = p && p->kind == auth::TokenKind::kGuest &&
                           p->username == auth::guest_account_name(kRealm) && p->subject == user;
        decide_token(shared, std::move(user), std::move(peer),
                     valid ? std::optional<std::string>(std::move(digest)) : std::nullopt, true,
                     std::move(done));
    });
}

// ---- the routes ---------------------------------------------------------------------------------

void token_endpoint(const std::shared_ptr<Shared>& shared, const HttpRequest& req,
                    HttpResponder res) {
    if (req.method != "GET") {
        HttpResponse r = HttpResponse::text(405, "");
        r.content_type.clear();
        r.headers.push_back({"Allow", "GET"});
        res.respond(std::move(r));
        return;
    }
    auto user = req.query_param("userId");
    if (!user || is_blank(*user)) {
        res.respond(json_utf8(400, encode_error("Missing userId parameter")));
        return;
    }
    if (user->size() > kMaxUserIdBytes) {
        res.respond(json_utf8(400, encode_error("Invalid userId parameter")));
        return;
    }
    if (!allow_token_request(*shared, req.peer_address)) {
        HttpResponse r = json_utf8(429, encode_error("Too many requests"));
        r.headers.push_back({"Retry-After", "60"});
        res.respond(std::move(r));
        return;
    }
    request_token(shared, std::move(*user), req.peer_address, std::string(auth::bearer_token(req)),
                  [res](Issued outcome, std::optional<std::string> token) mutable {
                      HttpResponse r;
                      switch (outcome) {
                          case Issued::kToken:
                              r = json_utf8(200, encode_token(*token));
                              break;
                          case Issued::kHeld:
                              r = json_utf8(403, encode_error(kUserIdHeld));
                              break;
                          case Issued::kFull:
                              r = json_utf8(503, encode_error(kTooManyUsers));
                              r.headers.push_back({"Retry-After", "60"});
                              break;
                          case Issued::kUnavailable:
                              r = json_utf8(503, encode_error("Service unavailable"));
                              break;
                      }
                      res.respond(std::move(r));
                  });
}

std::unique_ptr<WsHandler> make_auth_handler(std::shared_ptr<Shared> shared,
                                             std::optional<std::string> user, std::string proof) {
    return std::make_unique<AuthHandler>(std::move(shared), std::move(user), std::move(proof));
}

std::unique_ptr<WsHandler> make_sessions_handler(std::shared_ptr<Shared> shared) {
    return std::make_unique<SessionsHandler>(std::move(shared));
}

}  // namespace hearth::frontends::moonshare
