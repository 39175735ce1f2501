#include "net/server.hpp"
#include <algorithm>
#include <future>
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

void accept_next(std::shared_ptr<ServerState> server, ListenerState& listener);

// A descriptor in transit between threads; closed if the hand-over never happens (shutdown).
struct OwnedFd {
    explicit OwnedFd(int f) : fd(f) {}
    OwnedFd(OwnedFd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    OwnedFd& operator=(OwnedFd&&) = delete;
    ~OwnedFd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    int fd;
};

void on_accept(std::shared_ptr<ServerState> server, ListenerState& listener,
               const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || server->shutting_down.load()) {
        return;
    }
    if (ec) {
        listener.accept_errors->inc();
        // Out of file descriptors (or another transient error): back off instead of spinning, and
        // keep serving the connections already open.
        log()->warn("listener {} ({}): accept failed: {}; retrying in 100 ms", listener.spec.name,
                    listener.spec.listen, ec.message());
        listener.accept_retry->expires_after(std::chrono::milliseconds(100));
        listener.accept_retry->async_wait(
            [server, &listener](const boost::system::error_code& wait_ec) {
                if (!wait_ec) {
                    accept_next(server, listener);
                }
            });
        return;
    }
    listener.accepted->inc();
    // The socket is accepted on the listener's own context and handed to the next io thread as a
    // bare descriptor: no operation of one context ever holds an object of another, which would
    // make the contexts' destruction order matter at shutdown.
    auto& target = server->runtime.next_io_context();
    boost::system::error_code release_ec;
    const auto protocol = socket.local_endpoint(release_ec).protocol();
    const auto fd = release_ec ? -1 : socket.release(release_ec);
    if (release_ec || fd < 0) {
        listener.accept_errors->inc();
        log()->warn("listener {}: cannot hand over an accepted socket: {}", listener.spec.name,
                    release_ec.message());
    } else {
        asio::post(target, [server, &listener, &target, protocol, owned = OwnedFd(fd)]() mutable {
            boost::system::error_code assign_ec;
            tcp::socket s(target);
            s.assign(protocol, owned.fd, assign_ec);
            if (!assign_ec) {
                owned.fd = -1;  // the socket owns it now
                if (listener.stream) {
                    start_tcp_connection(server, listener, std::move(s));
                } else {
                    start_http_session(server, listener, std::move(s));
                }
            }
        });
    }
    accept_next(std::move(server), listener);
}

void accept_next(std::shared_ptr<ServerState> server, ListenerState& listener) {
    listener.acceptor->async_accept(
        [server, &listener](const boost::system::error_code& ec, tcp::socket socket) mutable {
            on_accept(std::move(server), listener, ec, std::move(socket));
        });
}

}  // namespace

// ---------------------------------------------------------------------------------------------

WsRouteState::WsRouteState(std::string listener, std::string path, WsRoute route,
                           core::MetricsRegistry& metrics)
    : listener_(std::move(listener)),
      path_(std::move(path)),
      frontend_(std::move(route.frontend)),
      accept_(std::move(route.accept)),
      accept_async_(std::move(route.accept_async)),
      subprotocols_(std::move(route.subprotocols)),
      listen_only_(route.listen_only),
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

