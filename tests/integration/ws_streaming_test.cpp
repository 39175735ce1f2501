// The WebSocket transport's streaming paths through real sockets: Connection::send_stream (a
// large message pulled part by part, with backpressure, ordered with the messages sent after it),
// a source that fails mid-way, a connection that ends mid-stream, and pause_reading /
// resume_reading; and sends from another thread while the connection's thread is busy, bounded
// with what is queued (net/send_bound.hpp). (Streamed incoming binary, WsHandler::on_binary_part,
// is tested byte by byte in the codec's unit tests and end to end by the Moonshare file transfers.)

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "core/runtime.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/send_until_refused.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

char pattern_byte(std::size_t offset) {
    return static_cast<char>((offset * 7 + offset / 251) & 0xFF);
}

/// What the handlers saw, for the test thread to wait on.
struct Probe {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<std::string> outcomes;
    std::atomic<int> parts_alive{0};
    std::atomic<int> most_parts_alive{0};
    std::atomic<int> parts_made{0};
    std::function<void()> resume;  // resumes the paused connection, from any thread
    // "hold": the connection, for the test's thread to send to; then the handler (so the
    // connection's io thread) waits for `release`.
    std::promise<ConnectionPtr> held;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();

    void set_resume(std::function<void()> f) {
        std::lock_guard lock(mutex);
        resume = std::move(f);
    }
    bool call_resume() {
        std::function<void()> f;
        {
            std::lock_guard lock(mutex);
            f = resume;
        }
        if (f) {
            f();
        }
        return static_cast<bool>(f);
    }

    void record(std::string outcome) {
        std::lock_guard lock(mutex);
        outcomes.push_back(std::move(outcome));
        changed.notify_all();
    }
    /// Waits until `n` outcomes were recorded; returns them.
    std::vector<std::string> wait_outcomes(std::size_t n) {
        std::unique_lock lock(mutex);
        const bool ok = changed.wait_for(lock, kDeadline, [&] { return outcomes.size() >= n; });
        EXPECT_TRUE(ok) << "only " << outcomes.size() << " outcome(s) of " << n;
        return outcomes;
    }
};

/// `total` bytes of a known pattern, produced on the blocking pool; fails (a null part) after
/// `fail_after` parts when set.
class PatternSource final : public MessageSource,
                            public std::enable_shared_from_this<PatternSource> {
public:
    PatternSource(Probe& probe, core::Runtime& runtime, std::size_t total, int fail_after = -1)
        : probe_(probe), runtime_(runtime), total_(total), fail_after_(fail_after) {}

    void next(std::size_t max_bytes, std::function<void(StreamPart)> deliver) override {
        boost::asio::post(runtime_.blocking_pool(),
                          [self = shared_from_this(), max_bytes, deliver = std::move(deliver)] {
                              deliver(self->make_part(max_bytes));
                          });
    }

private:
    StreamPart make_part(std::size_t max_bytes) {
        if (fail_after_ >= 0 && made_ >= fail_after_) {
            return {};
        }
        ++made_;
        const std::size_t n = std::min(max_bytes, total_ - offset_);
        std::string bytes(n, '\0');
        for (std::size_t i = 0; i < n; ++i) {
            bytes[i] = pattern_byte(offset_ + i);
        }
        offset_ += n;
        probe_.parts_made.fetch_add(1);
        const int alive = probe_.parts_alive.fetch_add(1) + 1;
        int most = probe_.most_parts_alive.load();
        while (alive > most && !probe_.most_parts_alive.compare_exchange_weak(most, alive)) {
        }
        SharedPayload part(new Payload(MessageKind::kBinary, std::move(bytes)),
                           [&probe = probe_](const Payload* p) {
                               probe.parts_alive.fetch_sub(1);
                               delete p;
                           });
        return {std::move(part), offset_ == total_};
    }

    Probe& probe_;
    core::Runtime& runtime_;
    std::size_t total_;
    int fail_after_;
    int made_ = 0;
    std::size_t offset_ = 0;
};

