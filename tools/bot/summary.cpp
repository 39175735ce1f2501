#include "bot/summary.hpp"
#include <cmath>

#include <fmt/format.h>

namespace hearth::bot {

namespace json = boost::json;

namespace {

// To `scale`ths (1000: milliseconds of seconds); dividing by the exact scale gives the double
// nearest the decimal, which prints short ("0.208", not "0.20800000000000002").
double rounded(double v, double scale = 1000) {
    return std::round(v * scale) / scale;
}

double per_s(std::uint64_t now, std::uint64_t then, double seconds) {
    return seconds > 0 ? rounded(static_cast<double>(now - then) / seconds, 10) : 0.0;
}

constexpr const char* kReasonNames[] = {"other",   "too_fast", "out_of_bounds",
                                        "blocked", "dead",     "bad_path"};

}  // namespace

json::object make_summary(const RunRecord& run) {
    const auto& o = run.options;
    const Counters& c = run.end.counters;
    const Counters& b = run.begin.counters;
    const double window = run.end.at_s - run.begin.at_s;
    json::object out;
    out["bots"] = o.bots;
    out["host"] = o.host;
    out["port"] = o.port;
    out["duration_s"] = o.duration_s;
    out["move_hz"] = o.move_hz;
    out["zone"] = o.zone ? json::value(*o.zone) : json::value(nullptr);
    out["spread"] = o.spread;
    out["moving"] = o.lobby ? 0 : (o.moving ? *o.moving : o.bots);
    out["lobby"] = o.lobby;
    out["prefix"] = run.prefix;
    out["provision_s"] = rounded(run.provision_s);
    out["elapsed_s"] = rounded(run.end.at_s);
    out["settled_s"] = run.settled_s ? json::value(rounded(*run.settled_s)) : json::value(nullptr);
    out["window"] = run.settled_s ? "settled" : "whole_run";
    out["window_s"] = rounded(window);

    json::object connections;
    connections["ok"] = c.connect_ok;
    connections["failed"] = c.connect_failed;
    connections["open_at_end"] = run.population_at_end.setting_up + run.population_at_end.in_world;
    out["connections"] = std::move(connections);
    out["logged_in"] = c.logged_in;
    out["characters_created"] = c.characters_created;
    out["characters_selected"] = c.characters_selected;
    out["entered_world"] = c.entered_world;
    out["zone_changes"] = c.zone_changes;
    out["in_world_at_end"] = run.population_at_end.in_world;
    out["setup_failed"] = c.setup_failed;
    out["disconnected"] = c.disconnected;

    out["packets_sent"] = c.packets_sent;
    out["packets_received"] = c.packets_received;
    out["bytes_sent"] = c.bytes_sent;
    out["bytes_received"] = c.bytes_received;
    out["packets_sent_per_s"] = per_s(c.packets_sent, b.packets_sent, window);
    out["packets_received_per_s"] = per_s(c.packets_received, b.packets_received, window);
    out["bytes_sent_per_s"] = per_s(c.bytes_sent, b.bytes_sent, window);
    out["bytes_received_per_s"] = per_s(c.bytes_received, b.bytes_received, window);
    const auto in_world = static_cast<double>(run.population_at_end.in_world);
    out["bytes_received_per_s_per_bot"] =
        in_world > 0 ? rounded(per_s(c.bytes_received, b.bytes_received, window) / in_world, 10)
                     : 0.0;
    out["world_updates"] = c.world_updates;
    out["world_updates_per_s"] = per_s(c.world_updates, b.world_updates, window);
    out["spawns_seen"] = c.spawns_seen;
    out["moves_seen"] = c.moves_seen;
    out["moves_sent"] = c.moves_sent;
    out["moves_sent_per_s"] = per_s(c.moves_sent, b.moves_sent, window);

    json::object corrections;
    corrections["total"] = c.corrections;
    for (std::size_t i = 0; i < c.corrections_by_reason.size(); ++i) {
        if (c.corrections_by_reason[i] > 0) {
            corrections[kReasonNames[i]] = c.corrections_by_reason[i];
        }
    }
    out["corrections"] = std::move(corrections);
    out["chats_sent"] = c.chats_sent;
    out["chats_received"] = c.chats_received;
    out["attacks_sent"] = c.attacks_sent;
    out["hp_updates"] = c.hp_updates;
    out["kills"] = c.kills;
    out["deaths"] = c.deaths;
    out["respawns"] = c.respawns;
    out["notices"] = c.notices;
    json::object errors;
    for (const auto& [name, n] : c.errors) {
        errors[name] = n;
    }
    out["errors"] = std::move(errors);

    if (run.begin.server_cpu_s && run.end.server_cpu_s && window > 0) {
        const double cpu = *run.end.server_cpu_s - *run.begin.server_cpu_s;
        out["server_cpu_s"] = rounded(cpu);
        out["server_cpu_per_s"] = rounded(cpu / window);
    } else {
        out["server_cpu_s"] = nullptr;
        out["server_cpu_per_s"] = nullptr;
    }
    out["server_rss_bytes"] =
        run.end.server_rss_bytes ? json::value(*run.end.server_rss_bytes) : json::value(nullptr);
    out["server_rss_bytes_before"] =
        run.server_rss_before ? json::value(*run.server_rss_before) : json::value(nullptr);
    if (run.server_rss_before && run.end.server_rss_bytes && run.population_at_end.in_world > 0) {
        out["server_rss_bytes_per_bot"] =
            std::round((static_cast<double>(*run.end.server_rss_bytes) -
                        static_cast<double>(*run.server_rss_before)) /
                       static_cast<double>(run.population_at_end.in_world));
    } else {
        out["server_rss_bytes_per_bot"] = nullptr;
    }
    out["client_cpu_per_s"] =
        window > 0 ? rounded((run.end.client_cpu_s - run.begin.client_cpu_s) / window) : 0.0;
    out["zones"] = run.zones ? *run.zones : json::value(nullptr);
    if (!run.zones) {
        out["zones_error"] = run.zones_error;
    }
    json::array notes;
    for (const auto& n : run.notes) {
        notes.emplace_back(n);
    }
    out["notes"] = std::move(notes);
    return out;
}

std::string progress_line(double at_s, const Population& p, const Counters& now,
                          const Counters& second_ago, double seconds) {
    std::uint64_t errors = 0;
    for (const auto& [name, n] : now.errors) {
        errors += n;
    }
    return fmt::format(
        "hearth-bot [{:6.1f}s] waiting {} setup {} in_world {} gone {} | pkts out {:.0f}/s in "
        "{:.0f}/s | KB out {:.1f}/s in {:.1f}/s | corrections {} errors {}",
        at_s, p.waiting, p.setting_up, p.in_world, p.gone,
        per_s(now.packets_sent, second_ago.packets_sent, seconds),
        per_s(now.packets_received, second_ago.packets_received, seconds),
        per_s(now.bytes_sent, second_ago.bytes_sent, seconds) / 1024,
        per_s(now.bytes_received, second_ago.bytes_received, seconds) / 1024, now.corrections,
        errors);
}

}  // namespace hearth::bot
