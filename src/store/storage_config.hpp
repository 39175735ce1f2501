#pragma once

// The `[storage]` config section: which store the server opens and how the SQLite store runs.
// Every key is read once, when the store opens, so every key needs a restart to change.

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
        "The durable store (mailboxes): the SQLite file in server.data_dir, its durability and "
        "its queues.";

    std::string driver = "sqlite";           // postgres comes with the scale-out issue
    std::string sqlite_file = "hearth.db";   // relative paths are inside server.data_dir
    std::string synchronous = "full";        // an acknowledged write survives power loss
    std::int64_t busy_timeout_ms = 5'000;    // a backup or `hearth migrate` may hold a lock
    std::int64_t writer_queue_max = 10'000;  // at the bound new ones fail at once (kUnavailable)
    std::int64_t max_batch = 1'000;          // group commit: writes per transaction at most
    std::int64_t reader_threads = 2;
    std::int64_t reader_queue_max = 10'000;  // at the bound new reads fail at once (kUnavailable)

    template <class V>
    void visit(V& v) {
        v("driver", driver,
          {.help = "Store implementation: sqlite (one node, no setup); postgres is not available "
                   "yet.",
           .restart = true,
           .choices = kStorageDrivers});
        v("sqlite_file", sqlite_file,
          {.help = "SQLite database file; a relative path is inside server.data_dir.",
           .restart = true});
        v("synchronous", synchronous,
          {.help = "full: a write is acknowledged once it survives power loss; normal: once it "
                   "survives a crash of the process (faster, may lose the last writes on power "
                   "loss); off: never flushes, and power loss may corrupt the database (tests "
                   "only).",
           .restart = true,
           .choices = kSynchronousLevels});
        v("busy_timeout_ms", busy_timeout_ms,
          {.help = "How long a store thread waits for a lock held by another process (a backup, "
                   "`hearth migrate`) before the operation fails with unavailable, in "
                   "milliseconds.",
           .restart = true,
           .min = 0,
           .max = 600'000});
        v("writer_queue_max", writer_queue_max,
          {.help = "Operations waiting for the writer thread (writes, and reads queued behind "
                   "them); over it new ones fail at once with unavailable (nothing is done).",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
        v("max_batch", max_batch,
          {.help = "Most writes committed in one transaction (group commit): queued writes share "
                   "one commit and one disk flush.",
           .restart = true,
           .min = 1,
           .max = 100'000});
        v("reader_threads", reader_threads,
          {.help = "Threads (each with its own connection) that run reads concurrently with the "
                   "writer.",
           .restart = true,
           .min = 1,
           .max = 64});
        v("reader_queue_max", reader_queue_max,
          {.help = "Reads waiting for a reader thread; over it new reads fail at once with "
                   "unavailable.",
           .restart = true,
           .min = 1,
           .max = 10'000'000});
    }

    void validate(core::ConfigErrors& errors) const {
        if (driver == "postgres") {
            errors.emplace_back("storage.driver: postgres is not available yet");
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
