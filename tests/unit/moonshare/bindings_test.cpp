// Moonshare's user id bindings (src/frontends/moonshare/bindings.hpp): who may get a token for a
// user id, which tokens authenticate it, the bounds, the expiry and the snapshot, on a fixed
// clock.

#include <chrono>
#include <set>
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
    // Both authenticated (a binding that never did would make room for a new user id).
    EXPECT_TRUE(b.holds("a", digest('a'), kT0));
    EXPECT_TRUE(b.holds("b", digest('b'), kT0));
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
    const auto snap = b.snapshot();
    const auto& text = snap.text;
    EXPECT_EQ(snap.version, v);
    Bindings c({.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true});
    const auto loaded = c.load(text, kT0);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->loaded, 2u);
    EXPECT_EQ(loaded->dropped, 0u);
    EXPECT_TRUE(c.holds("u", digest('a'), kT0));
    EXPECT_TRUE(c.holds("u\"<é", digest('b'), kT0));
    EXPECT_EQ(take(c, "u", "1.1.1.1", 'c'), D::kSameAddress);
    EXPECT_EQ(take(c, "u", "3.3.3.3", 'c'), D::kHeld);
    // Loaded past its end: kept for the sweep, which may end it.
    Bindings late({.max_bindings = 1, .ttl = 3600s, .renew_from_same_ip = true});
    const auto one = late.load(text, kT0 + 48h);  // max_bindings: one of the two
    ASSERT_TRUE(one);
    EXPECT_EQ(one->loaded, 1u);
    EXPECT_EQ(one->dropped, 1u);
    EXPECT_EQ(late.due(kT0 + 48h).size(), 1u);
    // Not a snapshot: nothing loaded.
    EXPECT_FALSE(c.load("{}", kT0));
    EXPECT_FALSE(c.load("not json", kT0));
    EXPECT_FALSE(c.load(R"({"format":1,"bindings":[{"user":"u"}]})", kT0));
}

TEST(MoonshareBindings, SnapshotKeepsOriginsAndWhichAuthenticated) {
    Bindings b(
        {.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true, .max_per_address = 2});
    EXPECT_EQ(take(b, "used", "2001:db8:1:2::5", 'a'), D::kNew);
    EXPECT_EQ(take(b, "unused", "2001:db8:1:2::6", 'b'), D::kNew);  // the same /64
    EXPECT_TRUE(b.holds("used", digest('a'), kT0));
    EXPECT_EQ(b.from_address("2001:db8:1:2::7"), 2u);
    Bindings c(
        {.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true, .max_per_address = 2});
    ASSERT_TRUE(c.load(b.snapshot().text, kT0));
    EXPECT_EQ(c.from_address("2001:db8:1:2::7"), 2u);
    // At the address's bound the one that never authenticated makes room.
    EXPECT_EQ(take(c, "third", "2001:db8:1:2::8", 'c', kT0 + 1s), D::kNew);
    EXPECT_TRUE(c.bound("used"));
    EXPECT_FALSE(c.bound("unused"));
    // A snapshot of an earlier version (no origin, no authenticated): counted by its address,
    // and taken as authenticated.
    Bindings old(
        {.max_bindings = 10, .ttl = 3600s, .renew_from_same_ip = true, .max_per_address = 1});
    ASSERT_TRUE(old.load(
        R"({"format":1,"bindings":[{"user":"u","address":"1.1.1.1","last_used_s":1750000000,"tokens":[]}]})",
        kT0));
    EXPECT_EQ(old.from_address("1.1.1.1"), 1u);
    EXPECT_EQ(take(old, "v", "1.1.1.1", 'v'), D::kNew);  // u was not in use: it made room
    EXPECT_FALSE(old.bound("u"));
}

