// net::Server's Router as modules use it: several listeners, shared ports, collisions, prefix
// routes, asynchronous handlers.

#include <thread>

#include <gtest/gtest.h>

#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"

namespace hearth::test {
namespace {

/// A server with no modules: the test registers the routes.
struct Bare {
    core::MetricsRegistry metrics;
    core::EventBus events{100};
    core::Runtime runtime{2, 1};
    std::unique_ptr<net::Server> server =
        std::make_unique<net::Server>(runtime, metrics, events, net::HttpLimits{});

    Router& router() { return *server; }  // the interface modules use

    void start() {
        runtime.start();
        server->start();
    }
    ~Bare() {
        server->begin_shutdown();
        (void)server->wait_drained(std::chrono::steady_clock::now() + kDeadline);
        runtime.stop();
        server.reset();
    }
};

HttpHandler text(std::string body) {
    return sync_handler([body](const HttpRequest&) { return HttpResponse::text(200, body); });
}

TEST(Router, SeveralListenersAtOnce) {
    Bare bare;
    auto a = bare.server->listener({"alpha", "127.0.0.1:0", "", ""});
    auto b = bare.server->listener({"beta", "127.0.0.1:0", "", ""});
    bare.router().add_http_route(a, "GET", "/", text("alpha"));
    bare.router().add_http_route(b, "GET", "/", text("beta"));
    bare.start();
    EXPECT_NE(bare.server->bound_port(a), bare.server->bound_port(b));
    EXPECT_EQ(http_request(bare.server->bound_port(a), "GET", "/").body, "alpha");
    EXPECT_EQ(http_request(bare.server->bound_port(b), "GET", "/").body, "beta");
}

TEST(Router, TwoModulesShareAPortWhenTheirPathsDiffer) {
    // A concrete free port: listeners on port 0 are never shared.
    std::uint16_t port = 0;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    Bare bare;
    const std::string address = "127.0.0.1:" + std::to_string(port);
    auto first = bare.server->listener({"logs", address, "", ""});
    auto second = bare.server->listener({"hunterpie", address, "", ""});
    EXPECT_EQ(first, second);
    bare.router().add_http_route(first, "GET", "/logs", text("logs"));
    bare.router().add_http_route(second, "GET", "/version", text("0.1"));
    try {
        bare.router().add_http_route(second, "GET", "/logs", text("again"));
        FAIL() << "a colliding route was accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("/logs"), std::string::npos) << e.what();
    }
    bare.start();
    EXPECT_EQ(http_request(port, "GET", "/logs").body, "logs");
    EXPECT_EQ(http_request(port, "GET", "/version").body, "0.1");
}

TEST(Router, SamePortWithDifferentTlsSettingsIsRefused) {
    Bare bare;
    (void)bare.server->listener({"one", "127.0.0.1:7999", "", ""});
    EXPECT_THROW((void)bare.server->listener({"two", "127.0.0.1:7999", "c.pem", "k.pem"}),
                 std::runtime_error);
}

TEST(Router, InvalidAddressIsRefusedNamingTheListener) {
    Bare bare;
    try {
        (void)bare.server->listener({"moonshare", "no-port-here", "", ""});
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("moonshare"), std::string::npos) << e.what();
    }
}

TEST(Router, PrefixRoutesAndExactRoutes) {
    Bare bare;
    auto l = bare.server->listener({"api", "127.0.0.1:0", "", ""});
    bare.router().add_http_route(l, "GET", "/api/v1/", text("prefix"), PathMatch::kPrefix);
    bare.router().add_http_route(l, "GET", "/api/v1/things/special", text("exact"));
    bare.router().add_http_route(l, "GET", "/api/v1/things/", text("longer prefix"),
                                 PathMatch::kPrefix);
    bare.start();
    const auto port = bare.server->bound_port(l);
    EXPECT_EQ(http_request(port, "GET", "/api/v1/other").body, "prefix");
    EXPECT_EQ(http_request(port, "GET", "/api/v1/things/special").body, "exact");
    EXPECT_EQ(http_request(port, "GET", "/api/v1/things/42").body, "longer prefix");
    EXPECT_EQ(http_request(port, "GET", "/elsewhere").status, 404);
}

TEST(Router, AsynchronousHandlerMayAnswerFromAnotherThread) {
    Bare bare;
    auto l = bare.server->listener({"api", "127.0.0.1:0", "", ""});
    std::vector<std::thread> workers;
    bare.router().add_http_route(l, "POST", "/async",
                                 [&workers](const HttpRequest& req, HttpResponder res) {
                                     workers.emplace_back([body = req.body, res]() mutable {
                                         res.respond(HttpResponse::text(200, "got " + body));
                                     });
                                 });
    bare.router().add_http_route(l, "GET", "/forgotten", [](const HttpRequest&, HttpResponder) {});
    bare.router().add_http_route(
        l, "GET", "/throws",
        [](const HttpRequest&, HttpResponder) -> void { throw std::runtime_error("boom"); });
    bare.start();
    const auto port = bare.server->bound_port(l);
    EXPECT_EQ(http_request(port, "POST", "/async", "abc").body, "got abc");
    EXPECT_EQ(http_request(port, "GET", "/forgotten").status, 500);
    EXPECT_EQ(http_request(port, "GET", "/throws").status, 500);
    EXPECT_EQ(http_request(port, "POST", "/async", "again").body, "got again");
    for (auto& w : workers) {
        w.join();
    }
}

TEST(Router, UpgradeRefusedByTheRouteGetsItsResponse) {
    Bare bare;
    auto l = bare.server->listener({"gw", "127.0.0.1:0", "", ""});
    WsRoute route;
    route.accept =
        [](const HttpRequest&) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        return HttpResponse::json(401, R"({"code":401,"message":"Invalid API key."})");
    };
    bare.router().add_ws_route(l, "/sync", std::move(route));
    bare.start();
    RawClient raw(bare.server->bound_port(l));
    auto head = raw.upgrade("/sync");
    EXPECT_EQ(head.rfind("HTTP/1.1 401", 0), 0u) << head;
    auto events = bare.events.recent(10);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().kind, core::EventKind::kUpgradeRefused);
}

