// The character opcodes of the game packet protocol (docs/protocol/packets.md, 0x0712-0x0715)
// served by the real server over real TCP on the characters module, spoken through the C++ client
// library: create, list, delete and select with every refusal of the naming rules, the
// per-account limit, a deleted name kept reserved, another account's characters, a list that
// spans packets, requests answered in order behind a character request, the states the world's
// opcodes follow, and one live connection per character (a second select takes it over). Every
// test of the suite runs on SQLite and on PostgreSQL.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <hearth/characters.hpp>

#include "characters/characters_module.hpp"
#include "core/module_registry.hpp"
#include "hearth_client/client.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"
#include "unit/store/store_test_support.hpp"

namespace hearth::test {
namespace {

namespace wire = ::hearth::packet;
using client::Client;
using client::Error;
using namespace std::chrono_literals;

constexpr const char* kAdminToken = "packet-characters-admin";
constexpr const char* kPassword = "long enough password";

/// The next packet, which must be an Error; its code, opcode and detail.
struct SeenError {
    wire::ErrorCode code{};
    std::uint16_t opcode = 0;
    std::uint32_t detail = 0;
    std::string message;
};
SeenError next_error(Client& c) {
    auto p = c.receive();
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    if (!p.ok()) {
        return {};
    }
    EXPECT_TRUE(p->is(wire::Opcode::kAlive)) << "type " << p->type;
    auto d = p->decode<wire::Error>();
    EXPECT_EQ(d.error, wire::WireError::kNone);
    return {d.message.code, d.message.opcode, d.message.detail, std::string(d.message.message)};
}

/// `r` failed with the server's `code` (and `detail`, when given).
template <class T>
void expect_refused(const client::Result<T>& r, wire::ErrorCode code,
                    std::optional<std::uint32_t> detail = {}) {
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().is(code)) << r.error().name() << ": " << r.error().message;
    if (detail) {
        EXPECT_EQ(r.error().detail, *detail) << r.error().name();
    }
}

std::vector<std::string> names(const std::vector<client::Character>& list) {
    std::vector<std::string> out;
    for (const auto& c : list) {
        out.push_back(c.name);
    }
    return out;
}

class PacketCharacters : public StoreBackendTest {
protected:
    void start(Overrides extra = {}) {
        extra.merge(Overrides{{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                              {"packet.enabled", "true"},
                              {"packet.listen", "\"127.0.0.1:0\""},
                              {"characters.enabled", "true"}});
        server_ = std::make_unique<TestServer>(extra);
    }

    std::uint16_t port() const { return server_->app().server().bound_port("packet"); }

    void account(const std::string& name) {
        auto r = http_request(server_->port(), "POST", "/api/v1/accounts",
                              R"({"username":")" + name + R"(","password":")" + kPassword + R"("})",
                              {{"Authorization", std::string("Bearer ") + kAdminToken},
                               {"Content-Type", "application/json"}});
        ASSERT_EQ(r.status, 201) << r.body;
    }

    /// A connection logged in as `name`.
    Client logged_in(const std::string& name) {
        Client c(client::ClientOptions{.timeout = kDeadline, .max_unread_packets = 64});
        auto s = c.connect("127.0.0.1", port());
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        auto l = c.login_password(name, kPassword);
        EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
        return c;
    }

    double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
        return server_->metric(name, labels);
    }

