#pragma once

// The SQL dialect layer: what the repositories (store/repo/) write their queries against, so that
// each query is written once for SQLite and PostgreSQL. A backend implements Conn and Cursor on
// its connections (sqlite/sqlite_store.cpp, postgres/postgres_store.cpp) and Dialect for the few
// spellings that differ; everything else (placeholders ?1..?N, RETURNING, ON CONFLICT DO NOTHING,
// CAST, window functions) is SQL both accept. Transactions are the executor's (one per batch);
// inside them a repository can only ask that a statement's uniqueness conflict be reported
// instead of failing the batch (Query::report_conflict).
//
// Nothing here is thread-safe: a connection, and so its cursors, belong to one store thread.

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/executor.hpp"

namespace hearth::store::sql {

/// A parameter's type, as a statement declares it. Values bind by their C++ type (Query::int64,
/// Query::text, ...); the declared type says what the database sees.
enum class Type : std::uint8_t {
    kInt64,     // BIGINT / INTEGER
    kDouble,    // DOUBLE PRECISION / REAL (finite values only: SQLite stores NaN as NULL)
    kBool,      // BOOLEAN / INTEGER 0 or 1
    kText,      // TEXT (PostgreSQL stores only what Conn::storable_text accepts)
    kBytes,     // any bytes compared as bytes (mailbox keys): BYTEA / TEXT
    kBlob,      // opaque bytes (mailbox bodies): BYTEA / BLOB
    kTextList,  // a list of texts, for Dialect::in_list: text[] / a JSON array
};

class Dialect;

/// One statement as a repository writes it: SQL with ?1..?N placeholders (the dialect rewrites
/// them), and the types of its parameters. Either fixed text or, when it needs one of the
/// Dialect's spellings, a function building it. Prepared once per connection, on first use: a
/// Statement must outlive the store (a constant at namespace scope), its address is its key.
class Statement {
public:
    using Build = std::string (*)(const Dialect&);
    static constexpr std::size_t kMaxParams = 16;

    constexpr Statement(std::string_view sql, std::initializer_list<Type> params = {}) : sql_(sql) {
        set_params(params);
    }
    constexpr Statement(Build build, std::initializer_list<Type> params = {}) : build_(build) {
        set_params(params);
    }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    std::string sql(const Dialect& dialect) const {
        return build_ != nullptr ? build_(dialect) : std::string(sql_);
    }
    std::span<const Type> params() const noexcept { return {params_.data(), count_}; }

private:
    constexpr void set_params(std::initializer_list<Type> params) {
        for (Type t : params) {
            params_[count_++] = t;  // at most kMaxParams: a larger list fails to compile
        }
    }

    std::string_view sql_;
    Build build_ = nullptr;
    std::array<Type, kMaxParams> params_{};
    std::size_t count_ = 0;
};

/// The spellings that differ between the backends, for Statement builders. Expressions and
/// parameters are passed as SQL text ("body", "?5").
class Dialect {
public:
    virtual ~Dialect() = default;
    /// The size of `expr` in bytes (UTF-8 text or a blob).
    virtual std::string octets(std::string_view expr) const = 0;
    /// Whether `expr` equals an item of `list`, a Type::kTextList parameter.
    virtual std::string in_list(std::string_view expr, std::string_view list) const = 0;
    /// Where `needle` first starts in `haystack` (from 1), 0 when it does not occur.
    virtual std::string position(std::string_view needle, std::string_view haystack) const = 0;
    /// Whether the text `expr` starts with `prefix` (a kText parameter). `upper` is a kBytes
    /// parameter holding prefix_upper_bound(prefix) (NULL: none), for a dialect that ranges over
    /// an index; another may ignore it.
    virtual std::string starts_with(std::string_view expr, std::string_view prefix,
                                    std::string_view upper) const = 0;
    /// Appended to an INSERT whose new row's `column` (an identity or INTEGER PRIMARY KEY) is read
    /// with Query::inserted_id: RETURNING on PostgreSQL; nothing on SQLite, where RETURNING costs
    /// a temporary table per statement and the last rowid is free (the mailbox hot path).
    virtual std::string returning_id(std::string_view column) const = 0;
    /// Appended to a SELECT of rows that this transaction may update, so that concurrent writers
    /// (other nodes) wait for it; "" where one writer holds the whole database.
    virtual std::string_view for_update() const = 0;
    /// Appended to a SELECT of rows that a foreign key will reference; "" likewise.
    virtual std::string_view for_key_share() const = 0;
};

/// One use of a prepared statement on a connection: the backend's side of Query.
class Cursor {
public:
    virtual ~Cursor() = default;
    // Parameters, in order; each must match its declared Type (checked in debug builds).
    virtual void bind_int64(std::int64_t value) = 0;
    virtual void bind_bool(bool value) = 0;
    virtual void bind_double(double value) = 0;
    /// kText, kBytes or kBlob. The bytes are not copied: they must outlive the statement's run.
    virtual void bind_text(std::string_view value) = 0;
    virtual void bind_list(std::span<const std::string> items) = 0;
    virtual void bind_null() = 0;
    /// A uniqueness conflict ends the run with conflict() rather than failing the transaction.
    virtual void report_conflict() = 0;

