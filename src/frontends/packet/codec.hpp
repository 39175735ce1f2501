#pragma once

// The game packet protocol's wire format (docs/protocol/packets.md), with no I/O: the ROSE
// framing (u16 size of the whole packet, u16 type, u16 crc; little-endian), a frame decoder fed
// bytes in any split, and the Writer and Reader of the fields every message is made of.
//
// Only the standard library: the C++ client library (clients/cpp) compiles this file and
// messages.* as they are, so that the server and its clients share one definition of the bytes.
//
// Thread-safety: free functions without shared state; a FrameDecoder, Writer or Reader belongs to
// one thread (a connection's).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace hearth::packet {

/// size, type, crc.
inline constexpr std::size_t kHeaderBytes = 6;
/// The original's maximum packet size, header included; the default of `[packet]
/// max_packet_bytes`.
inline constexpr std::size_t kDefaultMaxPacketBytes = 0x7FF;
/// The largest maximum: the size field is a u16.
inline constexpr std::size_t kLargestMaxPacketBytes = 0xFFFF;
/// The smallest maximum a server may configure: every message that is not a batch fits in it
/// by its fields' bounds (messages.hpp), so only batches ever span packets.
inline constexpr std::size_t kSmallestMaxPacketBytes = 1024;

/// Why bytes could not be read or written as a message. Stable values: they travel as the
/// `detail` of a kMalformedPacket error (messages.hpp).
enum class WireError : std::uint8_t {
    kNone = 0,
    kTruncated = 1,      // the payload ends inside a field
    kBadUtf8 = 2,        // a string is not well-formed UTF-8
    kStringTooLong = 3,  // a string is longer than its field allows
    kBadValue = 4,       // an enum value out of range, a float that is NaN or infinite
    kTooMany = 5,        // a count above its field's bound
    kTooLarge = 6,       // (encoding) the packet would exceed the maximum packet size
    kUnknownOpcode = 7,  // (dispatch) no message of that type in that direction
};

/// A short English name of `error`, for logs and error packets.
std::string_view wire_error_text(WireError error) noexcept;

/// One packet: its type and the bytes after the header.
struct Packet {
    std::uint16_t type = 0;
    std::string_view payload;
};

enum class FrameStatus : std::uint8_t {
    kNeedMore,  // not a whole packet yet
    kPacket,    // `packet` is the next packet
    kTooSmall,  // a size field below 6 (the header alone): the stream cannot be trusted any more
    kTooLarge,  // a size field above the maximum: the stream cannot be trusted any more
};

struct FrameResult {
    FrameStatus status = FrameStatus::kNeedMore;
    std::size_t consumed = 0;         // bytes of the input taken
    Packet packet;                    // kPacket only
    std::uint16_t declared_size = 0;  // the size field, once the header was read (kTooSmall/Large)
};

/// The packet at the start of `bytes`, if it is whole there (a view into `bytes`); consumes
/// nothing otherwise. The crc field is ignored.
FrameResult decode_packet(std::string_view bytes, std::size_t max_packet_bytes) noexcept;

/// Splits a byte stream into packets, whatever the split of the reads. Runs on: its connection's
/// thread.
///
/// Allocation: a packet that lies whole in the input is returned as a view into the input and
/// copied nowhere; only a packet split across inputs is gathered in a buffer of the decoder's own,
/// which holds at most one packet (at most `max_packet_bytes`). Its storage grows to the largest
/// split packet seen and is kept for the next ones, so a connection allocates a few times in its
/// life rather than per packet; storage beyond 4 KiB is given back after its packet. After
/// kTooSmall or kTooLarge the decoder returns that status for good and keeps nothing.
class FrameDecoder {
public:
    /// `max_packet_bytes` is clamped to [kHeaderBytes, kLargestMaxPacketBytes].
    explicit FrameDecoder(std::size_t max_packet_bytes = kDefaultMaxPacketBytes) noexcept;

