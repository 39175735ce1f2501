// The hot path allocates nothing per packet: the frame decoder (once its buffer exists), the
// server's decoding of client messages, and encoding into a buffer with room. Counted with a
// replacement of the global operator new in this test executable.

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontends/packet/codec.hpp"
#include "frontends/packet/messages.hpp"
#include "unit/packet/samples.hpp"

namespace {
std::atomic<std::size_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}

void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace hearth::packet {
namespace {

std::size_t allocations() {
    return g_allocations.load(std::memory_order_relaxed);
}

// Every client message's packet, one after the other.
std::string client_stream() {
    std::string out;
    std::apply([&](const auto&... m) { ((void)encode(out, m, kDefaultMaxPacketBytes), ...); },
               samples::to_server());
    return out;
}

TEST(PacketAllocation, DecodingAClientStreamAllocatesNothingPerPacket) {
    const std::string stream = client_stream();
    FrameDecoder decoder;
    std::size_t packets = 0;
    std::size_t messages = 0;
    const auto run = [&](std::size_t split_at) {
        std::string_view pieces[2] = {std::string_view(stream).substr(0, split_at),
                                      std::string_view(stream).substr(split_at)};
        for (std::string_view in : pieces) {
            while (!in.empty()) {
                const FrameResult r = decoder.next(in);
                in.remove_prefix(r.consumed);
                if (r.status != FrameStatus::kPacket) {
                    break;
                }
                ++packets;
                const WireError e = dispatch_to_server(r.packet, [&](const auto&) { ++messages; });
                if (e != WireError::kNone) {
                    return;
                }
            }
        }
    };
    // Warm-up: every split once, so the decoder's buffer has grown to the largest packet split.
    for (std::size_t at = 0; at <= stream.size(); ++at) {
        run(at);
    }
    const std::size_t before = allocations();
    for (std::size_t at = 0; at <= stream.size(); ++at) {
        run(at);
    }
    const std::size_t allocated = allocations() - before;
    EXPECT_EQ(allocated, 0U);
    EXPECT_EQ(messages, packets);
    EXPECT_EQ(packets, 2 * (stream.size() + 1) * std::tuple_size_v<ToServerMessages>);
}

TEST(PacketAllocation, EncodingIntoABufferWithRoomAllocatesNothing) {
    const WorldUpdate update = samples::world_update();
    const CharacterSelected selected = samples::character_selected();
    std::string out;
    out.reserve(64 * 1024);
    const std::size_t before = allocations();
    for (int i = 0; i < 100; ++i) {
        out.clear();
        (void)encode(out, selected);
        (void)encode(out, samples::chat_message());
        (void)encode_batched(out, update);
        (void)encode_batched(out, update, 80);
    }
    EXPECT_EQ(allocations() - before, 0U);
    EXPECT_FALSE(out.empty());
}

}  // namespace
}  // namespace hearth::packet
