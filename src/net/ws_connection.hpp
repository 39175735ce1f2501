#pragma once

// A WebSocket connection after the upgrade: Hearth's own framing (net/ws_codec.hpp) over a plain
// TCP socket or a TLS stream. Included only by the session translation units.

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <sys/socket.h>
#include <sys/uio.h>

#include <hearth/connection.hpp>

#include "net/batch_writer.hpp"
#include "net/outbox.hpp"
#include "net/poller.hpp"
#include "net/raw_socket.hpp"
#include "net/send_bound.hpp"
#include "net/server_state.hpp"
#include "net/ws_codec.hpp"
#include "util/log.hpp"
#include "util/small_mutex.hpp"
#include "util/strings.hpp"
#include "util/token_bucket.hpp"

namespace hearth::net {

using Clock = std::chrono::steady_clock;

inline std::shared_ptr<spdlog::logger> ws_log() {
    static auto l = util::logger("ws");
    return l;
}

template <class Stream>
inline constexpr bool kIsPlainSocket = std::is_same_v<Stream, RawSocket>;

/// One WebSocket connection. Runs on: its own io thread, for its whole life. Owned by: its pending
/// operations (and the front-end's ConnectionPtr while it keeps one).
///
/// Reading: a plain socket is registered once with the thread's Poller (edge-triggered), and reads
/// into the thread's shared buffer when it reports input, so an idle connection owns no read
/// buffer and no Asio operation; only the bytes of an incomplete frame are kept. Writing:
/// one write in flight; frames queued meanwhile go out together in the next gathered write, so a
/// busy connection needs one system call for many frames. Every phase has a deadline, kept in
/// the thread's Deadlines (net/deadlines.hpp): ping interval, pong, idle, write stall and the
/// closing handshake.
///
/// Sends from other threads (a HunterPie push, an operator notice): on a plain socket with nothing
/// queued, the sending thread writes the frame itself (see `write_direct`); otherwise the send is
/// posted to the connection's thread, its bytes counted against the outbound bound from the
/// moment of the send (net/send_bound.hpp), as for raw TCP connections. Sends on the connection's
/// thread from the handler of another connection's last message read (a fan-out) are written
/// directly the same way; the rest is gathered (ThreadState::fanout_from).
template <class Stream>
class WsConnection final : public Connection,
                           public Session,
                           public DeadlineClient,
                           public PollClient,
                           public std::enable_shared_from_this<WsConnection<Stream>> {
public:
    struct Params {
        std::shared_ptr<ServerState> server;
        ListenerState* listener = nullptr;
        std::shared_ptr<WsRouteState> route;
        std::string peer_address;
        bool deflate = false;
        // Plain sockets: the object whose poller registration the connection takes over (the
        // first request's), or null to register anew.
        PollClient* poll_from = nullptr;
    };

    WsConnection(Stream stream, Params p)
        : stream_(std::move(stream)),
          generation_(p.route->generation()),
          server_(std::move(p.server)),
          listener_(*p.listener),
          route_(std::move(p.route)),
          thread_(server_->this_thread_state()),
          settings_(route_->settings()),
          id_(static_cast<ConnectionId>(server_->next_connection_id.fetch_add(1))),
          peer_address_(std::move(p.peer_address)),
          deflate_(p.deflate),
          parser_(parser_limits(*settings_), p.deflate, &thread_.inflater),
          bound_(settings_->max_outbound_bytes),
          messages_(settings_->message_burst, Clock::now()),
          bytes_(byte_rate().depth, Clock::now()),
          inflated_(inflated_rate().depth, Clock::now()) {
        // Read by other threads before they take direct_.mutex: never a stale default.
        direct_.compression_threshold.store(settings_->compression_threshold_bytes,
                                            std::memory_order_relaxed);
        direct_.close_on_overflow.store(settings_->overflow == OverflowPolicy::kClose,
                                        std::memory_order_relaxed);
    }

    /// Writes the 101 response, delivers `leftover` (bytes the client sent after its request) and
    /// starts reading. The handler is opened before any message reaches it.
    void start(std::string handshake_response, std::string leftover,
               std::unique_ptr<WsHandler> handler) {
        handler_ = std::move(handler);
        auto self = this->shared_from_this();
        server_->session_opened(static_cast<std::uint64_t>(id_), self);
        server_->owner_opened(route_->owner());
        route_->metrics().accepted->inc();
        route_->metrics().open->add(1);
        listener_.open_ws->add(1);
        registered_ = true;
        server_->events.publish(core::EventKind::kConnectionOpened, route_->owner().name,
                                to_string(id_),
                                "websocket " + route_->path() + " from " + peer_address_);
        ws_log()->debug("[conn {}] open: {} from {}{}", to_string(id_), route_->path(),
                        peer_address_, deflate_ ? " (permessage-deflate)" : "");
        boost::system::error_code poll_ec;
        if constexpr (kIsPlainSocket<Stream>) {
            direct_.fd = stream_.native_handle();
            if (!poll_connection(thread_.poller.get(), direct_.fd, self, poll_ec)) {
                ws_log()->warn("[conn {}] cannot poll its socket: {}", to_string(id_),
                               poll_ec.message());
            }
        }
        last_rx_ = Clock::now();
        opened_at_ = last_rx_;

        OutFrame response;
        response.owned = std::move(handshake_response);
        outbox_.push_control(std::move(response));
        // Written after this handler, not now: a write that fails at once would end the
        // connection before its handler is opened.
        schedule_flush();

        const bool over_limit = !route_->peers().add(peer_key(), settings_->max_connections_per_ip);
        peer_counted_ = !over_limit;
        handler_->on_open(self);
        if (poll_ec) {
            teardown(CloseInfo{close_code::kAbnormal, "cannot poll the socket", false});
            return;
        }
        if (over_limit) {
            route_->count_disconnect("too_many_connections");
            close_local(close_code::kPolicyViolation, "too many connections from your address");
        }
        if (server_->shutting_down.load()) {
            close_local(close_code::kGoingAway, "server shutting down");
        }
        arm_timer();
        if (!leftover.empty()) {
            on_bytes(std::span(reinterpret_cast<std::uint8_t*>(leftover.data()), leftover.size()));
        }
        if (state_ == State::kClosed) {
            return;
        }
        if constexpr (kIsPlainSocket<Stream>) {
            // Read before waiting: bytes that arrived while the HTTP session handed the socket over
            // may already have used up the reactor's readiness edge, and a wait would then sleep
            // until the client sends more.
            on_readable({});
        } else {
            read_some();
        }
    }

    // Connection ------------------------------------------------------------------------------
    ConnectionId id() const noexcept override { return id_; }
    const std::string& peer_address() const noexcept override { return peer_address_; }
    const std::string& route() const noexcept override { return route_->path(); }
    bool compressed() const noexcept override { return deflate_; }
    std::size_t outbound_bytes() const noexcept override { return outbox_.data_bytes(); }
    std::size_t max_outbound_bytes() override {
        refresh_settings();  // the bound the next send is checked against
        return settings_->max_outbound_bytes;
    }

    SendResult send(SharedPayload message) override { return send(std::move(message), {}); }

    // The largest message a fan-out writes at once (see send).
    static constexpr std::size_t kMaxFanoutWriteBytes = 16 * 1024;

    SendResult send(SharedPayload message, std::function<void(bool)> on_written) override {
        if (!executor().running_in_this_thread()) {
            if constexpr (kIsPlainSocket<Stream>) {
                // A callback must run on this connection's thread: such sends are always posted.
                if (!on_written && write_direct(message)) {
                    return SendResult::kQueued;
                }
            }
            const std::size_t n = message->size();
            if (!reserve_from_other_thread(n)) {
                return SendResult::kDropped;  // `on_written` is not called
            }
            post_from_other_thread([m = std::move(message), cb = std::move(on_written),
                                    n](WsConnection& self) mutable {
                if (self.send_posted(std::move(m), cb, n) != SendResult::kQueued && cb) {
                    cb(false);
                }
            });
            return SendResult::kQueued;
        }
        if constexpr (kIsPlainSocket<Stream>) {
            // From the handler of another connection's last message (ThreadState::fanout_from),
            // without a callback (it must not run inside the send), small: written at once when
            // nothing waits. A large message is queued, so that what the socket does not take
            // at once is written later from the payload rather than copied out of it (a
            // Moonshare chunk relayed directly cost 20% of the relay's throughput).
            if (thread_.fanout_from != nullptr && thread_.fanout_from != this && !on_written &&
                message->size() <= kMaxFanoutWriteBytes && write_direct(message)) {
                return SendResult::kQueued;
            }
        }
        return send_local(std::move(message), std::move(on_written));
    }

    SendResult send_stream(MessageKind kind, std::shared_ptr<MessageSource> source,
                           std::function<void(bool)> on_written) override {
        if (!executor().running_in_this_thread()) {
            post_from_other_thread([kind, src = std::move(source),
                                    cb = std::move(on_written)](WsConnection& self) mutable {
                if (self.send_stream_local(kind, std::move(src), cb) != SendResult::kQueued && cb) {
                    cb(false);
                }
            });
            return SendResult::kQueued;
        }
        return send_stream_local(kind, std::move(source), std::move(on_written));
    }

    void pause_reading() override { paused_ = true; }

    void resume_reading() override {
        if (!paused_) {
            return;
        }
        paused_ = false;
        // Not from inside the handler that resumes: the buffered bytes may call it again.
        asio::post(executor(), [self = this->shared_from_this()] { self->continue_reading(); });
    }

    void close(std::uint16_t code, std::string_view reason) override {
        if (!executor().running_in_this_thread()) {
            post_from_other_thread(
                [code, r = std::string(reason)](WsConnection& self) { self.close_local(code, r); });
            return;
        }
        close_local(code, reason);
    }

    // Session ---------------------------------------------------------------------------------
    void shutdown() override { close_local(close_code::kGoingAway, "server shutting down"); }

    std::optional<ConnectionInfo> describe() const override {
        if (state_ == State::kClosed) {
            return std::nullopt;
        }
        ConnectionInfo info;
        info.id = id_;
        info.kind = "websocket";
        info.frontend = route_->frontend().empty() ? listener_.name : route_->frontend();
        info.listener = listener_.name;
        info.route = route_->path();
        info.peer = peer_address_;
        info.principal = principal_;
        // The wall-clock time of opening, from the steady clock's age: one time point less to
        // keep per connection.
        info.since = std::chrono::system_clock::now() -
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(Clock::now() -
                                                                                     opened_at_);
        info.bytes_in = bytes_in_;
        info.bytes_out = bytes_out_;
        if constexpr (kIsPlainSocket<Stream>) {
            std::lock_guard lock(direct_.mutex);
            info.bytes_out += direct_.bytes;
        }
        return info;
    }

    void kick() override {
        route_->count_disconnect("operator");
        close_local(close_code::kPolicyViolation, "disconnected by an operator");
    }

    void set_principal(std::string principal) override { principal_ = std::move(principal); }
    std::string principal() const override { return principal_; }

    const Owner* owner() const noexcept override { return &route_->owner(); }

    void withdraw(const CloseNotice& notice) override { close_local(notice.code, notice.reason); }

    void cut() override {
        teardown(
            CloseInfo{close_code::kAbnormal, "cut: its module's routes were withdrawn", false});
    }

private:
    enum class State : std::uint8_t {
        kOpen,     // messages flow both ways
        kClosing,  // a close frame is queued or sent; waiting for it to be written and for the
                   // peer's
        kClosed,   // transport closed, handler told
    };

    static constexpr int kMaxReadsPerWake = 8;  // then yield to the thread's other connections

    void half_close() noexcept {
        if constexpr (kIsPlainSocket<Stream>) {
            stream_.shutdown_send();
        } else {
            boost::system::error_code ignored;
            boost::beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send,
                                                                      ignored);
        }
    }

