#include "store/executor.hpp"
#include <algorithm>
#include <exception>

#include <pthread.h>
#include <spdlog/spdlog.h>

#include "util/log.hpp"

namespace hearth::store::detail {
namespace {

// While failures go on, the cause is logged again at this interval, not once per operation.
constexpr auto kErrorLogInterval = std::chrono::seconds(60);

std::array<core::Counter*, kErrorKinds> make_error_counters(core::MetricsRegistry& metrics) {
    std::array<core::Counter*, kErrorKinds> out{};
    for (std::size_t i = 0; i < kErrorKinds; ++i) {
        out[i] = &metrics.counter("hearth_store_errors_total",
                                  "Store operations that failed, by cause (full, io, read_only, "
                                  "corrupt, busy, other, queue_full, connection, queue_bytes).",
                                  {{"kind", std::string(kErrorKindLabels[i])}});
    }
    return out;
}

std::vector<double> batch_size_bounds() {
    return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
}

void name_this_thread(const std::string& name) {
    // At most 15 characters: the kernel's limit.
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace

Errc to_errc(ErrorKind kind) noexcept {
    return kind == ErrorKind::kBusy || kind == ErrorKind::kQueueFull ||
                   kind == ErrorKind::kQueueBytes
               ? Errc::kUnavailable
               : Errc::kStorageFailure;
}

std::optional<std::string> prefix_upper_bound(std::string prefix) {
    while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xFF) {
        prefix.pop_back();
    }
    if (prefix.empty()) {
        return std::nullopt;
    }
    prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
    return prefix;
}

std::string_view mailbox_namespace(std::string_view key) noexcept {
    const auto colon = key.find(':');
    return colon == std::string_view::npos ? std::string_view() : key.substr(0, colon + 1);
}

// ---------------------------------------------------------------------------------------------
// ErrorReporter.

ErrorReporter::ErrorReporter(std::string_view what, std::string_view outcome, std::string name,
                             std::array<core::Counter*, kErrorKinds> counters)
    : what_(what), outcome_(outcome), name_(std::move(name)), counters_(counters) {}

void ErrorReporter::failed(const StoreFailure& failure, std::size_t operations) {
    counters_[static_cast<std::size_t>(failure.kind)]->inc(operations);
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    const bool log = !failing_.load(std::memory_order_relaxed) || failure.kind != last_kind_ ||
                     now - last_log_ >= kErrorLogInterval;
    failing_.store(true, std::memory_order_relaxed);
    last_kind_ = failure.kind;
    if (log) {
        last_log_ = now;
        // Lock contention is another session's doing and passes; the rest needs an operator.
        util::logger("store")->log(
            failure.kind == ErrorKind::kBusy ? spdlog::level::warn : spdlog::level::err,
            "{}: {} failed: {}; {} {}; further failures are counted in "
            "hearth_store_errors_total{{kind=\"{}\"}}",
            name_, what_, failure.message, operations, outcome_,
            kErrorKindLabels[static_cast<std::size_t>(failure.kind)]);
    }
}

void ErrorReporter::succeeded() {
    if (!failing_.load(std::memory_order_relaxed)) {
        return;  // the common case: no lock
    }
    std::lock_guard lock(mutex_);
    if (failing_.exchange(false, std::memory_order_relaxed)) {
        util::logger("store")->info("{}: {}s succeed again", name_, what_);
    }
}

// ---------------------------------------------------------------------------------------------
// StoreExecutor.

StoreExecutor::StoreExecutor(ExecutorSettings settings, ExecutorBackend& backend,
                             core::MetricsRegistry& metrics)
    : settings_(std::move(settings)),
      backend_(backend),
      transactions_(metrics.counter("hearth_store_transactions_total",
                                    "Write transactions committed by the store's writer thread.")),
      writes_(metrics.counter("hearth_store_writes_total",
                              "Writes committed; several share one transaction (group commit).")),
      reads_(metrics.counter("hearth_store_reads_total", "Reads answered by the store.")),
      batch_size_(metrics.histogram("hearth_store_batch_size",
                                    "Writes per committed transaction (group commit).",
                                    batch_size_bounds())),
      write_latency_(metrics.histogram(
          "hearth_store_write_latency_seconds",
          "Time from submitting a write to its commit (queueing included), in seconds.",
          core::Histogram::latency_seconds_bounds())),
      read_latency_(metrics.histogram(
          "hearth_store_read_latency_seconds",
          "Time from submitting a read to its result (queueing included), in seconds.",
          core::Histogram::latency_seconds_bounds())),
      dropped_(metrics.counter("hearth_mailbox_dropped_total",
                               "Oldest mailbox entries deleted because their mailbox was full.")),
      write_queue_depth_(metrics.gauge("hearth_store_queue_depth",
                                       "Operations waiting for a store thread.",
                                       {{"queue", "write"}})),
      read_queue_depth_(metrics.gauge("hearth_store_queue_depth",
                                      "Operations waiting for a store thread.",
                                      {{"queue", "read"}})),
      write_queue_bytes_(metrics.gauge(
          "hearth_store_queue_bytes",
          "Bytes (keys, bodies) of the operations queued for or run by the writer thread.",
          {{"queue", "write"}})),
      healthy_gauge_(metrics.gauge("hearth_store_healthy",
                                   "1 while the store's last write or probe succeeded, else 0.")),
      error_counters_(make_error_counters(metrics)),
      write_errors_("write transaction", "operation(s) failed and none of them was stored",
                    settings_.name, error_counters_),
      read_errors_("read", "read(s) failed", settings_.name, error_counters_) {
    healthy_gauge_.set(1);
}

StoreExecutor::~StoreExecutor() {
    stop();
}

void StoreExecutor::start() {
    try {
        writer_ = std::thread([this] {
            name_this_thread("hearth-store-w");
            writer_loop();
        });
        for (std::size_t i = 0; i < settings_.readers; ++i) {
            readers_.emplace_back([this, i] {
                name_this_thread("hearth-store-r" + std::to_string(i));
                reader_loop(i);
            });
        }
    } catch (...) {
        stop();
        throw;
    }
}

void StoreExecutor::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !writer_.joinable()) {
            return;  // stopped already
        }
        stopping_ = true;
    }
    writer_cv_.notify_all();
    reader_cv_.notify_all();
    if (settings_.hooks.on_stop) {
        settings_.hooks.on_stop();
    }
    // The threads finish what is queued before they return.
    if (writer_.joinable()) {
        writer_.join();
    }
    for (std::thread& t : readers_) {
        if (t.joinable()) {
            t.join();
        }
    }
}

