// net::Server's ModuleRoutes: a module's routes and listeners added while the server runs, and
// withdrawn as one (its connections closed, a listener left without routes released), then added
// again. Real sockets throughout.

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"

namespace hearth::test {
namespace {

using Clock = std::chrono::steady_clock;

/// A server with the core's HTTP listener ("http", one core route) and no modules.
struct Fixture {
    core::MetricsRegistry metrics;
    core::EventBus events{1000};
    core::Runtime runtime{2, 1};
    std::unique_ptr<net::Server> server =
        std::make_unique<net::Server>(runtime, metrics, events, net::HttpLimits{});
    std::string http;

    Fixture() {
        http = server->listener({"http", "127.0.0.1:0", "", ""});
        Router& core = *server;  // the interface the core's routes use
        core.add_http_route(http, "GET", "/core", sync_handler([](const HttpRequest&) {
                                return HttpResponse::text(200, "core");
                            }));
    }
    void start() {
        runtime.start();
        server->start();
    }
    std::uint16_t http_port() const { return server->bound_port(http); }
    ~Fixture() {
        server->begin_shutdown();
        (void)server->wait_drained(Clock::now() + kDeadline);
        runtime.stop();
        server.reset();
    }
};

HttpHandler text(std::string body) {
    return sync_handler([body](const HttpRequest&) { return HttpResponse::text(200, body); });
}

/// Echoes text; names its connection's principal `principal` when it opens.
class Echo final : public WsHandler {
public:
    explicit Echo(std::string principal) : principal_(std::move(principal)) {}
    void on_open(const ConnectionPtr& c) override {
        c_ = c;
        c_->set_principal(principal_);
    }
    void on_message(MessageKind, std::string_view data) override {
        (void)c_->send(make_text(std::string(data)));
    }
    void on_close(const CloseInfo&) override { c_.reset(); }

private:
    std::string principal_;
    ConnectionPtr c_;
};

WsRoute echo_route(std::string principal = "player-1",
                   std::shared_ptr<WsRouteSettings> settings = nullptr) {
    WsRoute route;
    if (settings) {
        route.settings = std::move(settings);
    }
    route.listen_only = true;
    route.accept = [principal](const HttpRequest&) -> WsRoute::Decision {
        return std::make_unique<Echo>(principal);
    };
    return route;
}

/// Echoes bytes back; ends its side when the peer ends its own.
class StreamEcho final : public StreamHandler {
public:
    void on_open(StreamConnectionPtr c) override {
        c_ = std::move(c);
        c_->set_principal("raw-player");
    }
    void on_data(std::string_view bytes) override {
        (void)c_->send(make_binary(std::string(bytes)));
    }
    void on_end_of_input() override { c_->close(); }
    void on_close() override { c_.reset(); }

private:
    StreamConnectionPtr c_;
};

StreamRoute stream_echo(std::chrono::milliseconds linger = std::chrono::milliseconds(2'000)) {
    StreamRoute route;
    route.settings.idle_timeout = std::chrono::milliseconds(0);
    route.settings.linger_timeout = linger;
    route.make_handler = [] { return std::make_unique<StreamEcho>(); };
    return route;
}

/// A port free at the time of the call (a listener on port 0 is never shared, so a shared one
/// needs a concrete port).
std::uint16_t free_port() {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    return probe.local_endpoint().port();
}

bool refuses_connections(std::uint16_t port) {
    try {
        RawClient probe(port);
        return false;
    } catch (const std::runtime_error& e) {
        return std::string(e.what()).find("connect failed") != std::string::npos;
    }
}

const CloseNotice kRestart{1012, "alpha restarting"};

TEST(ModuleRoutes, RoutesDeclaredBeforeAndAfterTheStartAreServed) {
    Fixture f;
    auto early = f.server->routes_for("early");
    const auto early_listener = early->listener({"early", "127.0.0.1:0", "", ""});
    early->add_http_route(early_listener, "GET", "/early", text("early"), PathMatch::kExact);
    early->open();  // before Server::start: start binds it
    EXPECT_EQ(early->bound_port(early_listener), 0);
    f.start();
    ASSERT_NE(early->bound_port(early_listener), 0);
    EXPECT_EQ(http_request(early->bound_port(early_listener), "GET", "/early").body, "early");

    auto late = f.server->routes_for("late");
    // On the core's listener, by key: served at once.
    late->add_http_route(f.http, "GET", "/late", text("late on http"), PathMatch::kExact);
    late->add_ws_route(f.http, "/late/ws", echo_route());
    // On listeners of its own, after open().
    const auto own = late->listener({"late", "127.0.0.1:0", "", ""});
    late->add_http_route(own, "GET", "/", text("late own"), PathMatch::kExact);
    const auto raw = late->add_stream_listener({"late-raw", "127.0.0.1:0", "", ""}, stream_echo());
    EXPECT_EQ(late->bound_port(own), 0);
    late->open();
    late->open();  // idempotent

    EXPECT_EQ(http_request(f.http_port(), "GET", "/late").body, "late on http");
    EXPECT_EQ(http_request(f.http_port(), "GET", "/core").body, "core");
    EXPECT_EQ(http_request(late->bound_port(own), "GET", "/").body, "late own");
    WsClient ws(f.http_port(), WsOptions{.path = "/late/ws"});
    ws.send_text("hello");
    EXPECT_EQ(ws.read()->data, "hello");
    RawClient tcp(late->bound_port(raw));
    tcp.write("bytes");
    EXPECT_EQ(tcp.read_exactly(5), "bytes");

    // Settings of a route it does not own are not its to change.
    EXPECT_THROW(
        early->update_ws_settings(f.http, "/late/ws", std::make_shared<const WsRouteSettings>()),
        std::logic_error);
    late->update_ws_settings(f.http, "/late/ws", std::make_shared<const WsRouteSettings>());
}

TEST(ModuleRoutes, WithdrawClosesTheModulesConnectionsAndNoOthers) {
    Fixture f;
    f.start();
    auto alpha = f.server->routes_for("alpha");
    auto beta = f.server->routes_for("beta");
    alpha->add_ws_route(f.http, "/alpha", echo_route("alice"));
    alpha->add_http_route(f.http, "GET", "/alpha/info", text("alpha"), PathMatch::kExact);
    const auto raw =
        alpha->add_stream_listener({"alpha-raw", "127.0.0.1:0", "", ""}, stream_echo());
    beta->add_ws_route(f.http, "/beta", echo_route("bob"));
    alpha->open();
    beta->open();
    const auto raw_port = alpha->bound_port(raw);

    WsClient a(f.http_port(), WsOptions{.path = "/alpha"});
    WsClient b(f.http_port(), WsOptions{.path = "/beta"});
    auto tcp = std::make_unique<RawClient>(raw_port);
    a.send_text("1");
    b.send_text("1");
    tcp->write("1");
    ASSERT_EQ(a.read()->data, "1");
    ASSERT_EQ(b.read()->data, "1");
    ASSERT_EQ(tcp->read_exactly(1), "1");

    // The clients answer the close while the withdraw waits for them.
    auto withdrawn = std::async(
        std::launch::async, [&] { return alpha->withdraw(kRestart, Clock::now() + kDeadline); });
    const auto closed = a.wait_closed();
    EXPECT_EQ(closed.code, 1012);
    EXPECT_EQ(closed.reason, "alpha restarting");
    (void)tcp->read_until_eof();  // the server ends its side
    tcp.reset();                  // and the client its own
    EXPECT_TRUE(withdrawn.get());

    // beta's client on the same listener is still served, and so are the core's routes.
    b.send_text("2");
    EXPECT_EQ(b.read()->data, "2");
    EXPECT_EQ(http_request(f.http_port(), "GET", "/core").body, "core");
    // alpha's routes are gone; its raw listener, left without routes, is released.
    EXPECT_EQ(http_request(f.http_port(), "GET", "/alpha/info").status, 404);
    EXPECT_EQ(refused_upgrade(f.http_port(), "/alpha", {}).status, 404);
    EXPECT_EQ(alpha->bound_port(raw), 0);
    EXPECT_TRUE(refuses_connections(raw_port));

    // The connection events name the module, and the principal when the connection closes.
    int ws_opened = 0;
    int ws_closed = 0;
    int tcp_closed = 0;
    for (const auto& e : f.events.recent(1000)) {
        if (e.module != "alpha") {
            continue;
        }
        if (e.kind == core::EventKind::kConnectionOpened &&
            e.detail.starts_with("websocket /alpha")) {
            ++ws_opened;
        }
        if (e.kind == core::EventKind::kConnectionClosed &&
            e.detail.starts_with("websocket /alpha 1012 alpha restarting")) {
            ++ws_closed;
            EXPECT_EQ(e.principal, "alice");
        }
        if (e.kind == core::EventKind::kConnectionClosed && e.detail.starts_with("tcp ")) {
            ++tcp_closed;
            EXPECT_EQ(e.principal, "raw-player");
        }
    }
    EXPECT_EQ(ws_opened, 1);
    EXPECT_EQ(ws_closed, 1);
    EXPECT_EQ(tcp_closed, 1);
    // Withdrawing again is harmless.
    EXPECT_TRUE(alpha->withdraw(kRestart, Clock::now() + kDeadline));
}

TEST(ModuleRoutes, ReleasedListenerRefusesConnectionsAndBindsAgainWhenReopened) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    auto declare = [&] {
        const auto key = mod->listener({"alpha", "127.0.0.1:0", "", ""});
        mod->add_http_route(key, "GET", "/", text("alpha"), PathMatch::kExact);
        mod->open();
        return key;
    };
    const auto key = declare();
    const auto first_port = mod->bound_port(key);
    ASSERT_NE(first_port, 0);
    KeepAliveClient idle(first_port);
    EXPECT_EQ(idle.request("GET", "/").body, "alpha");

    EXPECT_TRUE(mod->withdraw(kRestart, Clock::now() + kDeadline));
    EXPECT_EQ(mod->bound_port(key), 0);
    EXPECT_TRUE(refuses_connections(first_port));
    EXPECT_TRUE(idle.closed_by_server());  // its idle keep-alive connection is closed too

    // Enabled again: the same name binds a fresh port (port 0) and serves.
    EXPECT_EQ(declare(), key);
    const auto second_port = mod->bound_port(key);
    ASSERT_NE(second_port, 0);
    EXPECT_EQ(http_request(second_port, "GET", "/").body, "alpha");
    EXPECT_EQ(f.server->listeners().size(), 2u);  // http and alpha: nothing added per cycle
}

TEST(ModuleRoutes, SharedListenerKeepsTheOtherModulesRoutes) {
    Fixture f;
    f.start();
    const auto port = free_port();
    const std::string address = "127.0.0.1:" + std::to_string(port);
    auto hunterpie = f.server->routes_for("hunterpie");
    auto moonshare = f.server->routes_for("moonshare");
    const auto h = hunterpie->listener({"hunterpie", address, "", ""});
    hunterpie->add_http_route(h, "GET", "/version", text("hunterpie"), PathMatch::kExact);
    hunterpie->open();
    auto enable_moonshare = [&] {
        const auto m = moonshare->listener({"moonshare", address, "", ""});
        EXPECT_EQ(m, h);  // the same port: the same listener
        moonshare->add_ws_route(m, "/moonshare", echo_route());
        moonshare->add_http_route(m, "GET", "/moonshare/info", text("moonshare"),
                                  PathMatch::kExact);
        moonshare->open();
    };
    enable_moonshare();

    EXPECT_TRUE(hunterpie->withdraw(kRestart, Clock::now() + kDeadline));
    EXPECT_EQ(http_request(port, "GET", "/version").status, 404);
    EXPECT_EQ(http_request(port, "GET", "/moonshare/info").body, "moonshare");
    EXPECT_EQ(moonshare->bound_port(h), port);

    EXPECT_TRUE(moonshare->withdraw(kRestart, Clock::now() + kDeadline));
    EXPECT_TRUE(refuses_connections(port));

    enable_moonshare();
    EXPECT_EQ(http_request(port, "GET", "/moonshare/info").body, "moonshare");
    WsClient ws(port, WsOptions{.path = "/moonshare"});
    ws.send_text("back");
    EXPECT_EQ(ws.read()->data, "back");
}

TEST(ModuleRoutes, ConnectionsThatDoNotAnswerAreCutAtTheDeadline) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    auto settings = std::make_shared<WsRouteSettings>();
    settings->close_timeout = std::chrono::minutes(5);  // the close alone would wait that long
    mod->add_ws_route(f.http, "/alpha", echo_route("alice", settings));
    const auto raw = mod->add_stream_listener({"alpha-raw", "127.0.0.1:0", "", ""},
                                              stream_echo(std::chrono::minutes(5)));
    mod->open();

