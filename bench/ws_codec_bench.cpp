// Micro-benchmarks of the WebSocket codec's hot paths: parsing (unmasking in place, UTF-8
// validation), header encoding, per-message compression of a broadcast, and a relay's receive
// path for a compressed message (HunterPie's push): inflate, then either deflate again for the
// recipients or forward the received compressed form.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "net/ws_codec.hpp"

namespace {

using namespace hearth::net::ws;

constexpr std::array<std::uint8_t, 4> kMask = {0x12, 0x34, 0x56, 0x78};

std::string json_like(std::size_t n) {
    std::string s = "[";
    for (int i = 0; s.size() < n; ++i) {
        s += "{\"id\":" + std::to_string(i) + ",\"name\":\"player" + std::to_string(i % 17) +
             "\",\"x\":" + std::to_string(i * 37 % 1000) + ",\"online\":true},";
    }
    s.back() = ']';
    return s;
}

// Each iteration restores the masked frame (parsing unmasks it in place) and parses it; the copy
// is part of the measurement but is a plain memcpy, far cheaper than what it restores.
void parse_frame(benchmark::State& state, Opcode opcode, const std::string& payload) {
    const std::string wire = encode_client_frame(opcode, payload, kMask);
    std::vector<std::uint8_t> buffer(wire.begin(), wire.end());
    FrameParser parser({}, false, nullptr);
    for (auto _ : state) {
        std::copy(wire.begin(), wire.end(), buffer.begin());
        const auto [event, consumed] = parser.next(buffer);
        benchmark::DoNotOptimize(event.data.data());
        benchmark::DoNotOptimize(consumed);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(wire.size()));
}

void BM_ParseMaskedText100(benchmark::State& state) {
    parse_frame(state, Opcode::kText, json_like(100).substr(0, 100));
}
BENCHMARK(BM_ParseMaskedText100);

void BM_ParseMaskedBinary16K(benchmark::State& state) {
    std::string payload(16 * 1024, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(i * 131 + 7);
    }
    parse_frame(state, Opcode::kBinary, payload);
}
BENCHMARK(BM_ParseMaskedBinary16K);

void BM_EncodeHeader(benchmark::State& state) {
    std::array<std::uint8_t, kMaxHeaderBytes> out{};
    std::uint64_t length = 100;
    for (auto _ : state) {
        benchmark::DoNotOptimize(length);
        const std::size_t n = encode_header(out, Opcode::kText, true, false, length);
        benchmark::DoNotOptimize(n);
        benchmark::DoNotOptimize(out.data());
        length = (length * 7 + 1) & 0x3FFFF;  // all three length encodings
    }
}
BENCHMARK(BM_EncodeHeader);

void BM_DeflateMessage2K(benchmark::State& state) {
    const std::string message = json_like(2048);
    for (auto _ : state) {
        std::string compressed = deflate_message(message);
        benchmark::DoNotOptimize(compressed.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(message.size()));
}
BENCHMARK(BM_DeflateMessage2K);

// A relay receiving a compressed 2 KB message and preparing it for compressing recipients.
// `forward`: the received compressed form is reused (make_text(data, deflated)); otherwise the
// payload is deflated again, once, as any broadcast.
void relay_compressed(benchmark::State& state, bool forward) {
    const std::string message = json_like(2048);
    const std::string wire =
        encode_client_frame(Opcode::kText, deflate_message(message), kMask, true, true);
    std::vector<std::uint8_t> buffer(wire.begin(), wire.end());
    Inflater inflater;  // one per io thread: its output buffer is reused message after message
    FrameParser parser({}, true, &inflater);
    for (auto _ : state) {
        std::copy(wire.begin(), wire.end(), buffer.begin());
        const auto [event, consumed] = parser.next(buffer);
        const hearth::SharedPayload payload =
            forward && !event.deflated.empty()
                ? hearth::make_text(std::string(event.data), std::string(event.deflated))
                : hearth::make_text(std::string(event.data));
        const std::string_view sent =
            payload->derived([](std::string_view b) { return deflate_message(b); });
        benchmark::DoNotOptimize(sent.data());
        benchmark::DoNotOptimize(consumed);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_RelayCompressedPush2K_Redeflate(benchmark::State& state) {
    relay_compressed(state, false);
}
BENCHMARK(BM_RelayCompressedPush2K_Redeflate);

void BM_RelayCompressedPush2K_Forward(benchmark::State& state) {
    relay_compressed(state, true);
}
BENCHMARK(BM_RelayCompressedPush2K_Forward);

}  // namespace
