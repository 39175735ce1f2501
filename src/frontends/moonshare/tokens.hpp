#pragma once

// Moonshare's token issuing (docs/protocol/moonshare.md, "Token endpoint", "Auth WebSocket"): the
// token endpoint and the auth WebSocket's /auth ask for a guest token of the account system for a
// user id, paced per address (TokenPace) and granted by the user id's binding (Bindings); the
// tokens issued are listed (fingerprints only) by the auth server's /sessions and the gateway's.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <hearth/http.hpp>

#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

/// The tokens issued, for the listings. Thread-safe: its own mutex, never held with another.
class SessionList {
public:
    struct Session {
        std::string user;
        std::string fingerprint;  // "sha256:" + 12 hex digits of the token's SHA-256
        std::chrono::system_clock::time_point created;
        std::chrono::system_clock::time_point expires;
        // No address: Hearth publishes no client's IP address (ClientAddress is "").
    };

    void add(Session s);
    /// Forgets the expired ones.
    void prune(std::chrono::system_clock::time_point now);
    /// `full`: the auth server's form (with ClientAddress, always empty, and IsActive), else the
    /// gateway's.
    std::string json(bool full);

private:
    void prune_locked(std::chrono::system_clock::time_point now);

    std::mutex mutex_;
    std::deque<Session> sessions_;  // oldest first
};

using Shared = MoonshareFrontend::Shared;

/// Counts a token request from `peer` in the token pace; false past
/// token_requests_per_ip_per_min (counted and logged).
bool allow_token_request(Shared& shared, const std::string& peer);

enum class Issued : std::uint8_t { kToken, kHeld, kFull, kUnavailable };

/// A token request for `user` from `peer` (after the pace check): `proof` is the bearer token the
/// request showed ("" when none). The token is issued when the binding allows it
/// (Bindings::request); `done` gets the outcome and, with kToken, the token, on a store thread or
/// the calling one.
void request_token(const std::shared_ptr<Shared>& shared, std::string user, std::string peer,
                   std::string proof, std::function<void(Issued, std::optional<std::string>)> done);

/// GET /sessions?userId= on the token listener.
void token_endpoint(const std::shared_ptr<Shared>& shared, const HttpRequest& req,
                    HttpResponder res);

/// /auth?userId=ID on the auth listener (with the holder's token as Authorization: Bearer, to
/// renew a bound user id).
std::unique_ptr<WsHandler> make_auth_handler(std::shared_ptr<Shared> shared,
                                             std::optional<std::string> user, std::string proof);

/// /sessions on the auth listener, for operators (the caller checks the upgrade).
std::unique_ptr<WsHandler> make_sessions_handler(std::shared_ptr<Shared> shared);

}  // namespace hearth::frontends::moonshare
