#pragma once

// The open connections as operators see them (GET /api/v1/connections): implemented by the
// network layer, used by the operator API, so that neither knows the other.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <hearth/connection.hpp>

namespace hearth {

/// One open WebSocket or raw TCP connection.
struct ConnectionInfo {
    ConnectionId id{};
    std::string kind;       // "websocket" or "stream"
    std::string frontend;   // e.g. "native", "hunterpie" (the route's, else the listener's name)
    std::string listener;   // the listener's name
    std::string route;      // the WebSocket path; empty for a stream connection
    std::string peer;       // "ip:port"
    std::string principal;  // who it acts for; empty until its front-end knows
    std::chrono::system_clock::time_point since;
    std::uint64_t bytes_in = 0;   // from the socket, frames and headers included
    std::uint64_t bytes_out = 0;  // to the socket
};

/// Thread-safe; the callbacks run on an io thread.
class ConnectionDirectory {
public:
    virtual ~ConnectionDirectory() = default;
    /// Every open WebSocket and stream connection, by id.
    virtual void list_connections(std::function<void(std::vector<ConnectionInfo>)> done) = 0;
    /// Closes one: a WebSocket with 1008 "disconnected by an operator", a stream connection after
    /// writing what is queued. `done(false)` when no such connection is open.
    virtual void kick_connection(ConnectionId id, std::function<void(bool found)> done) = 0;
};

}  // namespace hearth
