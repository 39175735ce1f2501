#pragma once

// What every repository shares. A repository implements one interface of include/hearth (or the
// next one's) once, for every backend: its operations are functions of a sql::Conn (sql/sql.hpp)
// queued on the store's executor, which runs them on the backend's connections.
//
// Adding a repository: one file here defining its class (its statements, its operations), its
// factory declared in repositories.hpp, and its accessor in SqlStore (sql_store.hpp).

#include <cstdint>
#include <limits>
#include <utility>

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

}  // namespace hearth::store::repo
