#pragma once

// The plug-in point of hearth-bench. A scenario (a client role: echo, fan-out, idle connections;
// later Homestead mods and bots, HunterPie leaders and members, ...) is one .cpp file that defines
// a Scenario and registers it:
//
//     namespace {
//     class MyRole final : public Scenario { ... };
//     const RegisterScenario kRegistered{{"my-role", "What it does.",
//                                         [] { return std::make_unique<MyRole>(); }}};
//     }  // namespace
//
// and adds itself to tools/CMakeLists.txt. `hearth-bench my-role --url ... [its flags]` then
// runs it: the harness (bench.hpp) gives it worker threads, bounded connection opening, progress
// lines, the server's CPU and memory, and prints the report.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace CLI {
class App;
}

namespace hearth::bench {

class Bench;

/// Flags every scenario has.
struct CommonOptions {
    std::string url;
    double duration_s = 10;  // the measured phase; every other wait has its own deadline
    std::string token;       // Authorization: Bearer on the upgrade; a hello on the native protocol
    int server_pid = 0;      // read the server's CPU time and RSS from /proc when set
    bool json = false;
    unsigned threads = 1;             // client threads, one io_context each
    unsigned concurrency = 256;       // handshakes in progress at once
    unsigned source_addresses = 0;    // 127.0.0.1..127.0.0.K; 0: one per 500 connections
    double connect_timeout_s = 60;    // for opening all connections
    double handshake_timeout_s = 10;  // for one connection's connect + TLS + upgrade
    bool compression = false;         // offer permessage-deflate (no context takeover)
    // After --duration, how long what is in flight may take to arrive; the wait ends as soon as
    // it has. main() sets the scenario's default_drain_s() when --drain is not given.
    double drain_s = 2;
};

/// What a scenario measured. The harness adds the common figures (sent, delivered, errors and
/// latency come from the workers' counters and histograms).
struct Report {
    double elapsed_s = 0;                // the window deliveries_per_s is computed over
    std::optional<double> server_cpu_s;  // server CPU seconds over that window
    std::optional<double> client_cpu_s;  // this tool's CPU seconds over that window
    std::string latency_meaning = "message latency";
    boost::json::object figures;  // the scenario's own figures, in output order
};

class Scenario {
public:
    virtual ~Scenario() = default;
    /// Adds the scenario's own flags to its subcommand.
    virtual void add_options(CLI::App& command) = 0;
    /// Checks the flags once parsed; an error message, or empty.
    virtual std::string validate(const CommonOptions&) { return {}; }
    /// How many connections the run opens (for the file limit and source addresses).
    virtual std::size_t connections() const = 0;
    /// How long the run should take at most, beyond opening connections; a watchdog ends the
    /// process past it (with margin) whatever happens.
    virtual double expected_seconds(const CommonOptions& options) const {
        return options.duration_s;
    }
    /// --drain when not given: long enough for messages in flight on a loaded machine, short
    /// enough that a lost one is reported soon.
    virtual double default_drain_s() const { return 2; }
    /// Runs on the main thread; the workers run the connections. Leaves the connections open:
    /// the harness closes them.
    virtual void run(Bench& bench, Report& report) = 0;
};

struct ScenarioInfo {
    std::string name;
    std::string description;
    std::function<std::unique_ptr<Scenario>()> make;
};

/// Every registered scenario, in registration order. Filled during static initialisation.
const std::vector<ScenarioInfo>& scenarios();

struct RegisterScenario {
    explicit RegisterScenario(ScenarioInfo info);
};

}  // namespace hearth::bench
