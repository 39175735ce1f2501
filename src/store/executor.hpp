#pragma once

// The queueing and ordering machinery every store backend shares (SQLite, PostgreSQL): one writer
// thread with group commit, reader threads, bounded queues, the order rules of
// include/hearth/store.hpp, health, error reporting and the hearth_store_* metrics. A backend
// owns its connections and says how to run a batch in one transaction, one read, and a health
// probe (ExecutorBackend); the executor decides what runs where and when.
//
// Threads: one writer thread runs batches on the backend's writer connection; `readers` reader
// threads (index 0..readers-1) each run reads on their own connection. Submission is thread-safe
// and never blocks on storage (a short lock to queue).
//
// Order: operations complete in submission order (across submitting threads too), and a read sees
// exactly the writes submitted before it. A read goes to the reader threads when the writer has
// nothing pending; otherwise it joins the writer's queue and runs inside the writer's next
// transaction, at its place among the writes (its result is delivered after the commit, or fails
// with the batch). So reads never cut a batch short, and when the writer is idle they never wait
// for a commit. A writer operation waits for the pool reads submitted before it (they must not
// see it, and must complete first); a pool read completes after the pool reads submitted before
// it. Operations refused at submission (kUnavailable: queue full, by count or by bytes;
// kShuttingDown) complete at once, on the calling thread, before the call returns.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <hearth/result.hpp>
#include <hearth/store.hpp>

#include "core/metrics.hpp"

namespace hearth::store {

/// Ways for tests to make a store wait on purpose. All empty in production.
struct StoreTestHooks {
    /// Runs on the writer thread before each batch's transaction begins. May block: a test holds
    /// the writer busy with it to fill the queue.
    std::function<void()> before_batch;
    /// Runs on the destroying thread once the store refuses new operations, before it drains.
    std::function<void()> on_stop;
    /// While the last write failed, the idle writer tries a write this often, so that healthy()
    /// turns true again when the storage recovers without traffic to prove it. PostgreSQL: also
    /// the least time between two attempts to reconnect a broken connection.
    std::chrono::milliseconds probe_interval{1'000};
};

namespace detail {

using Clock = std::chrono::steady_clock;

/// Why an operation failed; the label of hearth_store_errors_total{kind}.
enum class ErrorKind : std::uint8_t {
    kFull,
    kIo,
    kReadOnly,
    kCorrupt,
    kBusy,
    kOther,
    kQueueFull,
    kConnection,
    kQueueBytes,  // the writer holds writer_queue_max_bytes of operations
};
inline constexpr std::size_t kErrorKinds = 9;
inline constexpr std::array<std::string_view, kErrorKinds> kErrorKindLabels = {
    "full",  "io",         "read_only",  "corrupt",    "busy",
    "other", "queue_full", "connection", "queue_bytes"};

/// Lock contention and overload are the caller's to retry ("nothing was done"); the rest means the
/// storage itself is failing.
Errc to_errc(ErrorKind kind) noexcept;

/// A failed batch, read or connection, as the backend describes it.
struct StoreFailure {
    ErrorKind kind = ErrorKind::kOther;
    /// For the log: what it means and the database's own words, e.g. "the disk is full (...)
    /// (SQLITE_FULL, extended code 13: database or disk is full)".
    std::string message;
};

/// What a batch's operations did, counted once the batch commits.
struct BatchStats {
    std::uint64_t dropped = 0;  // mailbox entries deleted by their bound
};

/// One queued operation. Created by the submitting thread; executed and completed by the writer
/// thread (writes, and reads submitted while the writer had work) or a reader thread (reads
/// submitted while it had none). Backends execute it as a ConnOp on their connection (the
/// repositories' operations are sql::Op, store/sql/sql.hpp).
class ExecOp {
public:
    virtual ~ExecOp() = default;
    /// Runs the completion, with the operation's own result when `error` is kOk.
    virtual void complete(Errc error) = 0;

