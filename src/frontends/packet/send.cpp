#include "frontends/packet/send.hpp"
#include <algorithm>
#include <string>
#include <utility>

namespace hearth::frontends::packet {

namespace {

constexpr std::string_view kPacketsHelp =
    "Game packets, by direction and opcode class (session, character, world, unknown).";

}  // namespace

SendCounters::SendCounters(core::MetricsRegistry& m)
    : session_packets(&m.counter("hearth_packet_packets_total", kPacketsHelp,
                                 {{"direction", "out"}, {"class", "session"}})),
      world_packets(&m.counter("hearth_packet_packets_total", kPacketsHelp,
                               {{"direction", "out"}, {"class", "world"}})),
      world_bytes(&m.counter("hearth_packet_world_bytes_total",
                             "Bytes of the world's packets sent to game clients (world updates, "
                             "corrections, combat, chat, notices, errors answering world "
                             "requests).")),
      update_bytes(&m.histogram(
          "hearth_packet_world_update_bytes",
          "Bytes of one tick's WorldUpdate to one client (all its packets): what a client is sent "
          "per tick, bounded by what it sees.",
          {64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072})),
      world_overflows(
          &m.counter("hearth_packet_world_overflows_total",
                     "Game connections closed as slow consumers when a world packet found their "
                     "outbound bound (queued, and posted from a zone's thread: 256 KiB) full.")) {
    for (std::size_t i = 1; i < errors.size(); ++i) {
        errors[i] =
            &m.counter("hearth_packet_errors_total", "Error packets sent to game clients, by code.",
                       {{"code", std::string(wire::error_name(static_cast<wire::ErrorCode>(i)))}});
    }
}

SharedPayload error_packet(const SendCounters& counters, wire::ErrorCode code, std::uint16_t opcode,
                           std::uint32_t detail, std::string_view message) {
    std::string out;
    const wire::Error e{.code = code,
                        .opcode = opcode,
                        .detail = detail,
                        .message = message.empty() ? wire::error_text(code) : message};
    (void)wire::encode(out, e);  // within every bound: the texts are short
    counters.errors.at(static_cast<std::size_t>(code))->inc();
    counters.session_packets->inc();
    return make_binary(std::move(out));
}

std::size_t packets_in(std::string_view encoded) noexcept {
    std::size_t n = 0;
    for (std::size_t at = 0; at + wire::kHeaderBytes <= encoded.size(); ++n) {
        const std::size_t size =
            static_cast<unsigned char>(encoded[at]) |
            (static_cast<std::size_t>(static_cast<unsigned char>(encoded[at + 1])) << 8);
        at += std::max(size, wire::kHeaderBytes);  // the codec never writes less
    }
    return n;
}

wire::Looks looks_of(const store::CharacterLooks& l) noexcept {
    return {.body = l.body, .face = l.face, .hair = l.hair, .hair_color = l.hair_color};
}

std::string_view utf8_prefix(std::string_view text, std::size_t max) noexcept {
    if (text.size() <= max) {
        return text;
    }
    std::size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
        --n;
    }
    return text.substr(0, n);
}

}  // namespace hearth::frontends::packet