TEST(MoonshareBindings, OneAddressHoldsAtMostItsShareAndEndsItsOwnUnusedFirst) {
    Bindings b(
        {.max_bindings = 100, .ttl = 3600s, .renew_from_same_ip = true, .max_per_address = 3});
    std::set<std::string> in_use;
    const Bindings::InUse busy = [&in_use](const std::string& u) { return in_use.count(u) > 0; };
    auto request = [&](const std::string& user, const std::string& ip, char token,
                       Bindings::TimePoint now, Bindings::Eviction* evicted = nullptr) {
        const auto d = b.request(user, ip, std::nullopt, now, busy, evicted);
        if (Bindings::granted(d)) {
            b.issued(user, ip, digest(token), now + 24h, now);
        }
        return d;
    };
    EXPECT_EQ(request("a", "1.1.1.1", 'a', kT0), D::kNew);
    EXPECT_EQ(request("b", "1.1.1.1", 'b', kT0 + 1s), D::kNew);
    EXPECT_EQ(request("c", "1.1.1.1", 'c', kT0 + 2s), D::kNew);
    EXPECT_TRUE(b.holds("a", digest('a'), kT0 + 3s));  // a and c authenticated, b never
    EXPECT_TRUE(b.holds("c", digest('c'), kT0 + 4s));
    // The fourth from the address ends b, which never authenticated, though a is older.
    Bindings::Eviction evicted{};
    EXPECT_EQ(request("d", "1.1.1.1", 'd', kT0 + 5s, &evicted), D::kNew);
    EXPECT_EQ(evicted, Bindings::Eviction::kAddressCap);
    EXPECT_FALSE(b.bound("b"));
    // d never authenticated either, but is in use (a file waits for it); then a, the least
    // recently used of those that did.
    in_use.insert("d");
    EXPECT_EQ(request("e", "1.1.1.1", 'e', kT0 + 6s), D::kNew);
    EXPECT_FALSE(b.bound("a"));
    EXPECT_TRUE(b.bound("c"));
    EXPECT_TRUE(b.bound("d"));
    // Every one in use: the address gets no more.
    in_use.insert({"c", "e"});
    EXPECT_EQ(request("f", "1.1.1.1", 'f', kT0 + 7s), D::kAddressFull);
    EXPECT_FALSE(b.bound("f"));
    // Another address is not concerned.
    EXPECT_EQ(request("g", "2.2.2.2", 'g', kT0 + 8s), D::kNew);
    EXPECT_EQ(b.from_address("1.1.1.1"), 3u);
    EXPECT_EQ(b.from_address("2.2.2.2"), 1u);
    // Ended bindings give their place back.
    in_use.clear();
    EXPECT_TRUE(b.end_if_due("g", kT0 + 48h));
    EXPECT_EQ(b.from_address("2.2.2.2"), 0u);
}

TEST(MoonshareBindings, WhenFullANewUserIdEndsTheOldestThatNeverAuthenticated) {
    Bindings b({.max_bindings = 3, .ttl = 3600s, .renew_from_same_ip = true});
    EXPECT_EQ(take(b, "player", "1.1.1.1", 'p', kT0), D::kNew);
    EXPECT_TRUE(b.holds("player", digest('p'), kT0));
    EXPECT_EQ(take(b, "minted1", "2.2.2.2", '1', kT0 + 1s), D::kNew);
    EXPECT_EQ(take(b, "minted2", "2.2.2.2", '2', kT0 + 2s), D::kNew);
    Bindings::Eviction evicted{};
    EXPECT_EQ(b.request("newcomer", "3.3.3.3", std::nullopt, kT0 + 3s, {}, &evicted), D::kNew);
    EXPECT_EQ(evicted, Bindings::Eviction::kFull);
    EXPECT_FALSE(b.bound("minted1"));
    EXPECT_TRUE(b.bound("minted2"));
    EXPECT_TRUE(b.bound("player"));
    // A binding waiting for its token is never ended; nor one that authenticated.
    EXPECT_EQ(b.request("another", "4.4.4.4", std::nullopt, kT0 + 4s), D::kNew);  // minted2 goes
    EXPECT_FALSE(b.bound("minted2"));
    EXPECT_EQ(b.request("full", "5.5.5.5", std::nullopt, kT0 + 5s), D::kFull);
}

TEST(MoonshareBindings, TimesOfUseAloneAreTouchesNotVersions) {
    Bindings b({});
    EXPECT_EQ(take(b, "u", "1.1.1.1", 'a'), D::kNew);
    const auto v = b.version();
    EXPECT_TRUE(b.holds("u", digest('a'), kT0));  // the first authentication is a change
    EXPECT_GT(b.version(), v);
    const auto v2 = b.version();
    const auto t = b.touches();
    EXPECT_TRUE(b.holds("u", digest('a'), kT0 + 1s));
    b.touch("u", kT0 + 2s);
    EXPECT_EQ(b.version(), v2);
    EXPECT_EQ(b.touches(), t + 2);
    const auto snap = b.snapshot();
    EXPECT_EQ(snap.version, v2);
    EXPECT_EQ(snap.touches, t + 2);
}

}  // namespace
}  // namespace hearth::frontends::moonshare
