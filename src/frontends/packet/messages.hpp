#pragma once

// The messages of the game packet protocol (docs/protocol/packets.md): the opcodes, the error
// codes, and one struct per message. Each struct lists its fields once, in wire order, in a static
// `fields(io, self)`: called with codec.hpp's Writer it writes them, with its Reader it reads them,
// so reading and writing cannot disagree. Every message can be encoded and decoded whatever its
// direction: the server decodes what clients send and encodes what it sends, the client library
// (clients/cpp) the reverse, and the tests both.
//
// Only the standard library (see codec.hpp). Strings of a decoded message are views into the
// packet's payload: copy what must outlive it.
//
// Evolution: a message may grow new fields at its end; a reader ignores bytes after the fields it
// knows, so an older peer reads a newer message. Enumerations a server sends (error codes, kinds,
// reasons) may grow new values: clients keep an unknown value as its number. Enumerations a client
// sends are checked (an unknown value is kMalformedPacket, detail kBadValue).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "frontends/packet/codec.hpp"

namespace hearth::packet {

// ---- opcodes --------------------------------------------------------------------------------
// ROSE's ids where the meaning matches; Hearth's own from 0x1000, outside ROSE's range
// (0x0700-0x07FF), so that no Hearth id means something else to a ROSE tool. A request and its
// answer share an id, as in ROSE: the direction tells them apart.

enum class Opcode : std::uint16_t {
    kAlive = 0x0700,  // client: keep-alive; server: an error (same id, as ROSE)
    kLogout = 0x0707,
    kLogin = 0x0708,
    kCharacterList = 0x0712,
    kCreateCharacter = 0x0713,
    kDeleteCharacter = 0x0714,
    kSelectCharacter = 0x0715,
    kChangeMap = 0x0753,
    kEnterWorld = 0x1000,
    kMove = 0x1001,
    kCorrection = 0x1002,
    kWorldUpdate = 0x1003,
    kTargetHp = 0x1004,
    kAttack = 0x1005,
    kHpUpdate = 0x1006,
    kDeath = 0x1007,
    kRespawn = 0x1008,
    kChat = 0x1100,
    kWhisper = 0x1101,
    kNotice = 0x1F00,
    kContinueOnNode = 0x1F01,  // reserved for the cluster: defined, not sent yet
};

/// "login", "world_update", ...; "unknown" for any other id.
std::string_view opcode_name(std::uint16_t opcode) noexcept;

enum class Direction : std::uint8_t { kToServer, kToClient };

// ---- field bounds (bytes of UTF-8, entries) ---------------------------------------------------
// Bounds of the wire, not of the game: the modules validate their own, narrower rules (a
// character name's characters, the configured maximum of characters) and answer with an error.

inline constexpr std::size_t kMaxUsernameBytes = 64;
inline constexpr std::size_t kMaxSecretBytes = 512;  // a password or a token
inline constexpr std::size_t kMaxAccountNameBytes = 64;
inline constexpr std::size_t kMaxCharacterNameBytes = 32;
inline constexpr std::size_t kMaxZoneNameBytes = 64;
inline constexpr std::size_t kMaxChatBytes = 256;
inline constexpr std::size_t kMaxErrorMessageBytes = 256;
inline constexpr std::size_t kMaxNoticeBytes = 512;
inline constexpr std::size_t kMaxHostBytes = 255;
inline constexpr std::size_t kMaxNodeTokenBytes = 128;
inline constexpr std::size_t kMaxPathPoints = 16;
inline constexpr std::size_t kMaxInventorySlots = 48;
inline constexpr std::size_t kMaxCharactersPerPacket = 255;

// ---- error codes ------------------------------------------------------------------------------

/// The `code` of an Error packet (0x0700, server to client). Stable numbers; each has a default
/// message (`error_text`) and a documented meaning and `detail` (docs/protocol/packets.md).
enum class ErrorCode : std::uint16_t {
    kMalformedPacket = 1,       // a payload that does not decode; detail: the WireError
    kUnknownOpcode = 2,         // no such client message
    kPacketTooLarge = 3,        // size field above the maximum; detail: the size; closes
    kPacketTooSmall = 4,        // size field below 6; detail: the size; closes
    kNotLoggedIn = 5,           // a packet that needs a login before it
    kAlreadyLoggedIn = 6,       // a second login on one connection
    kBadCredentials = 7,        // unknown user, wrong password, unknown or revoked token
    kExpiredToken = 8,          // a token that expired
    kRefusedTokenKind = 9,      // a valid token this door does not take (scope, role, kind)
    kThrottled = 10,            // too many failed logins; detail: seconds to wait
    kAccountDisabled = 11,      // the account is disabled
    kUnavailable = 12,          // credentials or characters cannot be checked now; try again
    kNameTaken = 13,            // a character name in use or reserved after a deletion
    kNameInvalid = 14,          // detail: the NameProblem
    kTooManyCharacters = 15,    // detail: the maximum per account
    kNoSuchCharacter = 16,      // not a character of this account
    kNoCharacterSelected = 17,  // a world packet before select
    kNotInWorld = 18,           // a world packet before enter world
    kAlreadyInWorld = 19,       // enter world twice
    kNoSuchZone = 20,           // detail: the zone id asked for
    kNoSuchTarget = 21,         // an entity not in view, or a whisper to no one online
    kTargetOutOfRange = 22,     // attack from too far
    kDead = 23,                 // the character is dead: respawn first
    kNotDead = 24,              // respawn while alive
    kRateLimited = 25,          // packets above the connection's rate
    kTakenOver = 26,            // another connection took this character or account; closes
    kShuttingDown = 27,         // the server stops; closes
    kIdleTimeout = 28,          // nothing received for the idle timeout; closes
    kInternalError = 29,        // the server failed; the request had no effect
    kCharacterInUse = 30,       // a delete of a character selected on a connection
    kKicked = 31,               // an operator took the character out of the world; closes
};
/// The highest code this version knows (the codes run from 1 without gaps).
inline constexpr ErrorCode kLastErrorCode = ErrorCode::kKicked;

/// The default English message of `code`; "unknown error" for a value this version does not know.
std::string_view error_text(ErrorCode code) noexcept;
/// The code's name as docs/protocol/packets.md spells it ("bad_credentials"), for logs and metric
/// labels; "unknown" for a value this version does not know.
std::string_view error_name(ErrorCode code) noexcept;

/// The `detail` of kUnavailable.
enum class Unavailable : std::uint32_t {
    kTryAgain = 0,   // busy or stopping: try again shortly
    kNotServed = 1,  // not served by this server (a module disabled, the world not built yet)
};

/// The `detail` of kNameInvalid.
enum class NameProblem : std::uint32_t {
    kTooShort = 1,
    kTooLong = 2,
    kBadCharacter = 3,  // a character outside the allowed set
    kReserved = 4,      // a reserved word
    kBadSpacing = 5,    // leading, trailing or repeated spaces
};

// ---- shared field groups ----------------------------------------------------------------------

struct Looks {
    std::uint8_t body = 0;
    std::uint8_t face = 0;
    std::uint8_t hair = 0;
    std::uint8_t hair_color = 0;
    bool operator==(const Looks&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.body);
        io(s.face);
        io(s.hair);
        io(s.hair_color);
    }
};

