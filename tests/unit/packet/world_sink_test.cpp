// The world's sink of a game connection (src/frontends/packet/world_sink.*) on a recording
// connection: each PlayerSink call becomes its packet (docs/protocol/packets.md), a tick's changes
// one WorldUpdate, refusals the Error with the request's opcode, `left` the closing answer; and a
// send the transport drops (past the connection's outbound bound) ends what the sink sends.
// The bound itself is the transport's: tests/integration/dracosoft_test.cpp (DracosoftStreamLayer)
// and tests/abuse/packet_world_test.cpp.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "core/shard_set.hpp"
#include "frontends/packet/world_sink.hpp"

namespace hearth::frontends::packet {
namespace {

using namespace std::chrono_literals;

/// A connection that records what is sent to it and whether it was closed.
class RecordingConnection final : public StreamConnection {
public:
    ConnectionId id() const noexcept override { return ConnectionId{}; }
    const std::string& peer_address() const noexcept override { return peer_; }
    SendResult send(SharedPayload bytes) override {
        std::lock_guard lock(mutex_);
        ++attempts_;
        changed_.notify_all();
        if (closed_) {
            return SendResult::kClosed;
        }
        if (full_) {
            return SendResult::kDropped;
        }
        sent_.append(bytes->bytes());
        changed_.notify_all();
        return SendResult::kQueued;
    }
    void close() override {
        std::lock_guard lock(mutex_);
        closed_ = true;
        ++closes_;
        changed_.notify_all();
    }
    void touch() noexcept override {}
    bool take_message(std::size_t) override { return true; }
    void pause_reading() override {}
    void resume_reading() override {}

    /// Waits (at most 10 s) until `n` packets were sent; returns them decoded as frames.
    std::vector<std::pair<std::uint16_t, std::string>> packets(std::size_t n) {
        std::unique_lock lock(mutex_);
        std::vector<std::pair<std::uint16_t, std::string>> out;
        changed_.wait_for(lock, 10s, [&] {
            out = split(sent_);
            return out.size() >= n;
        });
        return out;
    }
    bool wait_closed() {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 10s, [&] { return closed_; });
    }
    /// Waits (at most 10 s) until `n` sends were attempted, refused ones included.
    bool wait_attempts(int n) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, 10s, [&] { return attempts_ >= n; });
    }
    int attempts() {
        std::lock_guard lock(mutex_);
        return attempts_;
    }
    int closes() {
        std::lock_guard lock(mutex_);
        return closes_;
    }
    std::size_t bytes_sent() {
        std::lock_guard lock(mutex_);
        return sent_.size();
    }
    /// From now on every send is past the outbound bound (as a transport says of a slow
    /// consumer).
    void fill() {
        std::lock_guard lock(mutex_);
        full_ = true;
    }

private:
    static std::vector<std::pair<std::uint16_t, std::string>> split(const std::string& bytes) {
        std::vector<std::pair<std::uint16_t, std::string>> out;
        wire::FrameDecoder decoder(wire::kLargestMaxPacketBytes);
        std::string_view in = bytes;
        while (!in.empty()) {
            const auto r = decoder.next(in);
            in.remove_prefix(r.consumed);
            if (r.status != wire::FrameStatus::kPacket) {
                break;
            }
            out.emplace_back(r.packet.type, std::string(r.packet.payload));
        }
        return out;
    }

    std::string peer_ = "127.0.0.1:1";
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string sent_;
    bool closed_ = false;
    bool full_ = false;
    int closes_ = 0;
    int attempts_ = 0;
};

class Owner final : public WorldSinkOwner {
public:
    void world_entered() override { entered.fetch_add(1); }
    void world_enter_refused() override { refused.fetch_add(1); }
    std::atomic<int> entered{0};
    std::atomic<int> refused{0};
};

template <class M>
M decode(const std::pair<std::uint16_t, std::string>& p) {
    EXPECT_EQ(p.first, static_cast<std::uint16_t>(M::kOpcode));
    auto d = wire::decode<M>(p.second);
    EXPECT_EQ(d.error, wire::WireError::kNone);
    return d.message;
}

