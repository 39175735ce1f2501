#include "store/sqlite/sqlite_store.hpp"
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <hearth/account_store.hpp>

#include "store/account_rows.hpp"
#include "store/executor.hpp"
#include "store/migrations.hpp"
#include "util/log.hpp"

namespace hearth::store {
namespace {

namespace fs = std::filesystem;
using detail::BatchStats;
using detail::ErrorKind;
using detail::StoreFailure;

// After a burst the WAL file is truncated to this size at the next checkpoint instead of keeping
// its high-water mark on disk forever.
constexpr std::int64_t kJournalSizeLimitBytes = std::int64_t{64} << 20;

// SQL of the mailbox operations. The statement cache keys on these texts.
constexpr std::string_view kBeginSql = "BEGIN IMMEDIATE";
constexpr std::string_view kBeginReadSql = "BEGIN";
constexpr std::string_view kCommitSql = "COMMIT";
constexpr std::string_view kRollbackSql = "ROLLBACK";
constexpr std::string_view kInsertSql =
    "INSERT INTO mailbox (key, body, stored_at, expires_at) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view kDepthSql = "SELECT depth FROM mailbox_depth WHERE key = ?1";
// mailbox_depth holds one row per non-empty mailbox, so summing it never touches the messages.
constexpr std::string_view kDepthAllSql = "SELECT COALESCE(SUM(depth), 0) FROM mailbox_depth";
constexpr std::string_view kDepthFromSql =
    "SELECT COALESCE(SUM(depth), 0) FROM mailbox_depth WHERE key >= ?1";
constexpr std::string_view kDepthRangeSql =
    "SELECT COALESCE(SUM(depth), 0) FROM mailbox_depth WHERE key >= ?1 AND key < ?2";
constexpr std::string_view kUsageSql =
    "SELECT mailboxes, bytes FROM mailbox_usage WHERE prefix = ?1";
// The bytes, as mailbox_usage counts them, of the ?2 oldest entries of a mailbox.
constexpr std::string_view kOldestBytesSql =
    "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(CAST(body AS BLOB))), 0) FROM "
    "(SELECT key, body FROM mailbox WHERE key = ?1 ORDER BY seq LIMIT ?2)";
constexpr std::string_view kDropOldestSql =
    "DELETE FROM mailbox WHERE seq IN "
    "(SELECT seq FROM mailbox WHERE key = ?1 ORDER BY seq LIMIT ?2)";
// Reads skip the entries expired at ?now.
constexpr std::string_view kReadSql =
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key = ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY seq LIMIT ?2";
constexpr std::string_view kReadAllSql =
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE "
    "(expires_at IS NULL OR expires_at > ?2) ORDER BY seq LIMIT ?1";
constexpr std::string_view kReadFromSql =
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY seq LIMIT ?2";
constexpr std::string_view kReadRangeSql =
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= ?1 AND key < ?2 "
    "AND (expires_at IS NULL OR expires_at > ?4) ORDER BY seq LIMIT ?3";
// Entries expired at ?1 within the prefix range [?2, ?3) (?3 NULL: no upper bound), at most ?4:
// the partial index on expires_at walks only entries that can expire, soonest first.
constexpr std::string_view kExpireSql =
    "DELETE FROM mailbox WHERE seq IN (SELECT seq FROM mailbox WHERE expires_at <= ?1 AND "
    "key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY expires_at LIMIT ?4)";
// Non-empty mailboxes by key: after ?1 (NULL: from the start), within the prefix range [?2, ?3)
// (?3 NULL: no upper bound).
constexpr std::string_view kDepthListSql =
    "SELECT key, depth FROM mailbox_depth WHERE (?1 IS NULL OR key > ?1) AND key >= ?2 AND "
    "(?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4";
constexpr std::string_view kRemoveSql = "DELETE FROM mailbox WHERE seq = ?2 AND key = ?1";
constexpr std::string_view kRemoveUpToSql = "DELETE FROM mailbox WHERE key = ?1 AND seq <= ?2";

// SQL of the log operations. A query has one of three shapes, picked by its most selective
// filter so that an index serves it newest first: by room (room, id), by user (user, id), or
// by id alone; the other filters are "?N IS NULL OR ..." conditions on the rows it walks.
constexpr std::string_view kLogInsertSql =
    "INSERT INTO log_entry (server_time, room, user, level, body) VALUES (?1, ?2, ?3, ?4, ?5)";
// The filters every shape shares (a macro: string literals concatenate, string_views do not).
#define HEARTH_LOG_QUERY_TAIL                                     \
    "(?3 IS NULL OR server_time >= ?3) AND id < ?4 AND "          \
    "(?5 IS NULL OR level IN (SELECT value FROM json_each(?5))) " \
    "ORDER BY id DESC LIMIT ?6"
constexpr std::string_view kLogQueryByRoomSql =
    "SELECT id, server_time, room, user, level, body FROM log_entry "
    "WHERE room = ?1 AND (?2 IS NULL OR user = ?2) AND " HEARTH_LOG_QUERY_TAIL;
constexpr std::string_view kLogQueryByUserSql =
    "SELECT id, server_time, room, user, level, body FROM log_entry "
    "WHERE user = ?2 AND " HEARTH_LOG_QUERY_TAIL;
constexpr std::string_view kLogQuerySql =
    "SELECT id, server_time, room, user, level, body FROM log_entry WHERE " HEARTH_LOG_QUERY_TAIL;
#undef HEARTH_LOG_QUERY_TAIL
constexpr std::string_view kLogPruneOldSql =
    "DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry WHERE server_time < ?1 "
    "ORDER BY server_time LIMIT ?2)";
constexpr std::string_view kLogCountSql = "SELECT rows, bytes FROM log_count WHERE one = 1";
// The oldest entries (at most ?2 of them) up to the first whose body brings the bytes deleted to
// ?1 or more: the fewest that bring the stored bytes down by ?1.
constexpr std::string_view kLogPruneBytesSql =
    "DELETE FROM log_entry WHERE id <= (SELECT max(id) FROM (SELECT id, sum(size) OVER (ORDER BY "
    "id) - size AS prior FROM (SELECT id, length(CAST(body AS BLOB)) AS size FROM log_entry "
    "ORDER BY id LIMIT ?2)) WHERE prior < ?1)";
constexpr std::string_view kLogPruneOldestSql =
    "DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry ORDER BY id LIMIT ?1)";

std::int64_t clamp_to_int64(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}

// ---------------------------------------------------------------------------------------------
// Errors.

ErrorKind classify(int rc) noexcept {
    switch (rc & 0xFF) {
        case SQLITE_FULL:
            return ErrorKind::kFull;
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN:
        case SQLITE_PROTOCOL:
        case SQLITE_NOLFS:
            return ErrorKind::kIo;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
            return ErrorKind::kReadOnly;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return ErrorKind::kCorrupt;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return ErrorKind::kBusy;
        default:
            return ErrorKind::kOther;
    }
}

/// SQLite's name for a result code ("SQLITE_FULL"): what operators search for.
std::string code_name(int rc) {
    switch (rc & 0xFF) {
        case SQLITE_ERROR:
            return "SQLITE_ERROR";
        case SQLITE_PERM:
            return "SQLITE_PERM";
        case SQLITE_BUSY:
            return "SQLITE_BUSY";
        case SQLITE_LOCKED:
            return "SQLITE_LOCKED";
        case SQLITE_NOMEM:
            return "SQLITE_NOMEM";
        case SQLITE_READONLY:
            return "SQLITE_READONLY";
        case SQLITE_IOERR:
            return "SQLITE_IOERR";
        case SQLITE_CORRUPT:
            return "SQLITE_CORRUPT";
        case SQLITE_FULL:
            return "SQLITE_FULL";
        case SQLITE_CANTOPEN:
            return "SQLITE_CANTOPEN";
        case SQLITE_PROTOCOL:
            return "SQLITE_PROTOCOL";
        case SQLITE_TOOBIG:
            return "SQLITE_TOOBIG";
        case SQLITE_NOTADB:
            return "SQLITE_NOTADB";
        default:
            return "SQLite error " + std::to_string(rc & 0xFF);
    }
}

std::string_view describe(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::kFull:
            return "the disk is full (or the database reached its size limit)";
        case ErrorKind::kIo:
            return "the disk reported an I/O error";
        case ErrorKind::kReadOnly:
            return "the database is read-only";
        case ErrorKind::kCorrupt:
            return "the database file is corrupt";
        case ErrorKind::kBusy:
            return "another process holds the database lock longer than storage.busy_timeout_ms";
        case ErrorKind::kOther:
            return "SQLite reported an error";
        case ErrorKind::kQueueFull:
            return "the queue is full";
        case ErrorKind::kConnection:
            return "the database cannot be reached";
        case ErrorKind::kQueueBytes:
            return "the queue holds its bytes bound";
    }
    return "unknown";
}

/// A failed statement as the executor reports it.
StoreFailure failure_of(int rc, std::string_view detail) {
    const ErrorKind kind = classify(rc);
    return StoreFailure{kind, std::string(describe(kind)) + " (" + code_name(rc) +
                                  ", extended code " + std::to_string(rc) + ": " +
                                  std::string(detail) + ")"};
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// One SQLite connection with its prepared statements. Used by one thread only (the writer, or
/// one reader), hence SQLITE_OPEN_NOMUTEX.
class Db {
public:
    enum class Mode : std::uint8_t { kReadWrite, kReadOnly };

    Db(const std::string& path, Mode mode, int busy_timeout_ms) : path_(path) {
        const int flags = (mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
                          SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
        if (rc != SQLITE_OK) {
            std::string cause = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            throw std::runtime_error(path + ": cannot open the database: " + cause);
        }
        sqlite3_busy_timeout(db_, busy_timeout_ms);
    }
    ~Db() {
        for (auto& [sql, stmt] : statements_) {
            sqlite3_finalize(stmt);
        }
        sqlite3_close(db_);
    }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    /// The prepared statement for `sql`, which must have static storage: the cache keys on it.
    sqlite3_stmt* prepare(std::string_view sql, int& rc) {
        if (auto it = statements_.find(sql); it != statements_.end()) {
            rc = SQLITE_OK;
            return it->second;
        }
        sqlite3_stmt* stmt = nullptr;
        rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) {
            return nullptr;
        }
        statements_.emplace(sql, stmt);
        return stmt;
    }

    /// Runs setup SQL (pragmas); throws std::runtime_error naming the file (startup only).
    void exec_or_throw(const std::string& sql) {
        char* message = nullptr;
        const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
        if (rc != SQLITE_OK) {
            std::string cause = message != nullptr ? message : sqlite3_errstr(rc);
            sqlite3_free(message);
            throw std::runtime_error(path_ + ": " + sql + " failed: " + cause);
        }
    }

    /// The first column of the first row of a setup query; throws like exec_or_throw.
    std::string query_or_throw(const std::string& sql) {
        std::string out;
        auto on_row = [](void* arg, int columns, char** values, char**) {
            if (columns > 0 && values[0] != nullptr) {
                *static_cast<std::string*>(arg) = values[0];
            }
            return 0;
        };
        char* message = nullptr;
        const int rc = sqlite3_exec(db_, sql.c_str(), on_row, &out, &message);
        if (rc != SQLITE_OK) {
            std::string cause = message != nullptr ? message : sqlite3_errstr(rc);
            sqlite3_free(message);
            throw std::runtime_error(path_ + ": " + sql + " failed: " + cause);
        }
        return out;
    }

    sqlite3* get() const noexcept { return db_; }
    std::string error_message() const { return sqlite3_errmsg(db_); }
    bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }
    std::size_t max_length() const noexcept {
        return static_cast<std::size_t>(sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1));
    }

private:
    std::string path_;
    sqlite3* db_ = nullptr;
    std::unordered_map<std::string_view, sqlite3_stmt*> statements_;
};

