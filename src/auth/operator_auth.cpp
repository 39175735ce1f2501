#include "auth/operator_auth.hpp"
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace hearth::auth {

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

std::optional<HttpResponse> OperatorAuth::check(const HttpRequest& req) const {
    constexpr std::string_view kBearer = "Bearer ";
    const auto header = req.header("Authorization").value_or("");
    const std::string_view presented =
        header.starts_with(kBearer) ? header.substr(kBearer.size()) : std::string_view{};
    if (!presented.empty()) {
        const Digest d = digest(presented);
        std::lock_guard lock(mutex_);
        if (token_set_ && CRYPTO_memcmp(d.data(), token_digest_.data(), d.size()) == 0) {
            return std::nullopt;
        }
    }
    auto r = HttpResponse::error(401, "unauthorized",
                                 presented.empty()
                                     ? "This endpoint needs Authorization: Bearer <admin token>."
                                     : "The bearer token is not valid.");
    r.headers.push_back({"WWW-Authenticate", "Bearer"});
    return r;
}

}  // namespace hearth::auth
