#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/operator_api.hpp"
#include "core/config.hpp"

namespace hearth::core {
class MetricsRegistry;
class EventBus;
class ModuleRegistry;
class Runtime;
}  // namespace hearth::core

namespace hearth::net {
class Server;
}

namespace hearth::app {

/// The whole server, wired from a config: logging, metrics, the event ring, the runtime, the
/// network layer and the modules' routes. `hearth serve` runs one; integration tests run one
/// in-process on port 0. Runs on: a control thread (main, or the test), never an io thread.
class ServerApp {
public:
    /// `schema` must outlive the app (it validates reloads).
    ServerApp(const core::ConfigSchema& schema, std::shared_ptr<const core::Config> config);
    ~ServerApp();
    ServerApp(const ServerApp&) = delete;
    ServerApp& operator=(const ServerApp&) = delete;

    /// Binds every listener and starts serving. Throws std::runtime_error (naming the listener)
    /// when a listener cannot be bound.
    void start();

    /// Re-reads the config file the app was started with and applies what may change at runtime.
    /// Called on SIGHUP and, with [server] watch_config, when the file changes. Thread-safe:
    /// reloads run one at a time.
    /// An invalid file is rejected with a log line per error and the running config stays.
    /// Returns whether the new config was applied.
    bool reload();
    /// Applies an already loaded config (reload() after it has read the file).
    void apply(std::shared_ptr<const core::Config> next);

    /// Graceful stop: stop accepting, close WebSockets with 1001, let requests finish, wait up to
    /// `server.shutdown_timeout_ms`, then stop the threads. Returns whether every connection
    /// closed in time. Idempotent.
    bool shutdown();

    std::uint16_t http_port() const;
    /// Whether the config file is being watched for changes.
    bool watching_config() const;
    std::shared_ptr<const core::Config> config() const;
    core::MetricsRegistry& metrics();
    core::EventBus& events();
    net::Server& server();
    /// Every /api/v1 route (for the OpenAPI check).
    std::vector<api::RouteInfo> api_routes() const;
    core::ModuleRegistry& modules();

private:
    bool module_applies(const std::string& key) const;
    void apply_locked(std::shared_ptr<const core::Config> next);

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The schema with every section Hearth knows (the core's and each module's).
core::ConfigSchema make_schema();

}  // namespace hearth::app
