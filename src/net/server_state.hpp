#pragma once

// Internal state of net::Server shared by its listeners and sessions. Not part of the net API.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <hearth/http.hpp>

#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "net/deadlines.hpp"
#include "net/poller.hpp"
#include "net/raw_socket.hpp"
#include "net/server.hpp"
#include "net/ws_codec.hpp"

namespace hearth::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
// The sockets of accepted connections carry their io_context's executor itself rather than
// any_io_executor: 40 bytes less per socket, and each pending operation on it (an idle
// connection's wait for readability) about 100 bytes less, since Asio keeps a copy of the
// socket's executor in every operation.
using PlainSocket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;

struct ListenerState;

/// Who declared a listener or a route: the core, or one module's `ModuleRoutes`. Counts the
/// WebSocket and raw TCP connections its routes accepted that are still open, so that a withdraw
/// waits for them (ServerState::owner_closed wakes it).
struct Owner {
    explicit Owner(std::string n) : name(std::move(n)) {}
    const std::string name;
    std::atomic<std::size_t> open{0};
};

/// Anything that lives on an io thread and must end at shutdown. Runs on: its io thread.
class Session {
public:
    virtual ~Session() = default;
    /// Begin a graceful close (WebSocket: 1001; HTTP: close once the current request is answered).
    virtual void shutdown() = 0;
    /// What the operator API lists; nothing for sessions it does not list (plain HTTP).
    virtual std::optional<ConnectionInfo> describe() const { return std::nullopt; }
    /// An operator's disconnect (ConnectionDirectory::kick_connection).
    virtual void kick() { shutdown(); }
    /// The owner of the route that accepted the connection; null for plain HTTP sessions, which
    /// belong to their listener rather than to a module.
    virtual const Owner* owner() const noexcept { return nullptr; }
    /// For plain HTTP sessions: their listener (closed with it when it is released).
    virtual const ListenerState* http_listener() const noexcept { return nullptr; }
    /// Its route was withdrawn: close gracefully with `notice` (WebSocket) or after writing what is
    /// queued (raw TCP).
    virtual void withdraw(const CloseNotice& notice) {
        (void)notice;
        shutdown();
    }
    /// A withdraw's deadline passed: close the socket now.
    virtual void cut() { shutdown(); }
};

/// Per io thread; touched only on that thread.
struct ThreadState {
    static constexpr std::size_t kReadBufferBytes = 64 * 1024;

    asio::io_context* io = nullptr;
    std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions;
    // Where a connection gathers the buffers of its next write; the batch is copied out when the
    // socket does not take all of it at once, so an idle connection keeps none.
    std::vector<asio::const_buffer> write_batch;

    /// Runs `run(owner.get())` once the current handler is over, with every other flush deferred
    /// meanwhile, in one posted handler: a fan-out that queues a frame for 1,000 connections of
    /// this thread posts once, not 1,000 times (an Asio post allocates its operation and takes
    /// the scheduler's lock). The connection keeps its own flag so that it is deferred at most
    /// once: the list holds at most one entry per connection of the thread.
    void defer_flush(std::shared_ptr<void> owner, void (*run)(void*));

    /// The connection whose handler handles, on this thread, the last message of what was read
    /// from its socket, or null. What that handler sends to other connections (a fan-out) is
    /// written to them at once when nothing of theirs waits, with no queueing, deferred flush and
    /// batch per delivery; uWebSockets corks its sockets the same way. Everything else is queued
    /// and flushed once the thread's current work is done, so that writes gather: what a handler
    /// sends its own connection (its answers go out together), what the messages before the
    /// last of a read send (a client that pipelines 50 publishes gets 1 write per subscriber, not
    /// 50), and what posted work and timers send (a hub's deliveries from another thread).
    const void* fanout_from = nullptr;
    /// Drops the flushes still deferred, and the connections they hold (which hold the server's
    /// state: a cycle). For ~Server, once the io threads have stopped: a flush deferred just
    /// before they stopped never ran.
    void drop_deferred_flushes() noexcept;

private:
    struct DeferredFlush {
        std::shared_ptr<void> owner;
        void (*run)(void*);
    };
    void run_flushes();

    std::vector<DeferredFlush> flushes_;
    std::vector<DeferredFlush> running_;  // the batch being run; its storage is kept for the next
    bool flushes_posted_ = false;

public:
    // Every connection's deadlines on this thread (reset by ~Server, while the io_context exists).
    std::unique_ptr<Deadlines> deadlines;
    // The readiness of every raw socket of this thread (reset by ~Server, like `deadlines`).
    std::unique_ptr<Poller> poller;
    // Shared by every connection of the thread: an idle connection then owns no read buffer and
    // no zlib state (every message is inflated on its own, see ws::negotiate_deflate).
    ws::Inflater inflater;
    std::unique_ptr<std::uint8_t[]> read_buffer =
        std::make_unique<std::uint8_t[]>(kReadBufferBytes);
};

