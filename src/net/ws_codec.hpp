#pragma once

// The WebSocket wire format (RFC 6455 framing, RFC 7692 permessage-deflate), server side, with no
// I/O: bytes in, events out. Written by hand rather than using Beast's websocket::stream because
// Hearth needs what that stream cannot do: write many queued frames in one system call, share one
// encoded (and one compressed) frame between every recipient of a broadcast, compress only
// messages above a size threshold, and keep an idle connection's memory to a few hundred bytes.
// Beast still parses the HTTP upgrade; tests use Beast's client as an independent peer.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <hearth/payload.hpp>

namespace hearth::net::ws {

enum class Opcode : std::uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

inline constexpr std::size_t kMaxHeaderBytes = 10;  // server frames are never masked
inline constexpr std::size_t kMaxControlPayload = 125;

/// Writes an unmasked (server) frame header into `out`; returns its length (2, 4 or 10).
std::size_t encode_header(std::span<std::uint8_t, kMaxHeaderBytes> out, Opcode opcode, bool fin,
                          bool rsv1, std::uint64_t payload_length) noexcept;

/// A whole unmasked frame (header + payload), for control frames and tests.
std::string encode_frame(Opcode opcode, std::string_view payload, bool fin = true,
                         bool rsv1 = false);

/// A whole masked (client) frame: what a client sends. For tests, fuzzing and the load generator.
std::string encode_client_frame(Opcode opcode, std::string_view payload,
                                std::array<std::uint8_t, 4> mask, bool fin = true,
                                bool rsv1 = false);

/// The payload of a close frame: 2-byte code, then the reason truncated to fit 125 bytes at a
/// UTF-8 character boundary.
std::string close_payload(std::uint16_t code, std::string_view reason);

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key (SHA-1 and base64, RFC 6455 section 4.2.2).
std::string accept_key(std::string_view client_key);

/// Negotiates permessage-deflate from a Sec-WebSocket-Extensions request header. Accepts the first
/// offer Hearth can honour and returns the response header value, which always asks for
/// `server_no_context_takeover; client_no_context_takeover`: every message is compressed on its
/// own, so one compressed frame serves every recipient and one inflater serves a whole thread.
/// An offer that limits server_max_window_bits below 15 is declined. nullopt: no compression.
std::optional<std::string> negotiate_deflate(std::string_view extensions_header);

/// Raw-deflate decompression of whole messages (no context takeover). Not thread-safe: one per
/// io thread. The zlib state is allocated on first use.
class Inflater {
public:
    Inflater();
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    /// Past this, the output buffer is freed at the next `inflate` rather than kept.
    static constexpr std::size_t kRetainedOutputBytes = 64 * 1024;

    enum class Status : std::uint8_t { kOk, kCorrupt, kTooBig };
    /// Inflates one message (the 00 00 FF FF tail is appended internally) into `out` (replaced).
    /// kTooBig as soon as the output would exceed `max_output`: memory stays bounded.
    Status inflate(std::string_view compressed, std::size_t max_output, std::string& out);

    /// Like the above, into the inflater's own buffer, which is reused from message to message
    /// (no allocation per message; kept up to kRetainedOutputBytes of capacity). The result,
    /// `output()`, is valid until the next call to `inflate` on this inflater.
    Status inflate(std::string_view compressed, std::size_t max_output);
    std::string_view output() const noexcept { return output_; }

    /// After kOk: whether the compressed input ended exactly where the message did (no bytes
    /// after a final block). Only then is the compressed form a faithful copy to forward: any
    /// receiver inflates it to the same message.
    bool exact() const noexcept { return exact_; }

private:
    Status inflate_into(std::string_view compressed, std::size_t max_output, std::string& out);