struct Vec3 {
    float x = 0;
    float y = 0;
    float z = 0;
    bool operator==(const Vec3&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.x);
        io(s.y);
        io(s.z);
    }
};

/// Where a character stands: zone, position, heading (radians).
struct Position {
    std::uint32_t zone = 0;
    Vec3 at;
    float heading = 0;
    bool operator==(const Position&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.zone);
        Vec3::fields(io, s.at);
        io(s.heading);
    }
};

struct Stats {
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    std::uint32_t mp = 0;
    std::uint32_t max_mp = 0;
    std::uint16_t strength = 0;
    std::uint16_t dexterity = 0;
    std::uint16_t intelligence = 0;
    std::uint16_t vitality = 0;
    bool operator==(const Stats&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.hp);
        io(s.max_hp);
        io(s.mp);
        io(s.max_mp);
        io(s.strength);
        io(s.dexterity);
        io(s.intelligence);
        io(s.vitality);
    }
};

struct InventorySlot {
    std::uint16_t slot = 0;
    std::uint32_t item = 0;
    std::uint32_t count = 0;
    bool operator==(const InventorySlot&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.slot);
        io(s.item);
        io(s.count);
    }
};

/// A character in the list.
struct CharacterSummary {
    std::uint64_t id = 0;
    std::string_view name;
    std::uint16_t level = 0;
    Looks looks;
    std::uint32_t zone = 0;
    bool operator==(const CharacterSummary&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.id);
        io(s.name, kMaxCharacterNameBytes);
        io(s.level);
        Looks::fields(io, s.looks);
        io(s.zone);
    }
};

