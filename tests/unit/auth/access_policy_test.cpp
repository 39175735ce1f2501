// The one rule every door applies to a validated token (src/auth/access_policy.hpp): refusals
// first, one per reason, then what each kind needs to pass.

#include "auth/access_policy.hpp"

#include <gtest/gtest.h>

namespace hearth::auth {
namespace {

Principal session(std::vector<std::string> roles) {
    Principal p;
    p.kind = TokenKind::kSession;
    p.roles = std::move(roles);
    return p;
}

Principal api_key(std::vector<std::string> scopes, std::vector<std::string> roles = {"player"}) {
    Principal p;
    p.kind = TokenKind::kApiKey;
    p.scopes = std::move(scopes);
    p.roles = std::move(roles);
    return p;
}

Principal guest(std::string realm) {
    Principal p;
    p.kind = TokenKind::kGuest;
    p.username = "guest:" + realm;
    p.realm = std::move(realm);
    p.subject = "someone";
    return p;
}

// Homestead's declaration: API keys with scope homestead, nothing else.
AccessPolicy homestead() {
    return {.door = "homestead", .api_key_scope = "homestead"};
}

TEST(AccessPolicy, AnEmptyPolicyRefusesEveryKind) {
    const AccessPolicy nothing{.door = "nothing"};
    EXPECT_EQ(nothing.check(session({"admin", "moderator", "player"})), Refusal::kKindNotAccepted);
    EXPECT_EQ(nothing.check(api_key({"admin", "native", "homestead"}, {"admin"})),
              Refusal::kKindNotAccepted);
    EXPECT_EQ(nothing.check(guest("moonshare")), Refusal::kKindNotAccepted);
}

TEST(AccessPolicy, SessionsAndGuestsDoNotPassADoorForApiKeys) {
    // The hole this rule closes: a player's session, even an admin's, and a guest token used to
    // pass every door but the operator API.
    EXPECT_EQ(homestead().check(session({"player"})), Refusal::kKindNotAccepted);
    EXPECT_EQ(homestead().check(session({"admin"})), Refusal::kKindNotAccepted);
    EXPECT_EQ(homestead().check(guest("moonshare")), Refusal::kKindNotAccepted);
}

TEST(AccessPolicy, AnApiKeyNeedsTheDoorsScope) {
    EXPECT_EQ(homestead().check(api_key({"native"})), Refusal::kMissingScope);
    EXPECT_EQ(homestead().check(api_key({"admin"}, {"admin"})), Refusal::kMissingScope);
    EXPECT_EQ(homestead().check(api_key({"native", "homestead"})), Refusal::kNone);
}

TEST(AccessPolicy, ApiKeyRolesLimitWhatAScopeGrants) {
    const AccessPolicy operators{.door = "operator",
                                 .api_key_scope = "admin",
                                 .api_key_roles = {"admin"},
                                 .session_roles = {"admin"}};
    EXPECT_EQ(operators.check(api_key({"admin"}, {"player"})), Refusal::kMissingRole);
    EXPECT_EQ(operators.check(api_key({"admin"}, {"admin"})), Refusal::kNone);
    EXPECT_EQ(operators.check(session({"player", "moderator"})), Refusal::kMissingRole);
    EXPECT_EQ(operators.check(session({"admin"})), Refusal::kNone);
    EXPECT_EQ(operators.check(guest("moonshare")), Refusal::kKindNotAccepted);
}

TEST(AccessPolicy, SessionsNeedOneOfTheDoorsRoles) {
    const AccessPolicy native{.door = "native",
                              .api_key_scope = "native",
                              .session_roles = {"player", "moderator", "admin"}};
    EXPECT_EQ(native.check(session({})), Refusal::kMissingRole);
    EXPECT_EQ(native.check(session({"moderator"})), Refusal::kNone);
    Principal external = session({"player"});
    external.external = true;
    EXPECT_EQ(native.check(external), Refusal::kNone);
    EXPECT_EQ(native.check(api_key({"native"}, {})), Refusal::kNone);
    EXPECT_EQ(native.check(guest("moonshare")), Refusal::kKindNotAccepted);
}

TEST(AccessPolicy, AGuestTokenIsValidInItsRealmAlone) {
    const AccessPolicy moonshare{.door = "moonshare", .guest_realm = "moonshare"};
    EXPECT_EQ(moonshare.check(guest("elsewhere")), Refusal::kForeignRealm);
    EXPECT_EQ(moonshare.check(guest("")), Refusal::kForeignRealm);
    EXPECT_EQ(moonshare.check(session({"admin"})), Refusal::kKindNotAccepted);
    EXPECT_EQ(moonshare.check(api_key({"moonshare"}, {"admin"})), Refusal::kKindNotAccepted);
    EXPECT_EQ(moonshare.check(guest("moonshare")), Refusal::kNone);
}

TEST(AccessPolicy, ReasonsHaveStableNames) {
    EXPECT_EQ(to_string(Refusal::kMissingToken), "missing_token");
    EXPECT_EQ(to_string(Refusal::kInvalidToken), "invalid_token");
    EXPECT_EQ(to_string(Refusal::kKindNotAccepted), "kind_not_accepted");
    EXPECT_EQ(to_string(Refusal::kMissingScope), "missing_scope");
    EXPECT_EQ(to_string(Refusal::kMissingRole), "missing_role");
    EXPECT_EQ(to_string(Refusal::kForeignRealm), "foreign_realm");
    EXPECT_EQ(to_string(Refusal::kUnavailable), "unavailable");
}

}  // namespace
}  // namespace hearth::auth
