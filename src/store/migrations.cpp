#include "store/migrations.hpp"
#include <stdexcept>

#include <sqlite3.h>

namespace hearth::store {
namespace {

// Every migration here has its PostgreSQL twin, same version and name, in
// postgres/postgres_migrations.cpp: change both.

// Migration 1: mailboxes. `seq` is AUTOINCREMENT so that a seq is never reused after the newest
// entry is deleted: clients acknowledge by seq, and a reused one would acknowledge the wrong
// message. `mailbox_depth` counts the entries of each key, kept exact by triggers (also when an
// operator edits the table by hand), so that `depth` and the bound cost one lookup instead of a
// count over the mailbox; a key's row disappears with its last entry, so the table stays as small
// as the set of non-empty mailboxes.
constexpr std::string_view kMailboxesSql = R"sql(
CREATE TABLE mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at INTEGER NOT NULL -- Unix time in milliseconds
);
CREATE INDEX mailbox_key_seq ON mailbox (key, seq);
CREATE TABLE mailbox_depth (
    key TEXT PRIMARY KEY,
    depth INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER mailbox_depth_insert AFTER INSERT ON mailbox BEGIN
    INSERT INTO mailbox_depth (key, depth) VALUES (NEW.key, 1)
        ON CONFLICT (key) DO UPDATE SET depth = depth + 1;
END;
CREATE TRIGGER mailbox_depth_delete AFTER DELETE ON mailbox BEGIN
    UPDATE mailbox_depth SET depth = depth - 1 WHERE key = OLD.key;
    DELETE FROM mailbox_depth WHERE key = OLD.key AND depth <= 0;
END;
CREATE TRIGGER mailbox_depth_rekey AFTER UPDATE OF key ON mailbox
    WHEN NEW.key IS NOT OLD.key BEGIN
    UPDATE mailbox_depth SET depth = depth - 1 WHERE key = OLD.key;
    DELETE FROM mailbox_depth WHERE key = OLD.key AND depth <= 0;
    INSERT INTO mailbox_depth (key, depth) VALUES (NEW.key, 1)
        ON CONFLICT (key) DO UPDATE SET depth = depth + 1;
END;
)sql";

// Migration 2: stored log entries (docs/logs.md). `id` is AUTOINCREMENT so that a query cursor
// ("entries before id N") never points at a reused id after pruning. The filter columns are
// copied out of the JSON body when stored; (room, id) and (user, id) serve the filtered queries
// newest first, server_time serves the time retention. `log_count` holds the number of rows, kept
// exact by triggers, so that the max_rows bound costs one lookup instead of a count.
constexpr std::string_view kLogsSql = R"sql(
CREATE TABLE log_entry (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    server_time INTEGER NOT NULL, -- Unix time in milliseconds
    room TEXT NOT NULL,
    user TEXT NOT NULL,
    level TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX log_entry_room_id ON log_entry (room, id);
CREATE INDEX log_entry_user_id ON log_entry (user, id);
CREATE INDEX log_entry_server_time ON log_entry (server_time);
CREATE TABLE log_count (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    rows INTEGER NOT NULL
);
INSERT INTO log_count (one, rows) VALUES (1, 0);
CREATE TRIGGER log_count_insert AFTER INSERT ON log_entry BEGIN
    UPDATE log_count SET rows = rows + 1 WHERE one = 1;
END;
CREATE TRIGGER log_count_delete AFTER DELETE ON log_entry BEGIN
    UPDATE log_count SET rows = rows - 1 WHERE one = 1;
END;
)sql";

// Migration 3: accounts, tokens and the audit log (include/hearth/account_store.hpp). Usernames
// and emails are unique case-insensitively through their *_key columns, which the store fills with
// the ASCII-folded value (the same folding on every backend; SQL lower() differs between them).
// Roles and scopes are comma-separated (their names never hold a comma). Tokens are kept as
// SHA-256 digests only; deleting an account deletes its tokens (the writer enables foreign keys).
// Times are Unix milliseconds.
constexpr std::string_view kAccountsSql = R"sql(
CREATE TABLE account (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    email TEXT,
    email_key TEXT UNIQUE,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    guest INTEGER NOT NULL DEFAULT 0,
    roles TEXT NOT NULL,
    external_id TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    last_login_at INTEGER
);
CREATE TABLE token (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    kind INTEGER NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX token_account_id ON token (account_id, id);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    peer TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_actor_id ON audit (actor, id);
CREATE INDEX audit_action_id ON audit (action, id);
)sql";

// Migration 4: the bytes of stored log entries (their body, UTF-8), kept exact by the log_count
// triggers beside the row count, so that the [logs] retention_max_bytes bound costs one lookup.
// Existing rows are summed once.
constexpr std::string_view kLogBytesSql = R"sql(
ALTER TABLE log_count ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE log_count
    SET bytes = (SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM log_entry)
    WHERE one = 1;
DROP TRIGGER log_count_insert;
DROP TRIGGER log_count_delete;
CREATE TRIGGER log_count_insert AFTER INSERT ON log_entry BEGIN
    UPDATE log_count SET rows = rows + 1, bytes = bytes + length(CAST(NEW.body AS BLOB))
        WHERE one = 1;
END;
CREATE TRIGGER log_count_delete AFTER DELETE ON log_entry BEGIN
    UPDATE log_count SET rows = rows - 1, bytes = bytes - length(CAST(OLD.body AS BLOB))
        WHERE one = 1;
END;
)sql";

