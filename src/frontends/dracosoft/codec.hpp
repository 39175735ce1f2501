#pragma once

// The DracoSoft wire format (docs/protocol/dracosoft.md), with no I/O: the length-prefixed
// framing (4-byte big-endian length, then that many bytes of UTF-8 JSON, at most 1 MiB), the
// client messages parsed, and the server messages written byte for byte the way the original's
// Python `json.dumps` writes them (separators ", " and ": ", ensure_ascii: every non-ASCII
// character as \uXXXX, surrogate pairs above the BMP).
//
// Thread-safety: free functions without shared state; a FrameReader belongs to one connection.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace hearth::frontends::dracosoft {

/// A frame's length prefix.
inline constexpr std::size_t kHeaderBytes = 4;
/// The largest payload; a length of 0 or above it is invalid.
inline constexpr std::size_t kMaxFrameBytes = 1024 * 1024;

enum class DecodeStatus : std::uint8_t {
    kNeedMore,   // not a whole frame yet
    kFrame,      // `payload` is one frame's JSON text
    kBadLength,  // a length of 0 or over kMaxFrameBytes: the stream cannot be trusted any more
};

struct DecodeResult {
    DecodeStatus status = DecodeStatus::kNeedMore;
    std::size_t consumed = 0;  // bytes of the input the frame took (header + payload)
    std::string_view payload;  // a view into the input (kFrame only)
};

/// Decodes the frame at the start of `bytes`; consumes nothing unless a whole frame is there.
DecodeResult decode_frame(std::string_view bytes) noexcept;

/// The frame for a payload: its 4-byte big-endian length, then the payload.
std::string encode_frame(std::string_view payload);

/// Reassembles frames from bytes as they arrive, in any split. Runs on: its connection's thread.
/// It keeps only the bytes not yet returned as frames; after kBadLength it returns kBadLength for
/// good.
class FrameReader {
public:
    /// Appends received bytes. Invalidates the payload views returned by `next`.
    void feed(std::string_view bytes);
    /// The next frame, if whole; the payload view is valid until the next `feed`.
    DecodeResult next() noexcept;
    /// Bytes received and not yet returned as frames.
    std::size_t buffered() const noexcept { return buffer_.size() - head_; }

private:
    std::string buffer_;
    std::size_t head_ = 0;  // bytes of buffer_ already returned
    bool failed_ = false;
};

/// `value` the way Python's `json.dumps(value)` writes it: separators ", " and ": ", keys in the
/// object's order, strings with ensure_ascii escapes (\" \\ \n \r \t \b \f, other control
/// characters and DEL as \u00XX, non-ASCII as \uXXXX, lower-case hex), doubles as Python's repr
/// (1.0, 1e+16, NaN, Infinity). Invalid UTF-8 in a string is written as U+FFFD.
std::string py_dumps(const boost::json::value& value);
/// One string as a JSON string literal, quotes included, as `py_dumps` writes it.
void py_dumps_string(std::string& out, std::string_view utf8);

/// Local time in ISO 8601 with microseconds, `2026-11-21T23:19:17.484124` (Python's
/// `datetime.now().isoformat()`; the fraction always present).
std::string iso_timestamp(std::chrono::system_clock::time_point t);

// ---- server messages: each a complete frame (length prefix included) ------------------------

std::string pong_frame(std::string_view timestamp);
/// `{"type": "auth_response", "success": ..., "message": ..., "timestamp": ..., "token": ...}`;
/// the token only when given.
std::string auth_response_frame(bool success, std::string_view message, std::string_view timestamp,
                                const std::optional<std::string>& token = std::nullopt);
std::string error_frame(std::string_view message, std::string_view timestamp);
std::string chat_frame(std::string_view from, std::string_view message, std::string_view timestamp);

// ---- client messages ----------------------------------------------------------------------

enum class ParseError : std::uint8_t {
    kNone,
    kInvalidJson,  // not JSON (or not UTF-8): "Invalid JSON"
    kNotObject,    // JSON, not an object: "Message must be a JSON object"
};

struct Parsed {
    ParseError error = ParseError::kNone;
    boost::json::object object;
};

/// Parses one frame's payload.
Parsed parse_message(std::string_view payload);

/// A string member of `o`, or nothing when it is absent, not a string or empty (the original's
/// `if not data.get(key)`).
std::optional<std::string> string_field(const boost::json::object& o, std::string_view key);

}  // namespace hearth::frontends::dracosoft