    void close_transport() noexcept {
        if constexpr (kIsPlainSocket<Stream>) {
            if (thread_.poller) {
                thread_.poller->remove(*this, stream_.native_handle());
            }
            stream_.close();
        } else {
            boost::system::error_code ignored;
            // No TLS close_notify: the WebSocket closing handshake already ended the session.
            boost::beast::get_lowest_layer(stream_).socket().close(ignored);
        }
    }

    // The peer's per-address key (IPv6 by its /64), derived when counted and uncounted rather than
    // kept: an idle connection does not carry its address twice.
    std::string peer_key() const {
        boost::system::error_code ec;
        const auto address = asio::ip::make_address(util::ip_of_peer(peer_address_), ec);
        return ec ? peer_address_ : address_key(address);
    }

    // Typed, for a cheap running_in_this_thread(); made when needed rather than kept.
    asio::io_context::executor_type executor() const noexcept { return thread_.io->get_executor(); }

    // ---- writes from other threads (plain sockets) ------------------------------------------

    // What this connection's thread shares with threads that write to its socket directly.
    struct DirectWrites {
        mutable util::SmallMutex mutex;
        int fd = -1;
        // Other threads may write now. Set by this thread only when nothing is queued, in flight,
        // streaming or posted from other threads; cleared by it before it queues, writes or closes
        // anything, and by a writer that could not write a whole frame.
        bool open = false;
        // The route's overflow policy, for sends refused on other threads; kept by this thread
        // like `compression_threshold`.
        std::atomic<bool> close_on_overflow{true};
        std::uint32_t posted = 0;        // sends posted by other threads and not yet run here
        std::unique_ptr<OutFrame> rest;  // what a partial write left: the next bytes on the wire
        std::uint64_t bytes = 0;         // written by other threads (for describe)
        // The route setting's, kept by this thread (refresh_settings): a reload applies to later
        // messages.
        std::atomic<std::size_t> compression_threshold{0};
    };

