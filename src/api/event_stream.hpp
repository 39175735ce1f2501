#pragma once

// /api/v1/events/stream: the event bus live, over a WebSocket, for operators (docs/api.md).

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>

#include <hearth/http.hpp>

#include "core/events.hpp"

namespace hearth::core {
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::auth {
class OperatorAuth;
}

namespace hearth::api {

inline constexpr std::string_view kEventStreamPath = "/api/v1/events/stream";
/// The stream's subprotocol; a browser offers it beside hearth.bearer.<token>.
inline constexpr std::string_view kEventStreamSubprotocol = "hearth.events";

/// One event as the operator API shows it: {seq, time, kind, module, subject, detail, principal}.
boost::json::object event_json(const core::Event& e);

/// The filters of GET /api/v1/events and of the stream: `type` (a kind's name), `module`, `since`
/// (epoch milliseconds or RFC 3339); a 400 invalid_parameter naming the parameter otherwise.
std::variant<core::EventFilter, HttpResponse> parse_event_filter(const HttpRequest& req);

struct EventStreamLimits {
    /// Streams open at once, over every operator; one more is refused with 503.
    std::size_t max_streams = 32;
    /// Events replayed from the history on connect (`cursor`), at most.
    std::size_t max_replay = 1000;
    /// Live events held while the replay is being sent; past it the stream closes with 1013 (the
    /// client reconnects with its last seq as the cursor).
    std::size_t max_held_during_replay = 1000;
};

/// Registers the stream on `listener`. `allowed_origins` is read on every upgrade (it follows
/// reloads). `events` and `operators` must outlive the server's connections.
void add_event_stream_route(Router& router, const std::string& listener, core::EventBus& events,
                            const auth::OperatorAuth& operators,
                            std::shared_ptr<const WsRouteSettings> settings,
                            std::function<std::vector<std::string>()> allowed_origins,
                            core::MetricsRegistry& metrics, EventStreamLimits limits = {});

}  // namespace hearth::api
