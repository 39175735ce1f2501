#include "store/postgres/postgres_store.hpp"
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "pg/pg.hpp"
#include "store/postgres/postgres_migrations.hpp"
#include "store/sql/sql.hpp"
#include "store/sql_store.hpp"
#include "util/log.hpp"
#include "util/utf8.hpp"

namespace hearth::store {
namespace {

using detail::BatchStats;
using detail::Clock;
using detail::ErrorKind;
using detail::StoreFailure;

// The largest value PostgreSQL stores in one field.
constexpr std::size_t kMaxFieldBytes = (std::size_t{1} << 30) - 1;

constexpr std::string_view kUniqueViolation = "23505";

// The health probe: a real write, one row, changing nothing.
constexpr sql::Statement kProbe{"UPDATE hearth_schema SET version = version WHERE one = 1"};

/// The type OID of a declared parameter (pg_type.h is a server header). Mailbox keys and bodies
/// are BYTEA: keys compare as bytes and may hold any byte.
Oid oid_of(sql::Type type) noexcept {
    switch (type) {
        case sql::Type::kInt64:
            return 20;  // int8
        case sql::Type::kBool:
            return 16;  // bool
        case sql::Type::kDouble:
            return 701;  // float8
        case sql::Type::kText:
            return 25;  // text
        case sql::Type::kBytes:
        case sql::Type::kBlob:
            return 17;  // bytea
        case sql::Type::kTextList:
            return 1009;  // text[]
    }
    return 0;
}

/// The statement's SQL with ?N placeholders as PostgreSQL's $N (outside quoted literals).
std::string postgres_placeholders(std::string sql) {
    bool quoted = false;
    for (std::size_t i = 0; i < sql.size(); ++i) {
        if (sql[i] == '\'') {
            quoted = !quoted;
        } else if (!quoted && sql[i] == '?' && i + 1 < sql.size() && sql[i + 1] >= '0' &&
                   sql[i + 1] <= '9') {
            sql[i] = '$';
        }
    }
    return sql;
}

// ---------------------------------------------------------------------------------------------
// Errors.

ErrorKind classify(std::string_view state) noexcept {
    if (state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03") {
        return ErrorKind::kConnection;  // connection exceptions, the server shutting down
    }
    if (state == "53100") {
        return ErrorKind::kFull;
    }
    if (state.starts_with("58")) {
        return ErrorKind::kIo;
    }
    if (state == "25006" || state == "42501") {
        return ErrorKind::kReadOnly;  // a read-only server (a standby) or missing privileges
    }
    if (state == "XX001" || state == "XX002") {
        return ErrorKind::kCorrupt;
    }
    if (state == "40001" || state == "40P01" || state == "55P03" || state == "57014") {
        return ErrorKind::kBusy;  // serialization failure, deadlock, lock_timeout, canceled
    }
    return ErrorKind::kOther;
}

std::string_view describe(ErrorKind kind) noexcept {
    switch (kind) {
        case ErrorKind::kFull:
            return "the database server's disk is full";
        case ErrorKind::kIo:
            return "the database server reported an I/O error";
        case ErrorKind::kReadOnly:
            return "the database refuses writes (a read-only server, or missing privileges)";
        case ErrorKind::kCorrupt:
            return "the database reports corrupt data";
        case ErrorKind::kBusy:
            return "a lock was held longer than storage.busy_timeout_ms, or a conflicting "
                   "transaction won (deadlock, serialization)";
        case ErrorKind::kOther:
            return "PostgreSQL reported an error";
        case ErrorKind::kQueueFull:
            return "the queue is full";
        case ErrorKind::kConnection:
            return "the database server cannot be reached";
        case ErrorKind::kQueueBytes:
            return "the queue holds its bytes bound";
    }
    return "unknown";
}

StoreFailure make_failure(ErrorKind kind, std::string_view state, std::string_view message) {
    return StoreFailure{
        kind, std::string(describe(kind)) + " (" +
                  (state.empty() ? std::string("no SQLSTATE") : "SQLSTATE " + std::string(state)) +
                  ": " + std::string(message) + ")"};
}

// ---------------------------------------------------------------------------------------------
// Results (binary format).

/// An integer column (BIGINT, INTEGER or SMALLINT: 8, 4 or 2 bytes, big-endian); 0 for NULL.
std::int64_t int64_in(const PGresult* r, int row, int column) {
    const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, column));
    const int length = PQgetlength(r, row, column);
    if (length != 8 && length != 4 && length != 2) {
        return 0;
    }
    std::uint64_t v = (p[0] & 0x80) != 0 ? ~std::uint64_t{0} : 0;  // the sign, extended
    for (int i = 0; i < length; ++i) {
        v = (v << 8) | p[i];
    }
    return static_cast<std::int64_t>(v);
}

