#include "auth/operator_auth.hpp"
#include <optional>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "auth/account_service.hpp"
#include "util/strings.hpp"

namespace hearth::auth {

namespace {

/// Decodes base64url without padding (RFC 4648 section 5); nothing when `in` is not that.
std::optional<std::string> decode_base64url(std::string_view in) {
    std::string out(in.size() * 3 / 4 + 1, '\0');
    std::size_t length = 0;
    const char* end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                          in.size(), nullptr, &length, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != in.data() + in.size()) {
        return std::nullopt;
    }
    out.resize(length);
    return out;
}

}  // namespace

PresentedToken presented_token(const HttpRequest& req) {
    if (auto header = req.header("Authorization")) {
        return {PresentedToken::Kind::kHeader, std::string(*header)};
    }
    PresentedToken found;
    for (const auto& h : req.headers) {
        if (!util::iequals_ascii(h.name, "Sec-WebSocket-Protocol")) {
            continue;
        }
        const bool done = util::for_each_list_item(h.value, [&](std::string_view item) {
            if (!item.starts_with(kBearerSubprotocolPrefix)) {
                return false;
            }
            auto token = decode_base64url(item.substr(kBearerSubprotocolPrefix.size()));
            if (!token || token->empty()) {
                found = {PresentedToken::Kind::kMalformed, {}};
            } else {
                found = {PresentedToken::Kind::kSubprotocol, std::move(*token)};
            }
            return true;
        });
        if (done) {
            break;
        }
    }
    return found;
}

bool origin_allowed(const HttpRequest& req, const std::vector<std::string>& allowed) {
    const auto origin = req.header("Origin");
    if (!origin) {
        return true;
    }
    for (const auto& a : allowed) {
        if (util::iequals_ascii(a, *origin)) {
            return true;
        }
    }
    const auto sep = origin->find("://");
    if (sep == std::string_view::npos) {
        return false;  // "null" (a sandboxed or file: page) and anything else that is no origin
    }
    const auto authority = origin->substr(sep + 3);
    const auto host = req.header("Host");
    return !authority.empty() && authority.find('/') == std::string_view::npos && host &&
           util::iequals_ascii(authority, *host);
}

void OperatorAuth::authorize_upgrade(const HttpRequest& req, const PresentedToken& presented,
                                     const std::vector<std::string>& allowed_origins,
                                     std::function<void(Outcome)> then) const {
    switch (presented.kind) {
        case PresentedToken::Kind::kNone:
            then(unauthorized(
                "This stream needs an admin's token: Authorization: Bearer <token>, or (from a "
                "browser) the subprotocol hearth.bearer.<the token in base64url>."));
            return;
        case PresentedToken::Kind::kMalformed:
            then(
                unauthorized("The token subprotocol must be hearth.bearer.<the token in "
                             "base64url without padding>."));
            return;
        case PresentedToken::Kind::kHeader:
        case PresentedToken::Kind::kSubprotocol:
            break;
    }
    if (!origin_allowed(req, allowed_origins)) {
        then(HttpResponse::error(403, "forbidden_origin",
                                 "A page of this Origin may not open an operator stream: only the "
                                 "server's own origin and the configured allowed origins may."));
        return;
    }
    // authorize reads the token from Authorization: a subprotocol's is handed over that way.
    HttpRequest check;
    check.peer_address = req.peer_address;
    check.headers.push_back({"Authorization", presented.kind == PresentedToken::Kind::kSubprotocol
                                                  ? "Bearer " + presented.token
                                                  : presented.token});
    authorize(check, std::move(then));
}

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
