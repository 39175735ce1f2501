#pragma once

// What a hearth-bot run counts, and the summary it prints (docs/hearth-bot.md lists each field).

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "bot/options.hpp"

namespace hearth::bot {

/// The bots' counters, all since the start of the run. One thread writes them (the bots' loop).
struct Counters {
    std::uint64_t connect_ok = 0;
    std::uint64_t connect_failed = 0;
    std::uint64_t logged_in = 0;
    std::uint64_t characters_created = 0;
    std::uint64_t characters_selected = 0;
    std::uint64_t entered_world = 0;
    std::uint64_t zone_changes = 0;
    std::uint64_t setup_failed = 0;   // refused or timed out before reaching the world
    std::uint64_t disconnected = 0;   // closed by the server after entering the world
    std::uint64_t world_updates = 0;  // WorldUpdate packets
    std::uint64_t spawns_seen = 0;
    std::uint64_t moves_seen = 0;
    std::uint64_t moves_sent = 0;
    std::uint64_t corrections = 0;
    std::array<std::uint64_t, 6> corrections_by_reason{};  // index: wire reason (1-5), 0 other
    std::uint64_t chats_sent = 0;
    std::uint64_t chats_received = 0;
    std::uint64_t attacks_sent = 0;
    std::uint64_t hp_updates = 0;
    std::uint64_t kills = 0;   // deaths whose killer was a bot's own entity
    std::uint64_t deaths = 0;  // a bot's own character died
    std::uint64_t respawns = 0;
    std::uint64_t notices = 0;
    std::uint64_t packets_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t bytes_received = 0;
    std::map<std::string, std::uint64_t> errors;  // by the error's name (server codes and local)
};

/// Bots by where they are now.
struct Population {
    std::size_t waiting = 0;     // not connected yet
    std::size_t setting_up = 0;  // connected, not in the world yet
    std::size_t in_world = 0;
    std::size_t gone = 0;  // failed or closed
};

/// A point of the run.
struct Sample {
    double at_s = 0;  // since the start of the run
    Counters counters;
    std::optional<double> server_cpu_s;  // the server's CPU time (--server-pid)
    std::optional<std::uint64_t> server_rss_bytes;
    double client_cpu_s = 0;  // this process's
};

/// Everything the summary is made of.
struct RunRecord {
    Options options;
    std::string prefix;
    double provision_s = 0;           // making accounts and keys, before the run
    std::optional<double> settled_s;  // when every bot was in the world or gone
    Sample begin;  // the window's start: when every bot settled, else the start of the run
    Sample end;    // at --duration, before the logouts
    Population population_at_end;
    std::optional<std::uint64_t> server_rss_before;  // before the first connection
    std::optional<boost::json::value> zones;         // GET /api/v1/world/zones
    std::string zones_error;                         // why there are none
    std::vector<std::string> notes;
};

/// The summary: counts for the whole run, rates over the window, the server's figures.
boost::json::object make_summary(const RunRecord& run);

/// The line printed every second.
std::string progress_line(double at_s, const Population& p, const Counters& now,
                          const Counters& second_ago, double seconds);

}  // namespace hearth::bot