/// A DOUBLE PRECISION column (IEEE 754, big-endian); 0 for NULL.
double double_in(const PGresult* r, int row, int column) {
    if (PQgetlength(r, row, column) != 8) {
        return 0;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, column));
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v = (v << 8) | p[i];
    }
    return std::bit_cast<double>(v);
}

bool bool_in(const PGresult* r, int row, int column) {
    return PQgetlength(r, row, column) == 1 && PQgetvalue(r, row, column)[0] != 0;
}

std::string bytes_in(const PGresult* r, int row, int column) {
    return std::string(PQgetvalue(r, row, column),
                       static_cast<std::size_t>(PQgetlength(r, row, column)));
}

/// Text PostgreSQL accepts: UTF-8 without NUL (the database's encoding must be UTF8).
bool storable_text(std::string_view s) noexcept {
    return s.find('\0') == std::string_view::npos && util::valid_utf8(s);
}

// ---------------------------------------------------------------------------------------------
// The dialect layer on PostgreSQL.

class PgDialect final : public sql::Dialect {
public:
    std::string octets(std::string_view expr) const override {
        return "octet_length(" + std::string(expr) + ")";
    }
    std::string in_list(std::string_view expr, std::string_view list) const override {
        return std::string(expr) + " = ANY (" + std::string(list) + ")";
    }
    std::string position(std::string_view needle, std::string_view haystack) const override {
        return "strpos(" + std::string(haystack) + ", " + std::string(needle) + ")";
    }
    // No byte range on text: its upper bound may not be valid UTF-8. starts_with needs no LIKE
    // escaping, and the column is COLLATE "C".
    std::string starts_with(std::string_view expr, std::string_view prefix,
                            std::string_view) const override {
        return "starts_with(" + std::string(expr) + ", " + std::string(prefix) + ")";
    }
    std::string returning_id(std::string_view column) const override {
        return " RETURNING " + std::string(column);
    }
    // Several nodes may write to one database.
    std::string_view for_update() const override { return " FOR UPDATE"; }
    std::string_view for_key_share() const override { return " FOR KEY SHARE"; }
};

const PgDialect kDialect;

struct ConnSettings {
    std::string url;
    std::string name;  // the URL without its password
    std::int64_t lock_timeout_ms = 5'000;
    bool synchronous_commit_off = false;  // the writer, with [storage] synchronous != full
    std::chrono::milliseconds reconnect_interval{1'000};
};

class PgConn;

/// A statement prepared on one connection ("hearth_<n>"), with its parameters and result.
/// Parameters and results are in binary format, so bytes need no escaping; a list is a text[]
/// literal in text format.
class PgCursor final : public sql::Cursor {
public:
    PgCursor(PgConn& conn, const sql::Statement& statement, std::string name)
        : conn_(conn), statement_(&statement), name_(std::move(name)) {}

    /// Makes this the cursor of a statement that could not be prepared: it fails at once.
    void unprepared(const sql::Statement& statement) {
        statement_ = &statement;
        failed_ = true;
    }

