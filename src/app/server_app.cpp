#include "app/server_app.hpp"
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "api/accounts_api.hpp"
#include "api/core_routes.hpp"
#include "api/event_stream.hpp"
#include "api/operator_api.hpp"
#include "api/runtime_api.hpp"
#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "auth/better_auth.hpp"
#include "auth/better_auth_config.hpp"
#include "auth/operator_auth.hpp"
#include "core/config_watcher.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "core/ws_settings.hpp"
#include "frontends/dracosoft/dracosoft.hpp"
#include "frontends/homestead/homestead.hpp"
#include "frontends/hunterpie/hunterpie.hpp"
#include "frontends/moonshare/moonshare.hpp"
#include "frontends/native/native.hpp"
#include "hub/hub.hpp"
#include "logs/log_query_route.hpp"
#include "logs/log_routes.hpp"
#include "logs/log_stream.hpp"
#include "logs/logs_config.hpp"
#include "net/server.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "util/log.hpp"

namespace hearth::app {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("core");
    return l;
}

// How long the config file must stay quiet after a change before it is read: an editor's save is
// several events (truncate, writes, close, rename) and should be one reload.
constexpr std::chrono::milliseconds kConfigSettle{200};

net::HttpLimits http_limits(const core::HttpConfig& c) {
    net::HttpLimits l;
    l.max_header_bytes = static_cast<std::size_t>(c.max_header_bytes);
    l.max_body_bytes = static_cast<std::size_t>(c.max_body_bytes);
    l.request_timeout = std::chrono::milliseconds(c.request_timeout_ms);
    l.write_timeout = std::chrono::milliseconds(c.write_timeout_ms);
    l.keepalive_timeout = std::chrono::seconds(c.keepalive_timeout_s);
    l.header_timeout = std::chrono::milliseconds(c.header_timeout_ms);
    l.max_connections = static_cast<std::size_t>(c.max_connections);
    l.max_connections_per_ip = static_cast<std::size_t>(c.max_connections_per_ip);
    return l;
}

}  // namespace

core::ConfigSchema make_schema() {
    core::ConfigSchema schema;
    schema.add<core::ServerConfig>();
    schema.add<core::HttpConfig>();
    schema.add<core::WebSocketConfig>();
    schema.add<hub::HubConfig>();
    schema.add<frontends::native::NativeConfig>();
    schema.add<store::StorageConfig>();
    schema.add<frontends::homestead::HomesteadConfig>();
    schema.add<frontends::hunterpie::HunterpieConfig>();
    schema.add<frontends::dracosoft::DracosoftConfig>();
    schema.add<frontends::moonshare::MoonshareConfig>();
    schema.add<logs::LogsConfig>();
    schema.add<auth::AuthConfig>();
    schema.add<auth::BetterAuthConfig>();
    return schema;
}

struct ServerApp::Impl {
    Impl(const core::ConfigSchema& s, std::shared_ptr<const core::Config> c)
        : schema(s),
          config(std::move(c)),
          events(static_cast<std::size_t>(config->get<core::ServerConfig>().event_ring_size)),
          runtime(static_cast<std::size_t>(config->get<core::ServerConfig>().io_threads),
                  static_cast<std::size_t>(config->get<core::ServerConfig>().blocking_threads)),
          hub(runtime, metrics, config->get<hub::HubConfig>()),
          native(hub, metrics, config->get<frontends::native::NativeConfig>()),
          hash_pool(std::make_unique<boost::asio::thread_pool>(
              static_cast<std::size_t>(config->get<auth::AuthConfig>().hash_threads))),
          store(store::open_store(config->get<store::StorageConfig>(),
                                  config->get<core::ServerConfig>().data_dir, metrics)),
          accounts(
              store->accounts(),
              [this](std::function<void()> work) {
                  boost::asio::post(*hash_pool, std::move(work));
              },
              metrics, config->get<auth::AuthConfig>()),
          homestead(make_homestead()),
          hunterpie(make_hunterpie()),
          dracosoft(make_dracosoft()),
          moonshare(make_moonshare()),
          log_stream(make_log_stream()),
          server(runtime, metrics, events, http_limits(config->get<core::HttpConfig>())) {}

    std::unique_ptr<frontends::homestead::HomesteadFrontend> make_homestead() {
        const auto& c = config->get<frontends::homestead::HomesteadConfig>();
        if (!c.enabled) {
            return nullptr;
        }
        return std::make_unique<frontends::homestead::HomesteadFrontend>(
            runtime, store->mailboxes(), metrics, c);
    }

