// The characters module's operator routes through the real HTTP API (docs/api.md, "Characters"):
// listing and paging, reading, rename, move to a safe spot and restore with their refusals and
// audit entries, default deny on every route, and characters kept across a restart. Characters
// are made through the module's service, as a front-end would. Every test of the suite runs on
// SQLite and on PostgreSQL.

#include <filesystem>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <hearth/characters.hpp>

#include "characters/characters_module.hpp"
#include "core/module_registry.hpp"
#include "support/clients.hpp"
#include "support/operator_client.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"
#include "unit/store/store_test_support.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
using characters::CharacterError;
using store::CharacterRecord;

constexpr const char* kAdminToken = "characters-test-admin-token";

/// The module on, with a second safe spot; `extra` wins over these.
Overrides character_overrides(Overrides extra = {}) {
    extra.merge(Overrides{{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                          {"characters.enabled", "true"},
                          {"characters.safe_spots", R"(["1:5200,5200,0", "2:10,20,30"])"}});
    return extra;
}

struct Api : OperatorClient {
    explicit Api(std::uint16_t p) : OperatorClient{p, kAdminToken} {}
};

std::vector<std::string> names(const json::value& page) {
    std::vector<std::string> out;
    for (const auto& c : page.at("items").as_array()) {
        out.emplace_back(c.at("name").as_string());
    }
    return out;
}

characters::CharacterService& service_of(TestServer& server) {
    auto* m =
        dynamic_cast<characters::CharactersModule*>(server.app().modules().module("characters"));
    if (m == nullptr) {
        throw std::logic_error("no characters module");
    }
    return m->service();
}

Result<CharacterRecord> create(characters::CharacterService& s, std::uint64_t account,
                               std::string name) {
    return store::test::sync<CharacterRecord>([&](auto done) {
        s.create(account, {.name = std::move(name), .looks = {.body = 2}}, std::move(done));
    });
}
Result<CharacterRecord> remove(characters::CharacterService& s, std::uint64_t account,
                               std::uint64_t id) {
    return store::test::sync<CharacterRecord>(
        [&](auto done) { s.remove(account, id, std::move(done)); });
}

class CharactersApi : public StoreBackendTest {};

TEST_P(CharactersApi, ListFiltersPagesAndReadsOne) {
    TestServer server(character_overrides());
    Api api{server.port()};
    auto& chars = service_of(server);
    const auto alice = api.account("alice");
    const auto bob = api.account("bob");
    auto aria = create(chars, alice, "Aria");
    ASSERT_TRUE(aria);
    ASSERT_TRUE(create(chars, bob, "Arden"));
    ASSERT_TRUE(create(chars, alice, "Brio"));
    auto gone = create(chars, alice, "Gone");
    ASSERT_TRUE(gone);
    ASSERT_TRUE(remove(chars, alice, gone->id));

    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters")),
              (std::vector<std::string>{"Aria", "Arden", "Brio"}));
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?account=alice")),
              (std::vector<std::string>{"Aria", "Brio"}));
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?account=" + std::to_string(bob))),
              (std::vector<std::string>{"Arden"}));
    EXPECT_TRUE(names(api.ok("GET", "/api/v1/characters?account=nobody")).empty());
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?name=AR")),
              (std::vector<std::string>{"Aria", "Arden"}));
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?deleted=only")),
              (std::vector<std::string>{"Gone"}));
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?account=alice&deleted=include")),
              (std::vector<std::string>{"Aria", "Brio", "Gone"}));

    auto first = api.ok("GET", "/api/v1/characters?limit=2");
    EXPECT_EQ(names(first), (std::vector<std::string>{"Aria", "Arden"}));
    ASSERT_TRUE(first.at("next").is_string());
    auto second = api.ok(
        "GET", "/api/v1/characters?limit=2&cursor=" + std::string(first.at("next").as_string()));
    EXPECT_EQ(names(second), (std::vector<std::string>{"Brio"}));
    EXPECT_TRUE(second.at("next").is_null());

    EXPECT_EQ(api.refused("GET", "/api/v1/characters?deleted=yes", 400), "invalid_parameter");
    EXPECT_EQ(api.refused("GET", "/api/v1/characters?limit=0", 400), "invalid_parameter");
    EXPECT_EQ(api.refused("GET", "/api/v1/characters?cursor=x", 400), "invalid_parameter");

    auto one = api.ok("GET", "/api/v1/characters/" + std::to_string(aria->id));
    EXPECT_EQ(one.at("name").as_string(), "Aria");
    EXPECT_EQ(one.at("account_id").to_number<std::uint64_t>(), alice);
    EXPECT_EQ(one.at("level").to_number<int>(), 1);
    EXPECT_EQ(one.at("looks").at("body").to_number<int>(), 2);
    EXPECT_EQ(one.at("stats").at("max_hp").to_number<int>(), 100);
    EXPECT_EQ(one.at("position").at("zone").to_number<int>(), 1);
    EXPECT_EQ(one.at("position").at("x").to_number<double>(), 5200.0);
    EXPECT_TRUE(one.at("inventory").as_array().empty());
    EXPECT_TRUE(one.at("deleted_at").is_null());
    EXPECT_TRUE(one.at("last_login_at").is_null());
    EXPECT_TRUE(api.ok("GET", "/api/v1/characters/" + std::to_string(gone->id))
                    .at("deleted_at")
                    .is_string());
    EXPECT_EQ(api.refused("GET", "/api/v1/characters/999999", 404), "character_not_found");
    EXPECT_EQ(api.refused("GET", "/api/v1/characters/abc", 404), "character_not_found");
}