/// What a client needs to show a zone and its own character in it.
struct ZoneEntry {
    std::uint32_t zone = 0;
    std::string_view zone_name;
    float width = 0;  // the zone spans [0, width) x [0, height)
    float height = 0;
    std::uint32_t entity = 0;  // the character's own entity id in the zone
    Vec3 at;
    float heading = 0;
    std::uint16_t tick_hz = 0;
    float view_radius = 0;
    float max_speed = 0;  // units per second the server accepts
    bool operator==(const ZoneEntry&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.zone);
        io(s.zone_name, kMaxZoneNameBytes);
        io(s.width);
        io(s.height);
        io(s.entity);
        Vec3::fields(io, s.at);
        io(s.heading);
        io(s.tick_hz);
        io(s.view_radius);
        io(s.max_speed);
    }
};

enum class EntityKind : std::uint8_t { kPlayer = 1, kNpc = 2 };

struct EntitySpawn {
    std::uint32_t entity = 0;
    EntityKind kind = EntityKind::kPlayer;
    std::uint32_t model = 0;  // an NPC's kind; 0 for players
    std::string_view name;
    std::uint16_t level = 0;
    Vec3 at;
    float heading = 0;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    Looks looks;
    bool operator==(const EntitySpawn&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        io(s.kind);
        io(s.model);
        io(s.name, kMaxCharacterNameBytes);
        io(s.level);
        Vec3::fields(io, s.at);
        io(s.heading);
        io(s.hp);
        io(s.max_hp);
        Looks::fields(io, s.looks);
    }
};

struct EntityMove {
    std::uint32_t entity = 0;
    Vec3 at;
    float heading = 0;
    bool operator==(const EntityMove&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        Vec3::fields(io, s.at);
        io(s.heading);
    }
};

// ---- client to server ---------------------------------------------------------------------------