    // Writes a whole message when nothing is queued here: one sendmsg on the non-blocking socket.
    // From another thread, no post to this connection's thread, so no epoll wake-up of that
    // thread (at HunterPie's pace the wake-up, an epoll_ctl and an epoll_wait, cost more than the
    // write); Go's net package writes from any goroutine the same way. On this thread (a fan-out
    // from another connection's handler), no queueing, deferred flush and batch per delivery.
    // The mutex is held over the call, which never blocks (MSG_DONTWAIT). False: nothing was
    // written; the caller queues or posts the send as usual, and a socket error is then reported
    // by this thread's own write.
    bool write_direct(const SharedPayload& message) {
        const OutFrame frame =
            data_frame(message, direct_.compression_threshold.load(std::memory_order_relaxed));
        const std::string_view body = frame.body();
        std::array<iovec, 2> iov{
            iovec{const_cast<std::uint8_t*>(frame.header.data()), frame.header_size},
            iovec{const_cast<char*>(body.data()), body.size()}};  // sendmsg writes neither
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = body.empty() ? 1 : 2;

        std::unique_lock lock(direct_.mutex);
        if (!direct_.open) {
            return false;
        }
        const ssize_t n = ::sendmsg(direct_.fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) {
            direct_.open = false;
            return false;
        }
        const auto written = static_cast<std::size_t>(n);
        direct_.bytes += written;
        if (written < frame.wire_size()) {
            // The socket's buffer is full: the rest of this frame must be the next bytes written,
            // by this connection's thread (which takes `rest` before it queues anything).
            OutFrame rest;
            rest.owned.assign(reinterpret_cast<const char*>(frame.header.data()),
                              frame.header_size);
            rest.owned.append(body);
            rest.owned.erase(0, written);
            direct_.rest = std::make_unique<OutFrame>(std::move(rest));
            direct_.open = false;
            ++direct_.posted;
            lock.unlock();
            post_counted([](WsConnection& self) {
                self.close_direct();
                self.schedule_flush();
            });
        } else {
            lock.unlock();
        }
        route_->metrics().messages_out->inc();
        route_->metrics().bytes_out->inc(written);
        return true;
    }

    // Reserves a send's `n` bytes against the outbound bound before it is posted (from another
    // thread). False: past the bound, the route's overflow policy applied here, at once: the
    // message is dropped (counted), and with `close` the connection is closed as a slow consumer
    // (counted once; the close is posted, behind the sends posted before).
    bool reserve_from_other_thread(std::size_t n) {
        if (!bound_.overflowed() && bound_.reserve(n)) {
            return true;
        }
        route_->metrics().dropped->inc();
        if (direct_.close_on_overflow.load(std::memory_order_relaxed) && bound_.overflow()) {
            route_->count_disconnect("slow_consumer");
            ws_log()->debug("[conn {}] outbound bound full, {} more bytes sent: closing",
                            to_string(id_), n);
            post_from_other_thread([](WsConnection& self) { self.close_slow_consumer(); });
        }
        return false;
    }

    // Runs `f` on this connection's thread, after every send posted before it; other threads do
    // not write directly until it ran (a send posted first is never overtaken).
    template <class F>
    void post_from_other_thread(F f) {
        if constexpr (kIsPlainSocket<Stream>) {
            std::lock_guard lock(direct_.mutex);
            direct_.open = false;
            ++direct_.posted;
        }
        post_counted(std::move(f));
    }

    // Posts `f`, already counted in direct_.posted.
    template <class F>
    void post_counted(F f) {
        asio::post(executor(), [self = this->shared_from_this(), f = std::move(f)]() mutable {
            if constexpr (kIsPlainSocket<Stream>) {
                std::lock_guard lock(self->direct_.mutex);
                --self->direct_.posted;
            }
            f(*self);
            self->reopen_direct();
        });
    }

    // This thread is about to queue, write or close: other threads stop writing, and what a
    // partial write of theirs left goes first.
    void close_direct() {
        if constexpr (kIsPlainSocket<Stream>) {
            std::lock_guard lock(direct_.mutex);
            direct_.open = false;
            if (direct_.rest) {
                // Control frames go out first and in order; the outbox was empty when it was left.
                outbox_.push_control(std::move(*direct_.rest));
                direct_.rest.reset();
            }
        }
    }

    // Nothing is queued here: other threads may write directly again.
    void reopen_direct() {
        if constexpr (kIsPlainSocket<Stream>) {
            if (state_ != State::kOpen || !outbox_.empty() || streaming()) {
                return;
            }
            std::lock_guard lock(direct_.mutex);
            if (direct_.posted == 0 && !direct_.rest) {
                direct_.open = true;
            }
        }
    }

    // ---- sending ---------------------------------------------------------------------------

    // One whole message as a frame: compressed (its shared compressed form) when deflate was
    // negotiated and it is at least `threshold` bytes long.
    OutFrame data_frame(SharedPayload message, std::size_t threshold) const {
        OutFrame frame;
        const bool compress = deflate_ && message->size() >= threshold;
        frame.shared_body =
            compress ? message->derived([](std::string_view b) { return ws::deflate_message(b); })
                     : message->bytes();
        const auto opcode =
            message->kind() == MessageKind::kText ? ws::Opcode::kText : ws::Opcode::kBinary;
        frame.header_size = static_cast<std::uint8_t>(ws::encode_header(
            std::span<std::uint8_t, ws::kMaxHeaderBytes>(frame.header.data(), ws::kMaxHeaderBytes),
            opcode, true, compress, frame.shared_body.size()));
        frame.keeper = std::move(message);
        return frame;
    }

    // A streamed message is being sent, or whole messages wait behind one.
    bool streaming() const noexcept {
        return streaming_ && (streaming_->source || !streaming_->behind.empty());
    }

    static ws::FrameParser::Limits parser_limits(const WsRouteSettings& s) {
        return {s.max_message_bytes, s.stream_binary, s.max_streamed_message_bytes};
    }

    SendResult send_local(SharedPayload message, std::function<void(bool)> on_written) {
        if (state_ != State::kOpen) {
            return SendResult::kClosed;
        }
        OutFrame frame = message_frame(std::move(message), std::move(on_written));
        if (!bound_.fits(frame.wire_size(), queued_bytes())) {
            route_->metrics().dropped->inc();
            if (settings_->overflow == OverflowPolicy::kClose) {
                if (bound_.overflow()) {
                    route_->count_disconnect("slow_consumer");
                }
                close_slow_consumer();
            }
            return SendResult::kDropped;
        }
        queue_message(std::move(frame));
        return SendResult::kQueued;
    }