/// Counters of one WebSocket route (label route="/path").
struct WsRouteMetrics {
    core::Gauge* open = nullptr;
    core::Counter* accepted = nullptr;
    core::Counter* messages_in = nullptr;
    core::Counter* messages_out = nullptr;
    core::Counter* bytes_in = nullptr;
    core::Counter* bytes_out = nullptr;
    core::Counter* dropped = nullptr;  // messages dropped at the outbox bound
};

/// Open connections per IP address, for a per-address limit. Thread-safe.
class PeerCounter {
public:
    /// Counts a new connection from `ip`; false (and nothing counted) when `limit` (0: none) are
    /// open already.
    bool add(const std::string& ip, std::size_t limit);
    void remove(const std::string& ip);

private:
    std::mutex mutex_;
    std::unordered_map<std::string, std::size_t> open_;
};

/// The key that per-address limits count by: the address itself for IPv4 (and IPv4-mapped IPv6),
/// its /64 prefix for IPv6, since one host commonly holds a whole /64.
std::string address_key(const asio::ip::address& address);

/// A registered WebSocket route. Settings can be replaced at runtime (config reload); connections
/// notice through `generation`, a relaxed load per message.
class WsRouteState {
public:
    WsRouteState(std::string listener, std::string path, WsRoute route,
                 core::MetricsRegistry& metrics, std::shared_ptr<Owner> owner);

    const std::string& listener() const noexcept { return listener_; }
    const std::string& path() const noexcept { return path_; }
    const std::string& frontend() const noexcept { return frontend_; }
    const WsRoute::Accept& accept() const noexcept { return accept_; }
    const WsRoute::AcceptAsync& accept_async() const noexcept { return accept_async_; }
    const std::vector<std::string>& subprotocols() const noexcept { return subprotocols_; }
    bool listen_only() const noexcept { return listen_only_; }
    const WsRouteMetrics& metrics() const noexcept { return metrics_; }
    Owner& owner() const noexcept { return *owner_; }
    const std::shared_ptr<Owner>& owner_ptr() const noexcept { return owner_; }

    /// Set when the route is removed: an upgrade decided meanwhile is refused (503) instead of
    /// producing a connection nobody closes.
    bool withdrawn() const noexcept { return withdrawn_.load(); }
    void set_withdrawn() noexcept { withdrawn_.store(true); }

    std::shared_ptr<const WsRouteSettings> settings() const;
    void set_settings(std::shared_ptr<const WsRouteSettings> s);
    std::uint32_t generation() const noexcept {
        return generation_.load(std::memory_order_relaxed);
    }

    /// Connections per address, for WsRouteSettings::max_connections_per_ip.
    PeerCounter& peers() noexcept { return peers_; }

    /// Counts a server-initiated disconnect by reason (slow_consumer, rate_limited, ...).
    void count_disconnect(std::string_view reason);

private:
    std::string listener_;
    std::string path_;
    std::string frontend_;
    WsRoute::Accept accept_;
    WsRoute::AcceptAsync accept_async_;
    std::vector<std::string> subprotocols_;
    bool listen_only_ = false;
    std::shared_ptr<Owner> owner_;
    std::atomic<bool> withdrawn_{false};
    core::MetricsRegistry& registry_;
    WsRouteMetrics metrics_;
    mutable std::mutex mutex_;
    std::shared_ptr<const WsRouteSettings> settings_;
    std::atomic<std::uint32_t> generation_{0};
    PeerCounter peers_;
};

struct StreamListenerState;  // net/tcp_connection.hpp

struct HttpRoute {
    std::string method;  // empty: any
    std::string path;
    PathMatch match = PathMatch::kExact;
    HttpHandler handler;
    std::shared_ptr<Owner> owner;
};

/// A listener's routes at one moment. Never changed once published: a change builds a new table
/// and swaps it in (ListenerState::set_routes), so a session reads routes without a lock and
/// keeps the table it found a handler in (and so the handler) for as long as it runs it.
struct RouteTable {
    std::vector<std::shared_ptr<const HttpRoute>> http;
    std::map<std::string, std::shared_ptr<WsRouteState>, std::less<>> ws;
    std::shared_ptr<StreamListenerState> stream;  // set: a raw TCP listener, no HTTP

    bool empty() const noexcept { return http.empty() && ws.empty() && !stream; }
    /// The route for a path, exact matches first, then the longest prefix; null when none.
    /// `method_mismatch` is set when a route has the path but not the method.
    const HttpRoute* find_http(std::string_view method, std::string_view path,
                               bool& method_mismatch) const;
    std::shared_ptr<WsRouteState> find_ws(std::string_view path) const;
};

/// A listener: its address, TLS context and routes. The address and declarations change only on
/// the control thread, under ServerState::control; the acceptor is touched only on its io thread.
/// Never destroyed before the server: sessions hold a reference. A listener left without routes
/// is released (acceptor closed) and bound again when a module declares it anew.
struct ListenerState {
    /// A declaration: the spec name that asked for the listener, and by whom.
    struct Claim {
        std::string spec_name;
        std::shared_ptr<Owner> owner;
    };

