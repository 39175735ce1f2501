#pragma once

// Raw TCP byte streams for front-ends whose protocol is not HTTP or WebSocket (DracoSoft's
// length-prefixed JSON). No Asio types: the network layer implements these interfaces
// (src/net/tcp_connection.hpp); a front-end owns the framing, as a sans-I/O codec.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/connection.hpp>
#include <hearth/payload.hpp>

namespace hearth {

/// What restarts a stream connection's idle clock.
enum class IdleReset : std::uint8_t {
    kOnData,   // any bytes received (a transport-level idle timeout)
    kOnTouch,  // only StreamConnection::touch(): the front-end calls it per complete message
};

/// Per-listener stream settings, fixed when the listener is declared.
struct StreamSettings {
    // Bytes queued for writing per connection, and sent from other threads but not yet queued
    // (decided on the sending thread, when it sends): a send past it closes the connection
    // (counted as reason="slow_consumer", the handler told by on_slow_consumer) and returns
    // kDropped. One payload bigger than the whole bound is accepted when nothing is held.
    std::size_t max_outbound_bytes = 4 * 1024 * 1024;
    // Nothing received (or no touch(), see `idle_reset`) for this long: close. 0 disables.
    std::chrono::milliseconds idle_timeout{300'000};
    IdleReset idle_reset = IdleReset::kOnData;
    // A write stalled this long: drop the connection (reason="write_timeout").
    std::chrono::milliseconds write_timeout{30'000};
    // After close(): the queued bytes are written, the sending side shut down, and the peer's
    // remaining input read and discarded for at most this long, so that unread input does not turn
    // the close into a reset that could destroy the last reply before the peer reads it.
    std::chrono::milliseconds linger_timeout{2'000};
    // Open connections from one IP address; one more is closed at once, before the handler sees
    // it (counted as reason="per_ip_limit"). Each connection may hold a partial message of its
    // protocol's maximum size, so this bounds what one address can make the server hold.
    // 0 = unlimited.
    std::size_t max_connections_per_ip = 1000;
    // Incoming messages per second per connection, as WsRouteSettings has them: a token bucket
    // refilled at max_messages_per_s (0 = unlimited) holding message_burst. Only the front-end
    // knows its protocol's messages: it reports each with StreamConnection::take_message. Over the
    // bound the connection is closed (reason="rate_limited").
    double max_messages_per_s = 1000;
    double message_burst = 2000;
    // Bytes of message payload per second per connection (0 = unlimited), reported with the same
    // call, and the bucket's size: a message larger than it passes only a full bucket. Over the
    // bound the connection is closed (reason="byte_rate_limited").
    std::uint64_t max_bytes_per_s = 8 * 1024 * 1024;
    std::uint64_t bytes_burst = 16 * 1024 * 1024;
};

/// One raw TCP connection as a front-end sees it. Runs on: its own io thread, for its whole life.
/// `send` and `close` may be called from any thread; the rest only from the connection's thread
/// (inside the handler's callbacks, or in work posted to it).
class StreamConnection {
public:
    virtual ~StreamConnection() = default;

    virtual ConnectionId id() const noexcept = 0;
    /// "ip:port" of the peer.
    virtual const std::string& peer_address() const noexcept = 0;

    /// Thread-safe. Queues the payload's bytes as they are (the front-end frames them); a
    /// broadcast passes the same payload to every recipient. From another thread the send is
    /// posted to the connection's thread, its bytes counted against max_outbound_bytes from now
    /// on; a send on the connection's thread while such sends are still posted is posted behind
    /// them, so that the bytes go out in the order they were sent. kDropped: past the outbound
    /// bound, and the connection is being closed (StreamHandler::on_slow_consumer follows).
    /// kQueued from another thread: it will be queued unless the connection closes first.
    virtual SendResult send(SharedPayload bytes) = 0;
    /// The same for bytes that go to this connection alone: moved into its queue as they are,
    /// with no shared payload made for them (the world's update to one character, each tick:
    /// one allocation fewer per update). Order, bound and results as send().
    virtual SendResult send_own(std::string bytes) { return send(make_binary(std::move(bytes))); }
    /// The same for bytes of this connection alone that sit in a buffer shared with other
    /// connections' bytes (the world's updates of one tick), kept alive by `keeper`: no
    /// allocation per send. A view pins the whole buffer until it is written, so the transport
    /// keeps it only while nothing else of this connection waits (a client that keeps up);
    /// behind anything else it copies the bytes (send_own). A connection that stops reading
    /// therefore pins at most one buffer. Order, bound and results as send().
    virtual SendResult send_view(std::shared_ptr<const void> keeper, std::string_view bytes) {
        (void)keeper;
        return send_own(std::string(bytes));
    }
    /// Thread-safe. Writes what is queued (and what was sent before it), then closes; later sends
    /// return kClosed and no more data reaches the handler.
    virtual void close() = 0;

    /// Restarts the idle clock (with IdleReset::kOnTouch). Connection thread.
    virtual void touch() noexcept = 0;
    /// A complete message with `payload_bytes` of payload arrived: spends it from the listener's
    /// message and byte rates (StreamSettings::max_messages_per_s, max_bytes_per_s). Connection
    /// thread. False: a rate is overdrawn and the connection is closing (counted as
    /// reason="rate_limited" or "byte_rate_limited"): the handler must handle nothing more of
    /// its input, and gets no more. What it sends before it returns (a last answer saying why)
    /// is written before the connection closes.
    [[nodiscard]] virtual bool take_message(std::size_t payload_bytes) = 0;
    /// Stops (or restarts) reading from the socket: the front-end's backpressure while it cannot
    /// take more input (e.g. its bounded input buffer is full). Connection thread.
    virtual void pause_reading() = 0;
    virtual void resume_reading() = 0;

    /// Who the connection acts for once the front-end knows (a username, a user id), shown in the
    /// operator API's connection list. Connection thread.
    virtual void set_principal(std::string principal) { (void)principal; }
};

using StreamConnectionPtr = std::shared_ptr<StreamConnection>;

/// A front-end's per-connection logic. Every callback runs on the connection's io thread; the
/// handler is destroyed on it after `on_close`.
class StreamHandler {
public:
    virtual ~StreamHandler() = default;

    /// The connection is accepted; `connection` can be stored (it stays valid until `on_close`).
    virtual void on_open(StreamConnectionPtr connection) = 0;
    /// Bytes received, as they came (any split). Valid during the call only.
    virtual void on_data(std::string_view bytes) = 0;
    /// The peer shut down its sending side (EOF): no more data will come, but it may still read.
    /// The connection stays open for sending until the handler calls close() (or the idle timeout
    /// closes it), so that the answers to the last requests still go out.
    virtual void on_end_of_input() = 0;
    /// The connection is gone (either side closed it, or it failed); called exactly once.
    virtual void on_close() = 0;
    /// The connection is being closed because its peer does not read what is sent fast enough (a
    /// send found StreamSettings::max_outbound_bytes full): what depends on the client seeing the
    /// connection's output can end now, rather than at on_close, which waits for the write
    /// timeout while the client does not read. Called at most once, in a run of its own (never
    /// inside a send), before on_close; not at all when the connection ended first (on_close then
    /// came without waiting).
    virtual void on_slow_consumer() {}
};

/// A raw TCP listener: every accepted connection gets a handler from `make_handler` (called on
/// the connection's io thread).
struct StreamRoute {
    StreamSettings settings;
    std::function<std::unique_ptr<StreamHandler>()> make_handler;
    std::string frontend;  // as WsRoute::frontend
};

}  // namespace hearth
