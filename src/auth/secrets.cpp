#include "auth/secrets.hpp"
#include <array>
#include <mutex>
#include <stdexcept>

#include <sodium.h>

namespace hearth::auth {

void init_crypto() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (sodium_init() < 0) {
            throw std::runtime_error("libsodium could not be initialised");
        }
    });
}

std::string hash_password(std::string_view password, const PasswordCost& cost) {
    init_crypto();
    std::array<char, crypto_pwhash_STRBYTES> out{};
    if (crypto_pwhash_str(out.data(), password.data(), password.size(), cost.ops_limit,
                          cost.mem_limit_bytes) != 0) {
        throw std::runtime_error("argon2id could not allocate " +
                                 std::to_string(cost.mem_limit_bytes >> 20) + " MiB");
    }
    return std::string(out.data());
}

bool verify_password(std::string_view stored, std::string_view password) {
    init_crypto();
    if (stored.size() >= crypto_pwhash_STRBYTES) {
        return false;
    }
    const std::string terminated(stored);  // libsodium wants a C string
    return crypto_pwhash_str_verify(terminated.c_str(), password.data(), password.size()) == 0;
}

bool needs_rehash(std::string_view stored, const PasswordCost& cost) {
    init_crypto();
    const std::string terminated(stored);
    // 1: other parameters; -1: not an argon2id string at all (also rehash: it cannot verify).
    return crypto_pwhash_str_needs_rehash(terminated.c_str(), cost.ops_limit,
                                          cost.mem_limit_bytes) != 0;
}

std::string new_token() {
    init_crypto();
    std::array<unsigned char, 32> raw{};
    randombytes_buf(raw.data(), raw.size());
    constexpr int kVariant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    std::array<char, sodium_base64_ENCODED_LEN(32, kVariant)> out{};
    sodium_bin2base64(out.data(), out.size(), raw.data(), raw.size(), kVariant);
    sodium_memzero(raw.data(), raw.size());
    return std::string(out.data());
}

std::string new_hex_token(std::size_t bytes) {
    init_crypto();
    std::string raw(bytes, '\0');
    randombytes_buf(raw.data(), raw.size());
    std::string out(bytes * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                   raw.size());
    sodium_memzero(raw.data(), raw.size());
    out.pop_back();  // the terminator
    return out;
}

std::string token_digest(std::string_view token) {
    init_crypto();
    std::array<unsigned char, crypto_hash_sha256_BYTES> d{};
    crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(token.data()),
                       token.size());
    std::array<char, crypto_hash_sha256_BYTES * 2 + 1> hex{};
    sodium_bin2hex(hex.data(), hex.size(), d.data(), d.size());
    return std::string(hex.data());
}

std::string token_fingerprint(std::string_view token) {
    return token_digest(token).substr(0, 8);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
    init_crypto();
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace hearth::auth
