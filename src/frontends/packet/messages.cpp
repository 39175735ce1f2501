#include "frontends/packet/messages.hpp"
#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>
#include <type_traits>

namespace hearth::packet {

std::string_view opcode_name(std::uint16_t opcode) noexcept {
    switch (static_cast<Opcode>(opcode)) {
        case Opcode::kAlive:
            return "alive_or_error";
        case Opcode::kLogout:
            return "logout";
        case Opcode::kLogin:
            return "login";
        case Opcode::kCharacterList:
            return "character_list";
        case Opcode::kCreateCharacter:
            return "create_character";
        case Opcode::kDeleteCharacter:
            return "delete_character";
        case Opcode::kSelectCharacter:
            return "select_character";
        case Opcode::kChangeMap:
            return "change_map";
        case Opcode::kEnterWorld:
            return "enter_world";
        case Opcode::kMove:
            return "move";
        case Opcode::kCorrection:
            return "correction";
        case Opcode::kWorldUpdate:
            return "world_update";
        case Opcode::kTargetHp:
            return "target_hp";
        case Opcode::kAttack:
            return "attack";
        case Opcode::kHpUpdate:
            return "hp_update";
        case Opcode::kDeath:
            return "death";
        case Opcode::kRespawn:
            return "respawn";
        case Opcode::kChat:
            return "chat";
        case Opcode::kWhisper:
            return "whisper";
        case Opcode::kNotice:
            return "notice";
        case Opcode::kContinueOnNode:
            return "continue_on_node";
    }
    return "unknown";
}

std::string_view error_text(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::kMalformedPacket:
            return "Malformed packet";
        case ErrorCode::kUnknownOpcode:
            return "Unknown opcode";
        case ErrorCode::kPacketTooLarge:
            return "Packet too large";
        case ErrorCode::kPacketTooSmall:
            return "Packet size below the header";
        case ErrorCode::kNotLoggedIn:
            return "Not logged in";
        case ErrorCode::kAlreadyLoggedIn:
            return "Already logged in";
        case ErrorCode::kBadCredentials:
            return "Invalid credentials";
        case ErrorCode::kExpiredToken:
            return "Token expired";
        case ErrorCode::kRefusedTokenKind:
            return "This token is not accepted here";
        case ErrorCode::kThrottled:
            return "Too many failed logins, try again later";
        case ErrorCode::kAccountDisabled:
            return "Account disabled";
        case ErrorCode::kUnavailable:
            return "Service unavailable, try again later";
        case ErrorCode::kNameTaken:
            return "Name already taken";
        case ErrorCode::kNameInvalid:
            return "Invalid name";
        case ErrorCode::kTooManyCharacters:
            return "Too many characters";
        case ErrorCode::kNoSuchCharacter:
            return "No such character";
        case ErrorCode::kNoCharacterSelected:
            return "No character selected";
        case ErrorCode::kNotInWorld:
            return "Not in the world";
        case ErrorCode::kAlreadyInWorld:
            return "Already in the world";
        case ErrorCode::kNoSuchZone:
            return "No such zone";
        case ErrorCode::kNoSuchTarget:
            return "No such target";
        case ErrorCode::kTargetOutOfRange:
            return "Target out of range";
        case ErrorCode::kDead:
            return "Character is dead";
        case ErrorCode::kNotDead:
            return "Character is alive";
        case ErrorCode::kRateLimited:
            return "Rate limited";
        case ErrorCode::kTakenOver:
            return "Logged in from another connection";
        case ErrorCode::kShuttingDown:
            return "Server shutting down";
        case ErrorCode::kIdleTimeout:
            return "Idle timeout";
        case ErrorCode::kInternalError:
            return "Internal error";
        case ErrorCode::kCharacterInUse:
            return "Character is in play on a connection";
        case ErrorCode::kKicked:
            return "Removed from the world by an operator";
    }
    return "unknown error";
}

