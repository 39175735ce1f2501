#include "api/core_routes.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "core/metrics.hpp"
#include "util/version.hpp"

namespace hearth::api {

void add_core_routes(Router& router, const std::string& listener, core::MetricsRegistry& metrics,
                     std::vector<ReadinessCheck> checks) {
    router.add_http_route(listener, "GET", "/health", sync_handler([](const HttpRequest&) {
                              return HttpResponse::json(200, R"({"status":"ok"})");
                          }));

    router.add_http_route(
        listener, "GET", "/ready", sync_handler([checks = std::move(checks)](const HttpRequest&) {
            boost::json::object deps;
            bool all = true;
            for (const auto& c : checks) {
                const bool ok = c.ready();
                all = all && ok;
                deps[c.name] = ok ? "ok" : "unavailable";
            }
            boost::json::object body;
            body["status"] = all ? "ready" : "not_ready";
            body["checks"] = std::move(deps);
            return HttpResponse::json(all ? 200 : 503, boost::json::serialize(body));
        }));

    router.add_http_route(listener, "GET", "/version", sync_handler([](const HttpRequest&) {
                              boost::json::object body;
                              body["name"] = "hearth";
                              body["version"] = util::kVersion;
                              body["commit"] = util::kCommit;
                              body["build"] = util::kBuildType;
                              return HttpResponse::json(200, boost::json::serialize(body));
                          }));

    router.add_http_route(listener, "GET", "/metrics", sync_handler([&metrics](const HttpRequest&) {
                              return HttpResponse::text(200, metrics.render(),
                                                        "text/plain; version=0.0.4; charset=utf-8");
                          }));
}

namespace {

/// Echoes every message. Runs on: the connection's io thread.
class EchoHandler final : public WsHandler {
public:
    void on_open(const ConnectionPtr& connection) override { connection_ = connection; }
    void on_message(MessageKind kind, std::string_view data) override {
        (void)connection_->send(std::make_shared<const Payload>(kind, std::string(data)));
    }
    void on_close(const CloseInfo&) override { connection_.reset(); }

private:
    ConnectionPtr connection_;
};

}  // namespace

void add_echo_route(Router& router, const std::string& listener,
                    std::shared_ptr<const WsRouteSettings> settings) {
    WsRoute route;
    route.settings = std::move(settings);
    route.accept =
        [](const HttpRequest&) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        return std::make_unique<EchoHandler>();
    };
    router.add_ws_route(listener, "/echo", std::move(route));
}

}  // namespace hearth::api