    void bind_int64(std::int64_t value) override {
        const std::size_t i = index({sql::Type::kInt64});
        put_be64(i, static_cast<std::uint64_t>(value));
    }
    void bind_bool(bool value) override {
        set(index({sql::Type::kBool}), value ? &kTrue : &kFalse, 1, 1);
    }
    void bind_double(double value) override {
        const std::size_t i = index({sql::Type::kDouble});
        put_be64(i, std::bit_cast<std::uint64_t>(value));
    }
    void bind_text(std::string_view value) override {
        set(index({sql::Type::kText, sql::Type::kBytes, sql::Type::kBlob}), value.data(),
            value.size(), 1);
    }
    void bind_list(std::span<const std::string> items) override {
        const std::size_t i = index({sql::Type::kTextList});
        std::string& literal = lists_[i];
        literal = "{";
        for (const auto& item : items) {
            literal += literal.size() > 1 ? ",\"" : "\"";
            for (char c : item) {
                if (c == '"' || c == '\\') {
                    literal += '\\';
                }
                literal += c;
            }
            literal += '"';
        }
        literal += '}';
        set(i, literal.c_str(), literal.size(), 0);
    }
    void bind_null() override {
        set(index({sql::Type::kInt64, sql::Type::kBool, sql::Type::kDouble, sql::Type::kText,
                   sql::Type::kBytes, sql::Type::kBlob, sql::Type::kTextList}),
            nullptr, 0, 1);
    }
    void report_conflict() override { report_conflict_ = true; }

    bool next() override {
        if (!executed_) {
            executed_ = true;
            execute();
            row_ = 0;
        } else if (result_ != nullptr) {
            ++row_;
        }
        return result_ != nullptr && row_ < PQntuples(result_.get());
    }
    bool failed() const noexcept override { return failed_; }
    bool conflict() const noexcept override { return conflict_; }
    std::uint64_t changes() const override {
        if (result_ == nullptr) {
            return 0;
        }
        const char* text = PQcmdTuples(result_.get());
        std::uint64_t n = 0;
        (void)std::from_chars(text, text + std::strlen(text), n);
        return n;
    }
    std::int64_t inserted_id() const override {
        return result_ != nullptr && PQntuples(result_.get()) > 0 ? int64_in(result_.get(), 0, 0)
                                                                  : 0;
    }

    bool is_null(int column) const override {
        return PQgetisnull(result_.get(), row_, column) != 0;
    }
    std::int64_t int64_at(int column) const override {
        return int64_in(result_.get(), row_, column);
    }
    bool bool_at(int column) const override { return bool_in(result_.get(), row_, column); }
    double double_at(int column) const override { return double_in(result_.get(), row_, column); }
    std::string text_at(int column) const override { return bytes_in(result_.get(), row_, column); }

    void reset() override {
        result_.reset();
        bound_ = 0;
        row_ = 0;
        executed_ = failed_ = conflict_ = report_conflict_ = false;
    }

private:
    static constexpr std::size_t kMax = sql::Statement::kMaxParams;
    static constexpr char kTrue = 1;
    static constexpr char kFalse = 0;

    std::size_t index(std::initializer_list<sql::Type> ok) {
        sql::check_bind(*statement_, bound_, ok);
        return bound_++;
    }
    /// Parameter `i` as 8 big-endian bytes (int8 and float8 in binary format).
    void put_be64(std::size_t i, std::uint64_t v) {
        auto& buffer = ints_[i];
        for (int b = 7; b >= 0; --b) {
            buffer[static_cast<std::size_t>(b)] = static_cast<char>(v & 0xFF);
            v >>= 8;
        }
        set(i, buffer.data(), buffer.size(), 1);
    }
    void set(std::size_t i, const char* data, std::size_t size, int format) {
        values_[i] = data;
        lengths_[i] = static_cast<int>(size);
        formats_[i] = format;
    }
    void execute();

    PgConn& conn_;
    const sql::Statement* statement_;
    std::string name_;
    std::size_t bound_ = 0;
    std::array<const char*, kMax> values_{};
    std::array<int, kMax> lengths_{};
    std::array<int, kMax> formats_{};
    std::array<std::array<char, 8>, kMax> ints_{};
    std::array<std::string, kMax> lists_{};
    pg::ResultPtr result_;
    int row_ = 0;
    bool executed_ = false;
    bool failed_ = false;
    bool conflict_ = false;
    bool report_conflict_ = false;
};

/// One connection of the pool with its prepared statements, used by one thread (the writer or
/// one reader). Reconnects itself when it breaks. Statement failures are kept in `failure()`.
class PgConn final : public sql::Conn {
public:
    explicit PgConn(ConnSettings settings)
        : settings_(std::move(settings)), unprepared_(*this, kProbe, "") {}

