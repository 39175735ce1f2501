#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/homestead/homestead.hpp"

namespace hearth::frontends::homestead {

/// The Homestead gateway as a module: its listener (/health, /sync) and the mod-to-bot queues,
/// which stay in the store while it is disabled.
class HomesteadModule final : public core::SectionModule<HomesteadConfig> {
public:
    explicit HomesteadModule(ModuleContext& context);

    void start(const core::Config& config) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    std::unique_ptr<HomesteadFrontend> frontend_;
};

}  // namespace hearth::frontends::homestead
