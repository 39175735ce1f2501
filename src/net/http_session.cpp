// HTTP/1.1 sessions (plain and TLS) and the WebSocket upgrade that turns one into a WsConnection.

#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "net/http_request.hpp"
#include "net/server_state.hpp"
#include "net/ws_codec.hpp"
#include "net/ws_connection.hpp"
#include "util/log.hpp"

namespace hearth::net {

namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Beast's tcp_stream with the io_context's own executor, like PlainSocket (see there).
using HttpStream = beast::basic_stream<tcp, asio::io_context::executor_type>;

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("http");
    return l;
}

/// The 101 response to an accepted upgrade.
std::string switching_protocols(const BeastRequest& req, const WsRouteState& route,
                                const std::optional<std::string>& deflate) {
    std::string response =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
        "Upgrade\r\nSec-WebSocket-Accept: ";
    response += ws::accept_key(req[http::field::sec_websocket_key]);
    response += "\r\n";
    if (auto protocol = select_subprotocol(req, route.subprotocols())) {
        response += "Sec-WebSocket-Protocol: ";
        response += *protocol;
        response += "\r\n";
    }
    if (deflate) {
        response += "Sec-WebSocket-Extensions: ";
        response += *deflate;
        response += "\r\n";
    }
    response += "\r\n";
    return response;
}

/// Counts and publishes a route's refusal of an upgrade (answered with `status`).
void upgrade_refused(ServerState& server, const ListenerState& listener, const WsRouteState& route,
                     const std::string& peer, int status) {
    server.http_requests(listener.name, route.path(), status).inc();
    server.events.publish(core::EventKind::kUpgradeRefused, {}, peer,
                          route.path() + ": HTTP " + std::to_string(status));
}

/// The answer to an upgrade whose route was withdrawn while it was decided, counted and published.
HttpResponse withdrawn_refusal(ServerState& server, const ListenerState& listener,
                               const WsRouteState& route, const std::string& peer) {
    server.http_requests(listener.name, route.path(), 503).inc();
    server.events.publish(core::EventKind::kUpgradeRefused, route.owner().name, peer,
                          route.path() + ": HTTP 503 (withdrawn)");
    return HttpResponse::error(503, "module_unavailable",
                               "The module serving " + route.path() + " is not available.");
}

// A route's synchronous decision on an upgrade; a route that throws refuses with 500.
HttpResponse accept_failed(const WsRouteState& route, const std::exception& e) {
    log()->error("WebSocket route {} threw on upgrade: {}", route.path(), e.what());
    return HttpResponse::error(500, "internal", "The server failed to accept the connection.");
}

WsRoute::Decision accept_now(const WsRouteState& route, const HttpRequest& request) {
    try {
        return route.accept()(request);
    } catch (const std::exception& e) {
        return accept_failed(route, e);
    }
}

// Gives a first request and the WsConnection that replaces it blocks of one size. In a burst of
// upgrades, each WsConnection then takes the block its own first request has just freed (glibc
// hands back the last freed chunk of a size first) instead of leaving that block as a hole between
// live connections: after a burst of 15,000 on /echo, 1,583 B of RSS per idle connection instead
// of 1,800. Neither Asio nor the standard library offers this kind of size-class control.
template <class T>
struct ConnectionBlock {
    using value_type = T;

    ConnectionBlock() = default;
    template <class U>
    ConnectionBlock(const ConnectionBlock<U>& /*other*/) noexcept {}

    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        return static_cast<T*>(::operator new(std::max(bytes, kBlockBytes)));
    }
    void deallocate(T* p, std::size_t /*n*/) noexcept { ::operator delete(p); }

    template <class U>
    bool operator==(const ConnectionBlock<U>& /*other*/) const noexcept {
        return true;
    }

    // What std::allocate_shared adds to the object: its counts and a vtable pointer.
    static constexpr std::size_t kBlockBytes = sizeof(WsConnection<RawSocket>) + 32;
};

// Completes an accepted upgrade: the WsConnection queues the 101 response, registers itself and
// starts with `early` (what the client sent after its request). The caller has given back its own
// registration and limits first.
template <class Stream>
    requires(!std::is_same_v<Stream, PlainSocket>)
