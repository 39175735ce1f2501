// Plain POSIX sockets rather than Boost.Asio: the API is blocking and one connection per Client,
// which poll() with a deadline covers, and a game's own build should not need Boost to use it.

#include "hearth_client/client.hpp"
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

namespace hearth::client {

namespace {

using Clock = std::chrono::steady_clock;

Error local(Error::Kind kind, std::string message) {
    Error e;
    e.kind = kind;
    e.message = std::move(message);
    return e;
}

Error io_error(const char* what) {
    return local(Error::Kind::kIo, std::string(what) + ": " + std::strerror(errno));
}

Error protocol_error(std::string message) {
    return local(Error::Kind::kProtocol, std::move(message));
}

Error server_error(const wire::Error& e) {
    Error out;
    out.kind = Error::Kind::kServer;
    out.code = e.code;
    out.opcode = e.opcode;
    out.detail = e.detail;
    out.message = std::string(e.message);
    return out;
}

bool is_error_packet(const ReceivedPacket& p) {
    return p.type == static_cast<std::uint16_t>(wire::Opcode::kAlive);
}

Character character_of(const wire::CharacterSummary& c) {
    return Character{c.id, std::string(c.name), c.level, c.looks, c.zone};
}

template <class M>
Result<M> decoded(const ReceivedPacket& p) {
    auto d = p.decode<M>();
    if (d.error != wire::WireError::kNone) {
        return protocol_error(std::string("cannot read ") + std::string(wire::opcode_name(p.type)) +
                              ": " + std::string(wire::wire_error_text(d.error)));
    }
    return std::move(d.message);
}

/// connect(2) on a blocking socket, but giving up at `until` (an unreachable host would hold a
/// blocking connect for the kernel's SYN retries, minutes).
Status connect_within(int fd, const sockaddr* address, socklen_t length, Clock::time_point until) {
    const int flags = ::fcntl(fd, F_GETFL, 0);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return io_error("fcntl");
    }
    if (::connect(fd, address, length) != 0) {
        if (errno != EINPROGRESS) {
            return io_error("connect");
        }
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
            if (left.count() <= 0) {
                return local(Error::Kind::kTimeout, "connect: no answer in time");
            }
            pollfd p{fd, POLLOUT, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno != EINTR) {
                return io_error("poll");
            }
            if (ready > 0) {
                break;
            }
        }
        int failure = 0;
        socklen_t size = sizeof failure;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size) != 0) {
            return io_error("getsockopt");
        }
        if (failure != 0) {
            errno = failure;
            return io_error("connect");
        }
    }
    if (::fcntl(fd, F_SETFL, flags) != 0) {
        return io_error("fcntl");
    }
    return Done{};
}

/// Binds `fd` to `source` (a numeric address of `family`) before it connects; nothing when empty.
Status bind_source(int fd, int family, const std::string& source) {
    if (source.empty()) {
        return Done{};
    }
    sockaddr_storage address{};
    socklen_t length = 0;
    if (family == AF_INET) {
        auto* in = reinterpret_cast<sockaddr_in*>(&address);
        in->sin_family = AF_INET;
        if (::inet_pton(AF_INET, source.c_str(), &in->sin_addr) != 1) {
            return local(Error::Kind::kIo, "source address " + source + " is not an IPv4 address");
        }
        length = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
        in6->sin6_family = AF_INET6;
        if (::inet_pton(AF_INET6, source.c_str(), &in6->sin6_addr) != 1) {
            return local(Error::Kind::kIo, "source address " + source + " is not an IPv6 address");
        }
        length = sizeof(sockaddr_in6);
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
        return io_error("bind");
    }
    return Done{};
}

}  // namespace

std::string_view Error::name() const noexcept {
    switch (kind) {
        case Kind::kServer:
            return wire::error_name(code);
        case Kind::kClosed:
            return "closed";
        case Kind::kTimeout:
            return "timeout";
        case Kind::kIo:
            return "io";
        case Kind::kProtocol:
            return "protocol";
        case Kind::kEncoding:
            return "encoding";
    }
    return "unknown";
}

Client::Client(ClientOptions options) : options_(options) {}

Client::~Client() {
    close();
}

Client::Client(Client&& other) noexcept
    : options_(other.options_),
      fd_(std::exchange(other.fd_, -1)),
      in_(std::move(other.in_)),
      decoder_(std::move(other.decoder_)),
      unread_(std::move(other.unread_)),
      out_(std::move(other.out_)),
      traffic_(other.traffic_),
      entity_(other.entity_),
      max_send_bytes_(other.max_send_bytes_) {}

