#include "frontends/packet/codec.hpp"
#include <algorithm>
#include <bit>
#include <cmath>

namespace hearth::packet {

namespace {

// The decoder's buffer keeps its storage up to this size between packets: the usual packets
// (default maximum 2,047 bytes) reuse it, a rare large one does not pin 64 KiB per connection.
constexpr std::size_t kKeptBufferBytes = 4096;

// Little-endian whatever the host's order (shifts, not memcpy).
template <class T>
T load_le(const unsigned char* b) noexcept {
    T v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) {
        v = static_cast<T>((v << 8) | b[i]);
    }
    return v;
}

template <class T>
void append_le(std::string& out, T v) {
    char b[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    }
    out.append(b, sizeof(T));
}

std::uint16_t le16(const unsigned char* b) noexcept {
    return load_le<std::uint16_t>(b);
}

}  // namespace

std::string_view wire_error_text(WireError error) noexcept {
    switch (error) {
        case WireError::kNone:
            return "no error";
        case WireError::kTruncated:
            return "the payload ends inside a field";
        case WireError::kBadUtf8:
            return "a string is not valid UTF-8";
        case WireError::kStringTooLong:
            return "a string is longer than its field allows";
        case WireError::kBadValue:
            return "a field has a value out of range";
        case WireError::kTooMany:
            return "a list has more entries than its field allows";
        case WireError::kTooLarge:
            return "the packet exceeds the maximum packet size";
        case WireError::kUnknownOpcode:
            return "unknown opcode";
    }
    return "unknown error";
}

// ---- framing --------------------------------------------------------------------------------

FrameResult decode_packet(std::string_view bytes, std::size_t max_packet_bytes) noexcept {
    if (bytes.size() < kHeaderBytes) {
        return {};
    }
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::uint16_t size = le16(b);
    if (size < kHeaderBytes) {
        return {FrameStatus::kTooSmall, 0, {}, size};
    }
    if (size > max_packet_bytes) {
        return {FrameStatus::kTooLarge, 0, {}, size};
    }
    if (bytes.size() < size) {
        return {FrameStatus::kNeedMore, 0, {}, size};
    }
    return {FrameStatus::kPacket, size,
            Packet{le16(b + 2), bytes.substr(kHeaderBytes, size - kHeaderBytes)}, size};
}

FrameDecoder::FrameDecoder(std::size_t max_packet_bytes) noexcept
    : max_(std::clamp(max_packet_bytes, kHeaderBytes, kLargestMaxPacketBytes)) {}

FrameResult FrameDecoder::next(std::string_view input) {
    if (failed_ != FrameStatus::kNeedMore) {
        return {failed_, 0, {}, failed_size_};
    }
    if (drop_partial_) {
        drop_partial_ = false;
        partial_.clear();
        if (partial_.capacity() > kKeptBufferBytes) {
            std::vector<char>().swap(partial_);
        }
    }
    const auto fail = [this](FrameResult r) {
        failed_ = r.status;
        failed_size_ = r.declared_size;
        std::vector<char>().swap(partial_);
        return r;
    };

    if (partial_.empty()) {
        FrameResult r = decode_packet(input, max_);
        if (r.status == FrameStatus::kPacket) {
            return r;  // whole in the input: a view, no copy
        }
        if (r.status != FrameStatus::kNeedMore) {
            return fail(r);
        }
        // A packet's beginning: shorter than its size, which (when the header is there) is
        // within the maximum, so the buffer stays bounded.
        if (r.declared_size != 0) {
            partial_.reserve(r.declared_size);
        }
        append(input);
        return {FrameStatus::kNeedMore, input.size(), {}, r.declared_size};
    }

    std::size_t consumed = 0;
    if (partial_.size() < kHeaderBytes) {
        consumed = std::min(kHeaderBytes - partial_.size(), input.size());
        append(input.substr(0, consumed));
        if (partial_.size() < kHeaderBytes) {
            return {FrameStatus::kNeedMore, consumed, {}, 0};
        }
        const std::uint16_t size = le16(reinterpret_cast<const unsigned char*>(partial_.data()));
        if (size < kHeaderBytes) {
            return fail({FrameStatus::kTooSmall, consumed, {}, size});
        }
        if (size > max_) {
            return fail({FrameStatus::kTooLarge, consumed, {}, size});
        }
        partial_.reserve(size);
    }
    const auto* b = reinterpret_cast<const unsigned char*>(partial_.data());
    const std::uint16_t size = le16(b);
    const std::size_t take = std::min<std::size_t>(size - partial_.size(), input.size() - consumed);
    append(input.substr(consumed, take));
    consumed += take;
    if (partial_.size() < size) {
        return {FrameStatus::kNeedMore, consumed, {}, size};
    }
    drop_partial_ = true;
    b = reinterpret_cast<const unsigned char*>(partial_.data());
    return {
        FrameStatus::kPacket, consumed,
        Packet{le16(b + 2), std::string_view(partial_.data() + kHeaderBytes, size - kHeaderBytes)},
        size};
}