    Clock::time_point enqueued;
    /// The bytes the operation holds (keys, bodies), as its submitter counts them: what the
    /// writer's byte bound weighs. Fixed at submission.
    std::size_t bytes = 0;
    bool is_read = false;
    std::uint64_t pool_reads_before = 0;  // writer ops: pool reads submitted before it
    std::uint64_t pool_index = 0;         // pool reads: its place among pool reads
};

/// An operation on a backend's connection type `Conn`. `Rc` is the backend's status: the error
/// that fails the whole batch, or success. An error of the operation alone (a bad argument) is
/// kept as its result and does not fail the batch.
template <class Conn, class Rc>
class ConnOp : public ExecOp {
public:
    virtual Rc execute(Conn& conn, BatchStats& stats) = 0;
};

template <class Conn, class Rc, class T, class Fn>
class ConnOpFor final : public ConnOp<Conn, Rc> {
public:
    ConnOpFor(Fn fn, Completion<T> done) : fn_(std::move(fn)), done_(std::move(done)) {}

    Rc execute(Conn& conn, BatchStats& stats) override { return fn_(conn, stats, result_); }
    void complete(Errc error) override {
        if (!done_) {
            return;
        }
        if (error != Errc::kOk) {
            done_(Result<T>(make_error_code(error)));
        } else {
            done_(std::move(result_));
        }
    }

private:
    Fn fn_;
    Completion<T> done_;
    Result<T> result_{};
};

/// `fn(Conn&, BatchStats&, Result<T>& out) -> Rc` as a queued operation completing `done`,
/// holding `bytes` (ExecOp::bytes).
template <class Conn, class Rc, class T, class Fn>
std::unique_ptr<ExecOp> make_op(Fn fn, Completion<T> done, std::size_t bytes = 0) {
    auto op = std::make_unique<ConnOpFor<Conn, Rc, T, Fn>>(std::move(fn), std::move(done));
    op->bytes = bytes;
    return op;
}

/// What a backend does on the executor's threads.
class ExecutorBackend {
public:
    virtual ~ExecutorBackend() = default;
    /// Writer thread: runs `batch` (writes, and reads queued among them; `writes` of them are
    /// writes) in submission order in ONE transaction on the writer's connection and commits.
    /// nullopt when it committed; otherwise nothing of it is stored and every op of it fails.
    virtual std::optional<StoreFailure> run_batch(std::span<const std::unique_ptr<ExecOp>> batch,
                                                  std::size_t writes, BatchStats& stats) = 0;
    /// Reader thread `reader`: runs one read on that reader's connection.
    virtual std::optional<StoreFailure> run_read(std::size_t reader, ExecOp& op) = 0;
    /// Writer thread, while the store is unhealthy and idle: a small write; true when it
    /// committed. Not counted as an error when it fails: it is not an operation.
    virtual bool probe() = 0;
};

/// Counts failed operations by kind and logs the cause once per run of failures (again every
/// minute while it lasts): a failing disk fails every operation, and a line per operation would
/// flood the log. One instance for writes, one for reads, so that reads that still work do not
/// end a run of failing writes. Thread-safe.
class ErrorReporter {
public:
    /// `what` failed ("write transaction"); `outcome` follows the count ("reads failed").
    ErrorReporter(std::string_view what, std::string_view outcome, std::string name,
                  std::array<core::Counter*, kErrorKinds> counters);

    void failed(const StoreFailure& failure, std::size_t operations);
    void succeeded();

private:
    std::string_view what_;
    std::string_view outcome_;
    std::string name_;
    std::array<core::Counter*, kErrorKinds> counters_;
    std::atomic<bool> failing_{false};
    std::mutex mutex_;
    ErrorKind last_kind_ = ErrorKind::kOther;
    Clock::time_point last_log_;
};

struct ExecutorSettings {
    std::string name;  // the database as logs name it: a path, or a URL without its password
    std::size_t writer_queue_max = 10'000;
    std::size_t writer_queue_max_bytes = std::size_t{64} << 20;
    std::size_t reader_queue_max = 10'000;
    std::size_t max_batch = 1'000;
    std::size_t readers = 2;
    StoreTestHooks hooks;
};

/// The writer and reader threads, their queues and the order bookkeeping. Owned by the store
/// (SqlStore, store/sql_store.hpp) with the backend it runs on: the store starts it once the
/// backend's connections are open and stops it (in its destructor, before closing them).
class StoreExecutor {
public:
    StoreExecutor(ExecutorSettings settings, ExecutorBackend& backend,
                  core::MetricsRegistry& metrics);
    ~StoreExecutor();
    StoreExecutor(const StoreExecutor&) = delete;
    StoreExecutor& operator=(const StoreExecutor&) = delete;