    /// Runs the statement on the first call; then true while there is a row to read.
    virtual bool next() = 0;
    virtual bool failed() const noexcept = 0;
    virtual bool conflict() const noexcept = 0;
    /// Rows inserted, updated or deleted by the statement once it ran.
    virtual std::uint64_t changes() const = 0;
    /// The id of the row an INSERT with Dialect::returning_id inserted, once it ran.
    virtual std::int64_t inserted_id() const = 0;

    virtual bool is_null(int column) const = 0;
    virtual std::int64_t int64_at(int column) const = 0;
    virtual bool bool_at(int column) const = 0;
    virtual double double_at(int column) const = 0;
    virtual std::string text_at(int column) const = 0;

    /// Ends the use: the statement holds no rows, snapshot or parameters any more.
    virtual void reset() = 0;
};

/// A connection as repositories see it. Its failures (a statement that failed, or fail()) are
/// kept by the backend, which reports them for the whole batch or read.
class Conn {
public:
    virtual ~Conn() = default;
    /// The cursor of `statement` on this connection, prepared on first use, ready to bind. A
    /// statement is used by one Query at a time.
    virtual Cursor& cursor(const Statement& statement) = 0;
    /// The largest text or blob the database stores in one field.
    virtual std::size_t max_field_bytes() const noexcept = 0;
    /// Whether a text value can be stored as it is (PostgreSQL: valid UTF-8 without NUL).
    virtual bool storable_text(std::string_view value) const noexcept = 0;
    /// Fails the operation with `kind` (e.g. kCorrupt for a missing row the migrations insert):
    /// returns false, for `return conn.fail(...)`.
    virtual bool fail(detail::ErrorKind kind, std::string_view what) = 0;

    bool storable(const std::optional<std::string>& value) const noexcept {
        return !value || storable_text(*value);
    }
};

/// One use of a statement: binds its parameters in order, runs it, reads its rows, and resets it
/// when it goes out of scope. Operations return false when a statement failed (the backend fails
/// the batch or read with the cause), e.g.
///     sql::Query q(conn, kDepth);
///     q.text(key);
///     if (!q.next() && q.failed()) return false;
class Query {
public:
    Query(Conn& conn, const Statement& statement) : cursor_(conn.cursor(statement)) {}
    ~Query() { cursor_.reset(); }
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;

    Query& int64(std::int64_t value) {
        cursor_.bind_int64(value);
        return *this;
    }
    Query& boolean(bool value) {
        cursor_.bind_bool(value);
        return *this;
    }
    Query& real(double value) {
        cursor_.bind_double(value);
        return *this;
    }
    Query& real(const std::optional<double>& value) { return value ? real(*value) : null(); }
    /// A kText, kBytes or kBlob parameter; the bytes must outlive the run.
    Query& text(std::string_view value) {
        cursor_.bind_text(value);
        return *this;
    }
    Query& text(const std::string& value) { return text(std::string_view(value)); }
    Query& list(std::span<const std::string> items) {
        cursor_.bind_list(items);
        return *this;
    }
    Query& null() {
        cursor_.bind_null();
        return *this;
    }
    Query& text(const std::optional<std::string>& value) { return value ? text(*value) : null(); }
    Query& int64(const std::optional<std::int64_t>& value) {
        return value ? int64(*value) : null();
    }
    Query& boolean(const std::optional<bool>& value) { return value ? boolean(*value) : null(); }
    Query& report_conflict() {
        cursor_.report_conflict();
        return *this;
    }

    bool next() { return cursor_.next(); }
    /// Runs the statement to its end; false when it failed.
    bool run() {
        while (cursor_.next()) {
        }
        return !cursor_.failed();
    }
    bool failed() const noexcept { return cursor_.failed(); }
    bool conflict() const noexcept { return cursor_.conflict(); }
    std::uint64_t changes() const { return cursor_.changes(); }
    std::int64_t inserted_id() const { return cursor_.inserted_id(); }

    bool is_null(int column) const { return cursor_.is_null(column); }
    std::int64_t int64_at(int column) const { return cursor_.int64_at(column); }
    bool bool_at(int column) const { return cursor_.bool_at(column); }
    double real_at(int column) const { return cursor_.double_at(column); }
    std::string text_at(int column) const { return cursor_.text_at(column); }
    std::optional<std::string> opt_text_at(int column) const {
        return is_null(column) ? std::nullopt : std::optional(text_at(column));
    }
    std::optional<std::int64_t> opt_int64_at(int column) const {
        return is_null(column) ? std::nullopt : std::optional(int64_at(column));
    }

private:
    Cursor& cursor_;
};

/// A queued operation as backends run it: `execute` returns false when a statement failed (the
/// batch or read then fails with the connection's failure).
using Op = detail::ConnOp<Conn, bool>;

/// Debug check of a bind against the statement's declaration.
inline void check_bind(const Statement& s, std::size_t index, std::initializer_list<Type> ok) {
    assert(index < s.params().size() && "more parameters bound than the statement declares");
    assert(std::find(ok.begin(), ok.end(), s.params()[index]) != ok.end() &&
           "a parameter bound with a type its statement does not declare");
    (void)s;
    (void)index;
    (void)ok;
}

}  // namespace hearth::store::sql
