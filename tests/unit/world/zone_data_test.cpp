// The zone files (docs/world.md, "Zone files"): the shipped zones as the build embedded them, a
// data directory's zones over them, and every rule's error naming the file, the key and the line.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "unit/store/store_test_support.hpp"
#include "world/zone_data.hpp"
#include "world/zone_files.hpp"

namespace hearth::world {
namespace {

using ::testing::HasSubstr;

using store::test::TempDir;

void write(const TempDir& dir, const std::string& name, const std::string& text) {
    std::ofstream(dir.path() / name, std::ios::binary) << text;
}

const std::string kMinimal = R"(id = 7
name = "Fields"
width = 100
height = 50
spawn = [10, 20, 0]
)";

/// The message parse_zone throws for `text`, or "" when it parses.
std::string error_of(const std::string& text) {
    try {
        parse_zone(text, "z.toml");
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}

TEST(ZoneData, ShippedZonesMatchTheProtocolExamples) {
    const auto zones = shipped_zones();
    ASSERT_EQ(zones.size(), 2U);
    const auto meadow = std::find_if(zones.begin(), zones.end(), [](auto& z) { return z.id == 1; });
    const auto caves = std::find_if(zones.begin(), zones.end(), [](auto& z) { return z.id == 2; });
    ASSERT_NE(meadow, zones.end());
    ASSERT_NE(caves, zones.end());
    // docs/protocol/packets.md: WorldEntered and MapChanged.
    EXPECT_EQ(meadow->name, "Meadow");
    EXPECT_EQ(meadow->width, 2000);
    EXPECT_EQ(meadow->height, 2000);
    EXPECT_EQ(meadow->spawn, (Vec3{520, 480.5F, 0}));
    EXPECT_EQ(meadow->spawn_heading, 1.5F);
    EXPECT_FALSE(meadow->npcs.empty());
    EXPECT_EQ(meadow->npcs[0].name, "Wolf");
    EXPECT_EQ(meadow->npcs[0].model, 5U);
    EXPECT_EQ(caves->name, "Caves");
    EXPECT_EQ(caves->width, 2000);
    EXPECT_EQ(caves->spawn, (Vec3{100, 100, 0}));
}

TEST(ZoneData, ParsesEveryKeyWithDefaults) {
    const ZoneDef z = parse_zone(kMinimal + R"(spawn_heading = 0.5
[[npcs]]
model = 3
name = "Crow"
max_hp = 12
at = [50.5, 25, 1]
[[npcs]]
model = 4
name = "Hawk"
level = 9
max_hp = 99
count = 3
at = [1, 2, 3]
wander_radius = 7.5
speed = 4
respawn_s = 0
)",
                                 "z.toml");
    EXPECT_EQ(z.id, 7U);
    EXPECT_EQ(z.name, "Fields");
    EXPECT_EQ(z.width, 100);
    EXPECT_EQ(z.height, 50);
    EXPECT_EQ(z.spawn, (Vec3{10, 20, 0}));
    EXPECT_EQ(z.spawn_heading, 0.5F);
    ASSERT_EQ(z.npcs.size(), 2U);
    const NpcSpawnDef crow{3, "Crow", 1, 12, 1, {50.5F, 25, 1}, 0, 2, 30};
    EXPECT_EQ(z.npcs[0], crow);
    const NpcSpawnDef hawk{4, "Hawk", 9, 99, 3, {1, 2, 3}, 7.5F, 4, 0};
    EXPECT_EQ(z.npcs[1], hawk);
}

TEST(ZoneData, ErrorsNameTheFileTheKeyAndTheLine) {
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 10\nheight = 10\n"),
                HasSubstr("z.toml:1:1: spawn: missing"));
    EXPECT_THAT(error_of(kMinimal + "colour = 3\n"), HasSubstr("z.toml:6:1: colour: unknown key"));
    EXPECT_THAT(error_of("id = 0\n"), HasSubstr("z.toml:1:6: id: must be between 1 and"));
    EXPECT_THAT(error_of("id = 1.5\n"), HasSubstr("z.toml:1:6: id: must be an integer"));
    EXPECT_THAT(error_of("id = 1\nname = \"\"\n"), HasSubstr("z.toml:2:8: name: must be 1 to 64"));
    EXPECT_THAT(error_of("id = 1\nname = \"" + std::string(65, 'a') + "\"\n"),
                HasSubstr("name: must be 1 to 64 bytes"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 0\n"),
                HasSubstr("z.toml:3:9: width: must be above 0 and at most 1000000"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 1000001\n"), HasSubstr("width: must be"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = nan\n"),
                HasSubstr("z.toml:3:9: width: must be finite"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = inf\n"), HasSubstr("must be finite"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = \"wide\"\n"),
                HasSubstr("width: must be a number"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 10\nheight = 10\nspawn = [10, 5, 0]\n"),
                HasSubstr("z.toml:5:9: spawn: must lie inside the zone"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 10\nheight = 10\nspawn = [1, 5]\n"),
                HasSubstr("spawn: must be an array of 3 numbers"));
    EXPECT_THAT(error_of("id = 1\nname = \"x\"\nwidth = 10\nheight = 10\nspawn = [1, -0.5, 0]\n"),
                HasSubstr("spawn: must lie inside"));
    EXPECT_THAT(error_of("id = = 1\n"), HasSubstr("z.toml:1:"));
}

TEST(ZoneData, NpcGroupsAreChecked) {
    const std::string group = "\n[[npcs]]\nmodel = 1\nname = \"Rat\"\nat = [5, 5, 0]\n";
    EXPECT_THAT(error_of(kMinimal + group), HasSubstr("z.toml:7:1: npcs[0].max_hp: missing"));
    EXPECT_THAT(error_of(kMinimal + group + "max_hp = 0\n"),
                HasSubstr("z.toml:11:10: npcs[0].max_hp: must be between 1 and"));
    EXPECT_THAT(error_of(kMinimal + group + "max_hp = 5\nspeed = -1\n"),
                HasSubstr("z.toml:12:9: npcs[0].speed: must be at least 0"));
    EXPECT_THAT(error_of(kMinimal + group + "max_hp = 5\nteeth = 3\n"),
                HasSubstr("z.toml:12:1: npcs[0].teeth: unknown key"));
    EXPECT_THAT(error_of(kMinimal + "\n[[npcs]]\nmodel = 0\nname = \"Rat\"\nmax_hp = 1\nat = [5, "
                                    "5, 0]\n"),
                HasSubstr("npcs[0].model: must be between 1 and"));
    EXPECT_THAT(error_of(kMinimal + "\n[[npcs]]\nmodel = 1\nname = \"Rat\"\nmax_hp = 1\nat = [500, "
                                    "5, 0]\n"),
                HasSubstr("npcs[0].at: must lie inside the zone"));
    EXPECT_THAT(error_of(kMinimal + "npcs = 3\n"), HasSubstr("npcs: must be an array of tables"));
    // 10,000 NPCs per zone, all groups together.
    std::string many = kMinimal;
    for (int i = 0; i < 3; ++i) {
        many += "[[npcs]]\nmodel = 1\nname = \"Rat\"\nmax_hp = 1\nat = [5, 5, 0]\ncount = 4000\n";
    }
    EXPECT_THAT(error_of(many), HasSubstr("npcs[2].count: the zone's groups together spawn more "
                                          "than 10000 NPCs"));
    EXPECT_THAT(error_of(kMinimal + group + "max_hp = 1\ncount = 10001\n"),
                HasSubstr("npcs[0].count: must be between 1 and 10000"));
}

TEST(ZoneData, ADirectoryAddsAndReplacesZones) {
    TempDir dir;
    write(dir, "a.toml",
          "id = 1\nname = \"New Meadow\"\nwidth = 10\nheight = 10\nspawn = [1, 1, "
          "0]\n");
    write(dir, "b.toml", kMinimal);
    write(dir, "notes.txt", "not a zone");
    const auto zones = load_zones(dir.path());
    ASSERT_EQ(zones.size(), 3U);
    std::map<std::uint32_t, std::string> names;
    for (const ZoneDef& z : zones) {
        names[z.id] = z.name;
    }
    EXPECT_EQ(names, (std::map<std::uint32_t, std::string>{
                         {1, "New Meadow"}, {2, "Caves"}, {7, "Fields"}}));
}

TEST(ZoneData, AMissingDirectoryLeavesTheShippedZones) {
    EXPECT_EQ(load_zones("/nonexistent/hearth/zones"), shipped_zones());
}

TEST(ZoneData, DirectoryErrorsNameTheFile) {
    {
        TempDir dir;
        write(dir, "a.toml", kMinimal);
        write(dir, "b.toml", kMinimal);
        try {
            load_zones(dir.path());
            FAIL() << "no error";
        } catch (const std::runtime_error& e) {
            EXPECT_THAT(e.what(), HasSubstr("b.toml: id: zone 7 is also defined by"));
            EXPECT_THAT(e.what(), HasSubstr("a.toml"));
        }
    }
    {
        TempDir dir;
        write(dir, "big.toml", kMinimal + "# " + std::string(kMaxZoneFileBytes, 'x') + "\n");
        try {
            load_zones(dir.path());
            FAIL() << "no error";
        } catch (const std::runtime_error& e) {
            EXPECT_THAT(e.what(), HasSubstr("big.toml: larger than 1048576 bytes"));
        }
    }
    {
        TempDir dir;
        write(dir, "bad.toml", kMinimal + "width = 3\n");
        try {
            load_zones(dir.path());
            FAIL() << "no error";
        } catch (const std::runtime_error& e) {
            EXPECT_THAT(e.what(), HasSubstr((dir.path() / "bad.toml").string() + ":6:"));
        }
    }
}

TEST(ZoneData, AFileWhereTheDirectoryShouldBeIsAnError) {
    TempDir dir;
    write(dir, "zones", kMinimal);
    try {
        load_zones(dir.path() / "zones");
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("zones: not a directory"));
    }
}

TEST(ZoneData, ADirectoryHoldsAtMostAThousandZoneFiles) {
    TempDir dir;
    for (int i = 0; i <= 1000; ++i) {
        write(dir, std::to_string(i) + ".toml", "");
    }
    try {
        load_zones(dir.path());
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("more than 1000 zone files"));
    }
}

}  // namespace
}  // namespace hearth::world