    /// Connects now; throws std::runtime_error naming the database and libpq's cause (startup).
    void connect_or_throw() {
        if (!connect()) {
            throw std::runtime_error(settings_.name + ": " + failure_.message);
        }
    }

    /// Whether the connection is usable, reconnecting when it is not: at once after a working
    /// connection broke, then at most once per reconnect_interval (or whenever `force`).
    bool ensure_connected(bool force = false) {
        if (conn_ != nullptr && PQstatus(conn_.get()) == CONNECTION_OK) {
            return true;
        }
        if (!force && last_failed_attempt_ &&
            Clock::now() - *last_failed_attempt_ < settings_.reconnect_interval) {
            return false;  // failure_ still says why
        }
        return connect();
    }

    bool broken() const noexcept {
        return conn_ == nullptr || PQstatus(conn_.get()) != CONNECTION_OK;
    }

    /// Prepared on first use on this connection (PQprepare: one round trip, once).
    sql::Cursor& cursor(const sql::Statement& statement) override {
        if (auto it = cursors_.find(&statement); it != cursors_.end()) {
            return *it->second;
        }
        std::string name = "hearth_" + std::to_string(cursors_.size());
        const std::string sql = postgres_placeholders(statement.sql(kDialect));
        std::array<Oid, sql::Statement::kMaxParams> types{};
        const auto params = statement.params();
        std::transform(params.begin(), params.end(), types.begin(), oid_of);
        pg::ResultPtr r(PQprepare(conn_.get(), name.c_str(), sql.c_str(),
                                  static_cast<int>(params.size()), types.data()));
        if (!pg::ok(r.get())) {
            note_failure(r.get(), "preparing \"" + sql + "\": ");
            unprepared_.reset();
            unprepared_.unprepared(statement);
            return unprepared_;
        }
        return *cursors_
                    .emplace(&statement,
                             std::make_unique<PgCursor>(*this, statement, std::move(name)))
                    .first->second;
    }
    std::size_t max_field_bytes() const noexcept override { return kMaxFieldBytes; }
    bool storable_text(std::string_view value) const noexcept override {
        return hearth::store::storable_text(value);
    }
    bool fail(ErrorKind kind, std::string_view what) override {
        failure_ = make_failure(kind, "", what);
        return false;
    }

    /// Runs a statement without parameters (BEGIN, COMMIT, ROLLBACK, SAVEPOINT); false on
    /// failure.
    bool exec_simple(const char* sql) {
        pg::ResultPtr r(PQexec(conn_.get(), sql));
        if (pg::ok(r.get())) {
            return true;
        }
        note_failure(r.get());
        return false;
    }

    PGconn* get() const noexcept { return conn_.get(); }
    bool in_transaction() const noexcept {
        return conn_ != nullptr && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
    }

    const StoreFailure& failure() const noexcept { return failure_; }
    /// The SQLSTATE of the last failed statement ("" when the connection broke).
    const std::string& failed_state() const noexcept { return failed_state_; }

    void note_failure(const PGresult* r, const std::string& context = {}) {
        failed_state_ = pg::sqlstate(r);
        const ErrorKind kind = broken() ? ErrorKind::kConnection : classify(failed_state_);
        failure_ = make_failure(kind, failed_state_, context + pg::result_message(r, conn_.get()));
    }

private:
    bool connect() {
        cursors_.clear();  // a new session has none of the old one's prepared statements
        conn_.reset();
        std::string error;
        pg::ConnPtr conn = pg::connect(settings_.url, error);
        if (conn != nullptr) {
            error = set_up(conn.get());
        }
        if (!error.empty()) {
            last_failed_attempt_ = Clock::now();
            failure_ = make_failure(ErrorKind::kConnection, "", "cannot connect: " + error);
            return false;
        }
        last_failed_attempt_.reset();
        conn_ = std::move(conn);
        return true;
    }