    // A send another thread posted, its `n` bytes reserved in bound_ there: admitted already.
    SendResult send_posted(SharedPayload message, std::function<void(bool)> on_written,
                           std::size_t n) {
        if (state_ != State::kOpen) {
            bound_.release(n);
            return SendResult::kClosed;
        }
        queue_message(message_frame(std::move(message), std::move(on_written)));
        bound_.release(n);  // after queue_message published them as queued: the sum never dips
        return SendResult::kQueued;
    }

    // A whole message's frame, with the route's settings of now; other threads stop writing
    // directly (what this thread queues goes first).
    OutFrame message_frame(SharedPayload message, std::function<void(bool)> on_written) {
        refresh_settings();
        close_direct();
        OutFrame frame = data_frame(std::move(message), settings_->compression_threshold_bytes);
        frame.on_written = std::move(on_written);
        return frame;
    }

    // Queues an admitted message's frame and schedules its flush (which publishes the queued
    // bytes to bound_).
    void queue_message(OutFrame frame) {
        enqueue(std::move(frame));
        ++uncounted_out_;
        schedule_flush();
    }

    // Past the outbound bound with the `close` policy: the queued data is dropped (a client this
    // far behind must resynchronise) and the connection closes with 1008.
    void close_slow_consumer() {
        if (state_ != State::kOpen) {
            return;
        }
        run_callbacks(outbox_.drop_queued_data(), false);
        close_local(close_code::kPolicyViolation, "slow consumer");
    }

    // Data bytes queued here: in the outbox, and whole messages behind a streamed one.
    std::size_t queued_bytes() const noexcept {
        return outbox_.data_bytes() + (streaming_ ? streaming_->behind_bytes : 0);
    }

    // Queues an admitted whole message: in the outbox, or behind a streamed message still being
    // sent.
    void enqueue(OutFrame frame) {
        if (!streaming()) {
            outbox_.push_data(std::move(frame));
            return;
        }
        streaming_->behind_bytes += frame.wire_size();
        streaming_->behind.push_back(PendingSend{std::move(frame), nullptr, {}, {}});
    }

    // ---- streamed messages (send_stream) ---------------------------------------------------

    // A part is asked for only while less than this is queued: a streamed message holds at most
    // this plus one part of memory, whatever its size.
    static constexpr std::size_t kStreamPartBytes = 64 * 1024;
    static constexpr std::size_t kStreamLowWaterBytes = 256 * 1024;
    // Streamed messages waiting behind the one being sent; one more is refused (kDropped) and the
    // route's overflow policy applies, as for a full outbox.
    static constexpr std::size_t kMaxWaitingStreams = 64;

    // Something to send once the streamed message ahead of it is complete.
    struct PendingSend {
        OutFrame frame;                         // a whole message, or (source set)
        std::shared_ptr<MessageSource> source;  // a streamed one
        MessageKind kind = MessageKind::kBinary;
        std::function<void(bool)> on_written;  // the streamed message's
    };
    // Allocated by the first send_stream: connections that never stream pay one pointer.
    struct Streaming {
        std::shared_ptr<MessageSource> source;  // the message being sent; null: none
        MessageKind kind = MessageKind::kBinary;
        std::function<void(bool)> on_written;
        bool started = false;  // its first frame is queued
        bool reading = false;  // a part was asked for and has not come yet
        std::deque<PendingSend> behind;
        std::size_t behind_bytes = 0;  // of the whole messages in `behind`: part of the bound
        std::size_t waiting_streams = 0;
    };

    SendResult send_stream_local(MessageKind kind, std::shared_ptr<MessageSource> source,
                                 std::function<void(bool)> on_written) {
        if (state_ != State::kOpen) {
            return SendResult::kClosed;
        }
        close_direct();  // nothing may overtake the streamed message
        if (!streaming_) {
            streaming_ = std::make_unique<Streaming>();
        }
        auto& st = *streaming_;
        if (st.source || !st.behind.empty()) {
            if (st.waiting_streams >= kMaxWaitingStreams) {
                // As for a full outbox: a client this far behind must resynchronise.
                route_->metrics().dropped->inc();
                if (settings_->overflow == OverflowPolicy::kClose) {
                    route_->count_disconnect("slow_consumer");
                    close_local(close_code::kPolicyViolation, "slow consumer");
                }
                return SendResult::kDropped;
            }
            ++st.waiting_streams;
            st.behind.push_back(PendingSend{{}, std::move(source), kind, std::move(on_written)});
            return SendResult::kQueued;
        }
        begin_stream(kind, std::move(source), std::move(on_written));
        return SendResult::kQueued;
    }

    void begin_stream(MessageKind kind, std::shared_ptr<MessageSource> source,
                      std::function<void(bool)> on_written) {
        auto& st = *streaming_;
        st.source = std::move(source);
        st.kind = kind;
        st.on_written = std::move(on_written);
        st.started = false;
        st.reading = false;
        ++uncounted_out_;
        pump_stream();
    }

    // Asks the active stream for its next part when the outbox has room for it.
    void pump_stream() {
        if (!streaming_ || !streaming_->source || streaming_->reading || state_ != State::kOpen) {
            return;
        }
        const std::size_t low_water =
            std::min(kStreamLowWaterBytes, settings_->max_outbound_bytes / 2);
        if (outbox_.data_bytes() > 0 && outbox_.data_bytes() >= low_water) {
            return;
        }
        streaming_->reading = true;
        auto source = streaming_->source;
        source->next(
            kStreamPartBytes, [self = this->shared_from_this(), source](StreamPart part) mutable {
                asio::post(self->executor(),
                           [self, source = std::move(source), part = std::move(part)]() mutable {
                               self->on_stream_part(source, std::move(part));
                           });
            });
    }

    void on_stream_part(const std::shared_ptr<MessageSource>& source, StreamPart part) {
        if (state_ != State::kOpen || !streaming_ || streaming_->source != source) {
            return;  // closed meanwhile: its on_written already ran with false
        }
        auto& st = *streaming_;
        st.reading = false;
        if (!part.bytes || part.bytes->size() > kStreamPartBytes ||
            (part.bytes->size() == 0 && !part.last)) {
            ws_log()->warn("[conn {}] a streamed message's source failed after {}; closing",
                           to_string(id_), st.started ? "its first part" : "nothing was sent");
            route_->count_disconnect("stream_failed");
            close_local(close_code::kInternalError, "message source failed");
            return;
        }
        OutFrame frame;
        const auto opcode =
            st.started ? ws::Opcode::kContinuation
                       : (st.kind == MessageKind::kText ? ws::Opcode::kText : ws::Opcode::kBinary);
        frame.shared_body = part.bytes->bytes();
        frame.header_size = static_cast<std::uint8_t>(ws::encode_header(
            std::span<std::uint8_t, ws::kMaxHeaderBytes>(frame.header.data(), ws::kMaxHeaderBytes),
            opcode, part.last, false, frame.shared_body.size()));
        frame.keeper = std::move(part.bytes);
        st.started = true;
        close_direct();
        if (part.last) {
            frame.on_written = std::move(st.on_written);
            st.on_written = {};
            st.source.reset();
        }
        outbox_.push_data(std::move(frame));
        if (part.last) {
            release_behind();
        }
        schedule_flush();
        pump_stream();
    }

