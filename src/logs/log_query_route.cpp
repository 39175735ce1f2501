#include "logs/log_query_route.hpp"
#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "auth/operator_auth.hpp"
#include "util/time.hpp"

namespace hearth::logs {

namespace {

constexpr std::array<std::string_view, 6> kParameters = {"room",  "user",  "level",
                                                         "since", "limit", "cursor"};

HttpResponse invalid(std::string_view parameter, std::string_view why) {
    return HttpResponse::error(400, "invalid_parameter",
                               std::string(parameter) + ": " + std::string(why));
}

template <class T>
std::optional<T> parse_number(std::string_view s) {
    T v{};
    const auto* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, v);
    if (ec != std::errc() || ptr != end || s.empty()) {
        return std::nullopt;
    }
    return v;
}

/// A level name: letters only, upper-cased (entries' levels are stored upper-cased).
std::optional<std::string> parse_level(std::string_view s) {
    if (s.empty() || s.size() > 16) {
        return std::nullopt;
    }
    std::string out;
    for (char c : s) {
        if (c >= 'a' && c <= 'z') {
            out += static_cast<char>(c - 'a' + 'A');
        } else if (c >= 'A' && c <= 'Z') {
            out += c;
        } else {
            return std::nullopt;
        }
    }
    return out;
}

/// The store query of a request, or the 400 that explains what is wrong with it.
std::variant<store::LogQuery, HttpResponse> parse_query(const HttpRequest& req) {
    // Unknown parameters are refused rather than ignored: a misspelt filter ("levels=") would
    // otherwise silently return everything.
    std::string_view rest = req.query;
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const auto key = pair.substr(0, pair.find('='));
        if (!key.empty() &&
            std::find(kParameters.begin(), kParameters.end(), key) == kParameters.end()) {
            return invalid(key,
                           "unknown parameter (known: room, user, level, since, limit, cursor)");
        }
    }
    store::LogQuery q;
    q.limit = kDefaultQueryLimit;
    // An empty value means no filter, as in /logs/listen?room=.
    if (auto room = req.query_param("room"); room && !room->empty()) {
        q.room = std::move(*room);
    }
    if (auto user = req.query_param("user"); user && !user->empty()) {
        q.user = std::move(*user);
    }
    if (auto levels = req.query_param("level"); levels && !levels->empty()) {
        std::string_view list = *levels;
        while (!list.empty()) {
            const auto comma = list.find(',');
            const auto one = list.substr(0, comma);
            list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
            auto level = parse_level(one);
            if (!level) {
                return invalid("level", "a comma-separated list of level names, e.g. ERROR,WARN");
            }
            q.levels.push_back(std::move(*level));
        }
    }
    if (auto since = req.query_param("since"); since && !since->empty()) {
        q.since_ms = util::parse_time_ms(*since);
        if (!q.since_ms) {
            return invalid("since",
                           "milliseconds since the Unix epoch or an RFC 3339 time, e.g. "
                           "2026-11-22T03:04:05Z");
        }
    }
    if (auto limit = req.query_param("limit"); limit && !limit->empty()) {
        const auto n = parse_number<std::size_t>(*limit);
        if (!n || *n < 1 || *n > kMaxQueryLimit) {
            return invalid("limit", "an integer from 1 to " + std::to_string(kMaxQueryLimit));
        }
        q.limit = *n;
    }
    if (auto cursor = req.query_param("cursor"); cursor && !cursor->empty()) {
        q.before_id = parse_number<std::uint64_t>(*cursor);
        if (!q.before_id) {
            return invalid("cursor", "not a cursor returned as \"next\" by this endpoint");
        }
    }
    return q;
}

HttpResponse store_error(const boost::system::error_code& ec) {
    if (ec == make_error_code(Errc::kStorageFailure)) {
        return HttpResponse::error(500, "storage_failure",
                                   "The store failed to read the log entries; the server log "
                                   "says why.");
    }
    return HttpResponse::error(503, "unavailable",
                               "The store is busy or stopping; try again shortly.");
}

/// {"items":[entry, ...],"next":"cursor"|null}. The entries are stored as the JSON text the live
/// stream sent, so they are copied in as they are.
HttpResponse page(std::vector<store::LogRow> rows, std::size_t limit) {
    std::string next = "null";
    if (rows.size() > limit) {
        rows.resize(limit);
        next = '"' + std::to_string(rows.back().id) + '"';
    }
    std::string body = R"({"items":[)";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i != 0) {
            body += ',';
        }
        body += rows[i].body;
    }
    body += R"(],"next":)";
    body += next;
    body += '}';
    return HttpResponse::json(200, std::move(body));
}

void answer(store::Logs* storage, const HttpRequest& req, HttpResponder res) {
    if (storage == nullptr) {
        res.respond(HttpResponse::error(
            503, "logs_not_stored",
            "Log storage is off ([logs] store = false): only the live stream exists."));
        return;
    }
    auto parsed = parse_query(req);
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) {
        res.respond(std::move(*refused));
        return;
    }
    auto q = std::get<store::LogQuery>(std::move(parsed));
    const std::size_t limit = q.limit;
    q.limit = limit + 1;  // one more tells whether there is a next page
    // The responder may complete from the store's thread.
    storage->query(std::move(q), [res = std::move(res),
                                  limit](Result<std::vector<store::LogRow>> rows) mutable {
        res.respond(rows ? page(std::move(*rows), limit) : store_error(rows.error()));
    });
}

}  // namespace

void add_log_query_route(Router& router, const std::string& listener, store::Logs* storage,
                         const auth::OperatorAuth& operators) {
    router.add_http_route(
        listener, "GET", "/api/v1/logs",
        [storage, &operators](const HttpRequest& req, HttpResponder res) {
            // The request is copied: an account token's check finishes on a store thread.
            operators.authorize(req, [storage, req, res](auth::OperatorAuth::Outcome who) mutable {
                if (auto* refused = std::get_if<HttpResponse>(&who)) {
                    res.respond(std::move(*refused));
                    return;
                }
                answer(storage, req, std::move(res));
            });
        });
}

}  // namespace hearth::logs
