#include "logs/log_routes.hpp"
#include <initializer_list>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "auth/operator_auth.hpp"
#include "core/json_numbers.hpp"
#include "core/metrics.hpp"
#include "logs/logs_page.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace hearth::logs {

namespace json = boost::json;

namespace {

// The stream's own logger: its lines never enter the stream (LogStream::on_log_line), so a refusal
// can neither feed the stream nor reach a public listener.
std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("logs");
    return l;
}

// What a log line may show of a header a client chose (an Origin): bounded.
std::string_view clip(std::string_view s) {
    return s.substr(0, 120);
}

/// hearth_logs_refused_total for one route: requests refused, by reason, each also logged at
/// `level`. Every reason the route can give is registered at once, so that each series exists (at
/// 0) before the first refusal. Thread-safe (counters are atomic, the registry locks).
class Refusals {
public:
    Refusals(core::MetricsRegistry& metrics, std::string listener, std::string route,
             spdlog::level::level_enum level, std::initializer_list<std::string_view> reasons)
        : metrics_(metrics),
          listener_(std::move(listener)),
          route_(std::move(route)),
          level_(level) {
        for (auto reason : reasons) {
            (void)counter(reason);
        }
    }

    /// Counts and logs one refusal; returns `response` for the caller to send.
    HttpResponse refuse(std::string_view reason, std::string_view peer, HttpResponse response,
                        std::string_view detail = {}) const {
        counter(reason).inc();
        log()->log(level_, "refused {} on {} from {}: {} (HTTP {}){}{}", route_, listener_, peer,
                   reason, response.status, detail.empty() ? "" : ", ", detail);
        return response;
    }

    const std::string& route() const noexcept { return route_; }
    const std::string& listener() const noexcept { return listener_; }

private:
    core::Counter& counter(std::string_view reason) const {
        return metrics_.counter(
            "hearth_logs_refused_total",
            "Requests to the logs endpoints refused, by listener, route and "
            "reason (forbidden_origin, invalid_token, not_admin, unavailable "
            "for /logs/listen; rate_limited, too_large, invalid_json, "
            "invalid_entry, unavailable for /logs/add).",
            {{"listener", listener_}, {"route", route_}, {"reason", std::string(reason)}});
    }

    core::MetricsRegistry& metrics_;
    std::string listener_;
    std::string route_;
    spdlog::level::level_enum level_;
};

HttpResponse with_cors(HttpResponse r) {
    r.headers.push_back({"Access-Control-Allow-Origin", "*"});
    return r;
}

HttpResponse add(const std::weak_ptr<LogStream>& weak, const Refusals& refusals,
                 const HttpRequest& req) {
    const auto bad_request = [&](std::string_view reason, std::string_view message) {
        return refusals.refuse(reason, req.peer_address,
                               with_cors(HttpResponse::error(400, "bad_request", message)));
    };
    auto stream = weak.lock();
    if (!stream) {
        return refusals.refuse(
            "unavailable", req.peer_address,
            with_cors(HttpResponse::error(503, "unavailable", "the server is stopping")));
    }
    // First: a refused body (too large, not JSON) costs the server its reading too.
    if (const auto wait = stream->admit_add(req.peer_address, req.body.size())) {
        auto r =
            with_cors(HttpResponse::error(429, "rate_limited",
                                          "too many log entries from this address; retry after " +
                                              std::to_string(wait->count()) + " s"));
        r.headers.push_back({"Retry-After", std::to_string(wait->count())});
        return refusals.refuse("rate_limited", req.peer_address, std::move(r));
    }
    if (req.body.size() > kMaxAddBodyBytes) {
        return refusals.refuse(
            "too_large", req.peer_address,
            with_cors(HttpResponse::error(
                413, "too_large",
                "the body is over " + std::to_string(kMaxAddBodyBytes) + " bytes")));
    }
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec) {
        return bad_request("invalid_json", "the body is not valid JSON: " + ec.message());
    }
    if (!core::finite_numbers(body)) {
        // Stored and sent to every listener, it would be written `Infinity`, which the log page
        // and every other listener's JSON parser refuse.
        return bad_request("invalid_json",
                           "the body holds a number out of range (beyond a double's)");
    }
    // Validate every entry before adding any, so that a rejected request adds nothing.
    std::vector<json::object> entries;
    if (body.is_object()) {
        entries.push_back(std::move(body.get_object()));
    } else if (body.is_array()) {
        for (auto& v : body.get_array()) {
            if (!v.is_object()) {
                return bad_request("invalid_entry",
                                   "every element of the array must be a log entry object");
            }
            entries.push_back(std::move(v.get_object()));
        }
    } else {
        return bad_request("invalid_entry",
                           "the body must be a log entry object or an array of them");
    }
    for (const auto& e : entries) {
        if (const auto* r = e.if_contains("room"); r && !r->is_string() && !r->is_null()) {
            return bad_request("invalid_entry", "\"room\" must be a string");
        }
    }
    for (auto& e : entries) {
        (void)stream->ingest(std::move(e));  // validated above: cannot fail
    }
    // Exactly what the original sends (Express's res.end()): 200, no Content-Type, no body.
    auto r = HttpResponse::text(200, "");
    r.content_type.clear();
    return with_cors(std::move(r));
}

