// The /proc CPU accounting that every benchmark figure per CPU second rests on: hearth-bench's
// server_cpu_s is the difference of two read_process_stats(pid).cpu_seconds readings
// (/proc/PID/stat utime + stime). A child process burns a known amount of CPU, measured by itself
// with CLOCK_PROCESS_CPUTIME_ID (the kernel's exact runtime, independent of /proc's clock ticks
// and of wall time), and the reading from outside must agree: on one thread, on several (the
// process's total, threads that have ended included), and not at all while the child is idle.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/metrics.hpp"

namespace hearth::core {
namespace {

using namespace std::chrono_literals;

double clock_seconds(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// /proc reports utime and stime separately, each truncated to a clock tick (10 ms at the usual
// 100 Hz): the sum may be up to two ticks short of the exact runtime, never more.
double tick_s() {
    return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// What the child answers each command with: its own CPU time (all threads, exact) and its
/// monotonic clock, both read after the command was done.
struct Reply {
    double cpu_s = 0;
    double wall_s = 0;
};

struct Command {
    char op = 0;           // 'b' burn, 'i' idle, 'r' report, 'q' quit
    std::uint32_t ms = 0;  // burn: CPU ms per thread; idle: wall ms
    std::uint32_t threads = 0;
};

/// Moves all `size` bytes with `io` (::read or ::write): a pipe may take or give fewer at a time.
template <class Io, class Byte>
bool transfer_all(Io io, int fd, Byte* p, std::size_t size) {
    while (size > 0) {
        const ssize_t n = io(fd, p, size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

bool read_all(int fd, void* data, std::size_t size) {
    return transfer_all(::read, fd, static_cast<char*>(data), size);
}

bool write_all(int fd, const void* data, std::size_t size) {
    return transfer_all(::write, fd, static_cast<const char*>(data), size);
}

/// Spins until this thread has used `seconds` of CPU: a fixed amount of work, however long a
/// loaded machine takes to schedule it.
void burn(double seconds) {
    const double until = clock_seconds(CLOCK_THREAD_CPUTIME_ID) + seconds;
    volatile std::uint64_t sink = 0;
    while (clock_seconds(CLOCK_THREAD_CPUTIME_ID) < until) {
        for (int i = 0; i < 10'000; ++i) {
            sink = sink + static_cast<std::uint64_t>(i);
        }
    }
}

[[noreturn]] void child_main(int commands, int replies) {
    for (;;) {
        Command c;
        if (!read_all(commands, &c, sizeof c) || c.op == 'q') {
            ::_exit(0);
        }
        if (c.op == 'b') {
            const double seconds = c.ms / 1000.0;
            if (c.threads <= 1) {
                burn(seconds);
            } else {
                // The threads end before the reply: their time must stay in the process's total.
                std::vector<std::thread> threads;
                for (std::uint32_t i = 0; i < c.threads; ++i) {
                    threads.emplace_back([seconds] { burn(seconds); });
                }
                for (auto& t : threads) {
                    t.join();
                }
            }
        } else if (c.op == 'i') {
            // Blocked in the kernel for the whole interval: nothing to count.
            ::poll(nullptr, 0, static_cast<int>(c.ms));
        }
        const Reply r{clock_seconds(CLOCK_PROCESS_CPUTIME_ID), clock_seconds(CLOCK_MONOTONIC)};
        if (!write_all(replies, &r, sizeof r)) {
            ::_exit(1);
        }
    }
}

/// A forked child that burns or idles on command. The child only runs this file's loop (and
/// std::thread), so forking the test process is safe: it has no other threads at this point.
class Child {
public:
    Child() {
        int to_child[2];
        int from_child[2];
        if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
            throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
        }
        pid_ = ::fork();
        if (pid_ < 0) {
            throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
        }
        if (pid_ == 0) {
            ::close(to_child[1]);
            ::close(from_child[0]);
            child_main(to_child[0], from_child[1]);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        commands_ = to_child[1];
        replies_ = from_child[0];
    }
    ~Child() {
        const Command quit{'q', 0, 0};
        (void)write_all(commands_, &quit, sizeof quit);
        ::close(commands_);
        ::close(replies_);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const noexcept { return pid_; }

    Reply run(Command c) {
        Reply r;
        if (!write_all(commands_, &c, sizeof c) || !read_all(replies_, &r, sizeof r)) {
            throw std::runtime_error("the child process stopped answering");
        }
        return r;
    }
    Reply report() { return run({'r', 0, 0}); }
    Reply burn(std::uint32_t ms_per_thread, std::uint32_t threads) {
        return run({'b', ms_per_thread, threads});
    }
    Reply idle(std::uint32_t ms) { return run({'i', ms, 0}); }

    /// The child's CPU seconds as hearth-bench reads the server's.
    double proc_cpu_s() const { return read_process_stats(pid_).cpu_seconds; }

private:
    pid_t pid_ = -1;
    int commands_ = -1;
    int replies_ = -1;
};

/// Burns `ms` on each of `threads` threads and checks that /proc saw what the child measured.
void expect_burn_counted(Child& child, std::uint32_t ms, std::uint32_t threads) {
    const Reply before = child.report();
    const double proc_before = child.proc_cpu_s();
    const Reply after = child.burn(ms, threads);
    const double proc_after = child.proc_cpu_s();

    const double exact = after.cpu_s - before.cpu_s;  // the child's own measure
    const double seen = proc_after - proc_before;     // hearth-bench's measure
    // The burn is at least what was asked of every thread (its own clock decides when to stop).
    ASSERT_GE(exact, threads * ms / 1000.0);
    // Each reading may be short of the exact total by up to two ticks (utime and stime truncated
    // separately), so the difference is off by at most that either way, plus the little the child
    // spends between its clock read and the /proc read (answering over the pipe).
    const double tolerance = 2 * tick_s() + 0.01 + 0.02 * exact;
    EXPECT_NEAR(seen, exact, tolerance) << threads << " thread(s) x " << ms << " ms: /proc saw "
                                        << seen << " s, the child " << exact << " s";
}

TEST(ProcessCpu, OneThreadBurningIsCountedExactly) {
    Child child;
    expect_burn_counted(child, 400, 1);
    expect_burn_counted(child, 150, 1);
}

TEST(ProcessCpu, EveryThreadIsCountedAlsoAfterItEnded) {
    // A server's CPU is spread over io threads, store threads and the rest: /proc/PID/stat sums
    // them all (a per-thread /proc/PID/task/TID/stat would miss most), including threads that
    // have exited since.
    Child child;
    expect_burn_counted(child, 200, 3);
}

TEST(ProcessCpu, IdleTimeIsNotCounted) {
    Child child;
    child.burn(100, 1);  // a process that has worked before, like a server between runs
    const Reply before = child.report();
    const double proc_before = child.proc_cpu_s();
    const Reply after = child.idle(600);
    const double proc_after = child.proc_cpu_s();

    // The interval was real (the idle command took its wall time) ...
    ASSERT_GE(after.wall_s - before.wall_s, 0.6);
    // ... and cost the child nearly nothing, by its own measure and by /proc's: wall time is not
    // CPU time.
    const double exact = after.cpu_s - before.cpu_s;
    EXPECT_LT(exact, 0.01);
    EXPECT_LE(proc_after - proc_before, exact + 2 * tick_s()) << "idle counted as CPU";
    EXPECT_GE(proc_after - proc_before, 0.0);
}

}  // namespace
}  // namespace hearth::core
