#pragma once

#include <string_view>

namespace hearth::util {

// Defined in a file CMake generates (version.cpp.in), so that a new commit recompiles one file.
extern const std::string_view kVersion;
extern const std::string_view kCommit;
extern const std::string_view kBuildType;

}  // namespace hearth::util