void open_websocket(Stream stream, const BeastRequest& req, std::string early,
                    std::unique_ptr<WsHandler> handler,
                    typename WsConnection<Stream>::Params params) {
    const WsRouteState& route = *params.route;
    std::optional<std::string> deflate;
    if (route.settings()->compression) {
        deflate = ws::negotiate_deflate(req[http::field::sec_websocket_extensions]);
    }
    params.deflate = deflate.has_value();
    std::string response = switching_protocols(req, route, deflate);
    params.server->http_requests(params.listener->name, route.path(), 101).inc();
    PollClient* poll_from = params.poll_from;
    auto& poller = params.server->this_thread_state().poller;
    auto conn = std::allocate_shared<WsConnection<Stream>>(ConnectionBlock<WsConnection<Stream>>(),
                                                           std::move(stream), std::move(params));
    if (poll_from != nullptr && poller) {
        poller->replace(*poll_from, conn);
    }
    conn->start(std::move(response), std::move(early), std::move(handler));
}

// A plain socket leaves Asio's reactor here: the WebSocket's readiness comes from the thread's
// Poller (net/poller.hpp).
void open_websocket(PlainSocket socket, const BeastRequest& req, std::string early,
                    std::unique_ptr<WsHandler> handler, WsConnection<RawSocket>::Params params) {
    boost::system::error_code ec;
    RawSocket raw = release_to_raw(socket, ec);
    if (ec) {
        log()->warn("connection from {}: cannot take its socket for the WebSocket: {}",
                    params.peer_address, ec.message());
        return;
    }
    open_websocket(std::move(raw), req, std::move(early), std::move(handler), std::move(params));
}

/// One HTTP connection. Runs on: its io thread. Owned by: its coroutine. Requests are answered
/// one at a time, in order: a client that pipelines waits in the socket buffer (TCP backpressure),
/// so the bound on pipelined requests is one in progress plus what the read buffer holds.
template <class Stream>
class HttpSession final : public Session, public std::enable_shared_from_this<HttpSession<Stream>> {
public:
    /// `peer_key` was counted in the connection limits (ServerState::http_open and the
    /// listener's http_peers); the session gives both back when it ends or is upgraded.
    HttpSession(Stream stream, std::shared_ptr<ServerState> server, ListenerState& listener,
                std::string peer_address, std::string peer_key)
        : stream_(std::move(stream)),
          server_(std::move(server)),
          listener_(listener),
          peer_address_(std::move(peer_address)),
          peer_ip_(std::move(peer_key)) {}

    void start() {
        register_session();
        asio::co_spawn(stream_.get_executor(), run(this->shared_from_this()), asio::detached);
    }

    /// Takes over from FirstRequest: `read` holds the bytes it read, and the first head must be
    /// complete by `head_deadline` (set at the accept, not extended by the hand-over).
    void continue_from(std::string_view read, Clock::time_point head_deadline) {
        auto bytes = buffer_.prepare(read.size());
        std::memcpy(bytes.data(), read.data(), read.size());
        buffer_.commit(read.size());
        head_deadline_ = head_deadline;
        start();
    }

    /// Answers the request FirstRequest read with `response` (an upgrade it refused) and closes.
    void respond_and_close(HttpResponse response, unsigned version) {
        register_session();
        asio::co_spawn(
            stream_.get_executor(),
            [](std::shared_ptr<HttpSession> self, HttpResponse r,
               unsigned v) -> asio::awaitable<void> {
                try {
                    co_await self->write_response(std::move(r), v, false);
                    co_await self->close_gracefully();
                } catch (const std::exception& e) {
                    log()->debug("connection {} from {}: {}", self->id_, self->peer_address_,
                                 e.what());
                }
                self->finish();
            }(this->shared_from_this(), std::move(response), version),
            asio::detached);
    }

    void shutdown() override {
        stopping_ = true;
        if (idle_) {
            // Waiting for the next request: nothing is lost by closing now.
            beast::get_lowest_layer(stream_).cancel();
        }
    }

    const ListenerState* http_listener() const noexcept override { return &listener_; }

private:
    void register_session() {
        id_ = server_->next_connection_id.fetch_add(1);
        server_->session_opened(id_, this->shared_from_this());
        listener_.open_http->add(1);
    }