// Migration 5: mailbox quotas and lifetimes (include/hearth/store.hpp, MailboxLimits).
// `expires_at` (Unix milliseconds, NULL: never) is set by `append`; reads skip expired entries and
// `expire` deletes them through the partial index, which holds only entries that can expire.
// `mailbox_usage` counts, per namespace (a key up to and including its first ':', as bytes: a key
// without one is in ''), the non-empty mailboxes and the bytes of their entries (key and body),
// kept exact by triggers like mailbox_depth, so that a quota check costs one lookup. The
// mailboxes are counted by the rows of mailbox_depth that appear and disappear. Existing entries
// are counted once here; namespaces' rows stay when they empty (there are a handful).
constexpr std::string_view kMailboxQuotasSql = R"sql(
ALTER TABLE mailbox ADD COLUMN expires_at INTEGER;
CREATE INDEX mailbox_expires_at ON mailbox (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE mailbox_usage (
    prefix TEXT PRIMARY KEY,
    mailboxes INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO mailbox_usage (prefix, mailboxes, bytes)
    SELECT CAST(substr(CAST(key AS BLOB), 1, instr(CAST(key AS BLOB), X'3A')) AS TEXT),
           count(DISTINCT key),
           sum(length(CAST(key AS BLOB)) + length(CAST(body AS BLOB)))
    FROM mailbox GROUP BY 1;
CREATE TRIGGER mailbox_usage_count AFTER INSERT ON mailbox_depth BEGIN
    INSERT INTO mailbox_usage (prefix, mailboxes, bytes) VALUES (
        CAST(substr(CAST(NEW.key AS BLOB), 1, instr(CAST(NEW.key AS BLOB), X'3A')) AS TEXT),
        1, 0)
        ON CONFLICT (prefix) DO UPDATE SET mailboxes = mailboxes + 1;
END;
CREATE TRIGGER mailbox_usage_uncount AFTER DELETE ON mailbox_depth BEGIN
    UPDATE mailbox_usage SET mailboxes = mailboxes - 1 WHERE prefix =
        CAST(substr(CAST(OLD.key AS BLOB), 1, instr(CAST(OLD.key AS BLOB), X'3A')) AS TEXT);
END;
CREATE TRIGGER mailbox_bytes_insert AFTER INSERT ON mailbox BEGIN
    INSERT INTO mailbox_usage (prefix, mailboxes, bytes) VALUES (
        CAST(substr(CAST(NEW.key AS BLOB), 1, instr(CAST(NEW.key AS BLOB), X'3A')) AS TEXT),
        0, length(CAST(NEW.key AS BLOB)) + length(CAST(NEW.body AS BLOB)))
        ON CONFLICT (prefix) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER mailbox_bytes_delete AFTER DELETE ON mailbox BEGIN
    UPDATE mailbox_usage
        SET bytes = bytes - length(CAST(OLD.key AS BLOB)) - length(CAST(OLD.body AS BLOB))
        WHERE prefix =
            CAST(substr(CAST(OLD.key AS BLOB), 1, instr(CAST(OLD.key AS BLOB), X'3A')) AS TEXT);
END;
CREATE TRIGGER mailbox_bytes_update AFTER UPDATE OF key, body ON mailbox BEGIN
    UPDATE mailbox_usage
        SET bytes = bytes - length(CAST(OLD.key AS BLOB)) - length(CAST(OLD.body AS BLOB))
        WHERE prefix =
            CAST(substr(CAST(OLD.key AS BLOB), 1, instr(CAST(OLD.key AS BLOB), X'3A')) AS TEXT);
    INSERT INTO mailbox_usage (prefix, mailboxes, bytes) VALUES (
        CAST(substr(CAST(NEW.key AS BLOB), 1, instr(CAST(NEW.key AS BLOB), X'3A')) AS TEXT),
        0, length(CAST(NEW.key AS BLOB)) + length(CAST(NEW.body AS BLOB)))
        ON CONFLICT (prefix) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
)sql";

// Migration 6: game characters (include/hearth/character_store.hpp). `name_fold` is the
// ASCII-folded name (listing by prefix); `name_key` is the same while the character holds its
// name (alive, or deleted within its grace period) and is unique: it makes the case-insensitive
// uniqueness exact across concurrent writers. A deleted character's name_key is set to NULL (the
// name released) by the next create, rename or restore that wants the name once its grace period
// is over, so no sweep is needed. Stats and looks are JSON objects, the inventory a JSON array of
// [slot, item, count]; coordinates are REAL; times Unix milliseconds. Deleting an account deletes
// its characters.
constexpr std::string_view kCharactersSql = R"sql(
CREATE TABLE game_character (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_fold TEXT NOT NULL,
    name_key TEXT UNIQUE,
    level INTEGER NOT NULL,
    experience INTEGER NOT NULL,
    money INTEGER NOT NULL,
    stats TEXT NOT NULL,
    looks TEXT NOT NULL,
    inventory TEXT NOT NULL,
    zone INTEGER NOT NULL,
    x REAL NOT NULL,
    y REAL NOT NULL,
    z REAL NOT NULL,
    heading REAL NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_login_at INTEGER,
    deleted_at INTEGER
);
CREATE INDEX game_character_account_id ON game_character (account_id, id);
CREATE INDEX game_character_name_fold ON game_character (name_fold);
)sql";

