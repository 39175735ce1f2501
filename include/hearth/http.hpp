#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <hearth/connection.hpp>
#include <hearth/stream.hpp>

namespace hearth {

struct HttpHeader {
    std::string name;
    std::string value;
};

/// An HTTP request as routes see it (no Beast types). Valid for the duration of the handler call;
/// an asynchronous handler copies what it needs.
struct HttpRequest {
    std::string method;  // "GET", "POST", ...
    std::string target;  // as sent: path and query
    std::string path;    // percent-decoded path without the query
    std::string query;   // raw query string without '?'
    std::vector<HttpHeader> headers;
    std::string body;
    std::string peer_address;  // "ip:port"
    std::string listener;      // the listener's name, e.g. "http"
    bool tls = false;

    /// Case-insensitive header lookup; the first occurrence.
    std::optional<std::string_view> header(std::string_view name) const;
    /// A query parameter, percent-decoded with "+" as a space (form encoding); the first
    /// occurrence.
    std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";  // empty: no Content-Type header at all
    std::string body;
    std::vector<HttpHeader> headers;  // extra headers

    static HttpResponse json(int status, std::string body);
    static HttpResponse text(int status, std::string body,
                             std::string content_type = "text/plain; charset=utf-8");
    /// The API's error shape: {"error":{"code":"...","message":"..."}}.
    static HttpResponse error(int status, std::string_view code, std::string_view message);
};

/// Completes one request, from any thread, exactly once. If it is destroyed unused the client gets
/// a 500 and the route is logged, so a forgotten response never hangs a connection.
class HttpResponder {
public:
    using Deliver = std::function<void(HttpResponse)>;

    HttpResponder() = default;
    explicit HttpResponder(Deliver deliver);

    void respond(HttpResponse response);
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    struct State;
    std::shared_ptr<State> state_;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponder)>;

/// Convenience for handlers that answer at once.
inline HttpHandler sync_handler(std::function<HttpResponse(const HttpRequest&)> f) {
    return [f = std::move(f)](const HttpRequest& req, HttpResponder res) { res.respond(f(req)); };
}

/// A WebSocket route: the upgrade request is offered to `accept`, on the connection's io thread,
/// which returns the connection's handler, or a response that refuses the upgrade (e.g. 401).
struct WsRoute {
    using Decision = std::variant<std::unique_ptr<WsHandler>, HttpResponse>;
    using Accept = std::function<Decision(const HttpRequest&)>;
    /// The asynchronous form, for a decision that needs the store (a token to validate): `decide`
    /// may be called from any thread, exactly once; the upgrade waits for it (within the request
    /// timeout).
    using AcceptAsync =
        std::function<void(const HttpRequest&, std::function<void(Decision)> decide)>;

    std::shared_ptr<const WsRouteSettings> settings = std::make_shared<WsRouteSettings>();
    Accept accept;  // one of the two
    AcceptAsync accept_async;
    // Who serves the route, e.g. "native" (the operator API's connection list); empty: the
    // listener's name.
    std::string frontend;
    // The subprotocols the route speaks, in the server's order of preference: the first of them
    // that the client offers in Sec-WebSocket-Protocol (compared exactly) is echoed in the 101
    // response; when the client offers none of them the response has no Sec-WebSocket-Protocol
    // (RFC 6455 section 4.2.2). `accept` sees every offered value in the request's headers.
    std::vector<std::string> subprotocols;
    // The protocol lets a client connect and only listen (a log stream, status pushes, a session
    // held open): WsRouteSettings::first_message_timeout does not apply to this route.
    bool listen_only = false;
};

/// Where a listener binds and whether it speaks TLS.
struct ListenerSpec {
    std::string name;           // for logs and metrics, e.g. "http", "homestead"
    std::string listen;         // "host:port"; port 0 picks a free port
    std::string tls_cert_file;  // both set: TLS (https, wss)
    std::string tls_key_file;

    bool operator==(const ListenerSpec&) const = default;
};

enum class PathMatch : std::uint8_t { kExact, kPrefix };

/// Route registration, implemented by the network layer and used by modules while they start.
/// Collisions (the same method and path twice on one listener, a port claimed with different TLS
/// settings) throw `std::runtime_error` naming the port and path: a startup error.
class Router {
public:
    virtual ~Router() = default;

    /// Declares (or joins) a listener; returns its key for the add_* calls.
    virtual std::string listener(const ListenerSpec& spec) = 0;
    /// `method` empty matches any method.
    virtual void add_http_route(const std::string& listener, std::string method, std::string path,
                                HttpHandler handler, PathMatch match = PathMatch::kExact) = 0;
    virtual void add_ws_route(const std::string& listener, std::string path, WsRoute route) = 0;
    /// Declares a raw TCP listener (no HTTP): it cannot share its port with HTTP routes, and TLS
    /// is not offered. Returns the listener's key (for bound_port).
    virtual std::string add_stream_listener(const ListenerSpec& spec, StreamRoute route) = 0;
};

/// How a module's connections end when it stops: WebSockets are closed with this code and reason;
/// raw TCP connections close once what is queued for them is written (their protocols have no
/// close code).
struct CloseNotice {
    std::uint16_t code = 1001;
    std::string reason;
};

/// One module's share of the network: a Router whose listeners and routes are tagged with the
/// module's name, so that they come and go together while the server runs (a module enabled,
/// disabled or restarted by an operator or by the config file). Used from a control thread.
class ModuleRoutes : public Router {
public:
    /// Binds every listener declared through this object that is not bound (a new one, or one
    /// released earlier) and starts accepting. Throws std::runtime_error naming the listener and
    /// address when one cannot be bound; what was declared stays until `withdraw`.
    virtual void open() = 0;
    /// Removes every route this object added, closes the connections they accepted with `notice`,
    /// releases each listener left without routes, and waits until those connections have ended or
    /// `deadline` passes (then they are cut). Returns whether they all ended in time. A listener
    /// that still has another module's routes stays bound. Idempotent; the object can declare and
    /// `open` again afterwards.
    virtual bool withdraw(const CloseNotice& notice,
                          std::chrono::steady_clock::time_point deadline) = 0;
    /// Replaces the settings of one of this object's WebSocket routes; open connections apply them
    /// to their next message. Throws std::logic_error for a route it does not own.
    virtual void update_ws_settings(const std::string& listener, const std::string& path,
                                    std::shared_ptr<const WsRouteSettings> settings) = 0;
    /// The port a listener is bound to (0 when it is not), by key.
    virtual std::uint16_t bound_port(const std::string& listener) const = 0;
    /// WebSocket and raw TCP connections its routes accepted that are still open.
    virtual std::size_t open_connections() const = 0;
};

}  // namespace hearth
