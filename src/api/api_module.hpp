#pragma once

#include <memory>
#include <vector>

#include <hearth/http.hpp>
#include <hearth/module.hpp>

#include "api/operator_api.hpp"

namespace hearth::api {

/// The operator API as a module (/api/v1 on the HTTP API listener: accounts, tokens, connections,
/// topics, mailboxes, events and their stream, modules). It cannot be disabled: it is how
/// operators enable the others.
class ApiModule final : public Module {
public:
    explicit ApiModule(ModuleContext& context);
    ~ApiModule() override;

    const ModuleInfo& info() const override { return info_; }
    bool enabled_in(const core::Config&) const override { return true; }
    void start(const core::Config& config) override;
    ReloadOutcome reload(const core::Config& running, const core::Config& next) override;
    void stop(std::chrono::steady_clock::time_point deadline, StopCause cause) override;

    std::vector<auth::AccessPolicy> doors() const override;

    /// Every /api/v1 route, whichever module serves it (the OpenAPI check).
    std::vector<RouteInfo> routes() const;

private:
    ModuleContext& context_;
    ModuleInfo info_;
    const std::unique_ptr<ModuleRoutes> routes_;
    std::unique_ptr<OperatorApi> api_;
};

}  // namespace hearth::api
