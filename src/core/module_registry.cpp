#include "core/module_registry.hpp"
#include <algorithm>
#include <functional>
#include <stdexcept>
#include <variant>

#include <hearth/http.hpp>

#include "core/config.hpp"
#include "core/events.hpp"
#include "util/log.hpp"

namespace hearth {

std::string_view to_string(ModuleState state) {
    switch (state) {
        case ModuleState::kDisabled:
            return "disabled";
        case ModuleState::kStarting:
            return "starting";
        case ModuleState::kRunning:
            return "running";
        case ModuleState::kStopping:
            return "stopping";
        case ModuleState::kFailed:
            return "failed";
    }
    return "unknown";
}

CloseNotice close_notice(StopCause cause, std::string_view module) {
    const std::string name(module);
    switch (cause) {
        case StopCause::kRestart:
            return {1012, name + " restarting"};
        case StopCause::kShutdown:
            return {1001, "server shutting down"};
        case StopCause::kDisabled:
        case StopCause::kStartFailed:
            break;
    }
    return {1001, name + " disabled"};
}

}  // namespace hearth

namespace hearth::core {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("core");
    return l;
}

// How long a module's clients may take to close when a config stops it: the operators' setting,
// as for a shutdown.
std::chrono::steady_clock::time_point stop_deadline(const Config& config) {
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(config.get<ServerConfig>().shutdown_timeout_ms);
}

}  // namespace

struct ModuleRegistry::Entry {
    std::unique_ptr<Module> module;
    ModuleState state = ModuleState::kDisabled;
    std::chrono::system_clock::time_point since = std::chrono::system_clock::now();
    std::string last_error;
    // The config it last started on or applied; a restart that fails goes back to it.
    std::optional<Config> applied;

    const ModuleInfo& info() const { return module->info(); }
    const std::string& name() const { return info().name; }
};

ModuleRegistry::ModuleRegistry(EventBus& events, OnModuleFailure policy)
    : events_(events), policy_(policy) {}

ModuleRegistry::~ModuleRegistry() = default;

void ModuleRegistry::add(std::unique_ptr<Module> module) {
    std::lock_guard lock(state_mutex_);
    if (find(module->info().name) != nullptr) {
        throw std::invalid_argument("module " + module->info().name + " is added twice");
    }
    auto e = std::make_unique<Entry>();
    e->module = std::move(module);
    entries_.push_back(std::move(e));
}

ModuleRegistry::Entry* ModuleRegistry::find(const std::string& name) {
    for (auto& e : entries_) {
        if (e->name() == name) {
            return e.get();
        }
    }
    return nullptr;
}

const ModuleRegistry::Entry* ModuleRegistry::find(const std::string& name) const {
    return const_cast<ModuleRegistry*>(this)->find(name);
}

Module* ModuleRegistry::module(const std::string& name) const {
    const Entry* e = find(name);
    return e != nullptr ? e->module.get() : nullptr;
}

void ModuleRegistry::validate() const {
    std::lock_guard lock(state_mutex_);
    for (const auto& e : entries_) {
        for (const auto& need : e->info().needs) {
            if (find(need) == nullptr) {
                throw std::runtime_error("module " + e->name() + " needs module " + need +
                                         ", which does not exist");
            }
        }
    }
    (void)const_cast<ModuleRegistry*>(this)->ordered();  // throws on a cycle
}

std::vector<ModuleRegistry::Entry*> ModuleRegistry::ordered() {
    // Depth-first, in the order added, so that the start order is stable and readable.
    std::vector<Entry*> out;
    std::vector<const Entry*> visiting;
    std::function<void(Entry&)> visit = [&](Entry& e) {
        if (std::find(out.begin(), out.end(), &e) != out.end()) {
            return;
        }
        if (std::find(visiting.begin(), visiting.end(), &e) != visiting.end()) {
            std::string chain;
            for (const auto* v : visiting) {
                chain += v->name() + " -> ";
            }
            throw std::runtime_error("modules need each other in a circle: " + chain + e.name());
        }
        visiting.push_back(&e);
        for (const auto& need : e.info().needs) {
            if (auto* d = find(need)) {
                visit(*d);
            }
        }
        visiting.pop_back();
        out.push_back(&e);
    };
    for (auto& e : entries_) {
        visit(*e);
    }
    return out;
}

std::vector<std::string> ModuleRegistry::start_order() const {
    std::lock_guard lock(state_mutex_);
    std::vector<std::string> names;
    for (auto* e : const_cast<ModuleRegistry*>(this)->ordered()) {
        names.push_back(e->name());
    }
    return names;
}

