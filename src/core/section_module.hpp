#pragma once

// What most modules share: a config section with an `enabled` key, one share of the network, and
// a reload that restarts the module when a key it cannot apply live changed.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <hearth/http.hpp>
#include <hearth/module.hpp>

#include "core/config.hpp"

namespace hearth::core {

/// A module configured by `Section` (which has `kName` and a bool `enabled`). Subclasses build
/// their service in `start` on `routes()` and call `routes().open()`; `apply` takes the keys that
/// apply live; `release` drops the service once its connections are closed.
template <class Section>
class SectionModule : public Module {
public:
    SectionModule(ModuleContext& context, ModuleInfo info)
        : context_(context), info_(std::move(info)), routes_(context.routes(info_.name)) {}

    const ModuleInfo& info() const override { return info_; }

    bool enabled_in(const Config& config) const override { return config.get<Section>().enabled; }

    ReloadOutcome reload(const Config& running, const Config& next) override {
        if (!context_.restart_keys(running, next, std::string(Section::kName)).empty()) {
            return {.applied = true, .reason = {}, .restart_keys = {}, .restart = true};
        }
        apply(next);
        return {};
    }

    std::vector<ModuleCounter> counters() const override {
        return {{"connections", static_cast<double>(routes_->open_connections())}};
    }

    std::vector<auth::AccessPolicy> doors() const override {
        std::lock_guard lock(doors_mutex_);
        return doors_;
    }

    void stop(std::chrono::steady_clock::time_point deadline, StopCause cause) override {
        routes_->withdraw(close_notice(cause, info_.name), deadline);
        release();
        set_doors({});
    }

protected:
    /// Applies the keys that change live (route settings, limits) to the running service.
    virtual void apply(const Config& next) = 0;
    /// Drops the service; its connections have been closed and its routes withdrawn.
    virtual void release() = 0;

    ModuleRoutes& routes() { return *routes_; }

    /// What `doors` answers from now on (set at start, and by a reload that changes it).
    void set_doors(std::vector<auth::AccessPolicy> doors) {
        std::lock_guard lock(doors_mutex_);
        doors_ = std::move(doors);
    }

    ModuleContext& context_;

private:
    ModuleInfo info_;
    // Made once, with the module: `counters` reads it from any thread.
    const std::unique_ptr<ModuleRoutes> routes_;
    mutable std::mutex doors_mutex_;
    std::vector<auth::AccessPolicy> doors_;
};

}  // namespace hearth::core
