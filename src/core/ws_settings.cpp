#include "core/ws_settings.hpp"

namespace hearth::core {

WsRouteSettings ws_route_settings(const WebSocketConfig& c) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    WsRouteSettings s;
    s.max_message_bytes = static_cast<std::size_t>(c.max_message_bytes);
    s.max_outbound_bytes = static_cast<std::size_t>(c.max_outbound_bytes);
    s.overflow = c.overflow_policy == "drop" ? OverflowPolicy::kDrop : OverflowPolicy::kClose;
    s.idle_timeout = seconds(c.idle_timeout_s);
    s.ping_interval = seconds(c.ping_interval_s);
    s.pong_timeout = seconds(c.pong_timeout_s);
    s.close_timeout = milliseconds(c.close_timeout_ms);
    s.write_timeout = milliseconds(c.write_timeout_ms);
    s.first_message_timeout = milliseconds(c.first_message_timeout_ms);
    s.compression = c.compression;
    s.compression_threshold_bytes = static_cast<std::size_t>(c.compression_threshold_bytes);
    s.max_connections_per_ip = static_cast<std::size_t>(c.max_connections_per_ip);
    s.max_messages_per_s = c.max_messages_per_s;
    s.message_burst = c.message_burst;
    s.max_inflated_bytes_per_s = static_cast<std::uint64_t>(c.max_inflated_bytes_per_s);
    s.inflated_burst_bytes = static_cast<std::uint64_t>(c.inflated_burst_bytes);
    s.max_bytes_per_s = static_cast<std::uint64_t>(c.max_bytes_per_s);
    s.bytes_burst = static_cast<std::uint64_t>(c.bytes_burst);
    return s;
}

}  // namespace hearth::core