void ModuleRegistry::set_state(Entry& e, ModuleState state, std::string error) {
    {
        std::lock_guard lock(state_mutex_);
        e.state = state;
        e.since = std::chrono::system_clock::now();
        if (state == ModuleState::kFailed) {
            e.last_error = std::move(error);
        } else if (state == ModuleState::kRunning) {
            e.last_error.clear();
        }
    }
    events_.publish(
        EventKind::kModuleStateChanged, e.name(), e.name(),
        std::string(to_string(state)) + (state == ModuleState::kFailed ? ": " + e.last_error : ""));
}

const ModuleRegistry::Entry* ModuleRegistry::missing_dependency(const Entry& e) const {
    for (const auto& need : e.info().needs) {
        const auto* d = find(need);
        if (d == nullptr || d->state != ModuleState::kRunning) {
            return d;
        }
    }
    return nullptr;
}

const ModuleRegistry::Entry* ModuleRegistry::running_dependent(const std::string& name) const {
    for (const auto& e : entries_) {
        if (e->state != ModuleState::kRunning && e->state != ModuleState::kStarting) {
            continue;
        }
        const auto& needs = e->info().needs;
        if (std::find(needs.begin(), needs.end(), name) != needs.end()) {
            return e.get();
        }
    }
    return nullptr;
}

bool ModuleRegistry::start_one(Entry& e, const Config& config) {
    if (const auto* d = missing_dependency(e)) {
        set_state(e, ModuleState::kFailed,
                  "needs module " + d->name() + ", which is " + std::string(to_string(d->state)));
        log()->error("module {} cannot start: {}", e.name(), e.last_error);
        return false;
    }
    set_state(e, ModuleState::kStarting);
    try {
        e.module->start(config);
    } catch (const std::exception& ex) {
        std::string reason = ex.what();
        log()->error("module {} failed to start: {}", e.name(), reason);
        // Undo what it had done; a module's stop works after a failed start.
        try {
            e.module->stop(std::chrono::steady_clock::now() + std::chrono::seconds(5),
                           StopCause::kStartFailed);
        } catch (const std::exception& stop_error) {
            log()->error("module {}: stop after a failed start failed: {}", e.name(),
                         stop_error.what());
        }
        set_state(e, ModuleState::kFailed, std::move(reason));
        return false;
    }
    e.applied = config;
    set_state(e, ModuleState::kRunning);
    log()->info("module {} {} running", e.name(), e.info().version);
    return true;
}

void ModuleRegistry::stop_one(Entry& e, std::chrono::steady_clock::time_point deadline,
                              StopCause cause) {
    if (e.state != ModuleState::kRunning) {
        if (e.state == ModuleState::kFailed) {
            set_state(e, ModuleState::kDisabled);  // its last error stays for operators to read
        }
        return;
    }
    set_state(e, ModuleState::kStopping);
    try {
        e.module->stop(deadline, cause);
    } catch (const std::exception& ex) {
        log()->error("module {} failed to stop cleanly: {}", e.name(), ex.what());
    }
    set_state(e, ModuleState::kDisabled);
    log()->info("module {} stopped", e.name());
}

void ModuleRegistry::start_all(const Config& config) {
    std::lock_guard lock(action_mutex_);
    auto order = ordered();
    for (auto* e : order) {
        if (!e->module->enabled_in(config)) {
            continue;
        }
        if (!start_one(*e, config) && policy_ == OnModuleFailure::kRefuse) {
            const std::string reason = "module " + e->name() + " failed to start: " + e->last_error;
            for (auto it = order.rbegin(); it != order.rend(); ++it) {
                stop_one(**it, std::chrono::steady_clock::now() + std::chrono::seconds(5),
                         StopCause::kShutdown);
            }
            throw std::runtime_error(reason);
        }
    }
}

void ModuleRegistry::stop_all(std::chrono::steady_clock::time_point deadline) {
    std::lock_guard lock(action_mutex_);
    auto order = ordered();
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        stop_one(**it, deadline, StopCause::kShutdown);
    }
}

std::vector<std::string> ModuleRegistry::apply(const Config& next) {
    std::lock_guard lock(action_mutex_);
    std::vector<std::string> problems;
    auto order = ordered();
    const auto deadline = stop_deadline(next);
    // Stops first, dependents before what they need.
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Entry& e = **it;
        if (!e.module->enabled_in(next) &&
            (e.state == ModuleState::kRunning || e.state == ModuleState::kFailed)) {
            if (const auto* user = running_dependent(e.name());
                user != nullptr && user->module->enabled_in(next)) {
                problems.push_back("module " + e.name() + " stays: module " + user->name() +
                                   " needs it");
                continue;
            }
            stop_one(e, deadline, StopCause::kDisabled);
        }
    }
    // Then reloads and starts, dependencies before what needs them.
    for (auto* e : order) {
        if (!e->module->enabled_in(next)) {
            continue;
        }
        if (e->state == ModuleState::kRunning) {
            ReloadOutcome outcome;
            try {
                outcome = e->module->reload(*e->applied, next);
            } catch (const std::exception& ex) {
                outcome = {.applied = false, .reason = ex.what(), .restart_keys = {}};
            }
            if (outcome.restart) {
                restart_on(*e, next, problems);
                continue;
            }
            if (!outcome.applied) {
                problems.push_back("module " + e->name() +
                                   " keeps its running configuration: " + outcome.reason);
            } else {
                e->applied = next;
            }
            for (const auto& key : outcome.restart_keys) {
                problems.push_back(key + " changed but needs a restart");
            }
        } else if (e->state == ModuleState::kDisabled || e->state == ModuleState::kFailed) {
            if (!start_one(*e, next)) {
                problems.push_back("module " + e->name() + " failed to start: " + e->last_error);
            }
        }
    }
    return problems;
}