std::size_t begin_packet(std::string& out, std::uint16_t type) {
    const std::size_t start = out.size();
    const char header[kHeaderBytes] = {
        0, 0, static_cast<char>(type & 0xFF), static_cast<char>(type >> 8), 0, 0};
    out.append(header, kHeaderBytes);
    return start;
}

WireError finish_packet(Writer& w, std::size_t start, std::size_t max_packet_bytes) {
    const std::size_t size = w.out().size() - start;
    if (!w.ok()) {
        w.out().resize(start);
        return w.error();
    }
    if (size > std::min(max_packet_bytes, kLargestMaxPacketBytes)) {
        w.out().resize(start);
        return WireError::kTooLarge;
    }
    w.patch_u16(start, static_cast<std::uint16_t>(size));
    return WireError::kNone;
}

// ---- UTF-8 ----------------------------------------------------------------------------------

bool valid_utf8(std::string_view text) noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        // The second byte's range decides overlongs, surrogates and the U+10FFFF bound
        // (Unicode's table 3-7 of well-formed sequences).
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) {
                lo = 0xA0;
            } else if (c == 0xED) {
                hi = 0x9F;
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (std::size_t k = 2; k < len; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += len;
    }
    return true;
}

// ---- Writer ---------------------------------------------------------------------------------

void Writer::u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
}

void Writer::u16(std::uint16_t v) {
    append_le(out_, v);
}
void Writer::u32(std::uint32_t v) {
    append_le(out_, v);
}
void Writer::u64(std::uint64_t v) {
    append_le(out_, v);
}

void Writer::f32(float v) {
    if (!std::isfinite(v)) {
        fail(WireError::kBadValue);
    }
    u32(std::bit_cast<std::uint32_t>(v));
}

void Writer::str(std::string_view s, std::size_t max_bytes) {
    if (s.size() > std::min<std::size_t>(max_bytes, 0xFFFF)) {
        fail(WireError::kStringTooLong);
        return;
    }
    if (!valid_utf8(s)) {
        fail(WireError::kBadUtf8);
        return;
    }
    u16(static_cast<std::uint16_t>(s.size()));
    out_.append(s);
}

void Writer::count_u8(std::size_t n, std::size_t max) {
    if (n > max || n > 0xFF) {
        fail(WireError::kTooMany);
    }
    u8(static_cast<std::uint8_t>(n));
}

void Writer::count_u16(std::size_t n, std::size_t max) {
    if (n > max || n > 0xFFFF) {
        fail(WireError::kTooMany);
    }
    u16(static_cast<std::uint16_t>(n));
}

void Writer::patch_u16(std::size_t at, std::uint16_t v) noexcept {
    out_[at] = static_cast<char>(v & 0xFF);
    out_[at + 1] = static_cast<char>(v >> 8);
}

void Writer::patch_u8(std::size_t at, std::uint8_t v) noexcept {
    out_[at] = static_cast<char>(v);
}

// ---- Reader ---------------------------------------------------------------------------------

const unsigned char* Reader::take(std::size_t n) noexcept {
    if (error_ != WireError::kNone) {
        return nullptr;
    }
    if (in_.size() - pos_ < n) {
        fail(WireError::kTruncated);
        return nullptr;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
    pos_ += n;
    return p;
}

std::uint8_t Reader::u8() noexcept {
    const auto* p = take(1);
    return p == nullptr ? 0 : p[0];
}

std::uint16_t Reader::u16() noexcept {
    const auto* p = take(2);
    return p == nullptr ? 0 : load_le<std::uint16_t>(p);
}

std::uint32_t Reader::u32() noexcept {
    const auto* p = take(4);
    return p == nullptr ? 0 : load_le<std::uint32_t>(p);
}

std::uint64_t Reader::u64() noexcept {
    const auto* p = take(8);
    return p == nullptr ? 0 : load_le<std::uint64_t>(p);
}

float Reader::f32() noexcept {
    const float v = std::bit_cast<float>(u32());
    if (!std::isfinite(v)) {
        fail(WireError::kBadValue);
        return 0.0F;
    }
    return v;
}

std::string_view Reader::str(std::size_t max_bytes) noexcept {
    const std::uint16_t n = u16();
    if (error_ != WireError::kNone) {
        return {};
    }
    if (n > max_bytes) {
        fail(WireError::kStringTooLong);
        return {};
    }
    const auto* p = take(n);
    if (p == nullptr) {
        return {};
    }
    const std::string_view s(reinterpret_cast<const char*>(p), n);
    if (!valid_utf8(s)) {
        fail(WireError::kBadUtf8);
        return {};
    }
    return s;
}

std::size_t Reader::count_u8(std::size_t max) noexcept {
    const std::size_t n = u8();
    if (n > max) {
        fail(WireError::kTooMany);
        return 0;
    }
    return n;
}

std::size_t Reader::count_u16(std::size_t max) noexcept {
    const std::size_t n = u16();
    if (n > max) {
        fail(WireError::kTooMany);
        return 0;
    }
    return n;
}

}  // namespace hearth::packet
