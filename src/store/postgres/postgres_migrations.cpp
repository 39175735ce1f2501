#include "store/postgres/postgres_migrations.hpp"
#include <stdexcept>

#include "pg/pg.hpp"

namespace hearth::store {
namespace {

// Each migration here is the twin of the one with the same version in store/migrations.cpp
// (SQLite): same tables, columns and meaning, in PostgreSQL's types. Differences, and why:
//  - seq/id are identity columns (a sequence): increasing and never reused, like AUTOINCREMENT.
//  - mailbox keys and bodies are BYTEA: keys compare as bytes (SQLite's BINARY collation) and
//    may hold any byte; TEXT would compare by collation and refuse NUL and invalid UTF-8.
//  - The counters (mailbox_depth, log_count) are kept by plpgsql triggers. Inserts and deletes
//    use statement-level triggers with transition tables, so a bulk delete costs one update per
//    key rather than one per row; TRUNCATE resets them too.
//  - "user" is a reserved word in PostgreSQL, so that column is quoted.

// Migration 1: mailboxes (see kMailboxesSql in store/migrations.cpp).
constexpr std::string_view kMailboxesSql = R"sql(
CREATE TABLE mailbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key BYTEA NOT NULL,
    body BYTEA NOT NULL,
    stored_at BIGINT NOT NULL -- Unix time in milliseconds
);
CREATE INDEX mailbox_key_seq ON mailbox (key, seq);
CREATE TABLE mailbox_depth (
    key BYTEA PRIMARY KEY,
    depth BIGINT NOT NULL
);
CREATE FUNCTION mailbox_depth_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_depth AS d (key, depth)
        SELECT key, count(*) FROM new_rows GROUP BY key ORDER BY key
        ON CONFLICT (key) DO UPDATE SET depth = d.depth + EXCLUDED.depth;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_depth_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_depth AS d SET depth = d.depth - gone.n
        FROM (SELECT key, count(*) AS n FROM old_rows GROUP BY key) AS gone
        WHERE d.key = gone.key;
    DELETE FROM mailbox_depth AS d USING (SELECT DISTINCT key FROM old_rows) AS gone
        WHERE d.key = gone.key AND d.depth <= 0;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_depth_rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_depth SET depth = depth - 1 WHERE key = OLD.key;
    DELETE FROM mailbox_depth WHERE key = OLD.key AND depth <= 0;
    INSERT INTO mailbox_depth AS d (key, depth) VALUES (NEW.key, 1)
        ON CONFLICT (key) DO UPDATE SET depth = d.depth + 1;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_depth_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mailbox_depth;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_depth_insert AFTER INSERT ON mailbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailbox_depth_insert();
CREATE TRIGGER mailbox_depth_delete AFTER DELETE ON mailbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailbox_depth_delete();
CREATE TRIGGER mailbox_depth_rekey AFTER UPDATE OF key ON mailbox
    FOR EACH ROW WHEN (NEW.key IS DISTINCT FROM OLD.key) EXECUTE FUNCTION mailbox_depth_rekey();
CREATE TRIGGER mailbox_depth_truncate AFTER TRUNCATE ON mailbox
    FOR EACH STATEMENT EXECUTE FUNCTION mailbox_depth_truncate();
)sql";

// Migration 2: stored log entries (see kLogsSql in store/migrations.cpp).
constexpr std::string_view kLogsSql = R"sql(
CREATE TABLE log_entry (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_time BIGINT NOT NULL, -- Unix time in milliseconds
    room TEXT NOT NULL,
    "user" TEXT NOT NULL,
    level TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX log_entry_room_id ON log_entry (room, id);
CREATE INDEX log_entry_user_id ON log_entry ("user", id);
CREATE INDEX log_entry_server_time ON log_entry (server_time);
CREATE TABLE log_count (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    rows BIGINT NOT NULL
);
INSERT INTO log_count (one, rows) VALUES (1, 0);
CREATE FUNCTION log_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = rows + (SELECT count(*) FROM new_rows) WHERE one = 1;
    RETURN NULL;
END $$;
CREATE FUNCTION log_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = rows - (SELECT count(*) FROM old_rows) WHERE one = 1;
    RETURN NULL;
END $$;
CREATE FUNCTION log_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = 0 WHERE one = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER log_count_insert AFTER INSERT ON log_entry
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_count_insert();
CREATE TRIGGER log_count_delete AFTER DELETE ON log_entry
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION log_count_delete();
CREATE TRIGGER log_count_truncate AFTER TRUNCATE ON log_entry
    FOR EACH STATEMENT EXECUTE FUNCTION log_count_truncate();
)sql";

