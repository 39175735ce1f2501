#include "postgres_server.hpp"
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hearth::store::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kStartDeadline = 60s;  // initdb + first start under a loaded machine
constexpr auto kStopDeadline = 30s;
constexpr auto kPollInterval = 20ms;
constexpr std::string_view kDirPrefix = "hearth-pg-";

std::string read_file(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

/// The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres (or $HEARTH_PG_BIN).
std::string find_bin_dir() {
    if (const char* env = std::getenv("HEARTH_PG_BIN"); env != nullptr && *env != '\0') {
        return env;
    }
    std::vector<std::pair<int, std::string>> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        const fs::path bin = entry.path() / "bin";
        if (fs::exists(bin / "initdb") && fs::exists(bin / "postgres")) {
            const std::string version = entry.path().filename().string();
            found.emplace_back(std::atoi(version.c_str()), bin.string());
        }
    }
    if (found.empty()) {
        throw std::runtime_error(
            "PostgreSQL server binaries (initdb, postgres) not found under "
            "/usr/lib/postgresql/*/bin: the store tests start their own PostgreSQL server and "
            "need Debian's postgresql package (scripts/install-deps.sh installs it; or set "
            "HEARTH_PG_BIN to a directory holding initdb and postgres)");
    }
    std::sort(found.begin(), found.end());
    return found.back().second;
}

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

/// /dev/shm: memory, open to everyone like /tmp. Used for the servers with fsync off when it has
/// room for a cluster and a few dozen databases (a container's default 64 MiB does not).
constexpr const char* kMemoryDir = "/dev/shm";
constexpr std::uint64_t kMemoryDirMinFree = std::uint64_t{1} << 30;

bool memory_backed_dir_usable() {
    struct statvfs fs_stats {};
    if (::access(kMemoryDir, W_OK | X_OK) != 0 || ::statvfs(kMemoryDir, &fs_stats) != 0) {
        return false;
    }
    return static_cast<std::uint64_t>(fs_stats.f_bavail) * fs_stats.f_frsize >= kMemoryDirMinFree;
}

/// Removes directories left by test processes that died without stopping their server.
void remove_stale_dirs(const fs::path& base) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(base, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.starts_with(kDirPrefix)) {
            continue;
        }
        const pid_t pid = std::atoi(name.c_str() + kDirPrefix.size());
        if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
            std::error_code ignored;
            fs::remove_all(entry.path(), ignored);
        }
    }
}

/// Whether a process of group `pgid` is alive and not a zombie.
bool group_has_live_process(pid_t pgid) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        // Fields after the command name (in parentheses, which may hold anything): state, ppid,
        // pgrp.
        const std::string stat = read_file(entry.path() / "stat");
        const auto close = stat.rfind(')');
        if (close == std::string::npos) {
            continue;
        }
        std::istringstream fields(stat.substr(close + 1));
        char state = 0;
        long ppid = 0;
        long pgrp = 0;
        if (fields >> state >> ppid >> pgrp && pgrp == pgid && state != 'Z' && state != 'X') {
            return true;
        }
    }
    return false;
}

/// Starts `argv` as a child (as uid/gid when `switch_user`), its output appended to `log`.
/// With `tie_to_parent`, the child gets SIGINT when this process dies.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log, bool switch_user,
            uid_t uid, gid_t gid, bool tie_to_parent) {
    // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) {
        throw std::runtime_error(log + ": " + std::strerror(errno));
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(out);
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
        const int null = ::open("/dev/null", O_RDONLY);
        if (null >= 0) {
            ::dup2(null, STDIN_FILENO);
        }
        // Its own process group: a terminal's Ctrl-C goes to the tests, which stop it cleanly.
        ::setpgid(0, 0);
        if (switch_user) {
            if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
                ::_exit(126);
            }
        }
        if (tie_to_parent) {
            // After the user switch, which clears it.
            ::prctl(PR_SET_PDEATHSIG, SIGINT);
            if (::getppid() != parent) {
                ::_exit(1);
            }
        }
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(out);
    return pid;
}