/// "send N": streams N pattern bytes, then sends "after"; "fail": a stream whose source fails
/// after one part; "pause": pauses reading until Probe::resume; anything else is echoed.
class StreamingHandler final : public WsHandler {
public:
    StreamingHandler(Probe& probe, core::Runtime& runtime) : probe_(probe), runtime_(runtime) {}

    void on_open(const ConnectionPtr& c) override { connection_ = c; }

    void on_message(MessageKind, std::string_view data) override {
        const std::string text(data);
        auto report = [&probe = probe_](std::string what) {
            return [&probe, what](bool written) {
                probe.record(what + (written ? " written" : " lost"));
            };
        };
        if (text.starts_with("send ")) {
            const auto n = std::stoul(text.substr(5));
            EXPECT_EQ(connection_->send_stream(MessageKind::kBinary,
                                               std::make_shared<PatternSource>(probe_, runtime_, n),
                                               report("stream")),
                      SendResult::kQueued);
            (void)connection_->send(make_text("after"), report("after"));
        } else if (text == "fail") {
            (void)connection_->send_stream(
                MessageKind::kBinary, std::make_shared<PatternSource>(probe_, runtime_, 1 << 20, 1),
                report("stream"));
            (void)connection_->send(make_text("after"), report("after"));
        } else if (text == "hold") {
            // Queued first, so that other threads do not write directly meanwhile: their sends
            // are posted to this thread, which is busy.
            (void)connection_->send(make_text("holding"));
            probe_.held.set_value(connection_);
            (void)probe_.released.wait_for(kDeadline);  // a deadline: a failing test ends
        } else if (text == "pause") {
            connection_->pause_reading();
            std::weak_ptr<Connection> weak = connection_;
            probe_.set_resume(core::post_to_current_thread<>(runtime_, [weak] {
                if (auto c = weak.lock()) {
                    (void)c->send(make_text("resumed"));
                    c->resume_reading();
                }
            }));
            (void)connection_->send(make_text("paused"));
        } else {
            (void)connection_->send(make_text(text));
        }
    }

    void on_close(const CloseInfo&) override { connection_.reset(); }

private:
    Probe& probe_;
    core::Runtime& runtime_;
    ConnectionPtr connection_;
};

struct StreamingServer {
    core::MetricsRegistry metrics;
    core::EventBus events{100};
    core::Runtime runtime{2, 2};
    Probe probe;
    std::unique_ptr<net::Server> server =
        std::make_unique<net::Server>(runtime, metrics, events, net::HttpLimits{});
    std::string listener;

    StreamingServer() {
        listener = server->listener({"api", "127.0.0.1:0", "", ""});
        WsRoute route;
        route.settings = std::make_shared<WsRouteSettings>();
        route.accept = [this](const HttpRequest&) -> WsRoute::Decision {
            return std::make_unique<StreamingHandler>(probe, runtime);
        };
        server->add_ws_route(listener, "/stream", std::move(route));
        WsRoute small;
        auto settings = std::make_shared<WsRouteSettings>();
        settings->max_outbound_bytes = 64 * 1024;
        small.settings = std::move(settings);
        small.accept = [this](const HttpRequest&) -> WsRoute::Decision {
            return std::make_unique<StreamingHandler>(probe, runtime);
        };
        server->add_ws_route(listener, "/small", std::move(small));
        runtime.start();
        server->start();
    }
    ~StreamingServer() {
        server->begin_shutdown();
        (void)server->wait_drained(std::chrono::steady_clock::now() + kDeadline);
        runtime.stop();
        server.reset();
    }
    std::uint16_t port() const { return server->bound_port(listener); }
};

/// Reads server frames from a raw connection until one data message is complete.
struct Message {
    std::uint8_t opcode = 0;
    std::string payload;
    std::size_t frames = 0;
};

