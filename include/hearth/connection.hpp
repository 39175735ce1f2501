#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/payload.hpp>

namespace hearth {

/// Process-unique connection id. A strong type so that it never mixes with other integers.
enum class ConnectionId : std::uint64_t {};

inline std::string to_string(ConnectionId id) {
    return std::to_string(static_cast<std::uint64_t>(id));
}

/// WebSocket close codes Hearth uses (RFC 6455, section 7.4.1).
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kUnsupportedData = 1003;
inline constexpr std::uint16_t kNoStatus = 1005;
inline constexpr std::uint16_t kAbnormal = 1006;
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kPolicyViolation = 1008;
inline constexpr std::uint16_t kTooBig = 1009;
inline constexpr std::uint16_t kInternalError = 1011;
inline constexpr std::uint16_t kTryAgainLater = 1013;
}  // namespace close_code

/// What `Connection::send` did with a message.
enum class SendResult : std::uint8_t {
    kQueued,   // in the outbox; it will be written unless the connection fails first
    kDropped,  // over the outbox bound: dropped, and the route's overflow policy applied (counted)
    kClosed,   // the connection is closing or closed; nothing was queued
};

/// One part of a streamed outgoing message (Connection::send_stream).
struct StreamPart {
    SharedPayload bytes;  // null: the source failed (the message cannot be finished)
    bool last = false;    // the message ends with this part
};

/// Produces a streamed message's parts on demand, so that a large message (a file read from disk)
/// never has to be in memory whole: the connection asks for the next part only when its outbox has
/// room (backpressure), and holds at most a few parts at a time.
class MessageSource {
public:
    virtual ~MessageSource() = default;
    /// Produces the next part, of at most `max_bytes` (an empty part only as the last one), and
    /// calls `deliver` exactly once with it, from any thread (a disk read runs on the blocking
    /// pool). Never called again before `deliver` ran. The connection keeps the source alive
    /// until then.
    virtual void next(std::size_t max_bytes, std::function<void(StreamPart)> deliver) = 0;
};

/// How a connection ended, as its handler sees it.
struct CloseInfo {
    std::uint16_t code = close_code::kAbnormal;  // 1006 when no close frame was exchanged
    std::string reason;
    bool initiated_by_peer = false;
};

/// A client transport as front-ends see it: no Beast or Asio types. Runs on: its own io thread,
/// for its whole life. `send` and `close` may be called from any thread; the rest only from the
/// connection's thread (inside its handler callbacks, or in work posted to it).
class Connection {
public:
    virtual ~Connection() = default;

    virtual ConnectionId id() const noexcept = 0;
    /// "ip:port" of the peer.
    virtual const std::string& peer_address() const noexcept = 0;
    /// The route's path, e.g. "/ws".
    virtual const std::string& route() const noexcept = 0;

    /// Thread-safe. Queues a message; a broadcast passes the same payload to every recipient.
    virtual SendResult send(SharedPayload message) = 0;
    /// Like `send`, and when the result is kQueued, `on_written` runs later on the connection's
    /// thread: with true once the whole frame has been handed to the kernel, with false if the
    /// connection ends first. (Used where a protocol acknowledges delivery, e.g. Homestead's
    /// "completed".) From another thread the result is kQueued and the outcome comes through
    /// `on_written` alone, or kDropped at once when the message's bytes, counted with what is
    /// queued and what other threads sent before and is not queued yet, pass the bound (the
    /// route's overflow policy applied; `on_written` is then not called).
    virtual SendResult send(SharedPayload message,
                            std::function<void(bool written)> on_written) = 0;
    /// Thread-safe. Sends one message of kind `kind` whose bytes come from `source`, part by part,
    /// as a fragmented message (one frame per part), pulling a part only while the outbox holds
    /// little (a few hundred KiB at most per connection, whatever the message's size). Messages
    /// sent after it wait behind it, in order (frames of two messages never interleave); they
    /// count against the outbox bound as usual. `on_written(true)` once the last frame reached the
    /// kernel; `on_written(false)` when the connection ends first. A source that fails mid-way
    /// closes the connection with 1011 (a message half sent cannot be taken back). Connections
    /// that cannot stream return kClosed. Up to 64 streamed messages may wait behind the one being
    /// sent; one more is dropped with the route's overflow policy (by default: close 1008).
    virtual SendResult send_stream(MessageKind kind, std::shared_ptr<MessageSource> source,
                                   std::function<void(bool written)> on_written) {
        (void)kind;
        (void)source;
        (void)on_written;
        return SendResult::kClosed;
    }
    /// Thread-safe. Starts the closing handshake with this code and reason; later sends are
    /// dropped.
    virtual void close(std::uint16_t code, std::string_view reason) = 0;

    /// Stops (or restarts) reading from the peer: a front-end's backpressure while it cannot take
    /// more input, e.g. while a file's bytes wait for the disk. Bytes already received stay
    /// buffered (at most one read's worth) and reach the handler after `resume_reading`. Pings are
    /// not answered while paused. Connection thread. No effect on connections that cannot pause.
    virtual void pause_reading() {}
    virtual void resume_reading() {}

    /// Who the connection acts for once the front-end knows (an account, a user id, a player
    /// name), shown in the operator API's connection list. Connection thread.
    virtual void set_principal(std::string principal) { (void)principal; }
    /// The principal set last (empty before). Connection thread.
    virtual std::string principal() const { return {}; }

