#include "api/operator_api.hpp"
#include <charconv>
#include <ctime>
#include <set>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <hearth/account_store.hpp>

#include "api/openapi.hpp"
#include "util/log.hpp"

namespace hearth::api {

namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("api");
    return l;
}

std::vector<std::string> split_path(std::string_view path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        const auto end = path.find('/', i);
        out.emplace_back(path.substr(i, end == std::string_view::npos ? end : end - i));
        i = end == std::string_view::npos ? path.size() : end;
    }
    return out;
}

bool is_param(std::string_view segment) {
    return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

/// The fixed part of a pattern before its first parameter, with the trailing slash.
std::string static_prefix(const std::string& pattern) {
    const auto brace = pattern.find('{');
    return brace == std::string::npos ? pattern : pattern.substr(0, brace);
}

}  // namespace

OperatorApi::OperatorApi(Router& router, std::string listener, const auth::OperatorAuth& auth,
                         store::AccountStore* audit)
    : router_(router), listener_(std::move(listener)), auth_(auth), audit_store_(audit) {}

void OperatorApi::add(std::string method, std::string pattern, Access access, ApiHandler handler) {
    Route r;
    r.info = RouteInfo{std::move(method), std::move(pattern), access};
    r.segments = split_path(r.info.pattern);
    r.handler = std::move(handler);
    routes_.push_back(std::move(r));
}

void OperatorApi::note_external(std::string method, std::string pattern, Access access) {
    external_.push_back(RouteInfo{std::move(method), std::move(pattern), access});
}

std::vector<RouteInfo> OperatorApi::routes() const {
    std::vector<RouteInfo> out = external_;
    for (const auto& r : routes_) {
        out.push_back(r.info);
    }
    return out;
}

void OperatorApi::install() {
    add("GET", "/api/v1/openapi.json", Access::kPublic, [](ApiCallPtr, HttpResponder res) {
        res.respond(HttpResponse::json(200, std::string(openapi_json())));
    });
    install_routes();
}

void OperatorApi::install_routes() {
    // One router entry per path: an exact one for a fixed path (any method, so that a wrong
    // method gets this API's 405), a prefix one for each fixed prefix of a parameterised path.
    std::set<std::pair<std::string, PathMatch>> entries;
    for (const auto& r : routes_) {
        const bool has_params = r.info.pattern.find('{') != std::string::npos;
        entries.insert({has_params ? static_prefix(r.info.pattern) : r.info.pattern,
                        has_params ? PathMatch::kPrefix : PathMatch::kExact});
    }
    for (const auto& [path, match] : entries) {
        router_.add_http_route(
            listener_, "", path,
            [this](const HttpRequest& req, HttpResponder res) { dispatch(req, std::move(res)); },
            match);
    }
}

void OperatorApi::dispatch(const HttpRequest& req, HttpResponder res) const {
    const auto segments = split_path(req.path);
    const Route* found = nullptr;
    bool path_matched = false;
    std::map<std::string, std::string> params;
    for (const auto& r : routes_) {
        if (r.segments.size() != segments.size()) {
            continue;
        }
        std::map<std::string, std::string> p;
        bool match = true;
        for (std::size_t i = 0; i < segments.size() && match; ++i) {
            if (is_param(r.segments[i])) {
                p[r.segments[i].substr(1, r.segments[i].size() - 2)] = segments[i];
            } else {
                match = r.segments[i] == segments[i];
            }
        }
        if (!match) {
            continue;
        }
        path_matched = true;
        if (r.info.method == req.method) {
            found = &r;
            params = std::move(p);
            break;
        }
    }
    if (found == nullptr) {
        res.respond(path_matched ? api_error(405, "method_not_allowed",
                                             req.method + " is not allowed on " + req.path + ".")
                                 : api_error(404, "not_found", "No API route " + req.path + "."));
        return;
    }
    auto call = std::make_shared<ApiCall>();
    call->request = req;
    call->params = std::move(params);
    call->actor.peer = req.peer_address;
    if (found->info.access == Access::kPublic) {
        found->handler(std::move(call), std::move(res));
        return;
    }
    auth_.authorize(
        req, [call, res, handler = found->handler](auth::OperatorAuth::Outcome outcome) mutable {
            if (auto* refused = std::get_if<HttpResponse>(&outcome)) {
                res.respond(std::move(*refused));
                return;
            }
            call->actor = std::get<auth::Actor>(std::move(outcome));
            handler(std::move(call), std::move(res));
        });
}

