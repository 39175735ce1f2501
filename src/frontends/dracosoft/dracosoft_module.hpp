#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/dracosoft/dracosoft.hpp"

namespace hearth::frontends::dracosoft {

/// DracoSoft as a module: its raw TCP listener and the registry of logged-in connections.
class DracosoftModule final : public core::SectionModule<DracosoftConfig> {
public:
    explicit DracosoftModule(ModuleContext& context);

    void start(const core::Config& config) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    std::unique_ptr<DracosoftFrontend> frontend_;
};

}  // namespace hearth::frontends::dracosoft