/// Echoes each message with a write callback, then reports the callback's outcome.
class WrittenReporter final : public WsHandler {
public:
    void on_open(const ConnectionPtr& c) override { connection_ = c; }
    void on_message(MessageKind, std::string_view data) override {
        std::weak_ptr<Connection> weak = connection_;
        (void)connection_->send(make_text(std::string(data)), [weak](bool written) {
            if (auto c = weak.lock()) {
                (void)c->send(make_text(written ? "written" : "lost"));
            }
        });
    }
    void on_close(const CloseInfo&) override { connection_.reset(); }

private:
    ConnectionPtr connection_;
};

TEST(Router, WriteCallbacksAndTheFirstMessageDeadline) {
    Bare bare;
    auto l = bare.server->listener({"api", "127.0.0.1:0", "", ""});
    WsRoute route;
    auto settings = std::make_shared<WsRouteSettings>();
    settings->first_message_timeout = std::chrono::milliseconds(300);
    route.settings = settings;
    route.accept =
        [](const HttpRequest&) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        return std::make_unique<WrittenReporter>();
    };
    bare.router().add_ws_route(l, "/cb", std::move(route));
    bare.start();
    const auto port = bare.server->bound_port(l);

    WsClient talker(port, WsOptions{.path = "/cb"});
    talker.send_text("hi");
    EXPECT_EQ(talker.read()->data, "hi");
    EXPECT_EQ(talker.read()->data, "written");

    WsClient silent(port, WsOptions{.path = "/cb"});
    auto closed = silent.wait_closed();
    EXPECT_EQ(closed.code, 1008);
    EXPECT_EQ(closed.reason, "handshake timeout");
    // The talker sent in time and stays open.
    talker.send_text("still");
    EXPECT_EQ(talker.read()->data, "still");
}

}  // namespace
}  // namespace hearth::test