/// One /logs/listen connection. Runs on its connection's io thread; owned by the connection.
class ListenHandler final : public WsHandler {
public:
    ListenHandler(std::weak_ptr<LogStream> stream, std::optional<std::string> room,
                  Audience audience)
        : stream_(std::move(stream)), room_(std::move(room)), audience_(audience) {}

    void on_open(const ConnectionPtr& connection) override {
        if (auto s = stream_.lock()) {
            id_ = s->add_listener(ConnectionHandle(connection), room_, audience_);
        }
    }
    void on_message(MessageKind, std::string_view) override {}  // incoming frames are ignored
    void on_close(const CloseInfo&) override {
        if (auto s = stream_.lock(); s && id_) {
            s->remove_listener(*id_);
        }
    }

private:
    std::weak_ptr<LogStream> stream_;
    std::optional<std::string> room_;
    Audience audience_;
    std::optional<ListenerId> id_;
};

/// The refusal reason of an OperatorAuth answer.
std::string_view auth_reason(const HttpResponse& r) {
    switch (r.status) {
        case 401:
            return "invalid_token";
        case 403:
            return "not_admin";
        default:
            return "unavailable";
    }
}

void accept_listener(const std::weak_ptr<LogStream>& weak, const auth::OperatorAuth& operators,
                     const std::shared_ptr<const Refusals>& refusals, const HttpRequest& req,
                     std::function<void(WsRoute::Decision)> decide) {
    // The original page sends `room`; its README says `roomId`. An empty value means no room.
    auto room = req.query_param("room");
    if (!room || room->empty()) {
        room = req.query_param("roomId");
    }
    if (room && room->empty()) {
        room.reset();
    }
    auto stream = weak.lock();
    if (!stream) {
        decide(
            refusals->refuse("unavailable", req.peer_address,
                             HttpResponse::error(503, "unavailable", "The server is stopping.")));
        return;
    }
    auto presented = auth::presented_token(req);
    if (presented.kind == auth::PresentedToken::Kind::kNone) {
        // The public stream: posted entries, and the server's lines only when they are public.
        // No Origin check, as in the original: nothing here is an operator's.
        log()->debug("{} on {} from {}: public listener", refusals->route(), refusals->listener(),
                     req.peer_address);
        decide(std::make_unique<ListenHandler>(weak, std::move(room), Audience::kPublic));
        return;
    }
    // A token is an operator's: a page of another origin must not use an operator's browser to
    // read the server's lines (the token check alone would not stop a page that has the token).
    // Checked here too, before OperatorAuth does, for this route's own reason and message.
    const auto allowed_origins = stream->access().allowed_origins;
    stream.reset();
    if (presented.kind != auth::PresentedToken::Kind::kMalformed &&
        !auth::origin_allowed(req, allowed_origins)) {
        decide(refusals->refuse(
            "forbidden_origin", req.peer_address,
            HttpResponse::error(403, "forbidden_origin",
                                "A page of this Origin may not open an operator log stream: only "
                                "the server's own origin and [logs] allowed_origins may."),
            "Origin " + std::string(clip(req.header("Origin").value_or("")))));
        return;
    }
    // `then` runs here (the admin token, refusals) or on a store thread (an account's token).
    operators.authorize_upgrade(
        req, presented, allowed_origins,
        [weak, refusals, room = std::move(room), req_peer = req.peer_address,
         decide = std::move(decide)](auth::OperatorAuth::Outcome who) mutable {
            if (auto* refused = std::get_if<HttpResponse>(&who)) {
                const auto reason = auth_reason(*refused);
                decide(refusals->refuse(reason, req_peer, std::move(*refused)));
                return;
            }
            const auto& actor = std::get<auth::Actor>(who);
            log()->info("{} on {} from {}: operator listener ({}), with the server's lines",
                        refusals->route(), refusals->listener(), req_peer, actor.name);
            decide(std::make_unique<ListenHandler>(weak, std::move(room), Audience::kOperator));
        });
}

}  // namespace