    // The streamed message is complete: what waited behind it follows, up to the next stream.
    void release_behind() {
        auto& st = *streaming_;
        while (!st.source && !st.behind.empty()) {
            PendingSend next = std::move(st.behind.front());
            st.behind.pop_front();
            if (next.source) {
                --st.waiting_streams;
                begin_stream(next.kind, std::move(next.source), std::move(next.on_written));
            } else {
                st.behind_bytes -= next.frame.wire_size();
                outbox_.push_data(std::move(next.frame));
            }
        }
    }

    // The connection is closing: streamed messages and what waits behind them will not be sent.
    void abort_streams() {
        if (!streaming_) {
            return;
        }
        auto st = std::move(streaming_);
        if (st->on_written) {
            st->on_written(false);
        }
        for (auto& p : st->behind) {
            auto& cb = p.source ? p.on_written : p.frame.on_written;
            if (cb) {
                cb(false);
            }
        }
    }

    void push_control(ws::Opcode opcode, std::string payload) {
        close_direct();
        OutFrame frame;
        frame.owned = std::move(payload);
        frame.header_size = static_cast<std::uint8_t>(ws::encode_header(
            std::span<std::uint8_t, ws::kMaxHeaderBytes>(frame.header.data(), ws::kMaxHeaderBytes),
            opcode, true, false, frame.owned.size()));
        if (opcode == ws::Opcode::kPong) {
            outbox_.push_pong(std::move(frame));
        } else if (opcode == ws::Opcode::kClose) {
            outbox_.push_last(
                std::move(frame));  // after the data already queued: it is the last frame
        } else {
            outbox_.push_control(std::move(frame));
        }
        schedule_flush();
    }

    static void run_callbacks(std::vector<std::function<void(bool)>> callbacks, bool written) {
        for (auto& cb : callbacks) {
            cb(written);
        }
    }

    // Frames queued by one handler run go out together: the flush runs after the current handler.
    void schedule_flush() {
        // Every queueing ends here: what other threads' sends are counted against.
        bound_.set_queued(queued_bytes());
        if (flush_scheduled_ || outbox_.in_flight() || state_ == State::kClosed) {
            return;
        }
        flush_scheduled_ = true;
        thread_.defer_flush(this->shared_from_this(), [](void* p) {
            auto* self = static_cast<WsConnection*>(p);
            self->flush_scheduled_ = false;
            self->flush();
        });
    }

    void flush() {
        // A loop, not recursion: a batch written at once completes here, and the next one (sent
        // meanwhile by the completion callbacks) goes out in the next turn.
        while (state_ != State::kClosed && !outbox_.in_flight()) {
            if constexpr (kIsPlainSocket<Stream>) {
                // Most batches fit in the socket's send buffer: written now, they need no write
                // operation and no posted completion (at HunterPie's pace, one per delivery).
                // What the socket does not take waits for the poller (continue_write).
                BatchWriter::Result result;
                const auto step = writer_.start(stream_, outbox_, thread_.write_batch, result);
                if (step == BatchWriter::Step::kNothing) {
                    reopen_direct();
                    return;
                }
                count_batch();
                if (step == BatchWriter::Step::kWaiting) {
                    arm_timer();  // the write deadline
                    return;
                }
                if (!complete_write(result.ec, result.bytes)) {
                    return;
                }
            } else {
                auto& batch = thread_.write_batch;
                batch.clear();
                if (outbox_.gather(batch, BatchWriter::kMaxBatchFrames,
                                   BatchWriter::kMaxBatchBytes) == 0) {
                    return;
                }
                count_batch();
                arm_timer();
                // A TLS stream encrypts each buffer of a sequence separately; one flat buffer
                // makes one record per batch instead of two per frame.
                tls_.write.clear();
                for (const auto& b : batch) {
                    tls_.write.append(static_cast<const char*>(b.data()), b.size());
                }
                asio::async_write(stream_, asio::buffer(tls_.write), completion_after(0));
                return;
            }
        }
    }

    // A batch went in flight.
    void count_batch() {
        write_started_ = Clock::now();
        // Route counters are shared by every thread: add to them once per write, not per message.
        route_->metrics().messages_out->inc(uncounted_out_);
        uncounted_out_ = 0;
    }

    // Plain sockets: the socket is writable again; writes what is left of the batch.
    void continue_write() {
        BatchWriter::Result result;
        if (writer_.resume(stream_, result) == BatchWriter::Step::kDone &&
            complete_write(result.ec, result.bytes)) {
            flush();
        }
    }

    // The completion of an async_write of the batch's rest, `before` bytes of it written already
    // (TLS streams).
    auto completion_after(std::size_t before) {
        return [self = this->shared_from_this(), before](const boost::system::error_code& ec,
                                                         std::size_t n) {
            if (self->complete_write(ec, before + n)) {
                self->flush();
            }
        };
    }

    /// The batch in flight is written (or failed): its callbacks run, the close handshake moves
    /// on. True when the outbox holds more to flush.
    bool complete_write(const boost::system::error_code& ec, std::size_t bytes) {
        route_->metrics().bytes_out->inc(bytes);
        bytes_out_ += bytes;
        const bool close_was_in_batch = close_queued_ && outbox_.queued() == 0;
        auto callbacks = outbox_.complete();
        bound_.set_queued(queued_bytes());
        if constexpr (!kIsPlainSocket<Stream>) {
            if (tls_.write.capacity() > 64 * 1024) {
                std::string().swap(tls_.write);
            }
        }
        run_callbacks(std::move(callbacks), !ec);
        if (state_ == State::kClosed) {
            return false;
        }
        if (!ec) {
            pump_stream();
        }
        if (ec) {
            teardown(CloseInfo{close_code::kAbnormal, "write failed: " + ec.message(), false});
            return false;
        }
        if (close_was_in_batch) {
            close_written_ = true;
            if (peer_closed_) {
                teardown(closing_->info);  // the closing handshake is complete
                return false;
            }
            if (discard_input_) {
                half_close();
            }
        }
        if (outbox_.empty()) {
            reopen_direct();
            return false;
        }
        return true;
    }

    // ---- closing ---------------------------------------------------------------------------

