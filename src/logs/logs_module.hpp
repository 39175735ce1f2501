#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/section_module.hpp"
#include "logs/logs_config.hpp"

namespace hearth::logs {

class LogStream;

/// Another listener the log routes are served on, under a path prefix.
struct LogsListener {
    ListenerSpec spec;
    std::string prefix;
    bool operator==(const LogsListener&) const = default;
};
/// Where else a config wants the log routes (HunterPie's listener: the original serves them
/// there); the app knows, the logs layer does not know HunterPie.
using LogsElsewhere = std::function<std::optional<LogsListener>(const core::Config&)>;

/// The logs subsystem as a module: /logs/add, /logs/listen and /logs.html on the HTTP API
/// listener and on the listener `elsewhere` names, GET /api/v1/logs, and the server's own lines
/// streamed to listeners.
class LogsModule final : public core::SectionModule<LogsConfig> {
public:
    LogsModule(ModuleContext& context, LogsElsewhere elsewhere);
    ~LogsModule() override;

    void start(const core::Config& config) override;
    ReloadOutcome reload(const core::Config& running, const core::Config& next) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    LogsElsewhere elsewhere_;
    std::shared_ptr<LogStream> stream_;
    std::vector<std::pair<std::string, std::string>> routes_at_;  // (listener, path prefix)
};

}  // namespace hearth::logs