    // `self` is unused but keeps the session alive for as long as the coroutine runs.
    asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<HttpSession> self) {
        try {
            co_await serve();
        } catch (const std::exception& e) {
            log()->debug("connection {} from {}: {}", id_, peer_address_, e.what());
        }
        finish();
    }

    void finish() {
        if (finished_) {
            return;
        }
        finished_ = true;
        listener_.open_http->sub(1);
        listener_.http_peers.remove(peer_ip_);
        server_->http_open.fetch_sub(1);
        server_->session_closed(id_);
    }

    asio::awaitable<void> serve() {
        // The first request's head, TLS handshake included, must arrive within header_timeout of
        // the accept; a later one within header_timeout of its first byte. The deadline is set once
        // per head, never extended as bytes trickle in (slowloris).
        if (head_deadline_) {
            beast::get_lowest_layer(stream_).expires_at(*head_deadline_);
        } else {
            beast::get_lowest_layer(stream_).expires_after(server_->http_limits()->header_timeout);
        }
        if constexpr (!std::is_same_v<Stream, HttpStream>) {
            boost::system::error_code ec;
            co_await stream_.async_handshake(asio::ssl::stream_base::server,
                                             asio::redirect_error(asio::use_awaitable, ec));
            if (ec == beast::error::timeout) {
                count_timeout("header");
            }
            if (ec) {
                co_return;
            }
        }
        bool first = true;
        while (!stopping_) {
            auto limits = server_->http_limits();
            RequestParser parser;
            apply_limits(parser, *limits);

            boost::system::error_code ec;
            idle_ = true;
            if (!first && buffer_.size() == 0) {
                // Kept alive: wait up to keepalive_timeout for the next request to begin.
                beast::get_lowest_layer(stream_).expires_after(limits->keepalive_timeout);
                const std::size_t n = co_await stream_.async_read_some(
                    buffer_.prepare(kIdleReadBytes), asio::redirect_error(asio::use_awaitable, ec));
                buffer_.commit(n);
                if (ec) {
                    co_return;  // closed by the client, idle too long, or shutting down
                }
            }
            if (!first) {
                beast::get_lowest_layer(stream_).expires_after(limits->header_timeout);
            }
            first = false;
            const std::size_t head_bytes = co_await http::async_read_header(
                stream_, buffer_, parser, asio::redirect_error(asio::use_awaitable, ec));
            idle_ = false;
            if (ec == beast::error::timeout) {
                count_timeout("header");
                co_return;
            }
            if (!ec && !head_within_limit(head_bytes, *limits)) {
                ec = http::error::header_limit;  // the parser let it through (see the function)
            }
            if (!ec && !parser.is_done()) {
                beast::get_lowest_layer(stream_).expires_after(limits->request_timeout);
                co_await http::async_read(stream_, buffer_, parser,
                                          asio::redirect_error(asio::use_awaitable, ec));
                if (ec == beast::error::timeout) {
                    count_timeout("body");
                    co_return;
                }
            }
            if (ec == http::error::header_limit) {
                count("unmatched", 431);
                co_await reject(431, "header_too_large",
                                "The request head is larger than the server accepts.");
                co_return;
            }
            if (ec == http::error::body_limit) {
                count("unmatched", 413);
                co_await reject(413, "body_too_large",
                                "The request body is larger than the server accepts.");
                co_return;
            }
            if (ec == http::error::end_of_stream || ec == asio::error::eof ||
                ec == beast::error::timeout || ec == asio::error::operation_aborted ||
                ec == asio::error::connection_reset) {
                co_return;
            }
            if (ec) {
                count("unmatched", 400);
                co_await reject(400, "bad_request",
                                "The request is not valid HTTP/1.1: " + ec.message() + ".");
                co_return;
            }

            auto& req = parser.get();
            if (is_websocket_upgrade(req)) {
                if (co_await upgrade(req)) {
                    co_return;  // the socket now belongs to a WsConnection
                }
                continue;
            }
            HttpResponse response = co_await dispatch(req);
            const bool keep_alive = req.keep_alive() && !stopping_;
            co_await write_response(std::move(response), req.version(), keep_alive);
            if (!keep_alive) {
                co_await close_gracefully();
                co_return;
            }
        }
    }

    asio::awaitable<HttpResponse> dispatch(const BeastRequest& req) {
        HttpRequest request = to_request(req, peer_address_, listener_.name, kTls);
        // Held until the handler has answered: the routes may change meanwhile, the handler stays.
        const auto routes = listener_.routes();
        bool method_mismatch = false;
        const HttpRoute* route = routes->find_http(request.method, request.path, method_mismatch);
        if (route == nullptr) {
            if (method_mismatch) {
                count(request.path, 405);
                co_return HttpResponse::error(
                    405, "method_not_allowed",
                    "Method " + request.method + " is not allowed on " + request.path + ".");
            }
            count("unmatched", 404);
            co_return HttpResponse::error(404, "not_found", "No route for " + request.path + ".");
        }
        HttpResponse response = co_await call_handler(*route, request);
        count(route->path, response.status);
        // The path only: a query string may carry values an operator did not mean to log.
        log()->debug("{} {} {} -> {}", peer_address_, request.method, request.path,
                     response.status);
        co_return response;
    }

    // Runs a route's handler and waits for its response, which may come from any thread.
    asio::awaitable<HttpResponse> call_handler(const HttpRoute& route, const HttpRequest& request) {
        auto executor = stream_.get_executor();
        co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(HttpResponse)>(
            [&route, &request, executor](auto handler) {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                HttpResponder responder([shared, executor](HttpResponse r) {
                    asio::post(executor, [shared, r = std::move(r)]() mutable {
                        std::move (*shared)(std::move(r));
                    });
                });
                try {
                    route.handler(request, responder);
                } catch (const std::exception& e) {
                    log()->error("route {} threw: {}", route.path, e.what());
                    responder.respond(HttpResponse::error(
                        500, "internal", "The server failed to handle the request."));
                }
            },
            asio::use_awaitable);
    }

    // Runs a route's asynchronous accept and waits for its decision, which may come from any
    // thread.
    asio::awaitable<WsRoute::Decision> decide(const WsRouteState& route,
                                              const HttpRequest& request) {
        auto executor = stream_.get_executor();
        co_return co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                void(WsRoute::Decision)>(
            [&route, &request, executor](auto handler) {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                route.accept_async()(request, [shared, executor](WsRoute::Decision d) {
                    asio::post(executor, [shared, d = std::move(d)]() mutable {
                        std::move (*shared)(std::move(d));
                    });
                });
            },
            asio::use_awaitable);
    }

    // Returns true when the connection was handed over to a WsConnection.
    asio::awaitable<bool> upgrade(const BeastRequest& req) {
        HttpRequest request = to_request(req, peer_address_, listener_.name, kTls);
        auto route = listener_.routes()->find_ws(request.path);
        if (!route) {
            count("unmatched", 404);
            co_await reject(404, "not_found", "No WebSocket route for " + request.path + ".");
            co_return true;
        }
        if (req[http::field::sec_websocket_version] != "13") {
            server_->events.publish(core::EventKind::kHandshakeFailed, {}, peer_address_,
                                    route->path() + ": unsupported version");
            HttpResponse r = HttpResponse::error(426, "unsupported_websocket_version",
                                                 "Only WebSocket version 13 is supported.");
            r.headers.push_back({"Sec-WebSocket-Version", "13"});
            count(route->path(), 426);
            co_await write_response(std::move(r), req.version(), false);
            co_await close_gracefully();
            co_return true;
        }
        const auto key = req[http::field::sec_websocket_key];
        if (key.size() != 24) {
            server_->events.publish(core::EventKind::kHandshakeFailed, {}, peer_address_,
                                    route->path() + ": bad Sec-WebSocket-Key");
            count(route->path(), 400);
            co_await reject(400, "bad_websocket_key", "Sec-WebSocket-Key is missing or malformed.");
            co_return true;
        }
        WsRoute::Decision accepted;
        if (route->accept_async()) {
            try {
                accepted = co_await decide(*route, request);
            } catch (const std::exception& e) {
                accepted = accept_failed(*route, e);
            }
        } else {
            accepted = accept_now(*route, request);
        }
        if (auto* refusal = std::get_if<HttpResponse>(&accepted)) {
            upgrade_refused(*server_, listener_, *route, peer_address_, refusal->status);
            co_await write_response(std::move(*refusal), req.version(), false);
            co_await close_gracefully();
            co_return true;
        }
        if (route->withdrawn()) {
            // Withdrawn while the upgrade was decided: its module's connections have been closed
            // (or are being closed), and this one would be left behind. From here to the
            // connection's registration nothing yields, so a withdraw cannot slip in between.
            co_await write_response(withdrawn_refusal(*server_, listener_, *route, peer_address_),
                                    req.version(), false);
            co_await close_gracefully();
            co_return true;
        }
        auto leftover = buffer_.data();
        std::string early(static_cast<const char*>(leftover.data()), leftover.size());
        beast::get_lowest_layer(stream_).expires_never();
        typename WsConnectionFor::Params params{server_, &listener_, route, peer_address_};
        finish();  // the WsConnection registers itself
        auto handler = std::move(std::get<std::unique_ptr<WsHandler>>(accepted));
        if constexpr (std::is_same_v<Stream, HttpStream>) {
            open_websocket(stream_.release_socket(), req, std::move(early), std::move(handler),
                           std::move(params));
        } else {
            open_websocket(std::move(stream_), req, std::move(early), std::move(handler),
                           std::move(params));
        }
        co_return true;
    }

    asio::awaitable<void> reject(int status, std::string_view code, std::string message) {
        co_await write_response(HttpResponse::error(status, code, message), 11, false);
        co_await close_gracefully();
    }

    asio::awaitable<void> write_response(HttpResponse r, unsigned version, bool keep_alive) {
        http::response<http::string_body> res{static_cast<http::status>(r.status), version};
        res.set(http::field::server, "hearth");
        if (!r.content_type.empty()) {
            res.set(http::field::content_type, r.content_type);
        }
        for (auto& h : r.headers) {
            res.set(h.name, h.value);
        }
        res.body() = std::move(r.body);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        beast::get_lowest_layer(stream_).expires_after(server_->http_limits()->write_timeout);
        boost::system::error_code ec;
        co_await http::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            throw boost::system::system_error(ec);
        }
    }

    asio::awaitable<void> close_gracefully() {
        boost::system::error_code ec;
        if constexpr (std::is_same_v<Stream, HttpStream>) {
            stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        } else {
            beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
            co_await stream_.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
        }
        co_return;
    }

    void count(std::string_view route, int status) {
        server_->http_requests(listener_.name, route, status).inc();
    }

    void count_timeout(std::string_view phase) {
        server_->http_timeouts(listener_.name, phase).inc();
        log()->debug("connection {} from {}: request {} timed out; closing", id_, peer_address_,
                     phase);
    }

    static constexpr std::size_t kIdleReadBytes = 4096;
    static constexpr bool kTls = !std::is_same_v<Stream, HttpStream>;

    using WsConnectionFor =
        WsConnection<std::conditional_t<std::is_same_v<Stream, HttpStream>, RawSocket, Stream>>;

    Stream stream_;
    std::shared_ptr<ServerState> server_;
    ListenerState& listener_;
    beast::flat_buffer buffer_;
    std::string peer_address_;
    std::string peer_ip_;
    std::uint64_t id_ = 0;
    std::optional<Clock::time_point> head_deadline_;  // the first head's, set by FirstRequest
    bool idle_ = false;
    bool stopping_ = false;
    bool finished_ = false;
};