/// Keep-alive: any packet resets the idle timer; this one does nothing else. No answer.
struct Alive {
    static constexpr Opcode kOpcode = Opcode::kAlive;
    static constexpr Direction kDirection = Direction::kToServer;
    bool operator==(const Alive&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

struct LogoutRequest {
    static constexpr Opcode kOpcode = Opcode::kLogout;
    static constexpr Direction kDirection = Direction::kToServer;
    bool operator==(const LogoutRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

enum class LoginMethod : std::uint8_t {
    kPassword = 0,  // username and password
    kToken = 1,     // secret: a Hearth session, an API key or an external session; username empty
    kTransfer = 2,  // reserved (cluster): secret is a ContinueOnNode token
};

struct LoginRequest {
    static constexpr Opcode kOpcode = Opcode::kLogin;
    static constexpr Direction kDirection = Direction::kToServer;
    LoginMethod method = LoginMethod::kPassword;
    std::string_view username;
    std::string_view secret;
    bool operator==(const LoginRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.method);
        if (s.method > LoginMethod::kTransfer) {
            io.fail(WireError::kBadValue);
        }
        io(s.username, kMaxUsernameBytes);
        io(s.secret, kMaxSecretBytes);
    }
};

struct CharacterListRequest {
    static constexpr Opcode kOpcode = Opcode::kCharacterList;
    static constexpr Direction kDirection = Direction::kToServer;
    bool operator==(const CharacterListRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

struct CreateCharacterRequest {
    static constexpr Opcode kOpcode = Opcode::kCreateCharacter;
    static constexpr Direction kDirection = Direction::kToServer;
    std::string_view name;
    Looks looks;
    bool operator==(const CreateCharacterRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.name, kMaxCharacterNameBytes);
        Looks::fields(io, s.looks);
    }
};

struct DeleteCharacterRequest {
    static constexpr Opcode kOpcode = Opcode::kDeleteCharacter;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint64_t character_id = 0;
    bool operator==(const DeleteCharacterRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.character_id);
    }
};

struct SelectCharacterRequest {
    static constexpr Opcode kOpcode = Opcode::kSelectCharacter;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint64_t character_id = 0;
    bool operator==(const SelectCharacterRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.character_id);
    }
};

/// Enter the selected character's zone at its saved position.
struct EnterWorldRequest {
    static constexpr Opcode kOpcode = Opcode::kEnterWorld;
    static constexpr Direction kDirection = Direction::kToServer;
    bool operator==(const EnterWorldRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

struct ChangeMapRequest {
    static constexpr Opcode kOpcode = Opcode::kChangeMap;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint32_t zone = 0;
    bool operator==(const ChangeMapRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.zone);
    }
};

/// The positions the character means to walk through, in order; the server checks each step.
struct MoveIntent {
    static constexpr Opcode kOpcode = Opcode::kMove;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint32_t seq = 0;                      // echoed by a Correction
    std::uint8_t count = 0;                     // points used, 1 to kMaxPathPoints
    std::array<Vec3, kMaxPathPoints> points{};  // fixed storage: decoding allocates nothing
    bool operator==(const MoveIntent& o) const;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.seq);
        io.count8(s.count, kMaxPathPoints);
        if (s.count == 0) {
            io.fail(WireError::kBadValue);
        }
        for (std::size_t i = 0; i < s.count && i < kMaxPathPoints; ++i) {
            Vec3::fields(io, s.points[i]);
        }
    }
};

struct TargetHpRequest {
    static constexpr Opcode kOpcode = Opcode::kTargetHp;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint32_t entity = 0;
    bool operator==(const TargetHpRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
    }
};

struct AttackRequest {
    static constexpr Opcode kOpcode = Opcode::kAttack;
    static constexpr Direction kDirection = Direction::kToServer;
    std::uint32_t target = 0;
    bool operator==(const AttackRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.target);
    }
};

struct RespawnRequest {
    static constexpr Opcode kOpcode = Opcode::kRespawn;
    static constexpr Direction kDirection = Direction::kToServer;
    bool operator==(const RespawnRequest&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

enum class ChatChannel : std::uint8_t { kLocal = 0, kZone = 1 };

struct ChatSend {
    static constexpr Opcode kOpcode = Opcode::kChat;
    static constexpr Direction kDirection = Direction::kToServer;
    ChatChannel channel = ChatChannel::kLocal;
    std::string_view text;
    bool operator==(const ChatSend&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.channel);
        if (s.channel > ChatChannel::kZone) {
            io.fail(WireError::kBadValue);
        }
        io(s.text, kMaxChatBytes);
    }
};

struct WhisperSend {
    static constexpr Opcode kOpcode = Opcode::kWhisper;
    static constexpr Direction kDirection = Direction::kToServer;
    std::string_view to;  // a character name
    std::string_view text;
    bool operator==(const WhisperSend&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.to, kMaxCharacterNameBytes);
        io(s.text, kMaxChatBytes);
    }
};

// ---- server to client ---------------------------------------------------------------------------

struct Error {
    static constexpr Opcode kOpcode = Opcode::kAlive;
    static constexpr Direction kDirection = Direction::kToClient;
    ErrorCode code = ErrorCode::kInternalError;
    std::uint16_t opcode = 0;  // the packet it answers; 0 when none (idle timeout, takeover, ...)
    std::uint32_t detail = 0;  // per code: see ErrorCode
    std::string_view message;  // English, for people; clients decide on `code`
    bool operator==(const Error&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.code);
        io(s.opcode);
        io(s.detail);
        io(s.message, kMaxErrorMessageBytes);
    }
};

/// The position is saved; the server closes the connection after this.
struct LogoutReply {
    static constexpr Opcode kOpcode = Opcode::kLogout;
    static constexpr Direction kDirection = Direction::kToClient;
    bool operator==(const LogoutReply&) const = default;
    template <class Io, class Self>
    static void fields(Io&, Self&) {}
};