std::string_view error_name(ErrorCode code) noexcept {
    // Indexed by the code's number: the codes run from 1 without gaps.
    static constexpr std::string_view kNames[] = {
        "malformed_packet",
        "unknown_opcode",
        "packet_too_large",
        "packet_too_small",
        "not_logged_in",
        "already_logged_in",
        "bad_credentials",
        "expired_token",
        "refused_token_kind",
        "throttled",
        "account_disabled",
        "unavailable",
        "name_taken",
        "name_invalid",
        "too_many_characters",
        "no_such_character",
        "no_character_selected",
        "not_in_world",
        "already_in_world",
        "no_such_zone",
        "no_such_target",
        "target_out_of_range",
        "dead",
        "not_dead",
        "rate_limited",
        "taken_over",
        "shutting_down",
        "idle_timeout",
        "internal_error",
        "character_in_use",
        "kicked",
    };
    const auto i = static_cast<std::size_t>(code);
    return i >= 1 && i <= std::size(kNames) ? kNames[i - 1] : std::string_view("unknown");
}

bool MoveIntent::operator==(const MoveIntent& o) const {
    return seq == o.seq && count == o.count &&
           std::equal(points.begin(), points.begin() + std::min<std::size_t>(count, kMaxPathPoints),
                      o.points.begin());
}

// ---- batches --------------------------------------------------------------------------------

namespace {

constexpr std::uint8_t kMoreFlag = 0x01;

enum class CountWidth : std::uint8_t { kU8, kU16 };

// Writes a count, then entries of `v` from `next` on while the packet stays within `limit` bytes
// of the output (an entry that crosses it is taken back and waits for the next packet); advances
// `next`. Returns how many it wrote.
template <class T>
std::size_t fill(Writer& w, const std::vector<T>& v, std::size_t& next, CountWidth width,
                 std::size_t max_count, std::size_t limit) {
    const std::size_t count_at = w.position();
    if (width == CountWidth::kU8) {
        w.u8(0);
    } else {
        w.u16(0);
    }
    std::size_t n = 0;
    for (; next < v.size() && n < max_count && w.ok(); ++next, ++n) {
        const std::size_t before = w.position();
        if constexpr (std::is_arithmetic_v<T>) {
            w(v[next]);
        } else {
            T::fields(w, v[next]);
        }
        if (w.position() > limit) {
            w.out().resize(before);
            break;
        }
    }
    if (width == CountWidth::kU8) {
        w.patch_u8(count_at, static_cast<std::uint8_t>(n));
    } else {
        w.patch_u16(count_at, static_cast<std::uint16_t>(n));
    }
    return n;
}

// Stores `v` little-endian at `p`.
inline void store_u32(char* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, sizeof v);
    } else {
        p[0] = static_cast<char>(v & 0xFF);
        p[1] = static_cast<char>((v >> 8) & 0xFF);
        p[2] = static_cast<char>((v >> 16) & 0xFF);
        p[3] = static_cast<char>(v >> 24);
    }
}

// Stores a float's bits; returns them or'ed into a mask whose exponent bits are all set only
// for a value that is not finite (NaN, an infinity), checked once per batch of entries.
inline std::uint32_t store_f32(char* p, float v) noexcept {
    const auto bits = std::bit_cast<std::uint32_t>(v);
    store_u32(p, bits);
    return bits;
}

constexpr std::uint32_t kExponentBits = 0x7F800000;

struct MoveBytes {
    static constexpr std::size_t kSize = 20;
    // Returns false for a coordinate or heading that is not finite (as Writer::f32 refuses).
    static bool put(char* p, const EntityMove& m) noexcept {
        store_u32(p, m.entity);
        const std::uint32_t x = store_f32(p + 4, m.at.x);
        const std::uint32_t y = store_f32(p + 8, m.at.y);
        const std::uint32_t z = store_f32(p + 12, m.at.z);
        const std::uint32_t h = store_f32(p + 16, m.heading);
        return (x & kExponentBits) != kExponentBits && (y & kExponentBits) != kExponentBits &&
               (z & kExponentBits) != kExponentBits && (h & kExponentBits) != kExponentBits;
    }
};

struct DespawnBytes {
    static constexpr std::size_t kSize = 4;
    static bool put(char* p, std::uint32_t entity) noexcept {
        store_u32(p, entity);
        return true;
    }
};

