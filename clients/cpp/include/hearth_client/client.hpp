#pragma once

// A C++20 client for Hearth's game packet protocol (docs/protocol/packets.md in the Hearth
// repository): connect, log in, keep alive, the character calls, the world's calls, and poll() for
// what the world sends, which a game loop (or an epoll loop of many clients) calls without
// waiting. The wire format is the server's own codec (codec.hpp, messages.hpp, compiled into this
// library as they are), so client and server cannot disagree on a byte.
//
// Thread-safety: a Client belongs to one thread at a time. Every call blocks for at most the
// client's timeout; poll() with a zero timeout and, with ClientOptions::max_queued_send_bytes, the
// sends never block.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
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
    const T& operator*() const { return value(); }
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

/// The zone the character is in: the answer to enter_world() and change_map().
struct ZoneEntry {
    std::uint32_t zone = 0;
    std::string zone_name;
    float width = 0;  // the zone spans [0, width) x [0, height)
    float height = 0;
    std::uint32_t entity = 0;  // the character's own entity id in the zone
    wire::Vec3 at;
    float heading = 0;          // radians
    std::uint16_t tick_hz = 0;  // world updates per second
    float view_radius = 0;      // entities within this distance are sent
    float max_speed = 0;        // units per second the server accepts
};

/// What went over the connection since the Client was made (headers included).
struct Traffic {
    std::uint64_t packets_sent = 0;
    std::uint64_t bytes_sent = 0;  // taken by the socket (queued bytes count once written)
    std::uint64_t packets_received = 0;
    std::uint64_t bytes_received = 0;
};

/// A packet whose opcode this library does not know (a newer server's): poll() passes it as it is.
struct UnknownPacket {
    std::uint16_t type = 0;
    std::string_view payload;
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
    /// 0: a send waits (at most `timeout`) while the socket cannot take it. Above 0, a send never
    /// waits: what the socket cannot take now is queued, at most this many bytes, and written by
    /// flush() (call it when wants_write() and the socket is writable) and by every poll(); a send
    /// that would go past the bound fails (kTimeout: the server does not read) and queues nothing.
    std::size_t max_queued_send_bytes = 0;
    /// A local address (numeric: "127.0.0.2", "::1") to connect from; empty: the system's choice.
    /// A load generator spreads its connections over 127.0.0.x so that a server's per-address
    /// limit holds each address under it.
    std::string source_address{};
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

    // ---- the world (a selected character) ----

    /// The selected character enters its zone at its saved position.
    Result<ZoneEntry> enter_world();
    /// Moves the character to `zone` (`no_such_zone` when there is none).
    Result<ZoneEntry> change_map(std::uint32_t zone);
    /// The positions to walk through (1 to wire::kMaxPathPoints), under the zone's max_speed; a
    /// refusal comes later as a wire::Correction echoing `seq`. Does not wait.
    Status move(std::uint32_t seq, std::span<const wire::Vec3> path);
    /// Attacks an NPC in view; the results come as wire::HpUpdate and wire::Death (poll()), a
    /// refusal as a wire::Error answering opcode 0x1005. Does not wait.
    Status attack(std::uint32_t target);
    /// An entity's HP (`no_such_target` when it is not in view).
    Result<wire::TargetHp> target_hp(std::uint32_t entity);
    /// Back to life after a death (`not_dead` when alive).
    Result<wire::Respawned> respawn();
    /// Chat to the entities in view (kLocal) or the whole zone (kZone); everyone, the sender
    /// included, receives a wire::ChatMessage. Does not wait.
    Status chat(wire::ChatChannel channel, std::string_view text);
    /// A whisper to a character online in any zone: a wire::WhisperMessage comes back (the sender's
    /// copy), or a wire::Error `no_such_target`. Does not wait.
    Status whisper(std::string_view to, std::string_view text);

    /// Sends one message (a world request: MoveIntent, ChatSend, ...) without waiting.
    template <class M>
    Status send(const M& message) {
        std::string out;
        if (const auto e = wire::encode(out, message, max_send_bytes_);
            e != wire::WireError::kNone) {
            return encoding_error(e);
        }
        return write_packet(out);
    }
    /// Sends bytes as they are (tests; a client never needs to).
    Status send_raw(std::string_view bytes) { return write_all(bytes); }

