#pragma once

// The load generator's WebSocket client: RFC 6455 client framing written for this tool.
//
// Why not Beast's websocket::stream: the client shares the machine (2 cores here) with the server
// whose CPU time is measured, so its own cost per message must stay small. Beast's stream allows
// one write at a time and writes one frame per system call, so a publisher with 64 publishes in
// flight would need its own queue and 64 send() calls where this client gathers every frame queued
// during one wake into one write; it validates UTF-8 on every text message; and its per-connection
// buffers (several KiB) would dominate the client's memory at 100,000 idle connections. This
// client reads into its thread's shared buffer (a plain connection keeps only the bytes of an
// incomplete frame), masks while copying into its outbox, and parses just the frame headers.
// It is an implementation independent of the server's codec (src/net/ws_codec.*): it shares no
// code with it, so a bug there is not mirrored here.
//
// permessage-deflate (RFC 7692), with --compression: the upgrade offers
// `permessage-deflate; client_no_context_takeover; server_no_context_takeover`; when the server
// accepts, received messages with RSV1 are inflated and outgoing data messages are deflated, each
// message on its own (no context takeover either way), with the worker thread's two zlib streams
// (MessageDeflate), reset per message. A server that declines leaves the connection uncompressed.

#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

namespace hearth::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

class Worker;

/// Steady-clock nanoseconds: the timestamp carried in payloads (client and server on one host).
inline std::uint64_t now_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
}

/// Where to connect: a parsed ws://, wss:// or tcp:// URL, resolved once at startup. tcp:// is
/// for scenarios of raw TCP protocols (dracosoft-chat), which use `endpoint` with their own
/// client; the WebSocket client refuses such a target.
struct Target {
    bool tls = false;
    bool raw = false;  // tcp://HOST:PORT
    std::string host;  // as written in the URL (Host header, TLS server name)
    std::uint16_t port = 0;
    std::string path;  // with the query, if any
    tcp::endpoint endpoint;
    std::shared_ptr<asio::ssl::context> tls_context;  // wss only; certificates are not verified

    /// Parses and resolves `url`; throws std::runtime_error with a readable message.
    static Target parse(const std::string& url);
};

/// Raw deflate of whole messages with no context takeover (RFC 7692 7.2.1, 7.2.2): one inflate
/// and one deflate stream, created on first use and reset per message. Runs on: one worker
/// thread (each has its own). One per thread rather than per connection: with no context
/// takeover nothing carries over between messages, and zlib's streams (about 7 KiB to inflate,
/// 32 KiB of window more once used; about 260 KiB to deflate) would dominate the client's memory
/// at thousands of connections.
class MessageDeflate {
public:
    MessageDeflate();
    ~MessageDeflate();
    MessageDeflate(const MessageDeflate&) = delete;
    MessageDeflate& operator=(const MessageDeflate&) = delete;

    /// Inflates one whole compressed message (the 00 00 FF FF tail is appended here) into the
    /// start of `buffer`, which only grows: the message is the view returned. nullopt when the
    /// data is not valid deflate or inflates beyond `max_output` bytes.
    std::optional<std::string_view> inflate(std::string_view compressed, std::size_t max_output,
                                            std::string& buffer);
    /// Compresses the concatenation of `parts` (one message) into the start of `buffer`, which
    /// only grows, without the final 00 00 FF FF (RFC 7692 7.2.1): the view returned.
    std::string_view deflate(std::initializer_list<std::string_view> parts, std::string& buffer);

private:
    struct Streams;
    std::unique_ptr<Streams> z_;
};

enum class Opcode : std::uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

/// One client WebSocket connection. Runs on: its worker's thread, for its whole life. Owned by:
/// its worker, which destroys it only after its io_context has stopped, so the completion
/// handlers capture a plain `this`.
///
/// A scenario derives from it and reacts to `on_open` and `on_message`. Outgoing messages are
/// queued with `queue` and leave with the next `flush`; the connection flushes by itself after
/// `on_open` and after every batch of input, so a scenario calls `flush` only when it sends from
/// elsewhere (a timer, a start signal).
class Connection {
public:
    enum class State : std::uint8_t {
        kIdle,        // not started
        kConnecting,  // TCP connect, TLS handshake, HTTP upgrade
        kOpen,        // messages flow
        kClosing,     // our close frame is queued or sent, or we answer the server's
        kClosed,      // the socket is closed
    };

    explicit Connection(Worker& worker);
    virtual ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    State state() const noexcept { return state_; }
    bool is_open() const noexcept { return state_ == State::kOpen; }