    std::unique_ptr<frontends::hunterpie::HunterpieFrontend> make_hunterpie() {
        const auto& c = config->get<frontends::hunterpie::HunterpieConfig>();
        if (!c.enabled) {
            return nullptr;
        }
        return std::make_unique<frontends::hunterpie::HunterpieFrontend>(metrics, c, &hub);
    }

    std::unique_ptr<frontends::dracosoft::DracosoftFrontend> make_dracosoft() {
        const auto& c = config->get<frontends::dracosoft::DracosoftConfig>();
        if (!c.enabled) {
            return nullptr;
        }
        return std::make_unique<frontends::dracosoft::DracosoftFrontend>(runtime, accounts, metrics,
                                                                         c);
    }

    std::unique_ptr<frontends::moonshare::MoonshareFrontend> make_moonshare() {
        const auto& c = config->get<frontends::moonshare::MoonshareConfig>();
        if (!c.enabled) {
            return nullptr;
        }
        return std::make_unique<frontends::moonshare::MoonshareFrontend>(
            runtime, accounts, metrics, events, c, config->get<core::ServerConfig>().data_dir);
    }

    std::shared_ptr<logs::LogStream> make_log_stream() {
        const auto& c = config->get<logs::LogsConfig>();
        return std::make_shared<logs::LogStream>(metrics, c.stream_limits(),
                                                 c.store ? &store->logs() : nullptr, c.retention(),
                                                 c.access());
    }

    const core::ConfigSchema& schema;
    mutable std::mutex config_mutex;
    std::shared_ptr<const core::Config> config;
    core::MetricsRegistry metrics;
    core::EventBus events;
    core::Runtime runtime;
    hub::Hub hub;
    frontends::native::NativeFrontend native;
    // Password hashing on threads of its own: a flood of logins or registrations never delays the
    // blocking pool's file work (Moonshare), nor the other way round. Before the store: the store
    // finishes its queue as it is destroyed, and an account lookup completing then posts its hash
    // here (stopped at shutdown: the work is dropped, not posted into freed memory).
    std::unique_ptr<boost::asio::thread_pool> hash_pool;
    // After the runtime: destroyed first, so that its last completions still find the io contexts.
    std::unique_ptr<store::Store> store;
    auth::AccountService accounts;
    std::shared_ptr<auth::BetterAuthBridge> better_auth;  // when [auth.better_auth] is enabled
    std::unique_ptr<frontends::homestead::HomesteadFrontend> homestead;  // when enabled
    std::unique_ptr<frontends::hunterpie::HunterpieFrontend> hunterpie;  // when enabled
    std::unique_ptr<frontends::dracosoft::DracosoftFrontend> dracosoft;  // when enabled
    std::unique_ptr<frontends::moonshare::MoonshareFrontend> moonshare;  // when enabled
    // Before the server (routes hold it weakly) and after the runtime (its timer's io context).
    std::shared_ptr<logs::LogStream> log_stream;
    auth::OperatorAuth operators;  // before the server: its routes hold it
    std::unique_ptr<api::OperatorApi> operator_api;
    net::Server server;  // last: destroyed first, while the io contexts still exist
    std::string http_listener;
    std::vector<std::pair<std::string, std::string>> log_routes;  // (listener, path prefix)
    // Serialises reloads: SIGHUP on the main thread, file changes on the watcher's thread.
    std::mutex reload_mutex;
    std::unique_ptr<core::ConfigWatcher> watcher;  // when [server] watch_config and a file
    bool started = false;
    bool stopped = false;
    core::Counter* reloads_ok = nullptr;
    core::Counter* reloads_failed = nullptr;
};

