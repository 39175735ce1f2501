#include "support/packet_world.hpp"
#include <fstream>
#include <stdexcept>

#include <gtest/gtest.h>

#include "support/clients.hpp"

namespace hearth::test {

void write_test_zones(const std::string& dir) {
    const auto write = [&](const std::string& name, const char* text) {
        std::ofstream out(dir + "/" + name);
        out << text;
        if (!out) {
            throw std::runtime_error("cannot write " + dir + "/" + name);
        }
    };
    write("field.toml", R"(id = 1
name = "Field"
width = 1000
height = 1000
spawn = [500, 500, 0]

[[npcs]]
model = 9
name = "Dummy"
max_hp = 30
at = [503, 500, 0]
wander_radius = 0
speed = 0
respawn_s = 0.5
)");
    write("yard.toml", R"(id = 2
name = "Yard"
width = 1000
height = 1000
spawn = [100, 100, 0]

[[npcs]]
model = 10
name = "Post"
max_hp = 50
at = [104, 100, 0]
wander_radius = 0
speed = 0
)");
}

Overrides world_overrides(const std::string& zones_dir, const std::string& admin_token) {
    return {{"http.admin_token", "\"" + admin_token + "\""},
            {"packet.enabled", "true"},
            {"packet.listen", "\"127.0.0.1:0\""},
            {"characters.enabled", "true"},
            {"world.enabled", "true"},
            {"world.zones_dir", "\"" + zones_dir + "\""},
            // Outside the test zones: new characters enter at the zone's spawn point, which is
            // what the tests expect (and what a position outside its zone must give).
            {"characters.safe_spots", R"(["1:5200,5200,0"])"}};
}

client::Client logged_in(std::uint16_t http, std::uint16_t port, const std::string& admin_token,
                         const std::string& name, bool create) {
    if (create) {
        auto r =
            api_request(http, "POST", "/api/v1/accounts",
                        R"({"username":")" + name + R"(","password":")" + kWorldPassword + R"("})",
                        admin_token);
        EXPECT_EQ(r.status, 201) << r.body;
    }
    client::Client c(
        client::ClientOptions{.timeout = std::chrono::seconds(10), .max_unread_packets = 4096});
    auto s = c.connect("127.0.0.1", port);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    auto l = c.login_password(name, kWorldPassword);
    EXPECT_TRUE(l.ok()) << (l.ok() ? "" : l.error().message);
    return c;
}

Selected selected(std::uint16_t http, std::uint16_t port, const std::string& admin_token,
                  const std::string& name, bool create) {
    auto c = logged_in(http, port, admin_token, name, create);
    std::uint64_t id = 0;
    if (create) {
        std::string character = name;
        character[0] = static_cast<char>(character[0] - 'a' + 'A');
        auto made = c.create_character(character, {});
        EXPECT_TRUE(made.ok()) << (made.ok() ? "" : made.error().message);
        id = made.ok() ? made->id : 0;
    } else {
        auto list = c.list_characters();
        EXPECT_TRUE(list.ok() && list->size() == 1);
        id = list.ok() && !list->empty() ? (*list)[0].id : 0;
    }
    auto sel = c.select_character(id);
    EXPECT_TRUE(sel.ok()) << (sel.ok() ? "" : sel.error().message);
    return {std::move(c), sel.ok() ? *sel : client::SelectedCharacter{}};
}

client::Status WorldPlayer::enter() {
    auto r = client.call(wire::EnterWorldRequest{});
    if (!r.ok()) {
        return r.error();
    }
    take_entry(*r);
    return client::Done{};
}

void WorldPlayer::take_entry(const client::ReceivedPacket& p) {
    // WorldEntered and MapChanged carry the same fields.
    auto d = p.decode<wire::WorldEntered>();
    entry = d.message.entry;
    zone_name = std::string(entry.zone_name);
    entry.zone_name = zone_name;
}

bool WorldPlayer::got_error(wire::ErrorCode code, std::uint16_t opcode,
                            std::chrono::milliseconds deadline) {
    return next<wire::Error>(
               [&](const wire::Error& e) { return e.code == code && e.opcode == opcode; }, deadline)
        .has_value();
}

std::uint32_t WorldPlayer::move(const std::vector<wire::Vec3>& path) {
    wire::MoveIntent m{.seq = ++last_seq, .count = static_cast<std::uint8_t>(path.size())};
    for (std::size_t i = 0; i < path.size() && i < m.points.size(); ++i) {
        m.points[i] = path[i];
    }
    (void)client.send(m);
    return m.seq;
}

std::uint32_t WorldPlayer::seen(const std::string& name) const {
    for (const auto& [id, e] : view) {
        if (e.name == name) {
            return id;
        }
    }
    return 0;
}

bool WorldPlayer::saw(char what, std::uint32_t entity) const {
    for (const auto& c : changes) {
        if (c.what == what && c.entity == entity) {
            return true;
        }
    }
    return false;
}

void WorldPlayer::pump(std::chrono::milliseconds wait) {
    auto p = client.receive(wait);
    if (!p.ok()) {
        closed = p.error().kind != client::Error::Kind::kTimeout;
        return;
    }
    if (p->is(wire::Opcode::kWorldUpdate)) {
        auto d = p->decode<wire::WorldUpdate>();
        if (d.error != wire::WireError::kNone) {
            throw std::runtime_error("a WorldUpdate that does not decode");
        }
        const auto& u = d.message;
        for (const auto id : u.despawns) {
            view.erase(id);
            changes.push_back({'d', id, u.tick});
        }
        for (const auto& s : u.spawns) {
            view[s.entity] = {.kind = s.kind,
                              .model = s.model,
                              .name = std::string(s.name),
                              .at = s.at,
                              .hp = s.hp,
                              .max_hp = s.max_hp};
            changes.push_back({'s', s.entity, u.tick});
        }
        for (const auto& m : u.moves) {
            view[m.entity].at = m.at;
            changes.push_back({'m', m.entity, u.tick});
        }
        return;
    }
    if (p->is(wire::Opcode::kChangeMap)) {
        // A new zone: what was seen in the old one is gone (no despawns come for it).
        take_entry(*p);
        view.clear();
    } else if (p->is(wire::Opcode::kHpUpdate)) {
        auto d = p->decode<wire::HpUpdate>();
        if (auto it = view.find(d.message.entity); it != view.end()) {
            it->second.hp = d.message.hp;
        }
    }
    others.push_back(std::move(*p));
}

}  // namespace hearth::test
