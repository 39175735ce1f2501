#pragma once

#include <hearth/connection.hpp>

#include "core/config.hpp"

namespace hearth::core {

/// The WebSocket route settings that the `[websocket]` section describes; a front-end starts from
/// these and applies its own section's overrides.
WsRouteSettings ws_route_settings(const WebSocketConfig& config);

}  // namespace hearth::core
