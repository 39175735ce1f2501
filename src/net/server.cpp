#include "net/server.hpp"
#include <algorithm>
#include <condition_variable>
#include <functional>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <unistd.h>

#include "core/config.hpp"
#include "net/server_state.hpp"
#include "net/tcp_connection.hpp"
#include "util/log.hpp"

namespace hearth::net {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("net");
    return l;
}

// Loads a listener's certificate chain and key; throws with the file named when it cannot.
std::shared_ptr<asio::ssl::context> make_tls_context(const ListenerSpec& spec) {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(spec.tls_cert_file, ec);
    if (ec) {
        throw std::runtime_error("listener " + spec.name + ": cannot load TLS certificate " +
                                 spec.tls_cert_file + ": " + ec.message());
    }
    ctx->use_private_key_file(spec.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) {
        throw std::runtime_error("listener " + spec.name + ": cannot load TLS key " +
                                 spec.tls_key_file + ": " + ec.message());
    }
    return ctx;
}

void accept_next(std::shared_ptr<ServerState> server, ListenerState& listener,
                 std::uint64_t generation);

// Whether an accept completion belongs to the listener's current acceptor, still open: one that
// completes after its acceptor was closed (released, shut down) or replaced (bound again) stops
// there instead of retrying on a closed acceptor.
bool still_accepting(const ServerState& server, const ListenerState& listener,
                     std::uint64_t generation) {
    return listener.accepting && listener.accept_generation == generation &&
           !server.shutting_down.load();
}

// Starts a session for a socket handed over to this io thread, with the routes of now.
void start_session(const std::shared_ptr<ServerState>& server, ListenerState& listener,
                   RawSocket socket) {
    if (!listener.serving.load()) {
        return;  // accepted just before the listener was released: the socket closes here
    }
    if (auto stream = listener.routes()->stream) {
        start_tcp_connection(server, std::move(stream), std::move(socket));
    } else {
        start_http_session(server, listener, std::move(socket));
    }
}

void on_accept(std::shared_ptr<ServerState> server, ListenerState& listener,
               std::uint64_t generation, const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !still_accepting(*server, listener, generation)) {
        return;
    }
    if (ec) {
        listener.accept_errors->inc();
        // Out of file descriptors (or another transient error): back off instead of spinning, and
        // keep serving the connections already open.
        log()->warn("listener {} (port {}): accept failed: {}; retrying in 100 ms", listener.name,
                    listener.port.load(), ec.message());
        listener.accept_retry->expires_after(std::chrono::milliseconds(100));
        listener.accept_retry->async_wait(
            [server, &listener, generation](const boost::system::error_code& wait_ec) {
                if (!wait_ec && still_accepting(*server, listener, generation)) {
                    accept_next(server, listener, generation);
                }
            });
        return;
    }
    listener.accepted->inc();
    // The socket is accepted on the listener's own context and handed to the next io thread as a
    // bare descriptor (a RawSocket, closed if the hand-over never happens): no operation of one
    // context ever holds an object of another, which would make the contexts' destruction order
    // matter at shutdown. It joins no Asio reactor: its thread's Poller reports it.
    auto& target = server->runtime.next_io_context();
    boost::system::error_code release_ec;
    RawSocket raw = release_to_raw(socket, release_ec);
    if (release_ec) {
        listener.accept_errors->inc();
        log()->warn("listener {}: cannot hand over an accepted socket: {}", listener.name,
                    release_ec.message());
    } else {
        asio::post(target, [server, &listener, raw = std::move(raw)]() mutable {
            start_session(server, listener, std::move(raw));
        });
    }
    accept_next(std::move(server), listener, generation);
}

void accept_next(std::shared_ptr<ServerState> server, ListenerState& listener,
                 std::uint64_t generation) {
    listener.acceptor->async_accept(
        [server, &listener, generation](const boost::system::error_code& ec,
                                        tcp::socket socket) mutable {
            on_accept(std::move(server), listener, generation, ec, std::move(socket));
        });
}

