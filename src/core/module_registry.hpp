#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <hearth/module.hpp>

namespace hearth::core {

class Config;
class EventBus;

/// What the server does when a module fails to start (`[server] on_module_failure`).
enum class OnModuleFailure : std::uint8_t {
    kRefuse,    // the server does not start
    kContinue,  // the server starts without it; the failure is in its status
};

/// A module as operators see it (GET /api/v1/modules).
struct ModuleStatus {
    std::string name;
    std::string version;
    std::vector<std::string> needs;
    ModuleState state = ModuleState::kDisabled;
    std::chrono::system_clock::time_point since;
    std::string last_error;
    std::vector<ModuleCounter> counters;
    bool can_disable = true;
    std::vector<auth::AccessPolicy> doors;
};

/// Why an operator's action was refused; the operator API maps each to a status and an error code.
enum class ModuleActionError : std::uint8_t {
    kNone,
    kUnknownModule,   // 404 unknown_module
    kNotDisableable,  // 409 module_required: the operator API and core routes
    kNeededBy,        // 409 module_required: a running module needs it
    kNeedsStopped,    // 409 dependency_not_running: enable or restart needs a stopped module
    kStartFailed,     // 500 module_start_failed: the reason is the module's
};

struct ModuleActionResult {
    ModuleActionError error = ModuleActionError::kNone;
    std::string message;  // for a person; names the modules involved
    bool ok() const { return error == ModuleActionError::kNone; }
};

/// The server's modules: starts them in dependency order, stops them in reverse, and runs the
/// operators' enable / disable / restart and the config's `enabled` keys. Every state change is
/// published on the event bus (`module.state`, module = the module's name).
///
/// Thread-safe. Actions run one at a time; they call modules' start and stop, which may take until
/// their deadline, so they are called from a control thread (main, the config watcher, or the
/// operator API's control executor), never from an io thread. `statuses` never waits for an
/// action and may be called from any thread.
class ModuleRegistry {
public:
    ModuleRegistry(EventBus& events, OnModuleFailure policy);
    ~ModuleRegistry();

    /// Adds a module; before start_all only. Throws std::invalid_argument on a duplicate name.
    void add(std::unique_ptr<Module> module);

    /// Checks that every dependency exists and that there is no cycle. Throws std::runtime_error
    /// naming the module and its missing or circular dependency.
    void validate() const;

    /// Starts every module the config enables, dependencies first. A module whose start throws,
    /// or one whose dependency is not running, is kFailed with the reason. With kRefuse the first
    /// failure stops the modules already started (in reverse) and throws std::runtime_error naming
    /// the module and its reason; with kContinue the others start.
    void start_all(const Config& config);

    /// Stops every running module in reverse start order, sharing `deadline`. Idempotent.
    void stop_all(std::chrono::steady_clock::time_point deadline);

    /// A valid new config: modules it disables stop (dependents first), modules it enables start
    /// (dependencies first), the others reload. One module's failure does not stop the others.
    /// Returns a line per module that could not apply its part (for the reload's log).
    std::vector<std::string> apply(const Config& next);

    ModuleActionResult enable(const std::string& name, const Config& config);
    ModuleActionResult disable(const std::string& name,
                               std::chrono::steady_clock::time_point deadline);
    ModuleActionResult restart(const std::string& name, const Config& config,
                               std::chrono::steady_clock::time_point deadline);

    std::vector<ModuleStatus> statuses() const;
    /// The module named `name` (null when there is none), whatever its state: for wiring one
    /// module's service to another, and tests. Modules are only added before start_all, so the
    /// pointer stays valid as long as the registry.
    Module* module(const std::string& name) const;
    std::optional<ModuleStatus> status(const std::string& name) const;
    /// Module names in start order (dependencies first).
    std::vector<std::string> start_order() const;

private:
    struct Entry;

    Entry* find(const std::string& name);
    const Entry* find(const std::string& name) const;
    std::vector<Entry*> ordered();  // dependencies first
    void set_state(Entry& e, ModuleState state, std::string error = {});
    bool start_one(Entry& e, const Config& config);  // false: failed (state kFailed)
    // Stops a running module and starts it on `next`; on failure back on the config it ran on.
    void restart_on(Entry& e, const Config& next, std::vector<std::string>& problems);
    void stop_one(Entry& e, std::chrono::steady_clock::time_point deadline, StopCause cause);
    // The module an operator may stop (disable or restart, `verb` says which), or why not: not
    // found, a core module, or a running module needs it.
    std::variant<Entry*, ModuleActionResult> may_stop(const std::string& name,
                                                      std::string_view verb);
    // A running module that needs `name`, or null.
    const Entry* running_dependent(const std::string& name) const;
    // A dependency of `e` that is not running, or null.
    const Entry* missing_dependency(const Entry& e) const;

    EventBus& events_;
    OnModuleFailure policy_;
    // Actions (start, stop, apply, enable, disable, restart) one at a time; they may take until a
    // module's stop deadline. Entries' state changes only under it.
    mutable std::mutex action_mutex_;
    // Entries and their state for readers (statuses, on any thread): held only for a copy, so a
    // reader never waits for a module's start or stop.
    mutable std::mutex state_mutex_;
    std::vector<std::unique_ptr<Entry>> entries_;  // in the order added; fixed once started
};

}  // namespace hearth::core
