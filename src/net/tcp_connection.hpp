#pragma once

// Raw TCP connections for stream listeners (include/hearth/stream.hpp). Internal to net.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/stream.hpp>

#include "core/metrics.hpp"
#include "net/server_state.hpp"

namespace hearth::net {

/// A stream listener's route and counters. Immutable after registration but for `withdrawn`;
/// shared by the listener's connections on every io thread (the counters are atomic).
struct StreamListenerState {
    StreamListenerState(const std::string& listener, StreamRoute r, core::MetricsRegistry& metrics,
                        std::shared_ptr<Owner> owner);

    StreamRoute route;
    std::shared_ptr<Owner> owner;
    // Set when the route is removed: a socket accepted meanwhile is closed unread.
    std::atomic<bool> withdrawn{false};
    core::MetricsRegistry& registry;
    core::Gauge* open = nullptr;
    core::Counter* bytes_in = nullptr;
    core::Counter* bytes_out = nullptr;
    std::string listener;

    /// Counts a server-initiated disconnect by reason (idle_timeout, slow_consumer, ...).
    void count_disconnect(std::string_view reason) const;

    PeerCounter peers;  // for route.settings.max_connections_per_ip
};

/// Starts a raw TCP connection for a socket accepted on a stream listener (on the socket's io
/// thread).
void start_tcp_connection(std::shared_ptr<ServerState> server,
                          std::shared_ptr<StreamListenerState> stream, RawSocket socket);

}  // namespace hearth::net