/// How many bytes the server frame at the start of `bytes` needs in all (header and payload), as
/// far as its first bytes tell: at least 2.
std::size_t frame_bytes_needed(const std::string& bytes) {
    if (bytes.size() < 2) {
        return 2;
    }
    const auto len7 = static_cast<std::uint8_t>(bytes[1]) & 0x7F;
    const std::size_t ext = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0);
    if (bytes.size() < 2 + ext) {
        return 2 + ext;
    }
    std::uint64_t len = len7;
    if (ext > 0) {
        len = 0;
        for (std::size_t i = 0; i < ext; ++i) {
            len = (len << 8) | static_cast<std::uint8_t>(bytes[2 + i]);
        }
    }
    return 2 + ext + static_cast<std::size_t>(len);
}

Message read_message(RawClient& c, std::string& pending) {
    Message m;
    for (;;) {
        std::size_t used = 0;
        auto frame = parse_server_frame(pending, used);
        if (!frame) {
            pending += c.read_exactly(frame_bytes_needed(pending) - pending.size());
            continue;
        }
        pending.erase(0, used);
        if (frame->opcode >= 0x8) {
            continue;  // control frames may come between fragments
        }
        if (m.frames == 0) {
            m.opcode = frame->opcode;
        } else {
            EXPECT_EQ(frame->opcode, 0x0) << "a new message inside a fragmented one";
        }
        ++m.frames;
        m.payload += frame->payload;
        if (frame->fin) {
            return m;
        }
    }
}

TEST(WsStreaming, ALargeMessageGoesOutInPartsAndWhatFollowsWaitsBehindIt) {
    StreamingServer s;
    RawClient c(s.port());
    c.upgrade("/stream");
    std::string pending;
    const std::size_t n = 3 * 1024 * 1024 + 17;
    c.write(client_frame(0x1, "send " + std::to_string(n)));
    c.write(client_frame(0x1, "echo"));  // sent while the stream is going out: waits behind it
    const auto m = read_message(c, pending);
    EXPECT_EQ(m.opcode, 0x2);
    ASSERT_EQ(m.payload.size(), n);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        bad += m.payload[i] != pattern_byte(i) ? 1 : 0;
    }
    EXPECT_EQ(bad, 0U);
    EXPECT_GT(m.frames, 10U);  // fragmented, one frame per part
    const auto after = read_message(c, pending);
    EXPECT_EQ(after.opcode, 0x1);
    EXPECT_EQ(after.payload, "after");
    EXPECT_EQ(read_message(c, pending).payload, "echo");
    EXPECT_EQ(s.probe.wait_outcomes(2),
              (std::vector<std::string>{"stream written", "after written"}));
}

TEST(WsStreaming, MemoryStaysBoundedWhateverTheMessageSize) {
    StreamingServer s;
    WsClient c(s.port(), WsOptions{.path = "/stream"});
    const std::size_t n = 40 * 1024 * 1024;
    c.send_text("send " + std::to_string(n));
    const auto m = c.read(std::chrono::seconds(120));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->data.size(), n);
    EXPECT_EQ(c.read()->data, "after");
    s.probe.wait_outcomes(2);
    // 640 parts of 64 KiB were made; the connection never held more than a low-water mark's
    // worth queued plus one batch in flight (about a megabyte).
    EXPECT_EQ(s.probe.parts_made.load(), 640);
    EXPECT_LE(s.probe.most_parts_alive.load(), 16);
    EXPECT_EQ(s.probe.parts_alive.load(), 0);
}