    /// Connects (from `source` when set), performs the TLS handshake for wss and the upgrade.
    /// `extra_headers` are whole header lines, each ending in "\r\n".
    void start(const Target& target, std::optional<asio::ip::address> source,
               const std::string& extra_headers);

    /// Queues one message made of `parts` (gathered, masked while copied). False, with nothing
    /// queued, when the connection is not open or the outbox would exceed its bound.
    bool queue(Opcode opcode, std::initializer_list<std::string_view> parts);
    /// Queues one frame of a fragmented message, never compressed: the first with opcode kText
    /// or kBinary, the others kContinuation, the last with `fin`. The caller keeps the sequence
    /// whole (nothing else queued in between but control frames). False, with nothing queued,
    /// as `queue`.
    bool queue_fragment(Opcode opcode, bool fin, std::string_view part);
    /// Writes what is queued unless a write is in flight (then it leaves when that one completes).
    void flush();
    /// Starts the closing handshake (1000); the socket closes when the server's close frame
    /// arrives, when the server closes the transport, or at the worker's close deadline.
    void close();
    /// Closes the socket now. A non-empty `why` counts an error with that reason; a connection
    /// still in its handshake always counts as failed.
    void abort(std::string_view why);

    std::size_t queued_bytes() const noexcept { return out_.size(); }
    /// permessage-deflate was negotiated (offered with --compression and accepted).
    bool compressed() const noexcept { return deflate_; }
    /// When start() was called (steady-clock nanoseconds).
    std::uint64_t started_ns() const noexcept { return started_ns_; }
    /// Called by the worker's sweep when a handshake or close takes longer than allowed.
    void on_deadline();
    Clock::time_point deadline() const noexcept { return deadline_; }

    static constexpr std::size_t kMaxOutboundBytes = 4 * 1024 * 1024;
    static constexpr std::size_t kMaxMessageBytes = 16 * 1024 * 1024;

protected:
    /// The upgrade succeeded.
    virtual void on_open() {}
    /// A complete text or binary message (a view valid during the call only).
    virtual void on_message(std::string_view payload, bool text) = 0;
    /// The connection ended; `expected` is true when this side started the close.
    virtual void on_closed([[maybe_unused]] bool expected) {}

    Worker& worker_;

private:
    struct Handshake;

    void connect_done(const boost::system::error_code& ec);
    void send_upgrade();
    void read_upgrade_response();
    void on_upgrade_bytes(std::size_t n);
    void opened(std::string_view leftover);
    void fail_handshake(const std::string& why);

    void read_next();
    void on_readable(const boost::system::error_code& ec);
    void on_tls_read(const boost::system::error_code& ec, std::size_t n);
    void on_bytes(const std::uint8_t* data, std::size_t size);
    std::size_t parse(const std::uint8_t* data, std::size_t size);
    void on_frame(Opcode opcode, bool fin, bool compressed, std::string_view payload);
    /// A complete data message: inflated first when `compressed`, then given to on_message.
    void deliver(std::string_view payload, bool text, bool compressed);
    /// Checks the server's Sec-WebSocket-Extensions answer; an error text, or empty.
    std::string accept_extensions(std::string_view value);
    void on_server_close(std::string_view payload);
    void on_written(const boost::system::error_code& ec);
    void on_transport_error(const boost::system::error_code& ec);
    /// Appends one masked frame to the outbox, whatever its bound (control frames, and `queue`
    /// after its check). `rsv1`: a compressed message; `fin`: the message's last frame.
    void append_frame(Opcode opcode, std::initializer_list<std::string_view> parts,
                      bool rsv1 = false, bool fin = true);
    /// Closes the socket and tells the scenario, once. The caller has counted any error.
    void end(bool expected);
    void watch(Clock::duration timeout);

    tcp::socket socket_;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
    std::unique_ptr<Handshake> handshake_;     // during the upgrade only
    std::unique_ptr<std::uint8_t[]> tls_buf_;  // wss: TLS reads need a buffer of their own

    std::string partial_;    // the bytes of an incomplete frame
    std::string fragments_;  // a fragmented message being assembled
    Opcode fragments_opcode_ = Opcode::kText;
    bool in_fragmented_ = false;
    bool fragments_compressed_ = false;
    bool deflate_ = false;  // permessage-deflate negotiated

    std::string out_;      // frames queued, not yet written
    std::string writing_;  // the write in flight
    bool write_in_flight_ = false;
    bool in_batch_ = false;  // inside on_bytes: flush once at the end

    State state_ = State::kIdle;
    bool close_sent_ = false;
    bool close_after_write_ = false;  // we answered the server's close: end once it is written
    std::uint64_t started_ns_ = 0;
    Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace hearth::bench