    /// Takes bytes from the front of `input` up to the end of the next packet and returns it, or
    /// takes all of `input` and returns kNeedMore. The caller removes `consumed` bytes from its
    /// input and calls again while any are left. A returned payload is valid until the next call
    /// and as long as `input` is.
    FrameResult next(std::string_view input);

    /// Bytes of a partial packet held (at most the maximum packet size).
    std::size_t buffered() const noexcept { return drop_partial_ ? 0 : partial_.size(); }
    /// Storage held for split packets (0 until one is split; reused up to 4 KiB).
    std::size_t buffer_capacity() const noexcept { return partial_.capacity(); }
    std::size_t max_packet_bytes() const noexcept { return max_; }
    bool failed() const noexcept { return failed_ != FrameStatus::kNeedMore; }

private:
    void append(std::string_view bytes) {
        partial_.insert(partial_.end(), bytes.begin(), bytes.end());
    }

    std::vector<char> partial_;  // a packet's first bytes, while it is split across inputs
    std::size_t max_;
    FrameStatus failed_ = FrameStatus::kNeedMore;  // kTooSmall or kTooLarge once failed
    std::uint16_t failed_size_ = 0;
    bool drop_partial_ = false;  // the last packet was returned from partial_
};

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
/// U+10FFFF).
bool valid_utf8(std::string_view text) noexcept;

/// Appends fields to a caller's string, little-endian. An error (a string too long or not UTF-8, a
/// float that is not finite, a count above its bound) is kept, the first one only, and the
/// message's encoder discards what was written; no exceptions.
class Writer {
public:
    explicit Writer(std::string& out) noexcept : out_(out) {}

    void u8(std::uint8_t v);
    void u16(std::uint16_t v);
    void u32(std::uint32_t v);
    void u64(std::uint64_t v);
    void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
    /// IEEE 754 binary32; NaN and infinities are refused (kBadValue).
    void f32(float v);
    /// A u16 byte length, then the UTF-8 bytes; at most `max_bytes` (and 65,535).
    void str(std::string_view s, std::size_t max_bytes);
    /// A count before a list: refused (kTooMany) above `max`.
    void count_u8(std::size_t n, std::size_t max);
    void count_u16(std::size_t n, std::size_t max);

    /// Overwrites a u16 written earlier at byte `at` of the string.
    void patch_u16(std::size_t at, std::uint16_t v) noexcept;
    void patch_u8(std::size_t at, std::uint8_t v) noexcept;

    // The visitor calls of a message's `fields` (messages.hpp): a message lists its fields once,
    // and the same list writes it here and reads it in the Reader.
    void operator()(std::uint8_t v) { u8(v); }
    void operator()(std::uint16_t v) { u16(v); }
    void operator()(std::uint32_t v) { u32(v); }
    void operator()(std::uint64_t v) { u64(v); }
    void operator()(float v) { f32(v); }
    template <class E>
        requires std::is_enum_v<E>
    void operator()(E e) {
        (*this)(static_cast<std::underlying_type_t<E>>(e));
    }
    void operator()(std::string_view s, std::size_t max_bytes) { str(s, max_bytes); }
    /// A `flags` byte: bit 0 is `more`.
    void flags(bool more) { u8(more ? 1 : 0); }
    void count8(std::size_t n, std::size_t max) { count_u8(n, max); }
    /// A count, then each entry (a number, or a group with its own `fields`).
    template <class T>
    void list8(const std::vector<T>& v, std::size_t max) {
        count_u8(v.size(), max);
        entries(v);
    }
    template <class T>
    void list16(const std::vector<T>& v, std::size_t max) {
        count_u16(v.size(), max);
        entries(v);
    }

    void fail(WireError e) noexcept {
        if (error_ == WireError::kNone) {
            error_ = e;
        }
    }
    WireError error() const noexcept { return error_; }
    bool ok() const noexcept { return error_ == WireError::kNone; }
    /// The string's size: where the next field goes.
    std::size_t position() const noexcept { return out_.size(); }
    std::string& out() noexcept { return out_; }

private:
    template <class T>
    void entries(const std::vector<T>& v) {
        for (const T& e : v) {
            if constexpr (std::is_arithmetic_v<T>) {
                (*this)(e);
            } else {
                T::fields(*this, e);
            }
        }
    }

