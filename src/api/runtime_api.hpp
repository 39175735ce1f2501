#pragma once

// /api/v1/connections, /api/v1/topics, /api/v1/mailboxes, /api/v1/events (docs/api.md): what the
// server is doing now, for operators.

#include <hearth/connections.hpp>

#include "api/operator_api.hpp"

namespace hearth::core {
class EventBus;
}  // namespace hearth::core
namespace hearth::hub {
class Hub;
}  // namespace hearth::hub
namespace hearth::store {
class Mailboxes;
}  // namespace hearth::store

namespace hearth::api {

/// Adds the connection, topic, mailbox and event routes; the objects must outlive the routes.
void add_runtime_routes(OperatorApi& api, ConnectionDirectory& connections, hub::Hub& hub,
                        store::Mailboxes& mailboxes, core::EventBus& events);

}  // namespace hearth::api
