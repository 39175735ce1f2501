// hearth-bot: simulated players on Hearth's game packet protocol. See docs/hearth-bot.md.
//
//   hearth-bot --host H --port P --bots N --duration S [--move-hz R] [--zone Z] [--spread UNITS]
//              [--api URL --admin-token T | --token T] [--server-pid PID] [--json] [...]
//
// Exit status: 0 the run went through (the summary says how well); 1 no bot reached the world;
// 2 a usage error; 3 the run overran its deadline.

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "bot/options.hpp"
#include "bot/provision.hpp"
#include "bot/summary.hpp"
#include "bot/swarm.hpp"
#include "common/run_support.hpp"
#include "core/metrics.hpp"

namespace {

using namespace hearth::bot;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

Sample sample(const Swarm& swarm, const Options& o, Clock::time_point start) {
    Sample s;
    s.at_s = since(start);
    s.counters = swarm.counters();
    if (auto server = hearth::tools::sample_process(o.server_pid)) {
        s.server_cpu_s = server->cpu_seconds;
        s.server_rss_bytes = server->resident_bytes;
    }
    s.client_cpu_s = hearth::core::read_process_stats(0).cpu_seconds;
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    const auto parsed = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
    if (const auto* exit = std::get_if<ParseExit>(&parsed)) {
        std::fputs(exit->text.c_str(), exit->code == 0 ? stdout : stderr);
        return exit->code;
    }
    const Options o = std::get<Options>(parsed);
    if (!hearth::tools::raise_file_limit("hearth-bot", o.bots)) {
        return 2;
    }
    const auto note = [&o](RunRecord& run, const std::string& text) {
        if (!o.quiet) {
            fmt::print(stderr, "hearth-bot: {}\n", text);
        }
        run.notes.push_back(text);
    };

    RunRecord run;
    run.options = o;
    run.prefix = !o.prefix.empty()
                     ? o.prefix
                     : make_prefix(o.seed != 0 ? o.seed
                                               : static_cast<std::uint64_t>(
                                                     Clock::now().time_since_epoch().count()) ^
                                                     static_cast<std::uint64_t>(::getpid()));

    // Whatever the server does, the process ends: the provisioning's requests, the run and the
    // logouts have their own deadlines, and this one covers them all (and a bug in this tool).
    const std::size_t accounts =
        o.api.empty() ? 0 : (o.bots + o.bots_per_account - 1) / o.bots_per_account;
    const double limit_s = o.duration_s + 60.0 * static_cast<double>(accounts + 1) + 120;
    std::thread([limit_s] {
        std::this_thread::sleep_for(std::chrono::duration<double>(limit_s));
        std::fputs("hearth-bot: the run overran its deadline; exiting\n", stderr);
        std::_Exit(3);
    }).detach();
    hearth::tools::install_stop_handlers();

    std::vector<std::string> tokens;
    std::vector<Identity> identities;
    if (!o.api.empty()) {
        const auto t0 = Clock::now();
        try {
            identities = provision(o.api, o.admin_token, run.prefix, accounts, o.provision_threads,
                                   o.duration_s + 3600, [&](std::size_t done) {
                                       if (!o.quiet) {
                                           fmt::print(stderr,
                                                      "hearth-bot [provision] {} of {} accounts "
                                                      "and keys\n",
                                                      done, accounts);
                                       }
                                   });
        } catch (const std::exception& e) {
            fmt::print(stderr, "hearth-bot: {}\n", e.what());
            return 2;
        }
        run.provision_s = since(t0);
        std::size_t failed = 0;
        for (const auto& id : identities) {
            tokens.push_back(id.token);
            if (!id.error.empty() && failed++ == 0) {
                note(run, "could not make an identity: " + id.error);
            }
        }
        if (failed > 1) {
            note(run, fmt::format("{} of {} accounts have no API key", failed, accounts));
        }
    } else {
        tokens.push_back(o.token);
    }

    const auto start = Clock::now();
    Swarm swarm(o, run.prefix, tokens);
    run.begin = sample(swarm, o, start);
    run.server_rss_before = run.begin.server_rss_bytes;
    Counters last = run.begin.counters;
    auto last_at = start;
    swarm.run(
        start + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(o.duration_s)),
        [] { return hearth::tools::stop_requested(); },
        [&] {
            if (!run.settled_s && swarm.settled()) {
                run.settled_s = since(start);
                run.begin = sample(swarm, o, start);
            }
            if (!o.quiet) {
                const Counters now = swarm.counters();
                fmt::print(
                    stderr, "{}\n",
                    progress_line(since(start), swarm.population(), now, last,
                                  std::chrono::duration<double>(Clock::now() - last_at).count()));
                last = now;
            }
            last_at = Clock::now();
        });
    if (hearth::tools::stop_requested()) {
        note(run, "interrupted: the figures cover the run until then");
    }
    run.end = sample(swarm, o, start);
    run.population_at_end = swarm.population();
    if (!run.settled_s) {
        note(run,
             "not every bot was in the world or gone by the end: the rates are over the "
             "whole run, connections and logins included");
    }
    if (!o.api.empty()) {
        run.zones = read_zones(o.api, o.admin_token, run.zones_error);
    } else {
        run.zones_error = "no --api: the zones' figures come from the operator API";
    }
    swarm.finish(15.0);
    if (o.cleanup && !identities.empty()) {
        const auto removed = remove_accounts(o.api, o.admin_token, identities, o.provision_threads);
        note(run, fmt::format("--cleanup: deleted {} of {} accounts", removed, identities.size()));
    }

    const auto summary = make_summary(run);
    if (o.json) {
        std::fputs((hearth::tools::json_text(summary) + "\n").c_str(), stdout);
    } else {
        for (const auto& kv : summary) {
            fmt::print("{:<30} {}\n", std::string(kv.key()), hearth::tools::json_text(kv.value()));
        }
    }
    std::fflush(stdout);
    // Success: some bot got as far as it was asked to go.
    const auto reached =
        o.lobby ? run.end.counters.characters_selected : run.end.counters.entered_world;
    return reached > 0 ? 0 : 1;
}
