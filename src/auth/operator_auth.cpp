#include "auth/operator_auth.hpp"
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth/account_service.hpp"

namespace hearth::auth {

std::string_view bearer_token(const HttpRequest& req) {
    constexpr std::string_view kBearer = "Bearer ";
    const auto header = req.header("Authorization").value_or("");
    return header.starts_with(kBearer) ? header.substr(kBearer.size()) : std::string_view{};
}

HttpResponse unauthorized(std::string_view message) {
    auto r = HttpResponse::error(401, "unauthorized", message);
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    return r;
}

OperatorAuth::Digest OperatorAuth::digest(std::string_view token) {
    Digest d{};
    unsigned int size = 0;
    if (EVP_Digest(token.data(), token.size(), d.data(), &size, EVP_sha256(), nullptr) != 1 ||
        size != d.size()) {
        throw std::runtime_error("SHA-256 failed");  // OpenSSL out of memory
    }
    return d;
}

void OperatorAuth::set_admin_token(std::string_view token) {
    const Digest d = digest(token);
    std::lock_guard lock(mutex_);
    token_set_ = !token.empty();
    token_digest_ = d;
}

void OperatorAuth::set_accounts(AccountService* accounts) {
    std::lock_guard lock(mutex_);
    accounts_ = accounts;
}

bool OperatorAuth::is_admin_token(std::string_view presented) const {
    if (presented.empty()) {
        return false;
    }
    const Digest d = digest(presented);
    std::lock_guard lock(mutex_);
    return token_set_ && CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0;
}

std::optional<HttpResponse> OperatorAuth::check(const HttpRequest& req) const {
    const auto presented = bearer_token(req);
    if (is_admin_token(presented)) {
        return std::nullopt;
    }
    return unauthorized(presented.empty()
                            ? "This endpoint needs Authorization: Bearer <admin token>."
                            : "The bearer token is not valid.");
}

void OperatorAuth::authorize(const HttpRequest& req, std::function<void(Outcome)> then) const {
    const auto presented = bearer_token(req);
    if (presented.empty()) {
        then(unauthorized("This endpoint needs Authorization: Bearer <token> of an admin."));
        return;
    }
    if (is_admin_token(presented)) {
        then(Actor{.name = "admin_token", .principal = std::nullopt, .peer = req.peer_address});
        return;
    }
    AccountService* accounts = nullptr;
    {
        std::lock_guard lock(mutex_);
        accounts = accounts_;
    }
    if (accounts == nullptr) {
        then(unauthorized("The bearer token is not valid."));
        return;
    }
    accounts->authorize(
        std::string(presented), operator_policy(), req.peer_address,
        [then = std::move(then), peer = req.peer_address](AccessDecision d) {
            switch (d.refusal) {
                case Refusal::kNone: {
                    std::string name = "account:" + d.principal.username;
                    then(Actor{.name = std::move(name),
                               .principal = std::move(d.principal),
                               .peer = peer});
                    return;
                }
                case Refusal::kMissingToken:
                case Refusal::kInvalidToken:
                    then(unauthorized(
                        "The bearer token is not valid (unknown, expired or revoked)."));
                    return;
                case Refusal::kUnavailable:
                    then(HttpResponse::error(
                        503, "unavailable", "The account store cannot answer; try again shortly."));
                    return;
                case Refusal::kKindNotAccepted:
                case Refusal::kMissingScope:
                case Refusal::kMissingRole:
                case Refusal::kForeignRealm:
                    break;
            }
            then(HttpResponse::error(403, "forbidden",
                                     "This token does not carry the admin right (an admin "
                                     "account's session token, or an API key with scope admin "
                                     "of an admin account)."));
        });
}

}  // namespace hearth::auth