/// One use of a cached statement. Resets it at the end, so that it holds no read snapshot and no
/// pointer into the caller's strings (they are bound without copying).
class Use {
public:
    Use(Db& db, std::string_view sql) : stmt_(db.prepare(sql, rc_)) {}
    ~Use() {
        if (stmt_ != nullptr) {
            sqlite3_reset(stmt_);
            sqlite3_clear_bindings(stmt_);
        }
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    Use& text(int index, std::string_view value) {
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC,
                                      SQLITE_UTF8);
        }
        return *this;
    }
    Use& blob(int index, std::string_view value) {
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_STATIC);
        }
        return *this;
    }
    Use& int64(int index, std::int64_t value) {
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_int64(stmt_, index, value);
        }
        return *this;
    }
    /// Binds the value, or NULL when there is none.
    Use& opt_text(int index, const std::optional<std::string>& value) {
        return value ? text(index, *value) : *this;  // unbound parameters are NULL
    }
    Use& opt_int64(int index, const std::optional<std::int64_t>& value) {
        return value ? int64(index, *value) : *this;
    }

    /// SQLITE_ROW, SQLITE_DONE or an error.
    int step() { return rc_ != SQLITE_OK ? rc_ : sqlite3_step(stmt_); }
    /// Runs a statement to its end: SQLITE_OK or an error.
    int run() {
        int rc = step();
        while (rc == SQLITE_ROW) {
            rc = sqlite3_step(stmt_);
        }
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    std::int64_t column_int64(int i) const { return sqlite3_column_int64(stmt_, i); }
    bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
    std::string column_bytes(int i) const {
        // sqlite3_column_blob first, then the size: the documented order.
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i));
        return data != nullptr ? std::string(data, size) : std::string();
    }

private:
    int rc_ = SQLITE_OK;
    sqlite3_stmt* stmt_;
};