void StoreExecutor::set_healthy(bool healthy) {
    if (healthy_.exchange(healthy, std::memory_order_relaxed) != healthy) {
        healthy_gauge_.set(healthy ? 1 : 0);
    }
}

void StoreExecutor::mark_unhealthy() {
    set_healthy(false);
    // An idle writer waits without a deadline while healthy: wake it so that it starts probing.
    // The writer reads healthy() under the mutex, so after this lock it either saw false or is
    // waiting for this notification.
    { std::lock_guard lock(mutex_); }
    writer_cv_.notify_one();
}

void StoreExecutor::run_completion(ExecOp& op, Errc error) noexcept {
    // A throwing completion is the caller's bug; it must not take the store thread (and with it
    // every other caller's operations) down.
    try {
        op.complete(error);
    } catch (const std::exception& e) {
        util::logger("store")->error("a store completion threw: {}", e.what());
    } catch (...) {
        util::logger("store")->error("a store completion threw a non-standard exception");
    }
}

void StoreExecutor::refuse(ExecOp& op, ErrorKind bound) {
    error_counters_[static_cast<std::size_t>(bound)]->inc();
    run_completion(op, Errc::kUnavailable);
}

std::optional<ErrorKind> StoreExecutor::queue_for_writer_locked(std::unique_ptr<ExecOp>& op) {
    if (write_queue_.size() >= settings_.writer_queue_max) {
        return ErrorKind::kQueueFull;
    }
    // One operation is always let through when the writer holds nothing, whatever its size: a
    // single operation is bounded by its submitter (a message size, a log batch), and refusing
    // it forever would make it impossible rather than bounded.
    const std::size_t max_bytes = settings_.writer_queue_max_bytes;
    const std::size_t room = writer_bytes_ >= max_bytes ? 0 : max_bytes - writer_bytes_;
    if (writer_bytes_ > 0 && op->bytes > room) {
        return ErrorKind::kQueueBytes;
    }
    op->pool_reads_before = pool_submitted_;
    ++writer_submitted_;
    writer_bytes_ += op->bytes;
    write_queue_bytes_.add(static_cast<std::int64_t>(op->bytes));
    write_queue_.push_back(std::move(op));
    write_queue_depth_.add(1);
    return std::nullopt;
}

