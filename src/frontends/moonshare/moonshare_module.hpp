#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

/// Moonshare as a module: its token, auth, player and gateway listeners, and the stored files and
/// user id bindings under data_dir/moonshare, which stay while it is disabled.
class MoonshareModule final : public core::SectionModule<MoonshareConfig> {
public:
    explicit MoonshareModule(ModuleContext& context);

    void start(const core::Config& config) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    std::unique_ptr<MoonshareFrontend> frontend_;
};

}  // namespace hearth::frontends::moonshare
