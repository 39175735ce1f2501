#include "store/sqlite/sqlite_store.hpp"
#include <algorithm>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "store/migrations.hpp"
#include "store/sql/sql.hpp"
#include "store/sql_store.hpp"
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

constexpr sql::Statement kBegin{"BEGIN IMMEDIATE"};
constexpr sql::Statement kBeginRead{"BEGIN"};
constexpr sql::Statement kCommit{"COMMIT"};
constexpr sql::Statement kRollback{"ROLLBACK"};
constexpr sql::Statement kUserVersion{"PRAGMA user_version"};

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
// The dialect layer on SQLite.

class SqliteDialect final : public sql::Dialect {
public:
    std::string octets(std::string_view expr) const override {
        return "length(CAST(" + std::string(expr) + " AS BLOB))";
    }
    std::string in_list(std::string_view expr, std::string_view list) const override {
        return std::string(expr) + " IN (SELECT value FROM json_each(" + std::string(list) + "))";
    }
    std::string position(std::string_view needle, std::string_view haystack) const override {
        return "instr(" + std::string(haystack) + ", " + std::string(needle) + ")";
    }
    // A key range, which the index on `expr` serves (no LIKE or GLOB escaping).
    std::string starts_with(std::string_view expr, std::string_view prefix,
                            std::string_view upper) const override {
        const std::string e(expr);
        const std::string u(upper);
        return "(" + e + " >= " + std::string(prefix) + " AND (" + u + " IS NULL OR " + e + " < " +
               u + "))";
    }
    std::string returning_id(std::string_view) const override { return {}; }
    // One writer connection holds the whole database for its transaction.
    std::string_view for_update() const override { return ""; }
    std::string_view for_key_share() const override { return ""; }
};

const SqliteDialect kDialect;

class Db;

/// A prepared statement of one connection. Text and blobs are bound without copying
/// (SQLITE_STATIC): Query's contract is that they outlive the run.
class SqliteCursor final : public sql::Cursor {
public:
    SqliteCursor(Db& db, const sql::Statement& statement, sqlite3_stmt* stmt)
        : db_(db), statement_(&statement), stmt_(stmt) {}
    ~SqliteCursor() override { sqlite3_finalize(stmt_); }
    SqliteCursor(const SqliteCursor&) = delete;
    SqliteCursor& operator=(const SqliteCursor&) = delete;

    /// Makes this the cursor of a statement that could not be prepared: it fails at once.
    void unprepared(const sql::Statement& statement) {
        statement_ = &statement;
        failed_ = true;
    }

    void bind_int64(std::int64_t value) override {
        const int i = index({sql::Type::kInt64});
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_int64(stmt_, i, value);
        }
    }
    void bind_bool(bool value) override {
        const int i = index({sql::Type::kBool});
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_int64(stmt_, i, value ? 1 : 0);
        }
    }
    void bind_double(double value) override {
        const int i = index({sql::Type::kDouble});
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_double(stmt_, i, value);
        }
    }
    void bind_text(std::string_view value) override {
        const int i = index({sql::Type::kText, sql::Type::kBytes, sql::Type::kBlob});
        if (rc_ != SQLITE_OK) {
            return;
        }
        // Keys (kBytes) are TEXT with the BINARY collation: they compare as bytes.
        rc_ = statement_->params()[static_cast<std::size_t>(i - 1)] == sql::Type::kBlob
                  ? sqlite3_bind_blob64(stmt_, i, value.data(), value.size(), SQLITE_STATIC)
                  : sqlite3_bind_text64(stmt_, i, value.data(), value.size(), SQLITE_STATIC,
                                        SQLITE_UTF8);
    }
    /// A JSON array, for json_each (SqliteDialect::in_list).
    void bind_list(std::span<const std::string> items) override {
        const int i = index({sql::Type::kTextList});
        std::string json = "[";
        for (const auto& item : items) {
            json += json.size() > 1 ? ",\"" : "\"";
            for (char c : item) {
                if (c == '"' || c == '\\') {
                    json += '\\';
                    json += c;
                } else if (static_cast<unsigned char>(c) < 0x20) {
                    static constexpr char kHex[] = "0123456789abcdef";
                    json += "\\u00";
                    json += kHex[(c >> 4) & 0xF];
                    json += kHex[c & 0xF];
                } else {
                    json += c;
                }
            }
            json += '"';
        }
        json += ']';
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_text64(stmt_, i, json.data(), json.size(), SQLITE_TRANSIENT,
                                      SQLITE_UTF8);
        }
    }
    void bind_null() override {
        const int i =
            index({sql::Type::kInt64, sql::Type::kBool, sql::Type::kDouble, sql::Type::kText,
                   sql::Type::kBytes, sql::Type::kBlob, sql::Type::kTextList});
        if (rc_ == SQLITE_OK) {
            rc_ = sqlite3_bind_null(stmt_, i);
        }
    }
    void report_conflict() override { report_conflict_ = true; }

    bool next() override;
    bool failed() const noexcept override { return failed_; }
    bool conflict() const noexcept override { return conflict_; }
    std::uint64_t changes() const override;
    std::int64_t inserted_id() const override;

    bool is_null(int column) const override {
        return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
    }
    std::int64_t int64_at(int column) const override { return sqlite3_column_int64(stmt_, column); }
    bool bool_at(int column) const override { return sqlite3_column_int64(stmt_, column) != 0; }
    double double_at(int column) const override { return sqlite3_column_double(stmt_, column); }
    std::string text_at(int column) const override {
        // sqlite3_column_blob first, then the size: the documented order.
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
        return data != nullptr ? std::string(data, size) : std::string();
    }

    void reset() override {
        // Holds no read snapshot and no pointer into the caller's strings any more.
        if (stmt_ != nullptr) {
            sqlite3_reset(stmt_);
            sqlite3_clear_bindings(stmt_);
        }
        rc_ = SQLITE_OK;
        bound_ = 0;
        done_ = failed_ = conflict_ = report_conflict_ = false;
    }