// Append new migrations here: {7, "name", R"sql(...)sql"}, ... and the same version in
// postgres/postgres_migrations.cpp.
constexpr Migration kMigrations[] = {
    {1, "mailboxes", kMailboxesSql},
    {2, "logs", kLogsSql},
    {3, "accounts", kAccountsSql},
    {4, "log_bytes", kLogBytesSql},
    {5, "mailbox_quotas", kMailboxQuotasSql},
    {6, "characters", kCharactersSql},
};

// How long `hearth migrate` waits for a running server's write lock.
constexpr int kBusyTimeoutMs = 5'000;

/// A connection used only here, on the calling thread.
class Connection {
public:
    explicit Connection(const std::string& path) : path_(path) {
        const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                           SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
                                       nullptr);
        if (rc != SQLITE_OK) {
            // sqlite3_open_v2 may hand back a handle even on failure; it must still be closed.
            std::string cause = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            fail("cannot open the database: " + cause);
        }
        sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    }
    ~Connection() { sqlite3_close(db_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Runs `sql` (one or more statements); on error returns SQLite's message.
    std::string exec(std::string_view sql) {
        const std::string text(sql);
        char* message = nullptr;
        const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
        if (rc == SQLITE_OK) {
            return {};
        }
        std::string out = message != nullptr ? message : sqlite3_errstr(rc);
        sqlite3_free(message);
        return out + " (" + sqlite3_errstr(rc) + ")";
    }

    void exec_or_fail(std::string_view sql, std::string_view what) {
        if (auto error = exec(sql); !error.empty()) {
            fail(std::string(what) + ": " + error);
        }
    }

    /// The first column of the first row of `sql`, as text (empty when there is no row).
    std::string query_text(const char* sql, std::string_view what) {
        sqlite3_stmt* stmt = nullptr;
        int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
        std::string out;
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(stmt);
            if (rc == SQLITE_ROW) {
                const auto* text = sqlite3_column_text(stmt, 0);
                out = text != nullptr ? reinterpret_cast<const char*>(text) : "";
                rc = SQLITE_OK;
            } else if (rc == SQLITE_DONE) {
                rc = SQLITE_OK;
            }
        }
        sqlite3_finalize(stmt);
        if (rc != SQLITE_OK) {
            fail(std::string(what) + ": " + sqlite3_errmsg(db_) + " (" + sqlite3_errstr(rc) + ")");
        }
        return out;
    }

    int user_version() {
        return std::stoi(query_text("PRAGMA user_version", "reading the schema version"));
    }

    bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

    [[noreturn]] void fail(const std::string& message) const {
        throw std::runtime_error(path_ + ": " + message);
    }

private:
    std::string path_;
    sqlite3* db_ = nullptr;
};

}  // namespace

