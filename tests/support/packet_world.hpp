#pragma once

// The world as a game client sees it, for the tests of the packet protocol's world opcodes
// (tests/integration/packet_world_test.cpp, tests/abuse/packet_world_test.cpp): zone files with a
// known layout, the config that runs them, and a character in the world through the C++ client
// library with the view its WorldUpdates build.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hearth_client/client.hpp"
#include "support/server.hpp"

namespace hearth::test {

namespace wire = ::hearth::packet;

/// Two small zones that replace the shipped ones by id, each with one NPC that stands still a few
/// units from the spawn point (within view and attack range): zone 1 "Field" (spawn 500,500; the
/// "Dummy", 30 HP, at 503,500, back 0.5 s after a death) and zone 2 "Yard" (spawn 100,100; the
/// "Post", 50 HP, at 104,100). Written to `dir`.
void write_test_zones(const std::string& dir);

/// The config overrides that run the world on the zones of `zones_dir` (written by
/// write_test_zones), with the packet listener on a free port and `admin_token` for the API.
Overrides world_overrides(const std::string& zones_dir, const std::string& admin_token);

/// The password of the accounts below.
inline constexpr const char* kWorldPassword = "long enough password";

/// A connection to the packet listener `port` logged in as `name`, an account made first through
/// the API on `http` with `admin_token` unless `create` is false.
client::Client logged_in(std::uint16_t http, std::uint16_t port, const std::string& admin_token,
                         const std::string& name, bool create = true);

struct Selected {
    client::Client client;
    client::SelectedCharacter character;
};

/// As logged_in, with the account's one character (`name` capitalised, made first unless
/// `create` is false) selected.
Selected selected(std::uint16_t http, std::uint16_t port, const std::string& admin_token,
                  const std::string& name, bool create = true);

/// An entity in a client's view.
struct SeenEntity {
    wire::EntityKind kind = wire::EntityKind::kPlayer;
    std::uint32_t model = 0;
    std::string name;
    wire::Vec3 at;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
};

/// One change a WorldUpdate brought: 's' spawn, 'd' despawn, 'm' move, of `entity` at `tick`.
struct SeenChange {
    char what = 0;
    std::uint32_t entity = 0;
    std::uint32_t tick = 0;
};

/// A character in the world through its own connection: what it was told at entry, the entities in
/// its view (WorldUpdates applied as they arrive; a MapChanged empties it), each change, and every
/// other packet received, in order.
class WorldPlayer {
public:
    explicit WorldPlayer(client::Client c) : client(std::move(c)) {}

    /// Sends EnterWorldRequest and waits for its answer.
    client::Status enter();

    /// Reads packets until `done()` holds. False when the deadline passes or the connection ends
    /// first (`closed` then says so).
    template <class F>
    bool until(F done, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
        const auto end = std::chrono::steady_clock::now() + deadline;
        while (!done()) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= end || closed) {
                return false;
            }
            pump(std::chrono::duration_cast<std::chrono::milliseconds>(end - now));
        }
        return true;
    }

    /// Waits for a packet of M's type (kept, not yet taken) for which `match(message)` holds;
    /// takes it out of `others` and returns it.
    template <class M, class P>
    std::optional<client::ReceivedPacket> next(
        P match, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
        std::optional<client::ReceivedPacket> found;
        until(
            [&] {
                for (auto it = others.begin(); it != others.end(); ++it) {
                    if (it->type != static_cast<std::uint16_t>(M::kOpcode)) {
                        continue;
                    }
                    auto d = it->decode<M>();
                    if (d.error == wire::WireError::kNone && match(d.message)) {
                        found = std::move(*it);
                        others.erase(it);
                        return true;
                    }
                }
                return false;
            },
            deadline);
        return found;
    }
    template <class M>
    std::optional<client::ReceivedPacket> next() {
        return next<M>([](const M&) { return true; });
    }
    /// The next Error answering `opcode` with `code`.
    bool got_error(wire::ErrorCode code, std::uint16_t opcode,
                   std::chrono::milliseconds deadline = std::chrono::seconds(10));

    /// A walk of `path` (1 to 16 points) with the next sequence number; returns it.
    std::uint32_t move(const std::vector<wire::Vec3>& path);

    /// The entity of the view named `name`, 0 when none.
    std::uint32_t seen(const std::string& name) const;
    bool saw(char what, std::uint32_t entity) const;

    client::Client client;
    wire::ZoneEntry entry;  // zone_name views `zone_name`
    std::string zone_name;
    std::map<std::uint32_t, SeenEntity> view;
    std::vector<SeenChange> changes;
    std::vector<client::ReceivedPacket> others;
    bool closed = false;
    std::uint32_t last_seq = 0;

private:
    void pump(std::chrono::milliseconds wait);
    void take_entry(const client::ReceivedPacket& p);
};

}  // namespace hearth::test