void StoreExecutor::submit_write(std::unique_ptr<ExecOp> op) {
    op->enqueued = Clock::now();
    bool stopping = false;
    std::optional<ErrorKind> refused;
    {
        std::lock_guard lock(mutex_);
        stopping = stopping_;
        if (!stopping) {
            refused = queue_for_writer_locked(op);
        }
    }
    if (stopping) {
        run_completion(*op, Errc::kShuttingDown);
        return;
    }
    if (refused) {
        refuse(*op, *refused);
        return;
    }
    writer_cv_.notify_one();
}

void StoreExecutor::submit_read(std::unique_ptr<ExecOp> op) {
    op->enqueued = Clock::now();
    op->is_read = true;
    bool stopping = false;
    std::optional<ErrorKind> refused;
    bool to_writer = false;
    {
        std::lock_guard lock(mutex_);
        stopping = stopping_;
        if (stopping) {
            // refused
        } else if (writer_submitted_ != writer_completed_) {
            // Earlier writes are pending: the read runs in the writer's sequence, inside its
            // transaction, so that it sees exactly the writes submitted before it (and not the
            // later ones that share their batch) without cutting the batch short.
            to_writer = true;
            refused = queue_for_writer_locked(op);
        } else if (read_queue_.size() >= settings_.reader_queue_max) {
            refused = ErrorKind::kQueueFull;
        } else {
            op->pool_index = pool_submitted_++;
            pool_in_flight_.insert(op->pool_index);
            read_queue_.push_back(std::move(op));
            read_queue_depth_.add(1);
        }
    }
    if (stopping) {
        run_completion(*op, Errc::kShuttingDown);
        return;
    }
    if (refused) {
        refuse(*op, *refused);
        return;
    }
    (to_writer ? writer_cv_ : reader_cv_).notify_one();
}

void StoreExecutor::writer_loop() {
    std::vector<std::unique_ptr<ExecOp>> batch;
    batch.reserve(settings_.max_batch);
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            for (;;) {
                // Group commit: everything that queued up while the last transaction ran goes
                // into the next one, up to the first op that must wait for an earlier pool read.
                while (batch.size() < settings_.max_batch && !write_queue_.empty() &&
                       pool_reads_done_locked(write_queue_.front()->pool_reads_before)) {
                    batch.push_back(std::move(write_queue_.front()));
                    write_queue_.pop_front();
                }
                if (!batch.empty()) {
                    write_queue_depth_.sub(static_cast<std::int64_t>(batch.size()));
                    break;
                }
                if (!write_queue_.empty()) {
                    // A pool read submitted before the front op is still running (briefly: pool
                    // reads wait for nothing).
                    writer_waiting_for_reads_ = true;
                    writer_cv_.wait(lock);
                    writer_waiting_for_reads_ = false;
                } else if (stopping_) {
                    return;  // everything queued has run and completed
                } else if (healthy()) {
                    writer_cv_.wait(lock);
                } else if (writer_cv_.wait_for(lock, settings_.hooks.probe_interval) ==
                               std::cv_status::timeout &&
                           write_queue_.empty() && !stopping_) {
                    lock.unlock();
                    probe();
                    lock.lock();
                }
            }
        }
        run_batch(batch);
        batch.clear();
    }
}

