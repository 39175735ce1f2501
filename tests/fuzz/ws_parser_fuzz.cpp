// libFuzzer target for the WebSocket frame parser (tests/fuzz/CMakeLists.txt; clang only).
//
// Input: byte 0 picks the settings (bit 0: permessage-deflate; bits 1-3: a message limit; bit 4:
// structured mode; bit 5: binary messages streamed in parts, as Moonshare's routes have them, with
// the same limit on a streamed message), byte 1 seeds the split points, the rest is the wire. In
// structured mode the rest is read as frame descriptions that are encoded into valid masked frames
// (with real deflate data when RSV1 is asked for), so that the fuzzer reaches fragmentation and
// decompression rather than stopping at the mask bit.
//
// The wire is also given to negotiate_deflate as a Sec-WebSocket-Extensions value.
//
// Checked on every input: no crash or sanitizer report; `consumed` never exceeds the input; every
// event obeys its invariants (a forwardable compressed form inflates to the message it came with;
// streamed parts start with `first`, end with `last` and stay within their bound); and the events
// are the same whether the wire arrives whole or in random pieces (streamed parts, whose split
// follows the arrival, compared joined).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/ws_codec.hpp"
#include "util/utf8.hpp"

namespace {

using hearth::MessageKind;
using hearth::net::ws::FrameEvent;
using hearth::net::ws::FrameParser;
using hearth::net::ws::Inflater;
using hearth::net::ws::Opcode;
using Type = FrameEvent::Type;

constexpr std::array<std::size_t, 8> kLimits = {0, 1, 16, 125, 126, 1000, 70000, 1 << 20};

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "ws_parser_fuzz: %s\n", what);
        std::abort();
    }
}

struct Seen {
    Type type;
    MessageKind kind;
    std::uint16_t code;
    std::string data;
    bool operator==(const Seen&) const = default;
};

