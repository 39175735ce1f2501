#pragma once

// Moonshare's wire details that are not I/O (docs/protocol/moonshare.md): JSON written the way
// the original .NET servers write it (System.Text.Json's default escaping), .NET's TimeSpan and
// round-trip date formats, the plugin's StableHash, a player's messages parsed into typed ones and
// every message the server sends encoded byte for byte. Pure functions: no I/O, any thread.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hearth::frontends::moonshare {

/// Appends `s` (UTF-8) as a JSON string literal, quotes included, escaped as System.Text.Json's
/// default encoder (JavaScriptEncoder.Default) does: `"` `&` `'` `+` `<` `>` and '`' as \uXXXX,
/// `\` as \\, \b \t \n \f \r short, other controls and DEL as \u00XX, every non-ASCII character as
/// \uXXXX (UTF-16, surrogate pairs for astral ones), hex digits upper-case. Invalid UTF-8 becomes
/// \uFFFD per bad byte, as .NET's decoder does for lone bytes.
void append_json_string(std::string& out, std::string_view s);
/// The same, returned.
std::string json_string(std::string_view s);

/// .NET's TimeSpan.ToString() of whole seconds: "hh:mm:ss", with "d." in front when there are
/// days ("1.02:03:04"); negative values get a leading '-'.
std::string timespan(std::chrono::seconds value);

/// .NET's round-trip ("O") form of a UTC DateTime: "2025-07-25T13:10:15.1234567Z" (seven
/// fractional digits).
std::string iso_time(std::chrono::system_clock::time_point t);

/// The plugin's StableHash of a user id: h = 23, then h = h * 31 + c for each UTF-16 code unit c
/// of the id (32-bit wrap-around), then abs(h). For the one value whose abs overflows
/// (h = INT32_MIN, where .NET's Math.Abs throws) the result is 2147483648.
std::uint32_t stable_hash(std::string_view utf8);

/// The player instance the plugin picks for a user id: StableHash(userId) % instances.
inline std::size_t instance_of(std::string_view user_id, std::size_t instances) {
    return instances == 0 ? 0 : stable_hash(user_id) % instances;
}

/// Decodes UTF-8 into UTF-16 code units (invalid bytes become U+FFFD), calling `unit` per unit.
template <class F>
void for_each_utf16(std::string_view s, F&& unit);

/// A compact JSON object written key by key, in the order given, with System.Text.Json's escaping
/// (append_json_string): how every JSON message and body of the protocol is written.
class JsonObject {
public:
    JsonObject& str(std::string_view key, std::string_view value) {
        this->key(key);
        append_json_string(out_, value);
        return *this;
    }
    JsonObject& num(std::string_view key, std::int64_t value) {
        this->key(key);
        out_ += std::to_string(value);
        return *this;
    }
    JsonObject& boolean(std::string_view key, bool value) {
        this->key(key);
        out_ += value ? "true" : "false";
        return *this;
    }
    /// `json_text` must be JSON already (a nested object or array).
    JsonObject& raw(std::string_view key, std::string_view json_text) {
        this->key(key);
        out_ += json_text;
        return *this;
    }
    std::string done() {
        out_ += '}';
        return std::move(out_);
    }

private:
    void key(std::string_view k) {
        out_ += first_ ? "" : ",";
        first_ = false;
        append_json_string(out_, k);
        out_ += ':';
    }
    std::string out_ = "{";
    bool first_ = true;
};

// ---- bounds of the protocol --------------------------------------------------------------------

/// The plugin's receive buffer: server text messages fit in it, unfragmented.
inline constexpr std::size_t kClientBuffer = 8 * 1024;
/// Largest text message a player may send (every protocol message is far smaller).
inline constexpr std::size_t kMaxTextBytes = 64 * 1024;
/// Longest user id accepted anywhere (token requests, session_auth, targets).
inline constexpr std::size_t kMaxUserIdBytes = 256;
/// The relayed file_send_begin carries the name escaped (at most 6 characters per byte): with this
/// bound it stays within the client's 8 KiB receive buffer.
inline constexpr std::size_t kMaxFileNameBytes = 1024;

// ---- the texts, exactly ------------------------------------------------------------------------