void StoreExecutor::run_batch(std::vector<std::unique_ptr<ExecOp>>& batch) {
    if (settings_.hooks.before_batch) {
        settings_.hooks.before_batch();
    }
    const auto writes = static_cast<std::size_t>(
        std::count_if(batch.begin(), batch.end(), [](const auto& op) { return !op->is_read; }));
    BatchStats stats;
    std::optional<StoreFailure> failure;
    try {
        failure = backend_.run_batch(batch, writes, stats);
    } catch (const std::exception& e) {
        // Only allocation failures can get here.
        failure = StoreFailure{ErrorKind::kOther, e.what()};
    }

    Errc error = Errc::kOk;
    if (!failure) {
        const auto committed = Clock::now();
        if (writes > 0) {
            transactions_.inc();
            writes_.inc(writes);
            batch_size_.observe(static_cast<double>(writes));
            dropped_.inc(stats.dropped);
            set_healthy(true);
            write_errors_.succeeded();
        }
        for (const auto& op : batch) {
            const double seconds = std::chrono::duration<double>(committed - op->enqueued).count();
            if (op->is_read) {
                reads_.inc();
                read_latency_.observe(seconds);
            } else {
                write_latency_.observe(seconds);
            }
        }
    } else {
        error = to_errc(failure->kind);
        write_errors_.failed(*failure, batch.size());
        if (error == Errc::kStorageFailure) {
            set_healthy(false);
        }
    }

    std::size_t bytes = 0;
    for (const auto& op : batch) {
        run_completion(*op, error);
        bytes += op->bytes;
    }
    // Counted after the completions: until then a new read must queue behind them, so that it
    // completes after them.
    std::lock_guard lock(mutex_);
    writer_completed_ += batch.size();
    writer_bytes_ -= bytes;
    write_queue_bytes_.sub(static_cast<std::int64_t>(bytes));
}

void StoreExecutor::probe() {
    bool ok = false;
    try {
        ok = backend_.probe();
    } catch (const std::exception&) {
        ok = false;
    }
    if (ok) {
        set_healthy(true);
        write_errors_.succeeded();
    }
}

void StoreExecutor::reader_loop(std::size_t reader) {
    for (;;) {
        std::unique_ptr<ExecOp> op;
        {
            std::unique_lock lock(mutex_);
            reader_cv_.wait(lock, [&] { return !read_queue_.empty() || stopping_; });
            if (read_queue_.empty()) {
                return;  // stopping, and every read has been taken
            }
            op = std::move(read_queue_.front());
            read_queue_.pop_front();
            read_queue_depth_.sub(1);
        }
        std::optional<StoreFailure> failure;
        try {
            failure = backend_.run_read(reader, *op);
        } catch (const std::exception& e) {
            failure = StoreFailure{ErrorKind::kOther, e.what()};
        }
        Errc error = Errc::kOk;
        if (!failure) {
            reads_.inc();
            read_latency_.observe(
                std::chrono::duration<double>(Clock::now() - op->enqueued).count());
            read_errors_.succeeded();
        } else {
            error = to_errc(failure->kind);
            read_errors_.failed(*failure, 1);
            if (failure->kind == ErrorKind::kConnection) {
                mark_unhealthy();  // the database is unreachable, not just this read
            }
        }
        {
            // Pool reads complete in submission order even when another reader runs an earlier
            // one; that one is running already (the queue is FIFO), so the wait is short.
            std::unique_lock lock(mutex_);
            if (*pool_in_flight_.begin() != op->pool_index) {
                ++pool_order_waiters_;
                pool_order_cv_.wait(lock,
                                    [&] { return *pool_in_flight_.begin() == op->pool_index; });
                --pool_order_waiters_;
            }
        }
        run_completion(*op, error);
        std::lock_guard lock(mutex_);
        pool_in_flight_.erase(op->pool_index);
        if (pool_order_waiters_ > 0) {
            pool_order_cv_.notify_all();
        }
        if (writer_waiting_for_reads_) {
            writer_cv_.notify_one();
        }
    }
}

}  // namespace hearth::store::detail
