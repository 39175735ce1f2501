#include "store/postgres/postgres_store.hpp"
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include <hearth/account_store.hpp>

#include "pg/pg.hpp"
#include "store/account_rows.hpp"
#include "store/postgres/postgres_migrations.hpp"
#include "util/log.hpp"
#include "util/utf8.hpp"

namespace hearth::store {
namespace {

using detail::BatchStats;
using detail::Clock;
using detail::ErrorKind;
using detail::StoreFailure;

// Type OIDs of the parameters (pg_type.h is a server header).
constexpr Oid kBool = 16;
constexpr Oid kInt8 = 20;
constexpr Oid kBytea = 17;
constexpr Oid kText = 25;
constexpr Oid kTextArray = 1009;

// The largest value PostgreSQL stores in one field.
constexpr std::size_t kMaxFieldBytes = (std::size_t{1} << 30) - 1;

// ---------------------------------------------------------------------------------------------
// Statements: prepared once per connection, by index (the statement's name is "hearth_<index>").
// The SQL mirrors the SQLite store's (sqlite_store.cpp), in PostgreSQL's dialect; keys are
// BYTEA, so they compare as bytes in both.

enum class Stmt : std::uint8_t {
    kInsert,
    kUsage,
    kOldestBytes,
    kExpire,
    kDepth,
    kDepthAll,
    kDepthFrom,
    kDepthRange,
    kDropOldest,
    kRead,
    kReadAll,
    kReadFrom,
    kReadRange,
    kRemove,
    kRemoveUpTo,
    kLogInsert,
    kLogQueryByRoom,
    kLogQueryByUser,
    kLogQuery,
    kLogPruneOld,
    kLogCount,
    kLogPruneOldest,
    kLogPruneBytes,
    kProbe,
    kAccountInsert,
    kAccountById,
    kAccountByName,
    kAccountByExternalId,
    kAccountList,
    kAccountUpdate,
    kAccountDelete,
    kAccountExists,
    kTokenInsert,
    kTokenByDigest,
    kTokenById,
    kTokenListByAccount,
    kTokenList,
    kTokenRevoke,
    kTokenPurge,
    kAuditInsert,
    kAuditListByActor,
    kAuditListByAction,
    kAuditList,
    kDepthList,
    kCount,
};
constexpr std::size_t kStatementCount = static_cast<std::size_t>(Stmt::kCount);

struct StatementDef {
    std::string_view sql;
    std::vector<Oid> types;
};

// The filters every log query shape shares (a macro: string literals concatenate).
#define HEARTH_PG_LOG_QUERY_TAIL                         \
    "($3 IS NULL OR server_time >= $3) AND id < $4 AND " \
    "($5 IS NULL OR level = ANY ($5)) "                  \
    "ORDER BY id DESC LIMIT $6"
#define HEARTH_PG_LOG_COLUMNS "SELECT id, server_time, room, \"user\", level, body FROM log_entry "
// The columns account_of, token_of and audit_of read, in their order.
#define HEARTH_PG_ACCOUNT_COLUMNS                                                           \
    "id, username, email, password_hash, disabled, guest, roles, external_id, created_at, " \
    "last_login_at"
#define HEARTH_PG_TOKEN_COLUMNS \
    "id, account_id, kind, name, digest, scopes, created_at, expires_at, revoked_at"
#define HEARTH_PG_AUDIT_COLUMNS "id, at, actor, action, target, peer, detail"
#define HEARTH_PG_TOKEN_FILTERS \
    "id > $2 AND ($3 IS NULL OR kind = $3) AND ($4 OR revoked_at IS NULL) ORDER BY id LIMIT $5"
#define HEARTH_PG_AUDIT_SELECT "SELECT " HEARTH_PG_AUDIT_COLUMNS " FROM audit WHERE "
#define HEARTH_PG_AUDIT_TAIL "id < $3 ORDER BY id DESC LIMIT $4"

const std::array<StatementDef, kStatementCount>& statements() {
    static const std::array<StatementDef, kStatementCount> defs = {{
        {"INSERT INTO mailbox (key, body, stored_at, expires_at) VALUES ($1, $2, $3, $4) "
         "RETURNING seq",
         {kBytea, kBytea, kInt8, kInt8}},
        // Locked until the commit, so that appends of several nodes check the quota one after
        // the other (the row is updated by the insert's trigger anyway).
        {"SELECT mailboxes, bytes FROM mailbox_usage WHERE prefix = $1 FOR UPDATE", {kBytea}},
        // The bytes, as mailbox_usage counts them, of the $2 oldest entries of a mailbox.
        {"SELECT COALESCE(SUM(octet_length(key) + octet_length(body)), 0)::bigint FROM "
         "(SELECT key, body FROM mailbox WHERE key = $1 ORDER BY seq LIMIT $2) AS oldest",
         {kBytea, kInt8}},
        // Entries expired at $1 within [$2, $3) ($3 NULL: no upper bound), at most $4: the
        // partial index on expires_at walks only entries that can expire, soonest first.
        {"DELETE FROM mailbox WHERE seq IN (SELECT seq FROM mailbox WHERE expires_at <= $1 AND "
         "key >= $2 AND ($3::bytea IS NULL OR key < $3) ORDER BY expires_at LIMIT $4)",
         {kInt8, kBytea, kBytea, kInt8}},
        {"SELECT depth FROM mailbox_depth WHERE key = $1", {kBytea}},
        // mailbox_depth holds one row per non-empty mailbox: summing it never reads a message.
        {"SELECT COALESCE(SUM(depth), 0)::bigint FROM mailbox_depth", {}},
        {"SELECT COALESCE(SUM(depth), 0)::bigint FROM mailbox_depth WHERE key >= $1", {kBytea}},
        {"SELECT COALESCE(SUM(depth), 0)::bigint FROM mailbox_depth WHERE key >= $1 AND key < $2",
         {kBytea, kBytea}},
        {"DELETE FROM mailbox WHERE seq IN "
         "(SELECT seq FROM mailbox WHERE key = $1 ORDER BY seq LIMIT $2)",
         {kBytea, kInt8}},
        // Reads skip the entries expired at $now.
        {"SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key = $1 AND "
         "(expires_at IS NULL OR expires_at > $3) ORDER BY seq LIMIT $2",
         {kBytea, kInt8, kInt8}},
        {"SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE "
         "(expires_at IS NULL OR expires_at > $2) ORDER BY seq LIMIT $1",
         {kInt8, kInt8}},
        {"SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= $1 AND "
         "(expires_at IS NULL OR expires_at > $3) ORDER BY seq LIMIT $2",
         {kBytea, kInt8, kInt8}},
        {"SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= $1 AND "
         "key < $2 AND (expires_at IS NULL OR expires_at > $4) ORDER BY seq LIMIT $3",
         {kBytea, kBytea, kInt8, kInt8}},
        {"DELETE FROM mailbox WHERE key = $1 AND seq = $2", {kBytea, kInt8}},
        {"DELETE FROM mailbox WHERE key = $1 AND seq <= $2", {kBytea, kInt8}},
        {"INSERT INTO log_entry (server_time, room, \"user\", level, body) "
         "VALUES ($1, $2, $3, $4, $5)",
         {kInt8, kText, kText, kText, kText}},
        // A query has one of three shapes, picked by its most selective filter so that an index
        // serves it newest first: (room, id), ("user", id), or id alone.
        {HEARTH_PG_LOG_COLUMNS "WHERE room = $1 AND ($2 IS NULL OR \"user\" = $2) AND "
                               "" HEARTH_PG_LOG_QUERY_TAIL,
         {kText, kText, kInt8, kInt8, kTextArray, kInt8}},
        {HEARTH_PG_LOG_COLUMNS "WHERE \"user\" = $2 AND " HEARTH_PG_LOG_QUERY_TAIL,
         {kText, kText, kInt8, kInt8, kTextArray, kInt8}},
        {HEARTH_PG_LOG_COLUMNS "WHERE " HEARTH_PG_LOG_QUERY_TAIL,
         {kText, kText, kInt8, kInt8, kTextArray, kInt8}},
        {"DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry WHERE server_time < $1 "
         "ORDER BY server_time LIMIT $2)",
         {kInt8, kInt8}},
        {"SELECT rows, bytes FROM log_count WHERE one = 1", {}},
        {"DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry ORDER BY id LIMIT $1)",
         {kInt8}},
        // The oldest entries (at most $2) up to the first whose body brings the bytes deleted to
        // $1 or more.
        {"DELETE FROM log_entry WHERE id <= (SELECT max(id) FROM (SELECT id, sum(size) OVER "
         "(ORDER BY id) - size AS prior FROM (SELECT id, octet_length(body)::bigint AS size "
         "FROM log_entry ORDER BY id LIMIT $2) s) w WHERE prior < $1)",
         {kInt8, kInt8}},
        // The health probe: a real write, one row, changing nothing.
        {"UPDATE hearth_schema SET version = version WHERE one = 1", {}},
        // Accounts. A conflict on any unique column (username_key, email_key, external_id)
        // inserts nothing and returns no row: no error, so no savepoint (a subtransaction) per
        // insert, and the batch goes on.
        {"INSERT INTO account (username, username_key, email, email_key, password_hash, "
         "disabled, guest, roles, external_id, created_at, last_login_at) "
         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
         "ON CONFLICT DO NOTHING RETURNING " HEARTH_PG_ACCOUNT_COLUMNS,
         {kText, kText, kText, kText, kText, kBool, kBool, kText, kText, kInt8, kInt8}},
        {"SELECT " HEARTH_PG_ACCOUNT_COLUMNS " FROM account WHERE id = $1", {kInt8}},
        {"SELECT " HEARTH_PG_ACCOUNT_COLUMNS " FROM account WHERE username_key = $1", {kText}},
        {"SELECT " HEARTH_PG_ACCOUNT_COLUMNS " FROM account WHERE external_id = $1", {kText}},
        // starts_with: a prefix without LIKE's wildcards to escape; username_key is COLLATE "C",
        // so it compares bytes like SQLite.
        {"SELECT " HEARTH_PG_ACCOUNT_COLUMNS " FROM account WHERE id > $1 AND "
         "($2 IS NULL OR disabled = $2) AND "
         "($3 IS NULL OR $3 = ANY (string_to_array(roles, ','))) AND "
         "($4 IS NULL OR starts_with(username_key, $4)) ORDER BY id LIMIT $5",
         {kInt8, kBool, kText, kText, kInt8}},
        // $2: whether the patch sets the email (to $3, possibly NULL); NULL elsewhere: unchanged.
        {"UPDATE account SET email = CASE WHEN $2 THEN $3 ELSE email END, "
         "email_key = CASE WHEN $2 THEN $4 ELSE email_key END, "
         "password_hash = COALESCE($5, password_hash), disabled = COALESCE($6, disabled), "
         "roles = COALESCE($7, roles), last_login_at = COALESCE($8, last_login_at) "
         "WHERE id = $1 RETURNING " HEARTH_PG_ACCOUNT_COLUMNS,
         {kInt8, kBool, kText, kText, kText, kBool, kText, kInt8}},
        {"DELETE FROM account WHERE id = $1", {kInt8}},
        {"SELECT 1 FROM account WHERE id = $1", {kInt8}},
        // Tokens. The account row is locked (FOR KEY SHARE) so that an account deleted meanwhile
        // by another server inserts nothing rather than failing the foreign key (and the batch);
        // a digest taken inserts nothing too. No row: insert_token tells which.
        {"INSERT INTO token (account_id, kind, name, digest, scopes, created_at, expires_at, "
         "revoked_at) SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM account WHERE id = $1 "
         "FOR KEY SHARE ON CONFLICT DO NOTHING RETURNING " HEARTH_PG_TOKEN_COLUMNS,
         {kInt8, kInt8, kText, kText, kText, kInt8, kInt8, kInt8}},
        {"SELECT t.id, t.account_id, t.kind, t.name, t.digest, t.scopes, t.created_at, "
         "t.expires_at, t.revoked_at, a.id, a.username, a.email, a.password_hash, a.disabled, "
         "a.guest, a.roles, a.external_id, a.created_at, a.last_login_at "
         "FROM token t JOIN account a ON a.id = t.account_id WHERE t.digest = $1",
         {kText}},
        {"SELECT " HEARTH_PG_TOKEN_COLUMNS " FROM token WHERE id = $1", {kInt8}},
        // Two shapes, so that the (account_id, id) index serves an account's tokens.
        {"SELECT " HEARTH_PG_TOKEN_COLUMNS
         " FROM token WHERE account_id = $1 AND " HEARTH_PG_TOKEN_FILTERS,
         {kInt8, kInt8, kInt8, kBool, kInt8}},
        {"SELECT " HEARTH_PG_TOKEN_COLUMNS " FROM token WHERE " HEARTH_PG_TOKEN_FILTERS,
         {kInt8, kInt8, kInt8, kBool, kInt8}},
        // An earlier revocation stands.
        {"UPDATE token SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 "
         "RETURNING " HEARTH_PG_TOKEN_COLUMNS,
         {kInt8, kInt8}},
        {"DELETE FROM token WHERE expires_at < $1 OR revoked_at < $1", {kInt8}},
        // The audit log; like the log queries, one shape per index: (actor, id), (action, id),
        // or id alone, newest first.
        {"INSERT INTO audit (at, actor, action, target, peer, detail) "
         "VALUES ($1, $2, $3, $4, $5, $6) RETURNING " HEARTH_PG_AUDIT_COLUMNS,
         {kInt8, kText, kText, kText, kText, kText}},
        {HEARTH_PG_AUDIT_SELECT
         "actor = $1 AND ($2 IS NULL OR action = $2) AND " HEARTH_PG_AUDIT_TAIL,
         {kText, kText, kInt8, kInt8}},
        {HEARTH_PG_AUDIT_SELECT "action = $2 AND " HEARTH_PG_AUDIT_TAIL,
         {kText, kText, kInt8, kInt8}},
        {HEARTH_PG_AUDIT_SELECT HEARTH_PG_AUDIT_TAIL, {kText, kText, kInt8, kInt8}},
        // Non-empty mailboxes by key: after $1 (NULL: from the start), within [$2, $3).
        {"SELECT key, depth FROM mailbox_depth WHERE ($1::bytea IS NULL OR key > $1) AND "
         "key >= $2 AND ($3::bytea IS NULL OR key < $3) ORDER BY key LIMIT $4",
         {kBytea, kBytea, kBytea, kInt8}},
    }};
    return defs;
}
#undef HEARTH_PG_LOG_QUERY_TAIL
#undef HEARTH_PG_LOG_COLUMNS
#undef HEARTH_PG_ACCOUNT_COLUMNS
#undef HEARTH_PG_TOKEN_COLUMNS
#undef HEARTH_PG_AUDIT_COLUMNS
#undef HEARTH_PG_TOKEN_FILTERS
#undef HEARTH_PG_AUDIT_SELECT
#undef HEARTH_PG_AUDIT_TAIL

std::string statement_name(std::size_t index) {
    return "hearth_" + std::to_string(index);
}

std::int64_t clamp_to_int64(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
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
// Parameters and results (binary format, so bytes need no escaping).

/// The parameters of one statement; the values it points to must outlive the call.
class Params {
public:
    Params& bytes(std::string_view value) { return add(value.data(), value.size(), 1); }
    Params& int64(std::int64_t value) {
        auto& buffer = ints_[count_];
        auto v = static_cast<std::uint64_t>(value);
        for (int i = 7; i >= 0; --i) {
            buffer[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xFF);
            v >>= 8;
        }
        return add(buffer.data(), buffer.size(), 1);
    }
    Params& null() { return add(nullptr, 0, 1); }
    Params& boolean(bool value) { return add(value ? &kTrue : &kFalse, 1, 1); }
    Params& text_or_null(const std::optional<std::string>& value) {
        return value ? bytes(*value) : null();
    }
    /// A value in PostgreSQL's text format (an array literal).
    Params& text_format(const std::string& value) { return add(value.c_str(), value.size(), 0); }

    int count() const noexcept { return static_cast<int>(count_); }
    const char* const* values() const noexcept { return values_.data(); }
    const int* lengths() const noexcept { return lengths_.data(); }
    const int* formats() const noexcept { return formats_.data(); }

private:
    static constexpr std::size_t kMax = 12;
    static constexpr char kTrue = 1;
    static constexpr char kFalse = 0;
    Params& add(const char* data, std::size_t size, int format) {
        values_[count_] = data;
        lengths_[count_] = static_cast<int>(size);
        formats_[count_] = format;
        ++count_;
        return *this;
    }

    std::size_t count_ = 0;
    std::array<const char*, kMax> values_{};
    std::array<int, kMax> lengths_{};
    std::array<int, kMax> formats_{};
    std::array<std::array<char, 8>, kMax> ints_{};
};

/// An integer column (BIGINT, INTEGER or SMALLINT: 8, 4 or 2 bytes, big-endian); 0 for NULL.
std::int64_t int64_at(const PGresult* r, int row, int column) {
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

bool bool_at(const PGresult* r, int row, int column) {
    return PQgetlength(r, row, column) == 1 && PQgetvalue(r, row, column)[0] != 0;
}

std::string bytes_at(const PGresult* r, int row, int column) {
    return std::string(PQgetvalue(r, row, column),
                       static_cast<std::size_t>(PQgetlength(r, row, column)));
}

std::uint64_t affected(const PGresult* r) {
    const char* text = PQcmdTuples(const_cast<PGresult*>(r));
    std::uint64_t n = 0;
    (void)std::from_chars(text, text + std::strlen(text), n);
    return n;
}

/// Text PostgreSQL accepts: UTF-8 without NUL (the database's encoding must be UTF8).
bool storable_text(std::string_view s) noexcept {
    return s.find('\0') == std::string_view::npos && util::valid_utf8(s);
}

// ---------------------------------------------------------------------------------------------
// Connections.

struct ConnSettings {
    std::string url;
    std::string name;  // the URL without its password
    std::int64_t lock_timeout_ms = 5'000;
    bool synchronous_commit_off = false;  // the writer, with [storage] synchronous != full
    std::chrono::milliseconds reconnect_interval{1'000};
};

/// One connection of the pool with its prepared statements, used by one thread (the writer or
/// one reader). Reconnects itself when it breaks. Statement failures are kept in `failure()`.
class PgConn {
public:
    explicit PgConn(ConnSettings settings) : settings_(std::move(settings)) {}

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

    /// Runs a prepared statement; null on failure (then failure() says why).
    pg::ResultPtr exec(Stmt stmt, const Params& params = {}) {
        pg::ResultPtr r(PQexecPrepared(
            conn_.get(), statement_name(static_cast<std::size_t>(stmt)).c_str(), params.count(),
            params.values(), params.lengths(), params.formats(), /*resultFormat=*/1));
        if (pg::ok(r.get())) {
            return r;
        }
        note_failure(r.get());
        return nullptr;
    }

    /// Runs a statement without parameters (BEGIN, COMMIT, ROLLBACK); false on failure.
    bool exec_simple(const char* sql) {
        pg::ResultPtr r(PQexec(conn_.get(), sql));
        if (pg::ok(r.get())) {
            return true;
        }
        note_failure(r.get());
        return false;
    }

    bool in_transaction() const noexcept {
        return conn_ != nullptr && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
    }

    const StoreFailure& failure() const noexcept { return failure_; }
    /// The SQLSTATE of the last failed statement ("" when the connection broke).
    const std::string& failed_state() const noexcept { return failed_state_; }

private:
    bool connect() {
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

    /// Session settings and prepared statements; "" or the error.
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
        const auto& defs = statements();
        for (std::size_t i = 0; error.empty() && i < defs.size(); ++i) {
            const std::string sql(defs[i].sql);
            pg::ResultPtr r(PQprepare(conn, statement_name(i).c_str(), sql.c_str(),
                                      static_cast<int>(defs[i].types.size()),
                                      defs[i].types.data()));
            if (!pg::ok(r.get())) {
                error = "preparing \"" + sql + "\": " + pg::result_message(r.get(), conn);
            }
        }
        return error;
    }

    void note_failure(const PGresult* r) {
        failed_state_ = pg::sqlstate(r);
        const ErrorKind kind = broken() ? ErrorKind::kConnection : classify(failed_state_);
        failure_ = make_failure(kind, failed_state_, pg::result_message(r, conn_.get()));
    }

    const ConnSettings settings_;
    pg::ConnPtr conn_;
    std::optional<Clock::time_point> last_failed_attempt_;
    StoreFailure failure_;
    std::string failed_state_;
};

/// Reads rows of (seq, key, body, stored_at, expires_at).
std::vector<MailboxEntry> entries_of(const PGresult* r) {
    std::vector<MailboxEntry> out;
    const int rows = PQntuples(r);
    out.reserve(static_cast<std::size_t>(rows));
    for (int i = 0; i < rows; ++i) {
        MailboxEntry e;
        e.seq = static_cast<std::uint64_t>(int64_at(r, i, 0));
        e.key = bytes_at(r, i, 1);
        e.body = bytes_at(r, i, 2);
        e.stored_at =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(int64_at(r, i, 3)));
        if (PQgetisnull(r, i, 4) == 0) {
            e.expires_at =
                std::chrono::system_clock::time_point(std::chrono::milliseconds(int64_at(r, i, 4)));
        }
        out.push_back(std::move(e));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The store.

/// An operation's function returns false when its statement failed: the batch (or read) fails
/// with the connection's failure().
using PgOp = detail::ConnOp<PgConn, bool>;

/// The PostgreSQL store: its connections, and how a batch, a read and a probe run on them; the
/// queues, threads and order rules are the shared StoreExecutor's (see postgres_store.hpp).
/// Public calls are thread-safe and never block on the database. Owned by the app.
class PostgresStore final : public Store,
                            public Mailboxes,
                            public Logs,
                            public AccountStore,
                            private detail::ExecutorBackend {
public:
    PostgresStore(const StorageConfig& config, int schema_version, core::MetricsRegistry& metrics,
                  StoreTestHooks hooks);
    ~PostgresStore() override;
    PostgresStore(const PostgresStore&) = delete;
    PostgresStore& operator=(const PostgresStore&) = delete;

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
    /// A read of one account by `stmt`, whose one parameter is the text `key`.
    void account_by_key(Stmt stmt, std::string key, Completion<AccountRecord> done);

    /// `bytes`: what the operation holds (ExecOp::bytes), for the writer's byte bound.
    template <class T, class Fn>
    void submit_write(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_write(
            detail::make_op<PgConn, bool, T>(std::move(fn), std::move(done), bytes));
    }
    template <class T, class Fn>
    void submit_read(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_read(
            detail::make_op<PgConn, bool, T>(std::move(fn), std::move(done), bytes));
    }

    // detail::ExecutorBackend, on the executor's threads.
    std::optional<StoreFailure> run_batch(std::span<const std::unique_ptr<detail::ExecOp>> batch,
                                          std::size_t writes, BatchStats& stats) override;
    std::optional<StoreFailure> run_read(std::size_t reader, detail::ExecOp& op) override;
    bool probe() override;

    const std::string name_;
    std::shared_ptr<spdlog::logger> log_;

    // The pool: the writer's connection is used by the writer thread only, each reader's by its
    // thread.
    std::unique_ptr<PgConn> writer_conn_;
    std::vector<std::unique_ptr<PgConn>> reader_conns_;

    // Last: stopped (threads joined) before the connections close.
    detail::StoreExecutor executor_;
};

detail::ExecutorSettings executor_settings(const StorageConfig& config, const std::string& name,
                                           const StoreTestHooks& hooks) {
    // The config's ranges keep these at 1 or more; a struct filled in by code might not.
    auto at_least_one = [](std::int64_t v) {
        return static_cast<std::size_t>(std::max<std::int64_t>(1, v));
    };
    return detail::ExecutorSettings{
        .name = name,
        .writer_queue_max = at_least_one(config.writer_queue_max),
        .writer_queue_max_bytes = at_least_one(config.writer_queue_max_bytes),
        .reader_queue_max = at_least_one(config.reader_queue_max),
        .max_batch = at_least_one(config.max_batch),
        .readers = at_least_one(config.postgres_pool_size),
        .hooks = hooks};
}

PostgresStore::PostgresStore(const StorageConfig& config, int schema_version,
                             core::MetricsRegistry& metrics, StoreTestHooks hooks)
    : name_(pg::mask_url(config.postgres_url)),
      log_(util::logger("store")),
      executor_(executor_settings(config, name_, hooks), *this, metrics) {
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
    for (std::size_t i = 0; i < executor_.readers(); ++i) {
        reader_conns_.push_back(std::make_unique<PgConn>(settings));
        reader_conns_.back()->connect_or_throw();
    }
    executor_.start();
    log_->info(
        "{}: store open (PostgreSQL, schema version {}, 1 writer and {} reader connection(s), "
        "group commit up to {} writes)",
        name_, schema_version, reader_conns_.size(), executor_.max_batch());
}

PostgresStore::~PostgresStore() {
    executor_.stop();
    log_->info("{}: store closed", name_);
}

std::optional<StoreFailure> PostgresStore::run_batch(
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
            ok = static_cast<PgOp&>(*batch[i]).execute(conn, stats);
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

std::optional<StoreFailure> PostgresStore::run_read(std::size_t reader, detail::ExecOp& op) {
    PgConn& conn = *reader_conns_[reader];
    for (int attempt = 0;; ++attempt) {
        if (!conn.ensure_connected()) {
            return conn.failure();
        }
        BatchStats unused;
        if (static_cast<PgOp&>(op).execute(conn, unused)) {
            return std::nullopt;
        }
        // Reads are one statement, outside a transaction: safe to run again on a new
        // connection when the old one turned out to be broken.
        if (!conn.broken() || attempt > 0) {
            return conn.failure();
        }
    }
}

bool PostgresStore::probe() {
    // A real write: reaching the server is not enough when its disk is full.
    PgConn& conn = *writer_conn_;
    if (!conn.ensure_connected(/*force=*/true)) {
        log_->debug("{}: health probe failed: {}", name_, conn.failure().message);
        return false;
    }
    if (conn.exec(Stmt::kProbe) == nullptr) {
        log_->debug("{}: health probe failed: {}", name_, conn.failure().message);
        return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Mailboxes.

void PostgresStore::append(std::string key, std::string body, const MailboxLimits& limits,
                           Completion<AppendResult> done) {
    const std::size_t bytes = key.size() + body.size();
    submit_write<AppendResult>(
        std::move(done),
        [key = std::move(key), body = std::move(body), limits](PgConn& conn, BatchStats& stats,
                                                               Result<AppendResult>& out) -> bool {
            if (limits.max_depth == 0) {
                out = make_error_code(Errc::kInvalidArgument);  // it would drop itself
                return true;
            }
            if (body.size() > kMaxFieldBytes || key.size() > kMaxFieldBytes) {
                out = make_error_code(Errc::kTooLarge);
                return true;
            }
            auto depth_row = conn.exec(Stmt::kDepth, Params().bytes(key));
            if (depth_row == nullptr) {
                return false;
            }
            const std::int64_t depth =
                PQntuples(depth_row.get()) > 0 ? int64_at(depth_row.get(), 0, 0) : 0;
            std::int64_t mailboxes = 0;
            std::int64_t used = 0;
            if (limits.max_mailboxes > 0 || limits.max_bytes > 0) {
                auto usage =
                    conn.exec(Stmt::kUsage, Params().bytes(detail::mailbox_namespace(key)));
                if (usage == nullptr) {
                    return false;
                }
                if (PQntuples(usage.get()) > 0) {
                    mailboxes = int64_at(usage.get(), 0, 0);
                    used = int64_at(usage.get(), 0, 1);
                }
            }
            const auto plan = detail::plan_append(
                limits, static_cast<std::int64_t>(key.size() + body.size()), depth, mailboxes, used,
                [&](std::int64_t n) -> std::optional<std::int64_t> {
                    auto r = conn.exec(Stmt::kOldestBytes, Params().bytes(key).int64(n));
                    return r != nullptr ? std::optional(int64_at(r.get(), 0, 0)) : std::nullopt;
                });
            if (!plan) {
                return false;
            }
            if (plan->refused != Errc::kOk) {
                out = make_error_code(plan->refused);
                return true;
            }
            const std::int64_t now_ms = detail::unix_ms_now();
            Params insert;
            insert.bytes(key).bytes(body).int64(now_ms);
            if (limits.lifetime.count() > 0) {
                insert.int64(now_ms + limits.lifetime.count());
            } else {
                insert.null();
            }
            auto inserted = conn.exec(Stmt::kInsert, insert);
            if (inserted == nullptr) {
                return false;
            }
            AppendResult result;
            result.seq = static_cast<std::uint64_t>(int64_at(inserted.get(), 0, 0));
            if (plan->drop > 0) {
                auto dropped = conn.exec(Stmt::kDropOldest, Params().bytes(key).int64(plan->drop));
                if (dropped == nullptr) {
                    return false;
                }
                result.dropped = affected(dropped.get());
                stats.dropped += result.dropped;
            }
            out = result;
            return true;
        },
        bytes);
}

void PostgresStore::read(std::string key, std::size_t max,
                         Completion<std::vector<MailboxEntry>> done) {
    const std::size_t bytes = key.size();
    submit_read<std::vector<MailboxEntry>>(
        std::move(done),
        [key = std::move(key), max](PgConn& conn, BatchStats&,
                                    Result<std::vector<MailboxEntry>>& out) {
            auto r = conn.exec(
                Stmt::kRead,
                Params().bytes(key).int64(clamp_to_int64(max)).int64(detail::unix_ms_now()));
            if (r == nullptr) {
                return false;
            }
            out = entries_of(r.get());
            return true;
        },
        bytes);
}

void PostgresStore::read_prefix(std::string prefix, std::size_t max,
                                Completion<std::vector<MailboxEntry>> done) {
    const std::size_t bytes = prefix.size();
    submit_read<std::vector<MailboxEntry>>(
        std::move(done),
        [prefix = std::move(prefix), max](PgConn& conn, BatchStats&,
                                          Result<std::vector<MailboxEntry>>& out) {
            const std::int64_t limit = clamp_to_int64(max);
            const std::int64_t now_ms = detail::unix_ms_now();
            // A key range rather than LIKE: no escaping, and the index on key serves it.
            const auto upper = detail::prefix_upper_bound(prefix);
            pg::ResultPtr r;
            if (prefix.empty()) {
                r = conn.exec(Stmt::kReadAll, Params().int64(limit).int64(now_ms));
            } else if (!upper) {
                r = conn.exec(Stmt::kReadFrom, Params().bytes(prefix).int64(limit).int64(now_ms));
            } else {
                r = conn.exec(Stmt::kReadRange,
                              Params().bytes(prefix).bytes(*upper).int64(limit).int64(now_ms));
            }
            if (r == nullptr) {
                return false;
            }
            out = entries_of(r.get());
            return true;
        },
        bytes);
}

void PostgresStore::expire(std::string prefix, std::uint64_t max_delete,
                           Completion<std::uint64_t> done) {
    const std::size_t bytes = prefix.size();
    submit_write<std::uint64_t>(
        std::move(done),
        [prefix = std::move(prefix), max_delete](PgConn& conn, BatchStats&,
                                                 Result<std::uint64_t>& out) {
            const auto upper = detail::prefix_upper_bound(prefix);
            Params p;
            p.int64(detail::unix_ms_now())
                .bytes(prefix)
                .text_or_null(upper)
                .int64(clamp_to_int64(max_delete));
            auto r = conn.exec(Stmt::kExpire, p);
            if (r == nullptr) {
                return false;
            }
            out = affected(r.get());
            return true;
        },
        bytes);
}

void PostgresStore::remove(std::string key, std::uint64_t seq, Completion<void> done) {
    const std::size_t bytes = key.size();
    submit_write<void>(
        std::move(done),
        [key = std::move(key), seq](PgConn& conn, BatchStats&, Result<void>&) {
            if (seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                return true;  // no such entry; not an error
            }
            return conn.exec(Stmt::kRemove,
                             Params().bytes(key).int64(static_cast<std::int64_t>(seq))) != nullptr;
        },
        bytes);
}

void PostgresStore::remove_up_to(std::string key, std::uint64_t up_to,
                                 Completion<std::uint64_t> done) {
    const std::size_t bytes = key.size();
    submit_write<std::uint64_t>(
        std::move(done),
        [key = std::move(key), up_to](PgConn& conn, BatchStats&, Result<std::uint64_t>& out) {
            auto r = conn.exec(Stmt::kRemoveUpTo, Params().bytes(key).int64(clamp_to_int64(up_to)));
            if (r == nullptr) {
                return false;
            }
            out = affected(r.get());
            return true;
        },
        bytes);
}

void PostgresStore::depth(std::string key, Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(std::move(done), [key = std::move(key)](PgConn& conn, BatchStats&,
                                                                       Result<std::uint64_t>& out) {
        auto r = conn.exec(Stmt::kDepth, Params().bytes(key));
        if (r == nullptr) {
            return false;
        }
        // No row: an empty mailbox.
        out = PQntuples(r.get()) > 0 ? static_cast<std::uint64_t>(int64_at(r.get(), 0, 0))
                                     : std::uint64_t{0};
        return true;
    });
}

void PostgresStore::depth_prefix(std::string prefix, Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(
        std::move(done),
        [prefix = std::move(prefix)](PgConn& conn, BatchStats&, Result<std::uint64_t>& out) {
            // The same key range as read_prefix.
            const auto upper = detail::prefix_upper_bound(prefix);
            pg::ResultPtr r;
            if (prefix.empty()) {
                r = conn.exec(Stmt::kDepthAll);
            } else if (!upper) {
                r = conn.exec(Stmt::kDepthFrom, Params().bytes(prefix));
            } else {
                r = conn.exec(Stmt::kDepthRange, Params().bytes(prefix).bytes(*upper));
            }
            if (r == nullptr) {
                return false;
            }
            out = static_cast<std::uint64_t>(int64_at(r.get(), 0, 0));
            return true;
        });
}

void PostgresStore::list_depths(std::string prefix, std::optional<std::string> after,
                                std::size_t max, Completion<std::vector<MailboxDepth>> done) {
    submit_read<std::vector<MailboxDepth>>(
        std::move(done), [prefix = std::move(prefix), after = std::move(after), max](
                             PgConn& conn, BatchStats&, Result<std::vector<MailboxDepth>>& out) {
            const auto upper = detail::prefix_upper_bound(prefix);
            Params p;
            p.text_or_null(after).bytes(prefix).text_or_null(upper).int64(clamp_to_int64(max));
            auto r = conn.exec(Stmt::kDepthList, p);
            if (r == nullptr) {
                return false;
            }
            std::vector<MailboxDepth> list;
            for (int i = 0; i < PQntuples(r.get()); ++i) {
                list.push_back(
                    {bytes_at(r.get(), i, 0), static_cast<std::uint64_t>(int64_at(r.get(), i, 1))});
            }
            out = std::move(list);
            return true;
        });
}

// ---------------------------------------------------------------------------------------------
// Logs.

/// The row count kept by the log_count triggers; false when the statement failed.
bool log_count(PgConn& conn, std::int64_t& out, std::int64_t* bytes = nullptr) {
    auto r = conn.exec(Stmt::kLogCount);
    if (r == nullptr) {
        return false;
    }
    const bool row = PQntuples(r.get()) > 0;  // the migration inserts the row
    out = row ? int64_at(r.get(), 0, 0) : 0;
    if (bytes != nullptr) {
        *bytes = row ? int64_at(r.get(), 0, 1) : 0;
    }
    return true;
}

void PostgresStore::append(std::vector<LogRow> rows, Completion<void> done) {
    const std::size_t bytes = detail::log_rows_bytes(rows);
    submit_write<void>(
        std::move(done),
        [rows = std::move(rows)](PgConn& conn, BatchStats&, Result<void>& out) {
            for (const auto& r : rows) {
                if (r.body.size() > kMaxFieldBytes) {
                    out = make_error_code(Errc::kTooLarge);
                    return true;  // nothing of this call was inserted yet
                }
                // PostgreSQL's text holds no NUL and only valid UTF-8; the batch
                // must not fail for one bad row.
                if (!storable_text(r.room) || !storable_text(r.user) || !storable_text(r.level) ||
                    !storable_text(r.body)) {
                    out = make_error_code(Errc::kInvalidArgument);
                    return true;
                }
            }
            for (const auto& r : rows) {
                if (conn.exec(Stmt::kLogInsert, Params()
                                                    .int64(r.server_time_ms)
                                                    .bytes(r.room)
                                                    .bytes(r.user)
                                                    .bytes(r.level)
                                                    .bytes(r.body)) == nullptr) {
                    return false;
                }
            }
            return true;
        },
        bytes);
}

void PostgresStore::query(LogQuery query, Completion<std::vector<LogRow>> done) {
    submit_read<std::vector<LogRow>>(
        std::move(done),
        [query = std::move(query)](PgConn& conn, BatchStats&, Result<std::vector<LogRow>>& out) {
            // A filter that no stored text can equal matches nothing (and must not reach the
            // server, which would refuse it).
            if ((query.room && !storable_text(*query.room)) ||
                (query.user && !storable_text(*query.user))) {
                out = std::vector<LogRow>{};
                return true;
            }
            std::string levels;  // an array literal: level names are validated words
            if (!query.levels.empty()) {
                for (const auto& l : query.levels) {
                    if (!storable_text(l)) {
                        continue;
                    }
                    levels += levels.empty() ? "{\"" : ",\"";
                    for (char c : l) {
                        if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20) {
                            levels += c;
                        }
                    }
                    levels += '"';
                }
                if (levels.empty()) {
                    out = std::vector<LogRow>{};
                    return true;
                }
                levels += '}';
            }
            const auto stmt = query.room   ? Stmt::kLogQueryByRoom
                              : query.user ? Stmt::kLogQueryByUser
                                           : Stmt::kLogQuery;
            Params p;
            query.room ? p.bytes(*query.room) : p.null();
            query.user ? p.bytes(*query.user) : p.null();
            query.since_ms ? p.int64(*query.since_ms) : p.null();
            p.int64(query.before_id ? clamp_to_int64(*query.before_id)
                                    : std::numeric_limits<std::int64_t>::max());
            levels.empty() ? p.null() : p.text_format(levels);
            p.int64(clamp_to_int64(query.limit));
            auto r = conn.exec(stmt, p);
            if (r == nullptr) {
                return false;
            }
            std::vector<LogRow> rows;
            const int n = PQntuples(r.get());
            rows.reserve(static_cast<std::size_t>(n));
            for (int i = 0; i < n; ++i) {
                LogRow row;
                row.id = static_cast<std::uint64_t>(int64_at(r.get(), i, 0));
                row.server_time_ms = int64_at(r.get(), i, 1);
                row.room = bytes_at(r.get(), i, 2);
                row.user = bytes_at(r.get(), i, 3);
                row.level = bytes_at(r.get(), i, 4);
                row.body = bytes_at(r.get(), i, 5);
                rows.push_back(std::move(row));
            }
            out = std::move(rows);
            return true;
        });
}

void PostgresStore::prune(std::int64_t older_than_ms, std::uint64_t max_rows,
                          std::uint64_t max_bytes, std::uint64_t max_delete,
                          Completion<std::uint64_t> done) {
    submit_write<std::uint64_t>(
        std::move(done), [older_than_ms, max_rows, max_bytes, max_delete](
                             PgConn& conn, BatchStats&, Result<std::uint64_t>& out) {
            std::int64_t budget = clamp_to_int64(max_delete);
            auto old = conn.exec(Stmt::kLogPruneOld, Params().int64(older_than_ms).int64(budget));
            if (old == nullptr) {
                return false;
            }
            const auto by_age = static_cast<std::int64_t>(affected(old.get()));
            budget -= by_age;
            std::int64_t rows = 0;
            if (!log_count(conn, rows)) {
                return false;
            }
            const std::int64_t excess = rows - clamp_to_int64(max_rows);
            std::int64_t by_count = 0;
            if (excess > 0 && budget > 0) {
                auto oldest =
                    conn.exec(Stmt::kLogPruneOldest, Params().int64(std::min(excess, budget)));
                if (oldest == nullptr) {
                    return false;
                }
                by_count = static_cast<std::int64_t>(affected(oldest.get()));
                budget -= by_count;
            }
            std::int64_t bytes = 0;
            if (!log_count(conn, rows, &bytes)) {
                return false;
            }
            const std::int64_t excess_bytes = bytes - clamp_to_int64(max_bytes);
            std::int64_t by_bytes = 0;
            if (excess_bytes > 0 && budget > 0) {
                auto oldest =
                    conn.exec(Stmt::kLogPruneBytes, Params().int64(excess_bytes).int64(budget));
                if (oldest == nullptr) {
                    return false;
                }
                by_bytes = static_cast<std::int64_t>(affected(oldest.get()));
            }
            out = static_cast<std::uint64_t>(by_age + by_count + by_bytes);
            return true;
        });
}

void PostgresStore::count(Completion<std::uint64_t> done) {
    submit_read<std::uint64_t>(
        std::move(done), [](PgConn& conn, BatchStats&, Result<std::uint64_t>& out) {
            std::int64_t rows = 0;
            if (!log_count(conn, rows)) {
                return false;
            }
            out = static_cast<std::uint64_t>(std::max<std::int64_t>(0, rows));
            return true;
        });
}

// ---------------------------------------------------------------------------------------------
// Accounts, tokens and the audit log.

// The folding, lists and times are account_rows.hpp's, shared with SQLite, so that both store
// the same values.
using rows::fold;
using rows::join;
using rows::split;
using rows::time_of;

std::int64_t ms_of(TimePoint t) noexcept {
    return rows::ms(t);
}

/// Roles and scopes are stored comma-separated: a name must be storable text, not empty and
/// without a comma, or it would not read back as itself.
bool storable_list(const std::vector<std::string>& items) noexcept {
    return std::all_of(items.begin(), items.end(), [](const std::string& item) {
        return !item.empty() && item.find(',') == std::string::npos && storable_text(item);
    });
}

bool optional_storable(const std::optional<std::string>& s) noexcept {
    return !s || storable_text(*s);
}

std::optional<std::string> optional_text_at(const PGresult* r, int row, int column) {
    if (PQgetisnull(r, row, column) != 0) {
        return std::nullopt;
    }
    return bytes_at(r, row, column);
}

std::optional<TimePoint> optional_time_at(const PGresult* r, int row, int column) {
    if (PQgetisnull(r, row, column) != 0) {
        return std::nullopt;
    }
    return time_of(int64_at(r, row, column));
}

/// An id as a BIGINT parameter; nothing for one no row can have (ids are positive BIGINTs).
std::optional<std::int64_t> id_param(std::uint64_t id) noexcept {
    if (id == 0 || id > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(id);
}

/// The columns of HEARTH_PG_ACCOUNT_COLUMNS, from `first` on.
AccountRecord account_of(const PGresult* r, int row, int first = 0) {
    AccountRecord a;
    a.id = static_cast<std::uint64_t>(int64_at(r, row, first));
    a.username = bytes_at(r, row, first + 1);
    a.email = optional_text_at(r, row, first + 2);
    a.password_hash = bytes_at(r, row, first + 3);
    a.disabled = bool_at(r, row, first + 4);
    a.guest = bool_at(r, row, first + 5);
    a.roles = split(bytes_at(r, row, first + 6));
    a.external_id = optional_text_at(r, row, first + 7);
    a.created_at = time_of(int64_at(r, row, first + 8));
    a.last_login_at = optional_time_at(r, row, first + 9);
    return a;
}

/// The columns of HEARTH_PG_TOKEN_COLUMNS, from `first` on.
TokenRecord token_of(const PGresult* r, int row, int first = 0) {
    TokenRecord t;
    t.id = static_cast<std::uint64_t>(int64_at(r, row, first));
    t.account_id = static_cast<std::uint64_t>(int64_at(r, row, first + 1));
    t.kind = static_cast<TokenKindCode>(int64_at(r, row, first + 2));
    t.name = bytes_at(r, row, first + 3);
    t.digest = bytes_at(r, row, first + 4);
    t.scopes = split(bytes_at(r, row, first + 5));
    t.created_at = time_of(int64_at(r, row, first + 6));
    t.expires_at = optional_time_at(r, row, first + 7);
    t.revoked_at = optional_time_at(r, row, first + 8);
    return t;
}

AuditEntry audit_of(const PGresult* r, int row) {
    AuditEntry e;
    e.id = static_cast<std::uint64_t>(int64_at(r, row, 0));
    e.at = time_of(int64_at(r, row, 1));
    e.actor = bytes_at(r, row, 2);
    e.action = bytes_at(r, row, 3);
    e.target = bytes_at(r, row, 4);
    e.peer = bytes_at(r, row, 5);
    e.detail = bytes_at(r, row, 6);
    return e;
}

template <class T, class Fn>
std::vector<T> rows_of(const PGresult* r, Fn of) {
    std::vector<T> out;
    const int n = PQntuples(r);
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        out.push_back(of(r, i));
    }
    return out;
}

constexpr std::string_view kUniqueViolation = "23505";

/// What a statement run in a savepoint did: its rows, or a unique violation, or neither (the
/// batch fails with the connection's failure()).
struct Guarded {
    pg::ResultPtr result;
    bool conflict = false;
};

/// Runs `stmt` (an UPDATE: it has no ON CONFLICT) in a savepoint of the writer's transaction, so
/// that a unique violation undoes this statement only and the batch goes on. Only for statements
/// that cannot report a conflict otherwise: each savepoint is a subtransaction and two more round
/// trips.
Guarded exec_in_savepoint(PgConn& conn, Stmt stmt, const Params& params) {
    if (!conn.exec_simple("SAVEPOINT hearth_op")) {
        return {};
    }
    Guarded out{.result = conn.exec(stmt, params)};
    if (out.result == nullptr) {
        if (conn.broken() || conn.failed_state() != kUniqueViolation ||
            !conn.exec_simple("ROLLBACK TO SAVEPOINT hearth_op")) {
            return {};
        }
        out.conflict = true;
    }
    if (!conn.exec_simple("RELEASE SAVEPOINT hearth_op")) {
        return {};
    }
    return out;
}

void PostgresStore::create_account(AccountRecord account, Completion<AccountRecord> done) {
    submit_write<AccountRecord>(
        std::move(done),
        [a = std::move(account)](PgConn& conn, BatchStats&, Result<AccountRecord>& out) {
            if (!storable_text(a.username) || !storable_text(a.password_hash) ||
                !optional_storable(a.email) || !optional_storable(a.external_id) ||
                !storable_list(a.roles)) {
                out = make_error_code(Errc::kInvalidArgument);
                return true;
            }
            const std::string username_key = fold(a.username);
            std::optional<std::string> email_key;
            if (a.email) {
                email_key = fold(*a.email);
            }
            const std::string roles = join(a.roles);
            Params p;
            p.bytes(a.username)
                .bytes(username_key)
                .text_or_null(a.email)
                .text_or_null(email_key)
                .bytes(a.password_hash)
                .boolean(a.disabled)
                .boolean(a.guest)
                .bytes(roles)
                .text_or_null(a.external_id)
                .int64(ms_of(a.created_at));
            a.last_login_at ? p.int64(ms_of(*a.last_login_at)) : p.null();
            auto r = conn.exec(Stmt::kAccountInsert, p);
            if (r == nullptr) {
                return false;
            }
            if (PQntuples(r.get()) == 0) {
                out = make_error_code(Errc::kAlreadyExists);  // ON CONFLICT DO NOTHING
                return true;
            }
            out = account_of(r.get(), 0);
            return true;
        });
}

void PostgresStore::account_by_id(std::uint64_t id, Completion<AccountRecord> done) {
    submit_read<AccountRecord>(std::move(done),
                               [id](PgConn& conn, BatchStats&, Result<AccountRecord>& out) {
                                   const auto param = id_param(id);
                                   if (!param) {
                                       out = make_error_code(Errc::kNotFound);
                                       return true;
                                   }
                                   auto r = conn.exec(Stmt::kAccountById, Params().int64(*param));
                                   if (r == nullptr) {
                                       return false;
                                   }
                                   if (PQntuples(r.get()) == 0) {
                                       out = make_error_code(Errc::kNotFound);
                                   } else {
                                       out = account_of(r.get(), 0);
                                   }
                                   return true;
                               });
}

void PostgresStore::account_by_key(Stmt stmt, std::string key, Completion<AccountRecord> done) {
    submit_read<AccountRecord>(
        std::move(done),
        [stmt, key = std::move(key)](PgConn& conn, BatchStats&, Result<AccountRecord>& out) {
            if (!storable_text(key)) {
                out = make_error_code(Errc::kNotFound);  // no stored text equals it
                return true;
            }
            auto r = conn.exec(stmt, Params().bytes(key));
            if (r == nullptr) {
                return false;
            }
            if (PQntuples(r.get()) == 0) {
                out = make_error_code(Errc::kNotFound);
            } else {
                out = account_of(r.get(), 0);
            }
            return true;
        });
}

void PostgresStore::account_by_name(std::string username, Completion<AccountRecord> done) {
    account_by_key(Stmt::kAccountByName, fold(username), std::move(done));
}

void PostgresStore::account_by_external_id(std::string external_id,
                                           Completion<AccountRecord> done) {
    account_by_key(Stmt::kAccountByExternalId, std::move(external_id), std::move(done));
}

void PostgresStore::list_accounts(AccountFilter filter,
                                  Completion<std::vector<AccountRecord>> done) {
    submit_read<std::vector<AccountRecord>>(
        std::move(done), [filter = std::move(filter)](PgConn& conn, BatchStats&,
                                                      Result<std::vector<AccountRecord>>& out) {
            if (!optional_storable(filter.role) || !optional_storable(filter.username_prefix)) {
                out = std::vector<AccountRecord>{};  // matches nothing stored
                return true;
            }
            std::optional<std::string> prefix_key;
            if (filter.username_prefix) {
                prefix_key = fold(*filter.username_prefix);
            }
            Params p;
            p.int64(filter.after_id ? clamp_to_int64(*filter.after_id) : 0);
            filter.disabled ? p.boolean(*filter.disabled) : p.null();
            p.text_or_null(filter.role).text_or_null(prefix_key);
            p.int64(clamp_to_int64(filter.limit));
            auto r = conn.exec(Stmt::kAccountList, p);
            if (r == nullptr) {
                return false;
            }
            out = rows_of<AccountRecord>(
                r.get(), [](const PGresult* res, int row) { return account_of(res, row); });
            return true;
        });
}

void PostgresStore::update_account(std::uint64_t id, AccountPatch patch,
                                   Completion<AccountRecord> done) {
    submit_write<AccountRecord>(
        std::move(done),
        [id, patch = std::move(patch)](PgConn& conn, BatchStats&, Result<AccountRecord>& out) {
            if ((patch.email && !optional_storable(*patch.email)) ||
                !optional_storable(patch.password_hash) ||
                (patch.roles && !storable_list(*patch.roles))) {
                out = make_error_code(Errc::kInvalidArgument);
                return true;
            }
            const auto param = id_param(id);
            if (!param) {
                out = make_error_code(Errc::kNotFound);
                return true;
            }
            std::optional<std::string> email;
            std::optional<std::string> email_key;
            if (patch.email && *patch.email) {
                email = **patch.email;
                email_key = fold(**patch.email);
            }
            std::optional<std::string> roles;
            if (patch.roles) {
                roles = join(*patch.roles);
            }
            Params p;
            p.int64(*param)
                .boolean(patch.email.has_value())
                .text_or_null(email)
                .text_or_null(email_key)
                .text_or_null(patch.password_hash);
            patch.disabled ? p.boolean(*patch.disabled) : p.null();
            p.text_or_null(roles);
            patch.last_login_at ? p.int64(ms_of(*patch.last_login_at)) : p.null();
            pg::ResultPtr r;
            if (email_key) {
                // Only a new email can conflict (another account's): in a savepoint.
                Guarded guarded = exec_in_savepoint(conn, Stmt::kAccountUpdate, p);
                if (guarded.conflict) {
                    out = make_error_code(Errc::kAlreadyExists);
                    return true;
                }
                r = std::move(guarded.result);
            } else {
                r = conn.exec(Stmt::kAccountUpdate, p);
            }
            if (r == nullptr) {
                return false;
            }
            if (PQntuples(r.get()) == 0) {
                out = make_error_code(Errc::kNotFound);
            } else {
                out = account_of(r.get(), 0);
            }
            return true;
        });
}

void PostgresStore::delete_account(std::uint64_t id, Completion<void> done) {
    submit_write<void>(std::move(done), [id](PgConn& conn, BatchStats&, Result<void>& out) {
        const auto param = id_param(id);
        if (!param) {
            out = make_error_code(Errc::kNotFound);
            return true;
        }
        // Its tokens go with it (ON DELETE CASCADE).
        auto r = conn.exec(Stmt::kAccountDelete, Params().int64(*param));
        if (r == nullptr) {
            return false;
        }
        if (affected(r.get()) == 0) {
            out = make_error_code(Errc::kNotFound);
        }
        return true;
    });
}

void PostgresStore::insert_token(TokenRecord token, Completion<TokenRecord> done) {
    submit_write<TokenRecord>(std::move(done), [t = std::move(token)](PgConn& conn, BatchStats&,
                                                                      Result<TokenRecord>& out) {
        if (!storable_text(t.name) || !storable_text(t.digest) || !storable_list(t.scopes)) {
            out = make_error_code(Errc::kInvalidArgument);
            return true;
        }
        const auto account = id_param(t.account_id);
        if (!account) {
            out = make_error_code(Errc::kNotFound);
            return true;
        }
        const std::string scopes = join(t.scopes);
        Params p;
        p.int64(*account)
            .int64(static_cast<std::int64_t>(t.kind))
            .bytes(t.name)
            .bytes(t.digest)
            .bytes(scopes)
            .int64(ms_of(t.created_at));
        t.expires_at ? p.int64(ms_of(*t.expires_at)) : p.null();
        t.revoked_at ? p.int64(ms_of(*t.revoked_at)) : p.null();
        auto r = conn.exec(Stmt::kTokenInsert, p);
        if (r == nullptr) {
            return false;
        }
        if (PQntuples(r.get()) > 0) {
            out = token_of(r.get(), 0);
            return true;
        }
        // Nothing inserted: no such account, or the digest is taken.
        auto exists = conn.exec(Stmt::kAccountExists, Params().int64(*account));
        if (exists == nullptr) {
            return false;
        }
        out =
            make_error_code(PQntuples(exists.get()) == 0 ? Errc::kNotFound : Errc::kAlreadyExists);
        return true;
    });
}

void PostgresStore::token_by_digest(std::string digest, Completion<TokenLookup> done) {
    submit_read<TokenLookup>(std::move(done), [digest = std::move(digest)](
                                                  PgConn& conn, BatchStats&,
                                                  Result<TokenLookup>& out) {
        if (!storable_text(digest)) {
            out = make_error_code(Errc::kNotFound);
            return true;
        }
        auto r = conn.exec(Stmt::kTokenByDigest, Params().bytes(digest));
        if (r == nullptr) {
            return false;
        }
        if (PQntuples(r.get()) == 0) {
            out = make_error_code(Errc::kNotFound);
        } else {
            out = TokenLookup{.token = token_of(r.get(), 0), .account = account_of(r.get(), 0, 9)};
        }
        return true;
    });
}

void PostgresStore::token_by_id(std::uint64_t id, Completion<TokenRecord> done) {
    submit_read<TokenRecord>(std::move(done),
                             [id](PgConn& conn, BatchStats&, Result<TokenRecord>& out) {
                                 const auto param = id_param(id);
                                 if (!param) {
                                     out = make_error_code(Errc::kNotFound);
                                     return true;
                                 }
                                 auto r = conn.exec(Stmt::kTokenById, Params().int64(*param));
                                 if (r == nullptr) {
                                     return false;
                                 }
                                 if (PQntuples(r.get()) == 0) {
                                     out = make_error_code(Errc::kNotFound);
                                 } else {
                                     out = token_of(r.get(), 0);
                                 }
                                 return true;
                             });
}

void PostgresStore::list_tokens(TokenFilter filter, Completion<std::vector<TokenRecord>> done) {
    submit_read<std::vector<TokenRecord>>(
        std::move(done),
        [filter](PgConn& conn, BatchStats&, Result<std::vector<TokenRecord>>& out) {
            Params p;
            filter.account_id ? p.int64(clamp_to_int64(*filter.account_id)) : p.null();
            p.int64(filter.after_id ? clamp_to_int64(*filter.after_id) : 0);
            filter.kind ? p.int64(static_cast<std::int64_t>(*filter.kind)) : p.null();
            p.boolean(filter.include_revoked).int64(clamp_to_int64(filter.limit));
            auto r = conn.exec(filter.account_id ? Stmt::kTokenListByAccount : Stmt::kTokenList, p);
            if (r == nullptr) {
                return false;
            }
            out = rows_of<TokenRecord>(
                r.get(), [](const PGresult* res, int row) { return token_of(res, row); });
            return true;
        });
}

void PostgresStore::revoke_token(std::uint64_t id, TimePoint at, Completion<TokenRecord> done) {
    submit_write<TokenRecord>(
        std::move(done), [id, at](PgConn& conn, BatchStats&, Result<TokenRecord>& out) {
            const auto param = id_param(id);
            if (!param) {
                out = make_error_code(Errc::kNotFound);
                return true;
            }
            auto r = conn.exec(Stmt::kTokenRevoke, Params().int64(*param).int64(ms_of(at)));
            if (r == nullptr) {
                return false;
            }
            if (PQntuples(r.get()) == 0) {
                out = make_error_code(Errc::kNotFound);
            } else {
                out = token_of(r.get(), 0);
            }
            return true;
        });
}

void PostgresStore::purge_tokens(TimePoint before, Completion<std::uint64_t> done) {
    submit_write<std::uint64_t>(
        std::move(done), [before](PgConn& conn, BatchStats&, Result<std::uint64_t>& out) {
            auto r = conn.exec(Stmt::kTokenPurge, Params().int64(ms_of(before)));
            if (r == nullptr) {
                return false;
            }
            out = affected(r.get());
            return true;
        });
}

void PostgresStore::append_audit(AuditEntry entry, Completion<AuditEntry> done) {
    submit_write<AuditEntry>(std::move(done), [e = std::move(entry)](PgConn& conn, BatchStats&,
                                                                     Result<AuditEntry>& out) {
        if (!storable_text(e.actor) || !storable_text(e.action) || !storable_text(e.target) ||
            !storable_text(e.peer) || !storable_text(e.detail)) {
            out = make_error_code(Errc::kInvalidArgument);
            return true;
        }
        auto r = conn.exec(Stmt::kAuditInsert, Params()
                                                   .int64(ms_of(e.at))
                                                   .bytes(e.actor)
                                                   .bytes(e.action)
                                                   .bytes(e.target)
                                                   .bytes(e.peer)
                                                   .bytes(e.detail));
        if (r == nullptr) {
            return false;
        }
        out = audit_of(r.get(), 0);
        return true;
    });
}

void PostgresStore::list_audit(AuditFilter filter, Completion<std::vector<AuditEntry>> done) {
    submit_read<std::vector<AuditEntry>>(
        std::move(done), [filter = std::move(filter)](PgConn& conn, BatchStats&,
                                                      Result<std::vector<AuditEntry>>& out) {
            if (!optional_storable(filter.actor) || !optional_storable(filter.action)) {
                out = std::vector<AuditEntry>{};  // matches nothing stored
                return true;
            }
            const auto stmt = filter.actor    ? Stmt::kAuditListByActor
                              : filter.action ? Stmt::kAuditListByAction
                                              : Stmt::kAuditList;
            Params p;
            p.text_or_null(filter.actor).text_or_null(filter.action);
            p.int64(filter.before_id ? clamp_to_int64(*filter.before_id)
                                     : std::numeric_limits<std::int64_t>::max());
            p.int64(clamp_to_int64(filter.limit));
            auto r = conn.exec(stmt, p);
            if (r == nullptr) {
                return false;
            }
            out = rows_of<AuditEntry>(
                r.get(), [](const PGresult* res, int row) { return audit_of(res, row); });
            return true;
        });
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
    return std::make_unique<PostgresStore>(config, report.to_version, metrics, std::move(hooks));
}

}  // namespace hearth::store
