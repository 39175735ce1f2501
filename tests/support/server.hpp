#pragma once

// The server in-process on 127.0.0.1 port 0, and the `hearth` binary as a child process.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/object.hpp>

#include "app/server_app.hpp"

namespace hearth::test {

/// A temporary directory, removed with its contents when destroyed.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const noexcept { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

/// Config overrides as "section.key" -> TOML value text, e.g. {"websocket.idle_timeout_s", "1"}.
using Overrides = std::map<std::string, std::string>;

/// Polls `done` until it holds or `deadline` passes; returns its last answer. For state that only
/// the server's side can see change (a metric, a module's state): a condition, never a sleep.
template <class F>
bool eventually(F done, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) {
            return true;
        }
        std::this_thread::yield();
    }
    return done();
}

/// Builds TOML text from overrides on top of the test defaults (port 0, two io threads, the echo
/// route on, a temporary data_dir, the test's store backend: support/store_backend.hpp).
std::string test_config_toml(const Overrides& overrides, const std::string& data_dir);

/// The config test_config_toml(overrides, data_dir) loads to (what an edited file would hold, for
/// ServerApp::apply). Throws std::runtime_error with the first error of an invalid one.
std::shared_ptr<const core::Config> test_config(const Overrides& overrides,
                                                const std::string& data_dir);

/// An in-process server. Construction starts it; destruction shuts it down.
class TestServer {
public:
    TestServer() : TestServer(Overrides{}) {}
    TestServer(std::initializer_list<Overrides::value_type> overrides)
        : TestServer(Overrides(overrides)) {}
    explicit TestServer(const Overrides& overrides);
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;
    ~TestServer();

    std::uint16_t port() const;
    app::ServerApp& app() { return *app_; }
    /// The value of one sample of GET /metrics, e.g. metric("hearth_ws_disconnects_total",
    /// {{"reason","slow_consumer"}}); 0 when absent.
    double metric(const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) const;

private:
    TempDir dir_;
    core::ConfigSchema schema_;
    std::unique_ptr<app::ServerApp> app_;
};

/// Parses one sample's value out of Prometheus text; 0 when absent.
double metric_value(const std::string& text, const std::string& name,
                    const std::map<std::string, std::string>& labels);

/// The `hearth` binary started as a child process, its standard output and error captured.
/// How to start a child process.
struct ChildOptions {
    std::string program;         // empty: the `hearth` binary
    bool capture_stderr = true;  // false: standard error goes to the test's own
};

class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env = {},
                 const std::string& stdin_text = "", const ChildOptions& options = {});
    ~ChildProcess();

    /// Waits for a line of output containing `needle`; returns it. Throws on the deadline or when
    /// the process exits first.
    std::string wait_for_line(const std::string& needle,
                              std::chrono::milliseconds deadline = std::chrono::seconds(20));
    void signal(int signo);
    /// Waits for the exit; returns the exit code (128 + signal when killed). Throws on the
    /// deadline.
    int wait_exit(std::chrono::milliseconds deadline = std::chrono::seconds(20));
    /// Everything printed so far.
    const std::string& output() const noexcept { return output_; }

private:
    bool pump(std::chrono::milliseconds timeout);  // reads what is available; false at EOF
    int pid_ = -1;
    int out_fd_ = -1;
    bool exited_ = false;
    int exit_code_ = -1;
    std::string output_;
    std::size_t scanned_ = 0;
};

/// The port of `listener` ("http", "packet", ...) that a `hearth serve` child logged when it
/// bound it (waits for the line, as wait_for_line).
std::uint16_t logged_port(ChildProcess& p, const std::string& listener);

/// The path of a program built next to `hearth` (`hearth-bench`, ...), found through
/// HEARTH_TEST_BINARY_DIR (set by ctest) or the test binary's own location.
std::string built_binary(const std::string& name);
/// The path of the built `hearth` binary.
std::string hearth_binary();

/// A finished run of the load generator: its exit code and standard output.
struct BenchRun {
    int exit_code = -1;
    std::string out;
};
/// Runs `hearth-bench ARGS`; kills it and throws past `deadline` (the tool must end by itself
/// well before).
BenchRun run_bench(const std::vector<std::string>& args,
                   std::chrono::milliseconds deadline = std::chrono::seconds(60));
/// Runs `hearth-bench ARGS --drain 60`. What is in flight at the end of --duration may take long
/// to arrive on a busy machine (ASan, two cores shared with other tests); the drain ends as soon
/// as it has, so a generous one costs nothing when all is well, and a message missing after it is
/// lost, not late. The run's deadline covers it.
BenchRun run_bench_drained(std::vector<std::string> args);
/// The report of a `--json` run: its last output line, parsed. Throws when it is not a JSON object.
boost::json::object report_of(const BenchRun& run);

}  // namespace hearth::test