struct LoginReply {
    static constexpr Opcode kOpcode = Opcode::kLogin;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint64_t account_id = 0;
    std::string_view account_name;
    std::uint16_t max_packet_bytes = 0;  // the largest packet the server accepts
    std::uint16_t idle_timeout_s = 0;    // silence after which it closes: send Alive before
    bool operator==(const LoginReply&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.account_id);
        io(s.account_name, kMaxAccountNameBytes);
        io(s.max_packet_bytes);
        io(s.idle_timeout_s);
    }
};

/// One packet of the character list; `more` is set on every packet but the last (a batch).
struct CharacterList {
    static constexpr Opcode kOpcode = Opcode::kCharacterList;
    static constexpr Direction kDirection = Direction::kToClient;
    bool more = false;
    std::vector<CharacterSummary> characters;
    bool operator==(const CharacterList&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io.flags(s.more);
        io.list8(s.characters, kMaxCharactersPerPacket);
    }
};

struct CharacterCreated {
    static constexpr Opcode kOpcode = Opcode::kCreateCharacter;
    static constexpr Direction kDirection = Direction::kToClient;
    CharacterSummary character;
    bool operator==(const CharacterCreated&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        CharacterSummary::fields(io, s.character);
    }
};

struct CharacterDeleted {
    static constexpr Opcode kOpcode = Opcode::kDeleteCharacter;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint64_t character_id = 0;
    bool operator==(const CharacterDeleted&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.character_id);
    }
};

struct CharacterSelected {
    static constexpr Opcode kOpcode = Opcode::kSelectCharacter;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint64_t id = 0;
    std::string_view name;
    std::uint16_t level = 0;
    std::uint64_t experience = 0;
    std::uint64_t money = 0;
    Stats stats;
    Looks looks;
    Position position;
    std::vector<InventorySlot> inventory;
    bool operator==(const CharacterSelected&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.id);
        io(s.name, kMaxCharacterNameBytes);
        io(s.level);
        io(s.experience);
        io(s.money);
        Stats::fields(io, s.stats);
        Looks::fields(io, s.looks);
        Position::fields(io, s.position);
        io.list8(s.inventory, kMaxInventorySlots);
    }
};

/// The answer to EnterWorldRequest.
struct WorldEntered {
    static constexpr Opcode kOpcode = Opcode::kEnterWorld;
    static constexpr Direction kDirection = Direction::kToClient;
    ZoneEntry entry;
    bool operator==(const WorldEntered&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        ZoneEntry::fields(io, s.entry);
    }
};

/// The answer to ChangeMapRequest: the character is in the new zone.
struct MapChanged {
    static constexpr Opcode kOpcode = Opcode::kChangeMap;
    static constexpr Direction kDirection = Direction::kToClient;
    ZoneEntry entry;
    bool operator==(const MapChanged&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        ZoneEntry::fields(io, s.entry);
    }
};

enum class CorrectionReason : std::uint8_t {
    kTooFast = 1,
    kOutOfBounds = 2,
    kBlocked = 3,
    kDead = 4,
    kBadPath = 5,  // a path that does not start near the character
};

/// A move was refused: the character is at `at`, not where it meant to go.
struct Correction {
    static constexpr Opcode kOpcode = Opcode::kCorrection;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t seq = 0;  // the MoveIntent refused
    Vec3 at;
    float heading = 0;
    CorrectionReason reason = CorrectionReason::kTooFast;
    bool operator==(const Correction&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.seq);
        Vec3::fields(io, s.at);
        io(s.heading);
        io(s.reason);
    }
};

/// One packet of a tick's changes within view: despawns, then spawns, then moves; an entity is in
/// at most one of the lists of a tick. A tick that does not fit one packet spans several (`more`
/// set on all but the last), each readable alone.
struct WorldUpdate {
    static constexpr Opcode kOpcode = Opcode::kWorldUpdate;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t tick = 0;
    bool more = false;
    std::vector<std::uint32_t> despawns;
    std::vector<EntitySpawn> spawns;
    std::vector<EntityMove> moves;
    bool operator==(const WorldUpdate&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.tick);
        io.flags(s.more);
        io.list16(s.despawns, 0xFFFF);
        io.list16(s.spawns, 0xFFFF);
        io.list16(s.moves, 0xFFFF);
    }
};