inline constexpr std::string_view kAuthOk = "Authentication successful";
inline constexpr std::string_view kMissingToken = "Missing token";
inline constexpr std::string_view kInvalidToken = "Invalid session token";
inline constexpr std::string_view kServerFull = "Server full, please try later";
inline constexpr std::string_view kServerFullReason = "Server full, please try later.";
inline constexpr std::string_view kReceiveReady = "file_receive_ready";
inline constexpr std::string_view kMissingBegin = "FILE_FAILED: Missing file_send_begin parameters";
inline constexpr std::string_view kTooLarge = "FILE_FAILED: File too large";
inline constexpr std::string_view kMissingState = "FILE_FAILED: Missing state for completion";
inline constexpr std::string_view kSizeMismatch = "FILE_FAILED: Size mismatch";
inline constexpr std::string_view kFileSent = "FILE_SENT";
inline constexpr std::string_view kFileSentServerOnly = "FILE_SENT_SERVER_ONLY";
// Hearth's own answers where the original has none (documented deviations).
inline constexpr std::string_view kUploadBusy = "FILE_FAILED: Server busy, please try later";
inline constexpr std::string_view kStorageFull = "FILE_FAILED: Server storage full";
inline constexpr std::string_view kQuota = "FILE_FAILED: Storage quota exceeded";
inline constexpr std::string_view kStorageError = "FILE_FAILED: Server storage error";
inline constexpr std::string_view kUploadTimedOut = "FILE_FAILED: Upload timed out";
inline constexpr std::string_view kUploadTooSlow = "FILE_FAILED: Upload too slow";
/// The close of a connection that reads a file being sent to it too slowly.
inline constexpr std::string_view kTransferTooSlow = "transfer too slow";
inline constexpr std::string_view kNameTooLong = "FILE_FAILED: File name too long";
/// A file for a user id that nobody holds would go to whoever takes the id first.
inline constexpr std::string_view kUnknownRecipient = "FILE_FAILED: Unknown recipient";
/// Token requests for a user id held by another client, and past max_bindings.
inline constexpr std::string_view kUserIdHeld = "userId is held by another client";
inline constexpr std::string_view kTooManyUsers = "Too many users, please try later";

// ---- parsing: what a player sends --------------------------------------------------------------

/// The text messages of /player, by their "type" (matched exactly, as the original does).
enum class PlayerMessageType : std::uint8_t {
    kSessionAuth,       // {"type":"session_auth","userId":"..","token":".."}
    kListOnline,        // {"type":"list_online"}
    kConnect,           // {"type":"connect","targetUserId":".."}
    kConnectAccept,     // {"type":"connect_accept","targetUserId":".."}
    kConnectReject,     // {"type":"connect_reject","targetUserId":".."}
    kFileSendBegin,     // {"type":"file_send_begin","targetUserId":"..","fileName":"..",
                        //  "fileSize":N}
    kFileSendComplete,  // {"type":"file_send_complete"}
    kDisconnect,        // {"type":"disconnect"}
    kUnknown,           // any other string type: ignored
};

/// Why a message of a known type cannot be acted on, and what the server answers
/// (docs/protocol/moonshare.md).
enum class PlayerMessageError : std::uint8_t {
    kNone,
    /// session_auth without a token (absent, not a string, or empty): "Missing token", closed.
    kTokenMissing,
    /// session_auth without a userId (absent, not a string, empty, or over kMaxUserIdBytes):
    /// "Invalid session token", closed.
    kUserIdInvalid,
    /// connect: no targetUserId string: connect_rejected with "withUserId":"";
    /// connect_accept / connect_reject: ignored.
    kTargetMissing,
    /// connect, connect_accept, connect_reject: a targetUserId over kMaxUserIdBytes (no such user
    /// can exist, and echoing it could exceed the client's buffer): ignored.
    kTargetTooLong,
    /// file_send_begin without a targetUserId (or one empty or over kMaxUserIdBytes), a fileName
    /// (or an empty one), or a fileSize that is a whole number from 0 to 2^64-1: kMissingBegin.
    kFileParametersMissing,
    /// file_send_begin with a fileName over kMaxFileNameBytes: kNameTooLong.
    kFileNameTooLong,
};

