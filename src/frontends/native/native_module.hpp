#pragma once

#include <memory>

#include "core/section_module.hpp"
#include "frontends/native/native.hpp"

namespace hearth::frontends::native {

/// The native protocol as a module: /ws on the HTTP API listener, topics under "native:".
class NativeModule final : public core::SectionModule<NativeConfig> {
public:
    explicit NativeModule(ModuleContext& context);

    void start(const core::Config& config) override;

private:
    void apply(const core::Config& next) override;
    void release() override;

    std::unique_ptr<NativeFrontend> frontend_;
};

}  // namespace hearth::frontends::native
