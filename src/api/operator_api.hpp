#pragma once

// The operator HTTP API under /api/v1 (docs/api.md): a small route table with {param} segments,
// the admin check in front of every operator route, JSON helpers and the audit log. Each resource
// (accounts, tokens, ...) adds its routes to one OperatorApi; the route table is what
// /api/v1/openapi.json is checked against.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <hearth/http.hpp>

#include "auth/operator_auth.hpp"

namespace hearth::store {
class AccountStore;
}  // namespace hearth::store

namespace hearth::api {

/// One call to an operator route. Copied out of the HTTP request, so that a handler may finish on
/// another thread (a store completion).
struct ApiCall {
    HttpRequest request;
    std::map<std::string, std::string> params;  // the {name} segments of the route's pattern
    auth::Actor actor;                          // who (the admin check passed); empty for public
};
using ApiCallPtr = std::shared_ptr<const ApiCall>;
using ApiHandler = std::function<void(ApiCallPtr, HttpResponder)>;

enum class Access : std::uint8_t {
    kAdmin,   // the admin token or an admin account's token
    kPublic,  // anyone (login; a route that checks its own token)
};

struct RouteInfo {
    std::string method;
    std::string pattern;  // "/api/v1/accounts/{id}"
    Access access = Access::kAdmin;
};

class OperatorApi {
public:
    /// `audit` may be null (no account store): operator actions are then only logged.
    OperatorApi(Router& router, std::string listener, const auth::OperatorAuth& auth,
                store::AccountStore* audit);

    /// Declares a route; patterns are absolute paths whose segments may be `{name}`.
    void add(std::string method, std::string pattern, Access access, ApiHandler handler);
    /// Records a route another module registered with the router itself (for routes() and the
    /// OpenAPI check).
    void note_external(std::string method, std::string pattern, Access access);
    /// Registers the routes with the router, and GET /api/v1/openapi.json; call once, after every
    /// add.
    void install();
    /// Registers the routes with the router, without the OpenAPI document: for a module that
    /// serves a part of the API on its own share of the network (its routes come and go with it),
    /// listed by the operator API's module with note_external. Call after every add, again after
    /// the router withdrew them.
    void install_routes();

    std::vector<RouteInfo> routes() const;

    /// Writes an audit entry (who from `call`, what, on what, details as JSON) and logs it.
    /// Failures are logged, never reported to the caller: the action itself succeeded.
    void audit(const ApiCall& call, std::string action, std::string target,
               boost::json::object detail = {}) const;

private:
    struct Route {
        RouteInfo info;
        std::vector<std::string> segments;
        ApiHandler handler;
    };
    void dispatch(const HttpRequest& req, HttpResponder res) const;

    Router& router_;
    std::string listener_;
    const auth::OperatorAuth& auth_;
    store::AccountStore* audit_store_;
    std::vector<Route> routes_;
    std::vector<RouteInfo> external_;
};

// ---- helpers shared by the resources ----------------------------------------------------------

/// {"error":{"code","message"}} with `status`.
HttpResponse api_error(int status, std::string_view code, std::string_view message);
/// The answer to a store or service error (404 not_found, 409 already_exists, 503 unavailable,
/// 500 storage_failure, ...).
HttpResponse error_response(const boost::system::error_code& ec);
HttpResponse json_response(int status, const boost::json::value& body);
/// {"items":[...],"next":"cursor"|null}.
HttpResponse page_response(boost::json::array items, std::optional<std::string> next);

/// The page of a listing by id fetched with one row more than `page` (that one only tells that
/// there is a next page, whose cursor is then the id of this page's last row), each row as
/// `to_json(row)`.
template <class Row, class ToJson>
HttpResponse id_page_response(std::vector<Row> rows, std::size_t page, ToJson to_json) {
    std::optional<std::string> next;
    if (rows.size() > page) {
        rows.resize(page);
        next = std::to_string(rows.back().id);
    }
    boost::json::array items;
    for (const auto& row : rows) {
        items.push_back(to_json(row));
    }
    return page_response(std::move(items), next);
}

/// The body as a JSON object, or the 400 to answer.
std::variant<boost::json::object, HttpResponse> parse_object(const HttpRequest& req);

/// RFC 3339 in UTC with milliseconds: "2026-11-22T03:04:05.123Z".
std::string rfc3339(std::chrono::system_clock::time_point t);

/// A positive integer path or query value.
std::optional<std::uint64_t> parse_id(std::string_view s);

/// An id cursor from the query (`cursor`, as a page's `next` gave it): nothing when absent or
/// empty, or the 400 to answer.
std::variant<std::optional<std::uint64_t>, HttpResponse> parse_id_cursor(const HttpRequest& req);

/// `limit` (1..max, default `fallback`) from the query, or the 400 to answer.
std::variant<std::size_t, HttpResponse> parse_limit(const HttpRequest& req, std::size_t fallback,
                                                    std::size_t max);

}  // namespace hearth::api