private:
    int index(std::initializer_list<sql::Type> ok) {
        sql::check_bind(*statement_, bound_, ok);
        return static_cast<int>(++bound_);
    }

    Db& db_;
    const sql::Statement* statement_;
    sqlite3_stmt* stmt_;
    int rc_ = SQLITE_OK;  // the first failed bind
    std::size_t bound_ = 0;
    bool done_ = false;
    bool failed_ = false;
    bool conflict_ = false;
    bool report_conflict_ = false;
};

/// One SQLite connection with its prepared statements. Used by one thread only (the writer, or
/// one reader), hence SQLITE_OPEN_NOMUTEX.
class Db final : public sql::Conn {
public:
    enum class Mode : std::uint8_t { kReadWrite, kReadOnly };

    Db(const std::string& path, Mode mode, int busy_timeout_ms)
        : path_(path), unprepared_(*this, kBegin, nullptr) {
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
    ~Db() override {
        cursors_.clear();  // finalized before the connection closes
        sqlite3_close(db_);
    }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    sql::Cursor& cursor(const sql::Statement& statement) override {
        if (auto it = cursors_.find(&statement); it != cursors_.end()) {
            return *it->second;
        }
        const std::string sql = statement.sql(kDialect);
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) {
            note(rc);
            unprepared_.reset();
            unprepared_.unprepared(statement);
            return unprepared_;
        }
        return *cursors_.emplace(&statement, std::make_unique<SqliteCursor>(*this, statement, stmt))
                    .first->second;
    }
    std::size_t max_field_bytes() const noexcept override {
        return static_cast<std::size_t>(sqlite3_limit(db_, SQLITE_LIMIT_LENGTH, -1));
    }
    bool storable_text(std::string_view) const noexcept override { return true; }
    bool fail(ErrorKind kind, std::string_view what) override {
        failure_ = StoreFailure{kind, std::string(describe(kind)) + " (" + std::string(what) + ")"};
        return false;
    }

    /// Keeps the failure of a statement, in SQLite's words.
    void note(int rc) { failure_ = failure_of(rc, sqlite3_errmsg(db_)); }
    void note(int rc, std::string_view detail) { failure_ = failure_of(rc, detail); }
    const StoreFailure& failure() const noexcept { return failure_; }

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
    bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

private:
    std::string path_;
    sqlite3* db_ = nullptr;
    std::unordered_map<const sql::Statement*, std::unique_ptr<SqliteCursor>> cursors_;
    SqliteCursor unprepared_;
    StoreFailure failure_;
};

bool SqliteCursor::next() {
    if (done_ || failed_ || conflict_) {
        return false;
    }
    if (rc_ != SQLITE_OK) {
        failed_ = true;
        db_.note(rc_);
        return false;
    }
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) {
        return true;
    }
    done_ = true;
    if (rc == SQLITE_DONE) {
        return false;
    }
    // A failed statement is undone by itself (ABORT); the transaction goes on.
    if (report_conflict_ && (rc & 0xFF) == SQLITE_CONSTRAINT) {
        conflict_ = true;
        return false;
    }
    failed_ = true;
    db_.note(rc);
    return false;
}

std::uint64_t SqliteCursor::changes() const {
    return static_cast<std::uint64_t>(sqlite3_changes64(db_.get()));
}

std::int64_t SqliteCursor::inserted_id() const {
    return sqlite3_last_insert_rowid(db_.get());
}

// ---------------------------------------------------------------------------------------------
// The backend.

/// The SQLite connections, and how a batch, a read and a probe run on them; the queues, threads
/// and order rules are the shared StoreExecutor's, the operations the repositories' (see
/// sqlite_store.hpp).
class SqliteBackend final : public detail::ExecutorBackend {
public:
    SqliteBackend(const StorageConfig& config, std::string path, int schema_version,
                  std::size_t readers, const SqliteTestHooks& hooks);
    ~SqliteBackend() override { log_->info("{}: store closed", path_); }
    SqliteBackend(const SqliteBackend&) = delete;
    SqliteBackend& operator=(const SqliteBackend&) = delete;