Client& Client::operator=(Client&& other) noexcept {
    if (this != &other) {
        close();
        options_ = other.options_;
        fd_ = std::exchange(other.fd_, -1);
        in_ = std::move(other.in_);
        decoder_ = std::move(other.decoder_);
        unread_ = std::move(other.unread_);
        out_ = std::move(other.out_);
        traffic_ = other.traffic_;
        entity_ = other.entity_;
        max_send_bytes_ = other.max_send_bytes_;
    }
    return *this;
}

Status Client::connect(const std::string& host, std::uint16_t port) {
    close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
        return local(Error::Kind::kIo, "cannot resolve " + host + ": " + ::gai_strerror(rc));
    }
    const auto until = Clock::now() + options_.timeout;
    Error last = local(Error::Kind::kIo, "no address for " + host);
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = io_error("socket");
            continue;
        }
        if (auto bound = bind_source(fd, a->ai_family, options_.source_address); !bound) {
            last = bound.error();
            ::close(fd);
            continue;
        }
        if (auto connected = connect_within(fd, a->ai_addr, a->ai_addrlen, until); !connected) {
            last = connected.error();
            ::close(fd);
            continue;
        }
        // Requests are small and each waits for its answer: no Nagle delay.
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_ = fd;
        break;
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) {
        return last;
    }
    return Done{};
}

void Client::close() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    std::string().swap(in_);
    decoder_ = wire::FrameDecoder(wire::kLargestMaxPacketBytes);
    unread_.clear();
    std::string().swap(out_);
    entity_ = 0;
    max_send_bytes_ = wire::kSmallestMaxPacketBytes;
}

Status Client::write_all(std::string_view bytes) {
    if (fd_ < 0) {
        return local(Error::Kind::kClosed, "not connected");
    }
    const auto until = Clock::now() + options_.timeout;
    while (!bytes.empty()) {
        const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes.remove_prefix(static_cast<std::size_t>(n));
            traffic_.bytes_sent += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
            if (left.count() <= 0) {
                return local(Error::Kind::kTimeout, "the server does not read");
            }
            pollfd p{fd_, POLLOUT, 0};
            (void)::poll(&p, 1, static_cast<int>(left.count()));
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return local(Error::Kind::kClosed, "the server closed the connection");
        }
        return io_error("send");
    }
    return Done{};
}

Error Client::encoding_error(wire::WireError e) {
    return local(Error::Kind::kEncoding,
                 std::string("cannot encode: ") + std::string(wire::wire_error_text(e)));
}

Result<std::optional<wire::Packet>> Client::frame(std::string_view& input) {
    const auto r = decoder_.next(input);
    input.remove_prefix(r.consumed);
    if (r.status == wire::FrameStatus::kPacket) {
        ++traffic_.packets_received;
        return std::optional<wire::Packet>(r.packet);
    }
    if (r.status == wire::FrameStatus::kNeedMore) {
        return std::optional<wire::Packet>();
    }
    // The server never sends more than its maximum, itself at most the u16 limit.
    return protocol_error("a packet size of " + std::to_string(r.declared_size));
}

void Client::keep_input(std::string_view rest, bool from_socket) {
    if (from_socket) {
        in_.append(rest);
    } else {
        in_.erase(0, in_.size() - rest.size());
    }
    if (in_.empty() && in_.capacity() > kReadChunkBytes) {
        std::string().swap(in_);  // a bot's thousands of clients keep no large buffers
    }
}

Result<std::size_t> Client::read_now(char* into, std::size_t size,
                                     std::chrono::milliseconds timeout) {
    if (fd_ < 0) {
        return local(Error::Kind::kClosed, "not connected");
    }
    if (timeout.count() > 0) {
        pollfd pfd{fd_, POLLIN, 0};
        const int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
        if (ready < 0 && errno != EINTR) {
            return io_error("poll");
        }
        if (ready <= 0) {
            return std::size_t{0};
        }
    }
    for (;;) {
        const auto n = ::recv(fd_, into, size, MSG_DONTWAIT);
        if (n > 0) {
            traffic_.bytes_received += static_cast<std::uint64_t>(n);
            return static_cast<std::size_t>(n);
        }
        if (n == 0 || errno == ECONNRESET) {
            ::close(fd_);
            fd_ = -1;
            return local(Error::Kind::kClosed, "the server closed the connection");
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return std::size_t{0};
        }
        return io_error("recv");
    }
}