// The first request of a plain-TCP connection, read without a coroutine.
//
// Why: in a burst of clients opening WebSockets at once (a reconnect storm), a coroutine session
// per waiting client held about 4 KB of frames, parser and buffers, allocated in between the
// WsConnections of the clients upgraded before it; the heap kept those pages after the burst, so
// each idle connection cost 4.6 KB of RSS instead of the 1.7 KB it uses. Here a waiting client
// holds this object and one wait operation. Its request is read into the io thread's shared
// buffer and parsed there, and an upgrade to a route that decides at once is completed in the
// same call: what the parse allocates is freed before the next client's turn.
//
// Everything else continues in HttpSession with the bytes read so far, which answers exactly as
// it always did: a plain HTTP request, a head not complete in one read, a request with a body, a
// malformed one, an upgrade it refuses (no route, bad version or key) and a route that decides
// asynchronously. A refusal by the route itself is written by HttpSession too.
class FirstRequest final : public Session,
                           public DeadlineClient,
                           public PollClient,
                           public std::enable_shared_from_this<FirstRequest> {
public:
    FirstRequest(RawSocket socket, std::shared_ptr<ServerState> server, ListenerState& listener,
                 std::string peer_address, std::string peer_key)
        : socket_(std::move(socket)),
          server_(std::move(server)),
          listener_(listener),
          thread_(server_->this_thread_state()),
          peer_address_(std::move(peer_address)),
          peer_ip_(std::move(peer_key)) {}

    void start() {
        auto self = shared_from_this();
        id_ = server_->next_connection_id.fetch_add(1);
        server_->session_opened(id_, self);
        listener_.open_http->add(1);
        head_deadline_ = Clock::now() + server_->http_limits()->header_timeout;
        thread_.deadlines->schedule(self, head_deadline_);
        boost::system::error_code ec;
        if (!thread_.poller->add(socket_.native_handle(), self, ec)) {
            log()->warn("connection {} from {}: cannot poll its socket: {}", id_, peer_address_,
                        ec.message());
            end(true);
        }
    }

    // Nothing was read yet: closing loses nothing.
    void shutdown() override { end(true); }

    const ListenerState* http_listener() const noexcept override { return &listener_; }

    void on_deadline() override {
        server_->http_timeouts(listener_.name, "header").inc();
        log()->debug("connection {} from {}: request header timed out; closing", id_,
                     peer_address_);
        end(true);
    }

    void on_ready(std::uint32_t events) override {
        if ((events & kInputEvents) != 0) {
            on_readable();
        }
    }

private:
    void on_readable() {
        if (ended_) {
            return;
        }
        boost::system::error_code ec;
        auto* buffer = thread_.read_buffer.get();
        const std::size_t n =
            socket_.read_some(std::span(buffer, ThreadState::kReadBufferBytes), ec);
        if (ec == asio::error::would_block) {
            return;  // the poller reports the request's bytes when they come
        }
        if (ec) {
            end(true);  // closed or reset before a request
            return;
        }
        handle(std::string_view(reinterpret_cast<const char*>(buffer), n));
    }

    // Completes an upgrade it can complete now; hands everything else to HttpSession.
    void handle(std::string_view read) {
        const auto limits = server_->http_limits();
        RequestParser parser;
        apply_limits(parser, *limits);
        parser.eager(false);
        boost::system::error_code ec;
        const std::size_t head_bytes = parser.put(asio::buffer(read.data(), read.size()), ec);
        if (ec || !parser.is_header_done() || !parser.is_done() ||
            !head_within_limit(head_bytes, *limits)) {
            continue_in_session(read);
            return;
        }
        const auto& req = parser.get();
        if (!is_websocket_upgrade(req) || req[http::field::sec_websocket_version] != "13" ||
            req[http::field::sec_websocket_key].size() != 24) {
            continue_in_session(read);
            return;
        }
        HttpRequest request = to_request(req, peer_address_, listener_.name, false);
        auto route = listener_.routes()->find_ws(request.path);
        if (!route || route->accept_async() || route->withdrawn()) {
            continue_in_session(read);
            return;
        }
        WsRoute::Decision accepted = accept_now(*route, request);
        if (auto* refusal = std::get_if<HttpResponse>(&accepted)) {
            upgrade_refused(*server_, listener_, *route, peer_address_, refusal->status);
            respond_in_session(std::move(*refusal), req.version());
            return;
        }
        WsConnection<RawSocket>::Params params{server_, &listener_, route, peer_address_};
        params.poll_from = this;  // the WebSocket takes over this registration
        // The WsConnection registers itself; this object lives on until the call returns (the
        // caller, the poller's dispatch or the deadline, holds it).
        end(false);
        open_websocket(std::move(socket_), req, std::string(read.substr(head_bytes)),
                       std::move(std::get<std::unique_ptr<WsHandler>>(accepted)),
                       std::move(params));
    }

    void continue_in_session(std::string_view read) {
        auto session = hand_over();
        session->continue_from(read, head_deadline_);
    }

    void respond_in_session(HttpResponse response, unsigned version) {
        auto session = hand_over();
        session->respond_and_close(std::move(response), version);
    }

    // The connection's limits stay counted: HttpSession gives them back when it ends.
    // The socket joins Asio's reactor here, for Beast.
    std::shared_ptr<HttpSession<HttpStream>> hand_over() {
        auto self = shared_from_this();  // unregistering may drop every other reference
        unregister();
        thread_.poller->remove(*this, socket_.native_handle());
        boost::system::error_code ec;
        auto socket = raw_to_asio<PlainSocket>(socket_, thread_.io->get_executor(), ec);
        if (ec) {
            log()->debug("connection {} from {}: cannot continue: {}", id_, peer_address_,
                         ec.message());
        }
        return std::make_shared<HttpSession<HttpStream>>(HttpStream(std::move(socket)), server_,
                                                         listener_, std::move(peer_address_),
                                                         std::move(peer_ip_));
    }

    void unregister() {
        ended_ = true;
        thread_.deadlines->cancel(*this);
        listener_.open_http->sub(1);
        server_->session_closed(id_);
    }

    // Ends this stage; `close` (no hand-over): the socket closes and the limits are given back.
    void end(bool close) {
        if (ended_) {
            return;
        }
        unregister();
        listener_.http_peers.remove(peer_ip_);
        server_->http_open.fetch_sub(1);
        if (close) {
            auto self = shared_from_this();  // unregistering may drop every other reference
            thread_.poller->remove(*this, socket_.native_handle());
            socket_.close();
        }
    }

    RawSocket socket_;
    std::shared_ptr<ServerState> server_;
    ListenerState& listener_;
    ThreadState& thread_;
    std::string peer_address_;
    std::string peer_ip_;
    Clock::time_point head_deadline_{};
    std::uint64_t id_ = 0;
    bool ended_ = false;
};

}  // namespace

