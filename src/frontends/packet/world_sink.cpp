#include "frontends/packet/world_sink.hpp"
#include <cstring>
#include <utility>

#include "util/log.hpp"

namespace hearth::frontends::packet {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("packet");
    return l;
}

// One tick's update per thread. The world never interleaves two sinks' begin_update ..
// end_update on one thread, so the sinks of a thread share it, and its lists keep their capacity
// from tick to tick: filling it allocates nothing once the thread has seen its largest view.
thread_local wire::WorldUpdate t_update;

/// Where a thread encodes its updates before they are sent (its capacity kept from tick to tick).
thread_local std::string t_encoded;

/// The bytes of a thread's updates, many connections' in one block, each sent as a view of it
/// (StreamConnection::send_view). Why: a busy zone sends an update to every character every tick
/// (10,000 a tick in bench/world-rss.sh), each its own allocation of a few hundred bytes, made on
/// the zone's thread and freed on the connection's. That was 18% of the tick in malloc, and the
/// freed strings of varying sizes left the io threads' heaps fragmented (about 1 KB a character
/// of free space glibc kept). A block is one allocation for about 170 updates, freed whole once
/// its last update is written. The transport copies a view that would wait behind other bytes,
/// so a client that stops reading pins at most one block.
class UpdateBlocks {
public:
    /// Bytes bigger than this are sent on their own: an entry burst (a character entering sees
    /// everyone in view at once) would use up a block by itself.
    static constexpr std::size_t kMaxViewBytes = 4 * 1024;

    /// A copy of `bytes` (at most kMaxViewBytes) in the current block, and what keeps it alive.
    std::pair<std::shared_ptr<const void>, std::string_view> put(std::string_view bytes) {
        if (block_ == nullptr || kBlockBytes - used_ < bytes.size()) {
            block_ = std::make_shared_for_overwrite<char[]>(kBlockBytes);
            used_ = 0;
        }
        char* at = block_.get() + used_;
        std::memcpy(at, bytes.data(), bytes.size());
        used_ += bytes.size();
        return {block_, std::string_view(at, bytes.size())};
    }

private:
    static constexpr std::size_t kBlockBytes = 64 * 1024;

    std::shared_ptr<char[]> block_;
    std::size_t used_ = 0;
};

thread_local UpdateBlocks t_blocks;

wire::Vec3 to_wire(world::Vec3 v) {
    return {.x = v.x, .y = v.y, .z = v.z};
}

wire::ZoneEntry entry_of(const world::ZoneEntry& e) {
    return {.zone = e.zone,
            .zone_name = utf8_prefix(e.zone_name, wire::kMaxZoneNameBytes),
            .width = e.width,
            .height = e.height,
            .entity = e.entity,
            .at = to_wire(e.at),
            .heading = e.heading,
            .tick_hz = e.tick_hz,
            .view_radius = e.view_radius,
            .max_speed = e.max_speed};
}

/// The opcode of the packet a refusal answers.
std::uint16_t opcode_of(world::Request r) {
    using wire::Opcode;
    switch (r) {
        case world::Request::kEnter:
            return static_cast<std::uint16_t>(Opcode::kEnterWorld);
        case world::Request::kChangeZone:
            return static_cast<std::uint16_t>(Opcode::kChangeMap);
        case world::Request::kMove:
            return static_cast<std::uint16_t>(Opcode::kMove);
        case world::Request::kTargetHp:
            return static_cast<std::uint16_t>(Opcode::kTargetHp);
        case world::Request::kAttack:
            return static_cast<std::uint16_t>(Opcode::kAttack);
        case world::Request::kRespawn:
            return static_cast<std::uint16_t>(Opcode::kRespawn);
        case world::Request::kChat:
            return static_cast<std::uint16_t>(Opcode::kChat);
        case world::Request::kWhisper:
            return static_cast<std::uint16_t>(Opcode::kWhisper);
    }
    return 0;
}

}  // namespace

WorldSink::WorldSink(StreamConnectionPtr connection, core::ShardSet shards, std::size_t shard,
                     std::shared_ptr<const SendCounters> counters, std::size_t max_packet_bytes,
                     WorldSinkOwner& owner, std::weak_ptr<int> owner_alive)
    : connection_(std::move(connection)),
      shards_(shards),
      shard_(shard),
      counters_(std::move(counters)),
      max_packet_bytes_(max_packet_bytes),
      owner_(&owner),
      owner_alive_(std::move(owner_alive)) {}

void WorldSink::entered(const world::ZoneEntry& entry, bool changed_zone) {
    if (changed_zone) {
        send(wire::MapChanged{.entry = entry_of(entry)});
    } else {
        send(wire::WorldEntered{.entry = entry_of(entry)}, Then::kEntered);
    }
}

void WorldSink::begin_update(std::uint32_t tick) {
    t_update.tick = tick;
    t_update.more = false;
    t_update.despawns.clear();
    t_update.spawns.clear();
    t_update.moves.clear();
}

void WorldSink::despawn(world::EntityId entity) {
    t_update.despawns.push_back(entity);
}

