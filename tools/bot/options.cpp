#include "bot/options.hpp"
#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>

namespace hearth::bot {

namespace {

bool alnum(const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    });
}

std::string check(const Options& o) {
    if (o.api.empty() == o.token.empty()) {
        return "give either --api URL --admin-token T (accounts and API keys made for the run) or "
               "--token T (one token for every bot)";
    }
    if (!o.api.empty() && o.api.rfind("http://", 0) != 0) {
        return "--api must be an http:// URL (the operator API on a local port), e.g. "
               "http://127.0.0.1:8080";
    }
    if (!o.prefix.empty() && (o.prefix.size() < 2 || o.prefix.size() > 10 || !alnum(o.prefix))) {
        return "--prefix must be 2 to 10 letters and digits (character names are the prefix and "
               "the bot's number)";
    }
    if (std::any_of(o.token.begin(), o.token.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }) ||
        std::any_of(o.admin_token.begin(), o.admin_token.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; })) {
        return "tokens must not contain control characters";
    }
    if (o.moving && *o.moving > o.bots) {
        return "--moving must be at most --bots";
    }
    if (o.lobby && o.moving) {
        return "--lobby: the bots stay out of the world, so none moves (drop --moving)";
    }
    if (o.cleanup && o.api.empty()) {
        return "--cleanup deletes the accounts made through --api: it needs --api";
    }
    return {};
}

}  // namespace

ParseResult parse_command_line(const std::vector<std::string>& args) {
    Options o;
    CLI::App app{
        "hearth-bot: simulated players on Hearth's game packet protocol. Each bot logs in, "
        "creates or selects its character, enters the world, wanders, chats and attacks; a "
        "progress line every second on standard error, a summary at the end (--json: one JSON "
        "object). See docs/hearth-bot.md."};
    app.add_option("--host", o.host, "The game server's host")->capture_default_str();
    app.add_option("--port", o.port, "The packet front-end's port ([packet] listen)")
        ->required()
        ->check(CLI::Range(1, 65535));
    app.add_option("--bots", o.bots, "Simulated players")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--duration", o.duration_s, "Seconds from the first connection to the logouts")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    app.add_option("--move-hz", o.move_hz, "Moves per second and bot (0: stand still)")
        ->check(CLI::Range(0.0, 50.0))
        ->capture_default_str();
    app.add_option("--zone", o.zone, "Zone id to play in (change_map when the entry zone differs)");
    app.add_option("--moving", o.moving,
                   "How many of the bots move, chat and attack (the first N); the others stand "
                   "in the world and only keep their connection alive (default: all)");
    app.add_flag("--lobby", o.lobby,
                 "Log in and select the character but do not enter the world: idle logged-in "
                 "connections that only keep alive (counted as in_world in the summary)");
    app.add_option("--spread", o.spread, "Units around its entry point a bot wanders within")
        ->check(CLI::Range(0.0, 1e6))
        ->capture_default_str();
    app.add_option("--speed", o.speed, "Walking speed, a fraction of the zone's max_speed")
        ->check(CLI::Range(0.01, 1.0))
        ->capture_default_str();
    auto* api = app.add_option("--api", o.api,
                               "The operator API (http://HOST:PORT): accounts and API keys are "
                               "made there, the zones' tick times read from it");
    auto* admin = app.add_option("--admin-token", o.admin_token,
                                 "[http] admin_token, or an admin's token, for --api");
    auto* token = app.add_option("--token", o.token,
                                 "One token (API key with scope packet, or session) for every bot: "
                                 "all play on its account");
    api->needs(admin);
    admin->needs(api);
    token->excludes(api);
    app.add_option("--prefix", o.prefix,
                   "Names: accounts PREFIX-N, characters PREFIXN; a run with the same prefix "
                   "reuses them (default: a prefix of this run's own)");
    app.add_option("--bots-per-account", o.bots_per_account,
                   "Bots sharing one account (fewer password hashes to make them); at most the "
                   "server's [characters] max_per_account and [packet] "
                   "max_connections_per_account")
        ->check(CLI::Range(1, 8))
        ->capture_default_str();
    app.add_option("--provision-threads", o.provision_threads,
                   "HTTP requests in flight while making accounts and keys")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    app.add_flag("--cleanup", o.cleanup, "Delete the accounts made (and their keys) after the run");
    app.add_option("--chat-per-min", o.chat_per_min, "Local chat messages per minute and bot")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str();
    app.add_option("--attack-per-min", o.attack_per_min,
                   "Attacks per minute and bot at the nearest NPC in view (0: none)")
        ->check(CLI::Range(0.0, 600.0))
        ->capture_default_str();
    app.add_flag_callback(
        "--attack", [&o] { o.attack_per_min = o.attack_per_min > 0 ? o.attack_per_min : 12; },
        "Attack NPCs in view (12 a minute unless --attack-per-min says otherwise)");
    app.add_option("--connect-rate", o.connect_rate, "Connections opened per second")
        ->check(CLI::Range(1.0, 100000.0))
        ->capture_default_str();
    app.add_option("--source-addresses", o.source_addresses,
                   "Connect from 127.0.0.1..127.0.0.K when --host is 127.x (the server limits "
                   "connections per address: [packet] max_connections_per_ip); 0: one address per "
                   "200 bots")
        ->check(CLI::Range(0, 254))
        ->capture_default_str();
    app.add_option("--setup-timeout", o.setup_timeout_s,
                   "Seconds one bot may take from its connection to entering the world")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("--seed", o.seed, "Random seed (0: from the clock)")->capture_default_str();
    app.add_option("--server-pid", o.server_pid,
                   "The server's process id: report its CPU time and RSS from /proc")
        ->check(CLI::Range(0, 1 << 30));
    app.add_flag("--json", o.json, "Print the summary as one JSON object");
    app.add_flag("--quiet", o.quiet, "No progress lines");

    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        std::ostringstream out;
        std::ostringstream err;
        const int code = app.exit(e, out, err);
        return ParseExit{code, out.str() + err.str()};
    }
    if (auto error = check(o); !error.empty()) {
        return ParseExit{2, "hearth-bot: " + error + "\n"};
    }
    return o;
}

std::vector<std::string> source_addresses(const Options& o) {
    if (o.host.rfind("127.", 0) != 0) {
        return {};
    }
    std::size_t k = o.source_addresses;
    if (k == 0) {
        k = std::min<std::size_t>((o.bots + kBotsPerSourceAddress - 1) / kBotsPerSourceAddress,
                                  254);
    }
    if (k <= 1) {
        return {};  // one address: let the system choose, as any client would
    }
    std::vector<std::string> out;
    for (std::size_t i = 1; i <= k; ++i) {
        out.push_back("127.0.0." + std::to_string(i));
    }
    return out;
}

std::string make_prefix(std::uint64_t seed) {
    static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz0123456789";
    constexpr std::uint64_t kSize = sizeof kAlphabet - 1;
    std::string out = "b";
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    for (int i = 0; i < 5; ++i) {
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ULL;
        out += kAlphabet[(x >> 33) % kSize];
    }
    return out;
}

}  // namespace hearth::bot
