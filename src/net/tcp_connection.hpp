#pragma once

// Raw TCP connections for stream listeners (include/hearth/stream.hpp). Internal to net.

#include <memory>
#include <string>
#include <string_view>

#include <hearth/stream.hpp>

#include "core/metrics.hpp"
#include "net/server_state.hpp"

namespace hearth::net {

/// A stream listener's route and counters. Immutable after registration; shared by the
/// listener's connections on every io thread (the counters are atomic).
struct StreamListenerState {
    StreamListenerState(const std::string& listener, StreamRoute r, core::MetricsRegistry& metrics);

    StreamRoute route;
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
void start_tcp_connection(std::shared_ptr<ServerState> server, ListenerState& listener,
                          tcp::socket socket);

}  // namespace hearth::net
