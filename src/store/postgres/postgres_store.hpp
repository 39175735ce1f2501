#pragma once

// The PostgreSQL implementation of the store (include/hearth/store.hpp), on libpq.
//
// Connections (the pool): one writer connection and `postgres_pool_size` reader connections, each
// used by one thread of the shared StoreExecutor (store/executor.hpp), so the queues, group
// commit and order rules are exactly the SQLite store's: the writer takes everything queued (up
// to `max_batch`), runs it in ONE transaction, commits, then runs the completions in order; a
// read goes to a reader connection when the writer has nothing pending (READ COMMITTED: it sees
// every commit before it), otherwise it runs inside the writer's next transaction at its place
// among the writes. One writer per node keeps "a read sees every write submitted before it"
// without any locking in the database, and group commit makes it fast enough: a batch costs one
// commit (one WAL flush on the server) however many writes it holds. Every statement is prepared
// once per connection (PQprepare), on its first use there. The queries are the repositories'
// (store/repo/); this file implements the SQL dialect layer (store/sql/sql.hpp) on libpq.
//
// Failures: a broken connection (the server restarted or went away) is reconnected by the thread
// that owns it, on its next use, at most once per `probe_interval` after a failed attempt. A batch
// or read that found its connection broken before anything was committed runs once more on a new
// connection (a server restart costs no failed operation when the server is back); otherwise it
// fails with kStorageFailure (kind "connection"), the store turns unhealthy, the cause is logged
// once per run of failures, and the idle writer probes (reconnect + a one-row write) every
// `probe_interval` until the database is back. Lock and serialization conflicts (lock_timeout =
// `busy_timeout_ms`, deadlocks) give kUnavailable (kind "busy") and do not make it unhealthy.
//
// Log lines and exceptions name the database by its URL with the password masked.

#include <memory>
#include <string>

#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "store/executor.hpp"
#include "store/storage_config.hpp"

namespace hearth::store {

/// Opens the PostgreSQL store described by `config` (`postgres_url`, `postgres_pool_size`, the
/// queue and batch keys, `busy_timeout_ms` as lock_timeout, `synchronous` = normal/off as
/// synchronous_commit = off): applies pending migrations (migrate_postgres), connects the writer
/// and the readers, prepares their statements and starts their threads. Throws
/// std::runtime_error naming the database (URL without password) and libpq's cause (which names
/// the host and port) when any of that fails. `metrics` must outlive the store. The destructor
/// stops accepting operations, finishes everything queued (running its completions), joins its
/// threads and closes the connections; it must not run on a store thread.
std::unique_ptr<Store> open_postgres_store(const StorageConfig& config,
                                           core::MetricsRegistry& metrics,
                                           StoreTestHooks hooks = {});

}  // namespace hearth::store
