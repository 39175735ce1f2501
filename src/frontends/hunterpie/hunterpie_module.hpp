#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/hunterpie/hunterpie.hpp"

namespace hearth::frontends::hunterpie {

/// HunterPie sync as a module: its listener (port 5001), and the operator notice
/// POST /api/v1/hunterpie/servermsg on the HTTP API listener.
class HunterpieModule final : public core::SectionModule<HunterpieConfig> {
public:
    explicit HunterpieModule(ModuleContext& context);

    void start(const core::Config& config) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    std::unique_ptr<HunterpieFrontend> frontend_;
};

}  // namespace hearth::frontends::hunterpie
