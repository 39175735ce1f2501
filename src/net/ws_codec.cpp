#include "net/ws_codec.hpp"

#include "util/strings.hpp"

// zlib then declares next_in as a pointer to const, as it only reads through it.
#define ZLIB_CONST
#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include <openssl/evp.h>
#include <zlib.h>

#include "util/utf8.hpp"

namespace hearth::net::ws {
namespace {

constexpr std::uint8_t kFinBit = 0x80;
constexpr std::uint8_t kRsv1Bit = 0x40;
constexpr std::uint8_t kRsv23Bits = 0x30;
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLengthBits = 0x7F;
constexpr std::uint8_t kLength16 = 126;
constexpr std::uint8_t kLength64 = 127;

// RFC 7692 7.2.1: the sender strips this empty stored block's tail; the receiver puts it back.
constexpr std::array<std::uint8_t, 4> kDeflateTail = {0x00, 0x00, 0xFF, 0xFF};

std::uint8_t first_byte(Opcode opcode, bool fin, bool rsv1) noexcept {
    return static_cast<std::uint8_t>((fin ? kFinBit : 0U) | (rsv1 ? kRsv1Bit : 0U) |
                                     static_cast<std::uint8_t>(opcode));
}

// Writes the length field after the first byte; returns the header length so far. `mask_bit`
// is or-ed into the second byte.
std::size_t put_length(std::uint8_t* out, std::uint64_t length, std::uint8_t mask_bit) noexcept {
    if (length <= kMaxControlPayload) {
        out[1] = static_cast<std::uint8_t>(mask_bit | length);
        return 2;
    }
    if (length <= 0xFFFF) {
        out[1] = static_cast<std::uint8_t>(mask_bit | kLength16);
        out[2] = static_cast<std::uint8_t>(length >> 8);
        out[3] = static_cast<std::uint8_t>(length);
        return 4;
    }
    out[1] = static_cast<std::uint8_t>(mask_bit | kLength64);
    for (int i = 0; i < 8; ++i) {
        out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
    }
    return 10;
}

std::uint64_t load_be(const std::uint8_t* p, std::size_t n) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

// XORs `data` with the repeating 4-byte `mask`, a word at a time: this runs over every byte a
// client sends. The mask is relative to the payload's first byte, so the 8-byte word is the key
// twice whatever the machine's byte order.
void apply_mask(std::uint8_t* data, std::size_t size, const std::uint8_t* mask) noexcept {
    std::uint8_t key8[8];
    std::memcpy(key8, mask, 4);
    std::memcpy(key8 + 4, mask, 4);
    std::uint64_t key = 0;
    std::memcpy(&key, key8, sizeof key);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t word = 0;
        std::memcpy(&word, data + i, sizeof word);
        word ^= key;
        std::memcpy(data + i, &word, sizeof word);
    }
    for (; i < size; ++i) {
        data[i] ^= mask[i & 3];
    }
}

std::string_view as_chars(const std::uint8_t* p, std::size_t n) noexcept {
    return {reinterpret_cast<const char*>(p), n};
}

// Close codes a peer may send (RFC 6455 7.4.1 and the IANA registry): 1004-1006 and 1015 are
// reserved for local use and must never appear on the wire.
bool valid_received_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

std::size_t saturating_add(std::size_t a, std::size_t b) noexcept {
    return a > std::numeric_limits<std::size_t>::max() - b ? std::numeric_limits<std::size_t>::max()
                                                           : a + b;
}

// Grows `out` to `size` bytes keeping its first `used`, allocating exactly the capacity asked for:
// std::string's own growth may double, which would let a zip bomb reach twice the limit.
void grow_exact(std::string& out, std::size_t used, std::size_t size) {
    if (size <= out.capacity()) {
        out.resize(size);
        return;
    }
    std::string bigger;
    bigger.reserve(size);
    bigger.assign(out.data(), used);
    bigger.resize(size);
    out.swap(bigger);
}

// ---- permessage-deflate negotiation (RFC 7692 section 5, header syntax from RFC 7230) ----

bool is_tchar(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct ExtensionParam {
    std::string_view name;
    bool has_value = false;
    std::string value;  // unquoted
};

struct ExtensionOffer {
    std::string_view name;
    std::vector<ExtensionParam> params;
};

class HeaderCursor {
public:
    explicit HeaderCursor(std::string_view text) : text_(text) {}

    bool done() const noexcept { return pos_ == text_.size(); }
    char peek() const noexcept { return text_[pos_]; }
    void skip_ows() noexcept {
        while (!done() && (peek() == ' ' || peek() == '\t')) {
            ++pos_;
        }
    }
    bool eat(char c) noexcept {
        if (!done() && peek() == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    std::string_view token() noexcept {
        const std::size_t start = pos_;
        while (!done() && is_tchar(peek())) {
            ++pos_;
        }
        return text_.substr(start, pos_ - start);
    }
    // After the opening quote; false on an unterminated string.
    bool quoted_rest(std::string& out) {
        while (!done()) {
            const char c = text_[pos_++];
            if (c == '"') {
                return true;
            }
            if (c == '\\') {
                if (done()) {
                    return false;
                }
                out.push_back(text_[pos_++]);
            } else {
                out.push_back(c);
            }
        }
        return false;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

// The offers in a Sec-WebSocket-Extensions value; nullopt when it is not well-formed, since the
// offer boundaries cannot then be trusted.
std::optional<std::vector<ExtensionOffer>> parse_extensions(std::string_view header) {
    std::vector<ExtensionOffer> offers;
    HeaderCursor in(header);
    for (;;) {
        in.skip_ows();
        if (in.done()) {
            return offers;
        }
        if (in.eat(',')) {  // empty list elements are allowed
            continue;
        }
        ExtensionOffer offer;
        offer.name = in.token();
        if (offer.name.empty()) {
            return std::nullopt;
        }
        for (;;) {
            in.skip_ows();
            if (!in.eat(';')) {
                break;
            }
            in.skip_ows();
            ExtensionParam param;
            param.name = in.token();
            if (param.name.empty()) {
                return std::nullopt;
            }
            in.skip_ows();
            if (in.eat('=')) {
                in.skip_ows();
                param.has_value = true;
                if (in.eat('"')) {
                    if (!in.quoted_rest(param.value)) {
                        return std::nullopt;
                    }
                } else {
                    param.value = std::string(in.token());
                    if (param.value.empty()) {
                        return std::nullopt;
                    }
                }
            }
            offer.params.push_back(std::move(param));
        }
        offers.push_back(std::move(offer));
        in.skip_ows();
        if (!in.done() && !in.eat(',')) {
            return std::nullopt;
        }
    }
}

// A window-bits value: a decimal 8..15 without leading zeros (RFC 7692 7.1.2.1); 0 if invalid.
int window_bits(std::string_view v) noexcept {
    if (v.empty() || v.size() > 2 || v[0] == '0') {
        return 0;
    }
    int n = 0;
    for (const char c : v) {
        if (c < '0' || c > '9') {
            return 0;
        }
        n = n * 10 + (c - '0');
    }
    return n >= 8 && n <= 15 ? n : 0;
}

// Whether Hearth can honour this permessage-deflate offer. Hearth always compresses with a 15-bit
// window and no context takeover, and inflates with a 15-bit window (which reads any smaller one).
bool acceptable_deflate_offer(const ExtensionOffer& offer) {
    bool seen_server_nct = false;
    bool seen_client_nct = false;
    bool seen_server_bits = false;
    bool seen_client_bits = false;
    const auto once = [](bool& seen) {
        if (seen) {
            return false;
        }
        seen = true;
        return true;
    };
    for (const ExtensionParam& p : offer.params) {
        if (util::iequals_ascii(p.name, "server_no_context_takeover")) {
            if (!once(seen_server_nct) || p.has_value) {
                return false;
            }
        } else if (util::iequals_ascii(p.name, "client_no_context_takeover")) {
            if (!once(seen_client_nct) || p.has_value) {
                return false;
            }
        } else if (util::iequals_ascii(p.name, "server_max_window_bits")) {
            // Valid values below 15 are declined too: Hearth's compressed frames are shared by
            // every recipient, so they are all made with the same 15-bit window.
            if (!once(seen_server_bits) || !p.has_value || window_bits(p.value) != 15) {
                return false;
            }
        } else if (util::iequals_ascii(p.name, "client_max_window_bits")) {
            if (!once(seen_client_bits) || (p.has_value && window_bits(p.value) == 0)) {
                return false;
            }
        } else {
            return false;
        }
    }
    return true;
}

// ---- compression ----

// zlib's deflate state is ~260 KiB: one per thread, reset per message, rather than one per
// connection or per call.
struct DeflateStream {
    z_stream zs{};
    std::string scratch;

    DeflateStream() {
        if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
            throw std::bad_alloc();
        }
    }
    ~DeflateStream() { deflateEnd(&zs); }
    DeflateStream(const DeflateStream&) = delete;
    DeflateStream& operator=(const DeflateStream&) = delete;
};

// Past this, the per-thread scratch buffer is freed after use rather than kept.
constexpr std::size_t kRetainedScratchBytes = 256 * 1024;

// The largest first output buffer of the inflater; it doubles from there, up to the limit.
constexpr std::size_t kInflateChunkBytes = 16 * 1024;

}  // namespace

std::size_t encode_header(std::span<std::uint8_t, kMaxHeaderBytes> out, Opcode opcode, bool fin,
                          bool rsv1, std::uint64_t payload_length) noexcept {
    out[0] = first_byte(opcode, fin, rsv1);
    return put_length(out.data(), payload_length, 0);
}

std::string encode_frame(Opcode opcode, std::string_view payload, bool fin, bool rsv1) {
    std::array<std::uint8_t, kMaxHeaderBytes> header{};
    const std::size_t n = encode_header(header, opcode, fin, rsv1, payload.size());
    std::string frame;
    frame.reserve(n + payload.size());
    frame.append(as_chars(header.data(), n));
    frame.append(payload);
    return frame;
}

std::string encode_client_frame(Opcode opcode, std::string_view payload,
                                std::array<std::uint8_t, 4> mask, bool fin, bool rsv1) {
    std::array<std::uint8_t, kMaxHeaderBytes + 4> header{};
    header[0] = first_byte(opcode, fin, rsv1);
    std::size_t n = put_length(header.data(), payload.size(), kMaskBit);
    std::memcpy(header.data() + n, mask.data(), mask.size());
    n += mask.size();
    std::string frame;
    frame.reserve(n + payload.size());
    frame.append(as_chars(header.data(), n));
    frame.append(payload);
    apply_mask(reinterpret_cast<std::uint8_t*>(frame.data() + n), payload.size(), mask.data());
    return frame;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    constexpr std::size_t kMaxReason = kMaxControlPayload - 2;
    if (reason.size() > kMaxReason) {
        std::size_t n = kMaxReason;
        // Back up over continuation bytes so that the cut falls before a lead byte.
        while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0U) == 0x80U) {
            --n;
        }
        reason = reason.substr(0, n);
    }
    std::string out;
    out.reserve(2 + reason.size());
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return out;
}

std::string accept_key(std::string_view client_key) {
    static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    std::string input;
    input.reserve(client_key.size() + kGuid.size());
    input.append(client_key);
    input.append(kGuid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) {
        return {};
    }
    unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_len));
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

std::optional<std::string> negotiate_deflate(std::string_view extensions_header) {
    const auto offers = parse_extensions(extensions_header);
    if (!offers) {
        return std::nullopt;
    }
    for (const ExtensionOffer& offer : *offers) {
        if (util::iequals_ascii(offer.name, "permessage-deflate") &&
            acceptable_deflate_offer(offer)) {
            return std::string(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        }
    }
    return std::nullopt;
}

// ---- Inflater ----

struct Inflater::State {
    z_stream zs{};
    bool initialised = false;

    ~State() {
        if (initialised) {
            inflateEnd(&zs);
        }
    }
};

Inflater::Inflater() = default;
Inflater::~Inflater() = default;

Inflater::Status Inflater::inflate(std::string_view compressed, std::size_t max_output,
                                   std::string& out) {
    out.clear();
    return inflate_into(compressed, max_output, out);
}

Inflater::Status Inflater::inflate(std::string_view compressed, std::size_t max_output) {
    if (output_.capacity() > kRetainedOutputBytes) {
        std::string().swap(output_);
    }
    // The whole retained capacity is usable from the start: a typical message needs no growth.
    output_.resize(std::min(output_.capacity(), saturating_add(max_output, 1)));
    const Status status = inflate_into(compressed, max_output, output_);
    if (status != Status::kOk) {
        output_.clear();
    }
    return status;
}

// `out` may come with bytes (its size) that are only room to write into: the result replaces them.
Inflater::Status Inflater::inflate_into(std::string_view compressed, std::size_t max_output,
                                        std::string& out) {
    exact_ = false;
    if (compressed.empty()) {
        // Not what RFC 7692 senders produce for an empty message (0x00), but unambiguous.
        out.clear();
        exact_ = true;
        return Status::kOk;
    }
    if (!state_) {
        state_ = std::make_unique<State>();
    }
    z_stream& zs = state_->zs;
    if (!state_->initialised) {
        if (inflateInit2(&zs, -15) != Z_OK) {
            return Status::kCorrupt;
        }
        state_->initialised = true;
    } else if (inflateReset(&zs) != Z_OK) {
        return Status::kCorrupt;
    }

    // One byte beyond the limit is enough to know it was exceeded; never allocate more.
    const std::size_t cap = saturating_add(max_output, 1);
    std::size_t produced = 0;
    const std::string_view segments[2] = {compressed, as_chars(kDeflateTail.data(), 4)};
    for (std::size_t i = 0; i < 2; ++i) {
        const std::string_view segment = segments[i];
        const bool in_message = i == 0;  // not the tail appended here
        if (segment.size() > std::numeric_limits<uInt>::max()) {
            return Status::kTooBig;  // far beyond any message limit
        }
        zs.next_in = reinterpret_cast<const Bytef*>(segment.data());
        zs.avail_in = static_cast<uInt>(segment.size());
        bool output_full = false;
        while (zs.avail_in > 0 || output_full) {
            if (produced == out.size()) {
                if (out.size() >= cap) {
                    return Status::kTooBig;
                }
                // Small messages get a small first buffer (typical ratios are under 4:1), big
                // ones double from there.
                const std::size_t first = std::clamp<std::size_t>(
                    saturating_add(compressed.size(), compressed.size()) * 2, 256,
                    kInflateChunkBytes);
                grow_exact(out, produced, std::min(cap, std::max(out.size() * 2, first)));
            }
            const std::size_t room =
                std::min<std::size_t>(out.size() - produced, std::numeric_limits<uInt>::max());
            zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
            zs.avail_out = static_cast<uInt>(room);
            // Z_BLOCK stops at block boundaries, which lets the end of input be checked to fall on
            // one (data_type bit 7): a message cut inside a block is corrupt, not short.
            const int rc = ::inflate(&zs, Z_BLOCK);
            produced += room - zs.avail_out;
            output_full = zs.avail_out == 0;
            if (produced > max_output) {
                return Status::kTooBig;
            }
            if (rc == Z_STREAM_END) {
                // A final block ends the message: RFC 7692 senders may use BFINAL, and what they
                // append after it (part of an empty stored block) is ignored.
                out.resize(produced);
                exact_ = !in_message || zs.avail_in == 0;
                return Status::kOk;
            }
            if (rc == Z_BUF_ERROR) {
                // No progress possible: only legitimate when all output is out and input is done.
                if (zs.avail_in > 0 && !output_full) {
                    return Status::kCorrupt;
                }
                output_full = false;
                continue;
            }
            if (rc != Z_OK) {
                return Status::kCorrupt;
            }
        }
    }
    if ((zs.data_type & 128) == 0) {
        return Status::kCorrupt;
    }
    out.resize(produced);
    exact_ = true;
    return Status::kOk;
}

std::string deflate_message(std::string_view message) {
    thread_local DeflateStream stream;
    z_stream& zs = stream.zs;
    deflateReset(&zs);
    std::string& scratch = stream.scratch;
    // deflateBound covers Z_FINISH; a sync flush adds at most an empty stored block (5 bytes) more.
    std::size_t size = deflateBound(&zs, static_cast<uLong>(message.size())) + 16;
    if (scratch.size() < size) {
        scratch.resize(size);
    }
    if (message.size() > std::numeric_limits<uInt>::max() / 2) {
        throw std::length_error("deflate_message: message too long");
    }
    zs.next_in = reinterpret_cast<const Bytef*>(message.data());
    zs.avail_in = static_cast<uInt>(message.size());
    std::size_t produced = 0;
    for (;;) {
        zs.next_out = reinterpret_cast<Bytef*>(scratch.data() + produced);
        zs.avail_out = static_cast<uInt>(scratch.size() - produced);
        const int rc = ::deflate(&zs, Z_SYNC_FLUSH);
        produced = scratch.size() - zs.avail_out;
        if (zs.avail_out != 0 || rc != Z_OK) {
            break;
        }
        // Should not happen given deflateBound, but a full buffer only means more room is needed.
        scratch.resize(scratch.size() * 2);
    }
    // A sync flush always ends with an empty stored block, whose 00 00 FF FF RFC 7692 removes.
    if (produced >= 4 && std::memcmp(scratch.data() + produced - 4, kDeflateTail.data(), 4) == 0) {
        produced -= 4;
    }
    std::string out(scratch.data(), produced);
    if (scratch.capacity() > kRetainedScratchBytes) {
        std::string().swap(scratch);
    }
    return out;
}

// ---- FrameParser ----

FrameParser::FrameParser(Limits limits, bool deflate, Inflater* inflater)
    : limits_(limits), inflater_(inflater), deflate_(deflate && inflater != nullptr) {}

void FrameParser::release_buffers() noexcept {
    if (fragments_) {
        fragments_->clear();
        if (fragments_->capacity() > kRetainedBufferBytes) {
            fragments_.reset();
        }
    }
    release_pending_ = false;
}

FrameEvent FrameParser::error_event() const noexcept {
    FrameEvent e;
    e.type = FrameEvent::Type::kError;
    e.code = error_code_;
    e.data = error_reason_;
    return e;
}

std::pair<FrameEvent, std::size_t> FrameParser::fail(std::uint16_t code, const char* reason,
                                                     std::size_t consumed) {
    failed_ = true;
    in_message_ = false;
    streaming_ = false;
    in_stream_frame_ = false;
    error_code_ = code;
    error_reason_ = reason;
    fragments_.reset();
    release_pending_ = false;
    return {error_event(), consumed};
}

std::pair<FrameEvent, std::size_t> FrameParser::deliver(MessageKind kind, bool compressed,
                                                        std::string_view body,
                                                        std::size_t frame_start,
                                                        std::size_t frame_end) {
    std::string_view data = body;
    std::string_view deflated;
    if (compressed) {
        switch (inflater_->inflate(body, limits_.max_message_bytes)) {
            case Inflater::Status::kOk:
                break;
            case Inflater::Status::kTooBig:
                return fail(1009, "message too big", frame_start);
            case Inflater::Status::kCorrupt:
                return fail(1007, "invalid compressed data", frame_start);
        }
        data = inflater_->output();
        if (inflater_->exact() && body.size() < data.size()) {
            deflated = body;
        }
    }
    if (kind == MessageKind::kText && !util::valid_utf8(data)) {
        return fail(1007, "text message is not valid UTF-8", frame_start);
    }
    FrameEvent event;
    event.type = FrameEvent::Type::kMessage;
    event.kind = kind;
    event.data = data;
    event.deflated = deflated;
    event.compressed = compressed;
    return {event, frame_end};
}

std::pair<FrameEvent, std::size_t> FrameParser::stream_part(std::uint8_t* data, std::size_t size,
                                                            std::size_t consumed) {
    // The mask is relative to the frame's first payload byte: rotate the key to this part's start.
    std::array<std::uint8_t, 4> key{};
    for (std::size_t i = 0; i < 4; ++i) {
        key[i] = stream_mask_[(stream_mask_offset_ + i) & 3];
    }
    apply_mask(data, size, key.data());
    stream_mask_offset_ = static_cast<std::uint8_t>((stream_mask_offset_ + size) & 3);
    stream_frame_left_ -= size;
    FrameEvent event;
    event.type = FrameEvent::Type::kBinaryPart;
    event.kind = MessageKind::kBinary;
    event.data = as_chars(data, size);
    event.first = stream_first_;
    stream_first_ = false;
    if (stream_frame_left_ == 0) {
        in_stream_frame_ = false;
        if (stream_frame_fin_) {
            event.last = true;
            streaming_ = false;
            in_message_ = false;
        }
    }
    return {event, consumed};
}

std::pair<FrameEvent, std::size_t> FrameParser::next(std::span<std::uint8_t> input) {
    if (failed_) {
        return {error_event(), 0};
    }
    if (release_pending_) {
        release_buffers();
    }
    std::size_t pos = 0;  // start of the current frame; everything before it is consumed
    for (;;) {
        if (in_stream_frame_) {
            // The rest of a streamed frame's payload: hand over what has arrived.
            const auto n = static_cast<std::size_t>(
                std::min<std::uint64_t>(input.size() - pos, stream_frame_left_));
            if (n == 0) {
                return {FrameEvent{}, pos};
            }
            return stream_part(input.data() + pos, n, pos + n);
        }
        const std::size_t avail = input.size() - pos;
        if (avail < 2) {
            return {FrameEvent{}, pos};
        }
        std::uint8_t* const frame = input.data() + pos;
        const bool fin = (frame[0] & kFinBit) != 0;
        const bool rsv1 = (frame[0] & kRsv1Bit) != 0;
        const auto opcode = static_cast<Opcode>(frame[0] & kOpcodeBits);
        const std::uint8_t length7 = frame[1] & kLengthBits;

        // Everything the first two bytes can show is checked before waiting for more.
        if ((frame[0] & kRsv23Bits) != 0) {
            return fail(1002, "reserved bits set", pos);
        }
        bool control = false;
        switch (opcode) {
            case Opcode::kClose:
            case Opcode::kPing:
            case Opcode::kPong:
                control = true;
                break;
            case Opcode::kContinuation:
            case Opcode::kText:
            case Opcode::kBinary:
                break;
            default:
                return fail(1002, "unknown opcode", pos);
        }
        if ((frame[1] & kMaskBit) == 0) {
            return fail(1002, "client frame not masked", pos);
        }
        bool compressed = false;
        if (control) {
            if (!fin) {
                return fail(1002, "fragmented control frame", pos);
            }
            if (length7 > kMaxControlPayload) {
                return fail(1002, "control frame too long", pos);
            }
            if (rsv1) {
                return fail(1002, "RSV1 set on a control frame", pos);
            }
        } else if (opcode == Opcode::kContinuation) {
            if (!in_message_) {
                return fail(1002, "continuation frame without a message", pos);
            }
            if (rsv1) {
                return fail(1002, "RSV1 set on a continuation frame", pos);
            }
            compressed = message_compressed_;
        } else {
            if (in_message_) {
                return fail(1002, "new message inside a fragmented one", pos);
            }
            if (rsv1 && !deflate_) {
                return fail(1002, "RSV1 set without permessage-deflate", pos);
            }
            compressed = rsv1;
        }

        std::size_t header = 2;
        std::uint64_t length = length7;
        if (length7 == kLength16) {
            header += 2;
            if (avail < header) {
                return {FrameEvent{}, pos};
            }
            length = load_be(frame + 2, 2);
            if (length <= kMaxControlPayload) {
                return fail(1002, "length not minimally encoded", pos);
            }
        } else if (length7 == kLength64) {
            header += 8;
            if (avail < header) {
                return {FrameEvent{}, pos};
            }
            length = load_be(frame + 2, 8);
            if ((length >> 63) != 0) {
                return fail(1002, "length with the top bit set", pos);
            }
            if (length <= 0xFFFF) {
                return fail(1002, "length not minimally encoded", pos);
            }
        }
        const bool streamed =
            !control && (opcode == Opcode::kContinuation
                             ? streaming_
                             : (opcode == Opcode::kBinary && !compressed && limits_.stream_binary));
        if (streamed) {
            const std::uint64_t so_far = opcode == Opcode::kContinuation ? streamed_bytes_ : 0;
            const std::uint64_t bound = limits_.max_streamed_message_bytes;
            if (bound > 0 && (so_far > bound || length > bound - so_far)) {
                return fail(1009, "message too big", pos);
            }
            if (avail < header + 4) {
                return {FrameEvent{}, pos};
            }
            std::memcpy(stream_mask_.data(), frame + header, 4);
            stream_mask_offset_ = 0;
            stream_frame_left_ = length;
            stream_frame_fin_ = fin;
            in_stream_frame_ = true;
            streamed_bytes_ = so_far + length;
            if (opcode != Opcode::kContinuation) {
                streaming_ = true;
                stream_first_ = true;
                in_message_ = true;
                message_kind_ = MessageKind::kBinary;
                message_compressed_ = false;
            }
            pos += header + 4;
            if (length == 0) {
                // An empty frame still marks the message's start or end.
                return stream_part(input.data() + pos, 0, pos);
            }
            continue;
        }
        if (!control) {
            // From the header alone, so that an oversize frame is refused before it is buffered.
            const std::size_t accumulated = in_message_ && fragments_ ? fragments_->size() : 0;
            const std::size_t limit =
                compressed ? saturating_add(limits_.max_message_bytes,
                                            deflate_slack_bytes(limits_.max_message_bytes))
                           : limits_.max_message_bytes;
            if (accumulated > limit || length > limit - accumulated) {
                return fail(1009, "message too big", pos);
            }
        }
        header += 4;  // the masking key
        if (avail < header || avail - header < length) {
            return {FrameEvent{}, pos};
        }
        // length fits in size_t: it is at most avail.
        const auto size = static_cast<std::size_t>(length);
        std::uint8_t* const payload = frame + header;
        apply_mask(payload, size, payload - 4);
        const std::string_view body = as_chars(payload, size);
        const std::size_t end = pos + header + size;

        if (control) {
            FrameEvent event;
            event.data = body;
            if (opcode == Opcode::kPing) {
                event.type = FrameEvent::Type::kPing;
            } else if (opcode == Opcode::kPong) {
                event.type = FrameEvent::Type::kPong;
            } else {
                event.type = FrameEvent::Type::kClose;
                if (size == 0) {
                    event.code = 1005;  // "no status received"
                } else if (size == 1) {
                    return fail(1002, "close frame with a 1-byte payload", pos);
                } else {
                    event.code = static_cast<std::uint16_t>(load_be(payload, 2));
                    if (!valid_received_close_code(event.code)) {
                        return fail(1002, "invalid close code", pos);
                    }
                    event.data = body.substr(2);
                    if (!util::valid_utf8(event.data)) {
                        return fail(1007, "close reason is not valid UTF-8", pos);
                    }
                }
            }
            return {event, end};
        }

        if (opcode != Opcode::kContinuation) {
            const MessageKind kind =
                opcode == Opcode::kText ? MessageKind::kText : MessageKind::kBinary;
            if (fin) {
                return deliver(kind, compressed, body, pos, end);
            }
            in_message_ = true;
            message_kind_ = kind;
            message_compressed_ = compressed;
            if (!fragments_) {
                fragments_ = std::make_unique<std::string>();
            }
            fragments_->assign(body);
        } else {
            fragments_->append(body);
            if (fin) {
                in_message_ = false;
                release_pending_ = true;
                return deliver(message_kind_, message_compressed_, *fragments_, pos, end);
            }
        }
        pos = end;
    }
}

}  // namespace hearth::net::ws