    struct State;
    std::unique_ptr<State> state_;
    std::string output_;
    bool exact_ = false;
};

/// Raw-deflate compression of whole messages (no context takeover), trailing 00 00 FF FF removed
/// as RFC 7692 requires. Thread-safe: uses a per-thread zlib stream.
std::string deflate_message(std::string_view message);

/// One step of parsing: what the parser found.
struct FrameEvent {
    enum class Type : std::uint8_t {
        kNeedMore,    // the input holds no complete event; keep the unconsumed bytes, read more
        kMessage,     // a complete data message in `data` (decompressed; text is valid UTF-8)
        kBinaryPart,  // Limits::stream_binary: part of a binary message, `first` / `last` set
        kPing,        // `data` is the ping payload
        kPong,
        kClose,  // peer's close: `code` (1005 when absent) and `data` = reason
        kError,  // protocol violation: close with `code` and reason `data`; stop parsing
    };
    Type type = Type::kNeedMore;
    MessageKind kind = MessageKind::kText;
    std::uint16_t code = 0;
    std::string_view data;  // valid until the next call to `next` or until the input changes
    // kMessage that arrived compressed: its permessage-deflate payload as received (without the
    // 00 00 FF FF tail), when it can be forwarded as it is: it ended exactly with the message and
    // is smaller than `data`. With client_no_context_takeover (always negotiated) it inflates on
    // its own, with any window of 15 bits, to `data`. Empty otherwise. Same validity as `data`.
    std::string_view deflated;
    // kMessage: it arrived compressed, and `data` is what it inflated to.
    bool compressed = false;
    // kBinaryPart: the part starts (ends) the message.
    bool first = false;
    bool last = false;
};

/// Parses client frames. Payloads are unmasked in place in the caller's buffer, so a single-frame
/// uncompressed message is delivered without a copy. Fragments are reassembled in an internal
/// buffer that is released once the message is delivered. Runs on: the connection's thread.
///
/// The caller's contract (the usual read loop: append what the socket gave to a buffer, call
/// `next` until kNeedMore, erase the consumed prefix after each call):
/// - A frame is consumed only when it is complete. When only part of a frame is in `input`
///   (header included: its payload is not), `next` returns kNeedMore and leaves that frame's bytes
///   unconsumed; the caller keeps them and reads more. The caller therefore buffers at most one
///   frame: for the largest frame accepted, `max_message_bytes` (plus the deflate slack below) plus
///   its header. Limits are checked from the header, so an oversize frame fails before its payload
///   arrives.
/// - `consumed` counts exactly the bytes of the frames the event covers. Non-final fragments are
///   absorbed into the internal buffer as they complete, so kNeedMore may come with `consumed` > 0
///   (those fragments) and an event may cover several fragments followed by the frame that ended
///   the message or a control frame that arrived between fragments. Always erase `consumed` bytes,
///   whatever the event.
/// - An event's `data` may point into `input` (unmasked in place), into the parser or, for a
///   compressed message, into the inflater's output buffer: it is valid until the next call to
///   `next` on any parser sharing the inflater, or until the caller changes those bytes of
///   `input`. (Parsers sharing a thread's inflater run one at a time, and each event is handled
///   before the next call.)
/// - After kError, `consumed` is the bytes before the offending frame, every later call returns the
///   same kError with `consumed` = 0, and the internal buffers are freed.
/// - A compressed message's compressed size may exceed `max_message_bytes` by
///   `deflate_slack_bytes(max_message_bytes)` (deflate expands incompressible data a little); its
///   inflated size is held to `max_message_bytes` exactly.
/// - The reassembly buffer keeps at most `kRetainedBufferBytes` of capacity once its message has
///   been delivered (freed on the call after the delivery), so an idle parser holds no big
///   allocation. Inflated messages live in the (per-thread) inflater's reused buffer.
class FrameParser {
public:
    struct Limits {
        std::size_t max_message_bytes = 1 << 20;  // after decompression; over it: kError 1009
        // Uncompressed binary messages are not reassembled: their payload comes out as
        // kBinaryPart events as it arrives, a frame possibly in several parts (the caller keeps
        // no bytes of such a frame: only an incomplete header). Bounded by
        // max_streamed_message_bytes (0: unbounded) instead of max_message_bytes.
        bool stream_binary = false;
        std::uint64_t max_streamed_message_bytes = 0;
    };

    static constexpr std::size_t kRetainedBufferBytes = 256;

    /// How many compressed bytes beyond `max_message_bytes` a compressed message may carry.
    static constexpr std::size_t deflate_slack_bytes(std::size_t max_message_bytes) noexcept {
        return max_message_bytes / 8 + 1024;
    }

    /// `inflater` is used when `deflate` was negotiated; it may be shared by the thread's parsers.
    /// `deflate` without an inflater is treated as no deflate (RSV1 frames are then rejected).
    FrameParser(Limits limits, bool deflate, Inflater* inflater);

    void set_limits(Limits limits) noexcept { limits_ = limits; }

    /// Heap bytes the parser holds in its reassembly buffers (their capacity), for tests and the
    /// per-connection memory figure.
    std::size_t buffered_capacity() const noexcept {
        return fragments_ ? fragments_->capacity() : 0;
    }

    /// Finds the next event in `input`; returns it and how many bytes of `input` it consumed. After
    /// kError every later call returns kError again. Never throws on malformed input.
    std::pair<FrameEvent, std::size_t> next(std::span<std::uint8_t> input);

private:
    FrameEvent error_event() const noexcept;
    // `reason` is a literal: the parser keeps the pointer.
    std::pair<FrameEvent, std::size_t> fail(std::uint16_t code, const char* reason,
                                            std::size_t consumed);
    std::pair<FrameEvent, std::size_t> stream_part(std::uint8_t* data, std::size_t size,
                                                   std::size_t consumed);
    std::pair<FrameEvent, std::size_t> deliver(MessageKind kind, bool compressed,
                                               std::string_view body, std::size_t frame_start,
                                               std::size_t frame_end);
    void release_buffers() noexcept;

    // Every idle connection holds a parser: the fields are ordered (and narrowed) so that it
    // packs without padding.
    Limits limits_;
    Inflater* inflater_;
    // The data message being reassembled from fragments, made by the first fragmented message:
    // most connections never send one, and keep a pointer rather than an empty string.
    std::unique_ptr<std::string> fragments_;
    // The failure, repeated by every later call (a literal's pointer and a code rather than a
    // whole FrameEvent).
    const char* error_reason_ = "";
    // A streamed binary message (Limits::stream_binary) in progress, and the frame being read.
    std::uint64_t stream_frame_left_ = 0;
    std::uint64_t streamed_bytes_ = 0;  // of the message so far, for the bound
    std::array<std::uint8_t, 4> stream_mask_{};
    std::uint16_t error_code_ = 0;
    std::uint8_t stream_mask_offset_ = 0;  // payload bytes of the frame unmasked so far, mod 4
    bool deflate_;
    bool failed_ = false;
    bool in_message_ = false;
    bool message_compressed_ = false;
    MessageKind message_kind_ = MessageKind::kText;
    // A delivered event's data may live in fragments_: it is cleared on the next call, not at
    // delivery.
    bool release_pending_ = false;
    bool streaming_ = false;
    bool stream_first_ = false;     // the next part is the message's first
    bool in_stream_frame_ = false;  // a frame's header was consumed, its payload not all
    bool stream_frame_fin_ = false;
};

}  // namespace hearth::net::ws
