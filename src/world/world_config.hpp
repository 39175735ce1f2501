#pragma once

// The `[world]` config section (docs/world.md, docs/configuration.md): the zones' tick rate, the
// area of interest, movement, combat and chat rules, the write-behind interval and where the
// operator's zone files are. Every key but `zones_dir` applies live: the zones take the new
// rules at their next tick, the tick and save timers their new period.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "world/zone.hpp"

namespace hearth::world {

struct WorldConfig {
    static constexpr std::string_view kName = "world";
    static constexpr std::string_view kDescription =
        "The game world: zones on the io threads, what each character sees, movement, combat, "
        "chat, and the write-behind of characters' positions and stats.";

    bool enabled = false;
    std::int64_t tick_hz = 20;
    double view_radius = 100;
    double view_hysteresis = 10;
    double max_speed = 7;
    double speed_slack = 0.25;
    double path_start_tolerance = 2;
    double attack_range = 5;
    std::int64_t attack_damage = 10;
    double attacks_per_s = 2;
    double chat_per_s = 2;
    double chat_burst = 5;
    std::int64_t max_players_per_zone = 5'000;
    std::int64_t save_interval_s = 30;
    std::string zones_dir = "zones";

    template <class V>
    void visit(V& v) {
        v("enabled", enabled,
          {.help = "Run the world: zones that front-ends put characters into, and the operator "
                   "routes under /api/v1/world. Needs [characters] enabled (saves go through "
                   "the character service)."});
        v("tick_hz", tick_hz,
          {.help = "Ticks per second of every zone: NPCs move and each character is sent what "
                   "changed in its view, once per tick.",
           .min = 1,
           .max = 60});
        v("view_radius", view_radius,
          {.help = "How far a character sees, in world units (spawns, moves and despawns of "
                   "entities within it)."});
        v("view_hysteresis", view_hysteresis,
          {.help = "An entity leaves a view only beyond view_radius plus this, so that one "
                   "walking along the edge is not despawned and spawned every tick."});
        v("max_speed", max_speed,
          {.help = "Units per second a character may walk; a faster step is refused with a "
                   "correction."});
        v("speed_slack", speed_slack,
          {.help = "Allowance over max_speed for network jitter, as a fraction (0.25: 25% "
                   "faster is still accepted)."});
        v("path_start_tolerance", path_start_tolerance,
          {.help = "How far from the character the first point of a move's path may be, in "
                   "units (else the move is corrected with bad_start)."});
        v("attack_range", attack_range, {.help = "How far an attack reaches, in units."});
        v("attack_damage", attack_damage,
          {.help = "HP one attack takes.", .min = 1, .max = 1'000'000});
        v("attacks_per_s", attacks_per_s,
          {.help = "Attacks per second one character may make; more are refused "
                   "(rate_limited)."});
        v("chat_per_s", chat_per_s,
          {.help = "Chat lines per second one character may send (sustained), and whispers "
                   "counted apart at the same rate; more are refused (rate_limited)."});
        v("chat_burst", chat_burst,
          {.help = "Chat lines (and, apart, whispers) one character may send at once above "
                   "chat_per_s."});
        v("max_players_per_zone", max_players_per_zone,
          {.help = "Characters in one zone; entering or changing into a full zone is refused "
                   "(unavailable).",
           .min = 1,
           .max = 100'000});
        v("save_interval_s", save_interval_s,
          {.help = "Seconds between the write-behind saves of characters whose position or "
                   "stats changed; a crash loses at most this much.",
           .min = 1,
           .max = 3'600});
        v("zones_dir", zones_dir,
          {.help = "Directory of the operator's zone files (*.toml), which add zones or replace "
                   "shipped ones by id; relative to [server] data_dir. Read when the module "
                   "starts.",
           .restart = true});
    }

    void validate(core::ConfigErrors& errors) const;
    bool operator==(const WorldConfig&) const = default;

    /// The zones' rules (valid once validate found nothing).
    ZoneSettings settings() const;
    std::chrono::seconds save_interval() const { return std::chrono::seconds(save_interval_s); }
    /// `zones_dir` resolved against `data_dir`.
    std::filesystem::path zones_path(const std::string& data_dir) const;
};

}  // namespace hearth::world
