#include "frontends/moonshare/gateway.hpp"
#include <set>
#include <utility>
#include <vector>

#include "auth/operator_auth.hpp"
#include "core/events.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/shared.hpp"
#include "util/version.hpp"

namespace hearth::frontends::moonshare {

using SysClock = std::chrono::system_clock;

namespace {

// Lines and events served by the gateway's /logs and /events/recent.
constexpr std::size_t kGatewayLines = 200;

HttpResponse gateway_json(int status, std::string body) {
    return HttpResponse::json(status, std::move(body));
}

std::string string_list(const std::vector<std::string>& lines) {
    std::string out = "[";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += i ? "," : "";
        append_json_string(out, lines[i]);
    }
    return out + "]";
}

std::string server_info_push(const Shared& shared) {
    return JsonObject()
        .str("type", "server_info")
        .str("timestamp", iso_time(SysClock::now()))
        .raw("data", server_info(shared))
        .done();
}

/// Runs `then` when `req` carries the operator's token (the admin token, or a token of an admin
/// account: auth::OperatorAuth); otherwise answers the gateway's way (401, 403 or 503 with
/// {"error":"..."}), counts and logs the refusal. `then` runs on the calling thread or a store
/// thread.
void operator_only(const std::shared_ptr<Shared>& shared, const HttpRequest& req,
                   std::string_view what, HttpResponder res,
                   std::function<void(HttpResponder)> then) {
    if (shared->operators == nullptr) {  // cannot happen: add_routes sets it before any route runs
        res.respond(HttpResponse::json(503, R"({"error":"Service unavailable"})"));
        return;
    }
    shared->operators->authorize(
        req, [shared, what = std::string(what), showed = !auth::bearer_token(req).empty(),
              res = std::move(res),
              then = std::move(then)](auth::OperatorAuth::Outcome outcome) mutable {
            const auto* refusal = std::get_if<HttpResponse>(&outcome);
            if (refusal == nullptr) {
                then(std::move(res));
                return;
            }
            res.respond(operator_refusal(*shared, *refusal, what, showed));
        });
}

/// What the gateway shows operators only: the user ids (listings) and the server's own lines.
HttpResponse operator_view(Shared& shared, const std::string& path) {
    std::vector<std::string> lines;
    if (path == "/sessions") {
        return gateway_json(200, shared.sessions.json(false));
    }
    if (path == "/players") {
        return gateway_json(200, shared.players.players_json());
    }
    if (path == "/logs") {
        for (const auto& l : util::log_ring().recent(kGatewayLines)) {
            lines.push_back(iso_time(l.time) + " [" + l.level + "] [" + l.logger + "] " +
                            l.message);
        }
    } else {  // /events/recent
        for (const auto& e : shared.events.recent(kGatewayLines)) {
            lines.push_back(iso_time(e.time) + " " + std::string(core::to_string(e.kind)) + " " +
                            e.subject + (e.detail.empty() ? "" : " " + e.detail));
        }
    }
    return gateway_json(200, string_list(lines));
}

/// The gateway's /ws. Runs on its connection's io thread.
class GatewayWsHandler final : public WsHandler {
public:
    explicit GatewayWsHandler(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    void on_open(const ConnectionPtr& connection) override {
        id_ = connection->id();
        opened_ = true;
        shared_->subscribers.add(id_, ConnectionHandle(connection));
        (void)connection->send(make_text(server_info_push(*shared_)));
    }
    void on_message(MessageKind, std::string_view) override {}
    void on_close(const CloseInfo&) override {
        if (opened_) {
            shared_->subscribers.remove(id_);
        }
    }

private:
    std::shared_ptr<Shared> shared_;
    ConnectionId id_{};
    bool opened_ = false;
};

}  // namespace

void GatewaySubscribers::add(ConnectionId id, ConnectionHandle handle) {
    std::lock_guard lock(mutex_);
    subscribers_[id] = std::move(handle);
}

void GatewaySubscribers::remove(ConnectionId id) {
    std::lock_guard lock(mutex_);
    subscribers_.erase(id);
}

void GatewaySubscribers::send(const std::function<std::string()>& payload) {
    std::vector<ConnectionHandle> subs;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, h] : subscribers_) {
            subs.push_back(h);
        }
    }
    if (subs.empty()) {
        return;
    }
    auto message = make_text(payload());
    for (const auto& h : subs) {
        if (auto c = h.lock()) {
            (void)c->send(message);
        }
    }
}

