// Moonshare's user id bindings (src/frontends/moonshare/bindings.hpp): who may get a token for a
// user id, which tokens authenticate it, the bounds, the expiry and the snapshot, on a fixed
// clock.

#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "frontends/moonshare/bindings.hpp"

namespace hearth::frontends::moonshare {
namespace {

using namespace std::chrono_literals;
using D = Bindings::Decision;

const Bindings::TimePoint kT0 = Bindings::TimePoint(std::chrono::seconds(1'750'000'000));

std::string digest(char c) {
    return std::string(64, c);
}

/// Grants and issues a token for `user` to `ip`, valid for a day from `now`.
D take(Bindings& b, const std::string& user, const std::string& ip, char token,
       Bindings::TimePoint now = kT0, std::optional<std::string> proof = std::nullopt) {
    const auto d = b.request(user, ip, proof, now);
    if (Bindings::granted(d)) {
        b.issued(user, ip, digest(token), now + 24h, now);
    }
    return d;
}

TEST(MoonshareBindings, TheFirstTokenHoldsTheUserId) {
    Bindings b({});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);
    EXPECT_TRUE(b.holds("u", digest('a'), kT0));
    EXPECT_FALSE(b.holds("u", digest('b'), kT0));  // a token the holder was not issued
    EXPECT_FALSE(b.holds("v", digest('a'), kT0));  // the holder's token, another user id
    // Another address, without the holder's token: refused.
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'x'), D::kHeld);
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'x', kT0, digest('z')), D::kHeld);  // not a holder's token
    EXPECT_FALSE(b.holds("u", digest('x'), kT0));
    // The holder's token from anywhere; the holder's address without one (the plugin reconnects).
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'c', kT0, digest('a')), D::kHolder);
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'd'), D::kSameAddress);
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'e'), D::kSameAddress);  // its tokens' addresses, each
    EXPECT_TRUE(b.holds("u", digest('c'), kT0));
}

TEST(MoonshareBindings, WithoutSameAddressRenewalOnlyTheHoldersTokenRenews) {
    Bindings b({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = false});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'b'), D::kHeld);
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'b', kT0, digest('a')), D::kHolder);
}

TEST(MoonshareBindings, AFailedIssueFreesANewUserId) {
    Bindings b({});
    EXPECT_EQ(b.request("u", "1.1.1.1", std::nullopt, kT0), D::kNew);
    // While the first token is being issued, another address is refused already.
    EXPECT_EQ(b.request("u", "2.2.2.2", std::nullopt, kT0), D::kHeld);
    EXPECT_TRUE(b.due(kT0 + 48h).empty());  // a request in flight holds the binding
    b.failed("u");
    EXPECT_FALSE(b.bound("u"));
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'a'), D::kNew);
}

