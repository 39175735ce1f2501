#include "app/server_app.hpp"
#include <algorithm>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <hearth/module.hpp>
#include <hearth/store.hpp>

#include "api/api_module.hpp"
#include "api/core_routes.hpp"
#include "app/modules.hpp"
#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "auth/better_auth.hpp"
#include "auth/better_auth_config.hpp"
#include "auth/operator_auth.hpp"
#include "core/config_watcher.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/module_registry.hpp"
#include "core/runtime.hpp"
#include "core/shard_set.hpp"
#include "core/ws_settings.hpp"
#include "hub/hub.hpp"
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
    schema.add<store::StorageConfig>();
    schema.add<auth::AuthConfig>();
    schema.add<auth::BetterAuthConfig>();
    add_module_sections(schema);
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
          server(runtime, metrics, events, http_limits(config->get<core::HttpConfig>())),
          modules(events, config->get<core::ServerConfig>().on_module_failure == "continue"
                              ? core::OnModuleFailure::kContinue
                              : core::OnModuleFailure::kRefuse) {}

    const core::ConfigSchema& schema;
    mutable std::mutex config_mutex;
    std::shared_ptr<const core::Config> config;
    core::MetricsRegistry metrics;
    core::EventBus events;
    core::Runtime runtime;
    core::ShardSet shards{runtime};
    hub::Hub hub;
    // Password hashing on threads of its own: a flood of logins or registrations never delays the
    // blocking pool's file work (Moonshare), nor the other way round. Before the store: the store
    // finishes its queue as it is destroyed, and an account lookup completing then posts its hash
    // here (stopped at shutdown: the work is dropped, not posted into freed memory).
    std::unique_ptr<boost::asio::thread_pool> hash_pool;
    // After the runtime: destroyed first, so that its last completions still find the io contexts.
    std::unique_ptr<store::Store> store;
    auth::AccountService accounts;
    std::shared_ptr<auth::BetterAuthBridge> better_auth;  // when [auth.better_auth] is enabled
    auth::OperatorAuth operators;                         // before the server: its routes hold it
    net::Server server;  // destroyed after the modules, while the io contexts still exist
    // Operators' module actions wait for modules to start and stop: one thread of their own.
    // Stopped before the modules stop at shutdown (an action then waiting is dropped).
    boost::asio::thread_pool control{1};
    core::ModuleRegistry modules;  // after everything a module uses: destroyed first
    std::unique_ptr<ModuleContext> module_context;
    api::ApiModule* api = nullptr;             // owned by `modules`
    std::vector<std::string> module_sections;  // config sections that modules apply themselves
    std::string http_listener;
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
    impl_->accounts.set_events(&impl_->events);  // login.ok / login.failed
    impl_->hub.set_events(&impl_->events);       // topic.created / topic.emptied
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
    impl_->http_listener =
        impl_->server.listener({"http", http.listen, http.tls_cert_file, http.tls_key_file});
    std::vector<api::ReadinessCheck> readiness{
        {"store", [store = impl_->store.get()] { return store->healthy(); }}};
    if (impl_->better_auth) {
        readiness.push_back(
            {"better_auth", [bridge = impl_->better_auth] { return bridge->healthy(); }});
    }
    // The core routes are the server's own, not a module's: they cannot be disabled.
    api::add_core_routes(impl_->server, impl_->http_listener, m, std::move(readiness));
    if (http.echo_route) {
        api::add_echo_route(impl_->server, impl_->http_listener,
                            std::make_shared<const WsRouteSettings>(core::ws_route_settings(
                                impl_->config->get<core::WebSocketConfig>())));
    }
    impl_->module_context = std::make_unique<ModuleContext>(ModuleContext{
        .shards = impl_->shards,
        .runtime = impl_->runtime,
        .metrics = m,
        .events = impl_->events,
        .hub = impl_->hub,
        .store = *impl_->store,
        .accounts = impl_->accounts,
        .operators = impl_->operators,
        .connections = impl_->server,
        .modules = impl_->modules,
        .http_listener = impl_->http_listener,
        .data_dir = impl_->config->get<core::ServerConfig>().data_dir,
        .config = [this] { return this->config(); },
        .routes = [this](const std::string& module) { return impl_->server.routes_for(module); },
        .control =
            [this](std::function<void()> work) {
                boost::asio::post(impl_->control, std::move(work));
            },
        .restart_keys =
            [this](const core::Config& running, const core::Config& next,
                   const std::string& section) {
                std::vector<std::string> keys;
                for (auto& key : impl_->schema.restart_required(running, next)) {
                    if (key.starts_with(section + ".")) {
                        keys.push_back(std::move(key));
                    }
                }
                return keys;
            },
    });
    for (auto& module : make_modules(*impl_->module_context)) {
        if (!module->info().config_section.empty()) {
            impl_->module_sections.push_back(module->info().config_section);
        }
        if (auto* api = dynamic_cast<api::ApiModule*>(module.get())) {
            impl_->api = api;
        }
        impl_->modules.add(std::move(module));
    }
    impl_->modules.validate();
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
    impl_->runtime.start();
    try {
        // Bound now, so that a port in use fails the start at once; accepting only once every
        // module has added its routes, so that no early client gets a 404 for a route that is
        // about to exist (connections wait in the backlog meanwhile).
        impl_->server.start(net::Server::Accepting::kLater);
        // Each module binds its own listeners as it starts; with on_module_failure = "refuse" the
        // first that cannot start stops the others and the server.
        impl_->modules.start_all(*config());
        impl_->server.accept_connections();
    } catch (...) {
        impl_->server.begin_shutdown();
        (void)impl_->server.wait_drained(std::chrono::steady_clock::now() +
                                         std::chrono::seconds(5));
        impl_->runtime.stop();
        impl_->stopped = true;
        throw;
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
        if (!module_applies(key)) {
            log()->warn(
                "config reload: {} changed but needs a restart; the running value stays until "
                "then",
                key);
        }
    }
    const auto& server = next->get<core::ServerConfig>();
    if (!util::set_log_level(server.log_level)) {
        log()->error("config reload: unknown log level {}", server.log_level);
    }
    impl_->server.update_http_limits(http_limits(next->get<core::HttpConfig>()));
    impl_->server.reload_tls();
    if (running->get<core::HttpConfig>().echo_route) {
        impl_->server.update_ws_settings(
            impl_->http_listener, "/echo",
            std::make_shared<const WsRouteSettings>(
                core::ws_route_settings(next->get<core::WebSocketConfig>())));
    }
    impl_->hub.update_config(next->get<hub::HubConfig>());
    impl_->operators.set_admin_token(next->get<core::HttpConfig>().admin_token);
    impl_->accounts.reload(next->get<auth::AuthConfig>());
    // Module by module: one that cannot apply its part keeps its running section and says why.
    for (const auto& problem : impl_->modules.apply(*next)) {
        log()->warn("config reload: {}", problem);
    }
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
    const auto timeout =
        std::chrono::milliseconds(config()->get<core::ServerConfig>().shutdown_timeout_ms);
    // One deadline for the whole stop: the connections' close, then the modules'.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool drained = true;
    if (impl_->started) {
        log()->info("shutting down: {} connection(s) open, waiting up to {} ms",
                    impl_->server.open_connections(), timeout.count());
        impl_->server.begin_shutdown();
        drained = impl_->server.wait_drained(deadline);
        if (!drained) {
            log()->warn("shutdown: {} connection(s) still open after {} ms; closing them",
                        impl_->server.open_connections(), timeout.count());
        }
    }
    // An operator's module action waiting now is dropped (its caller gets a 500); one running
    // finishes first.
    impl_->control.stop();
    impl_->control.join();
    impl_->modules.stop_all(deadline);
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
    return impl_->api->routes();
}

core::ModuleRegistry& ServerApp::modules() {
    return impl_->modules;
}

bool ServerApp::module_applies(const std::string& key) const {
    return std::any_of(impl_->module_sections.begin(), impl_->module_sections.end(),
                       [&](const std::string& section) { return key.starts_with(section + "."); });
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
