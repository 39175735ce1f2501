#pragma once

// The Homestead gateway's wire format (docs/protocol/homestead.md), with no I/O: the handshake and
// the chat messages parsed and validated the way the original Go gateway's encoding/json reads
// them, and every server frame encoded byte for byte the way its encoder writes them.
//
// Why a JSON reader of its own rather than Boost.JSON: what the original's clients may rely on is
// Go's behaviour, and Boost.JSON differs from it where that shows on the wire. `meta` is forwarded
// "as it was sent" (Go's json.RawMessage: compacted, numbers and escapes untouched), which needs
// the value's source bytes, and Boost.JSON keeps none; Go matches keys case-insensitively, keeps
// the last of duplicate keys, reads `null` as "absent", accepts invalid UTF-8 inside strings
// (replacing it with U+FFFD) and allows 10,000 levels of nesting. The reader is iterative, so no
// input can exhaust an io thread's stack. Writing is by hand too: Boost.JSON's serializer does not
// escape `<`, `>`, `&`, U+2028 and U+2029 as Go does.
//
// Thread-safety: free functions without shared state.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace hearth::frontends::homestead {

/// Which side a connection is: a game-server mod or the (one) bot.
enum class Kind : std::uint8_t { kMod, kBot };

/// "mod" or "bot", as the protocol writes it.
std::string_view kind_name(Kind kind) noexcept;

/// A successful handshake.
struct Handshake {
    Kind kind = Kind::kMod;
    std::string server_id;   // mod
    std::string channel_id;  // mod
    std::string bot_id;      // bot
};

/// Why a handshake was refused; each has its error frame (`handshake_error_frame`).
enum class HandshakeError : std::uint8_t {
    kMalformed,     // not JSON, not an object, wrong types, or no `data`
    kMalformedMod,  // type "mod" without server_id or channel_id
    kMalformedBot,  // type "bot" without bot_id
    kUnknown,       // any other type
};

/// Parses the first message of a connection.
std::variant<Handshake, HandshakeError> parse_handshake(std::string_view text);

/// A chat message that passed validation, normalised for forwarding.
struct Message {
    std::string msg_id;
    std::string channel_id;  // a mod's destination.channel_id, a bot's id
    std::string author_id;
    std::string author_name;  // "" when absent
    std::string content;
    std::string meta;  // the JSON object as sent, compacted and Go-escaped; "{}" when absent
    std::string ts;    // as sent (a valid RFC 3339 time); empty when absent
};

/// Parses and validates a message from a connection that completed `handshake`; nullopt when it is
/// malformed (the sender gets `kMalformedMessage`).
std::optional<Message> parse_message(const Handshake& handshake, std::string_view text);

/// The first value of `key` in a raw URL query, decoded as Go's url.Values.Get reads it ('+' is a
/// space, %XX escapes; a pair with a bad escape or a ';' is skipped). nullopt when absent.
std::optional<std::string> query_value(std::string_view query, std::string_view key);

// ---- encoding -----------------------------------------------------------------------------------

/// Appends `s` as a JSON string the way Go's encoding/json writes it (HTML-safe): `"` and `\`
/// escaped, \b \f \n \r \t, other control characters as \u00XX, `<` `>` `&` as \u003c \u003e
/// \u0026, U+2028 and U+2029 as \u2028 \u2029, and each byte that is not part of valid UTF-8 as
/// \ufffd.
void append_json_string(std::string& out, std::string_view s);

/// Compacts a JSON value (whitespace between tokens removed) as Go's encoder writes a
/// json.RawMessage: string contents kept as sent except `<` `>` `&` U+2028 U+2029 (escaped) and
/// invalid UTF-8 (\ufffd, so that the frame stays valid text). `json` must be valid JSON.
std::string compact_json(std::string_view json);

/// Go's RFC3339Nano in UTC: 2025-12-08T10:30:00.1Z (trailing zeros of the fraction trimmed, no
/// fraction when it is zero).
std::string format_time(std::chrono::system_clock::time_point t);

/// Whether `s` is a time Go's time.Parse(time.RFC3339, s) accepts: YYYY-MM-DDTHH:MM:SS, an
/// optional fraction ('.' or ',' and digits), then Z or +hh:mm / -hh:mm, every field in range.
bool valid_rfc3339(std::string_view s) noexcept;

/// `{"code":N,"message":"..."}` and a newline: an error frame.
std::string encode_error(int code, std::string_view message);
/// `{"status":"...","type":"mod|bot"}` and a newline: the handshake reply and the acks.
std::string encode_status(std::string_view status, Kind kind);

/// The message as its recipient receives it, up to and without `forwarded_at`: stored in the
/// mailbox as it is (so a queued message needs no re-encoding) and completed by `finish_forward`
/// when it is written. `received_at` is also `ts` when the sender gave none.
std::string encode_forward_prefix(Kind sender, const Message& message,
                                  std::chrono::system_clock::time_point received_at);
/// Completes a prefix: `,"forwarded_at":"..."}` and a newline.
std::string finish_forward(std::string_view prefix, std::chrono::system_clock::time_point now);
/// Whether a mailbox body is a prefix this version wrote (a corrupt or foreign body is dropped).
bool valid_forward_prefix(std::string_view body) noexcept;

// The fixed frames of the protocol, byte for byte (each ends in a newline).
inline constexpr std::string_view kMalformedHandshake =
    "{\"code\":400,\"message\":\"Malformed handshake.\"}\n";
inline constexpr std::string_view kMalformedModHandshake =
    "{\"code\":400,\"message\":\"Malformed mod handshake.\"}\n";
inline constexpr std::string_view kMalformedBotHandshake =
    "{\"code\":400,\"message\":\"Malformed bot handshake.\"}\n";
inline constexpr std::string_view kUnknownHandshake =
    "{\"code\":400,\"message\":\"Unknown handshake.\"}\n";
inline constexpr std::string_view kBotAlreadyConnected =
    "{\"code\":409,\"message\":\"Bot already connected.\"}\n";
inline constexpr std::string_view kMalformedMessage =
    "{\"code\":400,\"message\":\"Malformed message.\"}\n";
inline constexpr std::string_view kInvalidApiKey =
    "{\"code\":401,\"message\":\"Invalid API key.\"}\n";
inline constexpr std::string_view kHealthy = "{\"status\":\"healthy\"}\n";

/// The close that follows a refused handshake and ends a replaced mod.
inline constexpr std::uint16_t kCloseCode = 1000;
inline constexpr std::string_view kCloseReason = "Disconnecting.";

std::string_view handshake_error_frame(HandshakeError error) noexcept;

}  // namespace hearth::frontends::homestead