TEST_P(CharactersApi, RenameMoveAndRestoreAreAuditedAndRefusedWhenTheyMust) {
    // No grace period, so that another character can take a deleted one's name at once.
    TestServer server(character_overrides(
        {{"characters.delete_grace_days", "0"}, {"characters.max_per_account", "2"}}));
    Api api{server.port()};
    auto& chars = service_of(server);
    const auto alice = api.account("alice");
    const auto bob = api.account("bob");
    auto aria = create(chars, alice, "Aria");
    auto brio = create(chars, bob, "Brio");
    ASSERT_TRUE(aria && brio);
    const std::string base = "/api/v1/characters/" + std::to_string(aria->id);

    // Rename: the naming rules, then the name's owner.
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, R"({"name":"ab"})"), "name_too_short");
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, R"({"name":"a b c"})"), "name_invalid");
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, R"({"name":"TheAdmin"})"),
              "name_reserved");
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, R"({"name":"abcdefghijklmnopq"})"),
              "name_too_long");
    EXPECT_EQ(api.refused("POST", base + "/rename", 409, R"({"name":"BRIO"})"), "name_taken");
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, R"({"name":7})"), "invalid_field");
    EXPECT_EQ(api.refused("POST", base + "/rename", 400, "not json"), "invalid_json");
    EXPECT_EQ(api.refused("POST", "/api/v1/characters/999999/rename", 404, R"({"name":"Zed"})"),
              "character_not_found");
    auto renamed = api.ok("POST", base + "/rename", R"({"name":"Ariadne"})");
    EXPECT_EQ(renamed.at("name").as_string(), "Ariadne");
    EXPECT_TRUE(api.audited("character.rename", "character:" + std::to_string(aria->id)));

    // Move to the safe spot of its zone.
    ASSERT_TRUE(store::test::sync<std::uint64_t>([&](auto done) {
        chars.save_many({{.id = aria->id,
                          .position = store::CharacterPosition{.zone = 2, .x = -1e6F, .z = -5}}},
                        std::move(done));
    }));
    auto moved = api.ok("POST", base + "/move-to-safe-spot");
    EXPECT_EQ(moved.at("position").at("zone").to_number<int>(), 2);
    EXPECT_EQ(moved.at("position").at("x").to_number<double>(), 10.0);
    EXPECT_EQ(moved.at("position").at("z").to_number<double>(), 30.0);
    EXPECT_TRUE(
        api.audited("character.move_to_safe_spot", "character:" + std::to_string(aria->id)));
    EXPECT_EQ(api.refused("POST", "/api/v1/characters/999999/move-to-safe-spot", 404),
              "character_not_found");

    // Restore: only a deleted one; not while its name is another's; not past the account's limit.
    EXPECT_EQ(api.refused("POST", base + "/restore", 409), "character_not_deleted");
    ASSERT_TRUE(remove(chars, alice, aria->id));
    Result<CharacterRecord> taker = make_error_code(CharacterError::kNameTaken);
    ASSERT_TRUE(eventually([&] {  // deleted "now": free from the next millisecond on
        taker = create(chars, bob, "ariadne");
        return bool(taker);
    }));
    EXPECT_EQ(api.refused("POST", base + "/restore", 409), "name_taken");
    ASSERT_TRUE(
        api.ok("POST", base + "/rename", R"({"name":"Ariadna"})").at("deleted_at").is_string());
    ASSERT_TRUE(create(chars, alice, "Cato"));
    ASSERT_TRUE(create(chars, alice, "Dido"));
    EXPECT_EQ(api.refused("POST", base + "/restore", 409), "too_many_characters");
    auto dido = api.ok("GET", "/api/v1/characters?account=alice&name=dido").at("items").at(0);
    ASSERT_TRUE(remove(chars, alice, dido.at("id").to_number<std::uint64_t>()));
    auto restored = api.ok("POST", base + "/restore");
    EXPECT_TRUE(restored.at("deleted_at").is_null());
    EXPECT_EQ(restored.at("name").as_string(), "Ariadna");
    EXPECT_TRUE(api.audited("character.restore", "character:" + std::to_string(aria->id)));
    EXPECT_EQ(api.refused("POST", "/api/v1/characters/999999/restore", 404), "character_not_found");
}