    std::unique_ptr<TestServer> server_;
};

TEST_P(PacketCharacters, CreateListSelectDelete) {
    start();
    account("alice");
    auto c = logged_in("alice");
    auto empty = c.list_characters();
    ASSERT_TRUE(empty.ok()) << empty.error().message;
    EXPECT_TRUE(empty->empty());

    const wire::Looks looks{.body = 1, .face = 2, .hair = 3, .hair_color = 4};
    auto rowan = c.create_character("Rowan", looks);
    ASSERT_TRUE(rowan.ok()) << rowan.error().message;
    EXPECT_EQ(rowan->name, "Rowan");
    EXPECT_EQ(rowan->level, 1);
    EXPECT_EQ(rowan->looks, looks);
    EXPECT_EQ(rowan->zone, 1U);  // [characters] start_zone
    auto brio = c.create_character("Brio", {});
    ASSERT_TRUE(brio.ok()) << brio.error().message;

    auto list = c.list_characters();
    ASSERT_TRUE(list.ok()) << list.error().message;
    EXPECT_EQ(names(*list), (std::vector<std::string>{"Rowan", "Brio"}));
    EXPECT_EQ((*list)[0].id, rowan->id);
    EXPECT_EQ((*list)[0].looks, looks);

    // The whole character, as the store has it: the starting stats at the start zone's safe spot.
    auto selected = c.select_character(rowan->id);
    ASSERT_TRUE(selected.ok()) << selected.error().message;
    EXPECT_EQ(selected->id, rowan->id);
    EXPECT_EQ(selected->name, "Rowan");
    EXPECT_EQ(selected->level, 1);
    EXPECT_EQ(selected->experience, 0U);
    EXPECT_EQ(selected->money, 0U);
    EXPECT_EQ(selected->stats, (wire::Stats{.hp = 100,
                                            .max_hp = 100,
                                            .mp = 50,
                                            .max_mp = 50,
                                            .strength = 10,
                                            .dexterity = 10,
                                            .intelligence = 10,
                                            .vitality = 10}));
    EXPECT_EQ(selected->looks, looks);
    EXPECT_EQ(selected->position.zone, 1U);
    EXPECT_EQ(selected->position.at, (wire::Vec3{.x = 520, .y = 480.5F, .z = 0}));
    EXPECT_TRUE(selected->inventory.empty());

    auto deleted = c.delete_character(brio->id);
    ASSERT_TRUE(deleted.ok()) << deleted.error().message;
    EXPECT_EQ(*deleted, brio->id);
    auto after = c.list_characters();
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(names(*after), (std::vector<std::string>{"Rowan"}));
    // Deleted: neither selected nor deleted again.
    expect_refused(c.select_character(brio->id), wire::ErrorCode::kNoSuchCharacter);
    expect_refused(c.delete_character(brio->id), wire::ErrorCode::kNoSuchCharacter);
    expect_refused(c.select_character(999'999), wire::ErrorCode::kNoSuchCharacter);
    EXPECT_EQ(metric("hearth_packet_characters_selected", {}), 1);
    ASSERT_TRUE(c.logout().ok());
    EXPECT_TRUE(eventually([&] { return metric("hearth_packet_characters_selected", {}) == 0; }));
}

TEST_P(PacketCharacters, SelectSaysWhatTheWorldSaved) {
    start();
    account("abe");
    auto c = logged_in("abe");
    auto made = c.create_character("Abelard", {});
    ASSERT_TRUE(made.ok());
    // The world's save (part 2), through the module's service as the world will call it: 60
    // inventory slots, more than the message's 48.
    auto* module =
        dynamic_cast<characters::CharactersModule*>(server_->app().modules().module("characters"));
    ASSERT_NE(module, nullptr);
    std::vector<store::InventorySlot> inventory;
    for (std::uint16_t i = 0; i < 60; ++i) {
        inventory.push_back({.slot = static_cast<std::uint16_t>(59 - i),
                             .item_id = 1000U + i,
                             .count = static_cast<std::uint32_t>(i + 1)});
    }
    const store::CharacterStats stats{.str = 11,
                                      .dex = 12,
                                      .intelligence = 13,
                                      .con = 14,
                                      .hp = 150,
                                      .max_hp = 200,
                                      .mp = 60,
                                      .max_mp = 70};
    auto saved = store::test::sync<std::uint64_t>([&](auto done) {
        module->service().save_many(
            {{.id = made->id,
              .level = 7,
              .experience = 123'456'789'012,
              .money = 42,
              .stats = stats,
              .inventory = inventory,
              .position =
                  store::CharacterPosition{
                      .zone = 2, .x = 10.5F, .y = -20.25F, .z = 3, .heading = 1.5F}}},
            std::move(done));
    });
    ASSERT_TRUE(saved);
    auto s = c.select_character(made->id);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(s->level, 7);
    EXPECT_EQ(s->experience, 123'456'789'012U);
    EXPECT_EQ(s->money, 42U);
    EXPECT_EQ(s->stats, (wire::Stats{.hp = 150,
                                     .max_hp = 200,
                                     .mp = 60,
                                     .max_mp = 70,
                                     .strength = 11,
                                     .dexterity = 12,
                                     .intelligence = 13,
                                     .vitality = 14}));
    EXPECT_EQ(s->position.zone, 2U);
    EXPECT_EQ(s->position.at, (wire::Vec3{.x = 10.5F, .y = -20.25F, .z = 3}));
    EXPECT_EQ(s->position.heading, 1.5F);
    // The first 48 slots by slot number.
    ASSERT_EQ(s->inventory.size(), wire::kMaxInventorySlots);
    for (std::uint16_t slot = 0; slot < wire::kMaxInventorySlots; ++slot) {
        EXPECT_EQ(
            s->inventory[slot],
            (wire::InventorySlot{.slot = slot, .item = 1000U + 59U - slot, .count = 60U - slot}));
    }
    // The list shows the level and zone the world saved.
    auto list = c.list_characters();
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1U);
    EXPECT_EQ((*list)[0].level, 7);
    EXPECT_EQ((*list)[0].zone, 2U);
}

TEST_P(PacketCharacters, EveryNameRuleHasItsError) {
    start();
    account("bea");
    account("cid");
    auto c = logged_in("bea");
    using wire::ErrorCode;
    using wire::NameProblem;
    const auto problem = [](NameProblem p) { return static_cast<std::uint32_t>(p); };
    expect_refused(c.create_character("Ab", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kTooShort));
    expect_refused(c.create_character("Abcdefghijklmnopq", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kTooLong));
    expect_refused(c.create_character("Ro wan", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kBadCharacter));
    expect_refused(c.create_character("Rowan!", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kBadCharacter));
    expect_refused(c.create_character("Zoë", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kBadCharacter));
    expect_refused(c.create_character("TheAdminX", {}), ErrorCode::kNameInvalid,
                   problem(NameProblem::kReserved));
    // Above the wire's 32 bytes the client does not even send it.
    auto huge = c.create_character(std::string(33, 'a'), {});
    ASSERT_FALSE(huge.ok());
    EXPECT_EQ(huge.error().kind, Error::Kind::kEncoding);

    ASSERT_TRUE(c.create_character("Taken", {}).ok());
    // Names are one ignoring ASCII case, across accounts.
    expect_refused(c.create_character("TAKEN", {}), ErrorCode::kNameTaken, 0U);
    auto other = logged_in("cid");
    auto r = other.create_character("taken", {});
    expect_refused(r, ErrorCode::kNameTaken);
    EXPECT_EQ(r.error().opcode, 0x0713);
    EXPECT_EQ(r.error().message, "Name already taken");
    // Nothing was made by the refusals.
    auto list = c.list_characters();
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(names(*list), (std::vector<std::string>{"Taken"}));
    EXPECT_EQ(metric("hearth_packet_errors_total", {{"code", "name_invalid"}}), 6);
}

TEST_P(PacketCharacters, ThePerAccountLimitIsSaidWithTheMaximum) {
    start({{"characters.max_per_account", "2"}});
    account("dana");
    auto c = logged_in("dana");
    auto one = c.create_character("One", {});
    ASSERT_TRUE(one.ok());
    ASSERT_TRUE(c.create_character("Two", {}).ok());
    auto three = c.create_character("Three", {});
    expect_refused(three, wire::ErrorCode::kTooManyCharacters, 2U);
    EXPECT_EQ(three.error().message, "Too many characters");
    // A delete makes room.
    ASSERT_TRUE(c.delete_character(one->id).ok());
    ASSERT_TRUE(c.create_character("Three", {}).ok());
}

TEST_P(PacketCharacters, ADeletedNameStaysReserved) {
    start();
    account("eli");
    account("fay");
    auto c = logged_in("eli");
    auto keeper = c.create_character("Keeper", {});
    ASSERT_TRUE(keeper.ok());
    ASSERT_TRUE(c.delete_character(keeper->id).ok());
    // For the grace period: neither its own account nor another may take it.
    expect_refused(c.create_character("Keeper", {}), wire::ErrorCode::kNameTaken);
    auto other = logged_in("fay");
    expect_refused(other.create_character("keeper", {}), wire::ErrorCode::kNameTaken);
}

TEST_P(PacketCharacters, WithoutAGracePeriodADeletedNameIsFreeAtOnce) {
    start({{"characters.delete_grace_days", "0"}});
    account("gus");
    auto c = logged_in("gus");
    auto gone = c.create_character("Gone", {});
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE(c.delete_character(gone->id).ok());
    auto again = c.create_character("Gone", {});
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_NE(again->id, gone->id);
}

TEST_P(PacketCharacters, AnotherAccountsCharacterIsNoSuchCharacter) {
    start();
    account("hal");
    account("ida");
    auto hal = logged_in("hal");
    auto mine = hal.create_character("Halbert", {});
    ASSERT_TRUE(mine.ok());
    ASSERT_TRUE(hal.select_character(mine->id).ok());
    auto ida = logged_in("ida");
    // Selected or not, it is not ida's: the same answer, and it stays hal's.
    expect_refused(ida.select_character(mine->id), wire::ErrorCode::kNoSuchCharacter);
    expect_refused(ida.delete_character(mine->id), wire::ErrorCode::kNoSuchCharacter);
    auto list = ida.list_characters();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->empty());
    ASSERT_TRUE(hal.alive().ok());
    auto nothing = hal.receive(200ms);
    ASSERT_FALSE(nothing.ok());
    EXPECT_EQ(nothing.error().kind, Error::Kind::kTimeout);
}

TEST_P(PacketCharacters, ASecondSelectTakesTheCharacterOver) {
    start();
    account("jo");
    auto first = logged_in("jo");
    auto a = first.create_character("Ashe", {});
    auto b = first.create_character("Bram", {});
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(first.select_character(a->id).ok());
    // Another connection of the account logs in without taking anything over, and plays another
    // character.
    auto second = logged_in("jo");
    ASSERT_TRUE(second.select_character(b->id).ok());
    auto third = logged_in("jo");
    ASSERT_TRUE(first.alive().ok());
    auto nothing = first.receive(200ms);
    ASSERT_FALSE(nothing.ok());
    EXPECT_EQ(nothing.error().kind, Error::Kind::kTimeout);

    // The third selects the first's character: the first is told why and closed.
    auto taken = third.select_character(a->id);
    ASSERT_TRUE(taken.ok()) << taken.error().message;
    EXPECT_EQ(taken->name, "Ashe");
    const auto e = next_error(first);
    EXPECT_EQ(e.code, wire::ErrorCode::kTakenOver);
    EXPECT_EQ(e.opcode, 0);
    EXPECT_EQ(e.message, "Logged in from another connection");
    auto end = first.receive();
    ASSERT_FALSE(end.ok());
    EXPECT_EQ(end.error().kind, Error::Kind::kClosed);
    EXPECT_EQ(metric("hearth_packet_takeovers_total", {{"rule", "character"}}), 1);
    EXPECT_EQ(metric("hearth_packet_takeovers_total", {{"rule", "account"}}), 0);

    // The second, with the other character, is unaffected; switching characters on one
    // connection lets the first go, and selecting it again there takes nothing over.
    ASSERT_TRUE(second.alive().ok());
    ASSERT_TRUE(second.select_character(b->id).ok());
    ASSERT_TRUE(third.select_character(b->id).ok());
    EXPECT_EQ(next_error(second).code, wire::ErrorCode::kTakenOver);
    ASSERT_TRUE(third.select_character(a->id).ok());
    ASSERT_TRUE(third.select_character(a->id).ok());
    EXPECT_EQ(metric("hearth_packet_takeovers_total", {{"rule", "character"}}), 2);
    EXPECT_EQ(metric("hearth_packet_characters_selected", {}), 1);
}

TEST_P(PacketCharacters, ACharacterInPlayIsNotDeleted) {
    start();
    account("kai");
    auto player = logged_in("kai");
    auto c = player.create_character("Kestrel", {});
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(player.select_character(c->id).ok());
    auto r = player.delete_character(c->id);
    expect_refused(r, wire::ErrorCode::kCharacterInUse);
    EXPECT_EQ(r.error().message, "Character is in play on a connection");
    auto other = logged_in("kai");
    expect_refused(other.delete_character(c->id), wire::ErrorCode::kCharacterInUse);
    // Once its connection is gone, it can be deleted.
    ASSERT_TRUE(player.logout().ok());
    ASSERT_TRUE(eventually([&] {
        auto d = other.delete_character(c->id);
        return d.ok() || !d.error().is(wire::ErrorCode::kCharacterInUse);
    }));
    auto list = other.list_characters();
    ASSERT_TRUE(list.ok());
    EXPECT_TRUE(list->empty());
}

TEST_P(PacketCharacters, AListLargerThanAPacketSpansPackets) {
    start({{"packet.max_packet_bytes", "1024"}, {"characters.max_per_account", "60"}});
    account("lou");
    auto c = logged_in("lou");
    std::vector<std::string> made;
    for (int i = 0; i < 50; ++i) {
        // 16 letters: 36 bytes listed, so 28 fit a packet of 1,024 bytes.
        std::string name = "Char";
        name += static_cast<char>('a' + i / 26);
        name += static_cast<char>('a' + i % 26);
        name.resize(16, 'z');
        auto r = c.create_character(name, {});
        ASSERT_TRUE(r.ok()) << name << ": " << r.error().message;
        made.push_back(name);
    }
    // On the wire: a packet with `more` set and fewer than all, then the rest.
    auto first = c.call(wire::CharacterListRequest{});
    ASSERT_TRUE(first.ok()) << first.error().message;
    ASSERT_TRUE(first->is(wire::Opcode::kCharacterList));
    EXPECT_LE(wire::kHeaderBytes + first->payload.size(), 1024U);
    auto head = first->decode<wire::CharacterList>();
    ASSERT_EQ(head.error, wire::WireError::kNone);
    EXPECT_TRUE(head.message.more);
    EXPECT_GT(head.message.characters.size(), 0U);
    EXPECT_LT(head.message.characters.size(), made.size());
    std::size_t seen = head.message.characters.size();
    for (bool more = true; more;) {
        auto p = c.receive();
        ASSERT_TRUE(p.ok()) << p.error().message;
        ASSERT_TRUE(p->is(wire::Opcode::kCharacterList));
        auto d = p->decode<wire::CharacterList>();
        ASSERT_EQ(d.error, wire::WireError::kNone);
        seen += d.message.characters.size();
        more = d.message.more;
    }
    EXPECT_EQ(seen, made.size());
    // The client library follows `more` to the end.
    auto all = c.list_characters();
    ASSERT_TRUE(all.ok()) << all.error().message;
    EXPECT_EQ(names(*all), made);
}

TEST_P(PacketCharacters, RequestsBehindACharacterRequestAreAnsweredInOrder) {
    start();
    account("max");
    auto c = logged_in("max");
    // Three requests in one write: each waits for the answer before it.
    std::string out;
    wire::encode(out, wire::CreateCharacterRequest{.name = "Quill", .looks = {}});
    wire::encode(out, wire::CharacterListRequest{});
    wire::encode(out, wire::DeleteCharacterRequest{.character_id = 999'999});
    ASSERT_TRUE(c.send_raw(out).ok());
    auto created = c.receive();
    ASSERT_TRUE(created.ok()) << created.error().message;
    ASSERT_TRUE(created->is(wire::Opcode::kCreateCharacter)) << created->type;
    auto list = c.receive();
    ASSERT_TRUE(list.ok());
    ASSERT_TRUE(list->is(wire::Opcode::kCharacterList)) << list->type;
    auto d = list->decode<wire::CharacterList>();
    ASSERT_EQ(d.error, wire::WireError::kNone);
    ASSERT_EQ(d.message.characters.size(), 1U);
    EXPECT_EQ(d.message.characters[0].name, "Quill");
    const auto e = next_error(c);
    EXPECT_EQ(e.code, wire::ErrorCode::kNoSuchCharacter);
    EXPECT_EQ(e.opcode, 0x0714);
}

TEST_P(PacketCharacters, WorldPacketsFollowTheStates) {
    start();
    account("ned");
    auto c = logged_in("ned");
    expect_refused(c.call(wire::EnterWorldRequest{}), wire::ErrorCode::kNoCharacterSelected);
    expect_refused(c.call(wire::TargetHpRequest{.entity = 1}),
                   wire::ErrorCode::kNoCharacterSelected);
    auto ned = c.create_character("Nedda", {});
    ASSERT_TRUE(ned.ok());
    ASSERT_TRUE(c.select_character(ned->id).ok());
    // Selected: not in the world yet, and the world module is disabled (the fixture's default).
    expect_refused(c.call(wire::TargetHpRequest{.entity = 1}), wire::ErrorCode::kNotInWorld);
    auto enter = c.call(wire::EnterWorldRequest{});
    expect_refused(enter, wire::ErrorCode::kUnavailable,
                   static_cast<std::uint32_t>(wire::Unavailable::kNotServed));
    EXPECT_EQ(enter.error().message, "The world is disabled on this server");
    // Refused: still not in the world, and the connection goes on.
    expect_refused(c.call(wire::TargetHpRequest{.entity = 1}), wire::ErrorCode::kNotInWorld);
    EXPECT_TRUE(c.list_characters().ok());
}

HEARTH_INSTANTIATE_STORE_BACKENDS(PacketCharacters);

}  // namespace
}  // namespace hearth::test
