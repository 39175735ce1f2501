#include "support/server.hpp"
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/clients.hpp"
#include "support/store_backend.hpp"

extern char** environ;

namespace hearth::test {

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hearth-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

std::string test_config_toml(const Overrides& overrides, const std::string& data_dir) {
    Overrides all = {
        {"server.data_dir", "\"" + data_dir + "\""},
        {"server.io_threads", "2"},
        {"server.shutdown_timeout_ms", "5000"},
        {"http.listen", "\"127.0.0.1:0\""},
        {"http.echo_route", "true"},
        // Most tests use anonymous native clients (production default: off); native_test covers
        // tokens and the default.
        {"native.allow_anonymous", "true"},
        // The cheapest argon2id costs: a server hashes a dummy password at startup, and logins
        // in tests need no protection against guessing.
        {"auth.password_ops_limit", "1"},
        {"auth.password_mem_limit_kib", "8"},
    };
    for (const auto& [k, v] : overrides) {
        all[k] = v;
    }
    // The test's store backend (support/store_backend.hpp), unless the test chose a driver.
    if (!all.contains("storage.driver")) {
        for (auto& [k, v] : store_overrides(all.at("server.data_dir"))) {
            all[k] = std::move(v);
        }
    }
    std::map<std::string, std::vector<std::string>> sections;
    for (const auto& [k, v] : all) {
        auto dot = k.rfind('.');
        sections[k.substr(0, dot)].push_back(k.substr(dot + 1) + " = " + v);
    }
    std::ostringstream out;
    for (const auto& [section, lines] : sections) {
        out << "[" << section << "]\n";
        for (const auto& l : lines) {
            out << l << "\n";
        }
    }
    return out.str();
}

std::shared_ptr<const core::Config> test_config(const Overrides& overrides,
                                                const std::string& data_dir) {
    static const auto schema = app::make_schema();
    auto loaded = schema.load_string(test_config_toml(overrides, data_dir), "edited", {});
    if (!loaded.config) {
        throw std::runtime_error("invalid config: " + loaded.errors.front());
    }
    return loaded.config;
}

TestServer::TestServer(const Overrides& overrides) : schema_(app::make_schema()) {
    auto loaded = schema_.load_string(test_config_toml(overrides, dir_.path()), "test.toml", {});
    if (!loaded.config) {
        std::string all;
        for (const auto& e : loaded.errors) {
            all += e + "\n";
        }
        throw std::runtime_error("test config invalid:\n" + all);
    }
    app_ = std::make_unique<app::ServerApp>(schema_, loaded.config);
    app_->start();
}

TestServer::~TestServer() {
    app_->shutdown();
}

std::uint16_t TestServer::port() const {
    return app_->http_port();
}

double TestServer::metric(const std::string& name,
                          const std::map<std::string, std::string>& labels) const {
    return metric_value(http_request(port(), "GET", "/metrics").body, name, labels);
}

double metric_value(const std::string& text, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) {
            continue;
        }
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next != '{' && next != ' ') {
            continue;
        }
        bool match = true;
        for (const auto& [k, v] : labels) {
            if (line.find(k + "=\"" + v + "\"") == std::string::npos) {
                match = false;
            }
        }
        if (match) {
            return std::stod(line.substr(line.rfind(' ') + 1));
        }
    }
    return 0;
}

std::string built_binary(const std::string& name) {
    if (const char* dir = std::getenv("HEARTH_TEST_BINARY_DIR")) {
        return std::string(dir) + "/" + name;
    }
    // Run by hand rather than by ctest: the test binaries live in <build>/tests.
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? "./" + name : (exe.parent_path().parent_path() / name).string();
}

std::uint16_t logged_port(ChildProcess& p, const std::string& listener) {
    const auto line = p.wait_for_line("for " + listener);
    std::smatch m;
    if (!std::regex_search(line, m, std::regex(R"(listening on [^ ]+:(\d+) for )"))) {
        throw std::runtime_error("no port in: " + line);
    }
    return static_cast<std::uint16_t>(std::stoi(m[1]));
}

std::string hearth_binary() {
    return built_binary("hearth");
}

ChildProcess::ChildProcess(const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env,
                           const std::string& stdin_text, const ChildOptions& options) {
    int out_pipe[2];
    int in_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(in_pipe, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    if (options.capture_stderr) {
        posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 2);
    }

    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        env_strings.emplace_back(*e);
    }
    for (const auto& [k, v] : env) {
        env_strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::vector<std::string> argv_strings{options.program.empty() ? hearth_binary()
                                                                  : options.program};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);

    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(out_pipe[1]);
    close(in_pipe[0]);
    if (rc != 0) {
        close(out_pipe[0]);
        close(in_pipe[1]);
        throw std::runtime_error("cannot start " + argv_strings[0]);
    }
    if (!stdin_text.empty()) {
        (void)!::write(in_pipe[1], stdin_text.data(), stdin_text.size());
    }
    close(in_pipe[1]);
    out_fd_ = out_pipe[0];
}

ChildProcess::~ChildProcess() {
    if (!exited_ && pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) {
        close(out_fd_);
    }
}

bool ChildProcess::pump(std::chrono::milliseconds timeout) {
    if (out_fd_ < 0) {
        return false;
    }
    pollfd p{out_fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
        return true;
    }
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) {
        close(out_fd_);
        out_fd_ = -1;
        return false;
    }
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
}

std::string ChildProcess::wait_for_line(const std::string& needle,
                                        std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        for (;;) {
            auto nl = output_.find('\n', scanned_);
            if (nl == std::string::npos) {
                break;
            }
            std::string line = output_.substr(scanned_, nl - scanned_);
            scanned_ = nl + 1;
            if (line.find(needle) != std::string::npos) {
                return line;
            }
        }
        if (std::chrono::steady_clock::now() >= until) {
            throw std::runtime_error("no output line containing \"" + needle + "\"; output:\n" +
                                     output_);
        }
        if (!pump(std::chrono::milliseconds(100))) {
            if (output_.find('\n', scanned_) == std::string::npos) {
                throw std::runtime_error("process ended before printing \"" + needle +
                                         "\"; output:\n" + output_);
            }
        }
    }
}

void ChildProcess::signal(int signo) {
    kill(pid_, signo);
}

int ChildProcess::wait_exit(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    // The child's output pipe reaches EOF when it exits: read until then, within the deadline.
    while (out_fd_ >= 0) {
        if (std::chrono::steady_clock::now() >= until) {
            throw std::runtime_error("process did not exit in time; output:\n" + output_);
        }
        (void)pump(std::chrono::milliseconds(100));
    }
    if (!exited_) {
        int status = 0;
        waitpid(pid_, &status, 0);
        exited_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exit_code_;
}

BenchRun run_bench(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
    ChildProcess child(args, {}, "", ChildOptions{built_binary("hearth-bench"), false});
    BenchRun run;
    run.exit_code = child.wait_exit(deadline);
    run.out = child.output();
    return run;
}

BenchRun run_bench_drained(std::vector<std::string> args) {
    args.insert(args.end(), {"--drain", "60"});
    return run_bench(args, std::chrono::seconds(150));
}

boost::json::object report_of(const BenchRun& run) {
    std::string text = run.out;
    while (!text.empty() && text.back() == '\n') {
        text.pop_back();
    }
    const auto nl = text.rfind('\n');
    const std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
    boost::system::error_code ec;
    auto v = boost::json::parse(last, ec);
    if (ec || !v.is_object()) {
        throw std::runtime_error("the last line is not a JSON object; output:\n" + run.out);
    }
    return v.as_object();
}

}  // namespace hearth::test