void WorldSink::spawn(const world::EntityView& e) {
    t_update.spawns.push_back({.entity = e.id,
                               .kind = static_cast<wire::EntityKind>(e.kind),
                               .model = e.model,
                               .name = utf8_prefix(e.name, wire::kMaxCharacterNameBytes),
                               .level = e.level,
                               .at = to_wire(e.at),
                               .heading = e.heading,
                               .hp = e.hp,
                               .max_hp = e.max_hp,
                               .looks = looks_of(e.looks)});
}

void WorldSink::move(world::EntityId entity, world::Vec3 at, float heading) {
    t_update.moves.push_back({.entity = entity, .at = to_wire(at), .heading = heading});
}

void WorldSink::moves(std::span<const world::MoveEntry> batch) {
    const std::size_t at = t_update.moves.size();
    t_update.moves.resize(at + batch.size());
    wire::EntityMove* const out = t_update.moves.data() + at;
    for (std::size_t k = 0; k < batch.size(); ++k) {
        const world::MoveEntry& m = batch[k];
        out[k] = {.entity = m.entity, .at = to_wire(m.at), .heading = m.heading};
    }
}

void WorldSink::end_update() {
    if (gone_.load(std::memory_order_relaxed)) {
        t_update.spawns.clear();  // its names view the world's strings, valid until we return
        return;
    }
    std::string& out = t_encoded;
    out.clear();
    const auto e = wire::encode_batched(out, t_update, max_packet_bytes_);
    t_update.spawns.clear();
    if (e != wire::WireError::kNone) {
        // Every entry fits the smallest packet, so a batch always splits: not reached.
        log()->error("[conn {}] cannot encode a world update: {}", to_string(connection_->id()),
                     wire::wire_error_text(e));
        return;
    }
    counters_->update_bytes->observe(static_cast<double>(out.size()));
    const auto packets = packets_in(out);
    count_world(out.size(), packets);
    if (out.size() > UpdateBlocks::kMaxViewBytes) {
        after_send(connection_->send_own(out), Then::kNothing);
        return;
    }
    auto [keeper, view] = t_blocks.put(out);
    after_send(connection_->send_view(std::move(keeper), view), Then::kNothing);
}

void WorldSink::correction(std::uint32_t seq, world::Vec3 at, float heading,
                           world::CorrectionReason reason) {
    send(wire::Correction{.seq = seq,
                          .at = to_wire(at),
                          .heading = heading,
                          .reason = static_cast<wire::CorrectionReason>(reason)});
}

void WorldSink::hp_update(world::EntityId entity, std::uint32_t hp, std::uint32_t max_hp,
                          world::EntityId source) {
    send(wire::HpUpdate{.entity = entity, .hp = hp, .max_hp = max_hp, .source = source});
}

void WorldSink::death(world::EntityId entity, world::EntityId killer) {
    send(wire::Death{.entity = entity, .killer = killer});
}

void WorldSink::respawned(world::EntityId entity, world::Vec3 at, float heading, std::uint32_t hp,
                          std::uint32_t max_hp) {
    send(wire::Respawned{
        .entity = entity, .at = to_wire(at), .heading = heading, .hp = hp, .max_hp = max_hp});
}

void WorldSink::target_hp(world::EntityId entity, std::uint32_t hp, std::uint32_t max_hp) {
    send(wire::TargetHp{.entity = entity, .hp = hp, .max_hp = max_hp});
}

void WorldSink::chat(world::ChatChannel channel, world::EntityId from, std::string_view from_name,
                     std::string_view text) {
    send(wire::ChatMessage{.channel = static_cast<wire::ChatChannel>(channel),
                           .from_entity = from,
                           .from = utf8_prefix(from_name, wire::kMaxCharacterNameBytes),
                           .text = utf8_prefix(text, wire::kMaxChatBytes)});
}

void WorldSink::whisper(bool sent, std::string_view peer, std::string_view text) {
    send(wire::WhisperMessage{
        .direction = sent ? wire::WhisperDirection::kSent : wire::WhisperDirection::kReceived,
        .peer = utf8_prefix(peer, wire::kMaxCharacterNameBytes),
        .text = utf8_prefix(text, wire::kMaxChatBytes)});
}

void WorldSink::notice(world::NoticeKind kind, std::string_view text) {
    send(wire::Notice{.kind = static_cast<wire::NoticeKind>(kind),
                      .text = utf8_prefix(text, wire::kMaxNoticeBytes)});
}