    /// Session settings; "" or the error.
    std::string set_up(PGconn* conn) {
        auto run = [&](const std::string& sql) -> std::string {
            pg::ResultPtr r(PQexec(conn, sql.c_str()));
            return pg::ok(r.get()) ? std::string() : sql + ": " + pg::result_message(r.get(), conn);
        };
        // Lock waits end like SQLite's busy timeout: with kUnavailable ("busy"). 0 waits forever.
        std::string error = run("SET lock_timeout = " + std::to_string(settings_.lock_timeout_ms));
        if (error.empty() && settings_.synchronous_commit_off) {
            error = run("SET synchronous_commit = off");
        }
        return error;
    }

    const ConnSettings settings_;
    pg::ConnPtr conn_;
    std::unordered_map<const sql::Statement*, std::unique_ptr<PgCursor>> cursors_;
    PgCursor unprepared_;
    std::optional<Clock::time_point> last_failed_attempt_;
    StoreFailure failure_;
    std::string failed_state_;
};

void PgCursor::execute() {
    // A statement that may conflict runs in a savepoint of the writer's transaction, so that a
    // unique violation undoes this statement only and the batch goes on. Only when asked: each
    // savepoint is a subtransaction and two more round trips.
    if (report_conflict_ && !conn_.exec_simple("SAVEPOINT hearth_op")) {
        failed_ = true;
        return;
    }
    pg::ResultPtr r(PQexecPrepared(conn_.get(), name_.c_str(), static_cast<int>(bound_),
                                   values_.data(), lengths_.data(), formats_.data(),
                                   /*resultFormat=*/1));
    if (pg::ok(r.get())) {
        result_ = std::move(r);
    } else {
        conn_.note_failure(r.get());
        if (!report_conflict_ || conn_.broken() || conn_.failed_state() != kUniqueViolation ||
            !conn_.exec_simple("ROLLBACK TO SAVEPOINT hearth_op")) {
            failed_ = true;
            return;
        }
        conflict_ = true;
    }
    if (report_conflict_ && !conn_.exec_simple("RELEASE SAVEPOINT hearth_op")) {
        failed_ = true;
        result_.reset();
    }
}

// ---------------------------------------------------------------------------------------------
// The backend.

/// The PostgreSQL connections (the pool), and how a batch, a read and a probe run on them; the
/// queues, threads and order rules are the shared StoreExecutor's, the operations the
/// repositories' (see postgres_store.hpp).
class PostgresBackend final : public detail::ExecutorBackend {
public:
    PostgresBackend(const StorageConfig& config, std::string name, int schema_version,
                    std::size_t readers, const StoreTestHooks& hooks);
    ~PostgresBackend() override { log_->info("{}: store closed", name_); }
    PostgresBackend(const PostgresBackend&) = delete;
    PostgresBackend& operator=(const PostgresBackend&) = delete;

