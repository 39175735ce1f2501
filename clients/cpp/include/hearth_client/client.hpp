#pragma once

// A blocking C++20 client for Hearth's game packet protocol (docs/protocol/packets.md in the
// Hearth repository): connect, log in, keep alive, the character calls, and a generic send and
// receive for the world's packets. The wire format is the server's own codec (codec.hpp,
// messages.hpp, compiled into this library as they are), so client and server cannot disagree on
// a byte.
//
// Thread-safety: a Client belongs to one thread at a time. Every call blocks for at most the
// client's timeout.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "frontends/packet/codec.hpp"
#include "frontends/packet/messages.hpp"

namespace hearth::client {

namespace wire = ::hearth::packet;

/// Why a call failed.
struct Error {
    enum class Kind : std::uint8_t {
        kServer,    // the server answered Error: `code`, `opcode`, `detail`, `message`
        kClosed,    // the server closed the connection (or none is open)
        kTimeout,   // no answer within the client's timeout
        kIo,        // a socket call failed (`message` says which, with errno's text)
        kProtocol,  // the server sent something this client cannot read
        kEncoding,  // the request breaks a field's bound (a name too long, ...)
    };
    Kind kind = Kind::kIo;
    wire::ErrorCode code = wire::ErrorCode::kInternalError;  // kServer only
    std::uint16_t opcode = 0;                                // kServer: the packet it answers
    std::uint32_t detail = 0;                                // kServer: per code
    std::string message;

    bool is(wire::ErrorCode c) const noexcept { return kind == Kind::kServer && code == c; }
    /// "bad_credentials", or the kind's name ("closed", "timeout", ...) for a local failure.
    std::string_view name() const noexcept;
};

/// A value or an Error (std::expected is C++23).
template <class T>
class Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit, as std::expected
    Result(Error error) : v_(std::move(error)) {}
    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() { return value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

struct Done {};
using Status = Result<Done>;

/// The login reply.
struct Session {
    std::uint64_t account_id = 0;
    std::string account_name;
    std::uint16_t max_packet_bytes = 0;  // the largest packet the server accepts
    std::uint16_t idle_timeout_s = 0;    // send alive() about every third of it
};

/// A character as listed (and as created).
struct Character {
    std::uint64_t id = 0;
    std::string name;
    std::uint16_t level = 0;
    wire::Looks looks;
    std::uint32_t zone = 0;
};

/// The selected character, whole.
struct SelectedCharacter {
    std::uint64_t id = 0;
    std::string name;
    std::uint16_t level = 0;
    std::uint64_t experience = 0;
    std::uint64_t money = 0;
    wire::Stats stats;
    wire::Looks looks;
    wire::Position position;
    std::vector<wire::InventorySlot> inventory;
};

/// One packet as received: its type and an owned copy of its payload. `decode` reads it as a
/// message (whose strings are views into this packet's payload).
struct ReceivedPacket {
    std::uint16_t type = 0;
    std::string payload;

    template <class M>
    wire::Decoded<M> decode() const {
        return wire::decode<M>(payload);
    }
    bool is(wire::Opcode op) const noexcept { return type == static_cast<std::uint16_t>(op); }
};

struct ClientOptions {
    /// The longest any call waits for the server.
    std::chrono::milliseconds timeout{10'000};
    /// Packets received while a call waited for its answer (world updates, notices) are kept for
    /// receive(), at most this many; one more fails the call (kProtocol): read them.
    std::size_t max_unread_packets = 4096;
};

class Client {
public:
    Client() : Client(ClientOptions{}) {}
    explicit Client(ClientOptions options);
    ~Client();
    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Opens a TCP connection to `host` (a name or an address) and `port`.
    Status connect(const std::string& host, std::uint16_t port);
    bool connected() const noexcept { return fd_ >= 0; }
    /// Closes the connection (without logging out); the client may connect again.
    void close() noexcept;

    Result<Session> login_password(std::string_view username, std::string_view password);
    /// A Hearth session token, an API key with scope `packet`, or an external session.
    Result<Session> login_token(std::string_view token);
    /// Keep-alive: no answer comes.
    Status alive();
    /// Waits for the server's LogoutReply; the server then closes the connection, and so does
    /// the client.
    Status logout();

    /// Every packet of the list (the server may split it; `more` is followed to the end).
    Result<std::vector<Character>> list_characters();
    Result<Character> create_character(std::string_view name, wire::Looks looks);
    /// The deleted character's id.
    Result<std::uint64_t> delete_character(std::uint64_t id);
    Result<SelectedCharacter> select_character(std::uint64_t id);

    /// Sends one message (a world request: MoveIntent, ChatSend, ...) without waiting.
    template <class M>
    Status send(const M& message) {
        std::string out;
        if (const auto e = wire::encode(out, message, max_send_bytes_);
            e != wire::WireError::kNone) {
            return encoding_error(e);
        }
        return write_all(out);
    }
    /// Sends bytes as they are (tests; a client never needs to).
    Status send_raw(std::string_view bytes) { return write_all(bytes); }
    /// The next packet from the server: one kept by an earlier call first. Waits at most
    /// `timeout` (the client's when not given).
    Result<ReceivedPacket> receive(std::optional<std::chrono::milliseconds> timeout = {});
    /// Sends `request` and waits for the packet that answers it (the same opcode from the
    /// server), or an Error answering it, or an Error that ends the connection (opcode 0).
    /// Packets in between are kept for receive().
    template <class M>
    Result<ReceivedPacket> call(const M& request) {
        if (auto s = send(request); !s) {
            return s.error();
        }
        return await(static_cast<std::uint16_t>(M::kOpcode));
    }

    /// The socket, for a caller's own poll (-1 when not connected).
    int native_handle() const noexcept { return fd_; }
    /// Packets kept for receive().
    std::size_t unread() const noexcept { return unread_.size(); }

private:
    Result<ReceivedPacket> await(std::uint16_t opcode);
    Result<ReceivedPacket> read_packet(std::chrono::steady_clock::time_point until);
    Result<Session> login(const wire::LoginRequest& request);
    Status write_all(std::string_view bytes);
    static Error encoding_error(wire::WireError e);

    ClientOptions options_;
    int fd_ = -1;
    std::string in_;  // received bytes not yet a whole packet
    std::deque<ReceivedPacket> unread_;
    std::size_t max_send_bytes_ = wire::kSmallestMaxPacketBytes;  // raised by the login reply
};

}  // namespace hearth::client
