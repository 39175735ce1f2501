#pragma once

// hearth-bot's command line (docs/hearth-bot.md): what the run does, checked before anything
// connects.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace hearth::bot {

struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::size_t bots = 1;
    double duration_s = 10;             // from the first connection to the logouts
    double move_hz = 2;                 // moves per second and bot; 0: the bots stand still
    std::optional<std::uint32_t> zone;  // change_map there when the entry zone differs
    double spread = 50;                 // units around the entry point the bots wander within
    double speed = 0.8;                 // of the zone's max_speed
    // Identities: accounts and API keys made through the operator API, or one token for all.
    std::string api;  // http://HOST:PORT
    std::string admin_token;
    std::string token;
    std::string prefix;  // names of accounts and characters; empty: one of this run's own
    unsigned bots_per_account = 1;
    unsigned provision_threads = 4;  // HTTP connections making accounts and keys at once
    bool cleanup = false;            // delete the accounts made, after the run
    double chat_per_min = 1;         // per bot, local chat
    double attack_per_min = 0;       // per bot, at the nearest NPC in view
    double connect_rate = 500;       // connections opened per second
    // Connect from 127.0.0.1..127.0.0.K (a 127.x host only); 0: one address per
    // kBotsPerSourceAddress bots.
    unsigned source_addresses = 0;
    double setup_timeout_s = 10;  // for one bot's login to world entry
    std::uint64_t seed = 0;       // 0: from the clock
    int server_pid = 0;
    bool json = false;
    bool quiet = false;  // no progress lines
    // Bots that move and chat (the first N); the others only keep their connection alive. Empty:
    // every bot.
    std::optional<std::size_t> moving;
    // Stop after selecting the character: logged-in idle connections that never enter the world
    // (the baseline the world's memory per character is measured against).
    bool lobby = false;
};

/// Bots per source address by default: under the packet front-end's default
/// `max_connections_per_ip` (256).
inline constexpr std::size_t kBotsPerSourceAddress = 200;

/// The source addresses bot connections spread over: none (the system's choice) unless the host
/// is a 127.x address and more than one is needed or asked for.
std::vector<std::string> source_addresses(const Options& o);

/// The outcome of parsing: options to run with, or an exit (--help, or a usage error) with the
/// text to print and the status to exit with.
struct ParseExit {
    int code = 0;
    std::string text;
};
using ParseResult = std::variant<Options, ParseExit>;

/// `args` without the program name.
ParseResult parse_command_line(const std::vector<std::string>& args);

/// A run-unique prefix for names: 'b' and five letters and digits without vowels (so that no
/// reserved word such as "admin" can appear in a character's name), from `seed`.
std::string make_prefix(std::uint64_t seed);

}  // namespace hearth::bot