void ModuleRegistry::restart_on(Entry& e, const Config& next, std::vector<std::string>& problems) {
    const Config running = *e.applied;
    log()->info("module {}: its section changed in keys it applies by starting again", e.name());
    stop_one(e, stop_deadline(next), StopCause::kRestart);
    if (start_one(e, next)) {
        return;
    }
    const std::string reason = e.last_error;
    if (start_one(e, running)) {
        problems.push_back("module " + e.name() + " keeps its running configuration: " + reason);
    } else {
        problems.push_back("module " + e.name() + " failed on its new configuration (" + reason +
                           ") and again on its running one: " + e.last_error);
    }
}

ModuleActionResult ModuleRegistry::enable(const std::string& name, const Config& config) {
    std::lock_guard lock(action_mutex_);
    auto* e = find(name);
    if (e == nullptr) {
        return {ModuleActionError::kUnknownModule, "no module is named " + name};
    }
    if (e->state == ModuleState::kRunning) {
        return {};
    }
    if (const auto* d = missing_dependency(*e)) {
        return {ModuleActionError::kNeedsStopped,
                "module " + name + " needs module " + d->name() + ", which is " +
                    std::string(to_string(d->state)) + ": enable it first"};
    }
    if (!start_one(*e, config)) {
        return {ModuleActionError::kStartFailed, e->last_error};
    }
    return {};
}

std::variant<ModuleRegistry::Entry*, ModuleActionResult> ModuleRegistry::may_stop(
    const std::string& name, std::string_view verb) {
    Entry* entry = find(name);
    if (entry == nullptr) {
        return ModuleActionResult{ModuleActionError::kUnknownModule, "no module is named " + name};
    }
    if (!entry->info().can_disable) {
        return ModuleActionResult{ModuleActionError::kNotDisableable,
                                  "module " + name + " cannot be " + std::string(verb)};
    }
    if (const auto* user = running_dependent(name)) {
        return ModuleActionResult{ModuleActionError::kNeededBy,
                                  "module " + user->name() + " needs module " + name +
                                      ": disable " + user->name() + " first"};
    }
    return entry;
}

ModuleActionResult ModuleRegistry::disable(const std::string& name,
                                           std::chrono::steady_clock::time_point deadline) {
    std::lock_guard lock(action_mutex_);
    auto found = may_stop(name, "disabled");
    if (auto* refused = std::get_if<ModuleActionResult>(&found)) {
        return *refused;
    }
    Entry* e = std::get<Entry*>(found);
    stop_one(*e, deadline, StopCause::kDisabled);
    return {};
}

ModuleActionResult ModuleRegistry::restart(const std::string& name, const Config& config,
                                           std::chrono::steady_clock::time_point deadline) {
    std::lock_guard lock(action_mutex_);
    auto found = may_stop(name, "restarted");
    if (auto* refused = std::get_if<ModuleActionResult>(&found)) {
        return *refused;
    }
    Entry* e = std::get<Entry*>(found);
    stop_one(*e, deadline, StopCause::kRestart);
    if (const auto* d = missing_dependency(*e)) {
        return {ModuleActionError::kNeedsStopped, "module " + name + " needs module " + d->name() +
                                                      ", which is " +
                                                      std::string(to_string(d->state))};
    }
    if (!start_one(*e, config)) {
        return {ModuleActionError::kStartFailed, e->last_error};
    }
    return {};
}

std::vector<ModuleStatus> ModuleRegistry::statuses() const {
    std::lock_guard lock(state_mutex_);
    std::vector<ModuleStatus> out;
    for (auto* e : const_cast<ModuleRegistry*>(this)->ordered()) {
        out.push_back({e->name(), e->info().version, e->info().needs, e->state, e->since,
                       e->last_error, e->module->counters(), e->info().can_disable,
                       e->module->doors()});
    }
    return out;
}

std::optional<ModuleStatus> ModuleRegistry::status(const std::string& name) const {
    for (auto& s : statuses()) {
        if (s.name == name) {
            return s;
        }
    }
    return std::nullopt;
}

}  // namespace hearth::core