void OperatorApi::audit(const ApiCall& call, std::string action, std::string target,
                        json::object detail) const {
    store::AuditEntry e;
    e.at = std::chrono::system_clock::now();
    e.actor = call.actor.name;
    e.action = std::move(action);
    e.target = std::move(target);
    e.peer = call.actor.peer;
    e.detail = detail.empty() ? std::string() : json::serialize(detail);
    log()->info("audit: {} {} {} from {}", e.actor, e.action, e.target, e.peer);
    if (audit_store_ == nullptr) {
        return;
    }
    audit_store_->append_audit(std::move(e), [](Result<store::AuditEntry> r) {
        if (!r) {
            log()->error("audit entry not stored: {}", r.error().message());
        }
    });
}

// ---- helpers ----------------------------------------------------------------------------------

HttpResponse api_error(int status, std::string_view code, std::string_view message) {
    return HttpResponse::error(status, code, message);
}

HttpResponse error_response(const boost::system::error_code& ec) {
    const auto is = [&](Errc e) { return ec == make_error_code(e); };
    if (is(Errc::kNotFound)) {
        return api_error(404, "not_found", "No such resource.");
    }
    if (is(Errc::kAlreadyExists)) {
        return api_error(409, "already_exists", "It exists already (a name or email is taken).");
    }
    if (is(Errc::kInvalidArgument)) {
        return api_error(400, "invalid_argument", "A value is not valid.");
    }
    if (is(Errc::kUnauthenticated)) {
        return auth::unauthorized("The bearer token is not valid (unknown, expired or revoked).");
    }
    if (is(Errc::kNotAllowed)) {
        return api_error(403, "forbidden", "Not allowed.");
    }
    if (is(Errc::kUnavailable) || is(Errc::kShuttingDown)) {
        return api_error(503, "unavailable", "The server is busy or stopping; try again shortly.");
    }
    if (is(Errc::kStorageFailure)) {
        return api_error(500, "storage_failure", "The store failed; the server log says why.");
    }
    return api_error(500, "internal", "An internal error; the server log says more.");
}

HttpResponse json_response(int status, const json::value& body) {
    return HttpResponse::json(status, json::serialize(body));
}

HttpResponse page_response(json::array items, std::optional<std::string> next) {
    json::object o;
    o["items"] = std::move(items);
    o["next"] = next ? json::value(*next) : json::value(nullptr);
    return json_response(200, o);
}

std::variant<json::object, HttpResponse> parse_object(const HttpRequest& req) {
    boost::system::error_code ec;
    json::value v = json::parse(req.body, ec);
    if (ec) {
        return api_error(400, "invalid_json", "The body is not valid JSON: " + ec.message());
    }
    if (!v.is_object()) {
        return api_error(400, "invalid_json", "The body must be a JSON object.");
    }
    return std::move(v.get_object());
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000 - (ms % 1000 < 0 ? 1 : 0));
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(((ms % 1000) + 1000) % 1000));
    return buf;
}

std::optional<std::uint64_t> parse_id(std::string_view s) {
    std::uint64_t v = 0;
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, v);
    if (s.empty() || ec != std::errc() || ptr != end || v == 0) {
        return std::nullopt;
    }
    return v;
}

std::variant<std::optional<std::uint64_t>, HttpResponse> parse_id_cursor(const HttpRequest& req) {
    auto c = req.query_param("cursor");
    if (!c || c->empty()) {
        return std::optional<std::uint64_t>{};
    }
    auto id = parse_id(*c);
    if (!id) {
        return api_error(400, "invalid_parameter", "cursor: not a cursor returned as \"next\"");
    }
    return id;
}

std::variant<std::size_t, HttpResponse> parse_limit(const HttpRequest& req, std::size_t fallback,
                                                    std::size_t max) {
    auto limit = req.query_param("limit");
    if (!limit || limit->empty()) {
        return fallback;
    }
    const auto n = parse_id(*limit);
    if (!n || *n > max) {
        return api_error(400, "invalid_parameter",
                         "limit: an integer from 1 to " + std::to_string(max));
    }
    return static_cast<std::size_t>(*n);
}

}  // namespace hearth::api
