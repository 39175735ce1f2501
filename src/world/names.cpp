#include "world/names.hpp"

namespace hearth::world {

std::string_view world_error_name(WorldError error) noexcept {
    switch (error) {
        case WorldError::kOk:
            return "ok";
        case WorldError::kDisabled:
            return "world_disabled";
        case WorldError::kUnavailable:
            return "unavailable";
        case WorldError::kNoSuchZone:
            return "no_such_zone";
        case WorldError::kNoSuchTarget:
            return "no_such_target";
        case WorldError::kOutOfRange:
            return "target_out_of_range";
        case WorldError::kDead:
            return "dead";
        case WorldError::kNotDead:
            return "not_dead";
        case WorldError::kRateLimited:
            return "rate_limited";
    }
    return "unknown";
}

std::string_view leave_reason_name(LeaveReason reason) noexcept {
    switch (reason) {
        case LeaveReason::kLogout:
            return "logout";
        case LeaveReason::kDisconnected:
            return "disconnected";
        case LeaveReason::kKicked:
            return "kicked";
        case LeaveReason::kShutdown:
            return "shutdown";
        case LeaveReason::kTakenOver:
            return "taken_over";
    }
    return "unknown";
}

}  // namespace hearth::world