TEST_P(CharactersApi, EveryRouteRefusesAnonymousAndNonAdminCallers) {
    TestServer server(character_overrides());
    Api api{server.port()};
    const auto alice = api.account("alice");
    auto aria = create(service_of(server), alice, "Aria");
    ASSERT_TRUE(aria);
    const std::string player = api.token_of("alice");
    const std::string id = std::to_string(aria->id);
    const std::vector<std::pair<std::string, std::string>> routes = {
        {"GET", "/api/v1/characters"},
        {"GET", "/api/v1/characters?account=alice"},
        {"GET", "/api/v1/characters/" + id},
        {"POST", "/api/v1/characters/" + id + "/rename"},
        {"POST", "/api/v1/characters/" + id + "/move-to-safe-spot"},
        {"POST", "/api/v1/characters/" + id + "/restore"},
    };
    for (const auto& [method, path] : routes) {
        const std::string body = R"({"name":"Hijacked"})";
        EXPECT_EQ(api.call(method, path, body, "").status, 401) << method << " " << path;
        EXPECT_EQ(api.call(method, path, body, "not-a-token").status, 401) << method << " " << path;
        EXPECT_EQ(api.call(method, path, body, player).status, 403) << method << " " << path;
    }
    EXPECT_EQ(api.ok("GET", "/api/v1/characters/" + id).at("name").as_string(), "Aria");
}

TEST_P(CharactersApi, TheRoutesAreGoneWhileTheModuleIsDisabled) {
    TestServer server(character_overrides({{"characters.enabled", "false"}}));
    Api api{server.port()};
    EXPECT_EQ(api.call("GET", "/api/v1/characters").status, 404);
    EXPECT_EQ(api.call("GET", "/api/v1/characters/1").status, 404);
    auto r = create(service_of(server), 1, "Aria");
    EXPECT_TRUE(!r && r.error() == make_error_code(CharacterError::kDisabled));
}

HEARTH_INSTANTIATE_STORE_BACKENDS(CharactersApi);

TEST(CharactersReload, TheRulesChangeWithTheConfigAndDisablingTakesTheRoutesAway) {
    TempDir data;
    auto overrides = character_overrides(
        {{"server.data_dir", "\"" + data.path() + "\""}, {"characters.max_per_account", "1"}});
    TestServer server(overrides);
    Api api{server.port()};
    auto& chars = service_of(server);
    const auto alice = api.account("alice");
    ASSERT_TRUE(create(chars, alice, "Aria"));
    auto refused = create(chars, alice, "Brio");
    EXPECT_TRUE(!refused && refused.error() == make_error_code(CharacterError::kTooManyCharacters));

    overrides["characters.max_per_account"] = "2";
    overrides["characters.reserved_words"] = R"(["brio"])";
    server.app().apply(test_config(overrides, data.path()));
    refused = create(chars, alice, "Brio");
    EXPECT_TRUE(!refused && refused.error() == make_error_code(CharacterError::kNameReserved));
    EXPECT_TRUE(create(chars, alice, "Cato"));

    overrides["characters.enabled"] = "false";
    server.app().apply(test_config(overrides, data.path()));
    EXPECT_EQ(api.call("GET", "/api/v1/characters").status, 404);
    refused = create(chars, alice, "Dido");
    EXPECT_TRUE(!refused && refused.error() == make_error_code(CharacterError::kDisabled));

    overrides["characters.enabled"] = "true";
    server.app().apply(test_config(overrides, data.path()));
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?account=alice")),
              (std::vector<std::string>{"Aria", "Cato"}));
}

TEST(CharactersRestart, CharactersSurviveARestartOnTheSameSqliteFile) {
    TempDir data;
    const auto overrides = character_overrides(
        {{"server.data_dir", "\"" + data.path() + "\""}, {"storage.driver", "\"sqlite\""}});
    std::uint64_t id = 0;
    {
        TestServer server(overrides);
        Api api{server.port()};
        const auto alice = api.account("alice");
        auto aria = create(service_of(server), alice, "Aria");
        ASSERT_TRUE(aria);
        id = aria->id;
        api.ok("POST", "/api/v1/characters/" + std::to_string(id) + "/rename",
               R"({"name":"Ariadne"})");
    }
    ASSERT_TRUE(std::filesystem::exists(data.file("hearth.db")));
    TestServer server(overrides);
    Api api{server.port()};
    auto one = api.ok("GET", "/api/v1/characters/" + std::to_string(id));
    EXPECT_EQ(one.at("name").as_string(), "Ariadne");
    EXPECT_EQ(names(api.ok("GET", "/api/v1/characters?account=alice")),
              (std::vector<std::string>{"Ariadne"}));
    // The name stays taken after the restart.
    auto again =
        create(service_of(server), one.at("account_id").to_number<std::uint64_t>(), "ARIADNE");
    EXPECT_TRUE(!again && again.error() == make_error_code(CharacterError::kNameTaken));
}

}  // namespace
}  // namespace hearth::test