    RawClient ws(f.http_port());  // never answers the close frame
    ASSERT_EQ(ws.upgrade("/alpha").rfind("HTTP/1.1 101", 0), 0u);
    RawClient tcp(mod->bound_port(raw));  // reads one echo (the connection is open), then
    tcp.write("x");                       // never reads or closes again
    ASSERT_EQ(tcp.read_exactly(1), "x");
    ASSERT_EQ(f.server->open_connections(), 2u);

    EXPECT_FALSE(mod->withdraw(kRestart, Clock::now() + std::chrono::milliseconds(300)));
    // Both were cut: the server holds no connection, and each client sees its end.
    EXPECT_EQ(f.server->open_connections(), 0u);
    const auto bytes = ws.read_until_eof();
    std::size_t used = 0;
    const auto frame = parse_server_frame(bytes, used);
    ASSERT_TRUE(frame.has_value()) << bytes.size();
    EXPECT_EQ(frame->opcode, 0x8);  // the close frame went out before the cut
    ASSERT_GE(frame->payload.size(), 2u);
    EXPECT_EQ((static_cast<unsigned char>(frame->payload[0]) << 8) |
                  static_cast<unsigned char>(frame->payload[1]),
              1012);
    EXPECT_EQ(frame->payload.substr(2), "alpha restarting");
    (void)tcp.read_until_eof();
}

TEST(ModuleRoutes, UpgradeDecidedAfterTheWithdrawLeavesNoConnection) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    std::promise<std::function<void(WsRoute::Decision)>> pending;
    std::atomic<bool> opened{false};
    WsRoute route;
    route.accept_async = [&pending](const HttpRequest&,
                                    std::function<void(WsRoute::Decision)> decide) {
        pending.set_value(std::move(decide));  // decided by the test, after the withdraw
    };
    mod->add_ws_route(f.http, "/alpha", std::move(route));
    mod->open();