// Migration 3: accounts, tokens and the audit log (see kAccountsSql in store/migrations.cpp).
// The *_key columns hold the ASCII-folded username and email, folded by the store (lower() would
// fold more than ASCII, and differently from SQLite's); they compare bytewise (COLLATE "C"), like
// SQLite's BINARY collation. Flags are BOOLEAN and the token kind SMALLINT where SQLite has
// INTEGER. Identity columns, like AUTOINCREMENT, never reuse an id.
constexpr std::string_view kAccountsSql = R"sql(
CREATE TABLE account (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT COLLATE "C" NOT NULL UNIQUE,
    email TEXT,
    email_key TEXT COLLATE "C" UNIQUE,
    password_hash TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    guest BOOLEAN NOT NULL DEFAULT FALSE,
    roles TEXT NOT NULL, -- comma-separated
    external_id TEXT UNIQUE,
    created_at BIGINT NOT NULL, -- Unix time in milliseconds
    last_login_at BIGINT
);
CREATE TABLE token (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    kind SMALLINT NOT NULL, -- 0 session, 1 API key, 2 guest
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE, -- SHA-256 of the token, hex
    scopes TEXT NOT NULL, -- comma-separated
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX token_account_id ON token (account_id, id);
CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    peer TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_actor_id ON audit (actor, id);
CREATE INDEX audit_action_id ON audit (action, id);
)sql";

// Migration 4: the bytes of stored log entries (see kLogBytesSql in store/migrations.cpp).
constexpr std::string_view kLogBytesSql = R"sql(
ALTER TABLE log_count ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
UPDATE log_count
    SET bytes = (SELECT coalesce(sum(octet_length(body)), 0) FROM log_entry)
    WHERE one = 1;
CREATE OR REPLACE FUNCTION log_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = rows + (SELECT count(*) FROM new_rows),
        bytes = bytes + (SELECT coalesce(sum(octet_length(body)), 0) FROM new_rows)
        WHERE one = 1;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION log_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = rows - (SELECT count(*) FROM old_rows),
        bytes = bytes - (SELECT coalesce(sum(octet_length(body)), 0) FROM old_rows)
        WHERE one = 1;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION log_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE log_count SET rows = 0, bytes = 0 WHERE one = 1;
    RETURN NULL;
END $$;
)sql";

