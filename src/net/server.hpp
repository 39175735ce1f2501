#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <hearth/connections.hpp>
#include <hearth/http.hpp>

namespace hearth::core {
class Runtime;
class MetricsRegistry;
class EventBus;
}  // namespace hearth::core

namespace hearth::net {

/// HTTP limits applied to every listener; replaced as a whole on config reload.
struct HttpLimits {
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1024 * 1024;
    std::chrono::milliseconds request_timeout{15'000};  // a request's whole body
    std::chrono::milliseconds write_timeout{30'000};
    std::chrono::milliseconds keepalive_timeout{60'000};  // waiting for the next request
    // A whole request head (with the TLS handshake on a new connection), from the connection or
    // the next request's first byte; not reset as bytes arrive.
    std::chrono::milliseconds header_timeout{10'000};
    std::size_t max_connections = 10'000;  // HTTP connections, all listeners; 0: unlimited
    std::size_t max_connections_per_ip =
        1000;  // per address (IPv6: /64) and listener; 0: unlimited
};

struct ServerState;

/// The network layer: listeners, HTTP sessions, WebSocket and raw TCP connections, with routes
/// registered by modules through the `Router` interface. Lifecycle, from control threads:
/// construct, register routes, `start` (binds every listener or throws naming the one that
/// failed), then `begin_shutdown` + `wait_drained`, then stop the runtime's threads, then destroy
/// the server, then the runtime. Modules may add and withdraw routes and listeners while it runs
/// (`routes_for`); a ModuleRoutes may outlive the server.
class Server final : public Router, public ConnectionDirectory {
public:
    Server(core::Runtime& runtime, core::MetricsRegistry& metrics, core::EventBus& events,
           HttpLimits limits);
    ~Server() override;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// A new, empty share of the network for `module`: what it declares through it is tagged
    /// with it and withdrawn as one (ModuleRoutes). The Router calls of the Server itself declare
    /// for the core. Several objects may add routes to one listener (by key).
    std::unique_ptr<ModuleRoutes> routes_for(std::string module);

    // Router, for the core
    std::string listener(const ListenerSpec& spec) override;
    void add_http_route(const std::string& listener, std::string method, std::string path,
                        HttpHandler handler, PathMatch match) override;
    void add_ws_route(const std::string& listener, std::string path, WsRoute route) override;
    std::string add_stream_listener(const ListenerSpec& spec, StreamRoute route) override;

    /// Updates a WebSocket route's settings; open connections apply them to their next message.
    void update_ws_settings(const std::string& listener, const std::string& path,
                            std::shared_ptr<const WsRouteSettings> settings);
    /// Applies new HTTP limits to new requests.
    void update_http_limits(HttpLimits limits);
    /// Reloads every TLS listener's certificate and key; on failure the old ones stay (logged).
    void reload_tls();

    /// When listeners bound by `start` begin to accept: at once, or at `accept_connections`.
    enum class Accepting : std::uint8_t { kNow, kLater };
    /// Binds every listener and, unless `kLater`, starts accepting. Throws std::runtime_error
    /// naming the listener and address when one cannot be bound (in use, bad address, unreadable
    /// certificate). With `kLater`, connections wait in the kernel's backlog until
    /// `accept_connections`: a server whose modules are still adding routes answers no request
    /// with a 404 meanwhile.
    void start(Accepting accepting = Accepting::kNow);
    /// Starts accepting on every bound listener (and on those bound later); once is enough.
    void accept_connections();
    /// The port a listener is bound to (after start; 0 when it is not), by listener key.
    std::uint16_t bound_port(const std::string& listener) const;
    /// Listener keys, in declaration order.
    std::vector<std::string> listeners() const;

    /// Stops accepting, closes WebSockets with 1001, idle HTTP connections and raw TCP connections
    /// (after writing what they have queued); requests in progress finish and then close.
    /// Thread-safe, idempotent.
    void begin_shutdown();
    /// Waits until every connection is gone or `deadline` passes; true when all are gone.
    bool wait_drained(std::chrono::steady_clock::time_point deadline);
    // ConnectionDirectory: asks every io thread for its connections.
    void list_connections(std::function<void(std::vector<ConnectionInfo>)> done) override;
    void kick_connection(ConnectionId id, std::function<void(bool found)> done) override;

    /// Connections (HTTP and WebSocket) currently open.
    std::size_t open_connections() const;

private:
    std::shared_ptr<ServerState> state_;
};

}  // namespace hearth::net