struct TargetHp {
    static constexpr Opcode kOpcode = Opcode::kTargetHp;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t entity = 0;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    bool operator==(const TargetHp&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        io(s.hp);
        io(s.max_hp);
    }
};

/// An entity's HP changed (to every viewer); `source` is the attacker's entity, or 0.
struct HpUpdate {
    static constexpr Opcode kOpcode = Opcode::kHpUpdate;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t entity = 0;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    std::uint32_t source = 0;
    bool operator==(const HpUpdate&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        io(s.hp);
        io(s.max_hp);
        io(s.source);
    }
};

struct Death {
    static constexpr Opcode kOpcode = Opcode::kDeath;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t entity = 0;
    std::uint32_t killer = 0;  // 0 when none
    bool operator==(const Death&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        io(s.killer);
    }
};

struct Respawned {
    static constexpr Opcode kOpcode = Opcode::kRespawn;
    static constexpr Direction kDirection = Direction::kToClient;
    std::uint32_t entity = 0;
    Vec3 at;
    float heading = 0;
    std::uint32_t hp = 0;
    std::uint32_t max_hp = 0;
    bool operator==(const Respawned&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.entity);
        Vec3::fields(io, s.at);
        io(s.heading);
        io(s.hp);
        io(s.max_hp);
    }
};

struct ChatMessage {
    static constexpr Opcode kOpcode = Opcode::kChat;
    static constexpr Direction kDirection = Direction::kToClient;
    ChatChannel channel = ChatChannel::kLocal;
    std::uint32_t from_entity = 0;
    std::string_view from;  // the sender's character name
    std::string_view text;
    bool operator==(const ChatMessage&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.channel);
        io(s.from_entity);
        io(s.from, kMaxCharacterNameBytes);
        io(s.text, kMaxChatBytes);
    }
};

enum class WhisperDirection : std::uint8_t { kReceived = 0, kSent = 1 };

/// A whisper received, or the sender's copy of one delivered.
struct WhisperMessage {
    static constexpr Opcode kOpcode = Opcode::kWhisper;
    static constexpr Direction kDirection = Direction::kToClient;
    WhisperDirection direction = WhisperDirection::kReceived;
    std::string_view peer;  // the other character's name
    std::string_view text;
    bool operator==(const WhisperMessage&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.direction);
        io(s.peer, kMaxCharacterNameBytes);
        io(s.text, kMaxChatBytes);
    }
};

enum class NoticeKind : std::uint8_t { kInfo = 0, kWarning = 1, kShutdown = 2 };

/// An operator's notice (to a zone, or to everyone).
struct Notice {
    static constexpr Opcode kOpcode = Opcode::kNotice;
    static constexpr Direction kDirection = Direction::kToClient;
    NoticeKind kind = NoticeKind::kInfo;
    std::string_view text;
    bool operator==(const Notice&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.kind);
        io(s.text, kMaxNoticeBytes);
    }
};

/// RESERVED for the cluster: connect to host:port and log in with LoginMethod::kTransfer and this
/// one-time token, which carries the account and the character; the server closes this
/// connection after sending it. Not sent by this version.
struct ContinueOnNode {
    static constexpr Opcode kOpcode = Opcode::kContinueOnNode;
    static constexpr Direction kDirection = Direction::kToClient;
    std::string_view host;
    std::uint16_t port = 0;
    std::string_view token;
    std::uint32_t expires_in_s = 0;
    bool operator==(const ContinueOnNode&) const = default;
    template <class Io, class Self>
    static void fields(Io& io, Self& s) {
        io(s.host, kMaxHostBytes);
        io(s.port);
        io(s.token, kMaxNodeTokenBytes);
        io(s.expires_in_s);
    }
};

// ---- the message sets -------------------------------------------------------------------------

using ToServerMessages =
    std::tuple<Alive, LogoutRequest, LoginRequest, CharacterListRequest, CreateCharacterRequest,
               DeleteCharacterRequest, SelectCharacterRequest, ChangeMapRequest, EnterWorldRequest,
               MoveIntent, TargetHpRequest, AttackRequest, RespawnRequest, ChatSend, WhisperSend>;