const HttpRoute* ListenerState::find_http(std::string_view method, std::string_view path,
                                          bool& method_mismatch) const {
    method_mismatch = false;
    const HttpRoute* best = nullptr;
    for (const auto& r : http_routes) {
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

std::shared_ptr<WsRouteState> ListenerState::find_ws(std::string_view path) const {
    auto it = ws_routes.find(path);
    return it == ws_routes.end() ? nullptr : it->second;
}

ServerState::ServerState(core::Runtime& rt, core::MetricsRegistry& m, core::EventBus& e,
                         HttpLimits l)
    : runtime(rt), metrics(m), events(e), limits_(std::make_shared<const HttpLimits>(l)) {
    for (std::size_t i = 0; i < rt.io_thread_count(); ++i) {
        threads.push_back(std::make_unique<ThreadState>());
        threads.back()->io = &rt.io_context(i);
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

Server::Server(core::Runtime& runtime, core::MetricsRegistry& metrics, core::EventBus& events,
               HttpLimits limits)
    : state_(std::make_shared<ServerState>(runtime, metrics, events, limits)) {}

Server::~Server() {
    // Sessions may keep the state alive until the runtime destroys their pending handlers, which
    // happens context by context; the listeners' Asio objects must go now, while every io_context
    // still exists. The runtime's threads have stopped by now (ServerApp stops them first).
    for (auto& l : state_->listeners) {
        l->accept_retry.reset();
        l->acceptor.reset();
    }
}

std::string Server::listener(const ListenerSpec& spec) {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(spec.listen, host, port)) {
        throw std::runtime_error("listener " + spec.name + ": invalid address \"" + spec.listen +
                                 "\" (expected host:port)");
    }
    // Port 0 asks for a fresh port: such listeners are never shared.
    if (port != 0) {
        for (auto& l : state_->listeners) {
            if (l->spec.listen != spec.listen) {
                continue;
            }
            if (l->spec.tls_cert_file != spec.tls_cert_file ||
                l->spec.tls_key_file != spec.tls_key_file) {
                throw std::runtime_error("port " + std::to_string(port) + " is claimed by " +
                                         l->spec.name + " and " + spec.name +
                                         " with different TLS settings");
            }
            l->owners.push_back(spec.name);
            return l->spec.name;
        }
    }
    for (auto& l : state_->listeners) {
        if (l->spec.name == spec.name) {
            throw std::runtime_error("listener name " + spec.name + " declared twice");
        }
    }
    auto l = std::make_unique<ListenerState>();
    l->spec = spec;
    l->owners.push_back(spec.name);
    const core::Labels labels{{"listener", spec.name}};
    auto& m = state_->metrics;
    l->open_http =
        &m.gauge("hearth_net_connections_open", "Open connections, by listener and kind.",
                 {{"listener", spec.name}, {"kind", "http"}});
    l->open_ws = &m.gauge("hearth_net_connections_open", "Open connections, by listener and kind.",
                          {{"listener", spec.name}, {"kind", "websocket"}});
    l->accepted =
        &m.counter("hearth_net_connections_total", "Connections accepted, by listener.", labels);
    l->accept_errors =
        &m.counter("hearth_net_accept_errors_total", "Failed accepts, by listener.", labels);
    state_->listeners.push_back(std::move(l));
    return spec.name;
}

namespace {
ListenerState& find_listener(ServerState& s, const std::string& key) {
    for (auto& l : s.listeners) {
        if (l->spec.name == key) {
            return *l;
        }
    }
    throw std::logic_error("unknown listener " + key);
}

std::string describe(const ListenerState& l) {
    return l.spec.name + " (" + l.spec.listen + ")";
}

void refuse_on_stream_listener(const ListenerState& l, std::string_view what) {
    if (l.stream) {
        throw std::runtime_error("listener " + describe(l) + " is a raw TCP listener: cannot add " +
                                 std::string(what));
    }
}
}  // namespace

void Server::add_http_route(const std::string& listener, std::string method, std::string path,
                            HttpHandler handler, PathMatch match) {
    auto& l = find_listener(*state_, listener);
    refuse_on_stream_listener(l, "the HTTP route " + path);
    for (const auto& r : l.http_routes) {
        const bool same_method = r.method.empty() || method.empty() || r.method == method;
        if (same_method && r.path == path && r.match == match) {
            throw std::runtime_error("listener " + describe(l) + ": route " +
                                     (method.empty() ? "*" : method) + " " + path +
                                     " registered twice");
        }
    }
    l.http_routes.push_back(
        HttpRoute{std::move(method), std::move(path), match, std::move(handler)});
}

void Server::add_ws_route(const std::string& listener, std::string path, WsRoute route) {
    auto& l = find_listener(*state_, listener);
    refuse_on_stream_listener(l, "the WebSocket route " + path);
    if (l.ws_routes.contains(path)) {
        throw std::runtime_error("listener " + describe(l) + ": WebSocket route " + path +
                                 " registered twice");
    }
    auto state = std::make_shared<WsRouteState>(listener, path, std::move(route), state_->metrics);
    l.ws_routes.emplace(std::move(path), std::move(state));
}

std::string Server::add_stream_listener(const ListenerSpec& spec, StreamRoute route) {
    if (!spec.tls_cert_file.empty() || !spec.tls_key_file.empty()) {
        throw std::runtime_error("listener " + spec.name + ": TLS is not offered on raw TCP");
    }
    if (!route.make_handler) {
        throw std::logic_error("listener " + spec.name + ": a stream route needs make_handler");
    }
    const auto key = listener(spec);
    auto& l = find_listener(*state_, key);
    // A shared port would have to tell HTTP from raw bytes: refuse, naming both claimants.
    if (l.stream || l.owners.size() > 1 || !l.http_routes.empty() || !l.ws_routes.empty()) {
        throw std::runtime_error("port " + spec.listen + " is claimed by " + l.owners.front() +
                                 " and by the raw TCP listener " + spec.name);
    }
    l.stream = std::make_shared<StreamListenerState>(key, std::move(route), state_->metrics);
    return key;
}

void Server::update_ws_settings(const std::string& listener, const std::string& path,
                                std::shared_ptr<const WsRouteSettings> settings) {
    auto route = find_listener(*state_, listener).find_ws(path);
    if (!route) {
        throw std::logic_error("unknown WebSocket route " + path);
    }
    route->set_settings(std::move(settings));
}

void Server::update_http_limits(HttpLimits limits) {
    state_->set_http_limits(limits);
}

void Server::reload_tls() {
    for (auto& l : state_->listeners) {
        if (!l->is_tls()) {
            continue;
        }
        try {
            auto ctx = make_tls_context(l->spec);
            std::lock_guard lock(l->tls_mutex);
            l->tls = std::move(ctx);
            log()->info("listener {}: TLS certificate reloaded", describe(*l));
        } catch (const std::exception& e) {
            log()->error("{}; keeping the previous certificate", e.what());
        }
    }
}

void Server::start() {
    auto& s = *state_;
    for (auto& l : s.listeners) {
        std::string host;
        std::uint16_t port = 0;
        (void)core::parse_host_port(l->spec.listen, host, port);
        if (l->is_tls()) {
            l->tls = make_tls_context(l->spec);
        }
        boost::system::error_code ec;
        auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
        if (ec) {
            throw std::runtime_error("listener " + describe(*l) + ": invalid address " + host +
                                     ": " + ec.message());
        }
        // Listeners are spread over the io threads; each accepted socket goes to the next thread.
        auto& io = s.runtime.io_context(static_cast<std::size_t>(&l - s.listeners.data()) %
                                        s.runtime.io_thread_count());
        auto acceptor = std::make_unique<tcp::acceptor>(io);
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
            throw std::runtime_error("cannot listen on " + l->spec.listen + " for " + l->spec.name +
                                     ": " + ec.message());
        }
        l->port = acceptor->local_endpoint().port();
        l->acceptor = std::move(acceptor);
        l->accept_retry = std::make_unique<asio::steady_timer>(io);
        log()->info("listening on {}:{} for {}{}", host, l->port, l->spec.name,
                    l->is_tls() ? " (TLS)" : "");
    }
    for (auto& l : s.listeners) {
        auto* listener = l.get();
        asio::post(l->acceptor->get_executor(),
                   [state = state_, listener] { accept_next(state, *listener); });
    }
}

std::uint16_t Server::bound_port(const std::string& listener) const {
    return find_listener(*state_, listener).port;
}

std::vector<std::string> Server::listeners() const {
    std::vector<std::string> out;
    for (auto& l : state_->listeners) {
        out.push_back(l->spec.name);
    }
    return out;
}

void Server::begin_shutdown() {
    if (state_->shutting_down.exchange(true)) {
        return;
    }
    for (auto& l : state_->listeners) {
        if (!l->acceptor) {
            continue;
        }
        auto* listener = l.get();
        asio::post(l->acceptor->get_executor(), [listener] {
            boost::system::error_code ignored;
            listener->acceptor->close(ignored);
            listener->accept_retry->cancel();
        });
    }
    for (std::size_t i = 0; i < state_->threads.size(); ++i) {
        asio::post(state_->runtime.io_context(i), [state = state_, i] {
            // Copy first: a session may end (and unregister) inside shutdown().
            std::vector<std::shared_ptr<Session>> sessions;
            for (auto& [id, weak] : state->threads[i]->sessions) {
                if (auto s = weak.lock()) {
                    sessions.push_back(std::move(s));
                }
            }
            for (auto& s : sessions) {
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