class WorldSinkTest : public ::testing::Test {
protected:
    std::shared_ptr<WorldSink> sink(std::size_t max_packet_bytes = wire::kDefaultMaxPacketBytes) {
        return std::make_shared<WorldSink>(connection_, shards_, 0, counters_, max_packet_bytes,
                                           owner_, alive_);
    }

    /// Waits until what the connection's thread runs now, and what it posted meanwhile, has run
    /// (its queue is first in, first out).
    bool drain() {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        shards_.post(0, [&] {
            std::lock_guard lock(m);
            done = true;
            cv.notify_all();
        });
        std::unique_lock lock(m);
        return cv.wait_for(lock, 10s, [&] { return done; });
    }

    core::MetricsRegistry metrics_;
    std::shared_ptr<const SendCounters> counters_ = std::make_shared<SendCounters>(metrics_);
    core::Runtime runtime_{1, 1};
    core::ShardSet shards_{runtime_};
    std::shared_ptr<RecordingConnection> connection_ = std::make_shared<RecordingConnection>();
    Owner owner_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

TEST_F(WorldSinkTest, EachCallIsItsPacketOnTheConnection) {
    runtime_.start();
    auto s = sink();
    s->entered({.zone = 1,
                .zone_name = "Field",
                .width = 1000,
                .height = 1000,
                .entity = 17,
                .at = {500, 500, 0},
                .heading = 1.5F,
                .tick_hz = 20,
                .view_radius = 100,
                .max_speed = 7},
               false);
    // A tick: one packet with the three lists; a name past the wire's 32 bytes is cut.
    const std::string long_name(40, 'x');
    s->begin_update(1200);
    s->despawn(1003);
    s->spawn({.id = 1001,
              .kind = world::EntityKind::kNpc,
              .model = 5,
              .name = long_name,
              .level = 2,
              .at = {530, 470, 0},
              .heading = 0,
              .hp = 40,
              .max_hp = 40,
              .looks = {}});
    s->move(18, {521, 481, 0}, 0.5F);
    // The zone's batched call (PlayerSink::moves) adds to the same list, in order.
    const world::MoveEntry batch[] = {{.entity = 19, .at = {1, 2, 3}, .heading = 0.25F},
                                      {.entity = 20, .at = {4, 5, 6}, .heading = -1}};
    s->moves(batch);
    s->end_update();
    s->correction(7, {10, 20, 0}, 0, world::CorrectionReason::kTooFast);
    s->refused(world::Request::kChat, world::WorldError::kRateLimited, 0);
    s->refused(world::Request::kChangeZone, world::WorldError::kNoSuchZone, 99);
    s->whisper(true, "Bo", "psst");
    s->left(world::LeaveReason::kLogout);

    const auto p = connection_->packets(7);
    ASSERT_EQ(p.size(), 7U);
    const auto entered = decode<wire::WorldEntered>(p[0]);
    EXPECT_EQ(entered.entry.zone_name, "Field");
    EXPECT_EQ(entered.entry.entity, 17U);
    const auto u = decode<wire::WorldUpdate>(p[1]);
    EXPECT_EQ(u.tick, 1200U);
    EXPECT_FALSE(u.more);
    EXPECT_EQ(u.despawns, std::vector<std::uint32_t>{1003});
    ASSERT_EQ(u.spawns.size(), 1U);
    EXPECT_EQ(u.spawns[0].name, std::string(32, 'x'));
    EXPECT_EQ(u.spawns[0].kind, wire::EntityKind::kNpc);
    ASSERT_EQ(u.moves.size(), 3U);
    EXPECT_EQ(u.moves[0], (wire::EntityMove{.entity = 18, .at = {521, 481, 0}, .heading = 0.5F}));
    EXPECT_EQ(u.moves[1], (wire::EntityMove{.entity = 19, .at = {1, 2, 3}, .heading = 0.25F}));
    EXPECT_EQ(u.moves[2], (wire::EntityMove{.entity = 20, .at = {4, 5, 6}, .heading = -1}));
    EXPECT_EQ(decode<wire::Correction>(p[2]).reason, wire::CorrectionReason::kTooFast);
    const auto rate = decode<wire::Error>(p[3]);
    EXPECT_EQ(rate.code, wire::ErrorCode::kRateLimited);
    EXPECT_EQ(rate.opcode, 0x1100);
    const auto zone = decode<wire::Error>(p[4]);
    EXPECT_EQ(zone.code, wire::ErrorCode::kNoSuchZone);
    EXPECT_EQ(zone.opcode, 0x0753);
    EXPECT_EQ(zone.detail, 99U);
    EXPECT_EQ(decode<wire::WhisperMessage>(p[5]).direction, wire::WhisperDirection::kSent);
    EXPECT_EQ(p[6].first, static_cast<std::uint16_t>(wire::Opcode::kLogout));
    EXPECT_TRUE(connection_->wait_closed());
    // The entry was told to the connection, on its thread.
    ASSERT_TRUE(drain());
    EXPECT_EQ(owner_.entered.load(), 1);
    EXPECT_EQ(owner_.refused.load(), 0);
    EXPECT_GT(counters_->world_bytes->value(), 0U);
    EXPECT_EQ(counters_->update_bytes->snapshot().count, 1U);
    runtime_.stop();
}

TEST_F(WorldSinkTest, ARefusedEntryAndTheLeavesThatClose) {
    runtime_.start();
    auto s = sink();
    s->refused(world::Request::kEnter, world::WorldError::kDisabled, 0);
    s->left(world::LeaveReason::kKicked);
    const auto p = connection_->packets(2);
    ASSERT_EQ(p.size(), 2U);
    const auto disabled = decode<wire::Error>(p[0]);
    EXPECT_EQ(disabled.code, wire::ErrorCode::kUnavailable);
    EXPECT_EQ(disabled.opcode, 0x1000);
    EXPECT_EQ(disabled.detail, static_cast<std::uint32_t>(wire::Unavailable::kNotServed));
    const auto kicked = decode<wire::Error>(p[1]);
    EXPECT_EQ(kicked.code, wire::ErrorCode::kKicked);
    EXPECT_EQ(kicked.opcode, 0);
    EXPECT_TRUE(connection_->wait_closed());
    ASSERT_TRUE(drain());
    EXPECT_EQ(owner_.refused.load(), 1);
    // After the close, nothing more reaches the client.
    const auto before = connection_->bytes_sent();
    const int tried = connection_->attempts();
    s->chat(world::ChatChannel::kLocal, 1, "A", "late");
    s->left(world::LeaveReason::kShutdown);
    ASSERT_TRUE(connection_->wait_attempts(tried + 1));
    EXPECT_EQ(connection_->bytes_sent(), before);
    runtime_.stop();
}

TEST_F(WorldSinkTest, AnOwnerGoneIsNotCalled) {
    runtime_.start();
    auto s = sink();
    alive_.reset();  // the connection's handler is destroyed
    s->refused(world::Request::kEnter, world::WorldError::kUnavailable, 0);
    ASSERT_EQ(connection_->packets(1).size(), 1U);
    ASSERT_TRUE(drain());
    EXPECT_EQ(owner_.refused.load(), 0);
    runtime_.stop();
}

TEST_F(WorldSinkTest, ASendPastTheBoundEndsWhatTheSinkSends) {
    runtime_.start();
    auto s = sink();
    const std::string text(256, 'y');
    s->chat(world::ChatChannel::kZone, 1, "A", text);
    ASSERT_EQ(connection_->packets(1).size(), 1U);
    // The transport drops the next send (the client does not read; the transport closes the
    // connection and tells its handler): counted once as the world's, and nothing more is
    // encoded or tried.
    connection_->fill();
    s->chat(world::ChatChannel::kZone, 1, "A", text);
    ASSERT_TRUE(connection_->wait_attempts(2));
    EXPECT_EQ(counters_->world_overflows->value(), 1U);
    s->chat(world::ChatChannel::kZone, 1, "A", text);
    s->begin_update(1);
    s->move(18, {521, 481, 0}, 0.5F);
    s->end_update();
    ASSERT_TRUE(drain());
    EXPECT_EQ(connection_->attempts(), 2);
    EXPECT_EQ(counters_->world_overflows->value(), 1U);
    EXPECT_EQ(connection_->closes(), 0);  // the transport closes it, not the sink
    runtime_.stop();
}

}  // namespace
}  // namespace hearth::frontends::packet
