#pragma once

// What the world tells one game connection's character (include/hearth/world.hpp's PlayerSink),
// as the packets of docs/protocol/packets.md, sent on the connection.
//
// The world calls a sink on the shard of the character's zone, which need not be the
// connection's io thread. A send from another thread is posted to the connection's thread, where
// the transport queues it under the connection's outbound bound (256 KiB: past it, a slow
// consumer, the connection is closed). The sink posts those sends itself, so that it can bound
// what is posted and not yet queued too: past kMaxInFlightBytes the connection's thread is not
// keeping up with the world, and the connection is closed the same way.

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
    /// The connection is being closed because it did not keep up with what the world sends (a
    /// slow consumer): the character should leave now, not when the close completes (which waits
    /// for the transport's write timeout while the client does not read).
    virtual void world_connection_lost() = 0;

protected:
    ~WorldSinkOwner() = default;
};

class WorldSink final : public world::PlayerSink, public std::enable_shared_from_this<WorldSink> {
public:
    /// Bytes posted to the connection's thread and not yet queued on the connection; beyond it
    /// the connection is closed (the transport's outbound bound, 256 KiB, applies after).
    static constexpr std::size_t kMaxInFlightBytes = 256 * 1024;

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
    void lost();

    template <class M>
    void send(const M& m, Then then = Then::kNothing);
    /// Sends the bytes of whole packets (`packets` of them) from the world.
    void send_world(std::string encoded, std::size_t packets, Then then);
    void send_error(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail,
                    std::string_view message, Then then);
    void deliver(SharedPayload payload, Then then);
    void on_connection_thread(const SharedPayload& payload, Then then);

    StreamConnectionPtr connection_;
    core::ShardSet shards_;
    std::size_t shard_;
    std::shared_ptr<const SendCounters> counters_;
    std::size_t max_packet_bytes_;
    WorldSinkOwner* owner_;
    std::weak_ptr<int> owner_alive_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<bool> overflowed_{false};
    std::atomic<bool> gone_{false};  // a send found the connection closing
    std::atomic<bool> lost_{false};  // the owner was told the connection is lost
};

}  // namespace hearth::frontends::packet
