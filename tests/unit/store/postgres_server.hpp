#pragma once

// A real PostgreSQL server for the store tests, started by the tests themselves: Debian's
// postgresql package (initdb, postgres under /usr/lib/postgresql/<version>/bin), a cluster in a
// fresh temporary directory (trust authentication, UTF8), listening on 127.0.0.1 on a free port
// and on a Unix socket inside that directory only, with fsync off and the directory in /dev/shm
// when it has room (else /tmp, or TMPDIR unless root); or, for durability tests, PostgreSQL's own
// durable settings on disk (Options::durable). As root (initdb and postgres refuse to run as root)
// both run as the unprivileged `postgres` system user (or `nobody`), with the directory handed
// over to it.
//
// One shared server per test process, started on first use (PostgresServer::shared()) and stopped
// at exit (SIGINT: fast shutdown); a test may start servers of its own (the constructor). Each
// test gets a database of its own (create_database()), so tests are independent. If the process
// dies, the server gets SIGINT from the kernel (parent death signal, tied to the thread that
// started it: start and restart it from the test's main thread) and the next test process removes
// the directory it left behind.

#include <string>

#include <sys/types.h>

namespace hearth::store::test {

class PostgresServer {
public:
    struct Options {
        /// fsync, synchronous_commit and full_page_writes on (PostgreSQL's defaults), for tests
        /// of what survives a crash. Off (the default) they make the functional tests faster.
        bool durable = false;
    };

    /// The process's server (not durable), started on first use. Throws std::runtime_error with
    /// a clear message when it cannot start: the binaries are missing (the postgresql package),
    /// initdb failed (its output is in the message), or the server did not accept connections in
    /// time.
    static PostgresServer& shared();

    /// A server of the caller's own, started now; throws like shared(). Stopped and its directory
    /// removed when destroyed.
    explicit PostgresServer(Options options);

    ~PostgresServer();
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;

    /// A new, empty database; returns its URL (postgresql://postgres@127.0.0.1:<port>/<name>).
    std::string create_database();
    /// The URL of database `name`, with `password` in it when not empty (trust authentication
    /// ignores it).
    std::string url(const std::string& name, const std::string& password = "") const;

    int port() const noexcept { return port_; }
    bool running() const noexcept { return pid_ > 0; }

    /// Fast shutdown (SIGINT: sessions are terminated), waiting until the server has exited.
    void stop();
    /// A crash: SIGKILL to the server and every backend (its process group), nothing flushed or
    /// checkpointed; waits until the server has exited. start() then runs crash recovery.
    void kill();
    /// Starts the stopped server again: same directory, same port. Waits until it accepts
    /// connections.
    void start();

    /// Runs `sql` on database `url`; throws std::runtime_error with the server's message.
    static void exec(const std::string& url, const std::string& sql);
    /// The first column of the first row of `sql` ("" when no row).
    static std::string query(const std::string& url, const std::string& sql);

private:
    void start_on(int port);

    std::string bin_dir_;
    std::string dir_;  // the temporary directory: data/, the socket, server.log
    uid_t uid_ = 0;    // the user the server runs as (the caller's unless root)
    gid_t gid_ = 0;
    bool switch_user_ = false;
    int port_ = 0;
    pid_t pid_ = -1;
    pid_t owner_ = -1;  // the process that started it (a forked child must not stop it)
    Options options_;
    int databases_ = 0;
};

}  // namespace hearth::store::test