/// Reads rows of (seq, key, body, stored_at, expires_at) into entries; SQLITE_OK or an error.
int collect_entries(Use& query, std::vector<MailboxEntry>& out) {
    int rc = SQLITE_OK;
    while ((rc = query.step()) == SQLITE_ROW) {
        MailboxEntry e;
        e.seq = static_cast<std::uint64_t>(query.column_int64(0));
        e.key = query.column_bytes(1);
        e.body = query.column_bytes(2);
        e.stored_at =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(query.column_int64(3)));
        if (!query.column_is_null(4)) {
            e.expires_at = std::chrono::system_clock::time_point(
                std::chrono::milliseconds(query.column_int64(4)));
        }
        out.push_back(std::move(e));
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

using detail::prefix_upper_bound;

// ---------------------------------------------------------------------------------------------
// The store.

using SqliteOp = detail::ConnOp<Db, int>;

/// The SQLite store: its connections, and how a batch, a read and a probe run on them; the
/// queues, threads and order rules are the shared StoreExecutor's (see sqlite_store.hpp). Public
/// calls are thread-safe and never block on storage. Owned by the app.
class SqliteStore final : public Store,
                          public Mailboxes,
                          public Logs,
                          public AccountStore,
                          private detail::ExecutorBackend {
public:
    SqliteStore(const StorageConfig& config, std::string path, int schema_version,
                core::MetricsRegistry& metrics, SqliteTestHooks hooks);
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    Mailboxes& mailboxes() override { return *this; }
    Logs& logs() override { return *this; }
    AccountStore& accounts() override { return *this; }
    bool healthy() const noexcept override { return executor_.healthy(); }

    using Mailboxes::append;
    void append(std::string key, std::string body, const MailboxLimits& limits,
                Completion<AppendResult> done) override;
    void read(std::string key, std::size_t max,
              Completion<std::vector<MailboxEntry>> done) override;
    void read_prefix(std::string prefix, std::size_t max,
                     Completion<std::vector<MailboxEntry>> done) override;
    void expire(std::string prefix, std::uint64_t max_delete,
                Completion<std::uint64_t> done) override;
    void remove(std::string key, std::uint64_t seq, Completion<void> done) override;
    void remove_up_to(std::string key, std::uint64_t up_to,
                      Completion<std::uint64_t> done) override;
    void depth(std::string key, Completion<std::uint64_t> done) override;
    void depth_prefix(std::string prefix, Completion<std::uint64_t> done) override;
    void list_depths(std::string prefix, std::optional<std::string> after, std::size_t max,
                     Completion<std::vector<MailboxDepth>> done) override;

    void append(std::vector<LogRow> rows, Completion<void> done) override;
    void query(LogQuery query, Completion<std::vector<LogRow>> done) override;
    void prune(std::int64_t older_than_ms, std::uint64_t max_rows, std::uint64_t max_bytes,
               std::uint64_t max_delete, Completion<std::uint64_t> done) override;
    void count(Completion<std::uint64_t> done) override;

    void create_account(AccountRecord account, Completion<AccountRecord> done) override;
    void account_by_id(std::uint64_t id, Completion<AccountRecord> done) override;
    void account_by_name(std::string username, Completion<AccountRecord> done) override;
    void account_by_external_id(std::string external_id, Completion<AccountRecord> done) override;
    void list_accounts(AccountFilter filter, Completion<std::vector<AccountRecord>> done) override;
    void update_account(std::uint64_t id, AccountPatch patch,
                        Completion<AccountRecord> done) override;
    void delete_account(std::uint64_t id, Completion<void> done) override;
    void insert_token(TokenRecord token, Completion<TokenRecord> done) override;
    void token_by_digest(std::string digest, Completion<TokenLookup> done) override;
    void token_by_id(std::uint64_t id, Completion<TokenRecord> done) override;
    void list_tokens(TokenFilter filter, Completion<std::vector<TokenRecord>> done) override;
    void revoke_token(std::uint64_t id, TimePoint at, Completion<TokenRecord> done) override;
    void purge_tokens(TimePoint before, Completion<std::uint64_t> done) override;
    void append_audit(AuditEntry entry, Completion<AuditEntry> done) override;
    void list_audit(AuditFilter filter, Completion<std::vector<AuditEntry>> done) override;

private:
    /// `bytes`: what the operation holds (ExecOp::bytes), for the writer's byte bound.
    template <class T, class Fn>
    void submit_write(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_write(detail::make_op<Db, int, T>(std::move(fn), std::move(done), bytes));
    }
    template <class T, class Fn>
    void submit_read(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_read(detail::make_op<Db, int, T>(std::move(fn), std::move(done), bytes));
    }

    // detail::ExecutorBackend, on the executor's threads.
    std::optional<StoreFailure> run_batch(std::span<const std::unique_ptr<detail::ExecOp>> batch,
                                          std::size_t writes, BatchStats& stats) override;
    std::optional<StoreFailure> run_read(std::size_t reader, detail::ExecOp& op) override;
    bool probe() override;

    const std::string path_;
    const SqliteTestHooks hooks_;
    std::shared_ptr<spdlog::logger> log_;

    // Connections: the writer's is used by the writer thread only, each reader's by its thread.
    std::unique_ptr<Db> writer_db_;
    std::vector<std::unique_ptr<Db>> reader_dbs_;

    // Last: stopped (threads joined) before the connections close.
    detail::StoreExecutor executor_;
};

detail::ExecutorSettings executor_settings(const StorageConfig& config, const std::string& name,
                                           std::size_t readers, const StoreTestHooks& hooks) {
    // The config's ranges keep these at 1 or more; a struct filled in by code might not, and a
    // zero would stall the writer or refuse everything.
    auto at_least_one = [](std::int64_t v) {
        return static_cast<std::size_t>(std::max<std::int64_t>(1, v));
    };
    return detail::ExecutorSettings{
        .name = name,
        .writer_queue_max = at_least_one(config.writer_queue_max),
        .writer_queue_max_bytes = at_least_one(config.writer_queue_max_bytes),
        .reader_queue_max = at_least_one(config.reader_queue_max),
        .max_batch = at_least_one(config.max_batch),
        .readers = readers,
        .hooks = hooks};
}

SqliteStore::SqliteStore(const StorageConfig& config, std::string path, int schema_version,
                         core::MetricsRegistry& metrics, SqliteTestHooks hooks)
    : path_(std::move(path)),
      hooks_(std::move(hooks)),
      log_(util::logger("store")),
      executor_(
          executor_settings(
              config, path_,
              static_cast<std::size_t>(std::max<std::int64_t>(1, config.reader_threads)), hooks_),
          *this, metrics) {
    const int busy_timeout_ms =
        static_cast<int>(std::clamp<std::int64_t>(config.busy_timeout_ms, 0, 600'000));
    writer_db_ = std::make_unique<Db>(path_, Db::Mode::kReadWrite, busy_timeout_ms);
    // Checked rather than assumed: journal_mode is a property of the file, set by the migration.
    if (const auto mode = writer_db_->query_or_throw("PRAGMA journal_mode"); mode != "wal") {
        throw std::runtime_error(path_ + ": journal mode is \"" + mode + "\", expected wal");
    }
    if (std::find(std::begin(kSynchronousLevels), std::end(kSynchronousLevels),
                  config.synchronous) == std::end(kSynchronousLevels)) {
        throw std::runtime_error("storage.synchronous: unknown level \"" + config.synchronous +
                                 "\"");
    }
    writer_db_->exec_or_throw("PRAGMA synchronous = " + config.synchronous);
    writer_db_->exec_or_throw("PRAGMA foreign_keys = ON");
    writer_db_->exec_or_throw("PRAGMA journal_size_limit = " +
                              std::to_string(kJournalSizeLimitBytes));
    if (!hooks_.writer_setup_sql.empty()) {
        writer_db_->exec_or_throw(hooks_.writer_setup_sql);
    }
    // Readers only read (a read-only connection cannot write by mistake), so foreign keys and
    // synchronous do not apply to them.
    for (std::size_t i = 0; i < executor_.readers(); ++i) {
        reader_dbs_.push_back(std::make_unique<Db>(path_, Db::Mode::kReadOnly, busy_timeout_ms));
    }
    executor_.start();
    log_->info(
        "{}: store open (schema version {}, synchronous={}, {} reader thread(s), group "
        "commit up to {} writes)",
        path_, schema_version, config.synchronous, reader_dbs_.size(), executor_.max_batch());
}

SqliteStore::~SqliteStore() {
    executor_.stop();
    log_->info("{}: store closed", path_);
}

std::optional<StoreFailure> SqliteStore::run_batch(
    std::span<const std::unique_ptr<detail::ExecOp>> batch, std::size_t writes, BatchStats& stats) {
    Db& db = *writer_db_;
    std::string detail;
    int rc = SQLITE_OK;
    try {
        // A batch of reads only needs no write lock.
        rc = Use(db, writes > 0 ? kBeginSql : kBeginReadSql).run();
        for (std::size_t i = 0; rc == SQLITE_OK && i < batch.size(); ++i) {
            rc = static_cast<SqliteOp&>(*batch[i]).execute(db, stats);
        }
        if (rc == SQLITE_OK) {
            rc = Use(db, kCommitSql).run();
        }
        if (rc != SQLITE_OK) {
            detail = db.error_message();  // before the rollback replaces it
        }
    } catch (const std::exception& e) {
        // Only allocation failures can get here.
        rc = SQLITE_NOMEM;
        detail = e.what();
    }
    if (rc == SQLITE_OK) {
        return std::nullopt;
    }
    // SQLite rolls some errors back by itself; whatever is left open is rolled back here, so
    // nothing of a failed batch is stored. Reads in it fail too: they saw uncommitted data.
    if (db.in_transaction()) {
        (void)Use(db, kRollbackSql).run();
    }
    return failure_of(rc, detail);
}

std::optional<StoreFailure> SqliteStore::run_read(std::size_t reader, detail::ExecOp& op) {
    Db& db = *reader_dbs_[reader];
    BatchStats unused;
    int rc = SQLITE_OK;
    std::string detail;
    try {
        rc = static_cast<SqliteOp&>(op).execute(db, unused);
        if (rc != SQLITE_OK) {
            detail = db.error_message();
        }
    } catch (const std::exception& e) {
        rc = SQLITE_NOMEM;
        detail = e.what();
    }
    if (rc == SQLITE_OK) {
        return std::nullopt;
    }
    return failure_of(rc, detail);
}

bool SqliteStore::probe() {
    // A real write (the header page, rewritten with the version read under the write lock, so a
    // concurrent `hearth migrate` is never undone): only a write shows that the disk takes
    // writes again.
    Db& db = *writer_db_;
    int rc = Use(db, kBeginSql).run();
    std::int64_t version = 0;
    if (rc == SQLITE_OK) {
        Use q(db, "PRAGMA user_version");
        rc = q.step();
        if (rc == SQLITE_ROW) {
            version = q.column_int64(0);
            rc = SQLITE_OK;
        }
    }
    if (rc == SQLITE_OK) {
        // PRAGMA values cannot be bound; the version is an integer we just read.
        const std::string set = "PRAGMA user_version = " + std::to_string(version);
        rc = sqlite3_exec(db.get(), set.c_str(), nullptr, nullptr, nullptr);
    }
    if (rc == SQLITE_OK) {
        rc = Use(db, kCommitSql).run();
    }
    if (rc != SQLITE_OK) {
        log_->debug("{}: health probe failed: {}", path_, db.error_message());
        if (db.in_transaction()) {
            (void)Use(db, kRollbackSql).run();
        }
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Mailboxes.

/// One integer of a one-row query, `none` when it returns no row; SQLITE_OK or an error.
int query_int64(Use& q, std::int64_t& out, std::int64_t none = 0) {
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
        out = q.column_int64(0);
        return SQLITE_OK;
    }
    out = none;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void SqliteStore::append(std::string key, std::string body, const MailboxLimits& limits,
                         Completion<AppendResult> done) {
    const std::size_t bytes = key.size() + body.size();
    submit_write<AppendResult>(
        std::move(done),
        [key = std::move(key), body = std::move(body), limits](Db& db, BatchStats& stats,
                                                               Result<AppendResult>& out) -> int {
            if (limits.max_depth == 0) {
                out = make_error_code(Errc::kInvalidArgument);  // it would drop itself
                return SQLITE_OK;
            }
            if (body.size() > db.max_length() || key.size() > db.max_length()) {
                out = make_error_code(Errc::kTooLarge);
                return SQLITE_OK;
            }
            std::int64_t depth = 0;
            int rc = SQLITE_OK;
            {
                Use q(db, kDepthSql);
                q.text(1, key);
                rc = query_int64(q, depth);
            }
            std::int64_t mailboxes = 0;
            std::int64_t used = 0;
            if (rc == SQLITE_OK && (limits.max_mailboxes > 0 || limits.max_bytes > 0)) {
                Use q(db, kUsageSql);
                q.text(1, detail::mailbox_namespace(key));
                rc = q.step();
                if (rc == SQLITE_ROW) {
                    mailboxes = q.column_int64(0);
                    used = q.column_int64(1);
                    rc = SQLITE_OK;
                } else if (rc == SQLITE_DONE) {
                    rc = SQLITE_OK;
                }
            }
            if (rc != SQLITE_OK) {
                return rc;
            }
            const auto plan = detail::plan_append(
                limits, static_cast<std::int64_t>(key.size() + body.size()), depth, mailboxes, used,
                [&](std::int64_t n) -> std::optional<std::int64_t> {
                    Use q(db, kOldestBytesSql);
                    q.text(1, key).int64(2, n);
                    std::int64_t sum = 0;
                    rc = query_int64(q, sum);
                    return rc == SQLITE_OK ? std::optional(sum) : std::nullopt;
                });
            if (!plan) {
                return rc;
            }
            if (plan->refused != Errc::kOk) {
                out = make_error_code(plan->refused);
                return SQLITE_OK;
            }
            const std::int64_t now_ms = detail::unix_ms_now();
            {
                Use insert(db, kInsertSql);
                insert.text(1, key).blob(2, body).int64(3, now_ms);
                if (limits.lifetime.count() > 0) {
                    insert.int64(4, now_ms + limits.lifetime.count());
                }
                rc = insert.run();
            }
            if (rc != SQLITE_OK) {
                return rc;
            }
            AppendResult result;
            result.seq = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db.get()));
            if (plan->drop > 0) {
                rc = Use(db, kDropOldestSql).text(1, key).int64(2, plan->drop).run();
                if (rc != SQLITE_OK) {
                    return rc;
                }
                result.dropped = static_cast<std::uint64_t>(sqlite3_changes64(db.get()));
                stats.dropped += result.dropped;
            }
            out = result;
            return SQLITE_OK;
        },
        bytes);
}

void SqliteStore::read(std::string key, std::size_t max,
                       Completion<std::vector<MailboxEntry>> done) {
    const std::size_t bytes = key.size();
    submit_read<std::vector<MailboxEntry>>(
        std::move(done),
        [key = std::move(key), max](Db& db, BatchStats&, Result<std::vector<MailboxEntry>>& out) {
            std::vector<MailboxEntry> entries;
            Use q(db, kReadSql);
            q.text(1, key).int64(2, clamp_to_int64(max)).int64(3, detail::unix_ms_now());
            const int rc = collect_entries(q, entries);
            if (rc == SQLITE_OK) {
                out = std::move(entries);
            }
            return rc;
        },
        bytes);
}

void SqliteStore::read_prefix(std::string prefix, std::size_t max,
                              Completion<std::vector<MailboxEntry>> done) {
    const std::size_t bytes = prefix.size();
    submit_read<std::vector<MailboxEntry>>(
        std::move(done),
        [prefix = std::move(prefix), max](Db& db, BatchStats&,
                                          Result<std::vector<MailboxEntry>>& out) {
            std::vector<MailboxEntry> entries;
            const std::int64_t limit = clamp_to_int64(max);
            const std::int64_t now_ms = detail::unix_ms_now();
            // A key range rather than LIKE or GLOB: no escaping, and the index on key serves it.
            const auto upper = prefix_upper_bound(prefix);
            int rc = SQLITE_OK;
            if (prefix.empty()) {
                Use q(db, kReadAllSql);
                q.int64(1, limit).int64(2, now_ms);
                rc = collect_entries(q, entries);
            } else if (!upper) {
                Use q(db, kReadFromSql);
                q.text(1, prefix).int64(2, limit).int64(3, now_ms);
                rc = collect_entries(q, entries);
            } else {
                Use q(db, kReadRangeSql);
                q.text(1, prefix).text(2, *upper).int64(3, limit).int64(4, now_ms);
                rc = collect_entries(q, entries);
            }
            if (rc == SQLITE_OK) {
                out = std::move(entries);
            }
            return rc;
        },
        bytes);
}

void SqliteStore::expire(std::string prefix, std::uint64_t max_delete,
                         Completion<std::uint64_t> done) {
    const std::size_t bytes = prefix.size();
    submit_write<std::uint64_t>(
        std::move(done),
        [prefix = std::move(prefix), max_delete](Db& db, BatchStats&,
                                                 Result<std::uint64_t>& out) -> int {
            const auto upper = prefix_upper_bound(prefix);
            const int rc = Use(db, kExpireSql)
                               .int64(1, detail::unix_ms_now())
                               .text(2, prefix)
                               .opt_text(3, upper)
                               .int64(4, clamp_to_int64(max_delete))
                               .run();
            if (rc == SQLITE_OK) {
                out = static_cast<std::uint64_t>(sqlite3_changes64(db.get()));
            }
            return rc;
        },
        bytes);
}

void SqliteStore::remove(std::string key, std::uint64_t seq, Completion<void> done) {
    const std::size_t bytes = key.size();
    submit_write<void>(
        std::move(done),
        [key = std::move(key), seq](Db& db, BatchStats&, Result<void>&) -> int {
            if (seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                return SQLITE_OK;  // no such entry; not an error
            }
            return Use(db, kRemoveSql).text(1, key).int64(2, static_cast<std::int64_t>(seq)).run();
        },
        bytes);
}

void SqliteStore::remove_up_to(std::string key, std::uint64_t up_to,
                               Completion<std::uint64_t> done) {
    const std::size_t bytes = key.size();
    submit_write<std::uint64_t>(
        std::move(done),
        [key = std::move(key), up_to](Db& db, BatchStats&, Result<std::uint64_t>& out) -> int {
            const int rc =
                Use(db, kRemoveUpToSql).text(1, key).int64(2, clamp_to_int64(up_to)).run();
            if (rc == SQLITE_OK) {
                out = static_cast<std::uint64_t>(sqlite3_changes64(db.get()));
            }
            return rc;
        },
        bytes);
}

void SqliteStore::depth(std::string key, Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(
        std::move(done), [key = std::move(key)](Db& db, BatchStats&, Result<std::uint64_t>& out) {
            Use q(db, kDepthSql);
            q.text(1, key);
            const int rc = q.step();
            if (rc == SQLITE_ROW) {
                out = static_cast<std::uint64_t>(q.column_int64(0));
                return SQLITE_OK;
            }
            if (rc == SQLITE_DONE) {
                out = std::uint64_t{0};  // no row: an empty mailbox
                return SQLITE_OK;
            }
            return rc;
        });
}

void SqliteStore::depth_prefix(std::string prefix, Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(std::move(done), [prefix = std::move(prefix)](
                                                    Db& db, BatchStats&,
                                                    Result<std::uint64_t>& out) {
        // The same key range as read_prefix.
        const auto upper = prefix_upper_bound(prefix);
        const auto sql = prefix.empty() ? kDepthAllSql : !upper ? kDepthFromSql : kDepthRangeSql;
        Use q(db, sql);
        if (!prefix.empty()) {
            q.text(1, prefix);
        }
        if (!prefix.empty() && upper) {
            q.text(2, *upper);
        }
        const int rc = q.step();
        if (rc != SQLITE_ROW) {
            return rc;
        }
        out = static_cast<std::uint64_t>(q.column_int64(0));
        return SQLITE_OK;
    });
}

void SqliteStore::list_depths(std::string prefix, std::optional<std::string> after, std::size_t max,
                              Completion<std::vector<MailboxDepth>> done) {
    submit_read<std::vector<MailboxDepth>>(
        std::move(done), [prefix = std::move(prefix), after = std::move(after), max](
                             Db& db, BatchStats&, Result<std::vector<MailboxDepth>>& out) {
            const auto upper = prefix_upper_bound(prefix);
            Use q(db, kDepthListSql);
            q.opt_text(1, after).text(2, prefix).opt_text(3, upper).int64(4, clamp_to_int64(max));
            std::vector<MailboxDepth> list;
            int rc = SQLITE_OK;
            while ((rc = q.step()) == SQLITE_ROW) {
                list.push_back({q.column_bytes(0), static_cast<std::uint64_t>(q.column_int64(1))});
            }
            if (rc != SQLITE_DONE) {
                return rc;
            }
            out = std::move(list);
            return SQLITE_OK;
        });
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// The row count and body bytes kept by the log_count triggers; SQLITE_OK or an error.
int log_count(Db& db, std::int64_t& out, std::int64_t* bytes = nullptr) {
    Use q(db, kLogCountSql);
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
        out = q.column_int64(0);
        if (bytes != nullptr) {
            *bytes = q.column_int64(1);
        }
        return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;  // the migration inserts the one row
}

void SqliteStore::append(std::vector<LogRow> rows, Completion<void> done) {
    const std::size_t bytes = detail::log_rows_bytes(rows);
    submit_write<void>(
        std::move(done),
        [rows = std::move(rows)](Db& db, BatchStats&, Result<void>& out) -> int {
            for (const auto& r : rows) {
                if (r.body.size() > db.max_length()) {
                    out = make_error_code(Errc::kTooLarge);
                    return SQLITE_OK;  // nothing of this call was inserted yet
                }
            }
            for (const auto& r : rows) {
                const int rc = Use(db, kLogInsertSql)
                                   .int64(1, r.server_time_ms)
                                   .text(2, r.room)
                                   .text(3, r.user)
                                   .text(4, r.level)
                                   .text(5, r.body)
                                   .run();
                if (rc != SQLITE_OK) {
                    return rc;
                }
            }
            return SQLITE_OK;
        },
        bytes);
}

void SqliteStore::query(LogQuery query, Completion<std::vector<LogRow>> done) {
    submit_read<std::vector<LogRow>>(
        std::move(done),
        [query = std::move(query)](Db& db, BatchStats&, Result<std::vector<LogRow>>& out) -> int {
            std::string levels;  // a JSON array for json_each: level names are validated words
            if (!query.levels.empty()) {
                levels = "[";
                for (const auto& l : query.levels) {
                    if (levels.size() > 1) {
                        levels += ',';
                    }
                    levels += '"';
                    for (char c : l) {
                        if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) {
                            levels += c;
                        }
                    }
                    levels += '"';
                }
                levels += ']';
            }
            const auto sql = query.room   ? kLogQueryByRoomSql
                             : query.user ? kLogQueryByUserSql
                                          : kLogQuerySql;
            Use q(db, sql);
            if (query.room) {
                q.text(1, *query.room);
            }
            if (query.user) {
                q.text(2, *query.user);
            }
            if (query.since_ms) {
                q.int64(3, *query.since_ms);
            }
            q.int64(4, query.before_id ? clamp_to_int64(*query.before_id)
                                       : std::numeric_limits<std::int64_t>::max());
            if (!levels.empty()) {
                q.text(5, levels);
            }
            q.int64(6, clamp_to_int64(query.limit));
            std::vector<LogRow> rows;
            int rc = SQLITE_OK;
            while ((rc = q.step()) == SQLITE_ROW) {
                LogRow r;
                r.id = static_cast<std::uint64_t>(q.column_int64(0));
                r.server_time_ms = q.column_int64(1);
                r.room = q.column_bytes(2);
                r.user = q.column_bytes(3);
                r.level = q.column_bytes(4);
                r.body = q.column_bytes(5);
                rows.push_back(std::move(r));
            }
            if (rc != SQLITE_DONE) {
                return rc;
            }
            out = std::move(rows);
            return SQLITE_OK;
        });
}

void SqliteStore::prune(std::int64_t older_than_ms, std::uint64_t max_rows, std::uint64_t max_bytes,
                        std::uint64_t max_delete, Completion<std::uint64_t> done) {
    submit_write<std::uint64_t>(
        std::move(done),
        [older_than_ms, max_rows, max_bytes, max_delete](Db& db, BatchStats&,
                                                         Result<std::uint64_t>& out) -> int {
            std::int64_t budget = clamp_to_int64(max_delete);
            int rc = Use(db, kLogPruneOldSql).int64(1, older_than_ms).int64(2, budget).run();
            if (rc != SQLITE_OK) {
                return rc;
            }
            const auto by_age = sqlite3_changes64(db.get());
            budget -= by_age;
            std::int64_t rows = 0;
            if (rc = log_count(db, rows); rc != SQLITE_OK) {
                return rc;
            }
            const std::int64_t excess = rows - clamp_to_int64(max_rows);
            std::int64_t by_count = 0;
            if (excess > 0 && budget > 0) {
                rc = Use(db, kLogPruneOldestSql).int64(1, std::min(excess, budget)).run();
                if (rc != SQLITE_OK) {
                    return rc;
                }
                by_count = sqlite3_changes64(db.get());
                budget -= by_count;
            }
            std::int64_t bytes = 0;
            if (rc = log_count(db, rows, &bytes); rc != SQLITE_OK) {
                return rc;
            }
            const std::int64_t excess_bytes = bytes - clamp_to_int64(max_bytes);
            std::int64_t by_bytes = 0;
            if (excess_bytes > 0 && budget > 0) {
                rc = Use(db, kLogPruneBytesSql).int64(1, excess_bytes).int64(2, budget).run();
                if (rc != SQLITE_OK) {
                    return rc;
                }
                by_bytes = sqlite3_changes64(db.get());
            }
            out = static_cast<std::uint64_t>(by_age + by_count + by_bytes);
            return SQLITE_OK;
        });
}

void SqliteStore::count(Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(
        std::move(done), [](Db& db, BatchStats&, Result<std::uint64_t>& out) -> int {
            std::int64_t rows = 0;
            const int rc = log_count(db, rows);
            if (rc == SQLITE_OK) {
                out = static_cast<std::uint64_t>(std::max<std::int64_t>(0, rows));
            }
            return rc;
        });
}

// ---------------------------------------------------------------------------------------------
// Accounts, tokens, audit (migration 3).

constexpr std::string_view kAccountInsertSql =
    "INSERT INTO account (username, username_key, email, email_key, password_hash, disabled, "
    "guest, roles, external_id, created_at, last_login_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr std::string_view kAccountByIdSql =
    "SELECT id, username, email, password_hash, disabled, guest, roles, external_id, created_at, "
    "last_login_at FROM account WHERE id = ?1";
constexpr std::string_view kAccountByNameSql =
    "SELECT id, username, email, password_hash, disabled, guest, roles, external_id, created_at, "
    "last_login_at FROM account WHERE username_key = ?1";
constexpr std::string_view kAccountByExternalSql =
    "SELECT id, username, email, password_hash, disabled, guest, roles, external_id, created_at, "
    "last_login_at FROM account WHERE external_id = ?1";
// Roles match as whole items of the comma-separated list; the prefix is a key range (?3, ?4) so
// that no LIKE escaping is needed; ?4 NULL means no upper bound.
constexpr std::string_view kAccountListSql =
    "SELECT id, username, email, password_hash, disabled, guest, roles, external_id, created_at, "
    "last_login_at FROM account WHERE (?1 IS NULL OR disabled = ?1) AND "
    "(?2 IS NULL OR instr(',' || roles || ',', ',' || ?2 || ',') > 0) AND "
    "(?3 IS NULL OR (username_key >= ?3 AND (?4 IS NULL OR username_key < ?4))) AND id > ?5 "
    "ORDER BY id LIMIT ?6";
constexpr std::string_view kAccountUpdateSql =
    "UPDATE account SET email = ?2, email_key = ?3, password_hash = ?4, disabled = ?5, "
    "roles = ?6, last_login_at = ?7 WHERE id = ?1";
constexpr std::string_view kAccountDeleteSql = "DELETE FROM account WHERE id = ?1";

constexpr std::string_view kTokenInsertSql =
    "INSERT INTO token (account_id, kind, name, digest, scopes, created_at, expires_at, "
    "revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr std::string_view kTokenByDigestSql =
    "SELECT id, account_id, kind, name, digest, scopes, created_at, expires_at, revoked_at "
    "FROM token WHERE digest = ?1";
constexpr std::string_view kTokenByIdSql =
    "SELECT id, account_id, kind, name, digest, scopes, created_at, expires_at, revoked_at "
    "FROM token WHERE id = ?1";
constexpr std::string_view kTokenListSql =
    "SELECT id, account_id, kind, name, digest, scopes, created_at, expires_at, revoked_at "
    "FROM token WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR kind = ?2) AND "
    "(?3 OR revoked_at IS NULL) AND id > ?4 ORDER BY id LIMIT ?5";
constexpr std::string_view kTokenRevokeSql =
    "UPDATE token SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
constexpr std::string_view kTokenPurgeSql =
    "DELETE FROM token WHERE expires_at < ?1 OR revoked_at < ?1";

constexpr std::string_view kAuditInsertSql =
    "INSERT INTO audit (at, actor, action, target, peer, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr std::string_view kAuditListSql =
    "SELECT id, at, actor, action, target, peer, detail FROM audit WHERE "
    "(?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2) AND id < ?3 "
    "ORDER BY id DESC LIMIT ?4";

bool is_constraint(int rc) noexcept {
    return (rc & 0xFF) == SQLITE_CONSTRAINT;
}

std::optional<std::string> opt_column(const Use& q, int i) {
    return q.column_is_null(i) ? std::nullopt : std::optional<std::string>(q.column_bytes(i));
}
std::optional<TimePoint> opt_time(const Use& q, int i) {
    return q.column_is_null(i) ? std::nullopt
                               : std::optional<TimePoint>(rows::time_of(q.column_int64(i)));
}

AccountRecord account_of(const Use& q) {
    AccountRecord a;
    a.id = static_cast<std::uint64_t>(q.column_int64(0));
    a.username = q.column_bytes(1);
    a.email = opt_column(q, 2);
    a.password_hash = q.column_bytes(3);
    a.disabled = q.column_int64(4) != 0;
    a.guest = q.column_int64(5) != 0;
    a.roles = rows::split(q.column_bytes(6));
    a.external_id = opt_column(q, 7);
    a.created_at = rows::time_of(q.column_int64(8));
    a.last_login_at = opt_time(q, 9);
    return a;
}

TokenRecord token_of(const Use& q) {
    TokenRecord t;
    t.id = static_cast<std::uint64_t>(q.column_int64(0));
    t.account_id = static_cast<std::uint64_t>(q.column_int64(1));
    t.kind = static_cast<TokenKindCode>(q.column_int64(2));
    t.name = q.column_bytes(3);
    t.digest = q.column_bytes(4);
    t.scopes = rows::split(q.column_bytes(5));
    t.created_at = rows::time_of(q.column_int64(6));
    t.expires_at = opt_time(q, 7);
    t.revoked_at = opt_time(q, 8);
    return t;
}

/// One account by a unique column: SQLITE_OK with `out` set (kNotFound when there is none).
template <class Bind>
int one_account(Db& db, std::string_view sql, Bind bind, Result<AccountRecord>& out) {
    Use q(db, sql);
    bind(q);
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
        out = account_of(q);
        return SQLITE_OK;
    }
    if (rc == SQLITE_DONE) {
        out = make_error_code(Errc::kNotFound);
        return SQLITE_OK;
    }
    return rc;
}

int one_token(Db& db, std::string_view sql, std::string_view text_key, std::int64_t int_key,
              Result<TokenRecord>& out) {
    Use q(db, sql);
    if (text_key.empty()) {
        q.int64(1, int_key);
    } else {
        q.text(1, text_key);
    }
    const int rc = q.step();
    if (rc == SQLITE_ROW) {
        out = token_of(q);
        return SQLITE_OK;
    }
    if (rc == SQLITE_DONE) {
        out = make_error_code(Errc::kNotFound);
        return SQLITE_OK;
    }
    return rc;
}

void SqliteStore::create_account(AccountRecord account, Completion<AccountRecord> done) {
    submit_write<AccountRecord>(
        std::move(done),
        [a = std::move(account)](Db& db, BatchStats&, Result<AccountRecord>& out) mutable -> int {
            if (!rows::joinable(a.roles)) {
                out = make_error_code(Errc::kInvalidArgument);
                return SQLITE_OK;
            }
            const int rc = Use(db, kAccountInsertSql)
                               .text(1, a.username)
                               .text(2, rows::fold(a.username))
                               .opt_text(3, a.email)
                               .opt_text(4, rows::fold_opt(a.email))
                               .text(5, a.password_hash)
                               .int64(6, a.disabled ? 1 : 0)
                               .int64(7, a.guest ? 1 : 0)
                               .text(8, rows::join(a.roles))
                               .opt_text(9, a.external_id)
                               .int64(10, rows::ms(a.created_at))
                               .opt_int64(11, rows::ms(a.last_login_at))
                               .run();
            if (is_constraint(rc)) {
                out = make_error_code(Errc::kAlreadyExists);  // the statement alone was rolled back
                return SQLITE_OK;
            }
            if (rc != SQLITE_OK) {
                return rc;
            }
            a.id = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db.get()));
            a.created_at = rows::time_of(rows::ms(a.created_at));  // the stored precision
            out = std::move(a);
            return SQLITE_OK;
        });
}

