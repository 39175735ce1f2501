#include "world/world_config.hpp"
#include <cmath>

#include <fmt/format.h>

namespace hearth::world {

namespace {

/// `value` must be finite and within [min, max] (or (min, max] when `min_open`).
void check_range(core::ConfigErrors& errors, std::string_view key, double value, double min,
                 double max, bool min_open = false) {
    const bool low = min_open ? value <= min : value < min;
    if (!std::isfinite(value) || low || value > max) {
        errors.push_back(fmt::format("world.{}: must be a number {} {} and at most {}, got {}", key,
                                     min_open ? "above" : "at least", min, max, value));
    }
}

}  // namespace

void WorldConfig::validate(core::ConfigErrors& errors) const {
    check_range(errors, "view_radius", view_radius, 0, 10'000, true);
    check_range(errors, "view_hysteresis", view_hysteresis, 0, 1'000);
    check_range(errors, "max_speed", max_speed, 0, 1'000, true);
    check_range(errors, "speed_slack", speed_slack, 0, 10);
    check_range(errors, "path_start_tolerance", path_start_tolerance, 0, 1'000);
    check_range(errors, "attack_range", attack_range, 0, 10'000, true);
    check_range(errors, "attacks_per_s", attacks_per_s, 0, 100, true);
    check_range(errors, "chat_per_s", chat_per_s, 0, 100, true);
    check_range(errors, "chat_burst", chat_burst, 1, 1'000);
    if (zones_dir.empty()) {
        errors.emplace_back(
            "world.zones_dir: must not be empty (\"zones\" is <data_dir>/zones, the default)");
    }
}

ZoneSettings WorldConfig::settings() const {
    return ZoneSettings{.tick_hz = static_cast<std::uint16_t>(tick_hz),
                        .view_radius = static_cast<float>(view_radius),
                        .view_hysteresis = static_cast<float>(view_hysteresis),
                        .max_speed = static_cast<float>(max_speed),
                        .speed_slack = static_cast<float>(speed_slack),
                        .path_start_tolerance = static_cast<float>(path_start_tolerance),
                        .attack_range = static_cast<float>(attack_range),
                        .attack_damage = static_cast<std::uint32_t>(attack_damage),
                        .attacks_per_s = static_cast<float>(attacks_per_s),
                        .chat_per_s = static_cast<float>(chat_per_s),
                        .chat_burst = static_cast<float>(chat_burst),
                        .max_players = static_cast<std::size_t>(max_players_per_zone)};
}

std::filesystem::path WorldConfig::zones_path(const std::string& data_dir) const {
    std::filesystem::path dir(zones_dir);
    return dir.is_absolute() ? dir : std::filesystem::path(data_dir) / dir;
}

}  // namespace hearth::world