    std::optional<StoreFailure> run_batch(std::span<const std::unique_ptr<detail::ExecOp>> batch,
                                          std::size_t writes, BatchStats& stats) override;
    std::optional<StoreFailure> run_read(std::size_t reader, detail::ExecOp& op) override;
    bool probe() override;

private:
    const std::string path_;
    std::shared_ptr<spdlog::logger> log_;
    // The writer's is used by the writer thread only, each reader's by its thread.
    std::unique_ptr<Db> writer_db_;
    std::vector<std::unique_ptr<Db>> reader_dbs_;
};

SqliteBackend::SqliteBackend(const StorageConfig& config, std::string path, int schema_version,
                             std::size_t readers, const SqliteTestHooks& hooks)
    : path_(std::move(path)), log_(util::logger("store")) {
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
    if (!hooks.writer_setup_sql.empty()) {
        writer_db_->exec_or_throw(hooks.writer_setup_sql);
    }
    // Readers only read (a read-only connection cannot write by mistake), so foreign keys and
    // synchronous do not apply to them.
    for (std::size_t i = 0; i < readers; ++i) {
        reader_dbs_.push_back(std::make_unique<Db>(path_, Db::Mode::kReadOnly, busy_timeout_ms));
    }
    log_->info(
        "{}: store open (schema version {}, synchronous={}, {} reader thread(s), group "
        "commit up to {} writes)",
        path_, schema_version, config.synchronous, reader_dbs_.size(),
        std::max<std::int64_t>(1, config.max_batch));
}

std::optional<StoreFailure> SqliteBackend::run_batch(
    std::span<const std::unique_ptr<detail::ExecOp>> batch, std::size_t writes, BatchStats& stats) {
    Db& db = *writer_db_;
    bool ok = false;
    try {
        // A batch of reads only needs no write lock.
        ok = sql::Query(db, writes > 0 ? kBegin : kBeginRead).run();
        for (std::size_t i = 0; ok && i < batch.size(); ++i) {
            ok = static_cast<sql::Op&>(*batch[i]).execute(db, stats);
        }
        if (ok) {
            ok = sql::Query(db, kCommit).run();
        }
    } catch (const std::exception& e) {
        // Only allocation failures can get here.
        ok = false;
        db.note(SQLITE_NOMEM, e.what());
    }
    if (ok) {
        return std::nullopt;
    }
    StoreFailure failure = db.failure();  // before the rollback could replace it
    // SQLite rolls some errors back by itself; whatever is left open is rolled back here, so
    // nothing of a failed batch is stored. Reads in it fail too: they saw uncommitted data.
    if (db.in_transaction()) {
        (void)sql::Query(db, kRollback).run();
    }
    return failure;
}

std::optional<StoreFailure> SqliteBackend::run_read(std::size_t reader, detail::ExecOp& op) {
    Db& db = *reader_dbs_[reader];
    BatchStats unused;
    try {
        if (static_cast<sql::Op&>(op).execute(db, unused)) {
            return std::nullopt;
        }
    } catch (const std::exception& e) {
        db.note(SQLITE_NOMEM, e.what());
    }
    return db.failure();
}

bool SqliteBackend::probe() {
    // A real write (the header page, rewritten with the version read under the write lock, so a
    // concurrent `hearth migrate` is never undone): only a write shows that the disk takes
    // writes again.
    Db& db = *writer_db_;
    bool ok = sql::Query(db, kBegin).run();
    std::int64_t version = 0;
    if (ok) {
        sql::Query q(db, kUserVersion);
        ok = q.next();
        if (ok) {
            version = q.int64_at(0);
        }
    }
    if (ok) {
        // PRAGMA values cannot be bound; the version is an integer we just read.
        const std::string set = "PRAGMA user_version = " + std::to_string(version);
        const int rc = sqlite3_exec(db.get(), set.c_str(), nullptr, nullptr, nullptr);
        ok = rc == SQLITE_OK;
    }
    if (ok) {
        ok = sql::Query(db, kCommit).run();
    }
    if (!ok) {
        log_->debug("{}: health probe failed: {}", path_, sqlite3_errmsg(db.get()));
        if (db.in_transaction()) {
            (void)sql::Query(db, kRollback).run();
        }
    }
    return ok;
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
    const auto readers = static_cast<std::size_t>(std::max<std::int64_t>(1, config.reader_threads));
    auto backend = std::make_unique<SqliteBackend>(config, path, report.to_version, readers, hooks);
    return std::make_unique<SqlStore>(std::move(backend),
                                      executor_settings(config, path, readers, hooks), metrics);
}

}  // namespace hearth::store