    auto refusal = std::async(std::launch::async, [&] {
        RawClient raw(f.http_port());
        auto head = raw.upgrade("/alpha");
        return head + raw.read_until_eof();
    });
    auto decide = pending.get_future().get();
    EXPECT_TRUE(mod->withdraw(kRestart, Clock::now() + kDeadline));

    class Opened final : public WsHandler {
    public:
        explicit Opened(std::atomic<bool>& flag) : flag_(flag) {}
        void on_open(const ConnectionPtr&) override { flag_ = true; }
        void on_message(MessageKind, std::string_view) override {}
        void on_close(const CloseInfo&) override {}

    private:
        std::atomic<bool>& flag_;
    };
    decide(std::make_unique<Opened>(opened));
    const auto response = refusal.get();
    EXPECT_EQ(response.rfind("HTTP/1.1 503", 0), 0u) << response;
    EXPECT_NE(response.find("module_unavailable"), std::string::npos) << response;
    EXPECT_FALSE(opened.load());
    EXPECT_TRUE(f.server->wait_drained(Clock::now() + kDeadline));
    // A new upgrade does not find the route at all.
    EXPECT_EQ(refused_upgrade(f.http_port(), "/alpha", {}).status, 404);
}

TEST(ModuleRoutes, OpenThrowsNamingTheAddressItCannotBind) {
    Fixture f;
    f.start();
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor taken(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const std::string address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
    auto mod = f.server->routes_for("alpha");
    const auto key = mod->listener({"alpha", address, "", ""});
    mod->add_http_route(key, "GET", "/", text("alpha"), PathMatch::kExact);
    try {
        mod->open();
        FAIL() << "open() bound a port that is taken";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("cannot listen on " + address + " for alpha"), std::string::npos)
            << what;
    }
    EXPECT_EQ(mod->bound_port(key), 0);
    EXPECT_TRUE(mod->withdraw(kRestart, Clock::now() + kDeadline));
    // Once the port is free the module can be enabled again.
    taken.close();
    const auto again = mod->listener({"alpha", address, "", ""});
    mod->add_http_route(again, "GET", "/", text("alpha"), PathMatch::kExact);
    mod->open();
    EXPECT_EQ(http_request(mod->bound_port(again), "GET", "/").body, "alpha");
}

