#pragma once

// Versioned schema migrations of the SQLite store, embedded in the binary as SQL text.
//
// The schema version is SQLite's `PRAGMA user_version` (0 in a new file): it lives in the
// database header, so it changes in the same transaction as the migration that sets it and a
// half-applied migration cannot exist. Each migration runs in its own transaction, in version
// order, at startup (`open_sqlite_store`) and from `hearth migrate`.
//
// To change the schema (accounts, tokens, ...), append a Migration to the list in migrations.cpp
// with the next version number, AND the same version, with the same name, in PostgreSQL's SQL to
// the list in postgres/postgres_migrations.cpp: both backends have the same numbered versions (a
// test compares the two lists). Never edit a migration that has shipped: databases that already
// ran it would not run it again.

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::store {

/// One step of the schema.
struct Migration {
    int version = 0;        // the user_version after it: 1, 2, 3, ... without gaps
    std::string_view name;  // a few words, shown in reports ("mailboxes")
    std::string_view sql;   // one or more statements, run in one transaction
};

/// Hearth's migrations, oldest first.
std::span<const Migration> sqlite_migrations() noexcept;

/// The version a database has after every migration of this build.
int latest_sqlite_schema_version() noexcept;

/// What `migrate_sqlite` (or `migrate_postgres`) did.
struct MigrationReport {
    std::string path;  // the SQLite file, or the PostgreSQL URL without its password
    int from_version = 0;
    int to_version = 0;
    std::vector<std::string> applied;  // "1 mailboxes", ... in the order they ran; empty: no-op

    /// One line for the log and for `hearth migrate`, e.g.
    /// "data/hearth.db: schema version 0 -> 1 (applied: 1 mailboxes)" or
    /// "data/hearth.db: schema version 1, up to date".
    std::string summary() const;
};

/// Brings the database at `path` to the latest schema: creates the file if it does not exist,
/// switches it to WAL journaling (persistent in the file), then applies every migration newer
/// than its version, each in one transaction. Safe to run again (a no-op) and safe while a server
/// has the file open (it waits up to 5 s for the write lock). Throws std::runtime_error whose
/// message names the file and the cause: the file cannot be opened or is not a database, a
/// migration failed (the database stays at the version before it), or the database was written
/// by a newer Hearth. Runs on the calling thread and blocks: call it at startup or from the CLI.
MigrationReport migrate_sqlite(const std::string& path);

/// Throws std::logic_error unless `migrations` are numbered 1, 2, ... without gaps.
void check_migration_numbering(std::span<const Migration> migrations);

/// Same, with another list (tests; the list must be numbered 1, 2, ... without gaps, or
/// std::logic_error).
MigrationReport migrate_sqlite(const std::string& path, std::span<const Migration> migrations);

}  // namespace hearth::store
