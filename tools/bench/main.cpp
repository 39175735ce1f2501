// hearth-bench: the load generator. `hearth-bench <scenario> --url URL [flags]`; see
// docs/benchmarks.md ("Load generator") and `hearth-bench <scenario> --help`.

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "bench/bench.hpp"
#include "common/run_support.hpp"

namespace {

using namespace hearth::bench;
namespace json = boost::json;

void add_common_options(CLI::App& cmd, CommonOptions& o) {
    cmd.add_option(
           "--url", o.url,
           "Server URL: ws://HOST:PORT/PATH or wss://... (not verified); tcp://HOST:PORT for "
           "raw TCP scenarios (dracosoft-chat)")
        ->required();
    cmd.add_option("--duration", o.duration_s, "Seconds of measurement")
        ->check(CLI::Range(0.1, 86400.0))
        ->capture_default_str();
    cmd.add_option("--token", o.token,
                   "Sent as 'Authorization: Bearer T' on the upgrade and, on the native "
                   "protocol, as a hello");
    cmd.add_option("--server-pid", o.server_pid,
                   "The server's process id: report its CPU time and RSS from /proc");
    cmd.add_flag("--json", o.json, "Print the result as one JSON object; no progress lines");
    cmd.add_option("--threads", o.threads, "Client threads (one io_context each)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    cmd.add_option("--concurrency", o.concurrency, "Handshakes in progress at once")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    cmd.add_option("--source-addresses", o.source_addresses,
                   "Spread connections to a 127.x target over 127.0.0.1..127.0.0.K; 0: one "
                   "address per 500 connections")
        ->check(CLI::Range(0, 254))
        ->capture_default_str();
    cmd.add_option("--connect-timeout", o.connect_timeout_s,
                   "Seconds allowed for opening every connection")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    cmd.add_option("--handshake-timeout", o.handshake_timeout_s,
                   "Seconds allowed for one connection's connect, TLS and upgrade")
        ->check(CLI::Range(0.1, 600.0))
        ->capture_default_str();
    cmd.add_option("--drain", o.drain_s,
                   "Seconds allowed after --duration for what is in flight to be acknowledged "
                   "and delivered; the wait ends as soon as it is (default 2; moonshare 10)")
        ->check(CLI::Range(0.1, 3600.0));
    cmd.add_flag("--compression", o.compression,
                 "Offer permessage-deflate (client_no_context_takeover; "
                 "server_no_context_takeover); when accepted, inflate what arrives compressed "
                 "and deflate every data message sent");
}

double micros(std::uint64_t ns) {
    return std::round(static_cast<double>(ns) / 100.0) / 10.0;  // 0.1 us
}

json::object latency_object(const LatencyHistogram& h) {
    json::object o;
    o["p50"] = micros(h.percentile(50));
    o["p90"] = micros(h.percentile(90));
    o["p99"] = micros(h.percentile(99));
    o["p999"] = micros(h.percentile(99.9));
    o["max"] = micros(h.max());
    o["count"] = h.count();
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);

    CLI::App app{
        "hearth-bench: load generator for Hearth. Each scenario opens WebSocket connections to "
        "--url, measures for --duration seconds and reports what it sent, what was delivered, "
        "latency percentiles and, with --server-pid, the server's CPU time and memory."};
    app.require_subcommand(1, 1);
    CommonOptions options;
    struct Command {
        CLI::App* app;
        std::string name;
        std::unique_ptr<Scenario> scenario;
    };
    std::vector<Command> commands;
    for (const auto& info : scenarios()) {
        auto* cmd = app.add_subcommand(info.name, info.description);
        add_common_options(*cmd, options);
        auto scenario = info.make();
        scenario->add_options(*cmd);
        commands.push_back({cmd, info.name, std::move(scenario)});
    }
    CLI11_PARSE(app, argc, argv);