void SqliteStore::account_by_id(std::uint64_t id, Completion<AccountRecord> done) {
    submit_read<AccountRecord>(
        std::move(done), [id](Db& db, BatchStats&, Result<AccountRecord>& out) {
            return one_account(
                db, kAccountByIdSql, [&](Use& q) { q.int64(1, clamp_to_int64(id)); }, out);
        });
}

void SqliteStore::account_by_name(std::string username, Completion<AccountRecord> done) {
    submit_read<AccountRecord>(
        std::move(done),
        [key = rows::fold(username)](Db& db, BatchStats&, Result<AccountRecord>& out) {
            return one_account(
                db, kAccountByNameSql, [&](Use& q) { q.text(1, key); }, out);
        });
}

void SqliteStore::account_by_external_id(std::string external_id, Completion<AccountRecord> done) {
    submit_read<AccountRecord>(
        std::move(done),
        [external_id = std::move(external_id)](Db& db, BatchStats&, Result<AccountRecord>& out) {
            return one_account(
                db, kAccountByExternalSql, [&](Use& q) { q.text(1, external_id); }, out);
        });
}

void SqliteStore::list_accounts(AccountFilter filter, Completion<std::vector<AccountRecord>> done) {
    submit_read<std::vector<AccountRecord>>(
        std::move(done),
        [f = std::move(filter)](Db& db, BatchStats&, Result<std::vector<AccountRecord>>& out) {
            Use q(db, kAccountListSql);
            if (f.disabled) {
                q.int64(1, *f.disabled ? 1 : 0);
            }
            // A role that could not be stored matches nothing (as on PostgreSQL).
            if (f.role && (f.role->empty() || f.role->find(',') != std::string::npos)) {
                out = std::vector<AccountRecord>{};
                return SQLITE_OK;
            }
            q.opt_text(2, f.role);
            std::optional<std::string> lower;
            std::optional<std::string> upper;
            if (f.username_prefix && !f.username_prefix->empty()) {
                lower = rows::fold(*f.username_prefix);
                upper = prefix_upper_bound(*lower);
            }
            q.opt_text(3, lower).opt_text(4, upper);
            q.int64(5, f.after_id ? clamp_to_int64(*f.after_id) : 0);
            q.int64(6, clamp_to_int64(f.limit));
            std::vector<AccountRecord> accounts;
            int rc = SQLITE_OK;
            while ((rc = q.step()) == SQLITE_ROW) {
                accounts.push_back(account_of(q));
            }
            if (rc != SQLITE_DONE) {
                return rc;
            }
            out = std::move(accounts);
            return SQLITE_OK;
        });
}