    void close_local(std::uint16_t code, std::string_view reason) {
        if (state_ != State::kOpen) {
            return;
        }
        state_ = State::kClosing;
        abort_streams();
        closing_ = std::make_unique<Closing>(
            Closing{{code, std::string(reason), false}, Clock::now() + settings_->close_timeout});
        close_queued_ = true;
        // 1005 and 1006 must never be sent (RFC 6455 7.4.1): they mean "no code".
        const bool no_code = code == close_code::kNoStatus || code == close_code::kAbnormal;
        push_control(ws::Opcode::kClose, no_code ? std::string() : ws::close_payload(code, reason));
        arm_timer();
    }

    void on_peer_close(std::uint16_t code, std::string_view reason) {
        peer_closed_ = true;
        stop_reading_ = true;
        if (state_ == State::kOpen) {
            state_ = State::kClosing;
            abort_streams();
            closing_ = std::make_unique<Closing>(Closing{{code, std::string(reason), true},
                                                         Clock::now() + settings_->close_timeout});
            close_queued_ = true;
            // Echo the peer's code, as RFC 6455 5.5.1 asks.
            push_control(ws::Opcode::kClose, code == close_code::kNoStatus
                                                 ? std::string()
                                                 : ws::close_payload(code, ""));
            arm_timer();
        } else if (close_written_) {
            teardown(closing_->info);
        }
    }

    /// Ends the connection: closes the transport and tells the handler, exactly once.
    void teardown(CloseInfo info) {
        if (state_ == State::kClosed) {
            return;
        }
        // Unregistering from the poller may drop the last reference but this one.
        auto self = this->shared_from_this();
        state_ = State::kClosed;
        if constexpr (kIsPlainSocket<Stream>) {
            writer_.abandon();
        }
        if (thread_.deadlines) {
            thread_.deadlines->cancel(*this);
        }
        close_direct();  // before the descriptor is closed (and its number reused)
        close_transport();
        route_->metrics().messages_out->inc(uncounted_out_);
        uncounted_out_ = 0;
        run_callbacks(outbox_.clear(), false);
        abort_streams();
        bound_.set_queued(0);
        inbuf_.reset();
        if (peer_counted_) {
            route_->peers().remove(peer_key());
        }
        if (registered_) {
            route_->metrics().open->sub(1);
            listener_.open_ws->sub(1);
        }
        server_->events.publish(core::EventKind::kConnectionClosed, route_->owner().name,
                                to_string(id_),
                                "websocket " + route_->path() + " " + std::to_string(info.code) +
                                    (info.reason.empty() ? "" : " " + info.reason) +
                                    (info.initiated_by_peer ? " (by client)" : " (by server)"),
                                principal_);
        ws_log()->debug("[conn {}] closed: {} {}{}", to_string(id_), info.code, info.reason,
                        info.initiated_by_peer ? " (by client)" : "");
        auto handler = std::move(handler_);
        if (handler) {
            handler->on_close(info);
        }
        server_->session_closed(static_cast<std::uint64_t>(id_));
        if (registered_) {
            server_->owner_closed(route_->owner());  // last: a withdraw waiting on it may return
        }
    }

    // ---- reading ---------------------------------------------------------------------------

    // The poller's report for a plain socket.
    void on_ready(std::uint32_t events) override {
        if constexpr (kIsPlainSocket<Stream>) {
            if ((events & EPOLLOUT) != 0 && writer_.waiting()) {
                continue_write();
            }
            if ((events & kInputEvents) != 0 && !stop_reading_ && state_ != State::kClosed) {
                on_readable({});
            }
        } else {
            (void)events;
        }
    }

    // Idempotent: at most one read operation is pending, whoever asks. A plain socket needs none:
    // the poller reports it whenever input arrives.
    void read_some() {
        if (stop_reading_ || paused_ || read_pending_ || state_ == State::kClosed) {
            return;
        }
        if constexpr (!kIsPlainSocket<Stream>) {
            read_pending_ = true;
            if (!tls_.read) {
                tls_.read = std::make_unique<std::uint8_t[]>(kTlsReadBufferBytes);
            }
            stream_.async_read_some(asio::buffer(tls_.read.get(), kTlsReadBufferBytes),
                                    [self = this->shared_from_this()](
                                        const boost::system::error_code& ec, std::size_t n) {
                                        self->read_pending_ = false;
                                        self->on_read(ec, n);
                                    });
        }
    }

    // After resume_reading: the bytes buffered while paused first, then the socket again.
    void continue_reading() {
        if (state_ == State::kClosed || paused_ || stop_reading_) {
            return;
        }
        if (inbuf_) {
            parse_buffered();
            if (state_ == State::kClosed || paused_ || stop_reading_) {
                return;
            }
        }
        if constexpr (kIsPlainSocket<Stream>) {
            on_readable({});
        } else {
            read_some();
        }
    }

    // Plain sockets: the socket is readable; read until it would block (the poller reports a
    // readiness edge only once, so the socket must be drained before waiting again).
    void on_readable(const boost::system::error_code& ec) {
        if (state_ == State::kClosed) {
            return;
        }
        if (ec) {
            on_transport_error(ec);
            return;
        }
        if (paused_) {
            return;  // resume_reading reads again
        }
        auto* buffer = thread_.read_buffer.get();
        for (int i = 0; i < kMaxReadsPerWake; ++i) {
            boost::system::error_code read_ec;
            const std::size_t n =
                stream_.read_some(std::span(buffer, ThreadState::kReadBufferBytes), read_ec);
            if (read_ec == asio::error::would_block) {
                return;  // drained: the poller reports the next input
            }
            if (read_ec) {
                on_transport_error(read_ec);
                return;
            }
            on_bytes(std::span(buffer, n));
            if (state_ == State::kClosed || stop_reading_ || paused_) {
                return;
            }
            // A short read drained the socket (PollClient::hung_up says when it may not have).
            if (n < ThreadState::kReadBufferBytes && !this->hung_up()) {
                return;
            }
        }
        asio::post(executor(), [self = this->shared_from_this()] { self->on_readable({}); });
    }

    void on_read(const boost::system::error_code& ec, std::size_t n) {
        if (state_ == State::kClosed) {
            return;
        }
        if (ec) {
            on_transport_error(ec);
            return;
        }
        on_bytes(std::span(tls_.read.get(), n));
        read_some();
    }

    void on_transport_error(const boost::system::error_code& ec) {
        if (close_written_) {
            // Our close frame is out; the peer closing the transport completes the handshake.
            teardown(closing_->info);
            return;
        }
        const bool eof = ec == asio::error::eof || ec == asio::error::connection_reset;
        teardown(CloseInfo{close_code::kAbnormal,
                           eof ? "connection closed without a close frame" : ec.message(), true});
    }

    void on_bytes(std::span<std::uint8_t> data) {
        last_rx_ = Clock::now();
        ping_outstanding_ = false;
        route_->metrics().bytes_in->inc(data.size());
        bytes_in_ += data.size();
        if (!inbuf_) {
            const std::size_t used = parse(data);
            if (used < data.size() && state_ != State::kClosed && !stop_reading_) {
                inbuf_ = std::make_unique<std::string>(
                    reinterpret_cast<const char*>(data.data() + used), data.size() - used);
            }
        } else {
            inbuf_->append(reinterpret_cast<const char*>(data.data()), data.size());
            parse_buffered();
        }
    }