    explicit ListenerState(std::string n) : name(std::move(n)) {}

    const std::string name;          // its key: for logs, metrics and the add_* calls
    asio::io_context* io = nullptr;  // where its acceptor lives

    // Control thread, under ServerState::control.
    ListenerSpec spec;  // its `listen` and TLS files change only while it is released
    std::vector<Claim> claims;
    bool bound = false;

    // Io thread of `io` only.
    std::unique_ptr<tcp::acceptor> acceptor;
    std::unique_ptr<asio::steady_timer> accept_retry;  // backs off when out of file descriptors
    std::uint64_t accept_generation = 0;  // a stale accept completion (an older bind) stops
    bool accepting = false;               // false once closed: a late completion does not retry

    // Any thread.
    std::atomic<std::uint16_t> port{0};  // 0: not bound
    std::atomic<bool> serving{false};    // false: a socket accepted before the release is closed

    mutable std::mutex tls_mutex;
    std::shared_ptr<asio::ssl::context> tls;  // null: plain

    core::Gauge* open_http = nullptr;
    core::Gauge* open_ws = nullptr;
    core::Counter* accepted = nullptr;
    core::Counter* accept_errors = nullptr;
    // HTTP connections per address (HttpLimits::max_connections_per_ip), counted from the accept
    // until the connection closes or is upgraded to a WebSocket (whose route counts it then).
    PeerCounter http_peers;

    std::shared_ptr<asio::ssl::context> tls_context() const {
        std::lock_guard lock(tls_mutex);
        return tls;
    }
    bool is_tls() const { return !spec.tls_cert_file.empty(); }  // control thread

    std::shared_ptr<const RouteTable> routes() const {
        std::lock_guard lock(routes_mutex_);
        return routes_;
    }
    void set_routes(std::shared_ptr<const RouteTable> table) {
        std::lock_guard lock(routes_mutex_);
        routes_ = std::move(table);
    }

private:
    mutable std::mutex routes_mutex_;
    std::shared_ptr<const RouteTable> routes_ = std::make_shared<const RouteTable>();
};

struct ServerState {
    ServerState(core::Runtime& rt, core::MetricsRegistry& m, core::EventBus& e, HttpLimits l);

    core::Runtime& runtime;
    core::MetricsRegistry& metrics;
    core::EventBus& events;

    // Guards `listeners` (which grows while the server runs), `started`, `destroyed` and each
    // listener's control-thread fields. Taken on control threads only, never on an io thread.
    mutable std::mutex control;
    std::vector<std::unique_ptr<ListenerState>> listeners;  // never shrinks: sessions hold them
    bool started = false;    // Server::start ran: declarations bind on open()
    bool accepting = false;  // listeners accept once bound (Server::accept_connections)
    bool destroyed = false;  // the Server is gone (and the io threads with it)
    const std::shared_ptr<Owner> core_owner = std::make_shared<Owner>("core");
    std::vector<std::unique_ptr<ThreadState>> threads;  // indexed like the runtime's io threads

    std::shared_ptr<const HttpLimits> http_limits() const;
    void set_http_limits(HttpLimits limits);

    std::atomic<bool> shutting_down{false};
    // HTTP connections open on every HTTP listener (HttpLimits::max_connections).
    std::atomic<std::size_t> http_open{0};
    std::atomic<std::uint64_t> next_connection_id{1};

    /// Session bookkeeping for graceful shutdown. Call on the session's io thread.
    void session_opened(std::uint64_t id, const std::shared_ptr<Session>& session);
    void session_closed(std::uint64_t id);
    std::size_t open_sessions() const noexcept { return open_.load(); }
    bool wait_drained(std::chrono::steady_clock::time_point deadline);

    /// A WebSocket or raw TCP connection of `owner`'s routes opened or ended (any thread).
    void owner_opened(Owner& owner) noexcept { owner.open.fetch_add(1); }
    void owner_closed(Owner& owner);
    /// Waits until `owner` has no connection open or `deadline` passes; true when none is open.
    bool wait_owner_drained(const Owner& owner, std::chrono::steady_clock::time_point deadline);

    ThreadState& this_thread_state();

    core::Counter& http_requests(const std::string& listener, std::string_view route, int status);
    /// Connections closed at once by a connection limit (reason: max_connections, ...).
    core::Counter& http_refused(const std::string& listener, std::string_view reason);
    /// Connections closed because a request's head or body did not arrive in time (phase: header,
    /// body).
    core::Counter& http_timeouts(const std::string& listener, std::string_view phase);

private:
    mutable std::mutex limits_mutex_;
    std::shared_ptr<const HttpLimits> limits_;
    std::atomic<std::size_t> open_{0};
    std::mutex drain_mutex_;
    std::condition_variable drained_;
    std::mutex owners_mutex_;
    std::condition_variable owners_drained_;
};

/// Starts the session for a socket accepted on `listener` (on the socket's io thread).
void start_http_session(std::shared_ptr<ServerState> server, ListenerState& listener,
                        RawSocket socket);

}  // namespace hearth::net