Result<ReceivedPacket> Client::read_packet(Clock::time_point until) {
    for (;;) {
        while (!in_.empty()) {
            std::string_view input = in_;
            auto framed = frame(input);
            const std::size_t used = in_.size() - input.size();
            if (!framed) {
                in_.erase(0, used);
                return framed.error();
            }
            if (*framed) {
                // A copy before the erase: the payload may be a view into in_.
                ReceivedPacket p{(*framed)->type, std::string((*framed)->payload)};
                in_.erase(0, used);
                return p;
            }
            in_.erase(0, used);  // the beginning of a packet: the decoder keeps it
        }
        keep_input({}, false);
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (fd_ >= 0 && left.count() <= 0) {
            return local(Error::Kind::kTimeout, "no packet from the server in time");
        }
        char chunk[kReadChunkBytes];
        auto n = read_now(chunk, sizeof chunk, std::max(left, std::chrono::milliseconds(1)));
        if (!n) {
            return n.error();
        }
        in_.append(chunk, *n);
    }
}

Error Client::undecodable(std::uint16_t type, wire::WireError e) {
    return protocol_error(std::string("cannot read ") + std::string(wire::opcode_name(type)) +
                          ": " + std::string(wire::wire_error_text(e)));
}

Status Client::write_packet(std::string_view packet) {
    if (options_.max_queued_send_bytes == 0) {
        auto s = write_all(packet);
        if (s) {
            ++traffic_.packets_sent;
        }
        return s;
    }
    if (fd_ < 0) {
        return local(Error::Kind::kClosed, "not connected");
    }
    if (!out_.empty() && out_.size() + packet.size() > options_.max_queued_send_bytes) {
        return local(Error::Kind::kTimeout, "the server does not read: the send queue is full");
    }
    // Behind what is queued, or whatever the socket does not take now (the rest of a packet is
    // queued whatever the bound: a part sent alone would break the stream).
    out_.append(packet);
    ++traffic_.packets_sent;
    return flush();
}

Status Client::flush() {
    std::size_t sent = 0;
    Status result = Done{};
    while (sent < out_.size()) {
        if (fd_ < 0) {
            result = local(Error::Kind::kClosed, "not connected");
            break;
        }
        const auto n =
            ::send(fd_, out_.data() + sent, out_.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
            traffic_.bytes_sent += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            result = local(Error::Kind::kClosed, "the server closed the connection");
        } else {
            result = io_error("send");
        }
        break;
    }
    out_.erase(0, sent);
    if (out_.empty() && out_.capacity() > kReadChunkBytes) {
        std::string().swap(out_);
    }
    return result;
}

Result<ReceivedPacket> Client::receive(std::optional<std::chrono::milliseconds> timeout) {
    if (!unread_.empty()) {
        auto p = std::move(unread_.front());
        unread_.pop_front();
        return p;
    }
    return read_packet(Clock::now() + timeout.value_or(options_.timeout));
}

Result<ReceivedPacket> Client::await(std::uint16_t opcode) {
    const auto until = Clock::now() + options_.timeout;
    for (;;) {
        auto p = read_packet(until);
        if (!p) {
            return p.error();
        }
        if (is_error_packet(*p)) {
            auto e = decoded<wire::Error>(*p);
            if (!e) {
                return e.error();
            }
            // Its answer, or the end of the connection (idle timeout, takeover, shutdown).
            if (e->opcode == opcode || e->opcode == 0) {
                return server_error(*e);
            }
        } else if (p->type == opcode) {
            return p;
        }
        if (unread_.size() >= options_.max_unread_packets) {
            return protocol_error("too many unread packets: call receive()");
        }
        unread_.push_back(std::move(*p));
    }
}

Result<Session> Client::login(const wire::LoginRequest& request) {
    auto p = call(request);
    if (!p) {
        return p.error();
    }
    auto r = decoded<wire::LoginReply>(*p);
    if (!r) {
        return r.error();
    }
    max_send_bytes_ = r->max_packet_bytes;
    return Session{r->account_id, std::string(r->account_name), r->max_packet_bytes,
                   r->idle_timeout_s};
}

Result<Session> Client::login_password(std::string_view username, std::string_view password) {
    return login(wire::LoginRequest{
        .method = wire::LoginMethod::kPassword, .username = username, .secret = password});
}

Result<Session> Client::login_token(std::string_view token) {
    return login(
        wire::LoginRequest{.method = wire::LoginMethod::kToken, .username = {}, .secret = token});
}

Status Client::alive() {
    return send(wire::Alive{});
}

Status Client::logout() {
    auto p = call(wire::LogoutRequest{});
    if (!p) {
        return p.error();
    }
    close();
    return Done{};
}