TEST(ModuleRoutes, DestroyingTheRoutesWithdrawsThem) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    mod->add_ws_route(f.http, "/alpha", echo_route());
    WsClient ws(f.http_port(), WsOptions{.path = "/alpha"});
    auto destroyed = std::async(std::launch::async, [&mod] { mod.reset(); });
    const auto closed = ws.wait_closed();
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "alpha stopped");
    destroyed.get();
    EXPECT_EQ(refused_upgrade(f.http_port(), "/alpha", {}).status, 404);
}

TEST(ModuleRoutes, WithdrawDuringShutdownWaitsForTheConnectionsShutdownClosed) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    mod->add_ws_route(f.http, "/alpha", echo_route());
    WsClient ws(f.http_port(), WsOptions{.path = "/alpha"});
    ws.send_text("x");
    ASSERT_EQ(ws.read()->data, "x");
    f.server->begin_shutdown();
    const auto closed = ws.wait_closed();  // told by the shutdown, not by the withdraw
    EXPECT_EQ(closed.code, 1001);
    EXPECT_EQ(closed.reason, "server shutting down");
    EXPECT_TRUE(mod->withdraw(kRestart, Clock::now() + kDeadline));
}

TEST(ModuleRoutes, EnableDisableCyclesAddNoMetricSeries) {
    Fixture f;
    f.start();
    auto mod = f.server->routes_for("alpha");
    auto cycle = [&] {
        const auto key = mod->listener({"alpha", "127.0.0.1:0", "", ""});
        mod->add_ws_route(key, "/alpha", echo_route());
        mod->add_http_route(key, "GET", "/", text("alpha"), PathMatch::kExact);
        mod->open();
        EXPECT_EQ(http_request(mod->bound_port(key), "GET", "/").body, "alpha");
        {
            WsClient ws(mod->bound_port(key), WsOptions{.path = "/alpha"});
            ws.send_text("x");
            EXPECT_EQ(ws.read()->data, "x");
            ws.close();
        }
        EXPECT_TRUE(mod->withdraw(kRestart, Clock::now() + kDeadline));
    };
    cycle();
    auto series = [&] {
        const auto text = f.metrics.render();
        return std::count(text.begin(), text.end(), '\n');
    };
    const auto after_one = series();
    for (int i = 0; i < 3; ++i) {
        cycle();
    }
    EXPECT_EQ(series(), after_one);
    EXPECT_EQ(f.server->listeners().size(), 2u);
}

}  // namespace
}  // namespace hearth::test