void SqliteStore::update_account(std::uint64_t id, AccountPatch patch,
                                 Completion<AccountRecord> done) {
    submit_write<AccountRecord>(
        std::move(done),
        [id, p = std::move(patch)](Db& db, BatchStats&, Result<AccountRecord>& out) -> int {
            // Read, change, write back: inside the writer's transaction, so nothing comes between.
            Result<AccountRecord> current = make_error_code(Errc::kNotFound);
            int rc = one_account(
                db, kAccountByIdSql, [&](Use& q) { q.int64(1, clamp_to_int64(id)); }, current);
            if (rc != SQLITE_OK || !current) {
                out = current;
                return rc;
            }
            AccountRecord a = std::move(*current);
            if (p.email) {
                a.email = *p.email;
            }
            if (p.password_hash) {
                a.password_hash = *p.password_hash;
            }
            if (p.disabled) {
                a.disabled = *p.disabled;
            }
            if (p.roles) {
                if (!rows::joinable(*p.roles)) {
                    out = make_error_code(Errc::kInvalidArgument);
                    return SQLITE_OK;
                }
                a.roles = *p.roles;
            }
            if (p.last_login_at) {
                a.last_login_at = rows::time_of(rows::ms(*p.last_login_at));
            }
            rc = Use(db, kAccountUpdateSql)
                     .int64(1, clamp_to_int64(id))
                     .opt_text(2, a.email)
                     .opt_text(3, rows::fold_opt(a.email))
                     .text(4, a.password_hash)
                     .int64(5, a.disabled ? 1 : 0)
                     .text(6, rows::join(a.roles))
                     .opt_int64(7, rows::ms(a.last_login_at))
                     .run();
            if (is_constraint(rc)) {
                out = make_error_code(Errc::kAlreadyExists);
                return SQLITE_OK;
            }
            if (rc != SQLITE_OK) {
                return rc;
            }
            out = std::move(a);
            return SQLITE_OK;
        });
}