    void parse_buffered() {
        const std::size_t used =
            parse(std::span(reinterpret_cast<std::uint8_t*>(inbuf_->data()), inbuf_->size()));
        if (state_ == State::kClosed || stop_reading_ || used == inbuf_->size()) {
            inbuf_.reset();  // and a large frame's memory is given back
        } else {
            inbuf_->erase(0, used);
        }
    }

    // Runs the parser over `data`; returns the bytes consumed.
    std::size_t parse(std::span<std::uint8_t> data) {
        const std::size_t used = parse_frames(data);
        if (uncounted_in_ > 0) {
            route_->metrics().messages_in->inc(uncounted_in_);
            uncounted_in_ = 0;
        }
        return used;
    }

    std::size_t parse_frames(std::span<std::uint8_t> data) {
        std::size_t offset = 0;
        while (state_ != State::kClosed && !stop_reading_ && !discard_input_ && !paused_) {
            auto [event, used] = parser_.next(data.subspan(offset));
            offset += used;
            switch (event.type) {
                case ws::FrameEvent::Type::kNeedMore:
                    return offset;
                case ws::FrameEvent::Type::kMessage:
                    if (event.compressed && !take_inflated(event.data.size())) {
                        break;
                    }
                    on_message(event.kind, event.data, event.deflated, offset == data.size());
                    break;
                case ws::FrameEvent::Type::kBinaryPart:
                    on_binary_part(event);
                    break;
                case ws::FrameEvent::Type::kPing:
                    if (state_ == State::kOpen) {
                        push_control(ws::Opcode::kPong, std::string(event.data));
                        if (handler_) {
                            handler_->on_ping();
                        }
                    }
                    break;
                case ws::FrameEvent::Type::kPong:
                    break;
                case ws::FrameEvent::Type::kClose:
                    on_peer_close(event.code, event.data);
                    break;
                case ws::FrameEvent::Type::kError:
                    route_->count_disconnect(event.code == close_code::kTooBig ? "too_big"
                                                                               : "protocol_error");
                    // The byte stream cannot be trusted any more: discard what follows, and once
                    // our close frame is out, half-close so that the peer sees the end.
                    discard_input_ = true;
                    close_local(event.code, event.data);
                    return data.size();
            }
        }
        // Paused: the rest stays buffered for resume_reading. Otherwise it is discarded.
        const bool keep = paused_ && state_ != State::kClosed && !stop_reading_ && !discard_input_;
        return keep ? offset : data.size();
    }

    // The route's rates as buckets see them. The byte buckets are at least max_message_bytes deep,
    // so that one message of the largest size always passes a full bucket.
    util::TokenRate message_rate() const noexcept {
        return {settings_->max_messages_per_s, settings_->message_burst};
    }
    util::TokenRate byte_rate() const noexcept {
        return {static_cast<double>(settings_->max_bytes_per_s),
                static_cast<double>(
                    std::max<std::uint64_t>(settings_->bytes_burst, settings_->max_message_bytes))};
    }
    util::TokenRate inflated_rate() const noexcept {
        return {static_cast<double>(settings_->max_inflated_bytes_per_s),
                static_cast<double>(std::max<std::uint64_t>(settings_->inflated_burst_bytes,
                                                            settings_->max_message_bytes))};
    }

    // Spends one message of `bytes` from the route's message rate and byte rate; false (and the
    // connection closing) when either is overdrawn.
    bool take_message(std::size_t bytes) {
        if (settings_->max_messages_per_s > 0 &&
            !messages_.try_take(1, message_rate(), Clock::now())) {
            refuse_input("rate_limited", "message rate limit exceeded");
            return false;
        }
        return take_bytes(bytes);
    }

    // Spends `bytes` of a message (a whole one, or a streamed one's part) from the byte rate:
    // what one connection makes its front-end handle and relay per second, whatever its message
    // rate. False (and the connection closing) when it is overdrawn.
    bool take_bytes(std::size_t bytes) {
        if (settings_->max_bytes_per_s == 0 ||
            bytes_.try_take(static_cast<double>(bytes), byte_rate(), Clock::now())) {
            return true;
        }
        refuse_input("byte_rate_limited", "data rate limit exceeded");
        return false;
    }

    // Spends the bytes a compressed message inflated to from the route's inflate budget; false
    // (and the connection closing) when it is overdrawn. A 1 KiB frame may inflate to
    // max_message_bytes: this bounds the CPU one connection spends in zlib, whatever its message
    // rate.
    bool take_inflated(std::size_t bytes) {
        refresh_settings();
        if (state_ != State::kOpen || settings_->max_inflated_bytes_per_s == 0 ||
            inflated_.try_take(static_cast<double>(bytes), inflated_rate(), Clock::now())) {
            return true;
        }
        refuse_input("inflate_rate_limited", "inflated data rate limit exceeded");
        return false;
    }

    // A rate bound is overdrawn: close 1008 and parse nothing more. What follows in the bytes
    // already read, and whatever is read later, is discarded unparsed (nothing more is inflated
    // or handed to the handler), and once our close frame is out the connection half-closes: a
    // flood costs no more work after the bound than it took to find it.
    void refuse_input(std::string_view counter, std::string_view reason) {
        route_->count_disconnect(counter);
        ws_log()->debug("[conn {}] {}; closing", to_string(id_), reason);
        discard_input_ = true;
        close_local(close_code::kPolicyViolation, reason);
    }

    // The route's first-message deadline; zero (none) on routes whose clients may only listen.
    std::chrono::milliseconds first_message_timeout() const noexcept {
        return route_->listen_only() ? std::chrono::milliseconds(0)
                                     : settings_->first_message_timeout;
    }

    void on_binary_part(const ws::FrameEvent& event) {
        if (state_ != State::kOpen) {
            return;
        }
        if (event.first) {
            refresh_settings();
            if (!take_message(event.data.size())) {
                return;
            }
            ++uncounted_in_;
            got_message_ = true;
        } else if (!take_bytes(event.data.size())) {
            return;
        }
        handler_->on_binary_part(event.data, event.first, event.last);
    }

    // `last`: nothing more was read after it, for now.
    void on_message(MessageKind kind, std::string_view data, std::string_view deflated, bool last) {
        if (state_ != State::kOpen) {
            return;  // after our close frame the peer's data is discarded (RFC 6455 1.4)
        }
        refresh_settings();
        if (!take_message(data.size())) {
            return;
        }
        ++uncounted_in_;
        got_message_ = true;
        // What the handler of a read's last message sends other connections is written at once;
        // the rest is gathered (ThreadState::fanout_from).
        struct FanoutFrom {
            ThreadState& thread;
            const void* outer;
            ~FanoutFrom() { thread.fanout_from = outer; }
        } fanout_from{thread_, std::exchange(thread_.fanout_from, last ? this : nullptr)};
        if (deflated.empty()) {
            handler_->on_message(kind, data);
        } else {
            handler_->on_deflated_message(kind, data, deflated);
        }
    }