ServerApp::ServerApp(const core::ConfigSchema& schema, std::shared_ptr<const core::Config> config)
    : impl_(std::make_unique<Impl>(schema, std::move(config))) {
    auto& m = impl_->metrics;
    core::register_process_metrics(m);
    impl_->events.attach_metrics(m);
    if (const auto& ba = impl_->config->get<auth::BetterAuthConfig>(); ba.enabled) {
        impl_->better_auth =
            std::make_shared<auth::BetterAuthBridge>(ba, impl_->store->accounts(), m);
        impl_->accounts.set_external(impl_->better_auth);
    }
    impl_->reloads_ok = &m.counter("hearth_config_reloads_total",
                                   "Configuration reloads, by result.", {{"result", "ok"}});
    impl_->reloads_failed =
        &m.counter("hearth_config_reloads_total", "Configuration reloads, by result.",
                   {{"result", "rejected"}});
    const auto& http = impl_->config->get<core::HttpConfig>();
    impl_->operators.set_admin_token(http.admin_token);
    impl_->operators.set_accounts(&impl_->accounts);
    impl_->native.set_accounts(&impl_->accounts);
    if (impl_->homestead) {
        impl_->homestead->set_accounts(&impl_->accounts);
    }
    impl_->http_listener =
        impl_->server.listener({"http", http.listen, http.tls_cert_file, http.tls_key_file});
    std::vector<api::ReadinessCheck> readiness{
        {"store", [store = impl_->store.get()] { return store->healthy(); }}};
    if (impl_->better_auth) {
        readiness.push_back(
            {"better_auth", [bridge = impl_->better_auth] { return bridge->healthy(); }});
    }
    api::add_core_routes(impl_->server, impl_->http_listener, m, std::move(readiness));
    auto ws_settings = std::make_shared<const WsRouteSettings>(
        core::ws_route_settings(impl_->config->get<core::WebSocketConfig>()));
    if (http.echo_route) {
        api::add_echo_route(impl_->server, impl_->http_listener, ws_settings);
    }
    if (impl_->config->get<frontends::native::NativeConfig>().enabled) {
        impl_->native.add_routes(impl_->server, impl_->http_listener, ws_settings);
    }
    if (impl_->homestead) {
        impl_->homestead->add_routes(
            impl_->server,
            std::make_shared<const WsRouteSettings>(frontends::homestead::route_settings(
                impl_->config->get<frontends::homestead::HomesteadConfig>(),
                impl_->config->get<core::WebSocketConfig>())));
    }
    if (impl_->hunterpie) {
        impl_->hunterpie->add_routes(
            impl_->server,
            std::make_shared<const WsRouteSettings>(frontends::hunterpie::route_settings(
                impl_->config->get<frontends::hunterpie::HunterpieConfig>(),
                impl_->config->get<core::WebSocketConfig>())));
        impl_->hunterpie->add_api_routes(impl_->server, impl_->http_listener, impl_->operators);
    }
    if (impl_->dracosoft) {
        impl_->dracosoft->add_routes(impl_->server);
    }
    if (impl_->moonshare) {
        const auto& ms = impl_->config->get<frontends::moonshare::MoonshareConfig>();
        impl_->moonshare->add_routes(
            impl_->server,
            std::make_shared<const WsRouteSettings>(frontends::moonshare::player_route_settings(
                ms, impl_->config->get<core::WebSocketConfig>())),
            ws_settings, impl_->operators);
    }
    // The logs endpoints live on the HunterPie listener, as the original serves them, and on the
    // HTTP API listener for the admin console (docs/logs.md).
    const auto& ws = core::ws_route_settings(impl_->config->get<core::WebSocketConfig>());
    impl_->log_routes.push_back({impl_->http_listener, ""});
    if (impl_->hunterpie) {
        const auto& prefix =
            impl_->config->get<frontends::hunterpie::HunterpieConfig>().path_prefix;
        // One listener for both (same address): its routes are already there.
        if (impl_->hunterpie->listener() != impl_->http_listener || !prefix.empty()) {
            impl_->log_routes.push_back({impl_->hunterpie->listener(), prefix});
        }
    }
    for (const auto& [listener, prefix] : impl_->log_routes) {
        logs::add_log_routes(impl_->server, listener, prefix, impl_->log_stream, ws,
                             impl_->operators, m);
    }
    logs::add_log_query_route(
        impl_->server, impl_->http_listener,
        impl_->config->get<logs::LogsConfig>().store ? &impl_->store->logs() : nullptr,
        impl_->operators);
    impl_->operator_api = std::make_unique<api::OperatorApi>(
        impl_->server, impl_->http_listener, impl_->operators, &impl_->store->accounts());
    api::add_account_routes(*impl_->operator_api, impl_->accounts);
    api::add_runtime_routes(*impl_->operator_api, impl_->server, impl_->hub,
                            impl_->store->mailboxes(), impl_->events);
    impl_->operator_api->note_external("GET", "/api/v1/logs", api::Access::kAdmin);
    api::add_event_stream_route(
        impl_->server, impl_->http_listener, impl_->events, impl_->operators, ws_settings,
        [this] { return this->config()->get<core::HttpConfig>().operator_origins; }, m);
    impl_->operator_api->note_external("GET", std::string(api::kEventStreamPath),
                                       api::Access::kAdmin);
    if (impl_->hunterpie) {
        impl_->operator_api->note_external("POST", "/api/v1/hunterpie/servermsg",
                                           api::Access::kAdmin);
    }
    impl_->operator_api->install();
}

