#pragma once

// Versioned schema migrations of the PostgreSQL store: the same numbered versions as SQLite's
// (store/migrations.hpp: 1 mailboxes, 2 logs, ...) in PostgreSQL's SQL. A new migration is added
// to both lists with the same version and name.
//
// The version lives in a one-row table, `hearth_schema (one, version)`, created by the first run.
// Every migration runs in its own transaction together with the update of that row, under
// `pg_advisory_xact_lock`, and reads the version again under the lock: two servers starting
// together (or `hearth migrate` next to a running server) serialise, and each migration is
// applied exactly once, fully or not at all.

#include <span>
#include <string>

#include "store/migrations.hpp"

namespace hearth::store {

/// Hearth's PostgreSQL migrations, oldest first; versions and names match sqlite_migrations().
std::span<const Migration> postgres_migrations() noexcept;

/// The version a database has after every migration of this build.
int latest_postgres_schema_version() noexcept;

/// Brings the database at `url` (a libpq connection string or URI) to the latest schema. Safe to
/// run again (a no-op) and concurrently (from other threads, processes or servers). The report's
/// `path` is the URL with its password masked. Throws std::runtime_error naming the database (no
/// password) and the cause: it cannot be reached (libpq's message, with the host and port), a
/// migration failed (the database stays at the version before it), or the database was written
/// by a newer Hearth. Blocks: call it at startup or from the CLI.
MigrationReport migrate_postgres(const std::string& url);

/// Same, with another list (tests; numbered 1, 2, ... without gaps, or std::logic_error).
MigrationReport migrate_postgres(const std::string& url, std::span<const Migration> migrations);

}  // namespace hearth::store