    void refresh_settings() {
        const auto generation = route_->generation();
        if (generation != generation_) {
            generation_ = generation;
            settings_ = route_->settings();
            parser_.set_limits(parser_limits(*settings_));
            bound_.set_max(settings_->max_outbound_bytes);
            direct_.compression_threshold.store(settings_->compression_threshold_bytes,
                                                std::memory_order_relaxed);
            direct_.close_on_overflow.store(settings_->overflow == OverflowPolicy::kClose,
                                            std::memory_order_relaxed);
        }
    }

    // ---- deadlines -------------------------------------------------------------------------

    void arm_timer() {
        if (state_ == State::kClosed) {
            return;
        }
        Clock::time_point next = Clock::time_point::max();
        if (state_ == State::kOpen) {
            next = last_rx_ + settings_->idle_timeout;
            if (!got_message_ && first_message_timeout().count() > 0) {
                next = std::min(next, opened_at_ + first_message_timeout());
            }
            if (ping_outstanding_) {
                next = std::min(next, ping_sent_ + settings_->pong_timeout);
            } else if (settings_->ping_interval.count() > 0) {
                next = std::min(next, last_rx_ + settings_->ping_interval);
            }
        } else {
            next = closing_->deadline;
        }
        if (outbox_.in_flight()) {
            next = std::min(next, write_started_ + settings_->write_timeout);
        }
        // Deadlines only move later while traffic flows, so the deadline is moved only when it
        // passes or when it must come sooner: no heap operation per message.
        if (deadline_scheduled() && next >= scheduled_deadline()) {
            return;
        }
        if (thread_.deadlines) {  // null once the server is gone
            thread_.deadlines->schedule(this->shared_from_this(), next);
        }
    }

    void on_deadline() override { on_timer(); }

    void on_timer() {
        if (state_ == State::kClosed) {
            return;
        }
        const auto now = Clock::now();
        if (outbox_.in_flight() && now >= write_started_ + settings_->write_timeout) {
            route_->count_disconnect("write_timeout");
            teardown(CloseInfo{close_code::kAbnormal, "write timed out", false});
            return;
        }
        if (state_ == State::kClosing) {
            if (now >= closing_->deadline) {
                teardown(closing_->info);
                return;
            }
        } else if (!got_message_ && first_message_timeout().count() > 0 &&
                   now >= opened_at_ + first_message_timeout()) {
            route_->count_disconnect("handshake_timeout");
            ws_log()->debug("[conn {}] no message {} ms after the upgrade; closing", to_string(id_),
                            first_message_timeout().count());
            close_local(close_code::kPolicyViolation, "handshake timeout");
        } else if (now >= last_rx_ + settings_->idle_timeout) {
            route_->count_disconnect("idle_timeout");
            close_local(close_code::kGoingAway, "idle timeout");
        } else if (ping_outstanding_ && now >= ping_sent_ + settings_->pong_timeout) {
            route_->count_disconnect("pong_timeout");
            close_local(close_code::kGoingAway, "ping timeout");
        } else if (!ping_outstanding_ && settings_->ping_interval.count() > 0 &&
                   now >= last_rx_ + settings_->ping_interval) {
            ping_outstanding_ = true;
            ping_sent_ = now;
            push_control(ws::Opcode::kPing, std::string());
        }
        arm_timer();
    }

    static constexpr std::size_t kTlsReadBufferBytes = 16 * 1024;

    // Members are ordered to leave no padding: 10,000 idle connections pay for every byte.
    Stream stream_;
    std::uint32_t generation_;
    std::shared_ptr<ServerState> server_;
    ListenerState& listener_;
    std::shared_ptr<WsRouteState> route_;
    ThreadState& thread_;
    std::shared_ptr<const WsRouteSettings> settings_;
    ConnectionId id_;
    std::string peer_address_;
    std::unique_ptr<WsHandler> handler_;

    State state_ = State::kOpen;
    bool deflate_;
    bool registered_ = false;
    bool peer_counted_ = false;
    bool stop_reading_ = false;   // the peer's close frame arrived: nothing may follow it
    bool discard_input_ = false;  // after a protocol error: read and drop until the peer closes
    bool peer_closed_ = false;
    bool close_queued_ = false;
    bool close_written_ = false;
    bool flush_scheduled_ = false;
    bool ping_outstanding_ = false;
    bool got_message_ = false;
    bool paused_ = false;              // pause_reading: the handler takes no more input for now
    bool read_pending_ = false;        // a read is out (TLS)
    std::uint32_t uncounted_in_ = 0;   // messages received since the route counter was updated
    std::uint32_t uncounted_out_ = 0;  // messages queued since the route counter was updated  // a
                                       // data message arrived (ends the first-message deadline)
    // Set when the closing handshake starts (close_local, on_peer_close), before any close frame
    // is queued: an open connection does not carry it.
    struct Closing {
        CloseInfo info;
        Clock::time_point deadline;  // for the peer's close frame
    };
    std::unique_ptr<Closing> closing_;

    ws::FrameParser parser_;
    // The bytes of an incomplete frame; null when there are none (most of the time: an idle
    // connection pays a pointer).
    std::unique_ptr<std::string> inbuf_;

    Outbox outbox_;
    // settings_->max_outbound_bytes over what is queued and what other threads posted.
    SendBound bound_;
    DirectWrites direct_;  // plain sockets only
    std::unique_ptr<Streaming> streaming_;
    // What only a plain connection needs: its writer.
    struct NoPlainWriter {};
    [[no_unique_address]] std::conditional_t<kIsPlainSocket<Stream>, BatchWriter, NoPlainWriter>
        writer_;
    // What only a TLS connection needs: a plain one spends no bytes on it.
    struct TlsBuffers {
        std::unique_ptr<std::uint8_t[]> read;
        std::string write;  // a batch flattened: one record instead of two per frame
    };
    struct NoTlsBuffers {};
    [[no_unique_address]] std::conditional_t<kIsPlainSocket<Stream>, NoTlsBuffers, TlsBuffers> tls_;

    Clock::time_point opened_at_{};
    std::string principal_;  // set by the front-end
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    Clock::time_point last_rx_{};
    Clock::time_point ping_sent_{};
    Clock::time_point write_started_{};

    // The route's rates (take_message, take_bytes, take_inflated), full when the connection
    // opens; a reload's new rates apply at their next use.
    util::TokenBucket messages_;
    util::TokenBucket bytes_;
    util::TokenBucket inflated_;
};

}  // namespace hearth::net
