#pragma once

// The SQLite implementation of the store (include/hearth/store.hpp).
//
// The queues, threads and order rules are the StoreExecutor's (store/executor.hpp), shared with
// the PostgreSQL store, and the queries are the repositories' (store/repo/); this file adds the
// SQLite connections and implements the SQL dialect layer (store/sql/sql.hpp) on them.
//
// Threads: one writer thread owns the only writing connection. It takes everything queued (up to
// `max_batch`), runs it in ONE transaction, commits, then runs the completions in order: group
// commit, so concurrent writers share one commit and one disk flush. `reader_threads` reader
// threads, each with its own read-only connection, run reads concurrently with each other and
// with the writer (WAL readers see the last commit while a transaction is open). Both queues are
// bounded: at the bound a new operation fails at once with kUnavailable and nothing is done.
//
// Order: operations complete in submission order (across submitting threads too), and a read
// sees exactly the writes submitted before it. A read goes to the reader threads when the writer
// has nothing pending; otherwise it joins the writer's queue and runs inside the writer's next
// transaction, at its place among the writes (its result is delivered after the commit, or fails
// with the batch). So reads never cut a batch short, and when the writer is idle they never wait
// for a disk flush. Operations refused at submission (kUnavailable, kShuttingDown) complete at
// once, on the calling thread, before the call returns.

#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "store/executor.hpp"
#include "store/storage_config.hpp"

namespace hearth::store {

/// Ways for tests to make the store fail or wait on purpose. All empty in production.
struct SqliteTestHooks : StoreTestHooks {
    /// SQL run on the writer's connection once it is set up, e.g. "PRAGMA max_page_count = 1"
    /// (the database cannot grow: a full disk) or "PRAGMA query_only = 1" (a read-only database).
    std::string writer_setup_sql;
};

/// Opens the SQLite store described by `config`: creates `data_dir` if needed, opens
/// `config.sqlite_file` inside it (or at that path when absolute), applies pending migrations,
/// opens the writer's and the readers' connections (WAL, `synchronous` per config, foreign keys
/// on) and starts their threads. Throws std::runtime_error naming the directory or the file when
/// any of that fails (startup errors may throw). `metrics` must outlive the store. The store's
/// destructor stops accepting operations, finishes everything already queued (running its
/// completions), joins its threads and closes the database; it must not run on a store thread
/// (from a completion).
std::unique_ptr<Store> open_sqlite_store(const StorageConfig& config, const std::string& data_dir,
                                         core::MetricsRegistry& metrics,
                                         SqliteTestHooks hooks = {});

/// The file `open_sqlite_store` uses: `config.sqlite_file`, inside `data_dir` when relative.
std::string sqlite_path(const StorageConfig& config, const std::string& data_dir);

}  // namespace hearth::store