    auto chosen = std::find_if(commands.begin(), commands.end(),
                               [](const Command& c) { return c.app->parsed(); });
    if (chosen == commands.end()) {
        return 2;
    }
    Scenario& scenario = *chosen->scenario;
    if (chosen->app->get_option("--drain")->count() == 0) {
        options.drain_s = scenario.default_drain_s();
    }
    if (std::any_of(options.token.begin(), options.token.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; })) {
        fmt::print(stderr, "hearth-bench: --token must not contain control characters\n");
        return 2;
    }
    if (auto error = scenario.validate(options); !error.empty()) {
        fmt::print(stderr, "hearth-bench: {}\n", error);
        return 2;
    }
    if (!hearth::tools::raise_file_limit("hearth-bench", scenario.connections())) {
        return 2;
    }
    Target target;
    try {
        target = Target::parse(options.url);
    } catch (const std::exception& e) {
        fmt::print(stderr, "hearth-bench: {}\n", e.what());
        return 2;
    }

    // Whatever the server does, the process ends: every wait has its own deadline, and this one
    // covers them all (and a bug in this tool).
    const double limit_s = scenario.expected_seconds(options) + options.drain_s +
                           options.connect_timeout_s + options.handshake_timeout_s + 60;
    std::thread([limit_s] {
        std::this_thread::sleep_for(std::chrono::duration<double>(limit_s));
        std::fputs("hearth-bench: the run overran its deadline; exiting\n", stderr);
        std::_Exit(3);
    }).detach();
    Bench::install_signal_handlers();

    Report report;
    int exit_code = 0;
    json::object out;
    {
        Bench bench(chosen->name, options, std::move(target), scenario.connections());
        try {
            scenario.run(bench, report);
        } catch (const std::exception& e) {
            bench.note(std::string("the scenario stopped: ") + e.what());
            exit_code = 1;
        }
        if (Bench::interrupted()) {
            bench.note("interrupted: the figures cover the run until then");
        }
        bench.finish(3.0);

        const Totals totals = bench.totals();
        if (totals.opened == 0) {
            bench.note("no connection could be opened");
            exit_code = 1;
        }
        if (options.compression && totals.negotiated < totals.opened) {
            bench.note(fmt::format("permessage-deflate was declined on {} of {} connections",
                                   totals.opened - totals.negotiated, totals.opened));
        }
        const LatencyHistogram histogram = bench.histogram();
        out["scenario"] = chosen->name;
        out["url"] = options.url;
        out["threads"] = options.threads;
        out["elapsed_s"] = std::round(report.elapsed_s * 1000) / 1000;
        out["sent"] = totals.sent;
        out["delivered"] = totals.delivered;
        out["errors"] = totals.errors;
        out["deliveries_per_s"] =
            report.elapsed_s > 0
                ? std::round(static_cast<double>(totals.delivered) / report.elapsed_s)
                : 0.0;
        out["latency"] = report.latency_meaning;
        out["latency_us"] = latency_object(histogram);
        if (report.server_cpu_s) {
            out["server_cpu_s"] = std::round(*report.server_cpu_s * 1000) / 1000;
        }
        if (report.client_cpu_s) {
            out["client_cpu_s"] = std::round(*report.client_cpu_s * 1000) / 1000;
        }
        out["compression"] = options.compression;
        if (options.compression) {
            // Whole-run counts (setup messages included), not only the measured window.
            out["compression_negotiated"] = totals.negotiated;
            out["messages_inflated"] = totals.inflated;
            out["messages_deflated"] = totals.deflated;
        }
        for (const auto& kv : report.figures) {
            out[kv.key()] = kv.value();
        }
        out["connections_opened"] = totals.opened;
        out["connections_failed"] = totals.failed;
        json::object reasons;
        for (const auto& [reason, n] : bench.reasons()) {
            reasons[reason] = n;
        }
        out["close_reasons"] = std::move(reasons);
        json::array notes;
        for (const auto& n : bench.notes()) {
            notes.emplace_back(n);
        }
        out["notes"] = std::move(notes);
    }

    if (options.json) {
        std::fputs((hearth::tools::json_text(out) + "\n").c_str(), stdout);
    } else {
        for (const auto& kv : out) {
            if (kv.key() == "notes") {
                continue;  // already printed as they came
            }
            fmt::print("{:<34} {}\n", std::string(kv.key()), hearth::tools::json_text(kv.value()));
        }
    }
    std::fflush(stdout);
    return exit_code;
}
