#include "net/tcp_connection.hpp"
#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <sys/socket.h>

#include "core/post_batch.hpp"
#include "net/batch_writer.hpp"
#include "net/outbox.hpp"
#include "net/poller.hpp"
#include "net/raw_socket.hpp"
#include "net/send_bound.hpp"
#include "util/log.hpp"
#include "util/token_bucket.hpp"

namespace hearth::net {

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("tcp");
    return l;
}

struct Peer {
    std::string ip;       // "1.2.3.4", "::1": what the per-address limit counts
    std::string address;  // "1.2.3.4:5", "[::1]:5"
};

Peer peer_of(const RawSocket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) {
        return {"unknown", "unknown"};
    }
    auto ip = ep.address().to_string();
    auto address = ep.address().is_v6() ? "[" + ip + "]:" + std::to_string(ep.port())
                                        : ip + ":" + std::to_string(ep.port());
    return {std::move(ip), std::move(address)};
}

/// One raw TCP connection of a stream listener. Runs on: its own io thread, for its whole life.
/// Owned by: its pending operations (and the handler's StreamConnectionPtr until `on_close`).
///
/// The transport is the WebSocket connection's (net/ws_connection.hpp) without the framing: the
/// socket is registered once with the thread's Poller and read into the thread's shared buffer
/// when it reports input, so an idle connection owns no read buffer and no Asio operation; the
/// handler keeps what it cannot use yet (bounded by its codec) and pauses reading when it must.
/// Writing: the same Outbox (a payload is a frame without a header) and BatchWriter: one batch in
/// flight, payloads queued meanwhile go out together in the next gathered write; the outbox is
/// bounded by bytes. Closing: the queued bytes are written, the sending side is shut down, the
/// peer's input is discarded until it closes or the linger deadline passes. One deadline
/// (net/deadlines.hpp) covers idle, write and linger.
class TcpConnection final : public StreamConnection,
                            public Session,
                            public DeadlineClient,
                            public PollClient,
                            public std::enable_shared_from_this<TcpConnection> {
public:
    TcpConnection(RawSocket socket, std::shared_ptr<ServerState> server,
                  std::shared_ptr<StreamListenerState> stream, Peer peer)
        : socket_(std::move(socket)),
          server_(std::move(server)),
          stream_ptr_(std::move(stream)),
          stream_(*stream_ptr_),
          settings_(stream_.route.settings),
          thread_(server_->this_thread_state()),
          executor_(thread_.io->get_executor()),
          id_(static_cast<ConnectionId>(server_->next_connection_id.fetch_add(1))),
          peer_ip_(std::move(peer.ip)),
          peer_address_(std::move(peer.address)) {}

    void start() {
        auto self = shared_from_this();
        server_->session_opened(static_cast<std::uint64_t>(id_), self);
        server_->owner_opened(*stream_.owner);
        stream_.open->add(1);
        server_->events.publish(core::EventKind::kConnectionOpened, stream_.owner->name,
                                to_string(id_),
                                "tcp " + stream_.listener + " from " + peer_address_);
        log()->debug("[conn {}] open: {} from {}", to_string(id_), stream_.listener, peer_address_);
        boost::system::error_code poll_ec;
        if (!poll_connection(thread_.poller.get(), socket_.native_handle(), self, poll_ec)) {
            log()->warn("[conn {}] cannot poll its socket: {}", to_string(id_), poll_ec.message());
        }
        last_rx_ = Clock::now();
        handler_ = stream_.route.make_handler();
        if (handler_) {
            handler_->on_open(self);
        } else {
            close_local();
        }
        if (poll_ec) {
            teardown("cannot poll the socket");
            return;
        }
        if (server_->shutting_down.load()) {
            close_local();
        }
        arm_timer();
        read_soon();
    }

    // StreamConnection --------------------------------------------------------------------------
    ConnectionId id() const noexcept override { return id_; }
    const std::string& peer_address() const noexcept override { return peer_address_; }

    SendResult send(SharedPayload bytes) override {
        const std::string_view view = bytes ? bytes->bytes() : std::string_view();
        return send_bytes({.keeper = std::move(bytes), .view = view, .own = {}, .reserved = 0});
    }
    SendResult send_own(std::string bytes) override {
        return send_bytes({.keeper = nullptr, .view = {}, .own = std::move(bytes), .reserved = 0});
    }
    SendResult send_view(std::shared_ptr<const void> keeper, std::string_view bytes) override {
        if (!bound_.idle()) {
            // Behind other bytes: this one could wait as long as the client does not read, and
            // would pin the whole buffer meanwhile.
            return send_own(std::string(bytes));
        }
        return send_bytes({.keeper = std::move(keeper), .view = bytes, .own = {}, .reserved = 0});
    }

    void close() override {
        if (!executor_.running_in_this_thread() || bound_.posted()) {
            core::PostBatch::post(executor_.context(),
                                  [self = shared_from_this()] { self->close_local(); });
            return;
        }
        close_local();
    }

    void touch() noexcept override { last_rx_ = Clock::now(); }

    bool take_message(std::size_t payload_bytes) override {
        if (state_ != State::kOpen || rate_limited_) {
            return false;
        }
        const auto now = Clock::now();
        if (settings_.max_messages_per_s > 0 &&
            !messages_.try_take(1, {settings_.max_messages_per_s, settings_.message_burst}, now)) {
            refuse_input("rate_limited", "message rate");
            return false;
        }
        if (settings_.max_bytes_per_s > 0 &&
            !bytes_.try_take(static_cast<double>(payload_bytes), byte_rate(), now)) {
            refuse_input("byte_rate_limited", "byte rate");
            return false;
        }
        return true;
    }

    void pause_reading() override { paused_ = true; }

    void resume_reading() override {
        if (!paused_) {
            return;
        }
        paused_ = false;
        read_soon();
    }

    void set_principal(std::string principal) override { principal_ = std::move(principal); }

    // Session -----------------------------------------------------------------------------------
    void shutdown() override { close_local(); }

    std::optional<ConnectionInfo> describe() const override {
        if (state_ == State::kClosed) {
            return std::nullopt;
        }
        ConnectionInfo info;
        info.id = id_;
        info.kind = "stream";
        info.frontend = stream_.route.frontend.empty() ? stream_.listener : stream_.route.frontend;
        info.listener = stream_.listener;
        info.peer = peer_address_;
        info.principal = principal_;
        info.since = opened_at_;
        info.bytes_in = bytes_in_;
        info.bytes_out = bytes_out_;
        return info;
    }

    void kick() override {
        stream_.count_disconnect("operator");
        close_local();
    }

    const Owner* owner() const noexcept override { return stream_.owner.get(); }

    void cut() override { teardown("cut: its module's routes were withdrawn"); }

private:
    enum class State : std::uint8_t {
        kOpen,       // bytes flow both ways
        kClosing,    // close() was called: writing what is queued; input is discarded
        kLingering,  // sending side shut down: discarding input until the peer closes
        kClosed,     // socket closed, handler told
    };

    static constexpr int kMaxReadsPerWake = 8;  // then yield to the thread's other connections

    util::TokenRate byte_rate() const noexcept {
        return {static_cast<double>(settings_.max_bytes_per_s),
                static_cast<double>(settings_.bytes_burst)};
    }

    // A rate is overdrawn: no more input reaches the handler, and the connection closes once the
    // handler's current callback returns, so that what it queues meanwhile (a last answer saying
    // why) is written first, then the sending side is shut down and the rest of the input is
    // discarded (close_local).
    void refuse_input(std::string_view counter, std::string_view what) {
        rate_limited_ = true;
        stream_.count_disconnect(counter);
        log()->debug("[conn {}] over the {} limit: closing", to_string(id_), what);
        asio::post(executor_, [self = shared_from_this()] { self->close_local(); });
    }

    // ---- sending -------------------------------------------------------------------------------

    // send() and send_own(): shared bytes or the connection's own.
    SendResult send_bytes(core::PostBatch::Delivery bytes) {
        if (executor_.running_in_this_thread() && !bound_.posted()) {
            return send_local(std::move(bytes));
        }
        // Posted (from another thread, or behind what other threads posted, so that it does not
        // overtake them), under the outbound bound decided here: what a busy or blocked connection
        // thread can be made to hold is bounded, whoever sends.
        const std::size_t n = size_of(bytes);
        if (n == 0) {
            return SendResult::kQueued;  // no bytes to write: nothing to keep in order either
        }
        // Through core::PostBatch, each of them: a zone's tick gathers its sends to each io
        // thread into one post, and this connection's posts keep their order in it.
        if (bound_.overflowed() || !bound_.reserve(n)) {
            if (bound_.overflow()) {
                count_slow_consumer(n);
                core::PostBatch::post(executor_.context(),
                                      [self = shared_from_this()] { self->slow_consumer(); });
            }
            return SendResult::kDropped;
        }
        bytes.reserved = n;
        core::PostBatch::post_delivery(
            executor_.context(), shared_from_this(),
            [](void* self, core::PostBatch::Delivery&& posted) {
                static_cast<TcpConnection*>(self)->send_posted(std::move(posted));
            },
            std::move(bytes));
        return SendResult::kQueued;
    }

    static std::size_t size_of(const core::PostBatch::Delivery& bytes) noexcept {
        return bytes.keeper ? bytes.view.size() : bytes.own.size();
    }

    SendResult send_local(core::PostBatch::Delivery bytes) {
        if (state_ != State::kOpen) {
            return SendResult::kClosed;
        }
        const std::size_t n = size_of(bytes);
        if (!bound_.fits(n, outbox_.data_bytes())) {
            if (bound_.overflow()) {
                count_slow_consumer(n);
            }
            slow_consumer();
            return SendResult::kDropped;
        }
        queue(std::move(bytes));
        return SendResult::kQueued;
    }

    // A send another thread posted, its bytes reserved in bound_ there.
    void send_posted(core::PostBatch::Delivery&& bytes) {
        const std::size_t reserved = bytes.reserved;
        if (state_ == State::kOpen) {
            queue(std::move(bytes));
        }
        bound_.release(reserved);  // after queue() published them as queued: the sum never dips
    }

    void queue(core::PostBatch::Delivery&& bytes) {
        OutFrame frame;
        if (bytes.keeper) {
            frame.shared_body = bytes.view;
            frame.keeper = std::move(bytes.keeper);
        } else {
            frame.owned = std::move(bytes.own);
        }
        outbox_.push_data(std::move(frame));  // admitted against bound_
        bound_.set_queued(outbox_.data_bytes());
        schedule_flush();
    }

    // The first send past the bound, on whichever thread: counted and logged there, once.
    void count_slow_consumer(std::size_t refused) {
        stream_.count_disconnect("slow_consumer");
        log()->debug("[conn {}] outbound bound ({} bytes) full, {} more refused: closing",
                     to_string(id_), settings_.max_outbound_bytes, refused);
    }

    // Past the outbound bound: what is queued and not yet in flight is dropped (a client this far
    // behind must resynchronise anyway), the connection closes, and its handler is told at once,
    // in a run of its own (never inside the send that found the bound), rather than at on_close,
    // which waits for the write timeout while the client does not read.
    void slow_consumer() {
        if (state_ != State::kOpen) {
            return;
        }
        (void)outbox_.drop_queued_data();  // raw payloads carry no callbacks
        bound_.set_queued(outbox_.data_bytes());
        close_local();
        asio::post(executor_, [self = shared_from_this()] {
            if (self->handler_) {
                self->handler_->on_slow_consumer();
            }
        });
    }

    // Payloads queued by one handler run go out together: the flush runs after it.
    void schedule_flush() {
        if (flush_scheduled_ || outbox_.in_flight() || state_ == State::kClosed) {
            return;
        }
        flush_scheduled_ = true;
        thread_.defer_flush(shared_from_this(), [](void* p) {
            auto* self = static_cast<TcpConnection*>(p);
            self->flush_scheduled_ = false;
            self->flush();
        });
    }

    void flush() {
        while (state_ != State::kClosed && !outbox_.in_flight()) {
            BatchWriter::Result result;
            const auto step = writer_.start(socket_, outbox_, thread_.write_batch, result);
            if (step == BatchWriter::Step::kNothing) {
                if (state_ == State::kClosing) {
                    start_linger();
                }
                return;
            }
            if (step == BatchWriter::Step::kWaiting) {
                write_started_ = Clock::now();
                arm_timer();  // the write deadline
                return;
            }
            if (!on_written(result)) {
                return;
            }
        }
    }

    // The socket is writable again: what is left of the batch.
    void continue_write() {
        BatchWriter::Result result;
        if (writer_.resume(socket_, result) == BatchWriter::Step::kDone && on_written(result)) {
            flush();
        }
    }

    // A batch is written (or failed); true when the connection goes on.
    bool on_written(const BatchWriter::Result& result) {
        stream_.bytes_out->inc(result.bytes);
        bytes_out_ += result.bytes;
        (void)outbox_.complete();
        bound_.set_queued(outbox_.data_bytes());
        if (state_ == State::kClosed) {
            return false;
        }
        if (result.ec) {
            teardown("write failed: " + result.ec.message());
            return false;
        }
        return true;
    }

    // ---- closing -------------------------------------------------------------------------------

    void close_local() {
        if (state_ != State::kOpen) {
            return;
        }
        state_ = State::kClosing;
        if (!outbox_.in_flight() && !flush_scheduled_) {
            flush();  // nothing in progress: write the rest now (or start lingering)
        }
        // Input is now discarded: read it even while the handler had paused reading.
        read_soon();
    }

    void start_linger() {
        state_ = State::kLingering;
        socket_.shutdown_send();
        if (peer_eof_) {
            teardown("closed");
            return;
        }
        linger_deadline_ = Clock::now() + settings_.linger_timeout;
        arm_timer();
    }

    /// Ends the connection: closes the socket and tells the handler, exactly once.
    void teardown(std::string_view why) {
        if (state_ == State::kClosed) {
            return;
        }
        // Unregistering from the poller may drop the last reference but this one.
        auto self = shared_from_this();
        state_ = State::kClosed;
        if (thread_.deadlines) {
            thread_.deadlines->cancel(*this);
        }
        if (thread_.poller) {
            thread_.poller->remove(*this, socket_.native_handle());
        }
        socket_.close();
        writer_.abandon();
        (void)outbox_.clear();
        bound_.set_queued(0);
        stream_.open->sub(1);
        server_->events.publish(core::EventKind::kConnectionClosed, stream_.owner->name,
                                to_string(id_), "tcp " + stream_.listener + " " + std::string(why),
                                principal_);
        log()->debug("[conn {}] closed: {}", to_string(id_), why);
        auto handler = std::move(handler_);
        if (handler) {
            handler->on_close();
        }
        handler.reset();
        stream_.peers.remove(peer_ip_);
        server_->session_closed(static_cast<std::uint64_t>(id_));
        server_->owner_closed(*stream_.owner);
    }

    // ---- reading -------------------------------------------------------------------------------

    bool reading_wanted() const noexcept {
        if (peer_eof_ || state_ == State::kClosed) {
            return false;
        }
        return state_ != State::kOpen || !paused_;
    }

    // The poller's report.
    void on_ready(std::uint32_t events) override {
        if ((events & EPOLLOUT) != 0 && writer_.waiting()) {
            continue_write();
        }
        if ((events & kInputEvents) != 0) {
            on_readable();
        }
    }

    // Reads from a fresh handler run (the caller may be inside on_data): bytes may already be
    // there whose readiness edge the poller reported while reading was paused (or before start),
    // and no other edge comes until more arrive.
    void read_soon() {
        if (read_posted_ || !reading_wanted()) {
            return;
        }
        read_posted_ = true;
        asio::post(executor_, [self = shared_from_this()] {
            self->read_posted_ = false;
            self->on_readable();
        });
    }

    // The socket is readable: read until it would block (the poller reports a readiness edge only
    // once), at most kMaxReadsPerWake times before yielding.
    void on_readable() {
        if (state_ == State::kClosed) {
            return;
        }
        auto* buffer = thread_.read_buffer.get();
        for (int i = 0; i < kMaxReadsPerWake && reading_wanted(); ++i) {
            boost::system::error_code read_ec;
            const std::size_t n =
                socket_.read_some(std::span(buffer, ThreadState::kReadBufferBytes), read_ec);
            if (read_ec == asio::error::would_block) {
                return;  // drained: the poller reports the next input
            }
            if (read_ec == asio::error::eof) {
                on_peer_eof();
                return;
            }
            if (read_ec) {
                teardown(read_ec == asio::error::connection_reset ? "reset by peer"
                                                                  : read_ec.message());
                return;
            }
            stream_.bytes_in->inc(n);
            bytes_in_ += n;
            if (state_ == State::kOpen && !rate_limited_) {
                if (settings_.idle_reset == IdleReset::kOnData) {
                    last_rx_ = Clock::now();
                }
                handler_->on_data(std::string_view(reinterpret_cast<const char*>(buffer), n));
            }
            // A short read drained the socket (PollClient::hung_up says when it may not have).
            if (n < ThreadState::kReadBufferBytes && !hung_up()) {
                return;
            }
        }
        read_soon();  // more may be waiting: yield to the thread's other connections first
    }

    void on_peer_eof() {
        peer_eof_ = true;
        if (state_ == State::kLingering) {
            teardown("closed");
        } else if (state_ == State::kOpen) {
            handler_->on_end_of_input();  // it closes once its last answers are queued
        }
        // kClosing: the rest is being written; start_linger() sees peer_eof_ and ends it.
    }

    // ---- deadlines -----------------------------------------------------------------------------

    void arm_timer() {
        if (state_ == State::kClosed) {
            return;
        }
        Clock::time_point next = Clock::time_point::max();
        if (state_ == State::kOpen && settings_.idle_timeout.count() > 0) {
            next = last_rx_ + settings_.idle_timeout;
        }
        if (state_ == State::kLingering) {
            next = std::min(next, linger_deadline_);
        }
        if (writer_.waiting()) {
            next = std::min(next, write_started_ + settings_.write_timeout);
        }
        if (next == Clock::time_point::max()) {
            return;
        }
        // Deadlines only move later while traffic flows, so the deadline is moved only when it
        // passes or when it must come sooner: no heap operation per message.
        if (deadline_scheduled() && next >= scheduled_deadline()) {
            return;
        }
        if (thread_.deadlines) {  // null once the server is gone
            thread_.deadlines->schedule(shared_from_this(), next);
        }
    }

    void on_deadline() override { on_timer(); }

    void on_timer() {
        if (state_ == State::kClosed) {
            return;
        }
        const auto now = Clock::now();
        if (writer_.waiting() && now >= write_started_ + settings_.write_timeout) {
            stream_.count_disconnect("write_timeout");
            teardown("write timed out");
            return;
        }
        if (state_ == State::kLingering && now >= linger_deadline_) {
            teardown("closed (linger timeout)");
            return;
        }
        if (state_ == State::kOpen && settings_.idle_timeout.count() > 0 &&
            now >= last_rx_ + settings_.idle_timeout) {
            stream_.count_disconnect("idle_timeout");
            log()->debug("[conn {}] idle timeout", to_string(id_));
            close_local();
        }
        arm_timer();
    }

    RawSocket socket_;
    std::shared_ptr<ServerState> server_;
    std::shared_ptr<StreamListenerState> stream_ptr_;  // outlives a withdraw of the route
    StreamListenerState& stream_;
    const StreamSettings& settings_;
    ThreadState& thread_;
    asio::io_context::executor_type executor_;  // typed, for a cheap running_in_this_thread()
    ConnectionId id_;
    std::string peer_ip_;  // counted in stream_'s per-address limit until the connection closes
    std::string peer_address_;
    std::string principal_;  // set by the front-end
    std::chrono::system_clock::time_point opened_at_ = std::chrono::system_clock::now();
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    std::unique_ptr<StreamHandler> handler_;

    State state_ = State::kOpen;
    bool paused_ = false;
    bool read_posted_ = false;  // a read_soon() is pending
    bool peer_eof_ = false;
    bool flush_scheduled_ = false;
    bool rate_limited_ = false;  // take_message refused: the handler gets no more input

    // The listener's rates (take_message), full when the connection opens.
    util::TokenBucket messages_{settings_.message_burst, Clock::now()};
    util::TokenBucket bytes_{byte_rate().depth, Clock::now()};

    Outbox outbox_;  // payloads as header-less frames; bounded by bound_
    BatchWriter writer_;
    // settings_.max_outbound_bytes over what is queued and what other threads posted.
    SendBound bound_{settings_.max_outbound_bytes};

    Clock::time_point last_rx_{};
    Clock::time_point write_started_{};
    Clock::time_point linger_deadline_{};
};

}  // namespace