TEST(WsStreaming, ASourceThatFailsClosesWith1011) {
    StreamingServer s;
    WsClient c(s.port(), WsOptions{.path = "/stream"});
    c.send_text("fail");
    const auto closed = c.wait_closed();
    EXPECT_EQ(closed.code, 1011);
    EXPECT_EQ(closed.reason, "message source failed");
    auto outcomes = s.probe.wait_outcomes(2);
    std::sort(outcomes.begin(), outcomes.end());
    EXPECT_EQ(outcomes, (std::vector<std::string>{"after lost", "stream lost"}));
    EXPECT_EQ(metric_value(s.metrics.render(), "hearth_ws_disconnects_total",
                           {{"route", "/stream"}, {"reason", "stream_failed"}}),
              1);
}

TEST(WsStreaming, AClientLeavingMidStreamEndsItAndItsFollowers) {
    StreamingServer s;
    {
        RawClient c(s.port());
        c.upgrade("/stream");
        c.write(client_frame(0x1, "send " + std::to_string(64 * 1024 * 1024)));
        std::string got = c.read_exactly(100'000);  // the stream has begun
        EXPECT_GE(got.size(), 100'000U);
    }  // gone without a close frame
    auto outcomes = s.probe.wait_outcomes(2);
    std::sort(outcomes.begin(), outcomes.end());
    EXPECT_EQ(outcomes, (std::vector<std::string>{"after lost", "stream lost"}));
    EXPECT_LT(s.probe.parts_made.load(), 1024);  // not all 64 MiB were read
}

TEST(WsStreaming, PausedReadingHoldsInputUntilResumed) {
    StreamingServer s;
    WsClient c(s.port(), WsOptions{.path = "/stream"});
    c.send_text("pause");
    c.send_text("x");
    EXPECT_EQ(c.read()->data, "paused");
    ASSERT_TRUE(s.probe.call_resume());
    // "x" reaches the handler only after the resume: its echo comes after "resumed".
    EXPECT_EQ(c.read()->data, "resumed");
    EXPECT_EQ(c.read()->data, "x");
    c.send_text("y");
    EXPECT_EQ(c.read()->data, "y");
}

TEST(WsStreaming, SendsFromAnotherThreadCountAgainstTheBoundWhileItsThreadIsBusy) {
    StreamingServer s;
    WsClient other(s.port(), WsOptions{.path = "/small"});
    other.send_text("before");
    EXPECT_EQ(other.read()->data, "before");
    WsClient c(s.port(), WsOptions{.path = "/small"});
    c.send_text("hold");
    auto held = s.probe.held.get_future();
    ASSERT_EQ(held.wait_for(kDeadline), std::future_status::ready);
    auto connection = held.get();
    // The connection's thread is busy in its handler: every send of this thread is posted, and
    // counted against the route's 64 KiB with the 9 bytes of "holding" queued.
    const auto message = make_binary(std::string(1024, 'm'));
    const auto [r, accepted] =
        send_until_refused([&] { return connection->send(message); }, message->size());
    EXPECT_EQ(r, SendResult::kDropped);
    EXPECT_LE(accepted + 9, 64U * 1024);
    EXPECT_GT(accepted + 9 + message->size(), 64U * 1024);
    const auto slow_consumers = [&] {
        return metric_value(s.metrics.render(), "hearth_ws_disconnects_total",
                            {{"route", "/small"}, {"reason", "slow_consumer"}});
    };
    EXPECT_EQ(slow_consumers(), 1);
    EXPECT_EQ(connection->send(message), SendResult::kDropped);  // nothing more is posted
    connection.reset();
    s.probe.release.set_value();
    // The close (1008, what was queued dropped) follows what was posted before it.
    std::size_t received = 0;
    while (auto m = c.read()) {
        received += m->data.size();
    }
    EXPECT_LE(received, accepted + 7);
    EXPECT_EQ(c.close_info()->code, 1008);
    EXPECT_EQ(c.close_info()->reason, "slow consumer");
    EXPECT_EQ(slow_consumers(), 1);
    // The other connection is served as before.
    other.send_text("after");
    EXPECT_EQ(other.read()->data, "after");
}

}  // namespace
}  // namespace hearth::test