using ToClientMessages =
    std::tuple<Error, LogoutReply, LoginReply, CharacterList, CharacterCreated, CharacterDeleted,
               CharacterSelected, MapChanged, WorldEntered, Correction, WorldUpdate, TargetHp,
               HpUpdate, Death, Respawned, ChatMessage, WhisperMessage, Notice, ContinueOnNode>;

// ---- encoding and decoding --------------------------------------------------------------------

/// Appends `m` as one packet to `out`. On an error (a field out of its bounds, a packet over
/// `max_packet_bytes`) nothing is appended.
template <class M>
WireError encode(std::string& out, const M& m,
                 std::size_t max_packet_bytes = kDefaultMaxPacketBytes) {
    Writer w(out);
    const std::size_t start = begin_packet(out, static_cast<std::uint16_t>(M::kOpcode));
    M::fields(w, m);
    return finish_packet(w, start, max_packet_bytes);
}

/// Appends a batch as as many packets as it needs, each with as many entries as fit in
/// `max_packet_bytes` and `more` set on all but the last. On an error nothing is appended.
WireError encode_batched(std::string& out, const WorldUpdate& update,
                         std::size_t max_packet_bytes = kDefaultMaxPacketBytes);
WireError encode_batched(std::string& out, const CharacterList& list,
                         std::size_t max_packet_bytes = kDefaultMaxPacketBytes);

template <class M>
struct Decoded {
    M message{};
    WireError error = WireError::kNone;
};

/// Reads a packet's payload as `M` (the packet's type is the caller's business; see dispatch).
template <class M>
Decoded<M> decode(std::string_view payload) {
    Decoded<M> d;
    Reader r(payload);
    M::fields(r, d.message);
    d.error = r.error();
    return d;
}

namespace detail {

template <class... Ms>
constexpr bool unique_opcodes(std::tuple<Ms...>*) {
    const std::uint16_t ids[] = {static_cast<std::uint16_t>(Ms::kOpcode)...};
    for (std::size_t i = 0; i < sizeof...(Ms); ++i) {
        for (std::size_t j = i + 1; j < sizeof...(Ms); ++j) {
            if (ids[i] == ids[j]) {
                return false;
            }
        }
    }
    return true;
}

template <Direction D, class... Ms>
constexpr bool all_to(std::tuple<Ms...>*) {
    return ((Ms::kDirection == D) && ...);
}

template <class... Ms, class F>
WireError dispatch(std::tuple<Ms...>*, const Packet& packet, F& f) {
    WireError result = WireError::kUnknownOpcode;
    const auto one = [&]<class M>(M*) {
        if (packet.type != static_cast<std::uint16_t>(M::kOpcode)) {
            return false;
        }
        Decoded<M> d = decode<M>(packet.payload);
        result = d.error;
        if (d.error == WireError::kNone) {
            f(d.message);
        }
        return true;
    };
    (one(static_cast<Ms*>(nullptr)) || ...);
    return result;
}

}  // namespace detail

static_assert(detail::unique_opcodes(static_cast<ToServerMessages*>(nullptr)));
static_assert(detail::unique_opcodes(static_cast<ToClientMessages*>(nullptr)));
static_assert(detail::all_to<Direction::kToServer>(static_cast<ToServerMessages*>(nullptr)));
static_assert(detail::all_to<Direction::kToClient>(static_cast<ToClientMessages*>(nullptr)));

/// Decodes a packet a client sent and calls `f` with the message (one overload per message type,
/// or a generic lambda). Returns kUnknownOpcode when no client message has that type, the
/// decoding error otherwise (`f` is not called then).
template <class F>
WireError dispatch_to_server(const Packet& packet, F&& f) {
    return detail::dispatch(static_cast<ToServerMessages*>(nullptr), packet, f);
}

/// The same for a packet the server sent.
template <class F>
WireError dispatch_to_client(const Packet& packet, F&& f) {
    return detail::dispatch(static_cast<ToClientMessages*>(nullptr), packet, f);
}

}  // namespace hearth::packet