void add_log_routes(Router& router, const std::string& listener, const std::string& prefix,
                    const std::shared_ptr<LogStream>& stream, const WsRouteSettings& ws_settings,
                    const auth::OperatorAuth& operators, core::MetricsRegistry& metrics) {
    std::weak_ptr<LogStream> weak = stream;
    // The live viewer; it listens at logs/listen relative to its own path, so under any prefix.
    router.add_http_route(listener, "GET", prefix + "/logs.html",
                          sync_handler([](const HttpRequest&) { return logs_page_response(); }));
    auto add_refusals = std::make_shared<const Refusals>(
        // A client's malformed post is not worth a line at the default level: it can come at any
        // rate, and nothing is at stake.
        metrics, listener, prefix + "/logs/add", spdlog::level::debug,
        std::initializer_list<std::string_view>{"rate_limited", "too_large", "invalid_json",
                                                "invalid_entry", "unavailable"});
    router.add_http_route(listener, "POST", prefix + "/logs/add",
                          sync_handler([weak, add_refusals](const HttpRequest& req) {
                              return add(weak, *add_refusals, req);
                          }));
    router.add_http_route(
        listener, "OPTIONS", prefix + "/logs/add", sync_handler([](const HttpRequest& req) {
            HttpResponse r = HttpResponse::text(204, "");
            r.content_type.clear();
            r.headers.push_back({"Access-Control-Allow-Origin", "*"});
            r.headers.push_back({"Access-Control-Allow-Methods", "POST"});
            if (auto h = req.header("Access-Control-Request-Headers")) {
                r.headers.push_back({"Access-Control-Allow-Headers", std::string(*h)});
            }
            return r;
        }));
    auto listen_refusals = std::make_shared<const Refusals>(
        // A refused operator stream is worth seeing at the default level (one line per upgrade).
        metrics, listener, listen_path(prefix), spdlog::level::info,
        std::initializer_list<std::string_view>{"forbidden_origin", "invalid_token", "not_admin",
                                                "unavailable"});
    WsRoute route;
    route.frontend = "logs";
    route.listen_only = true;  // listeners only receive
    route.settings = std::make_shared<const WsRouteSettings>(listen_settings(ws_settings));
    route.subprotocols = {std::string(kListenSubprotocol)};
    route.accept_async = [weak, &operators, listen_refusals](
                             const HttpRequest& req,
                             std::function<void(WsRoute::Decision)> decide) {
        accept_listener(weak, operators, listen_refusals, req, std::move(decide));
    };
    router.add_ws_route(listener, listen_path(prefix), std::move(route));
}

WsRouteSettings listen_settings(const WsRouteSettings& ws_settings) {
    WsRouteSettings s = ws_settings;
    s.compression = false;
    return s;
}

}  // namespace hearth::logs