// `fill` for entries of a fixed size (Bytes::kSize, the sum of their fields' sizes), with the
// same bytes: as many as the packet has room for are stored at once into bytes sized up front,
// rather than field by field through the Writer, each field an append with its own capacity
// check (15 ns a move, half of a busy zone's tick).
template <class Bytes, class T>
std::size_t fill_fixed(Writer& w, const std::vector<T>& v, std::size_t& next, std::size_t limit) {
    if (!w.ok()) {
        w.u16(0);
        return 0;
    }
    std::string& out = w.out();
    const std::size_t count_at = out.size();
    out.append(2, '\0');
    const std::size_t at = out.size();
    const std::size_t room = limit > at ? (limit - at) / Bytes::kSize : 0;
    const std::size_t n = std::min({v.size() - next, room, std::size_t{0xFFFF}});
    out.resize(at + n * Bytes::kSize);
    char* p = out.data() + at;
    bool ok = true;
    for (std::size_t k = 0; k < n; ++k, p += Bytes::kSize) {
        ok &= Bytes::put(p, v[next + k]);
    }
    next += n;
    if (!ok) {
        w.fail(WireError::kBadValue);
    }
    w.patch_u16(count_at, static_cast<std::uint16_t>(n));
    return n;
}

// Sets the `more` flag and the size of a batch's packet. On an error the whole batch (from
// `batch_start`) is removed. An entry too large for an empty packet can never be sent, so that is
// an error rather than an endless batch.
WireError close_batch_packet(Writer& w, std::size_t batch_start, std::size_t start,
                             std::size_t flags_at, bool more, std::size_t entries,
                             std::size_t max_packet_bytes) {
    if (w.ok() && more && entries == 0) {
        w.fail(WireError::kTooLarge);
    }
    w.patch_u8(flags_at, more ? kMoreFlag : 0);
    const WireError e = finish_packet(w, start, max_packet_bytes);
    if (e != WireError::kNone) {
        w.out().resize(batch_start);
    }
    return e;
}

}  // namespace

WireError encode_batched(std::string& out, const WorldUpdate& update,
                         std::size_t max_packet_bytes) {
    max_packet_bytes = std::min(max_packet_bytes, kLargestMaxPacketBytes);
    const std::size_t batch_start = out.size();
    std::size_t d = 0;
    std::size_t s = 0;
    std::size_t m = 0;
    for (;;) {
        Writer w(out);
        // The header (its size set by finish_packet), the tick and the flags in one append: a
        // busy zone encodes an update per character per tick, most of them a few entries.
        const std::size_t start = out.size();
        constexpr auto kType = static_cast<std::uint16_t>(Opcode::kWorldUpdate);
        char head[kHeaderBytes + 5] = {0, 0, static_cast<char>(kType & 0xFF),
                                       static_cast<char>(kType >> 8)};
        store_u32(head + kHeaderBytes, update.tick);
        out.append(head, sizeof head);
        const std::size_t limit = start + max_packet_bytes;
        const std::size_t flags_at = start + kHeaderBytes + 4;
        // Each list leaves room for the counts of the lists after it (2 bytes each).
        std::size_t n = fill_fixed<DespawnBytes>(w, update.despawns, d, limit - 4);
        n += fill(w, update.spawns, s, CountWidth::kU16, 0xFFFF, limit - 2);
        n += fill_fixed<MoveBytes>(w, update.moves, m, limit);
        const bool more =
            d < update.despawns.size() || s < update.spawns.size() || m < update.moves.size();
        const WireError e =
            close_batch_packet(w, batch_start, start, flags_at, more, n, max_packet_bytes);
        if (e != WireError::kNone || !more) {
            return e;
        }
    }
}

WireError encode_batched(std::string& out, const CharacterList& list,
                         std::size_t max_packet_bytes) {
    max_packet_bytes = std::min(max_packet_bytes, kLargestMaxPacketBytes);
    const std::size_t batch_start = out.size();
    std::size_t i = 0;
    for (;;) {
        Writer w(out);
        const std::size_t start =
            begin_packet(out, static_cast<std::uint16_t>(Opcode::kCharacterList));
        const std::size_t flags_at = w.position();
        w.u8(0);
        const std::size_t n = fill(w, list.characters, i, CountWidth::kU8, kMaxCharactersPerPacket,
                                   start + max_packet_bytes);
        const bool more = i < list.characters.size();
        const WireError e =
            close_batch_packet(w, batch_start, start, flags_at, more, n, max_packet_bytes);
        if (e != WireError::kNone || !more) {
            return e;
        }
    }
}

}  // namespace hearth::packet
