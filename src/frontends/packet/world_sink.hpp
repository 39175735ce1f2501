#pragma once

// What the world tells one game connection's character (include/hearth/world.hpp's PlayerSink),
// as the packets of docs/protocol/packets.md, sent on the connection.
//
// The world calls a sink on the shard of the character's zone, which need not be the
// connection's io thread. The sink sends from there: the transport posts a send from another
// thread to the connection's thread, and counts its bytes against the connection's outbound bound
// (the packet listener's max_outbound_bytes, 256 KiB) from the moment of the send, together with
// what is queued on the connection. Past the bound the connection is a slow consumer: the send
// returns kDropped, the transport closes the connection (hearth_stream_disconnects_total
// {reason="slow_consumer"}) and tells its handler (StreamHandler::on_slow_consumer), whose
// character then leaves the world at once. So what the world can make a connection hold, posted
// or queued, is bounded by the transport, whichever thread its zone runs on. The transport keeps
// the order of sends across threads (a send on the connection's thread goes behind what other
// threads posted), so a character that changed zones (sent to from one zone's thread, then from
// another's, perhaps the connection's own) gets its packets in order.
//
// Why the sink's thread only posts (the transport has no direct writes for raw TCP): a zone sends
// one update per character per tick, 2,000 per tick in bench/world-bots.sh; written by the zone's
// thread itself, that would be 2,000 sendmsg calls (about 5 us of CPU each on loopback, 10 ms) in
// a tick whose whole CPU time is about 3 ms at p50 (docs/benchmarks.md). A tick posts through a
// core::PostBatch, so its sends to the connections of each other io thread go there in one post.
// Updates are copied into blocks shared by many (world_sink.cpp, UpdateBlocks) and sent as views.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <hearth/stream.hpp>
#include <hearth/world.hpp>

#include "core/shard_set.hpp"
#include "frontends/packet/send.hpp"

namespace hearth::frontends::packet {

/// What a sink tells its connection, on the connection's thread, after the answer's packet is
/// queued; never after the connection's handler is gone (`alive` expired).
class WorldSinkOwner {
public:
    /// WorldEntered is sent: the character is in the world.
    virtual void world_entered() = 0;
    /// The Error answering EnterWorldRequest is sent: the character is not in the world.
    virtual void world_enter_refused() = 0;

protected:
    ~WorldSinkOwner() = default;
};

class WorldSink final : public world::PlayerSink, public std::enable_shared_from_this<WorldSink> {
public:
    /// Created on the connection's thread (`shard`).
    WorldSink(StreamConnectionPtr connection, core::ShardSet shards, std::size_t shard,
              std::shared_ptr<const SendCounters> counters, std::size_t max_packet_bytes,
              WorldSinkOwner& owner, std::weak_ptr<int> owner_alive);

    void entered(const world::ZoneEntry& entry, bool changed_zone) override;
    void begin_update(std::uint32_t tick) override;
    void despawn(world::EntityId entity) override;
    void spawn(const world::EntityView& entity) override;
    void move(world::EntityId entity, world::Vec3 at, float heading) override;
    void moves(std::span<const world::MoveEntry> batch) override;
    void end_update() override;
    void correction(std::uint32_t seq, world::Vec3 at, float heading,
                    world::CorrectionReason reason) override;
    void hp_update(world::EntityId entity, std::uint32_t hp, std::uint32_t max_hp,
                   world::EntityId source) override;
    void death(world::EntityId entity, world::EntityId killer) override;
    void respawned(world::EntityId entity, world::Vec3 at, float heading, std::uint32_t hp,
                   std::uint32_t max_hp) override;
    void target_hp(world::EntityId entity, std::uint32_t hp, std::uint32_t max_hp) override;
    void chat(world::ChatChannel channel, world::EntityId from, std::string_view from_name,
              std::string_view text) override;
    void whisper(bool sent, std::string_view peer, std::string_view text) override;
    void notice(world::NoticeKind kind, std::string_view text) override;
    void refused(world::Request request, world::WorldError error, std::uint32_t detail) override;
    void left(world::LeaveReason reason) override;

private:
    /// What follows a send on the connection's thread.
    enum class Then : std::uint8_t { kNothing, kClose, kEntered, kEnterRefused };

    /// Tells the owner, on the connection's thread, if it is still there.
    void tell_owner(Then then);

    template <class M>
    void send(const M& m, Then then = Then::kNothing);
    /// Counts `bytes` in `packets` whole packets sent from the world.
    void count_world(std::size_t bytes, std::size_t packets);
    /// Sends the bytes of whole packets (`packets` of them) from the world.
    void send_world(std::string encoded, std::size_t packets, Then then);
    void send_error(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail,
                    std::string_view message, Then then);
    /// What follows a send that returned `r`.
    void after_send(SendResult r, Then then);

    StreamConnectionPtr connection_;
    core::ShardSet shards_;
    std::size_t shard_;
    std::shared_ptr<const SendCounters> counters_;
    std::size_t max_packet_bytes_;
    WorldSinkOwner* owner_;
    std::weak_ptr<int> owner_alive_;
    std::atomic<bool> gone_{false};  // a send found the connection closing
};

}  // namespace hearth::frontends::packet