// Closes the listener's acceptor. Runs on: the listener's io thread.
void close_acceptor(ListenerState& listener) {
    listener.accepting = false;
    boost::system::error_code ignored;
    if (listener.acceptor) {
        listener.acceptor->close(ignored);
    }
    if (listener.accept_retry) {
        listener.accept_retry->cancel();
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

WsRouteState::WsRouteState(std::string listener, std::string path, WsRoute route,
                           core::MetricsRegistry& metrics, std::shared_ptr<Owner> owner)
    : listener_(std::move(listener)),
      path_(std::move(path)),
      frontend_(std::move(route.frontend)),
      accept_(std::move(route.accept)),
      accept_async_(std::move(route.accept_async)),
      subprotocols_(std::move(route.subprotocols)),
      listen_only_(route.listen_only),
      owner_(std::move(owner)),
      registry_(metrics),
      settings_(std::move(route.settings)) {
    const core::Labels labels{{"route", path_}};
    metrics_.open =
        &metrics.gauge("hearth_ws_connections_open", "Open WebSocket connections.", labels);
    metrics_.accepted = &metrics.counter("hearth_ws_connections_total",
                                         "WebSocket connections accepted (upgraded).", labels);
    metrics_.messages_in =
        &metrics.counter("hearth_ws_messages_in_total", "WebSocket messages received.", labels);
    metrics_.messages_out = &metrics.counter("hearth_ws_messages_out_total",
                                             "WebSocket messages queued for sending.", labels);
    metrics_.bytes_in = &metrics.counter("hearth_ws_bytes_in_total",
                                         "WebSocket bytes received (on the wire).", labels);
    metrics_.bytes_out = &metrics.counter("hearth_ws_bytes_out_total",
                                          "WebSocket bytes written (on the wire).", labels);
    metrics_.dropped =
        &metrics.counter("hearth_ws_messages_dropped_total",
                         "Outgoing messages dropped at a connection's outbox bound.", labels);
}

std::shared_ptr<const WsRouteSettings> WsRouteState::settings() const {
    std::lock_guard lock(mutex_);
    return settings_;
}

void WsRouteState::set_settings(std::shared_ptr<const WsRouteSettings> s) {
    {
        std::lock_guard lock(mutex_);
        settings_ = std::move(s);
    }
    generation_.fetch_add(1, std::memory_order_relaxed);
}

bool PeerCounter::add(const std::string& ip, std::size_t limit) {
    std::lock_guard lock(mutex_);
    auto& n = open_[ip];
    if (limit != 0 && n >= limit) {
        if (n == 0) {
            open_.erase(ip);
        }
        return false;
    }
    ++n;
    return true;
}

void PeerCounter::remove(const std::string& ip) {
    std::lock_guard lock(mutex_);
    auto it = open_.find(ip);
    if (it != open_.end() && --it->second == 0) {
        open_.erase(it);
    }
}

std::string address_key(const asio::ip::address& address) {
    if (address.is_v6()) {
        const auto v6 = address.to_v6();
        if (v6.is_v4_mapped()) {
            return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
        }
        auto bytes = v6.to_bytes();
        std::fill(bytes.begin() + 8, bytes.end(), std::uint8_t{0});
        return asio::ip::address_v6(bytes).to_string() + "/64";
    }
    return address.to_string();
}

void WsRouteState::count_disconnect(std::string_view reason) {
    registry_
        .counter("hearth_ws_disconnects_total",
                 "WebSocket connections closed by the server, by reason.",
                 {{"route", path_}, {"reason", std::string(reason)}})
        .inc();
}

const HttpRoute* RouteTable::find_http(std::string_view method, std::string_view path,
                                       bool& method_mismatch) const {
    method_mismatch = false;
    const HttpRoute* best = nullptr;
    for (const auto& route : http) {
        const HttpRoute& r = *route;
        const bool path_ok =
            r.match == PathMatch::kExact ? r.path == path : path.starts_with(r.path);
        if (!path_ok) {
            continue;
        }
        if (!r.method.empty() && r.method != method) {
            method_mismatch = true;
            continue;
        }
        // Exact beats prefix; among prefixes the longest wins.
        if (best == nullptr || (r.match == PathMatch::kExact && best->match != PathMatch::kExact) ||
            (r.match == best->match && r.path.size() > best->path.size())) {
            best = &r;
        }
    }
    if (best != nullptr) {
        method_mismatch = false;
    }
    return best;
}

std::shared_ptr<WsRouteState> RouteTable::find_ws(std::string_view path) const {
    auto it = ws.find(path);
    return it == ws.end() ? nullptr : it->second;
}

ServerState::ServerState(core::Runtime& rt, core::MetricsRegistry& m, core::EventBus& e,
                         HttpLimits l)
    : runtime(rt), metrics(m), events(e), limits_(std::make_shared<const HttpLimits>(l)) {
    for (std::size_t i = 0; i < rt.io_thread_count(); ++i) {
        threads.push_back(std::make_unique<ThreadState>());
        threads.back()->io = &rt.io_context(i);
        threads.back()->deadlines = std::make_unique<Deadlines>(rt.io_context(i));
        threads.back()->poller = std::make_unique<Poller>(rt.io_context(i));
    }
}

std::shared_ptr<const HttpLimits> ServerState::http_limits() const {
    std::lock_guard lock(limits_mutex_);
    return limits_;
}

void ServerState::set_http_limits(HttpLimits limits) {
    std::lock_guard lock(limits_mutex_);
    limits_ = std::make_shared<const HttpLimits>(limits);
}

void ThreadState::defer_flush(std::shared_ptr<void> owner, void (*run)(void*)) {
    flushes_.push_back(DeferredFlush{std::move(owner), run});
    if (!flushes_posted_) {
        flushes_posted_ = true;
        asio::post(*io, [this] { run_flushes(); });
    }
}

void ThreadState::drop_deferred_flushes() noexcept {
    flushes_.clear();
    running_.clear();
    flushes_posted_ = false;
}

void ThreadState::run_flushes() {
    flushes_posted_ = false;
    running_.swap(flushes_);
    // A flush may defer another (its completion queued more): that one goes to flushes_, for the
    // next post.
    for (auto& f : running_) {
        f.run(f.owner.get());
    }
    running_.clear();
    if (running_.capacity() > 4096) {
        std::vector<DeferredFlush>().swap(running_);  // a burst is over
    }
}

ThreadState& ServerState::this_thread_state() {
    const int index = core::Runtime::current_io_thread();
    if (index < 0 || static_cast<std::size_t>(index) >= threads.size()) {
        throw std::logic_error("net: session code running off its io thread");
    }
    return *threads[static_cast<std::size_t>(index)];
}

void ServerState::session_opened(std::uint64_t id, const std::shared_ptr<Session>& session) {
    this_thread_state().sessions.emplace(id, session);
    open_.fetch_add(1);
}

void ServerState::session_closed(std::uint64_t id) {
    if (this_thread_state().sessions.erase(id) == 0) {
        return;
    }
    if (open_.fetch_sub(1) == 1) {
        std::lock_guard lock(drain_mutex_);
        drained_.notify_all();
    }
}

bool ServerState::wait_drained(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(drain_mutex_);
    return drained_.wait_until(lock, deadline, [this] { return open_.load() == 0; });
}

void ServerState::owner_closed(Owner& owner) {
    if (owner.open.fetch_sub(1) == 1) {
        std::lock_guard lock(owners_mutex_);
        owners_drained_.notify_all();
    }
}

bool ServerState::wait_owner_drained(const Owner& owner,
                                     std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(owners_mutex_);
    return owners_drained_.wait_until(lock, deadline, [&owner] { return owner.open.load() == 0; });
}

core::Counter& ServerState::http_requests(const std::string& listener, std::string_view route,
                                          int status) {
    return metrics.counter("hearth_http_requests_total",
                           "HTTP requests answered, by listener, route and status.",
                           {{"listener", listener},
                            {"route", std::string(route)},
                            {"status", std::to_string(status)}});
}

core::Counter& ServerState::http_refused(const std::string& listener, std::string_view reason) {
    return metrics.counter("hearth_http_connections_refused_total",
                           "HTTP connections closed at once by a connection limit, by reason.",
                           {{"listener", listener}, {"reason", std::string(reason)}});
}

core::Counter& ServerState::http_timeouts(const std::string& listener, std::string_view phase) {
    return metrics.counter("hearth_http_timeouts_total",
                           "HTTP connections closed because a request's head or body did not "
                           "arrive in time, by phase.",
                           {{"listener", listener}, {"phase", std::string(phase)}});
}

// ---------------------------------------------------------------------------------------------
// Declarations and binding. Every function here runs on a control thread with
// ServerState::control held.

namespace {

using Clock = std::chrono::steady_clock;

ListenerState& find_listener(const ServerState& s, const std::string& key) {
    for (const auto& l : s.listeners) {
        if (l->name == key) {
            return *l;
        }
    }
    throw std::logic_error("unknown listener " + key);
}

std::string describe(const ListenerState& l) {
    return l.name + " (" + l.spec.listen + ")";
}

// Nobody declares it, it has no route and it is not bound: a new declaration may give it a new
// address (a module enabled again with another port).
bool is_free(const ListenerState& l) {
    return !l.bound && l.claims.empty() && l.routes()->empty();
}

bool has_routes_of(const RouteTable& t, const Owner* owner) {
    if (t.stream && t.stream->owner.get() == owner) {
        return true;
    }
    return std::any_of(t.http.begin(), t.http.end(),
                       [owner](const auto& r) { return r->owner.get() == owner; }) ||
           std::any_of(t.ws.begin(), t.ws.end(),
                       [owner](const auto& r) { return r.second->owner_ptr().get() == owner; });
}

std::string declare_listener(ServerState& s, const ListenerSpec& spec,
                             const std::shared_ptr<Owner>& owner) {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(spec.listen, host, port)) {
        throw std::runtime_error("listener " + spec.name + ": invalid address \"" + spec.listen +
                                 "\" (expected host:port)");
    }
    // Port 0 asks for a fresh port: such listeners are never shared.
    if (port != 0) {
        for (auto& l : s.listeners) {
            if (l->spec.listen != spec.listen) {
                continue;
            }
            if (is_free(*l)) {
                l->spec.tls_cert_file = spec.tls_cert_file;
                l->spec.tls_key_file = spec.tls_key_file;
            } else if (l->spec.tls_cert_file != spec.tls_cert_file ||
                       l->spec.tls_key_file != spec.tls_key_file) {
                throw std::runtime_error("port " + std::to_string(port) + " is claimed by " +
                                         l->name + " and " + spec.name +
                                         " with different TLS settings");
            }
            l->claims.push_back({spec.name, owner});
            return l->name;
        }
    }
    for (auto& l : s.listeners) {
        // Its own name, or a released listener that had been declared under it.
        if (l->name != spec.name && !(is_free(*l) && l->spec.name == spec.name)) {
            continue;
        }
        if (!is_free(*l)) {
            // The same name and spec is the same listener, port 0 included: a module that serves
            // routes on another's port (the log routes on HunterPie's) joins it.
            if (l->spec == spec) {
                l->claims.push_back({spec.name, owner});
                return l->name;
            }
            // Still bound elsewhere for another module's routes (HunterPie moved to a new port
            // while the log routes hold the old one until the logs module restarts): a listener
            // of its own, under a key of its own.
            continue;
        }
        // Released earlier: the same name (and so the same metrics) on the new address.
        l->spec = spec;
        l->claims.push_back({spec.name, owner});
        return l->name;
    }
    std::string key = spec.name;
    for (int n = 2; std::any_of(s.listeners.begin(), s.listeners.end(),
                                [&](const auto& other) { return other->name == key; });
         ++n) {
        key = spec.name + "-" + std::to_string(n);
    }
    auto l = std::make_unique<ListenerState>(key);
    l->spec = spec;
    l->claims.push_back({spec.name, owner});
    // Listeners are spread over the io threads; each accepted socket goes to the next thread.
    l->io = &s.runtime.io_context(s.listeners.size() % s.runtime.io_thread_count());
    const core::Labels labels{{"listener", key}};
    auto& m = s.metrics;
    l->open_http =
        &m.gauge("hearth_net_connections_open", "Open connections, by listener and kind.",
                 {{"listener", key}, {"kind", "http"}});
    l->open_ws = &m.gauge("hearth_net_connections_open", "Open connections, by listener and kind.",
                          {{"listener", key}, {"kind", "websocket"}});
    l->accepted =
        &m.counter("hearth_net_connections_total", "Connections accepted, by listener.", labels);
    l->accept_errors =
        &m.counter("hearth_net_accept_errors_total", "Failed accepts, by listener.", labels);
    s.listeners.push_back(std::move(l));
    return key;
}

void refuse_on_stream_listener(const ListenerState& l, const RouteTable& t, std::string_view what) {
    if (t.stream) {
        throw std::runtime_error("listener " + describe(l) + " is a raw TCP listener: cannot add " +
                                 std::string(what));
    }
}

void add_http(ServerState& s, const std::string& listener, std::string method, std::string path,
              HttpHandler handler, PathMatch match, std::shared_ptr<Owner> owner) {
    auto& l = find_listener(s, listener);
    const auto table = l.routes();
    refuse_on_stream_listener(l, *table, "the HTTP route " + path);
    for (const auto& r : table->http) {
        const bool same_method = r->method.empty() || method.empty() || r->method == method;
        if (same_method && r->path == path && r->match == match) {
            throw std::runtime_error("listener " + describe(l) + ": route " +
                                     (method.empty() ? "*" : method) + " " + path +
                                     " registered twice");
        }
    }
    auto next = std::make_shared<RouteTable>(*table);
    next->http.push_back(std::make_shared<const HttpRoute>(HttpRoute{
        std::move(method), std::move(path), match, std::move(handler), std::move(owner)}));
    l.set_routes(std::move(next));
}

void add_ws(ServerState& s, const std::string& listener, std::string path, WsRoute route,
            std::shared_ptr<Owner> owner) {
    auto& l = find_listener(s, listener);
    const auto table = l.routes();
    refuse_on_stream_listener(l, *table, "the WebSocket route " + path);
    if (table->ws.contains(path)) {
        throw std::runtime_error("listener " + describe(l) + ": WebSocket route " + path +
                                 " registered twice");
    }
    auto next = std::make_shared<RouteTable>(*table);
    auto state = std::make_shared<WsRouteState>(listener, path, std::move(route), s.metrics,
                                                std::move(owner));
    next->ws.emplace(std::move(path), std::move(state));
    l.set_routes(std::move(next));
}

std::string add_stream(ServerState& s, const ListenerSpec& spec, StreamRoute route,
                       const std::shared_ptr<Owner>& owner) {
    if (!spec.tls_cert_file.empty() || !spec.tls_key_file.empty()) {
        throw std::runtime_error("listener " + spec.name + ": TLS is not offered on raw TCP");
    }
    if (!route.make_handler) {
        throw std::logic_error("listener " + spec.name + ": a stream route needs make_handler");
    }
    const auto key = declare_listener(s, spec, owner);
    auto& l = find_listener(s, key);
    const auto table = l.routes();
    // A shared port would have to tell HTTP from raw bytes: refuse, naming both claimants.
    if (table->stream || l.claims.size() > 1 || !table->http.empty() || !table->ws.empty()) {
        l.claims.pop_back();  // this declaration
        throw std::runtime_error("port " + spec.listen + " is claimed by " +
                                 (l.claims.empty() ? l.name : l.claims.front().spec_name) +
                                 " and by the raw TCP listener " + spec.name);
    }
    auto next = std::make_shared<RouteTable>(*table);
    next->stream = std::make_shared<StreamListenerState>(key, std::move(route), s.metrics, owner);
    l.set_routes(std::move(next));
    return key;
}

// `owner` null: any route (the core's own call).
void update_ws(ServerState& s, const std::string& listener, const std::string& path,
               std::shared_ptr<const WsRouteSettings> settings, const Owner* owner) {
    auto route = find_listener(s, listener).routes()->find_ws(path);
    if (!route || (owner != nullptr && &route->owner() != owner)) {
        throw std::logic_error("unknown WebSocket route " + path +
                               (owner != nullptr ? " for " + owner->name : ""));
    }
    route->set_settings(std::move(settings));
}

// Binds a listener that is not bound and starts accepting on its io thread. Throws naming the
// listener and address when it cannot.
void bind_listener(const std::shared_ptr<ServerState>& state, ListenerState& l) {
    std::string host;
    std::uint16_t port = 0;
    (void)core::parse_host_port(l.spec.listen, host, port);
    std::shared_ptr<asio::ssl::context> tls;
    if (l.is_tls()) {
        tls = make_tls_context(l.spec);
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) {
        throw std::runtime_error("listener " + describe(l) + ": invalid address " + host + ": " +
                                 ec.message());
    }
    auto acceptor = std::make_unique<tcp::acceptor>(*l.io);
    tcp::endpoint endpoint(address, port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor->bind(endpoint, ec);
    }
    if (!ec) {
        acceptor->listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        throw std::runtime_error("cannot listen on " + l.spec.listen + " for " + l.name + ": " +
                                 ec.message());
    }
    {
        std::lock_guard lock(l.tls_mutex);
        l.tls = std::move(tls);
    }
    l.port.store(acceptor->local_endpoint().port());
    l.bound = true;
    l.serving.store(true);
    log()->info("listening on {}:{} for {}{}", host, l.port.load(), l.name,
                l.is_tls() ? " (TLS)" : "");
    // The acceptor is handed to its io thread, which alone touches it from now on; a release
    // posted later runs after this.
    asio::post(*l.io,
               [state, &l, acceptor = std::move(acceptor), accept = state->accepting]() mutable {
                   if (state->shutting_down.load()) {
                       return;  // the acceptor closes here
                   }
                   l.acceptor = std::move(acceptor);  // the one closed by an earlier release goes
                   if (!l.accept_retry) {
                       l.accept_retry = std::make_unique<asio::steady_timer>(*l.io);
                   }
                   if (accept) {
                       l.accepting = true;
                       accept_next(state, l, ++l.accept_generation);
                   }
               });
}

// Starts the accept loop of a bound listener that has none, on its io thread (after the post
// that handed it its acceptor).
void start_accepting(const std::shared_ptr<ServerState>& state, ListenerState& l) {
    asio::post(*l.io, [state, &l] {
        if (state->shutting_down.load() || !l.acceptor || l.accepting) {
            return;
        }
        l.accepting = true;
        accept_next(state, l, ++l.accept_generation);
    });
}

// Stops accepting: the acceptor is closed on its io thread, so that the port is free (and a
// connection to it refused) once every io thread has run what was posted before.
void release_listener(ServerState& s, ListenerState& l) {
    log()->info("listener {} on port {} released: no routes left", l.name, l.port.load());
    l.bound = false;
    l.serving.store(false);
    l.port.store(0);
    if (!s.destroyed) {
        asio::post(*l.io, [&l] { close_acceptor(l); });
    }
}

// Runs `task(thread index)` on every io thread; waits until all ran or `deadline` passed (true:
// all ran). What an io thread ran before the task is then complete.
bool run_on_every_io_thread(ServerState& s, const std::function<void(std::size_t)>& task,
                            Clock::time_point deadline) {
    struct Latch {
        std::mutex mutex;
        std::condition_variable done;
        std::size_t waiting = 0;
    };
    auto latch = std::make_shared<Latch>();
    latch->waiting = s.threads.size();
    for (std::size_t i = 0; i < s.threads.size(); ++i) {
        asio::post(s.runtime.io_context(i), [latch, task, i] {
            task(i);
            std::lock_guard lock(latch->mutex);
            if (--latch->waiting == 0) {
                latch->done.notify_all();
            }
        });
    }
    std::unique_lock lock(latch->mutex);
    return latch->done.wait_until(lock, deadline, [&] { return latch->waiting == 0; });
}

// Live sessions of one io thread, copied first: a session may end (and unregister) while it is
// told to close.
std::vector<std::shared_ptr<Session>> sessions_of(ServerState& s, std::size_t thread) {
    std::vector<std::shared_ptr<Session>> out;
    for (auto& [id, weak] : s.threads[thread]->sessions) {
        if (auto session = weak.lock()) {
            out.push_back(std::move(session));
        }
    }
    return out;
}

void open_owner(const std::shared_ptr<ServerState>& state, const Owner* owner) {
    std::lock_guard lock(state->control);
    if (!state->started || state->shutting_down.load()) {
        return;  // Server::start binds what is declared by then
    }
    for (auto& l : state->listeners) {
        const bool mine = std::any_of(l->claims.begin(), l->claims.end(),
                                      [owner](const auto& c) { return c.owner.get() == owner; }) ||
                          has_routes_of(*l->routes(), owner);
        if (mine && !l->bound) {
            bind_listener(state, *l);
        }
    }
}

bool withdraw_owner(const std::shared_ptr<ServerState>& state, const std::shared_ptr<Owner>& owner,
                    const CloseNotice& notice, Clock::time_point deadline) {
    if (core::Runtime::current_io_thread() >= 0) {
        // It waits for io threads: on one of them it would wait for itself.
        throw std::logic_error(owner->name + ": routes withdrawn on an io thread");
    }
    auto& s = *state;
    std::vector<const ListenerState*> released;
    {
        std::lock_guard lock(s.control);
        for (auto& l : s.listeners) {
            bool touched =
                std::erase_if(l->claims, [&owner](const auto& c) { return c.owner == owner; }) > 0;
            const auto table = l->routes();
            if (has_routes_of(*table, owner.get())) {
                touched = true;
                auto next = std::make_shared<RouteTable>();
                for (const auto& r : table->http) {
                    if (r->owner != owner) {
                        next->http.push_back(r);
                    }
                }
                for (const auto& [path, route] : table->ws) {
                    if (route->owner_ptr() == owner) {
                        route->set_withdrawn();
                    } else {
                        next->ws.emplace(path, route);
                    }
                }
                if (table->stream && table->stream->owner == owner) {
                    table->stream->withdrawn.store(true);
                } else {
                    next->stream = table->stream;
                }
                l->set_routes(std::move(next));
            }
            if (touched && l->bound && l->routes()->empty()) {
                release_listener(s, *l);
                released.push_back(l.get());
            }
        }
        if (s.destroyed || !s.started) {
            return owner->open.load() == 0;  // no io thread runs a session any more, or ever did
        }
    }
    // Every io thread closes the owner's connections. Once each has run this, no session of the
    // owner can appear any more: an upgrade or accept in flight checks `withdrawn` (or `serving`)
    // on its io thread before it registers, and the flags were set before this was posted.
    // After begin_shutdown every session has been told to close already (and the io threads may
    // have stopped): only the wait is left.
    const bool shutting_down = s.shutting_down.load();
    // The tasks hold what they use: one may still run after a deadline made this return.
    const bool all_told =
        shutting_down ||
        run_on_every_io_thread(
            s,
            [state, owner, notice, released](std::size_t i) {
                for (auto& session : sessions_of(*state, i)) {
                    if (session->owner() == owner.get()) {
                        session->withdraw(notice);
                    } else if (const auto* l = session->http_listener();
                               l != nullptr &&
                               std::find(released.begin(), released.end(), l) != released.end()) {
                        session->shutdown();  // idle ones close now, busy ones after their answer
                    }
                }
            },
            deadline);
    if (all_told && s.wait_owner_drained(*owner, deadline)) {
        return true;
    }
    log()->warn("{}: {} connection(s) still open at the deadline; cutting them", owner->name,
                owner->open.load());
    // Waits for the cut (an io thread never blocks, so it runs at once): the connections' handlers
    // have then been told, before the module goes on to free what they use.
    (void)run_on_every_io_thread(
        s,
        [state, owner](std::size_t i) {
            for (auto& session : sessions_of(*state, i)) {
                if (session->owner() == owner.get()) {
                    session->cut();
                }
            }
        },
        shutting_down ? deadline : Clock::now() + std::chrono::seconds(5));
    return false;
}

/// A module's share of the network (include/hearth/http.hpp). Its routes and listeners are
/// tagged with its own Owner, whose count of open connections the withdraw waits on.
class ModuleRoutesImpl final : public ModuleRoutes {
public:
    ModuleRoutesImpl(std::shared_ptr<ServerState> state, std::string module)
        : state_(std::move(state)), owner_(std::make_shared<Owner>(std::move(module))) {}

    ~ModuleRoutesImpl() override {
        if (!declared_ && owner_->open.load() == 0) {
            return;
        }
        try {
            (void)withdraw(CloseNotice{1001, owner_->name + " stopped"},
                           Clock::now() + std::chrono::seconds(2));
        } catch (const std::exception& e) {
            log()->error("{}: withdrawing its routes failed: {}", owner_->name, e.what());
        }
    }
    ModuleRoutesImpl(const ModuleRoutesImpl&) = delete;
    ModuleRoutesImpl& operator=(const ModuleRoutesImpl&) = delete;

    std::size_t open_connections() const override { return owner_->open.load(); }

    std::string listener(const ListenerSpec& spec) override {
        std::lock_guard lock(state_->control);
        declared_ = true;
        return declare_listener(*state_, spec, owner_);
    }
    void add_http_route(const std::string& listener, std::string method, std::string path,
                        HttpHandler handler, PathMatch match) override {
        std::lock_guard lock(state_->control);
        declared_ = true;
        add_http(*state_, listener, std::move(method), std::move(path), std::move(handler), match,
                 owner_);
    }
    void add_ws_route(const std::string& listener, std::string path, WsRoute route) override {
        std::lock_guard lock(state_->control);
        declared_ = true;
        add_ws(*state_, listener, std::move(path), std::move(route), owner_);
    }
    std::string add_stream_listener(const ListenerSpec& spec, StreamRoute route) override {
        std::lock_guard lock(state_->control);
        declared_ = true;
        return add_stream(*state_, spec, std::move(route), owner_);
    }

    void open() override { open_owner(state_, owner_.get()); }

    bool withdraw(const CloseNotice& notice, Clock::time_point deadline) override {
        declared_ = false;
        return withdraw_owner(state_, owner_, notice, deadline);
    }

    void update_ws_settings(const std::string& listener, const std::string& path,
                            std::shared_ptr<const WsRouteSettings> settings) override {
        std::lock_guard lock(state_->control);
        update_ws(*state_, listener, path, std::move(settings), owner_.get());
    }

    std::uint16_t bound_port(const std::string& listener) const override {
        std::lock_guard lock(state_->control);
        return find_listener(*state_, listener).port.load();
    }

private:
    std::shared_ptr<ServerState> state_;
    std::shared_ptr<Owner> owner_;
    bool declared_ = false;  // something was declared since the last withdraw
};

}  // namespace

// ---------------------------------------------------------------------------------------------

Server::Server(core::Runtime& runtime, core::MetricsRegistry& metrics, core::EventBus& events,
               HttpLimits limits)
    : state_(std::make_shared<ServerState>(runtime, metrics, events, limits)) {}

Server::~Server() {
    // Sessions may keep the state alive until the runtime destroys their pending handlers, which
    // happens context by context; the listeners' Asio objects must go now, while every io_context
    // still exists. The runtime's threads have stopped by now (ServerApp stops them first).
    std::lock_guard lock(state_->control);
    state_->destroyed = true;  // a module's routes withdrawn later post nothing
    for (auto& l : state_->listeners) {
        l->accept_retry.reset();
        l->acceptor.reset();
    }
    // Scheduled, polled and flush-deferred connections hold the state (a cycle): dropped here,
    // with the timers.
    for (auto& t : state_->threads) {
        t->drop_deferred_flushes();
        t->poller->clear();
        t->poller.reset();
        t->deadlines->clear();
        t->deadlines.reset();
    }
}

std::unique_ptr<ModuleRoutes> Server::routes_for(std::string module) {
    return std::make_unique<ModuleRoutesImpl>(state_, std::move(module));
}

std::string Server::listener(const ListenerSpec& spec) {
    std::lock_guard lock(state_->control);
    return declare_listener(*state_, spec, state_->core_owner);
}

void Server::add_http_route(const std::string& listener, std::string method, std::string path,
                            HttpHandler handler, PathMatch match) {
    std::lock_guard lock(state_->control);
    add_http(*state_, listener, std::move(method), std::move(path), std::move(handler), match,
             state_->core_owner);
}

void Server::add_ws_route(const std::string& listener, std::string path, WsRoute route) {
    std::lock_guard lock(state_->control);
    add_ws(*state_, listener, std::move(path), std::move(route), state_->core_owner);
}

std::string Server::add_stream_listener(const ListenerSpec& spec, StreamRoute route) {
    std::lock_guard lock(state_->control);
    return add_stream(*state_, spec, std::move(route), state_->core_owner);
}

void Server::update_ws_settings(const std::string& listener, const std::string& path,
                                std::shared_ptr<const WsRouteSettings> settings) {
    std::lock_guard lock(state_->control);
    update_ws(*state_, listener, path, std::move(settings), nullptr);
}

void Server::update_http_limits(HttpLimits limits) {
    state_->set_http_limits(limits);
}

void Server::reload_tls() {
    std::lock_guard lock(state_->control);
    for (auto& l : state_->listeners) {
        if (!l->is_tls() || !l->bound) {
            continue;
        }
        try {
            auto ctx = make_tls_context(l->spec);
            std::lock_guard tls_lock(l->tls_mutex);
            l->tls = std::move(ctx);
            log()->info("listener {}: TLS certificate reloaded", describe(*l));
        } catch (const std::exception& e) {
            log()->error("{}; keeping the previous certificate", e.what());
        }
    }
}

void Server::start(Accepting accepting) {
    std::lock_guard lock(state_->control);
    state_->started = true;
    state_->accepting = accepting == Accepting::kNow;
    for (auto& l : state_->listeners) {
        if (!l->bound) {
            bind_listener(state_, *l);
        }
    }
}

void Server::accept_connections() {
    std::lock_guard lock(state_->control);
    if (state_->accepting || state_->destroyed) {
        return;
    }
    state_->accepting = true;
    for (auto& l : state_->listeners) {
        if (l->bound) {
            start_accepting(state_, *l);
        }
    }
}

std::uint16_t Server::bound_port(const std::string& listener) const {
    std::lock_guard lock(state_->control);
    return find_listener(*state_, listener).port.load();
}

std::vector<std::string> Server::listeners() const {
    std::lock_guard lock(state_->control);
    std::vector<std::string> out;
    for (auto& l : state_->listeners) {
        out.push_back(l->name);
    }
    return out;
}

void Server::begin_shutdown() {
    if (state_->shutting_down.exchange(true)) {
        return;
    }
    {
        std::lock_guard lock(state_->control);
        if (state_->destroyed) {
            return;
        }
        for (auto& l : state_->listeners) {
            auto* listener = l.get();
            asio::post(*l->io, [listener] { close_acceptor(*listener); });
        }
    }
    for (std::size_t i = 0; i < state_->threads.size(); ++i) {
        asio::post(state_->runtime.io_context(i), [state = state_, i] {
            for (auto& s : sessions_of(*state, i)) {
                s->shutdown();
            }
        });
    }
}

bool Server::wait_drained(std::chrono::steady_clock::time_point deadline) {
    return state_->wait_drained(deadline);
}

std::size_t Server::open_connections() const {
    return state_->open_sessions();
}

void Server::list_connections(std::function<void(std::vector<ConnectionInfo>)> done) {
    // Each io thread describes its own sessions (their state is touched only there); the last
    // thread to answer hands the whole list over.
    struct Gather {
        std::mutex mutex;
        std::vector<ConnectionInfo> all;
        std::size_t waiting = 0;
        std::function<void(std::vector<ConnectionInfo>)> done;
    };
    auto gather = std::make_shared<Gather>();
    gather->waiting = state_->threads.size();
    gather->done = std::move(done);
    if (gather->waiting == 0) {
        gather->done({});
        return;
    }
    for (std::size_t i = 0; i < state_->threads.size(); ++i) {
        asio::post(state_->runtime.io_context(i), [state = state_, i, gather] {
            std::vector<ConnectionInfo> mine;
            for (auto& [id, weak] : state->threads[i]->sessions) {
                if (auto s = weak.lock()) {
                    if (auto info = s->describe()) {
                        mine.push_back(std::move(*info));
                    }
                }
            }
            bool last = false;
            {
                std::lock_guard lock(gather->mutex);
                std::move(mine.begin(), mine.end(), std::back_inserter(gather->all));
                last = --gather->waiting == 0;
            }
            if (last) {
                std::sort(gather->all.begin(), gather->all.end(),
                          [](const auto& a, const auto& b) { return a.id < b.id; });
                gather->done(std::move(gather->all));
            }
        });
    }
}

void Server::kick_connection(ConnectionId id, std::function<void(bool found)> done) {
    // The id does not say which thread owns the connection: every thread looks.
    struct Search {
        std::atomic<std::size_t> waiting{0};
        std::atomic<bool> found{false};
        std::function<void(bool)> done;
    };
    auto search = std::make_shared<Search>();
    search->waiting = state_->threads.size();
    search->done = std::move(done);
    if (search->waiting == 0) {
        search->done(false);
        return;
    }
    for (std::size_t i = 0; i < state_->threads.size(); ++i) {
        asio::post(state_->runtime.io_context(i), [state = state_, i, id, search] {
            auto& sessions = state->threads[i]->sessions;
            if (auto it = sessions.find(static_cast<std::uint64_t>(id)); it != sessions.end()) {
                auto s = it->second.lock();
                if (s && s->describe()) {  // a listed connection, not a plain HTTP session
                    search->found = true;
                    s->kick();
                }
            }
            if (search->waiting.fetch_sub(1) == 1) {
                search->done(search->found.load());
            }
        });
    }
}

}  // namespace hearth::net
