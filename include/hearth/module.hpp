#pragma once

// A module: one front-end or service of the server (a protocol front-end, the logs subsystem, the
// operator API), with a lifecycle the module registry drives. The core names no module: the
// server loops over a list of them (src/app/modules.cpp).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/access_policy.hpp>

namespace hearth {

class ConnectionDirectory;
class ModuleRoutes;

namespace core {
class Config;
class EventBus;
class MetricsRegistry;
class ModuleRegistry;
class Runtime;
class ShardSet;
}  // namespace core
namespace hub {
class Hub;
}  // namespace hub
namespace store {
class Store;
}  // namespace store
namespace auth {
class AccountService;
class OperatorAuth;
}  // namespace auth

/// Where a module is in its life. Every change is an event (`module.state`).
enum class ModuleState : std::uint8_t {
    kDisabled,  // not enabled in the config, or disabled by an operator
    kStarting,
    kRunning,
    kStopping,
    kFailed,  // start failed; `last_error` says why
};

std::string_view to_string(ModuleState state);

/// A named number a module reports about itself (open connections, messages relayed, ...).
struct ModuleCounter {
    std::string name;
    double value = 0;
};

/// What a module declares: fixed for its life, read before it starts.
struct ModuleInfo {
    std::string name;                // unique, lower case: "homestead", "logs"
    std::string version;             // the module's own version
    std::vector<std::string> needs;  // modules that must run before it (and stop after it)
    std::string config_section;      // its TOML section, "" when it has none
    std::string topic_namespace;     // its hub topics' prefix ("native:"), "" when it has none
    bool can_disable = true;         // false for the operator API and the core routes
};

/// Why a module stops; it decides how its connections are told (docs/modules.md).
enum class StopCause : std::uint8_t {
    kDisabled,     // by an operator or by the config's `enabled = false`: WebSocket 1001
    kRestart,      // an operator's restart: WebSocket 1012 (service restart), come back soon
    kShutdown,     // the server stops: its connections were closed with 1001 already
    kStartFailed,  // undoing a start that threw
};

/// The close notice a module's connections get for `cause`, for `module`.
struct CloseNotice;
CloseNotice close_notice(StopCause cause, std::string_view module);

/// The server's services as a module sees them. Every reference outlives every module. Modules
/// include the headers of the services they use.
struct ModuleContext {
    /// The io threads as shards: posts to a shard and periodic timers (`core/shard_set.hpp`).
    core::ShardSet& shards;
    /// For what shards do not cover: the blocking pool, and Asio objects a connection's own code
    /// keeps on its io thread.
    core::Runtime& runtime;
    core::MetricsRegistry& metrics;
    core::EventBus& events;
    hub::Hub& hub;
    store::Store& store;
    auth::AccountService& accounts;
    auth::OperatorAuth& operators;
    ConnectionDirectory& connections;
    core::ModuleRegistry& modules;
    /// The HTTP API listener's key (the core routes and the operator API live there).
    std::string http_listener;
    /// `[server] data_dir` as the server started with it (a change needs a restart of the server).
    std::string data_dir;
    /// The running config, as of now (a reload replaces it after the modules applied it).
    std::function<std::shared_ptr<const core::Config>()> config;
    /// A new, empty share of the network tagged with the module's name.
    std::function<std::unique_ptr<ModuleRoutes>(const std::string& module)> routes;
    /// Runs `work` on the server's control thread (one at a time, never an io thread): operators'
    /// module actions, which wait for a module to start or stop. Dropped at shutdown.
    std::function<void(std::function<void()> work)> control;
    /// The keys of `section` that changed from `running` to `next` and are marked as needing a
    /// restart ("homestead.listen"); a module applies them by starting again.
    std::function<std::vector<std::string>(const core::Config& running, const core::Config& next,
                                           const std::string& section)>
        restart_keys;
};

/// What a module does when the config changes at runtime.
struct ReloadOutcome {
    bool applied = true;  // false: it keeps its running section (`reason` says why)
    std::string reason;
    std::vector<std::string> restart_keys;  // keys that changed but apply only after a restart
    // Keys changed that the module applies by starting again (a listen address): the registry
    // stops it and starts it on the new config, and back on the running one when that fails.
    bool restart = false;
};

/// One front-end or service. The registry calls start, reload and stop from one control thread
/// at a time, never from an io thread; `counters` may be called from any thread.
class Module {
public:
    virtual ~Module() = default;

    virtual const ModuleInfo& info() const = 0;

    /// Whether `config` enables it (`[section] enabled`). Read at start and on every reload.
    virtual bool enabled_in(const core::Config& config) const = 0;

    /// Registers listeners and routes, starts timers. Throws std::exception with a reason a
    /// person can act on ("port 5001 is in use"); the registry then calls stop to undo what was
    /// done.
    virtual void start(const core::Config& config) = 0;

    /// Applies a new, valid config while running; `running` is the one it runs on. A section it
    /// cannot apply (a port it cannot bind) leaves it on its running section, with the reason.
    virtual ReloadOutcome reload(const core::Config& running, const core::Config& next) = 0;

    /// Closes its connections (`close_notice(cause, name)`), releases its listeners and timers,
    /// and returns by `deadline`. Stored data stays. Must work after a failed start.
    virtual void stop(std::chrono::steady_clock::time_point deadline, StopCause cause) = 0;

    /// Counters for GET /api/v1/modules. Thread-safe.
    virtual std::vector<ModuleCounter> counters() const { return {}; }

    /// The tokens its doors accept, as it checks them (security part 1: default deny); empty for
    /// a module that takes no token (HunterPie is open, DracoSoft logs in with a password) or is
    /// not running. Thread-safe.
    virtual std::vector<auth::AccessPolicy> doors() const { return {}; }
};

}  // namespace hearth