    /// Whether permessage-deflate was negotiated for this connection.
    virtual bool compressed() const noexcept = 0;
    /// Bytes waiting in the outbox (connection thread).
    virtual std::size_t outbound_bytes() const noexcept = 0;
    /// The bound a send is checked against (the route's `max_outbound_bytes`, as reloaded); 0 when
    /// the connection has none it can tell. A sender that paces itself by `on_written` keeps what
    /// it has in flight well under it, so that it never trips the overflow policy (connection
    /// thread).
    virtual std::size_t max_outbound_bytes() { return 0; }
};

using ConnectionPtr = std::shared_ptr<Connection>;

/// A weak reference to a connection that may outlive it (habit: weak handles across boundaries).
class ConnectionHandle {
public:
    ConnectionHandle() = default;
    explicit ConnectionHandle(const ConnectionPtr& c) : id_(c->id()), weak_(c) {}

    ConnectionId id() const noexcept { return id_; }
    ConnectionPtr lock() const noexcept { return weak_.lock(); }

private:
    ConnectionId id_{};
    std::weak_ptr<Connection> weak_;
};

/// A front-end's per-connection logic, created when a WebSocket upgrade is accepted. Every
/// callback runs on the connection's io thread; the handler is destroyed on it after `on_close`.
class WsHandler {
public:
    virtual ~WsHandler() = default;

    /// The handshake completed; `connection` can be stored (it stays valid until `on_close`).
    virtual void on_open(const ConnectionPtr& connection) = 0;
    /// A complete message (reassembled, decompressed, UTF-8 validated when text).
    virtual void on_message(MessageKind kind, std::string_view data) = 0;
    /// A complete message that arrived compressed (permessage-deflate) in a form that can be
    /// forwarded as it is: `data` as in `on_message`, and `deflated`, the compressed payload as
    /// received (tail removed, smaller than `data`). Every message is self-contained
    /// (client_no_context_takeover is always negotiated), so a relay that forwards `data` unchanged
    /// can pass both to `make_text(data, deflated)` and save the compressing recipients a deflate.
    /// Both views are valid during the call only. By default: `on_message(kind, data)`.
    virtual void on_deflated_message(MessageKind kind, std::string_view data,
                                     std::string_view deflated) {
        (void)deflated;
        on_message(kind, data);
    }
    /// Routes with `stream_binary` only: part of an uncompressed binary message, as its frames
    /// arrive (a frame may come in several parts), so that a file of any size passes through
    /// without being reassembled in memory. `first` on the message's first part, `last` on its
    /// final one (either may be empty). Valid during the call only. Text messages, and binary
    /// messages that arrive compressed, still come whole through `on_message`.
    virtual void on_binary_part(std::string_view data, bool first, bool last) {
        (void)data;
        (void)first;
        (void)last;
    }
    /// A ping frame arrived (the pong is sent by the transport). Most handlers ignore it.
    virtual void on_ping() {}
    /// The connection is gone; called exactly once.
    virtual void on_close(const CloseInfo& info) = 0;
};

/// What to do when a recipient's outbox is full.
enum class OverflowPolicy : std::uint8_t {
    kClose,  // close with 1008 "slow consumer" (the default: the client must resynchronise)
    kDrop,   // drop the new message and keep the connection
};

/// Per-route WebSocket settings. Defaults come from the `[websocket]` config section; a front-end
/// may override any of them from its own section.
struct WsRouteSettings {
    std::size_t max_message_bytes = 1024 * 1024;  // incoming message limit; over it: close 1009
    // Uncompressed binary messages go to the handler in parts (WsHandler::on_binary_part) instead
    // of whole, bounded by max_streamed_message_bytes (0: no bound; over it: close 1009).
    bool stream_binary = false;
    std::uint64_t max_streamed_message_bytes = 0;
    // Outbox bound per connection: bytes queued, and sent from other threads but not yet queued.
    std::size_t max_outbound_bytes = 4 * 1024 * 1024;
    OverflowPolicy overflow = OverflowPolicy::kClose;
    std::chrono::milliseconds idle_timeout{120'000};  // nothing received for this long: close 1001
    std::chrono::milliseconds ping_interval{30'000};  // server pings; 0 disables
    std::chrono::milliseconds pong_timeout{10'000};   // no pong (or anything) after a ping: close
    std::chrono::milliseconds close_timeout{5'000};   // wait for the peer's close frame
    // A write stalled this long: drop the connection.
    std::chrono::milliseconds write_timeout{30'000};
    // No data message this long after the upgrade: close 1008 "handshake timeout"; 0: no limit.
    std::chrono::milliseconds first_message_timeout{0};
    bool compression = true;                       // offer permessage-deflate when asked
    std::size_t compression_threshold_bytes = 64;  // smaller messages are sent uncompressed
    std::size_t max_connections_per_ip = 1000;     // 0 = unlimited; over it: 1008 after upgrade
    double max_messages_per_s = 1000;              // token bucket refill rate; 0 = unlimited
    double message_burst = 2000;                   // token bucket size
    // Bytes per second that compressed messages may inflate to (a token bucket in bytes; 0 =
    // unlimited; over it: 1008), and its size, never less than max_message_bytes (one message of
    // the largest size always passes a full bucket).
    std::uint64_t max_inflated_bytes_per_s = 8 * 1024 * 1024;
    std::uint64_t inflated_burst_bytes = 16 * 1024 * 1024;
    // Bytes per second of incoming messages, as the handler gets them (inflated; a streamed
    // binary message's parts as they come): a token bucket in bytes (0 = unlimited; over it:
    // 1008 "data rate limit exceeded"), and its size, never less than max_message_bytes.
    std::uint64_t max_bytes_per_s = 8 * 1024 * 1024;
    std::uint64_t bytes_burst = 16 * 1024 * 1024;
};

}  // namespace hearth
