#include "world/zone_data.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "world/zone_files.hpp"

namespace hearth::world {

namespace {

constexpr std::size_t kMaxZoneNameBytes = 64;  // the protocol's zone_name field
constexpr std::size_t kMaxNpcNameBytes = 32;   // the protocol's entity name field
constexpr std::int64_t kMaxNpcHp = 1'000'000'000;
constexpr double kMaxNpcSpeed = 1'000;
constexpr double kMaxRespawnS = 86'400;

[[noreturn]] void fail(std::string_view path, const toml::source_region& where,
                       std::string_view key, std::string_view what) {
    std::string text(path);
    if (where.begin) {
        text += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
    }
    text += ": ";
    if (!key.empty()) {
        text += std::string(key) + ": ";
    }
    text += what;
    throw std::runtime_error(text);
}

/// Reads the keys of one table, refusing unknown ones and naming each problem's key and line.
class TableReader {
public:
    TableReader(const toml::table& table, std::string_view path, std::string prefix)
        : table_(table), path_(path), prefix_(std::move(prefix)) {}

    /// Throws for a key not in `known`.
    void only(std::initializer_list<std::string_view> known) const {
        for (const auto& [key, node] : table_) {
            if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
                fail(path_, key.source(), name(key.str()), "unknown key");
            }
        }
    }

    const toml::node* find(std::string_view key, bool required) const {
        const toml::node* node = table_.get(key);
        if (node == nullptr && required) {
            fail(path_, table_.source(), name(key), "missing");
        }
        return node;
    }

    std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max,
                         std::optional<std::int64_t> fallback = std::nullopt) const {
        const toml::node* node = find(key, !fallback);
        if (node == nullptr) {
            return *fallback;
        }
        const auto v = node->value_exact<std::int64_t>();
        if (!v) {
            fail(path_, node->source(), name(key), "must be an integer");
        }
        if (*v < min || *v > max) {
            fail(path_, node->source(), name(key),
                 "must be between " + std::to_string(min) + " and " + std::to_string(max));
        }
        return *v;
    }

    /// A finite number (integer or float) in [min, max]; `above_min` makes the lower end open.
    float number(std::string_view key, double min, double max, std::optional<float> fallback,
                 bool above_min = false) const {
        const toml::node* node = find(key, !fallback);
        if (node == nullptr) {
            return *fallback;
        }
        return to_float(*node, name(key), min, max, above_min);
    }

    std::string string(std::string_view key, std::size_t max_bytes) const {
        const toml::node* node = find(key, true);
        const auto v = node->value_exact<std::string>();
        if (!v) {
            fail(path_, node->source(), name(key), "must be a string");
        }
        if (v->empty() || v->size() > max_bytes) {
            fail(path_, node->source(), name(key),
                 "must be 1 to " + std::to_string(max_bytes) + " bytes");
        }
        return *v;
    }

    /// [x, y, z], finite, x in [0, width) and y in [0, height).
    Vec3 point(std::string_view key, float width, float height) const {
        const toml::node* node = find(key, true);
        const toml::array* a = node->as_array();
        if (a == nullptr || a->size() != 3) {
            fail(path_, node->source(), name(key), "must be an array of 3 numbers [x, y, z]");
        }
        constexpr double kBig = std::numeric_limits<float>::max();
        const Vec3 p{to_float((*a)[0], name(key), -kBig, kBig, false),
                     to_float((*a)[1], name(key), -kBig, kBig, false),
                     to_float((*a)[2], name(key), -kBig, kBig, false)};
        if (!(p.x >= 0 && p.x < width && p.y >= 0 && p.y < height)) {
            fail(path_, node->source(), name(key),
                 "must lie inside the zone: x in [0, width), y in [0, height)");
        }
        return p;
    }

    std::string name(std::string_view key) const {
        return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
    }

private:
    float to_float(const toml::node& node, const std::string& key, double min, double max,
                   bool above_min) const {
        const auto v = node.is_number() ? node.value<double>() : std::nullopt;
        if (!v) {
            fail(path_, node.source(), key, "must be a number");
        }
        if (!std::isfinite(*v)) {
            fail(path_, node.source(), key, "must be finite");
        }
        if (*v < min || *v > max || (above_min && *v == min)) {
            fail(path_, node.source(), key,
                 std::string("must be ") + (above_min ? "above " : "at least ") + fmt_num(min) +
                     " and at most " + fmt_num(max));
        }
        return static_cast<float>(*v);
    }

    static std::string fmt_num(double v) {
        std::string s = std::to_string(v);
        s.erase(s.find_last_not_of('0') + 1);
        if (!s.empty() && s.back() == '.') {
            s.pop_back();
        }
        return s;
    }

    const toml::table& table_;
    std::string_view path_;
    std::string prefix_;
};