void SqliteStore::delete_account(std::uint64_t id, Completion<void> done) {
    submit_write<void>(std::move(done), [id](Db& db, BatchStats&, Result<void>& out) -> int {
        const int rc = Use(db, kAccountDeleteSql).int64(1, clamp_to_int64(id)).run();
        if (rc == SQLITE_OK && sqlite3_changes64(db.get()) == 0) {
            out = make_error_code(Errc::kNotFound);
        }
        return rc;
    });
}

void SqliteStore::insert_token(TokenRecord token, Completion<TokenRecord> done) {
    submit_write<TokenRecord>(
        std::move(done),
        [t = std::move(token)](Db& db, BatchStats&, Result<TokenRecord>& out) mutable -> int {
            if (!rows::joinable(t.scopes)) {
                out = make_error_code(Errc::kInvalidArgument);
                return SQLITE_OK;
            }
            const int rc = Use(db, kTokenInsertSql)
                               .int64(1, clamp_to_int64(t.account_id))
                               .int64(2, static_cast<std::int64_t>(t.kind))
                               .text(3, t.name)
                               .text(4, t.digest)
                               .text(5, rows::join(t.scopes))
                               .int64(6, rows::ms(t.created_at))
                               .opt_int64(7, rows::ms(t.expires_at))
                               .opt_int64(8, rows::ms(t.revoked_at))
                               .run();
            if (is_constraint(rc)) {
                // A digest already stored, or no such account (the foreign key).
                out = make_error_code(rc == SQLITE_CONSTRAINT_FOREIGNKEY ? Errc::kNotFound
                                                                         : Errc::kAlreadyExists);
                return SQLITE_OK;
            }
            if (rc != SQLITE_OK) {
                return rc;
            }
            t.id = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db.get()));
            t.created_at = rows::time_of(rows::ms(t.created_at));
            if (t.expires_at) {
                t.expires_at = rows::time_of(rows::ms(*t.expires_at));
            }
            out = std::move(t);
            return SQLITE_OK;
        });
}

