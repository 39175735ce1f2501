#pragma once

// Moonshare's player instances (docs/protocol/moonshare.md, "Player instances"): one /player
// connection's handler, session_auth, connect requests and file transfers.

#include <cstddef>
#include <memory>

#include <hearth/http.hpp>

#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

/// The handler of one /player connection on instance `instance` (0: Alpha, ...).
std::unique_ptr<WsHandler> make_player_handler(std::shared_ptr<MoonshareFrontend::Shared> shared,
                                               std::size_t instance);

}  // namespace hearth::frontends::moonshare
