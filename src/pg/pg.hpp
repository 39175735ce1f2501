#pragma once

// Small RAII wrappers over libpq and the masking of connection strings, shared by the PostgreSQL
// store (store/postgres) and the better-auth bridge (auth/better_auth.cpp): a layer below both, so
// that neither includes the other's internals. Nothing here is thread-safe: a connection belongs
// to one thread at a time.

#include <memory>
#include <string>
#include <string_view>

#include <libpq-fe.h>

namespace hearth::pg {

struct ConnDeleter {
    void operator()(PGconn* conn) const noexcept { PQfinish(conn); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct ResultDeleter {
    void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

/// Connects to `url` (a libpq connection string or URI) with Hearth's defaults, which the URL may
/// override: connect_timeout=10, application_name=hearth. Server notices are not printed. Blocks
/// up to the connect timeout. On failure returns null and sets `error` to libpq's message (it
/// names the host and port, never the password).
ConnPtr connect(const std::string& url, std::string& error);

/// libpq's last error on `conn`, without its trailing newline; several lines joined with "; ".
std::string error_message(const PGconn* conn);

/// The SQLSTATE of a failed result ("" when there is none, e.g. the connection broke).
std::string sqlstate(const PGresult* result);

/// The primary message of a failed result, or the connection's error when there is no result.
std::string result_message(const PGresult* result, const PGconn* conn);

/// Whether `result` succeeded (a command, or rows).
inline bool ok(const PGresult* result) noexcept {
    const auto status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
}

/// `url` (a libpq connection string or a postgres:// URI) with the password replaced by "***",
/// for logs and messages: "postgresql://hearth:***@db:5432/hearth",
/// "host=db user=hearth password=*** dbname=hearth". A malformed string is masked from the point
/// where it stops parsing.
std::string mask_url(std::string_view url);

}  // namespace hearth::pg