    std::optional<StoreFailure> run_batch(std::span<const std::unique_ptr<detail::ExecOp>> batch,
                                          std::size_t writes, BatchStats& stats) override;
    std::optional<StoreFailure> run_read(std::size_t reader, detail::ExecOp& op) override;
    bool probe() override;

private:
    const std::string name_;
    std::shared_ptr<spdlog::logger> log_;
    // The writer's connection is used by the writer thread only, each reader's by its thread.
    std::unique_ptr<PgConn> writer_conn_;
    std::vector<std::unique_ptr<PgConn>> reader_conns_;
};

PostgresBackend::PostgresBackend(const StorageConfig& config, std::string name, int schema_version,
                                 std::size_t readers, const StoreTestHooks& hooks)
    : name_(std::move(name)), log_(util::logger("store")) {
    ConnSettings settings{
        .url = config.postgres_url,
        .name = name_,
        .lock_timeout_ms = std::clamp<std::int64_t>(config.busy_timeout_ms, 0, 600'000),
        .synchronous_commit_off = false,
        .reconnect_interval = hooks.probe_interval,
    };
    ConnSettings writer_settings = settings;
    // full: the server's own setting (on, or stricter with synchronous replicas) applies.
    writer_settings.synchronous_commit_off = config.synchronous != "full";
    writer_conn_ = std::make_unique<PgConn>(std::move(writer_settings));
    writer_conn_->connect_or_throw();
    for (std::size_t i = 0; i < readers; ++i) {
        reader_conns_.push_back(std::make_unique<PgConn>(settings));
        reader_conns_.back()->connect_or_throw();
    }
    log_->info(
        "{}: store open (PostgreSQL, schema version {}, 1 writer and {} reader connection(s), "
        "group commit up to {} writes)",
        name_, schema_version, reader_conns_.size(), std::max<std::int64_t>(1, config.max_batch));
}

std::optional<StoreFailure> PostgresBackend::run_batch(
    std::span<const std::unique_ptr<detail::ExecOp>> batch, std::size_t /*writes*/,
    BatchStats& stats) {
    PgConn& conn = *writer_conn_;
    for (int attempt = 0;; ++attempt) {
        if (!conn.ensure_connected()) {
            return conn.failure();
        }
        stats = {};
        bool commit_sent = false;
        bool ok = conn.exec_simple("BEGIN");
        for (std::size_t i = 0; ok && i < batch.size(); ++i) {
            ok = static_cast<sql::Op&>(*batch[i]).execute(conn, stats);
        }
        if (ok) {
            commit_sent = true;
            ok = conn.exec_simple("COMMIT");
        }
        if (ok) {
            return std::nullopt;
        }
        StoreFailure failure = conn.failure();
        if (!conn.broken()) {
            // Nothing of a failed batch is stored; reads in it fail too (they saw uncommitted
            // data).
            if (conn.in_transaction()) {
                (void)conn.exec_simple("ROLLBACK");
            }
            return failure;
        }
        // The connection broke. Before COMMIT went out nothing was stored, so the batch runs
        // again, once, on a new connection (the old one may have died while idle: a server
        // restart). After it, the outcome is unknown: the batch fails.
        if (commit_sent || attempt > 0) {
            return failure;
        }
    }
}

std::optional<StoreFailure> PostgresBackend::run_read(std::size_t reader, detail::ExecOp& op) {
    PgConn& conn = *reader_conns_[reader];
    for (int attempt = 0;; ++attempt) {
        if (!conn.ensure_connected()) {
            return conn.failure();
        }
        BatchStats unused;
        if (static_cast<sql::Op&>(op).execute(conn, unused)) {
            return std::nullopt;
        }
        // Reads run outside a transaction: safe to run again on a new connection when the old
        // one turned out to be broken.
        if (!conn.broken() || attempt > 0) {
            return conn.failure();
        }
    }
}

bool PostgresBackend::probe() {
    // A real write: reaching the server is not enough when its disk is full.
    PgConn& conn = *writer_conn_;
    if (!conn.ensure_connected(/*force=*/true) || !sql::Query(conn, kProbe).run()) {
        log_->debug("{}: health probe failed: {}", name_, conn.failure().message);
        return false;
    }
    return true;
}

}  // namespace

std::unique_ptr<Store> open_postgres_store(const StorageConfig& config,
                                           core::MetricsRegistry& metrics, StoreTestHooks hooks) {
    if (config.postgres_url.empty()) {
        throw std::runtime_error(
            "storage.postgres_url: required when storage.driver = \"postgres\"");
    }
    const MigrationReport report = migrate_postgres(config.postgres_url);
    util::logger("store")->info("{}", report.summary());
    const std::string name = pg::mask_url(config.postgres_url);
    const auto readers =
        static_cast<std::size_t>(std::max<std::int64_t>(1, config.postgres_pool_size));
    auto backend =
        std::make_unique<PostgresBackend>(config, name, report.to_version, readers, hooks);
    return std::make_unique<SqlStore>(std::move(backend),
                                      executor_settings(config, name, readers, hooks), metrics);
}

}  // namespace hearth::store
