#pragma once

// Stable snake_case names of the world's enumerations, for logs, metrics labels and the operator
// API's error codes.

#include <string_view>

#include <hearth/world.hpp>

namespace hearth::world {

std::string_view world_error_name(WorldError error) noexcept;
std::string_view leave_reason_name(LeaveReason reason) noexcept;

}  // namespace hearth::world
