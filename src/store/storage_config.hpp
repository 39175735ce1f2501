#pragma once

// The `[storage]` config section: which store the server opens (SQLite or PostgreSQL) and how it
// runs. Every key is read once, when the store opens, so every key needs a restart to change.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.hpp"

namespace hearth::store {

inline constexpr std::string_view kStorageDrivers[] = {"sqlite", "postgres"};
inline constexpr std::string_view kSynchronousLevels[] = {"full", "normal", "off"};

struct StorageConfig {
    static constexpr std::string_view kName = "storage";
    static constexpr std::string_view kDescription =
        "The durable store (mailboxes, stored logs): SQLite (a file in server.data_dir) or "
        "PostgreSQL (postgres_url), its durability and its queues.";

    std::string driver = "sqlite";           // or "postgres": several nodes share one database
    std::string sqlite_file = "hearth.db";   // relative paths are inside server.data_dir
    std::string synchronous = "full";        // an acknowledged write survives power loss
    std::int64_t busy_timeout_ms = 5'000;    // a backup or `hearth migrate` may hold a lock
    std::int64_t writer_queue_max = 10'000;  // at the bound new ones fail at once (kUnavailable)
    // ... and by the bytes they hold: 10,000 appends of 2 MiB would be 20 GiB.
    std::int64_t writer_queue_max_bytes = std::int64_t{64} << 20;
    std::int64_t max_batch = 1'000;  // group commit: writes per transaction at most
    std::int64_t reader_threads = 2;
    std::int64_t reader_queue_max = 10'000;  // at the bound new reads fail at once (kUnavailable)
    std::string postgres_url;                // libpq string or URI; required for postgres
    std::int64_t postgres_pool_size = 4;     // reader connections, each with its own thread

    template <class V>
    void visit(V& v) {
        v("driver", driver,
          {.help = "Store implementation: sqlite (one node, no setup: a file in server.data_dir) "
                   "or postgres (a PostgreSQL server at postgres_url, which several nodes may "
                   "share).",
           .restart = true,
           .choices = kStorageDrivers});
        v("sqlite_file", sqlite_file,
          {.help = "SQLite database file; a relative path is inside server.data_dir.",
           .restart = true});
        v("synchronous", synchronous,
          {.help = "full: a write is acknowledged once it survives power loss; normal: once it "
                   "survives a crash of the process (faster, may lose the last writes on power "
                   "loss); off: never flushes, and power loss may corrupt the database (tests "
                   "only). PostgreSQL: full keeps the server's synchronous_commit, normal and off "
                   "set it to off for Hearth's writes.",
           .restart = true,
           .choices = kSynchronousLevels});
        v("busy_timeout_ms", busy_timeout_ms,
          {.help = "How long a store thread waits for a lock held by another process (a backup, "
                   "`hearth migrate`; PostgreSQL: another session, as lock_timeout) before the "
                   "operation fails with unavailable, in milliseconds.",
           .restart = true,
           .min = 0,
           .max = 600'000});
        v("writer_queue_max", writer_queue_max,
          {.help = "Operations waiting for the writer thread (writes, and reads queued behind "
                   "them); over it new ones fail at once with unavailable (nothing is done).",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("writer_queue_max_bytes", writer_queue_max_bytes,
          {.help = "Bytes (mailbox keys and bodies, log entries) of the operations waiting for or "
                   "run by the writer thread; over it new ones fail at once with unavailable "
                   "(nothing is done). One operation is always taken when the writer holds "
                   "nothing, whatever its size.",
           .restart = true,
           .min = 65'536,
           .max = std::int64_t{1} << 40});
        v("max_batch", max_batch,
          {.help = "Most writes committed in one transaction (group commit): queued writes share "
                   "one commit and one disk flush.",
           .restart = true,
           .min = 1,
           .max = 100'000});
        v("reader_threads", reader_threads,
          {.help = "SQLite: threads (each with its own connection) that run reads concurrently "
                   "with the writer.",
           .restart = true,
           .min = 1,
           .max = 64});
        v("reader_queue_max", reader_queue_max,
          {.help = "Reads waiting for a reader thread; over it new reads fail at once with "
                   "unavailable.",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("postgres_url", postgres_url,
          {.help = "PostgreSQL: the database, as a libpq connection string (\"host=db "
                   "dbname=hearth user=hearth\") or URI (\"postgresql://hearth@db:5432/hearth\"); "
                   "required when driver = \"postgres\". Logs show it with the password masked; "
                   "the password may also come from PGPASSWORD or ~/.pgpass.",
           .restart = true});
        v("postgres_pool_size", postgres_pool_size,
          {.help = "PostgreSQL: reader connections (each with its own thread) that run reads "
                   "concurrently with the writer's connection; the pool is these plus one.",
           .restart = true,
           .min = 1,
           .max = 64});
    }

    void validate(core::ConfigErrors& errors) const {
        if (driver == "postgres" && postgres_url.empty()) {
            errors.emplace_back(
                "storage.postgres_url: required when storage.driver = \"postgres\"");
        }
        if (sqlite_file.empty()) {
            errors.emplace_back("storage.sqlite_file: must not be empty");
        } else if (sqlite_file == ":memory:" || sqlite_file.starts_with("file:")) {
            // A store that forgets everything on restart would break the durability promise.
            errors.emplace_back("storage.sqlite_file: must be a file path, got \"" + sqlite_file +
                                "\"");
        } else if (sqlite_file.back() == '/') {
            errors.emplace_back("storage.sqlite_file: must name a file, not a directory, got \"" +
                                sqlite_file + "\"");
        }
    }

    bool operator==(const StorageConfig&) const = default;
};

}  // namespace hearth::store