    std::string& out_;
    WireError error_ = WireError::kNone;
};

/// Reads fields from a payload, little-endian. The first error is kept; after it every read
/// returns zero or an empty string, so a message reader reads all its fields and checks once.
/// Strings are views into the payload (no copy): valid as long as the payload is.
class Reader {
public:
    explicit Reader(std::string_view payload) noexcept : in_(payload) {}

    std::uint8_t u8() noexcept;
    std::uint16_t u16() noexcept;
    std::uint32_t u32() noexcept;
    std::uint64_t u64() noexcept;
    std::int32_t i32() noexcept { return static_cast<std::int32_t>(u32()); }
    /// NaN and infinities are refused (kBadValue): no position or speed is ever NaN.
    float f32() noexcept;
    /// A u16-length-prefixed UTF-8 string of at most `max_bytes` bytes.
    std::string_view str(std::size_t max_bytes) noexcept;
    /// A count before a list, refused (kTooMany) above `max`.
    std::size_t count_u8(std::size_t max) noexcept;
    std::size_t count_u16(std::size_t max) noexcept;

    // The visitor calls of a message's `fields` (messages.hpp), as in the Writer.
    void operator()(std::uint8_t& v) noexcept { v = u8(); }
    void operator()(std::uint16_t& v) noexcept { v = u16(); }
    void operator()(std::uint32_t& v) noexcept { v = u32(); }
    void operator()(std::uint64_t& v) noexcept { v = u64(); }
    void operator()(float& v) noexcept { v = f32(); }
    /// Any value of the enumeration's type: the message checks the values it refuses.
    template <class E>
        requires std::is_enum_v<E>
    void operator()(E& e) noexcept {
        std::underlying_type_t<E> raw{};
        (*this)(raw);
        e = static_cast<E>(raw);
    }
    void operator()(std::string_view& s, std::size_t max_bytes) noexcept { s = str(max_bytes); }
    /// A `flags` byte: bit 0 is `more`, the other bits are ignored.
    void flags(bool& more) noexcept { more = (u8() & 1) != 0; }
    void count8(std::uint8_t& n, std::size_t max) noexcept {
        n = static_cast<std::uint8_t>(count_u8(max));
    }
    /// A count, then each entry; stops at the first error, so a count cannot make it allocate
    /// beyond what the payload holds.
    template <class T>
    void list8(std::vector<T>& v, std::size_t max) {
        entries(v, count_u8(max));
    }
    template <class T>
    void list16(std::vector<T>& v, std::size_t max) {
        entries(v, count_u16(max));
    }

    void fail(WireError e) noexcept {
        if (error_ == WireError::kNone) {
            error_ = e;
        }
    }
    WireError error() const noexcept { return error_; }
    bool ok() const noexcept { return error_ == WireError::kNone; }
    std::size_t remaining() const noexcept { return in_.size() - pos_; }

private:
    const unsigned char* take(std::size_t n) noexcept;

    template <class T>
    void entries(std::vector<T>& v, std::size_t n) {
        v.clear();
        for (std::size_t i = 0; i < n && ok(); ++i) {
            T e{};
            if constexpr (std::is_arithmetic_v<T>) {
                (*this)(e);
            } else {
                T::fields(*this, e);
            }
            if (ok()) {
                v.push_back(e);
            }
        }
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    WireError error_ = WireError::kNone;
};

/// Appends a packet header with a size of 0, to be set by `finish_packet`; returns where the
/// packet starts.
std::size_t begin_packet(std::string& out, std::uint16_t type);
/// Sets the size of the packet begun at `start`. When it exceeds `max_packet_bytes` (or when `w`
/// failed) the packet is removed from `out` and the error returned.
WireError finish_packet(Writer& w, std::size_t start, std::size_t max_packet_bytes);

}  // namespace hearth::packet