void WorldSink::refused(world::Request request, world::WorldError error, std::uint32_t detail) {
    using wire::ErrorCode;
    using world::WorldError;
    const auto opcode = opcode_of(request);
    const Then then = request == world::Request::kEnter ? Then::kEnterRefused : Then::kNothing;
    switch (error) {
        case WorldError::kDisabled:
            // Retrying will not help until an operator enables the module: the detail says so.
            return send_error(ErrorCode::kUnavailable, opcode,
                              static_cast<std::uint32_t>(wire::Unavailable::kNotServed),
                              "The world is disabled on this server", then);
        case WorldError::kUnavailable:
            return send_error(ErrorCode::kUnavailable, opcode,
                              static_cast<std::uint32_t>(wire::Unavailable::kTryAgain), {}, then);
        case WorldError::kNoSuchZone:
            return send_error(ErrorCode::kNoSuchZone, opcode, detail, {}, then);
        case WorldError::kNoSuchTarget:
            return send_error(ErrorCode::kNoSuchTarget, opcode, 0, {}, then);
        case WorldError::kOutOfRange:
            return send_error(ErrorCode::kTargetOutOfRange, opcode, 0, {}, then);
        case WorldError::kDead:
            return send_error(ErrorCode::kDead, opcode, 0, {}, then);
        case WorldError::kNotDead:
            return send_error(ErrorCode::kNotDead, opcode, 0, {}, then);
        case WorldError::kRateLimited:
            // The action's own rate: this one packet is dropped, the connection stays.
            return send_error(ErrorCode::kRateLimited, opcode, 0,
                              "Too fast: the action was dropped", then);
        case WorldError::kOk:
            break;
    }
    log()->warn("[conn {}] the world refused {} with error {}", to_string(connection_->id()),
                wire::opcode_name(opcode), static_cast<unsigned>(error));
    send_error(ErrorCode::kInternalError, opcode, 0, {}, then);
}

void WorldSink::left(world::LeaveReason reason) {
    using wire::ErrorCode;
    switch (reason) {
        case world::LeaveReason::kLogout: {
            // The position is saved: now the logout is answered, and the connection ends.
            std::string out;
            (void)wire::encode(out, wire::LogoutReply{});
            counters_->session_packets->inc();
            after_send(connection_->send_own(std::move(out)), Then::kClose);
            return;
        }
        case world::LeaveReason::kDisconnected:
            return;  // the connection is gone
        case world::LeaveReason::kKicked:
            return send_error(ErrorCode::kKicked, 0, 0, {}, Then::kClose);
        case world::LeaveReason::kShutdown:
            return send_error(ErrorCode::kShuttingDown, 0, 0, {}, Then::kClose);
        case world::LeaveReason::kTakenOver:
            // The front-end's takeover rule told the client and closed the connection already
            // (when another connection selected the character): this send then finds it closed.
            return send_error(ErrorCode::kTakenOver, 0, 0, {}, Then::kClose);
    }
}

template <class M>
void WorldSink::send(const M& m, Then then) {
    if (gone_.load(std::memory_order_relaxed)) {
        return;
    }
    std::string out;
    const auto e = wire::encode(out, m, max_packet_bytes_);
    if (e != wire::WireError::kNone) {
        // Every field is cut to its bound above, and every such message fits the smallest
        // packet: not reached.
        log()->error("[conn {}] cannot encode {}: {}", to_string(connection_->id()),
                     wire::opcode_name(static_cast<std::uint16_t>(M::kOpcode)),
                     wire::wire_error_text(e));
        return;
    }
    send_world(std::move(out), 1, then);
}

void WorldSink::count_world(std::size_t bytes, std::size_t packets) {
    counters_->world_packets->inc(packets);
    counters_->world_bytes->inc(bytes);
}

void WorldSink::send_world(std::string encoded, std::size_t packets, Then then) {
    count_world(encoded.size(), packets);
    // Bytes of this connection alone: moved into its queue, no shared payload made for them.
    after_send(connection_->send_own(std::move(encoded)), then);
}

void WorldSink::send_error(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail,
                           std::string_view message, Then then) {
    auto payload = error_packet(*counters_, code, opcode, detail, message);
    counters_->world_bytes->inc(payload->size());
    after_send(connection_->send(std::move(payload)), then);
}

// A send from the zone's thread is posted by the transport under the connection's outbound bound;
// on the connection's thread, behind what other threads posted (a character that changed zones).
void WorldSink::after_send(SendResult r, Then then) {
    if (r != SendResult::kQueued) {
        // Closing (or closed as a slow consumer, its handler told): nothing more is worth
        // encoding.
        gone_.store(true, std::memory_order_relaxed);
    }
    if (r == SendResult::kDropped) {
        counters_->world_overflows->inc();
    }
    switch (then) {
        case Then::kNothing:
            return;
        case Then::kClose:
            connection_->close();  // after the send: the transport keeps their order
            return;
        case Then::kEntered:
        case Then::kEnterRefused:
            tell_owner(then);
            return;
    }
}

void WorldSink::tell_owner(Then then) {
    // After the answer's packet is queued: a send from this thread is posted to the same queue of
    // the connection's thread, before this. Posted, never run inside the world's call: the owner
    // goes on with the packets it held, or destroys its Player, and neither may re-enter the zone.
    shards_.post(shard_, [owner = owner_, alive = owner_alive_, then] {
        if (alive.expired()) {
            return;
        }
        switch (then) {
            case Then::kEntered:
                return owner->world_entered();
            case Then::kEnterRefused:
                return owner->world_enter_refused();
            case Then::kClose:
            case Then::kNothing:
                return;
        }
    });
}

}  // namespace hearth::frontends::packet
