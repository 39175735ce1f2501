#pragma once

// The world's operator routes (docs/api.md, "World"): the zones with their population and tick
// figures, a zone's entities (the admin console's map), kicking a character and notices to one
// zone or all. Admin only; the actions are audited. Reads of zone state are answered from the
// zones' shards.

#include "api/operator_api.hpp"
#include "world/world_service.hpp"

namespace hearth::world {

/// The most bytes of a notice's text.
inline constexpr std::size_t kMaxNoticeBytes = 512;

/// Adds the routes under /api/v1/world to `api`; `service` must outlive it.
void add_world_routes(api::OperatorApi& api, WorldServiceImpl& service);

}  // namespace hearth::world