// Migration 5: mailbox quotas and lifetimes (see kMailboxQuotasSql in store/migrations.cpp).
// mailbox_prefix() is a key's namespace (up to and including its first ':', '' without one). The
// bytes are kept by statement-level triggers named mailbox_bytes_* so that they fire before the
// mailbox_depth_* ones (PostgreSQL fires a table's triggers in name order): every transaction
// then locks a namespace's usage row before any mailbox_depth row, and append locks it first of
// all (FOR UPDATE, for an exact quota across nodes), so two nodes never wait on each other in
// opposite orders over them. The mailboxes are counted by row triggers on mailbox_depth, which
// fire only for rows really inserted or deleted (not for the upsert's updates).
constexpr std::string_view kMailboxQuotasSql = R"sql(
ALTER TABLE mailbox ADD COLUMN expires_at BIGINT; -- Unix time in milliseconds; NULL: never
CREATE INDEX mailbox_expires_at ON mailbox (expires_at) WHERE expires_at IS NOT NULL;
CREATE FUNCTION mailbox_prefix(key BYTEA) RETURNS BYTEA LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT substring(key FROM 1 FOR position('\x3a'::bytea IN key))
$$;
CREATE TABLE mailbox_usage (
    prefix BYTEA PRIMARY KEY,
    mailboxes BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
INSERT INTO mailbox_usage (prefix, mailboxes, bytes)
    SELECT mailbox_prefix(key), count(DISTINCT key), sum(octet_length(key) + octet_length(body))
    FROM mailbox GROUP BY 1;
CREATE FUNCTION mailbox_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_usage AS u (prefix, mailboxes, bytes)
        VALUES (mailbox_prefix(NEW.key), 1, 0)
        ON CONFLICT (prefix) DO UPDATE SET mailboxes = u.mailboxes + 1;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_usage_uncount() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_usage SET mailboxes = mailboxes - 1 WHERE prefix = mailbox_prefix(OLD.key);
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_bytes_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_usage AS u (prefix, mailboxes, bytes)
        SELECT mailbox_prefix(key), 0, sum(octet_length(key) + octet_length(body))
        FROM new_rows GROUP BY 1 ORDER BY 1
        ON CONFLICT (prefix) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_bytes_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_usage AS u SET bytes = u.bytes - gone.bytes
        FROM (SELECT mailbox_prefix(key) AS prefix,
                     sum(octet_length(key) + octet_length(body)) AS bytes
              FROM old_rows GROUP BY 1) AS gone
        WHERE u.prefix = gone.prefix;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_bytes_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_usage SET bytes = bytes - octet_length(OLD.key) - octet_length(OLD.body)
        WHERE prefix = mailbox_prefix(OLD.key);
    INSERT INTO mailbox_usage AS u (prefix, mailboxes, bytes)
        VALUES (mailbox_prefix(NEW.key), 0, octet_length(NEW.key) + octet_length(NEW.body))
        ON CONFLICT (prefix) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes;
    RETURN NULL;
END $$;
CREATE FUNCTION mailbox_bytes_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_usage SET bytes = 0;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_usage_count AFTER INSERT ON mailbox_depth
    FOR EACH ROW EXECUTE FUNCTION mailbox_usage_count();
CREATE TRIGGER mailbox_usage_uncount AFTER DELETE ON mailbox_depth
    FOR EACH ROW EXECUTE FUNCTION mailbox_usage_uncount();
CREATE TRIGGER mailbox_bytes_insert AFTER INSERT ON mailbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mailbox_bytes_insert();
CREATE TRIGGER mailbox_bytes_delete AFTER DELETE ON mailbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mailbox_bytes_delete();
CREATE TRIGGER mailbox_bytes_update AFTER UPDATE OF key, body ON mailbox
    FOR EACH ROW EXECUTE FUNCTION mailbox_bytes_update();
CREATE TRIGGER mailbox_bytes_truncate AFTER TRUNCATE ON mailbox
    FOR EACH STATEMENT EXECUTE FUNCTION mailbox_bytes_truncate();
)sql";

// Migration 6: game characters (see kCharactersSql in store/migrations.cpp). The name columns
// compare bytewise (COLLATE "C") like SQLite's; coordinates are DOUBLE PRECISION.
constexpr std::string_view kCharactersSql = R"sql(
CREATE TABLE game_character (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    name_fold TEXT COLLATE "C" NOT NULL,
    name_key TEXT COLLATE "C" UNIQUE, -- name_fold while the name is held; NULL once released
    level INTEGER NOT NULL,
    experience BIGINT NOT NULL,
    money BIGINT NOT NULL,
    stats TEXT NOT NULL, -- JSON object
    looks TEXT NOT NULL, -- JSON object
    inventory TEXT NOT NULL, -- JSON array of [slot, item, count]
    zone BIGINT NOT NULL,
    x DOUBLE PRECISION NOT NULL,
    y DOUBLE PRECISION NOT NULL,
    z DOUBLE PRECISION NOT NULL,
    heading DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL, -- Unix time in milliseconds
    updated_at BIGINT NOT NULL,
    last_login_at BIGINT,
    deleted_at BIGINT
);
CREATE INDEX game_character_account_id ON game_character (account_id, id);
CREATE INDEX game_character_name_fold ON game_character (name_fold);
)sql";

// Append new migrations here, with the version and name of their SQLite twin.
constexpr Migration kMigrations[] = {
    {1, "mailboxes", kMailboxesSql},
    {2, "logs", kLogsSql},
    {3, "accounts", kAccountsSql},
    {4, "log_bytes", kLogBytesSql},
    {5, "mailbox_quotas", kMailboxQuotasSql},
    {6, "characters", kCharactersSql},
};

// The advisory lock every migration transaction takes: "HEARTH" and 1, as a bigint. Any session
// of any server migrating the same database waits for it.
constexpr std::string_view kLockSql = "SELECT pg_advisory_xact_lock(5207691426489286657)";
constexpr std::string_view kCreateVersionTableSql =
    "CREATE TABLE IF NOT EXISTS hearth_schema ("
    "one INTEGER PRIMARY KEY CHECK (one = 1), version INTEGER NOT NULL)";