void check_migration_numbering(std::span<const Migration> migrations) {
    for (std::size_t i = 0; i < migrations.size(); ++i) {
        if (migrations[i].version != static_cast<int>(i) + 1) {
            throw std::logic_error("migration " + std::string(migrations[i].name) +
                                   " has version " + std::to_string(migrations[i].version) +
                                   ", expected " + std::to_string(i + 1));
        }
    }
}

namespace {

std::string describe(const Migration& m) {
    return std::to_string(m.version) + " " + std::string(m.name);
}

}  // namespace

std::span<const Migration> sqlite_migrations() noexcept {
    return kMigrations;
}

int latest_sqlite_schema_version() noexcept {
    return kMigrations[std::size(kMigrations) - 1].version;
}

std::string MigrationReport::summary() const {
    if (applied.empty()) {
        return path + ": schema version " + std::to_string(to_version) + ", up to date";
    }
    std::string out = path + ": schema version " + std::to_string(from_version) + " -> " +
                      std::to_string(to_version) + " (applied: ";
    for (std::size_t i = 0; i < applied.size(); ++i) {
        out += (i > 0 ? ", " : "") + applied[i];
    }
    return out + ")";
}

MigrationReport migrate_sqlite(const std::string& path) {
    return migrate_sqlite(path, kMigrations);
}

MigrationReport migrate_sqlite(const std::string& path, std::span<const Migration> migrations) {
    check_migration_numbering(migrations);
    const int latest = migrations.empty() ? 0 : migrations.back().version;

    Connection db(path);
    // WAL is a property of the file: set once here, every later connection inherits it. The
    // first statement is also where a file that is not a database is noticed.
    const std::string mode = db.query_text("PRAGMA journal_mode = WAL", "enabling WAL journaling");
    if (mode != "wal") {
        db.fail("cannot enable WAL journaling (journal mode stays \"" + mode + "\")");
    }
    db.exec_or_fail("PRAGMA foreign_keys = ON", "enabling foreign keys");

    MigrationReport report;
    report.path = path;
    report.from_version = db.user_version();
    report.to_version = report.from_version;
    if (report.from_version > latest) {
        db.fail("schema version " + std::to_string(report.from_version) +
                " is newer than this build knows (" + std::to_string(latest) +
                "): the database was written by a newer Hearth");
    }
    for (const Migration& m : migrations) {
        if (m.version <= report.to_version) {
            continue;
        }
        // IMMEDIATE takes the write lock first, so two processes migrating at once serialise;
        // the version is read again under the lock in case the other one got there first.
        db.exec_or_fail("BEGIN IMMEDIATE", "starting migration " + describe(m));
        const int current = db.user_version();
        if (current >= m.version) {
            db.exec_or_fail("COMMIT", "ending migration " + describe(m));
            report.to_version = current;
            continue;
        }
        std::string error = db.exec(m.sql);
        if (error.empty()) {
            error = db.exec("PRAGMA user_version = " + std::to_string(m.version));
        }
        if (error.empty()) {
            error = db.exec("COMMIT");
        }
        if (!error.empty()) {
            if (db.in_transaction()) {
                (void)db.exec("ROLLBACK");
            }
            db.fail("migration " + describe(m) + " failed: " + error +
                    "; the database stays at schema version " + std::to_string(current));
        }
        report.to_version = m.version;
        report.applied.push_back(describe(m));
    }
    return report;
}

}  // namespace hearth::store
