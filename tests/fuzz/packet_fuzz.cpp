// Fuzz target: the game packet stream (src/frontends/packet/codec.hpp, messages.hpp), as the packet
// front-end reads it and as the client library reads the server's: ROSE frames reassembled from
// the bytes as they arrive, each payload dispatched as a client message and as a server message.
//
// Input: byte 0 seeds the split points, byte 1 picks the maximum packet size, the rest is the
// stream.
//
// Checked on every input: no crash or sanitizer report; FrameDecoder fed in random pieces yields
// the same packets as decode_packet over the whole stream, holds at most one packet, and stops for
// good at a bad size; every message that decodes encodes again (its fields are within their
// bounds) and reads back to the same message; a batch split by encode_batched at the smallest
// maximum reads back to the same entries.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "frontends/packet/codec.hpp"
#include "frontends/packet/messages.hpp"
#include "fuzz_check.hpp"

namespace {

namespace pk = hearth::packet;
using hearth::fuzz::check;

struct Got {
    pk::FrameStatus status;
    std::uint16_t type;
    std::string payload;
    bool operator==(const Got&) const = default;
};

// Every packet of `bytes` (a whole batch) as messages of type M, merged into one.
template <class M>
M read_batch(const std::string& bytes, std::size_t max) {
    M merged{};
    std::string_view in = bytes;
    bool more = true;
    while (!in.empty()) {
        check(more, "a packet after the last of a batch");
        const pk::FrameResult r = pk::decode_packet(in, max);
        check(r.status == pk::FrameStatus::kPacket, "a batch packet that does not frame");
        check(r.packet.type == static_cast<std::uint16_t>(M::kOpcode), "batch opcode");
        in.remove_prefix(r.consumed);
        const pk::Decoded<M> d = pk::decode<M>(r.packet.payload);
        check(d.error == pk::WireError::kNone, "a batch packet that does not decode");
        more = d.message.more;
        if constexpr (std::is_same_v<M, pk::WorldUpdate>) {
            merged.tick = d.message.tick;
            merged.despawns.insert(merged.despawns.end(), d.message.despawns.begin(),
                                   d.message.despawns.end());
            merged.spawns.insert(merged.spawns.end(), d.message.spawns.begin(),
                                 d.message.spawns.end());
            merged.moves.insert(merged.moves.end(), d.message.moves.begin(), d.message.moves.end());
        } else {
            merged.characters.insert(merged.characters.end(), d.message.characters.begin(),
                                     d.message.characters.end());
        }
    }
    check(!more, "a batch whose last packet says more");
    return merged;
}

struct Again {
    template <class M>
    void operator()(const M& m) const {
        std::string out;
        check(pk::encode(out, m, pk::kLargestMaxPacketBytes) == pk::WireError::kNone,
              "a decoded message that does not encode");
        const pk::FrameResult r = pk::decode_packet(out, pk::kLargestMaxPacketBytes);
        check(r.status == pk::FrameStatus::kPacket && r.consumed == out.size() &&
                  r.packet.type == static_cast<std::uint16_t>(M::kOpcode),
              "an encoded message that is not one packet");
        const pk::Decoded<M> d = pk::decode<M>(r.packet.payload);
        check(d.error == pk::WireError::kNone && d.message == m, "message round trip");

        if constexpr (std::is_same_v<M, pk::WorldUpdate> || std::is_same_v<M, pk::CharacterList>) {
            std::string batch;
            check(pk::encode_batched(batch, m, pk::kSmallestMaxPacketBytes) == pk::WireError::kNone,
                  "a decoded batch that does not split");
            M merged = read_batch<M>(batch, pk::kSmallestMaxPacketBytes);
            M expected = m;
            expected.more = false;
            check(merged == expected, "batch entries changed by the split");
        }
    }
};

void check_payload(const pk::Packet& p) {
    const pk::WireError to_server = pk::dispatch_to_server(p, Again{});
    const pk::WireError to_client = pk::dispatch_to_client(p, Again{});
    check(to_server != pk::WireError::kTooLarge && to_client != pk::WireError::kTooLarge,
          "decoding never reports an encoding error");
}

std::size_t max_of(std::uint8_t b) {
    switch (b % 4) {
        case 0:
            return pk::kDefaultMaxPacketBytes;
        case 1:
            return pk::kSmallestMaxPacketBytes;
        case 2:
            return pk::kLargestMaxPacketBytes;
        default:
            return 6 + b;  // below what a server may configure: the decoder must still hold
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hearth::fuzz::Input in(data, size);
    const std::uint64_t seed = in.byte() + 1U;
    const std::size_t max = max_of(in.byte());
    const std::string_view stream = in.rest();

    // The whole stream, packet by packet.
    std::vector<Got> whole;
    std::string_view rest = stream;
    for (;;) {
        const pk::FrameResult r = pk::decode_packet(rest, max);
        if (r.status == pk::FrameStatus::kNeedMore) {
            check(r.consumed == 0, "consumed without a packet");
            break;
        }
        if (r.status != pk::FrameStatus::kPacket) {
            whole.push_back({r.status, 0, {}});
            break;
        }
        check(r.consumed == pk::kHeaderBytes + r.packet.payload.size() && r.consumed <= max &&
                  r.consumed <= rest.size(),
              "packet size");
        whole.push_back({r.status, r.packet.type, std::string(r.packet.payload)});
        check_payload(r.packet);
        rest.remove_prefix(r.consumed);
    }

    // The same stream in pieces, through a connection's decoder.
    std::vector<Got> pieces;
    pk::FrameDecoder decoder(max);
    hearth::fuzz::Splitter split(seed);
    std::size_t fed = 0;
    bool failed = false;
    while (fed < stream.size() && !failed) {
        const std::size_t n = split.next(stream.size() - fed);
        std::string_view piece = stream.substr(fed, n);
        fed += n;
        while (!piece.empty()) {
            const pk::FrameResult r = decoder.next(piece);
            check(r.consumed <= piece.size(), "consumed beyond the input");
            check(decoder.buffered() <= max, "decoder holds more than a packet");
            piece.remove_prefix(r.consumed);
            if (r.status == pk::FrameStatus::kNeedMore) {
                check(piece.empty(), "need more with input left");
                break;
            }
            if (r.status != pk::FrameStatus::kPacket) {
                pieces.push_back({r.status, 0, {}});
                check(decoder.next("x").status == r.status && decoder.failed(),
                      "a size error is not final");
                check(decoder.buffered() == 0, "a failed decoder keeps bytes");
                failed = true;
                break;
            }
            pieces.push_back({r.status, r.packet.type, std::string(r.packet.payload)});
        }
    }
    check(whole == pieces, "packets depend on the split points");
    check(failed || decoder.buffered() == rest.size(), "bytes kept after the last packet");
    return 0;
}