/// A player's text message: its type and the fields that type reads. Fields the type does not
/// read stay empty; with an error, only what the error leaves valid is filled.
struct PlayerMessage {
    PlayerMessageType type = PlayerMessageType::kUnknown;
    std::string type_name;  // "type" as sent (for the log of an unknown type)
    PlayerMessageError error = PlayerMessageError::kNone;
    std::string token;      // session_auth
    std::string user_id;    // session_auth: as sent (also when over the bound; "" when absent)
    std::string target;     // connect, connect_accept, connect_reject, file_send_begin
    std::string file_name;  // file_send_begin
    std::uint64_t file_size = 0;  // file_send_begin
};

/// A text message that is not a protocol message: not JSON, not an object, or without a string
/// "type". Ignored (counted in hearth_moonshare_ignored_messages_total).
enum class PlayerParseError : std::uint8_t { kNotProtocol };

/// Parses a player's text message (Boost.JSON: of duplicate keys, the last counts).
std::variant<PlayerMessage, PlayerParseError> parse_player_message(std::string_view text);

// ---- encoding: what the server sends ----------------------------------------------------------

/// /player: {"type":"session_auth_result","success":...,"message":"..."} and, when given,
/// "userId" last.
std::string encode_auth_result(bool success, std::string_view message,
                               std::optional<std::string_view> user = std::nullopt);
/// /player: {"type":"connection_info","message":"You are connected through instance <name>"}.
std::string encode_connection_info(std::string_view instance);
/// /player: "ONLINE:" and a JSON array of the user ids, cut (whole entries only) so that the
/// message stays within kClientBuffer.
std::string encode_online(const std::vector<std::string>& users);
/// /player: {"type":"user_list_update","users":[{"userId":"..","userName":".."},...]}, each user
/// id as its own name, cut (whole entries only) within kClientBuffer.
std::string encode_user_list_update(const std::vector<std::string>& users);
/// /player: {"type":"disconnected","userId":"..."}.
std::string encode_disconnected(std::string_view user);
/// /player: {"type":"connect_request","fromUserId":"..."}.
std::string encode_connect_request(std::string_view from);
/// /player: {"type":"connect_accepted"|"connect_rejected","withUserId":"..."}.
std::string encode_connect_answer(bool accepted, std::string_view with);
/// /player: {"type":"file_send_begin","fileName":"..","fromUserId":"..","fileSize":N}.
std::string encode_file_send_begin(std::string_view name, std::string_view from,
                                   std::uint64_t size);
/// /player: {"type":"file_send_complete","fileName":"..","fromUserId":".."}.
std::string encode_file_send_complete(std::string_view name, std::string_view from);
/// /auth: {"type":"session_token","token":"..."}.
std::string encode_session_token(std::string_view token);
/// Token endpoint: {"token":"..."}.
std::string encode_token(std::string_view token);
/// Token endpoint and gateway: {"error":"..."}.
std::string encode_error(std::string_view message);

}  // namespace hearth::frontends::moonshare

// ---- template definition -----------------------------------------------------------------------

namespace hearth::frontends::moonshare {

template <class F>
void for_each_utf16(std::string_view s, F&& unit) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char b = p[i];
        std::uint32_t cp = 0xFFFD;
        std::size_t len = 1;
        if (b < 0x80) {
            cp = b;
        } else {
            std::size_t need = 0;
            std::uint32_t min = 0;
            if ((b & 0xE0) == 0xC0) {
                need = 1;
                cp = b & 0x1F;
                min = 0x80;
            } else if ((b & 0xF0) == 0xE0) {
                need = 2;
                cp = b & 0x0F;
                min = 0x800;
            } else if ((b & 0xF8) == 0xF0) {
                need = 3;
                cp = b & 0x07;
                min = 0x10000;
            }
            bool ok = need > 0;
            for (std::size_t k = 1; ok && k <= need; ++k) {
                if (i + k >= n || (p[i + k] & 0xC0) != 0x80) {
                    ok = false;
                } else {
                    cp = (cp << 6) | (p[i + k] & 0x3F);
                }
            }
            if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) {
                ok = false;
            }
            if (ok) {
                len = need + 1;
            } else {
                cp = 0xFFFD;
                len = 1;
            }
        }
        if (cp >= 0x10000) {
            const std::uint32_t v = cp - 0x10000;
            unit(static_cast<char16_t>(0xD800 + (v >> 10)));
            unit(static_cast<char16_t>(0xDC00 + (v & 0x3FF)));
        } else {
            unit(static_cast<char16_t>(cp));
        }
        i += len;
    }
}

}  // namespace hearth::frontends::moonshare