StreamListenerState::StreamListenerState(const std::string& name, StreamRoute r,
                                         core::MetricsRegistry& metrics, std::shared_ptr<Owner> o)
    : route(std::move(r)), owner(std::move(o)), registry(metrics), listener(name) {
    open = &metrics.gauge("hearth_net_connections_open", "Open connections, by listener and kind.",
                          {{"listener", name}, {"kind", "stream"}});
    bytes_in =
        &metrics.counter("hearth_stream_bytes_in_total",
                         "Bytes received on raw TCP (stream) listeners.", {{"listener", name}});
    bytes_out =
        &metrics.counter("hearth_stream_bytes_out_total",
                         "Bytes written on raw TCP (stream) listeners.", {{"listener", name}});
}

void StreamListenerState::count_disconnect(std::string_view reason) const {
    registry
        .counter("hearth_stream_disconnects_total",
                 "Raw TCP (stream) connections closed by the server, by listener and reason.",
                 {{"listener", listener}, {"reason", std::string(reason)}})
        .inc();
}

void start_tcp_connection(std::shared_ptr<ServerState> server,
                          std::shared_ptr<StreamListenerState> stream, RawSocket socket) {
    if (stream->withdrawn.load()) {
        // Accepted while its route was being withdrawn: the withdraw has told this thread's
        // connections already, so this one must not start.
        return;  // the socket closes as it goes out of scope
    }
    auto peer = peer_of(socket);
    if (!stream->peers.add(peer.ip, stream->route.settings.max_connections_per_ip)) {
        // Closed before any byte is read or written: the protocol's handler never sees it.
        stream->count_disconnect("per_ip_limit");
        log()->debug("{}: {} has {} connections open: refused", stream->listener, peer.address,
                     stream->route.settings.max_connections_per_ip);
        return;
    }
    std::make_shared<TcpConnection>(std::move(socket), std::move(server), std::move(stream),
                                    std::move(peer))
        ->start();
}

}  // namespace hearth::net
