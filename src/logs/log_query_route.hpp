#pragma once

// GET /api/v1/logs: stored log entries, filtered and paged, for operators (docs/logs.md).

#include <string>

#include <hearth/http.hpp>
#include <hearth/store.hpp>

namespace hearth::auth {
class OperatorAuth;
}  // namespace hearth::auth

namespace hearth::logs {

/// Most entries one page may hold (`limit`), and the page size when none is asked.
inline constexpr std::size_t kMaxQueryLimit = 1'000;
inline constexpr std::size_t kDefaultQueryLimit = 100;

/// Declares GET /api/v1/logs on `listener`. `storage` null means log storage is off: the route
/// answers 503 `logs_not_stored`. `storage` and `operators` must outlive the routes.
void add_log_query_route(Router& router, const std::string& listener, store::Logs* storage,
                         const auth::OperatorAuth& operators);

}  // namespace hearth::logs