TEST(MoonshareBindings, AFailedRenewalKeepsAHeldUserId) {
    Bindings b({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);
    // A day later the token has expired; a renewal from the holder's address fails to issue.
    const auto later = kT0 + 25h;
    EXPECT_EQ(b.request("u", "1.1.1.1", std::nullopt, later), D::kSameAddress);
    b.failed("u");
    // The id is still held: another address cannot take it.
    EXPECT_TRUE(b.bound("u"));
    EXPECT_EQ(b.request("u", "2.2.2.2", std::nullopt, later), D::kHeld);
}

TEST(MoonshareBindings, AtMostMaxBindingsAndFourTokensEach) {
    Bindings b({.max_bindings = 2, .ttl = 3600s, .renew_from_same_ip = true});
    EXPECT_EQ(take(b, "a", "1.1.1.1", 'a'), D::kNew);
    EXPECT_EQ(take(b, "b", "1.1.1.1", 'b'), D::kNew);
    EXPECT_EQ(take(b, "c", "1.1.1.1", 'c'), D::kFull);
    EXPECT_FALSE(b.bound("c"));
    EXPECT_EQ(take(b, "a", "1.1.1.1", '1'), D::kSameAddress);  // held ones still renew
    EXPECT_EQ(take(b, "a", "1.1.1.1", '2'), D::kSameAddress);
    EXPECT_EQ(take(b, "a", "1.1.1.1", '3'), D::kSameAddress);
    EXPECT_EQ(take(b, "a", "1.1.1.1", '4'), D::kSameAddress);
    // Five tokens issued: the oldest is forgotten.
    EXPECT_FALSE(b.holds("a", digest('a'), kT0));
    EXPECT_TRUE(b.holds("a", digest('1'), kT0));
    EXPECT_TRUE(b.holds("a", digest('4'), kT0));
    EXPECT_EQ(b.size(), 2u);
    EXPECT_GT(b.bytes(), 0u);
    EXPECT_LE(b.bytes(), 2 * Bindings::kMaxBindingBytes);
}

TEST(MoonshareBindings, ABindingEndsAfterItsTtlAndItsTokens) {
    Bindings b({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);    // the token: valid 24 h
    EXPECT_TRUE(b.due(kT0 + 2h).empty());                // a valid token keeps it
    EXPECT_FALSE(b.holds("u", digest('a'), kT0 + 25h));  // expired
    ASSERT_EQ(b.due(kT0 + 25h), std::vector<std::string>{"u"});
    // Used since `due` (an authentication, a leave): not ended.
    b.touch("u", kT0 + 25h);
    EXPECT_FALSE(b.end_if_due("u", kT0 + 25h));
    // Pinned (a file being stored for it): not due.
    ASSERT_TRUE(b.pin("u"));
    EXPECT_TRUE(b.due(kT0 + 30h).empty());
    EXPECT_FALSE(b.end_if_due("u", kT0 + 30h));
    b.unpin("u");
    EXPECT_TRUE(b.end_if_due("u", kT0 + 30h));
    EXPECT_FALSE(b.bound("u"));
    EXPECT_FALSE(b.pin("u"));
    EXPECT_EQ(take(b, "u", "2.2.2.2", 'b', kT0 + 30h), D::kNew);  // free again
}

TEST(MoonshareBindings, AnUnclaimedUserIdCannotBeTaken) {
    Bindings b({});
    b.hold_unclaimed("u", kT0);
    EXPECT_TRUE(b.bound("u"));
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kHeld);
    EXPECT_EQ(take(b, "u", "", 'a'), D::kHeld);
    EXPECT_EQ(b.due(kT0 + 25h), std::vector<std::string>{"u"});
}

TEST(MoonshareBindings, SnapshotRoundTrip) {
    Bindings b({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);
    EXPECT_EQ(take(b, "u\"<é", "::1", 'b'), D::kNew);
    const auto v = b.version();
    auto [text, version] = b.snapshot();
    EXPECT_EQ(version, v);
    Bindings c({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true});
    ASSERT_EQ(c.load(text, kT0), 2u);
    EXPECT_TRUE(c.holds("u", digest('a'), kT0));
    EXPECT_TRUE(c.holds("u\"<é", digest('b'), kT0));
    EXPECT_EQ(take(c, "u", "1.1.1.1", 'c'), D::kSameAddress);
    EXPECT_EQ(take(c, "u", "3.3.3.3", 'c'), D::kHeld);
    // Loaded past its end: kept for the sweep, which may end it.
    Bindings late({.max_bindings = 1, .ttl = 3600s, .renew_from_same_ip = true});
    ASSERT_EQ(late.load(text, kT0 + 48h), 1u);  // max_bindings: one of the two
    EXPECT_EQ(late.due(kT0 + 48h).size(), 1u);
    // Not a snapshot: nothing loaded.
    EXPECT_FALSE(c.load("{}", kT0));
    EXPECT_FALSE(c.load("not json", kT0));
    EXPECT_FALSE(c.load(R"({"format":1,"bindings":[{"user":"u"}]})", kT0));
}

}  // namespace
}  // namespace hearth::frontends::moonshare