void start_http_session(std::shared_ptr<ServerState> server, ListenerState& listener,
                        RawSocket socket) {
    if (server->shutting_down.load()) {
        return;  // the socket closes as it goes out of scope
    }
    std::string peer_address;
    std::string peer_key;
    boost::system::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    if (ec) {
        return;  // already gone
    }
    peer_key = address_key(endpoint.address());
    const auto ip = endpoint.address().to_string();
    peer_address = endpoint.address().is_v6() ? "[" + ip + "]:" + std::to_string(endpoint.port())
                                              : ip + ":" + std::to_string(endpoint.port());

    // Connection limits, before anything is read or a TLS handshake costs CPU: over them the
    // connection is closed at once, without a response (writing one would cost what the limit
    // saves, and a client that floods us would not read it).
    const auto limits = server->http_limits();
    std::string_view refused;
    if (server->http_open.fetch_add(1) >= limits->max_connections && limits->max_connections != 0) {
        refused = "max_connections";
    } else if (!listener.http_peers.add(peer_key, limits->max_connections_per_ip)) {
        refused = "max_connections_per_ip";
    }
    if (!refused.empty()) {
        server->http_open.fetch_sub(1);
        server->http_refused(listener.name, refused).inc();
        log()->debug("listener {}: connection from {} refused: {}", listener.name, peer_address,
                     refused);
        return;  // the socket closes as it goes out of scope
    }
    if (auto tls = listener.tls_context()) {
        using TlsStream = beast::ssl_stream<HttpStream>;
        auto& io = *server->this_thread_state().io;
        auto asio_socket = raw_to_asio<PlainSocket>(socket, io.get_executor(), ec);
        auto session = std::make_shared<HttpSession<TlsStream>>(
            TlsStream(HttpStream(std::move(asio_socket)), *tls), server, listener,
            std::move(peer_address), std::move(peer_key));
        session->start();
    } else {
        static_assert(sizeof(FirstRequest) + 32 <= ConnectionBlock<FirstRequest>::kBlockBytes);
        auto first = std::allocate_shared<FirstRequest>(
            ConnectionBlock<FirstRequest>(), std::move(socket), std::move(server), listener,
            std::move(peer_address), std::move(peer_key));
        first->start();
    }
}

}  // namespace hearth::net