/// Waits for `pid` up to `deadline`; its exit status, or nullopt when it is still running.
std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        if (r < 0 && errno != EINTR) {
            return -1;
        }
        if (Clock::now() >= until) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

std::string admin_conninfo(int port, const std::string& db) {
    return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=" + db +
           " sslmode=disable gssencmode=disable connect_timeout=5";
}

struct PgResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
struct PgConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};

std::unique_ptr<PGconn, PgConnDeleter> connect_or_throw(const std::string& url) {
    std::unique_ptr<PGconn, PgConnDeleter> conn(PQconnectdb(url.c_str()));
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
        throw std::runtime_error("cannot connect to " + url + ": " +
                                 (conn ? PQerrorMessage(conn.get()) : "out of memory"));
    }
    PQsetNoticeProcessor(
        conn.get(), [](void*, const char*) {}, nullptr);
    return conn;
}

}  // namespace

PostgresServer& PostgresServer::shared() {
    // Intentionally a function-local static: started on first use, stopped at exit.
    static PostgresServer server(Options{});
    return server;
}

PostgresServer::PostgresServer(Options options)
    : bin_dir_(find_bin_dir()), owner_(::getpid()), options_(options) {
    const char* tmp = std::getenv("TMPDIR");
    fs::path base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    if (::geteuid() == 0) {
        // initdb and postgres refuse to run as root: they run as an unprivileged user, which
        // must be able to reach the directory: /tmp is open to everyone, a TMPDIR may not be.
        base = "/tmp";
        const passwd* pw = ::getpwnam("postgres");
        if (pw == nullptr) {
            pw = ::getpwnam("nobody");
        }
        if (pw == nullptr) {
            throw std::runtime_error(
                "running as root, and neither the postgres nor the nobody user exists to run "
                "the test PostgreSQL server as");
        }
        switch_user_ = true;
        uid_ = pw->pw_uid;
        gid_ = pw->pw_gid;
    } else {
        uid_ = ::geteuid();
        gid_ = ::getegid();
    }
    if (!options_.durable && memory_backed_dir_usable()) {
        // fsync is off, so a disk adds nothing but time: on a file system mounted with `discard`
        // each of a cluster's ~1,000 files takes milliseconds to delete (seconds per server).
        base = kMemoryDir;
    }
    remove_stale_dirs("/tmp");
    remove_stale_dirs(kMemoryDir);
    if (tmp != nullptr && *tmp != '\0') {
        remove_stale_dirs(tmp);
    }
    std::string pattern =
        (base / (std::string(kDirPrefix) + std::to_string(::getpid()) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
    }
    dir_ = pattern;
    if (switch_user_ && ::chown(dir_.c_str(), uid_, gid_) != 0) {
        throw std::runtime_error("chown " + dir_ + ": " + std::strerror(errno));
    }

    const std::string log = dir_ + "/initdb.log";
    const pid_t initdb = spawn({bin_dir_ + "/initdb", "-D", dir_ + "/data", "-U", "postgres", "-E",
                                "UTF8", "--locale=C", "--auth=trust", "--no-sync"},
                               log, switch_user_, uid_, gid_, /*tie_to_parent=*/false);
    const auto status = wait_for_exit(initdb, kStartDeadline);
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
        if (!status) {
            ::kill(initdb, SIGKILL);
            ::waitpid(initdb, nullptr, 0);
        }
        const std::string output = read_file(log);
        std::error_code ec;
        fs::remove_all(dir_, ec);
        throw std::runtime_error("initdb failed (" + bin_dir_ + "/initdb" +
                                 (switch_user_ ? ", as uid " + std::to_string(uid_) : "") +
                                 "): " + output);
    }
    // A port found free may be taken before the server binds it: try a few.
    std::string last_error;
    for (int attempt = 0; attempt < 5; ++attempt) {
        try {
            start_on(free_port());
            return;
        } catch (const std::runtime_error& e) {
            last_error = e.what();
        }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
    throw std::runtime_error(last_error);
}

PostgresServer::~PostgresServer() {
    if (::getpid() != owner_) {
        return;  // a forked child (a death test) exiting: the server is its parent's
    }
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void PostgresServer::start_on(int port) {
    port_ = port;
    const std::string log = dir_ + "/server.log";
    const std::string durable = options_.durable ? "on" : "off";
    pid_ =
        spawn({bin_dir_ + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p", std::to_string(port),
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=" + durable, "-c",
               "synchronous_commit=" + durable, "-c", "full_page_writes=" + durable, "-c",
               "max_connections=200", "-c", "shared_buffers=16MB"},
              log, switch_user_, uid_, gid_, /*tie_to_parent=*/true);
    const std::string conninfo = admin_conninfo(port, "postgres");
    const auto until = Clock::now() + kStartDeadline;
    for (;;) {
        if (PQping(conninfo.c_str()) == PQPING_OK) {
            return;
        }
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("the test PostgreSQL server exited at startup (port " +
                                     std::to_string(port) + "): " + read_file(log));
        }
        if (Clock::now() >= until) {
            stop();
            throw std::runtime_error(
                "the test PostgreSQL server did not accept connections on "
                "127.0.0.1:" +
                std::to_string(port) + " in time: " + read_file(log));
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

void PostgresServer::stop() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGINT);  // fast shutdown: terminates sessions, then a checkpoint
    if (!wait_for_exit(pid_, kStopDeadline)) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
}

void PostgresServer::kill() {
    if (pid_ <= 0) {
        return;
    }
    // The backends are the postmaster's children in its process group (spawn() made it a group
    // of its own): all die at once, as in a crash of the machine's database service.
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    // Backends still exiting keep the shared memory attached, and a new postmaster refuses to
    // start beside them: wait until none is left but zombies (which have let go of it; whoever
    // adopted them reaps them, maybe never).
    const auto until = Clock::now() + kStopDeadline;
    while (group_has_live_process(pid_) && Clock::now() < until) {
        std::this_thread::sleep_for(kPollInterval);
    }
    pid_ = -1;
}

void PostgresServer::start() {
    if (pid_ > 0) {
        return;
    }
    start_on(port_);
}

std::string PostgresServer::create_database() {
    const std::string name = "test_" + std::to_string(++databases_);
    // template0 and file copy: no WAL for the copied files (fsync is off anyway), and no other
    // session can be connected to the template.
    exec(admin_conninfo(port_, "postgres"),
         "CREATE DATABASE " + name + " TEMPLATE template0 STRATEGY FILE_COPY");
    return url(name);
}

std::string PostgresServer::url(const std::string& name, const std::string& password) const {
    return "postgresql://postgres" + (password.empty() ? "" : ":" + password) +
           "@127.0.0.1:" + std::to_string(port_) + "/" + name +
           "?sslmode=disable&gssencmode=disable";
}

void PostgresServer::exec(const std::string& url, const std::string& sql) {
    auto conn = connect_or_throw(url);
    std::unique_ptr<PGresult, PgResultDeleter> r(PQexec(conn.get(), sql.c_str()));
    const auto status = PQresultStatus(r.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        throw std::runtime_error(sql + ": " + PQerrorMessage(conn.get()));
    }
}

std::string PostgresServer::query(const std::string& url, const std::string& sql) {
    auto conn = connect_or_throw(url);
    std::unique_ptr<PGresult, PgResultDeleter> r(PQexec(conn.get(), sql.c_str()));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
        throw std::runtime_error(sql + ": " + PQerrorMessage(conn.get()));
    }
    return PQntuples(r.get()) > 0 ? std::string(PQgetvalue(r.get(), 0, 0)) : std::string();
}

}  // namespace hearth::store::test