Result<std::vector<Character>> Client::list_characters() {
    std::vector<Character> out;
    auto p = call(wire::CharacterListRequest{});
    for (;;) {
        if (!p) {
            return p.error();
        }
        auto list = decoded<wire::CharacterList>(*p);
        if (!list) {
            return list.error();
        }
        for (const auto& c : list->characters) {
            out.push_back(character_of(c));
        }
        if (!list->more) {
            return out;
        }
        p = await(static_cast<std::uint16_t>(wire::Opcode::kCharacterList));
    }
}

Result<Character> Client::create_character(std::string_view name, wire::Looks looks) {
    auto p = call(wire::CreateCharacterRequest{.name = name, .looks = looks});
    if (!p) {
        return p.error();
    }
    auto c = decoded<wire::CharacterCreated>(*p);
    if (!c) {
        return c.error();
    }
    return character_of(c->character);
}

Result<std::uint64_t> Client::delete_character(std::uint64_t id) {
    auto p = call(wire::DeleteCharacterRequest{.character_id = id});
    if (!p) {
        return p.error();
    }
    auto d = decoded<wire::CharacterDeleted>(*p);
    if (!d) {
        return d.error();
    }
    return d->character_id;
}

Result<SelectedCharacter> Client::select_character(std::uint64_t id) {
    auto p = call(wire::SelectCharacterRequest{.character_id = id});
    if (!p) {
        return p.error();
    }
    auto s = decoded<wire::CharacterSelected>(*p);
    if (!s) {
        return s.error();
    }
    const auto& m = s.value();
    return SelectedCharacter{
        m.id,    std::string(m.name), m.level,    m.experience, m.money, m.stats,
        m.looks, m.position,          m.inventory};
}

Result<ZoneEntry> Client::zone_entry(const Result<ReceivedPacket>& answer) {
    if (!answer) {
        return answer.error();
    }
    // WorldEntered and MapChanged carry the same fields.
    auto d = decoded<wire::MapChanged>(*answer);
    if (!d) {
        return d.error();
    }
    const auto& e = d->entry;
    entity_ = e.entity;
    return ZoneEntry{.zone = e.zone,
                     .zone_name = std::string(e.zone_name),
                     .width = e.width,
                     .height = e.height,
                     .entity = e.entity,
                     .at = e.at,
                     .heading = e.heading,
                     .tick_hz = e.tick_hz,
                     .view_radius = e.view_radius,
                     .max_speed = e.max_speed};
}

Result<ZoneEntry> Client::enter_world() {
    return zone_entry(call(wire::EnterWorldRequest{}));
}

Result<ZoneEntry> Client::change_map(std::uint32_t zone) {
    return zone_entry(call(wire::ChangeMapRequest{.zone = zone}));
}

Status Client::move(std::uint32_t seq, std::span<const wire::Vec3> path) {
    if (path.empty() || path.size() > wire::kMaxPathPoints) {
        return local(Error::Kind::kEncoding, "cannot encode: a path has 1 to " +
                                                 std::to_string(wire::kMaxPathPoints) + " points");
    }
    wire::MoveIntent m;
    m.seq = seq;
    m.count = static_cast<std::uint8_t>(path.size());
    std::copy(path.begin(), path.end(), m.points.begin());
    return send(m);
}

Status Client::attack(std::uint32_t target) {
    return send(wire::AttackRequest{.target = target});
}

Result<wire::TargetHp> Client::target_hp(std::uint32_t entity) {
    auto p = call(wire::TargetHpRequest{.entity = entity});
    if (!p) {
        return p.error();
    }
    return decoded<wire::TargetHp>(*p);
}

Result<wire::Respawned> Client::respawn() {
    if (auto s = send(wire::RespawnRequest{}); !s) {
        return s.error();
    }
    // Viewers receive other characters' Respawned under the same opcode: the answer is the one
    // about this character; the others are kept, in order, for receive() and poll().
    for (;;) {
        auto p = await(static_cast<std::uint16_t>(wire::Opcode::kRespawn));
        if (!p) {
            return p.error();
        }
        auto r = decoded<wire::Respawned>(*p);
        if (!r || r->entity == entity_ || entity_ == 0) {
            return r;
        }
        if (unread_.size() >= options_.max_unread_packets) {
            return protocol_error("too many unread packets: call receive()");
        }
        unread_.push_back(std::move(*p));
    }
}

Status Client::chat(wire::ChatChannel channel, std::string_view text) {
    return send(wire::ChatSend{.channel = channel, .text = text});
}

Status Client::whisper(std::string_view to, std::string_view text) {
    return send(wire::WhisperSend{.to = to, .text = text});
}

}  // namespace hearth::client