constexpr std::string_view kInitVersionSql =
    "INSERT INTO hearth_schema (one, version) VALUES (1, 0) ON CONFLICT (one) DO NOTHING";
constexpr std::string_view kVersionSql = "SELECT version FROM hearth_schema WHERE one = 1";

std::string describe(const Migration& m) {
    return std::to_string(m.version) + " " + std::string(m.name);
}

/// The migrating connection, on the calling thread.
class Migrator {
public:
    explicit Migrator(const std::string& url) : name_(pg::mask_url(url)) {
        std::string error;
        conn_ = pg::connect(url, error);
        if (conn_ == nullptr) {
            fail("cannot connect to the database: " + error);
        }
    }

    /// Runs `sql` (one or more statements); on error returns PostgreSQL's message.
    std::string exec(std::string_view sql) {
        pg::ResultPtr r(PQexec(conn_.get(), std::string(sql).c_str()));
        if (pg::ok(r.get())) {
            return {};
        }
        std::string message = pg::result_message(r.get(), conn_.get());
        if (const auto state = pg::sqlstate(r.get()); !state.empty()) {
            message += " (SQLSTATE " + state + ")";
        }
        return message;
    }

    void exec_or_fail(std::string_view sql, std::string_view what) {
        if (auto error = exec(sql); !error.empty()) {
            rollback();
            fail(std::string(what) + ": " + error);
        }
    }

    /// BEGIN and the lock, then the version table (created on the first run) and its version.
    int begin_locked(std::string_view what) {
        exec_or_fail("BEGIN", what);
        exec_or_fail(kLockSql, what);
        exec_or_fail(kCreateVersionTableSql, what);
        exec_or_fail(kInitVersionSql, what);
        pg::ResultPtr r(PQexecParams(conn_.get(), std::string(kVersionSql).c_str(), 0, nullptr,
                                     nullptr, nullptr, nullptr, 0));
        if (!pg::ok(r.get()) || PQntuples(r.get()) != 1) {
            const std::string error = pg::result_message(r.get(), conn_.get());
            rollback();
            fail(std::string(what) + ": reading the schema version: " + error);
        }
        return std::stoi(PQgetvalue(r.get(), 0, 0));
    }

    void rollback() {
        if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
            (void)exec("ROLLBACK");
        }
    }

    [[noreturn]] void fail(const std::string& message) const {
        throw std::runtime_error(name_ + ": " + message);
    }

    const std::string& name() const noexcept { return name_; }

private:
    std::string name_;
    pg::ConnPtr conn_;
};

}  // namespace

std::span<const Migration> postgres_migrations() noexcept {
    return kMigrations;
}

int latest_postgres_schema_version() noexcept {
    return kMigrations[std::size(kMigrations) - 1].version;
}

MigrationReport migrate_postgres(const std::string& url) {
    return migrate_postgres(url, kMigrations);
}

MigrationReport migrate_postgres(const std::string& url, std::span<const Migration> migrations) {
    check_migration_numbering(migrations);
    const int latest = migrations.empty() ? 0 : migrations.back().version;

    Migrator db(url);
    MigrationReport report;
    report.path = db.name();
    report.from_version = db.begin_locked("reading the schema version");
    db.exec_or_fail("COMMIT", "reading the schema version");
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
        // Under the lock, the version is read again: another server may have got there first.
        const std::string what = "migration " + describe(m);
        const int current = db.begin_locked(what);
        if (current >= m.version) {
            db.exec_or_fail("COMMIT", what);
            report.to_version = current;
            continue;
        }
        std::string error = db.exec(m.sql);
        if (error.empty()) {
            error = db.exec("UPDATE hearth_schema SET version = " + std::to_string(m.version) +
                            " WHERE one = 1");
        }
        if (error.empty()) {
            error = db.exec("COMMIT");
        }
        if (!error.empty()) {
            db.rollback();
            db.fail(what + " failed: " + error + "; the database stays at schema version " +
                    std::to_string(current));
        }
        report.to_version = m.version;
        report.applied.push_back(describe(m));
    }
    return report;
}

}  // namespace hearth::store
