#pragma once

// What a game connection and its character's world sink (world_sink.*) share to send packets:
// the counters of what goes out, the Error packet, and the cut of a text to a field's bound.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <hearth/character_store.hpp>
#include <hearth/payload.hpp>

#include "core/metrics.hpp"
#include "frontends/packet/messages.hpp"

namespace hearth::frontends::packet {

namespace wire = ::hearth::packet;

/// The counters of what the front-end sends. They belong to the metrics registry, which outlives
/// every module: a sink the world still holds after its front-end went (until `left`) may use
/// them.
struct SendCounters {
    core::Counter* session_packets = nullptr;  // hearth_packet_packets_total{out, session}
    core::Counter* world_packets = nullptr;    // hearth_packet_packets_total{out, world}
    // By error code (index 0 unused: no code is 0).
    std::array<core::Counter*, static_cast<std::size_t>(wire::kLastErrorCode) + 1> errors{};
    core::Counter* world_bytes = nullptr;      // hearth_packet_world_bytes_total
    core::Histogram* update_bytes = nullptr;   // hearth_packet_world_update_bytes
    core::Counter* world_overflows = nullptr;  // hearth_packet_world_overflows_total

    /// Looks every counter up once: a client can make the server send 200 errors a second per
    /// connection, and a lookup takes the registry's lock, which a scrape holds while it formats.
    explicit SendCounters(core::MetricsRegistry& metrics);
};

/// One Error packet, counted; `message` replaces the code's default text.
SharedPayload error_packet(const SendCounters& counters, wire::ErrorCode code, std::uint16_t opcode,
                           std::uint32_t detail, std::string_view message = {});

/// The number of packets in `encoded` (whole packets, as the codec writes them).
std::size_t packets_in(std::string_view encoded) noexcept;

wire::Looks looks_of(const store::CharacterLooks& looks) noexcept;

/// At most `max` bytes of `text`, cut at a UTF-8 character boundary.
std::string_view utf8_prefix(std::string_view text, std::size_t max) noexcept;

}  // namespace hearth::frontends::packet