void SqliteStore::token_by_digest(std::string digest, Completion<TokenLookup> done) {
    submit_read<TokenLookup>(
        std::move(done),
        [digest = std::move(digest)](Db& db, BatchStats&, Result<TokenLookup>& out) -> int {
            Result<TokenRecord> token = make_error_code(Errc::kNotFound);
            int rc = one_token(db, kTokenByDigestSql, digest, 0, token);
            if (rc != SQLITE_OK || !token) {
                out = token.error();
                return rc;
            }
            Result<AccountRecord> account = make_error_code(Errc::kNotFound);
            rc = one_account(
                db, kAccountByIdSql, [&](Use& q) { q.int64(1, clamp_to_int64(token->account_id)); },
                account);
            if (rc != SQLITE_OK || !account) {
                out = account.error();
                return rc;
            }
            out = TokenLookup{std::move(*token), std::move(*account)};
            return SQLITE_OK;
        });
}

void SqliteStore::token_by_id(std::uint64_t id, Completion<TokenRecord> done) {
    submit_read<TokenRecord>(std::move(done), [id](Db& db, BatchStats&, Result<TokenRecord>& out) {
        return one_token(db, kTokenByIdSql, {}, clamp_to_int64(id), out);
    });
}

void SqliteStore::list_tokens(TokenFilter filter, Completion<std::vector<TokenRecord>> done) {
    submit_read<std::vector<TokenRecord>>(
        std::move(done),
        [f = std::move(filter)](Db& db, BatchStats&, Result<std::vector<TokenRecord>>& out) {
            Use q(db, kTokenListSql);
            if (f.account_id) {
                q.int64(1, clamp_to_int64(*f.account_id));
            }
            if (f.kind) {
                q.int64(2, static_cast<std::int64_t>(*f.kind));
            }
            q.int64(3, f.include_revoked ? 1 : 0);
            q.int64(4, f.after_id ? clamp_to_int64(*f.after_id) : 0);
            q.int64(5, clamp_to_int64(f.limit));
            std::vector<TokenRecord> tokens;
            int rc = SQLITE_OK;
            while ((rc = q.step()) == SQLITE_ROW) {
                tokens.push_back(token_of(q));
            }
            if (rc != SQLITE_DONE) {
                return rc;
            }
            out = std::move(tokens);
            return SQLITE_OK;
        });
}