NpcSpawnDef parse_npc(const toml::table& t, std::string_view path, std::size_t index,
                      const ZoneDef& zone) {
    const TableReader r(t, path, "npcs[" + std::to_string(index) + "]");
    r.only(
        {"model", "name", "level", "max_hp", "count", "at", "wander_radius", "speed", "respawn_s"});
    NpcSpawnDef npc;
    // Model 0 means a player on the wire.
    npc.model = static_cast<std::uint32_t>(
        r.integer("model", 1, std::numeric_limits<std::uint32_t>::max()));
    npc.name = r.string("name", kMaxNpcNameBytes);
    npc.level = static_cast<std::uint16_t>(
        r.integer("level", 1, std::numeric_limits<std::uint16_t>::max(), 1));
    npc.max_hp = static_cast<std::uint32_t>(r.integer("max_hp", 1, kMaxNpcHp));
    npc.count = static_cast<std::uint32_t>(
        r.integer("count", 1, static_cast<std::int64_t>(kMaxZoneNpcs), 1));
    npc.at = r.point("at", zone.width, zone.height);
    npc.wander_radius = r.number("wander_radius", 0, kMaxZoneSize, 0.0F);
    npc.speed = r.number("speed", 0, kMaxNpcSpeed, 2.0F);
    npc.respawn_s = r.number("respawn_s", 0, kMaxRespawnS, 30.0F);
    return npc;
}

}  // namespace

ZoneDef parse_zone(std::string_view text, std::string_view path) {
    toml::table root;
    try {
        root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
        fail(path, e.source(), {}, e.description());
    }
    const TableReader r(root, path, {});
    r.only({"id", "name", "width", "height", "spawn", "spawn_heading", "npcs"});
    ZoneDef zone;
    zone.id =
        static_cast<std::uint32_t>(r.integer("id", 1, std::numeric_limits<std::uint32_t>::max()));
    zone.name = r.string("name", kMaxZoneNameBytes);
    zone.width = r.number("width", 0, kMaxZoneSize, std::nullopt, true);
    zone.height = r.number("height", 0, kMaxZoneSize, std::nullopt, true);
    zone.spawn = r.point("spawn", zone.width, zone.height);
    zone.spawn_heading = r.number("spawn_heading", -1000, 1000, 0.0F);
    if (const toml::node* npcs = r.find("npcs", false)) {
        const toml::array* groups = npcs->as_array();
        if (groups == nullptr) {
            fail(path, npcs->source(), "npcs", "must be an array of tables ([[npcs]])");
        }
        std::size_t total = 0;
        for (std::size_t i = 0; i < groups->size(); ++i) {
            const toml::table* t = (*groups)[i].as_table();
            if (t == nullptr) {
                fail(path, (*groups)[i].source(), "npcs[" + std::to_string(i) + "]",
                     "must be a table");
            }
            zone.npcs.push_back(parse_npc(*t, path, i, zone));
            total += zone.npcs.back().count;
            if (total > kMaxZoneNpcs) {
                fail(path, t->source(), "npcs[" + std::to_string(i) + "].count",
                     "the zone's groups together spawn more than " + std::to_string(kMaxZoneNpcs) +
                         " NPCs");
            }
        }
    }
    return zone;
}

std::vector<ZoneDef> shipped_zones() {
    std::vector<ZoneDef> zones;
    for (const ZoneFileText& f : shipped_zone_files()) {
        zones.push_back(parse_zone(f.text, f.path));
    }
    return zones;
}

std::vector<ZoneDef> load_zones(const std::filesystem::path& dir) {
    std::vector<ZoneDef> zones = shipped_zones();
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
        if (std::filesystem::exists(dir, ec)) {
            throw std::runtime_error(dir.string() + ": not a directory");
        }
        return zones;
    }
    std::vector<std::filesystem::path> files;
    for (std::filesystem::directory_iterator it(dir), end; it != end; ++it) {
        if (it->path().extension() == ".toml") {
            if (files.size() == kMaxZoneFiles) {
                throw std::runtime_error(dir.string() + ": more than " +
                                         std::to_string(kMaxZoneFiles) + " zone files");
            }
            files.push_back(it->path());
        }
    }
    std::sort(files.begin(), files.end());  // the directory's order is the file system's
    std::vector<std::pair<std::uint32_t, std::string>> seen;  // id, file
    for (const auto& file : files) {
        const std::string path = file.string();
        const auto size = std::filesystem::file_size(file, ec);
        if (ec) {
            throw std::runtime_error(path + ": cannot read: " + ec.message());
        }
        if (size > kMaxZoneFileBytes) {
            throw std::runtime_error(path + ": larger than " + std::to_string(kMaxZoneFileBytes) +
                                     " bytes");
        }
        std::ifstream in(file, std::ios::binary);
        std::string text(size, '\0');
        // A file that grew since file_size is read up to the bound; one that shrank fails here.
        if (!in.read(text.data(), static_cast<std::streamsize>(size))) {
            throw std::runtime_error(path + ": cannot read");
        }
        ZoneDef zone = parse_zone(text, path);
        for (const auto& [id, other] : seen) {
            if (id == zone.id) {
                throw std::runtime_error(path + ": id: zone " + std::to_string(id) +
                                         " is also defined by " + other);
            }
        }
        seen.emplace_back(zone.id, path);
        const auto same = std::find_if(zones.begin(), zones.end(),
                                       [&](const ZoneDef& z) { return z.id == zone.id; });
        if (same != zones.end()) {
            *same = std::move(zone);
        } else {
            zones.push_back(std::move(zone));
        }
    }
    return zones;
}

}  // namespace hearth::world
