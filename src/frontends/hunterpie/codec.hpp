#pragma once

// The HunterPie sync protocol's messages (docs/protocol/hunterpie.md), with no I/O: a client's
// frame parsed into a typed message (read_fields validates it as the original's JSON.parse does),
// the operator notice's request body parsed, and every server message encoded byte for byte as
// the original Node server writes it. Thread-safety: free functions without shared state (but
// read_fields' parser per thread).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace hearth::frontends::hunterpie {

// ---- parsing: a client's frame on /connect -----------------------------------------------------

/// Whether a setsession's or a push's sessionId can name a session.
enum class SessionIdState : std::uint8_t {
    kValid,
    kMissing,  // absent or not a string (setsession: also empty)
    kTooLong,  // over kMaxSessionIdBytes (message.hpp): refused before it is copied
};

/// The text frame "ping": answered "pong".
struct Ping {};
/// setsession: join `session_id` as a leader (`leader`: JSON true only) or a member.
struct SetSession {
    std::string session_id;  // when kValid
    SessionIdState state = SessionIdState::kValid;
    bool leader = false;
};
/// push: the frame goes, unchanged, to session_id's members that are not leaders.
struct Push {
    std::string session_id;  // when kValid (may be empty: no session has that id)
    SessionIdState state = SessionIdState::kValid;
};
/// leavesession: leave, then an empty close frame.
struct LeaveSession {};
/// setname: the connection's new name, when `name` is a string.
struct SetName {
    std::optional<std::string> name;
};
/// Any other type, lowercased: answered encode_unexpected_type(type).
struct OtherType {
    std::string type;
};

/// Why a frame is not a message; each has its fixed answer.
enum class ClientError : std::uint8_t {
    kBinary,   // a binary frame: kUnknownMessage
    kInvalid,  // not JSON, not an object, or no string "type": kInvalidMessage
};

using ClientMessage =
    std::variant<Ping, SetSession, Push, LeaveSession, SetName, OtherType, ClientError>;

/// Parses one frame; `binary`: it came as a binary frame. The type is matched
/// case-insensitively, as the original does.
ClientMessage parse_client_message(bool binary, std::string_view text);

// ---- parsing: the operator notice (POST /api/v1/hunterpie/servermsg) ---------------------------

struct ServermsgRequest {
    std::string text;
    std::string level;                      // trace, debug, info, warn or error
    std::optional<std::string> session_id;  // absent: every connection
};

/// Why a notice's body is refused (400); encode_servermsg_error gives the answer's code and text.
enum class ServermsgError : std::uint8_t {
    kInvalidJson,       // not a JSON object
    kInvalidText,       // "text" absent or not a string
    kInvalidLevel,      // "level" absent, not a string, or not one of the five levels
    kInvalidSessionId,  // "sessionId" present but not a string
};

std::variant<ServermsgRequest, ServermsgError> parse_servermsg_request(std::string_view body);

/// The error code and message of a refused notice, for HttpResponse::error: "invalid_json" or
/// "invalid_field", and the sentence the API answers.
struct ApiError {
    std::string_view code;
    std::string_view message;
};
ApiError servermsg_error(ServermsgError error) noexcept;

// ---- encoding: what the server sends -----------------------------------------------------------

/// {"type":"servermsg","level":L,"text":T}, the strings escaped as JSON.stringify does (`"` `\`
/// and controls; non-ASCII kept as UTF-8).
std::string encode_servermsg(std::string_view level, std::string_view text);
/// {"type":"sessionstate","leaderConnected":B,"playersCount":N}.
std::string encode_sessionstate(bool leader_connected, std::size_t players);
/// The answer to an unknown type: a warn servermsg "unexpected message type <type>!".
std::string encode_unexpected_type(std::string_view type);
/// {"delivered":N}: the operator notice's answer.
std::string encode_delivered(std::size_t delivered);
/// GET /: "Sever is OK!<br>Active sessions: N<br>Active sockets: N<br>Data pushed total: X
/// Bytes<br>Uptime: S.SS sec" (the typo is the original's).
std::string encode_status_page(std::size_t sessions, std::int64_t sockets,
                               std::uint64_t pushed_bytes, std::chrono::duration<double> uptime);

// The original's fixed replies, byte for byte (typos included: clients and bots match on them).
inline constexpr std::string_view kPong = "pong";
inline constexpr std::string_view kUnknownMessage =
    R"({"type":"servermsg","level":"warn","text":"uknown message"})";
inline constexpr std::string_view kEmptySessionId =
    R"({"type":"servermsg","level":"warn","text":"Session id cannot be empty!"})";
/// Hearth's answer to a session id over kMaxSessionIdBytes (a documented bound), in the
/// original's words for an empty one.
inline constexpr std::string_view kLongSessionId =
    R"({"type":"servermsg","level":"warn","text":"Session id cannot be longer than 256 bytes!"})";
/// Hearth's answer where the original crashes or ignores the frame (a documented deviation).
inline constexpr std::string_view kInvalidMessage =
    R"({"type":"servermsg","level":"warn","text":"invalid message"})";
/// GET /version.
inline constexpr std::string_view kVersion = "0.1";

}  // namespace hearth::frontends::hunterpie
