#include "logs/log_routes.hpp"
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "logs/logs_page.hpp"

namespace hearth::logs {

namespace json = boost::json;

namespace {

HttpResponse with_cors(HttpResponse r) {
    r.headers.push_back({"Access-Control-Allow-Origin", "*"});
    return r;
}

HttpResponse bad_request(std::string_view message) {
    return with_cors(HttpResponse::error(400, "bad_request", message));
}

HttpResponse add(const std::weak_ptr<LogStream>& weak, const HttpRequest& req) {
    if (req.body.size() > kMaxAddBodyBytes) {
        return with_cors(HttpResponse::error(
            413, "too_large", "the body is over " + std::to_string(kMaxAddBodyBytes) + " bytes"));
    }
    auto stream = weak.lock();
    if (!stream) {
        return with_cors(HttpResponse::error(503, "unavailable", "the server is stopping"));
    }
    boost::system::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec) {
        return bad_request("the body is not valid JSON: " + ec.message());
    }
    // Validate every entry before adding any, so that a rejected request adds nothing.
    std::vector<json::object> entries;
    if (body.is_object()) {
        entries.push_back(std::move(body.get_object()));
    } else if (body.is_array()) {
        for (auto& v : body.get_array()) {
            if (!v.is_object()) {
                return bad_request("every element of the array must be a log entry object");
            }
            entries.push_back(std::move(v.get_object()));
        }
    } else {
        return bad_request("the body must be a log entry object or an array of them");
    }
    for (const auto& e : entries) {
        if (const auto* r = e.if_contains("room"); r && !r->is_string() && !r->is_null()) {
            return bad_request("\"room\" must be a string");
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
    ListenHandler(std::weak_ptr<LogStream> stream, std::optional<std::string> room)
        : stream_(std::move(stream)), room_(std::move(room)) {}

    void on_open(const ConnectionPtr& connection) override {
        if (auto s = stream_.lock()) {
            id_ = s->add_listener(ConnectionHandle(connection), room_);
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
    std::optional<ListenerId> id_;
};

}  // namespace

void add_log_routes(Router& router, const std::string& listener, const std::string& prefix,
                    const std::shared_ptr<LogStream>& stream, const WsRouteSettings& ws_settings) {
    std::weak_ptr<LogStream> weak = stream;
    // The live viewer; it listens at logs/listen relative to its own path, so under any prefix.
    router.add_http_route(listener, "GET", prefix + "/logs.html",
                          sync_handler([](const HttpRequest&) { return logs_page_response(); }));
    router.add_http_route(listener, "POST", prefix + "/logs/add",
                          sync_handler([weak](const HttpRequest& req) { return add(weak, req); }));
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
    WsRoute route;
    route.frontend = "logs";
    route.settings = std::make_shared<const WsRouteSettings>(listen_settings(ws_settings));
    route.accept =
        [weak](const HttpRequest& req) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        // The original page sends `room`; its README says `roomId`. An empty value means no room.
        auto room = req.query_param("room");
        if (!room || room->empty()) {
            room = req.query_param("roomId");
        }
        if (room && room->empty()) {
            room.reset();
        }
        return std::make_unique<ListenHandler>(weak, std::move(room));
    };
    router.add_ws_route(listener, listen_path(prefix), std::move(route));
}

WsRouteSettings listen_settings(const WsRouteSettings& ws_settings) {
    WsRouteSettings s = ws_settings;
    s.compression = false;
    return s;
}

}  // namespace hearth::logs