ServerApp::~ServerApp() {
    shutdown();
}

void ServerApp::start() {
    const auto& data_dir = config()->get<core::ServerConfig>().data_dir;
    std::error_code ec;
    std::filesystem::create_directories(data_dir, ec);
    if (ec) {
        throw std::runtime_error("cannot create data directory " + data_dir + ": " + ec.message());
    }
    impl_->log_stream->start(impl_->runtime.io_context(0));
    impl_->runtime.start();
    try {
        impl_->server.start();
    } catch (...) {
        impl_->runtime.stop();
        impl_->stopped = true;
        throw;
    }
    if (impl_->moonshare) {
        impl_->moonshare->start();
    }
    impl_->started = true;
    impl_->events.publish(core::EventKind::kServerStarted, "core", "hearth", "listening");
    const auto running = config();
    const auto& source = running->source();
    if (!source.empty() && running->get<core::ServerConfig>().watch_config) {
        impl_->watcher = std::make_unique<core::ConfigWatcher>(source, kConfigSettle,
                                                               [this] { (void)reload(); });
        try {
            impl_->watcher->start();
            log()->info("watching {} for changes", source.string());
        } catch (const std::exception& e) {
            impl_->watcher.reset();
            log()->warn("cannot watch {} for changes ({}); SIGHUP still reloads it",
                        source.string(), e.what());
        }
    }
}

bool ServerApp::reload() {
    std::lock_guard lock(impl_->reload_mutex);
    auto running = config();
    if (running->source().empty()) {
        log()->info("reload: no config file was given; nothing to reload");
        return false;
    }
    auto result = impl_->schema.load(running->source(), core::ConfigSchema::process_environment());
    if (!result.config) {
        impl_->reloads_failed->inc();
        for (const auto& e : result.errors) {
            log()->error("config reload rejected: {}", e);
        }
        log()->error("config reload rejected ({} error(s)); the running configuration stays",
                     result.errors.size());
        impl_->events.publish(core::EventKind::kConfigRejected, "core", running->source().string(),
                              std::to_string(result.errors.size()) + " error(s)");
        return false;
    }
    apply_locked(std::move(result.config));
    return true;
}

void ServerApp::apply(std::shared_ptr<const core::Config> next) {
    std::lock_guard lock(impl_->reload_mutex);
    apply_locked(std::move(next));
}