void SqliteStore::revoke_token(std::uint64_t id, TimePoint at, Completion<TokenRecord> done) {
    submit_write<TokenRecord>(
        std::move(done), [id, at](Db& db, BatchStats&, Result<TokenRecord>& out) -> int {
            const int rc =
                Use(db, kTokenRevokeSql).int64(1, clamp_to_int64(id)).int64(2, rows::ms(at)).run();
            if (rc != SQLITE_OK) {
                return rc;
            }
            return one_token(db, kTokenByIdSql, {}, clamp_to_int64(id), out);
        });
}

void SqliteStore::purge_tokens(TimePoint before, Completion<std::uint64_t> done) {
    submit_write<std::uint64_t>(
        std::move(done), [before](Db& db, BatchStats&, Result<std::uint64_t>& out) -> int {
            const int rc = Use(db, kTokenPurgeSql).int64(1, rows::ms(before)).run();
            if (rc == SQLITE_OK) {
                out = static_cast<std::uint64_t>(sqlite3_changes64(db.get()));
            }
            return rc;
        });
}

void SqliteStore::append_audit(AuditEntry entry, Completion<AuditEntry> done) {
    submit_write<AuditEntry>(
        std::move(done),
        [e = std::move(entry)](Db& db, BatchStats&, Result<AuditEntry>& out) mutable -> int {
            const int rc = Use(db, kAuditInsertSql)
                               .int64(1, rows::ms(e.at))
                               .text(2, e.actor)
                               .text(3, e.action)
                               .text(4, e.target)
                               .text(5, e.peer)
                               .text(6, e.detail)
                               .run();
            if (rc != SQLITE_OK) {
                return rc;
            }
            e.id = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db.get()));
            e.at = rows::time_of(rows::ms(e.at));
            out = std::move(e);
            return SQLITE_OK;
        });
}

void SqliteStore::list_audit(AuditFilter filter, Completion<std::vector<AuditEntry>> done) {
    submit_read<std::vector<AuditEntry>>(
        std::move(done),
        [f = std::move(filter)](Db& db, BatchStats&, Result<std::vector<AuditEntry>>& out) {
            Use q(db, kAuditListSql);
            q.opt_text(1, f.actor).opt_text(2, f.action);
            q.int64(3, f.before_id ? clamp_to_int64(*f.before_id)
                                   : std::numeric_limits<std::int64_t>::max());
            q.int64(4, clamp_to_int64(f.limit));
            std::vector<AuditEntry> entries;
            int rc = SQLITE_OK;
            while ((rc = q.step()) == SQLITE_ROW) {
                AuditEntry e;
                e.id = static_cast<std::uint64_t>(q.column_int64(0));
                e.at = rows::time_of(q.column_int64(1));
                e.actor = q.column_bytes(2);
                e.action = q.column_bytes(3);
                e.target = q.column_bytes(4);
                e.peer = q.column_bytes(5);
                e.detail = q.column_bytes(6);
                entries.push_back(std::move(e));
            }
            if (rc != SQLITE_DONE) {
                return rc;
            }
            out = std::move(entries);
            return SQLITE_OK;
        });
}

}  // namespace

std::string sqlite_path(const StorageConfig& config, const std::string& data_dir) {
    const fs::path file(config.sqlite_file);
    return file.is_absolute() ? file.string() : (fs::path(data_dir) / file).string();
}

std::unique_ptr<Store> open_sqlite_store(const StorageConfig& config, const std::string& data_dir,
                                         core::MetricsRegistry& metrics, SqliteTestHooks hooks) {
    const std::string path = sqlite_path(config, data_dir);
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        fs::create_directories(parent, ec);
        if (ec) {
            throw std::runtime_error(parent.string() +
                                     ": cannot create the data directory: " + ec.message());
        }
    }
    const MigrationReport report = migrate_sqlite(path);
    util::logger("store")->info("{}", report.summary());
    return std::make_unique<SqliteStore>(config, path, report.to_version, metrics,
                                         std::move(hooks));
}

}  // namespace hearth::store