std::string server_info(const Shared& shared) {
    const auto counts = shared.players.instance_counts();
    const auto uptime = shared.uptime_s();
    std::size_t total = 0;
    std::string servers = "[";
    for (std::size_t i = 0; i < counts.size(); ++i) {
        total += counts[i];
        if (i > 0) {
            servers += ',';
        }
        servers += JsonObject()
                       .str("name", instance_name(i))
                       .num("players_online", static_cast<std::int64_t>(counts[i]))
                       .num("max_players", shared.config.player_limit)
                       .str("server_version", util::kVersion)
                       .num("uptime_seconds", uptime)
                       .str("status", "on")
                       .done();
    }
    servers += ']';
    return JsonObject()
        .num("total_players_online", static_cast<std::int64_t>(total))
        .num("total_max_players",
             shared.config.player_limit * static_cast<std::int64_t>(counts.size()))
        .raw("servers", servers)
        .done();
}

void push_status(Shared& shared) {
    shared.subscribers.send([&shared] { return server_info_push(shared); });
}

HttpResponse operator_refusal(Shared& shared, const HttpResponse& refusal, std::string_view what,
                              bool showed) {
    std::string_view reason = "operator_unavailable";
    std::string body = R"({"error":"Service unavailable"})";
    if (refusal.status == 401) {
        reason = showed ? "operator_token_invalid" : "operator_token_missing";
        body = R"({"error":"Unauthorized"})";
    } else if (refusal.status == 403) {
        reason = "not_operator";
        body = R"({"error":"Forbidden"})";
    }
    shared.stats.refused(reason);
    if (auto more = shared.stats.refusal_line()) {
        log()->info("{} refused: {}{}", what, reason, *more);
    }
    HttpResponse r = HttpResponse::json(refusal.status, std::move(body));
    r.headers = refusal.headers;  // WWW-Authenticate: Bearer on a 401
    return r;
}

void gateway(const std::shared_ptr<Shared>& shared, const HttpRequest& req, HttpResponder res) {
    std::string path = lowercase(req.path);
    if (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    static const std::set<std::string, std::less<>> kKnown = {
        "/sessions", "/players/count", "/players", "/server_info",   "/uptime",
        "/version",  "/ping",          "/logs",    "/events/recent", "/player/status"};
    if (!kKnown.count(path)) {
        res.respond(gateway_json(404, R"({"error":"Not Found"})"));
        return;
    }
    if (req.method != "GET") {
        HttpResponse r = gateway_json(405, R"({"error":"Method Not Allowed"})");
        r.headers.push_back({"Allow", "GET"});
        res.respond(std::move(r));
        return;
    }
    static const std::set<std::string, std::less<>> kOperatorOnly = {"/sessions", "/players",
                                                                     "/logs", "/events/recent"};
    if (kOperatorOnly.count(path)) {
        operator_only(shared, req, "gateway " + path, std::move(res),
                      [shared, path](HttpResponder r) { r.respond(operator_view(*shared, path)); });
        return;
    }
    if (path == "/players/count") {
        res.respond(gateway_json(
            200, JsonObject()
                     .num("count", static_cast<std::int64_t>(shared->players.players_online()))
                     .done()));
    } else if (path == "/server_info") {
        res.respond(gateway_json(200, server_info(*shared)));
    } else if (path == "/uptime") {
        res.respond(gateway_json(
            200,
            JsonObject().str("uptime", timespan(std::chrono::seconds(shared->uptime_s()))).done()));
    } else if (path == "/version") {
        res.respond(gateway_json(
            200,
            JsonObject()
                .str("lastUpdated", iso_time(shared->started_wall))
                .str("rawData", util::kVersion)
                .raw(
                    "parsedData",
                    JsonObject().str("version", util::kVersion).str("commit", util::kCommit).done())
                .done()));
    } else if (path == "/ping") {
        // Hearth's latency: one round trip through every io thread, which is what a message
        // from one player to another crosses at most.
        struct Hop {
            std::shared_ptr<Shared> shared;
            HttpResponder res;
            std::chrono::steady_clock::time_point start;
            std::size_t next = 0;
            void go(std::shared_ptr<Hop> self) {
                if (next == shared->shards.size()) {
                    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count();
                    res.respond(gateway_json(200, JsonObject().num("latency_ms", ms).done()));
                    return;
                }
                shared->shards.post(next++, [self] { self->go(self); });
            }
        };
        auto hop =
            std::make_shared<Hop>(Hop{shared, std::move(res), std::chrono::steady_clock::now()});
        hop->go(hop);
    } else {  // /player/status
        const std::string info = server_info(*shared);
        res.respond(gateway_json(
            200, JsonObject()
                     .raw("server_info", JsonObject()
                                             .str("lastUpdated", iso_time(SysClock::now()))
                                             .str("rawData", info)
                                             .raw("parsedData", info)
                                             .done())
                     .done()));
    }
}

std::unique_ptr<WsHandler> make_gateway_ws_handler(std::shared_ptr<Shared> shared) {
    return std::make_unique<GatewayWsHandler>(std::move(shared));
}

}  // namespace hearth::frontends::moonshare