    /// Starts the threads. Throws std::system_error when a thread cannot start (nothing runs).
    void start();
    /// Refuses new operations (kShuttingDown), finishes everything queued (running its
    /// completions) and joins the threads. Idempotent; must not run on a store thread.
    void stop();

    /// Thread-safe. A refused operation completes before these return.
    void submit_write(std::unique_ptr<ExecOp> op);
    void submit_read(std::unique_ptr<ExecOp> op);

    bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }
    /// Makes the store unhealthy, e.g. when a reader finds the database unreachable. The writer
    /// then probes until a write succeeds.
    void mark_unhealthy();

    const std::string& name() const noexcept { return settings_.name; }
    std::size_t readers() const noexcept { return settings_.readers; }
    std::size_t max_batch() const noexcept { return settings_.max_batch; }

private:
    /// Queues `op` for the writer; returns which bound refused it (kQueueFull, kQueueBytes), or
    /// nothing when it is queued. Called with mutex_ held.
    std::optional<ErrorKind> queue_for_writer_locked(std::unique_ptr<ExecOp>& op);
    bool pool_reads_done_locked(std::uint64_t before) const noexcept {
        return pool_in_flight_.empty() || *pool_in_flight_.begin() >= before;
    }
    /// Completes `op` with kUnavailable, counted by the bound that refused it.
    void refuse(ExecOp& op, ErrorKind bound);

    void writer_loop();
    void run_batch(std::vector<std::unique_ptr<ExecOp>>& batch);
    void probe();
    void reader_loop(std::size_t reader);
    void set_healthy(bool healthy);

    static void run_completion(ExecOp& op, Errc error) noexcept;

    const ExecutorSettings settings_;
    ExecutorBackend& backend_;

    // Metrics, looked up once.
    core::Counter& transactions_;
    core::Counter& writes_;
    core::Counter& reads_;
    core::Histogram& batch_size_;
    core::Histogram& write_latency_;
    core::Histogram& read_latency_;
    core::Counter& dropped_;
    core::Gauge& write_queue_depth_;
    core::Gauge& read_queue_depth_;
    core::Gauge& write_queue_bytes_;
    core::Gauge& healthy_gauge_;
    std::array<core::Counter*, kErrorKinds> error_counters_{};
    ErrorReporter write_errors_;
    ErrorReporter read_errors_;

    std::atomic<bool> healthy_{true};

    // Queues and the order bookkeeping, all under mutex_ (see the file comment).
    std::mutex mutex_;
    std::condition_variable writer_cv_;      // the writer waits for work or for earlier pool reads
    std::condition_variable reader_cv_;      // readers wait for work
    std::condition_variable pool_order_cv_;  // a reader waits for earlier pool reads to complete
    std::deque<std::unique_ptr<ExecOp>> write_queue_;  // bounded by writer_queue_max
    std::deque<std::unique_ptr<ExecOp>> read_queue_;   // bounded by reader_queue_max
    // The bytes of the writer's operations, queued or in the running batch (they are held until
    // their completions ran): bounded by writer_queue_max_bytes.
    std::size_t writer_bytes_ = 0;
    std::uint64_t writer_submitted_ = 0;
    std::uint64_t writer_completed_ = 0;
    std::uint64_t pool_submitted_ = 0;
    std::set<std::uint64_t> pool_in_flight_;  // pool reads submitted and not yet completed
    std::size_t pool_order_waiters_ = 0;
    bool writer_waiting_for_reads_ = false;
    bool stopping_ = false;

    std::thread writer_;
    std::vector<std::thread> readers_;
};

/// The smallest key greater than every key starting with `prefix`, or nothing when there is none
/// (an empty prefix or only 0xFF bytes). Keys compare as bytes in both backends.
std::optional<std::string> prefix_upper_bound(std::string prefix);

/// A mailbox key's namespace, which its quotas count in (MailboxLimits): up to and including its
/// first ':', or "" without one. The migrations' triggers compute the same in SQL.
std::string_view mailbox_namespace(std::string_view key) noexcept;

}  // namespace detail
}  // namespace hearth::store
