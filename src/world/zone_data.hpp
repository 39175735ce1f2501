#pragma once

// The zones' data files (docs/world.md, "Zone files"): the zones Hearth ships (data/zones/ of the
// source tree, installed with the server) and those of `<data_dir>/zones/`, which add zones or
// replace shipped ones by id. TOML, one zone per file.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <hearth/world.hpp>

namespace hearth::world {

/// A group of NPCs of one kind around a point.
struct NpcSpawnDef {
    std::uint32_t model = 0;  // the NPC's kind, as the client's catalogue numbers them
    std::string name;
    std::uint16_t level = 1;
    std::uint32_t max_hp = 1;
    std::uint32_t count = 1;
    Vec3 at;
    float wander_radius = 0;  // they walk within it around `at`
    float speed = 2;          // units per second when they walk
    float respawn_s = 30;     // after a death
    bool operator==(const NpcSpawnDef&) const = default;
};

struct ZoneDef {
    std::uint32_t id = 0;
    std::string name;
    float width = 0;  // [0, width) x [0, height)
    float height = 0;
    Vec3 spawn;  // where characters enter when they have no position here
    float spawn_heading = 0;
    std::vector<NpcSpawnDef> npcs;
    bool operator==(const ZoneDef&) const = default;
};

/// The zones Hearth ships: data/zones/*.toml of the source tree, embedded in the program at build
/// time (as the logs page is), so that `make run` and an installed server have them wherever
/// they run from.
std::vector<ZoneDef> shipped_zones();

/// The shipped zones, then those of the `*.toml` files of `dir` (`<data_dir>/zones`; skipped when
/// it does not exist): a zone of `dir` replaces a shipped one of the same id. Throws
/// std::runtime_error naming the file (and the key, and the line when known) of the first file
/// that does not parse or breaks a rule (docs/world.md).
std::vector<ZoneDef> load_zones(const std::filesystem::path& dir);

}  // namespace hearth::world
