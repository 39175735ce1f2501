// Password hashing with argon2id, token formats and digests (libsodium underneath).

#include "auth/secrets.hpp"
#include <regex>
#include <set>

#include <gtest/gtest.h>

namespace hearth::auth {
namespace {

// The cheapest costs libsodium accepts, so that the tests do not spend seconds hashing.
const PasswordCost kCheap{.ops_limit = 1, .mem_limit_bytes = 8192};

TEST(Secrets, PasswordHashIsArgon2idSaltedAndVerifies) {
    const auto h1 = hash_password("correct horse", kCheap);
    const auto h2 = hash_password("correct horse", kCheap);
    EXPECT_TRUE(h1.starts_with("$argon2id$v=19$m=8,t=1,p=1$")) << h1;
    EXPECT_NE(h1, h2);  // a fresh salt each time
    EXPECT_EQ(h1.find("correct horse"), std::string::npos);
    EXPECT_TRUE(verify_password(h1, "correct horse"));
    EXPECT_TRUE(verify_password(h2, "correct horse"));
    EXPECT_FALSE(verify_password(h1, "correct horsE"));
    EXPECT_FALSE(verify_password(h1, ""));
    EXPECT_FALSE(verify_password("not a hash", "correct horse"));
    EXPECT_FALSE(verify_password("", ""));
    EXPECT_FALSE(verify_password(std::string(1000, '$'), "x"));
}

TEST(Secrets, RehashIsNeededWhenTheCostChanges) {
    const auto h = hash_password("pw", kCheap);
    EXPECT_FALSE(needs_rehash(h, kCheap));
    EXPECT_TRUE(needs_rehash(h, PasswordCost{.ops_limit = 2, .mem_limit_bytes = 8192}));
    EXPECT_TRUE(needs_rehash(h, PasswordCost{.ops_limit = 1, .mem_limit_bytes = 16384}));
    EXPECT_TRUE(needs_rehash("garbage", kCheap));
}

TEST(Secrets, TokensAre256BitBase64UrlAndUnique) {
    const std::regex base64url("^[A-Za-z0-9_-]{43}$");
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const auto t = new_token();
        ASSERT_TRUE(std::regex_match(t, base64url)) << t;
        seen.insert(t);
    }
    EXPECT_EQ(seen.size(), 1000U);
}

TEST(Secrets, HexTokensHaveTheAskedLength) {
    const auto t = new_hex_token(16);
    EXPECT_TRUE(std::regex_match(t, std::regex("^[0-9a-f]{32}$"))) << t;
    EXPECT_NE(new_hex_token(16), t);
}

TEST(Secrets, DigestIsSha256HexAndFingerprintItsPrefix) {
    // SHA-256("abc"), FIPS 180-2 test vector.
    EXPECT_EQ(token_digest("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(token_fingerprint("abc"), "ba7816bf");
    EXPECT_TRUE(equal_constant_time("same", "same"));
    EXPECT_FALSE(equal_constant_time("same", "sane"));
    EXPECT_FALSE(equal_constant_time("same", "samey"));
}

}  // namespace
}  // namespace hearth::auth