class Rng {
public:
    explicit Rng(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    std::uint64_t next() {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        return state_;
    }

private:
    std::uint64_t state_;
};

void check_event(const FrameEvent& e, std::size_t limit, bool streaming) {
    switch (e.type) {
        case Type::kMessage:
            check(e.data.size() <= limit, "message over the limit");
            check(e.kind == MessageKind::kBinary || hearth::util::valid_utf8(e.data),
                  "text message not UTF-8");
            check(!streaming || e.kind == MessageKind::kText || e.compressed,
                  "an uncompressed binary message reassembled while streaming");
            check(e.deflated.empty() || e.compressed, "a deflated form of an uncompressed message");
            if (!e.deflated.empty()) {
                check(e.deflated.size() < e.data.size(), "deflated form not smaller");
                Inflater own;
                std::string out;
                check(own.inflate(e.deflated, limit, out) == Inflater::Status::kOk && out == e.data,
                      "the deflated form does not inflate to the message");
            }
            break;
        case Type::kBinaryPart:
            check(streaming, "a binary part without streaming");
            check(e.kind == MessageKind::kBinary, "a part of a text message");
            break;
        case Type::kPing:
        case Type::kPong:
            check(e.data.size() <= 125, "control payload over 125 bytes");
            break;
        case Type::kClose:
            check(e.data.size() <= 123, "close reason over 123 bytes");
            check(e.code == 1005 || (e.code >= 1000 && e.code <= 4999), "close code");
            check(hearth::util::valid_utf8(e.data), "close reason not UTF-8");
            break;
        case Type::kError:
            check(e.code == 1002 || e.code == 1007 || e.code == 1009, "error code");
            check(!e.data.empty(), "error without a reason");
            break;
        case Type::kNeedMore:
            break;
    }
}

// The caller's read loop over `wire`, arriving whole (seed 0) or in random pieces.
std::vector<Seen> run(std::string_view wire, bool deflate, std::size_t limit, bool streaming,
                      std::uint64_t seed) {
    Inflater inflater;
    FrameParser parser({limit, streaming, limit}, deflate, &inflater);
    std::vector<Seen> events;
    // The streamed message in progress, joined: its parts' split follows the arrival.
    std::optional<std::string> streamed;
    std::vector<std::uint8_t> buffer;
    Rng rng(seed);
    std::size_t fed = 0;
    bool failed = false;
    while (fed < wire.size() && !failed) {
        std::size_t step = wire.size() - fed;
        if (seed != 0) {
            const std::uint64_t r = rng.next();
            // Mostly small pieces, sometimes a big one.
            step =
                std::min<std::size_t>(step, (r & 3) == 0 ? 1 + (r >> 8) % 4096 : 1 + (r >> 8) % 16);
        }
        buffer.insert(buffer.end(), wire.begin() + static_cast<std::ptrdiff_t>(fed),
                      wire.begin() + static_cast<std::ptrdiff_t>(fed + step));
        fed += step;
        for (;;) {
            const auto [event, consumed] = parser.next(buffer);
            check(consumed <= buffer.size(), "consumed more than the input");
            check_event(event, limit, streaming);
            if (event.type == Type::kBinaryPart) {
                check(event.first == !streamed.has_value(), "first not at the start of a message");
                if (event.first) {
                    streamed.emplace();
                }
                streamed->append(event.data);
                check(limit == 0 || streamed->size() <= limit, "streamed message over its bound");
                buffer.erase(buffer.begin(),
                             buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
                if (event.last) {
                    events.push_back(
                        {Type::kMessage, MessageKind::kBinary, 0, std::move(*streamed)});
                    streamed.reset();
                }
                continue;
            }
            check(event.type != Type::kMessage || !streamed.has_value(),
                  "a message inside a streamed one");
            // Copying the data reads every byte of it: a dangling view is a sanitizer report.
            Seen s{event.type, event.type == Type::kMessage ? event.kind : MessageKind::kText,
                   event.code, std::string(event.data)};
            buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(consumed));
            if (s.type == Type::kNeedMore) {
                break;
            }
            events.push_back(std::move(s));
            if (event.type == Type::kError) {
                const auto [again, again_consumed] = parser.next(buffer);
                check(again.type == Type::kError && again.code == event.code && again_consumed == 0,
                      "error not sticky");
                failed = true;
                break;
            }
        }
    }
    if (streamed) {
        events.push_back({Type::kBinaryPart, MessageKind::kBinary, 0, std::move(*streamed)});
    }
    return events;
}

// Structured mode: records of [flags][length][payload...] become masked frames. flags: bits 0-3
// opcode, bit 4 FIN, bit 5 RSV1, bit 6 compress the payload, bit 7 use a 2-byte length.
std::string build_frames(std::span<const std::uint8_t> in) {
    std::string wire;
    std::size_t i = 0;
    while (i < in.size()) {
        const std::uint8_t flags = in[i++];
        std::size_t length = 0;
        if (i < in.size()) {
            length = in[i++];
        }
        if ((flags & 0x80) != 0 && i < in.size()) {
            length = length * 256 + in[i++];
        }
        length = std::min(length, in.size() - i);
        std::string payload(reinterpret_cast<const char*>(in.data() + i), length);
        i += length;
        if ((flags & 0x40) != 0) {
            payload = hearth::net::ws::deflate_message(payload);
        }
        const std::array<std::uint8_t, 4> mask = {static_cast<std::uint8_t>(flags), 0x5A,
                                                  static_cast<std::uint8_t>(length), 0xC3};
        wire +=
            hearth::net::ws::encode_client_frame(static_cast<Opcode>(flags & 0x0F), payload, mask,
                                                 (flags & 0x10) != 0, (flags & 0x20) != 0);
    }
    return wire;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const bool deflate = (data[0] & 1) != 0;
    const std::size_t limit = kLimits[(data[0] >> 1) & 7];
    const bool structured = (data[0] & 0x10) != 0;
    const bool streaming = (data[0] & 0x20) != 0;
    const std::uint64_t seed = data[1] + 1U;
    const std::span<const std::uint8_t> rest(data + 2, size - 2);
    const std::string wire =
        structured ? build_frames(rest)
                   : std::string(reinterpret_cast<const char*>(rest.data()), rest.size());

    // The extension header parser reads untrusted text too; it may only accept or decline.
    if (const auto accepted = hearth::net::ws::negotiate_deflate(wire)) {
        check(*accepted ==
                  "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
              "unexpected negotiation result");
    }

    const std::vector<Seen> whole = run(wire, deflate, limit, streaming, 0);
    const std::vector<Seen> pieces = run(wire, deflate, limit, streaming, seed);
    check(whole == pieces, "events depend on the split points");
    return 0;
}