void ServerApp::apply_locked(std::shared_ptr<const core::Config> next) {
    auto running = config();
    for (const auto& key : impl_->schema.restart_required(*running, *next)) {
        log()->warn(
            "config reload: {} changed but needs a restart; the running value stays until then",
            key);
    }
    const auto& server = next->get<core::ServerConfig>();
    if (!util::set_log_level(server.log_level)) {
        log()->error("config reload: unknown log level {}", server.log_level);
    }
    impl_->server.update_http_limits(http_limits(next->get<core::HttpConfig>()));
    impl_->server.reload_tls();
    auto ws_settings = std::make_shared<const WsRouteSettings>(
        core::ws_route_settings(next->get<core::WebSocketConfig>()));
    if (running->get<core::HttpConfig>().echo_route) {
        impl_->server.update_ws_settings(impl_->http_listener, "/echo", ws_settings);
    }
    if (running->get<frontends::native::NativeConfig>().enabled) {
        impl_->server.update_ws_settings(impl_->http_listener, "/ws", ws_settings);
    }
    for (const auto& [listener, prefix] : impl_->log_routes) {
        impl_->server.update_ws_settings(
            listener, logs::listen_path(prefix),
            std::make_shared<const WsRouteSettings>(logs::listen_settings(*ws_settings)));
    }
    impl_->server.update_ws_settings(impl_->http_listener, std::string(api::kEventStreamPath),
                                     ws_settings);
    impl_->hub.update_config(next->get<hub::HubConfig>());
    impl_->native.reload(next->get<frontends::native::NativeConfig>());
    if (impl_->homestead) {
        const auto& homestead = next->get<frontends::homestead::HomesteadConfig>();
        impl_->server.update_ws_settings(
            impl_->homestead->listener(), "/sync",
            std::make_shared<const WsRouteSettings>(frontends::homestead::route_settings(
                homestead, next->get<core::WebSocketConfig>())));
        impl_->homestead->reload(homestead);
    }
    if (impl_->hunterpie) {
        impl_->server.update_ws_settings(
            impl_->hunterpie->listener(), impl_->hunterpie->connect_path(),
            std::make_shared<const WsRouteSettings>(frontends::hunterpie::route_settings(
                next->get<frontends::hunterpie::HunterpieConfig>(),
                next->get<core::WebSocketConfig>())));
    }
    if (impl_->moonshare) {
        // [websocket] settings apply to the running routes; [moonshare] itself needs a restart.
        const auto player =
            std::make_shared<const WsRouteSettings>(frontends::moonshare::player_route_settings(
                running->get<frontends::moonshare::MoonshareConfig>(),
                next->get<core::WebSocketConfig>()));
        for (const auto& listener : impl_->moonshare->player_listeners()) {
            impl_->server.update_ws_settings(listener, "/player", player);
        }
        impl_->server.update_ws_settings(impl_->moonshare->auth_listener(), "/auth", ws_settings);
        impl_->server.update_ws_settings(impl_->moonshare->auth_listener(), "/sessions",
                                         ws_settings);
        impl_->server.update_ws_settings(impl_->moonshare->gateway_listener(), "/ws", ws_settings);
    }
    impl_->operators.set_admin_token(next->get<core::HttpConfig>().admin_token);
    impl_->log_stream->set_retention(next->get<logs::LogsConfig>().retention());
    impl_->log_stream->set_access(next->get<logs::LogsConfig>().access());
    impl_->accounts.reload(next->get<auth::AuthConfig>());
    {
        std::lock_guard lock(impl_->config_mutex);
        impl_->config = std::move(next);
    }
    impl_->reloads_ok->inc();
    impl_->events.publish(core::EventKind::kConfigReloaded, "core", running->source().string(),
                          "applied");
    log()->info("configuration reloaded from {}", running->source().string());
}

bool ServerApp::shutdown() {
    if (impl_->stopped) {
        return true;
    }
    impl_->stopped = true;
    if (impl_->started) {
        impl_->events.publish(core::EventKind::kServerStopping, "core", "hearth", "shutting down");
    }
    if (impl_->watcher) {
        impl_->watcher->stop();  // no reload may start while the server stops
    }
    bool drained = true;
    if (impl_->started) {
        const auto timeout =
            std::chrono::milliseconds(config()->get<core::ServerConfig>().shutdown_timeout_ms);
        log()->info("shutting down: {} connection(s) open, waiting up to {} ms",
                    impl_->server.open_connections(), timeout.count());
        impl_->server.begin_shutdown();
        drained = impl_->server.wait_drained(std::chrono::steady_clock::now() + timeout);
        if (!drained) {
            log()->warn("shutdown: {} connection(s) still open after {} ms; closing them",
                        impl_->server.open_connections(), timeout.count());
        }
    }
    if (impl_->moonshare) {
        impl_->moonshare->stop();
    }
    // A hash in progress finishes; those still queued are dropped with their callers.
    impl_->hash_pool->stop();
    impl_->hash_pool->join();
    impl_->runtime.stop();
    log()->info("stopped");
    return drained;
}

std::uint16_t ServerApp::http_port() const {
    return impl_->server.bound_port(impl_->http_listener);
}

bool ServerApp::watching_config() const {
    return impl_->watcher != nullptr;
}

std::shared_ptr<const core::Config> ServerApp::config() const {
    std::lock_guard lock(impl_->config_mutex);
    return impl_->config;
}

std::vector<api::RouteInfo> ServerApp::api_routes() const {
    return impl_->operator_api->routes();
}

core::MetricsRegistry& ServerApp::metrics() {
    return impl_->metrics;
}
core::EventBus& ServerApp::events() {
    return impl_->events;
}
net::Server& ServerApp::server() {
    return impl_->server;
}

}  // namespace hearth::app
