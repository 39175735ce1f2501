#pragma once

#include <memory>
#include <vector>

#include <hearth/module.hpp>

namespace hearth::core {
class ConfigSchema;
}  // namespace hearth::core

namespace hearth::app {

/// Registers each module's config section.
void add_module_sections(core::ConfigSchema& schema);

/// Every module Hearth has, in the order the operator API lists them. Adding a front-end is one
/// line in modules.cpp (and its config section in make_schema).
std::vector<std::unique_ptr<Module>> make_modules(ModuleContext& context);

}  // namespace hearth::app
