#pragma once

// What every repository shares. A repository implements one interface of include/hearth (or the
// next one's) once, for every backend: its operations are functions of a sql::Conn (sql/sql.hpp)
// queued on the store's executor, which runs them on the backend's connections.
//
// Adding a repository: one file here defining its class (its statements, its operations), its
// factory declared in repositories.hpp, and its accessor in SqlStore (sql_store.hpp).

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hearth/result.hpp>
#include <hearth/store.hpp>

#include "store/executor.hpp"
#include "store/sql/sql.hpp"

namespace hearth::store::repo {

using detail::BatchStats;

/// Queues a repository's operations: `fn(sql::Conn&, BatchStats&, Result<T>& out) -> bool`, run
/// once on a store thread; `bytes` is what the operation holds (ExecOp::bytes).
class Runner {
public:
    explicit Runner(detail::StoreExecutor& executor) : executor_(executor) {}

    template <class T, class Fn>
    void write(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_write(
            detail::make_op<sql::Conn, bool, T>(std::move(fn), std::move(done), bytes));
    }
    template <class T, class Fn>
    void read(Completion<T> done, Fn fn, std::size_t bytes = 0) {
        executor_.submit_read(
            detail::make_op<sql::Conn, bool, T>(std::move(fn), std::move(done), bytes));
    }

private:
    detail::StoreExecutor& executor_;
};

inline std::int64_t clamp_to_int64(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}

// ---- values as stored, and answers, shared by the repositories ---------------------------------

using Time = std::chrono::system_clock::time_point;

/// ASCII A-Z folded to a-z: the unique keys of names (usernames, emails, character names). SQL
/// lower() differs between backends and locales.
inline std::string fold(std::string_view s) {
    std::string out(s);
    for (char& ch : out) {
        if (ch >= 'A' && ch <= 'Z') {
            ch = static_cast<char>(ch - 'A' + 'a');
        }
    }
    return out;
}

/// Times are stored as Unix milliseconds.
inline std::int64_t ms(Time t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::optional<std::int64_t> ms(const std::optional<Time>& t) {
    return t ? std::optional(ms(*t)) : std::nullopt;
}
inline Time time_of(std::int64_t ms_since_epoch) {
    return Time(std::chrono::milliseconds(ms_since_epoch));
}
inline std::optional<Time> opt_time_at(const sql::Query& q, int column) {
    return q.is_null(column) ? std::nullopt : std::optional(time_of(q.int64_at(column)));
}

/// An id as a BIGINT parameter; nothing for one no row can have (ids are positive BIGINTs).
inline std::optional<std::int64_t> id_param(std::uint64_t id) noexcept {
    if (id == 0 || id > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::nullopt;
    }
    return static_cast<std::int64_t>(id);
}

/// The one row of `q` as `of(q)`, kNotFound without one; false when the statement failed.
template <class T, class Of>
bool one(sql::Query& q, Result<T>& out, Of of) {
    if (q.next()) {
        out = of(q);
    } else {
        out = make_error_code(Errc::kNotFound);
    }
    return q.run();
}

/// Every row of `q` as `of(q)`.
template <class T, class Of>
bool all(sql::Query& q, Result<std::vector<T>>& out, Of of) {
    std::vector<T> rows;
    while (q.next()) {
        rows.push_back(of(q));
    }
    if (q.failed()) {
        return false;
    }
    out = std::move(rows);
    return true;
}

/// An operation's answer decided without (more of) the database: `e`, and the batch goes on.
template <class T>
bool fail_with(Result<T>& out, Errc e) {
    out = make_error_code(e);
    return true;
}
/// The cases that no stored row can match, answered without asking the database.
template <class T>
bool not_found(Result<T>& out) {
    return fail_with(out, Errc::kNotFound);
}
template <class T>
bool invalid(Result<T>& out) {
    return fail_with(out, Errc::kInvalidArgument);
}

}  // namespace hearth::store::repo