    /// For a game loop: reads what the server sent and calls `on_message` once per packet with
    /// the decoded message, a `const` reference to one of wire::ToClientMessages' types
    /// (wire::WorldUpdate, wire::Correction, wire::ChatMessage, wire::Error, ...) or an
    /// UnknownPacket: a generic lambda or an overload set. Its strings and lists are views, valid
    /// during the call only. Packets kept by an earlier call come first. Waits at most `timeout`
    /// for the first byte (zero: never waits), then takes only what has arrived, at most
    /// `max_messages` packets, and writes queued sends (flush()). Returns how many packets it
    /// passed; kClosed once the connection is closed and every packet before the close was passed;
    /// kProtocol for a packet that does not decode (it is skipped: the next poll goes on after
    /// it). `on_message` may send, but not poll.
    template <class F>
    Result<std::size_t> poll(std::chrono::milliseconds timeout, F&& on_message,
                             std::size_t max_messages = 1024) {
        std::size_t passed = 0;
        const auto pass = [&](std::uint16_t type, std::string_view payload) -> Status {
            ++passed;
            const auto e = wire::dispatch_to_client(wire::Packet{type, payload}, on_message);
            if (e == wire::WireError::kUnknownOpcode) {
                on_message(UnknownPacket{type, payload});
            } else if (e != wire::WireError::kNone) {
                return undecodable(type, e);
            }
            return Done{};
        };
        while (!unread_.empty() && passed < max_messages) {
            const ReceivedPacket p = std::move(unread_.front());
            unread_.pop_front();
            if (auto s = pass(p.type, p.payload); !s) {
                return s.error();
            }
        }
        if (auto s = flush(); !s) {
            return s.error();
        }
        bool may_wait = passed == 0;
        char chunk[kReadChunkBytes];
        while (passed < max_messages) {
            // Bytes an earlier blocking call read but did not use come before the socket's.
            std::string_view input = in_;
            bool from_socket = false;
            if (input.empty()) {
                auto n = read_now(chunk, sizeof chunk,
                                  may_wait ? timeout : std::chrono::milliseconds::zero());
                may_wait = false;
                if (!n) {
                    return n.error();
                }
                if (*n == 0) {
                    break;
                }
                input = std::string_view(chunk, *n);
                from_socket = true;
            }
            while (!input.empty()) {
                auto framed = frame(input);
                if (!framed) {
                    return framed.error();
                }
                if (!*framed) {
                    continue;  // the bytes went into the decoder's partial packet
                }
                if (auto s = pass((*framed)->type, (*framed)->payload); !s) {
                    keep_input(input, from_socket);
                    return s.error();
                }
                if (passed >= max_messages) {
                    break;
                }
            }
            keep_input(input, from_socket);
        }
        return passed;
    }

    /// Writes what the socket can take of the queued sends (ClientOptions::max_queued_send_bytes)
    /// without waiting.
    Status flush();
    /// Sends are queued: wait for the socket to be writable, then flush().
    bool wants_write() const noexcept { return !out_.empty(); }
    const Traffic& traffic() const noexcept { return traffic_; }
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
    static constexpr std::size_t kReadChunkBytes = 16 * 1024;

    Result<ReceivedPacket> await(std::uint16_t opcode);
    Result<ZoneEntry> zone_entry(const Result<ReceivedPacket>& answer);
    /// Waits at most `timeout` until readable, then one recv without waiting: the bytes read (0:
    /// none yet), or kClosed.
    Result<std::size_t> read_now(char* into, std::size_t size, std::chrono::milliseconds timeout);
    /// The next whole packet at the front of `input` (removing its bytes), or nullopt when the
    /// bytes taken only began one (the decoder keeps them).
    Result<std::optional<wire::Packet>> frame(std::string_view& input);
    /// After poll's pass over `input`: what is left of it is kept in in_ for the next call.
    void keep_input(std::string_view rest, bool from_socket);
    Error undecodable(std::uint16_t type, wire::WireError e);
    Status write_packet(std::string_view packet);
    Result<ReceivedPacket> read_packet(std::chrono::steady_clock::time_point until);
    Result<Session> login(const wire::LoginRequest& request);
    Status write_all(std::string_view bytes);
    static Error encoding_error(wire::WireError e);

    ClientOptions options_;
    int fd_ = -1;
    // Received bytes not yet given to the decoder: left by a blocking call, or by a poll that
    // stopped at max_messages.
    std::string in_;
    // Frames packets; holds at most one partial packet (poll passes whole ones as views).
    wire::FrameDecoder decoder_{wire::kLargestMaxPacketBytes};
    std::deque<ReceivedPacket> unread_;
    std::string out_;  // sends the socket did not take yet (max_queued_send_bytes > 0)
    Traffic traffic_;
    std::uint32_t entity_ = 0;  // the character's entity in its zone (respawn() waits for it)
    std::size_t max_send_bytes_ = wire::kSmallestMaxPacketBytes;  // raised by the login reply
};

}  // namespace hearth::client
