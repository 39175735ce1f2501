// The client library's non-blocking use (clients/cpp: Client::poll, queued sends), over a real
// TCP connection to a listener of the test's own that plays the server's side byte by byte: the
// world's packets decoded whatever the split of the reads, a bound on packets per call, the close
// after the last packet, and queued sends written whole and in order.

#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <hearth_client/client.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hearth::test {
namespace {

namespace wire = client::wire;
using namespace std::chrono_literals;

// A listener on 127.0.0.1 and the one connection it accepts.
class FakeServer {
public:
    FakeServer() {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(listener_, 4), 0);
        socklen_t n = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &n);
        port_ = ntohs(a.sin_port);
    }
    ~FakeServer() {
        if (peer_ >= 0) {
            ::close(peer_);
        }
        ::close(listener_);
    }
    std::uint16_t port() const { return port_; }
    void accept() {
        peer_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        ASSERT_GE(peer_, 0);
        const int one = 1;
        ::setsockopt(peer_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    void write(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(peer_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            ASSERT_GT(n, 0);
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    /// Reads until `size` bytes came or 10 s passed.
    std::string read(std::size_t size) {
        std::string out;
        const auto until = std::chrono::steady_clock::now() + 10s;
        while (out.size() < size && std::chrono::steady_clock::now() < until) {
            pollfd p{peer_, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) {
                continue;
            }
            char buf[65536];
            const auto n = ::recv(peer_, buf, std::min(sizeof buf, size - out.size()), 0);
            if (n <= 0) {
                break;
            }
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }
    void close_peer() {
        ::close(peer_);
        peer_ = -1;
    }

private:
    int listener_ = -1;
    int peer_ = -1;
    std::uint16_t port_ = 0;
};

std::string packets_of_a_tick() {
    wire::WorldUpdate u;
    u.tick = 1200;
    u.despawns = {1003};
    u.spawns.push_back(wire::EntitySpawn{.entity = 1001,
                                         .kind = wire::EntityKind::kNpc,
                                         .model = 5,
                                         .name = "Wolf",
                                         .level = 2,
                                         .at = {530, 470, 0},
                                         .heading = 0,
                                         .hp = 40,
                                         .max_hp = 40,
                                         .looks = {}});
    for (std::uint32_t i = 0; i < 200; ++i) {  // several packets of one tick
        u.moves.push_back(wire::EntityMove{.entity = 18 + i, .at = {1, 2, 0}, .heading = 0.5F});
    }
    std::string out;
    EXPECT_EQ(wire::encode_batched(out, u), wire::WireError::kNone);
    EXPECT_EQ(wire::encode(out, wire::Correction{.seq = 7,
                                                 .at = {10, 20, 0},
                                                 .heading = 0,
                                                 .reason = wire::CorrectionReason::kTooFast}),
              wire::WireError::kNone);
    EXPECT_EQ(wire::encode(out, wire::ChatMessage{.channel = wire::ChatChannel::kLocal,
                                                  .from_entity = 17,
                                                  .from = "Rowan",
                                                  .text = "hi"}),
              wire::WireError::kNone);
    // An opcode this library does not know (a newer server's).
    out += std::string("\x08\x00\x99\x1e\x00\x00\xab\xcd", 8);
    return out;
}

// What poll passed, as text.
struct Seen {
    std::vector<std::string> items;
    std::size_t moves = 0;
    void operator()(const wire::WorldUpdate& u) {
        items.push_back("update " + std::to_string(u.tick) + (u.more ? " more" : ""));
        moves += u.moves.size();
        for (const auto& s : u.spawns) {
            items.push_back("spawn " + std::string(s.name));
        }
    }
    void operator()(const wire::Correction& c) {
        items.push_back("correction " + std::to_string(c.seq));
    }
    void operator()(const wire::ChatMessage& m) {
        items.push_back("chat " + std::string(m.from) + ": " + std::string(m.text));
    }
    void operator()(const client::UnknownPacket& p) {
        items.push_back("unknown " + std::to_string(p.type) + " " +
                        std::to_string(p.payload.size()));
    }
    template <class M>
    void operator()(const M&) {
        items.push_back("other");
    }
};

// Polls until `done` or 10 s; every call with a zero timeout once something has come.
template <class Done>
client::Result<std::size_t> poll_until(client::Client& c, Seen& seen, Done done) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    client::Result<std::size_t> last = std::size_t{0};
    while (!done() && std::chrono::steady_clock::now() < until) {
        last = c.poll(100ms, [&seen](const auto& m) { seen(m); });
        if (!last) {
            return last;
        }
    }
    return last;
}

TEST(ClientPoll, PassesTheWorldsPacketsDecodedWhateverTheSplit) {
    const std::string stream = packets_of_a_tick();
    ASSERT_GT(stream.size(), 3000U);  // the tick spans packets
    for (const std::size_t piece :
         {std::size_t{1}, std::size_t{7}, std::size_t{1000}, stream.size()}) {
        SCOPED_TRACE(piece);
        FakeServer server;
        client::Client c;
        ASSERT_TRUE(c.connect("127.0.0.1", server.port()).ok());
        server.accept();
        Seen seen;
        for (std::size_t at = 0; at < stream.size(); at += piece) {
            server.write(std::string_view(stream).substr(at, piece));
            if (piece < 100) {
                continue;  // the small pieces go out together: the kernel joins them anyway
            }
            ASSERT_TRUE(c.poll(0ms, [&seen](const auto& m) { seen(m); }).ok());
        }
        // The unknown packet is the stream's last.
        ASSERT_TRUE(poll_until(c, seen, [&] {
                        return !seen.items.empty() && seen.items.back().starts_with("unknown");
                    }).ok());
        ASSERT_GE(seen.items.size(), 4U);
        EXPECT_EQ(seen.items[0], "update 1200 more");
        EXPECT_EQ(seen.items[1], "spawn Wolf");
        EXPECT_EQ(seen.moves, 200U);
        const std::vector<std::string> tail(seen.items.end() - 3, seen.items.end());
        EXPECT_EQ(tail,
                  (std::vector<std::string>{"correction 7", "chat Rowan: hi", "unknown 7833 2"}));
        EXPECT_EQ(seen.items[seen.items.size() - 4], "update 1200");  // the last: no `more`
        EXPECT_EQ(c.traffic().bytes_received, stream.size());
    }
}

TEST(ClientPoll, PassesAtMostMaxMessagesAndTheRestNextTime) {
    FakeServer server;
    client::Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", server.port()).ok());
    server.accept();
    std::string out;
    for (std::uint32_t i = 0; i < 10; ++i) {
        ASSERT_EQ(wire::encode(out, wire::Death{.entity = i, .killer = 0}), wire::WireError::kNone);
    }
    server.write(out);
    std::vector<std::uint32_t> deaths;
    const auto on = [&deaths](const auto& m) {
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, wire::Death>) {
            deaths.push_back(m.entity);
        }
    };
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (deaths.size() < 10 && std::chrono::steady_clock::now() < until) {
        auto n = c.poll(100ms, on, 3);
        ASSERT_TRUE(n.ok());
        EXPECT_LE(*n, 3U);
    }
    EXPECT_EQ(deaths, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(c.traffic().packets_received, 10U);
}

TEST(ClientPoll, ReportsTheCloseAfterTheLastPacket) {
    FakeServer server;
    client::Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", server.port()).ok());
    server.accept();
    std::string out;
    ASSERT_EQ(wire::encode(out, wire::Error{.code = wire::ErrorCode::kTakenOver,
                                            .opcode = 0,
                                            .detail = 0,
                                            .message = "Logged in from another connection"}),
              wire::WireError::kNone);
    server.write(out);
    server.close_peer();
    Seen seen;
    const auto r = poll_until(c, seen, [] { return false; });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, client::Error::Kind::kClosed);
    EXPECT_EQ(seen.items, std::vector<std::string>{"other"});  // the Error came first
    EXPECT_FALSE(c.connected());
}

TEST(ClientPoll, AnUndecodablePacketIsReportedAndSkipped) {
    FakeServer server;
    client::Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", server.port()).ok());
    server.accept();
    std::string out("\x08\x00\x02\x10\x00\x00\x01\x00", 8);  // a Correction cut short
    ASSERT_EQ(wire::encode(out, wire::Death{.entity = 5, .killer = 1}), wire::WireError::kNone);
    server.write(out);
    Seen seen;
    bool reported = false;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (seen.items.empty() && std::chrono::steady_clock::now() < until) {
        auto n = c.poll(100ms, [&seen](const auto& m) { seen(m); });
        if (!n) {
            EXPECT_EQ(n.error().kind, client::Error::Kind::kProtocol);
            reported = true;
        }
    }
    EXPECT_TRUE(reported);
    EXPECT_EQ(seen.items, std::vector<std::string>{"other"});  // the Death after it
}

TEST(ClientPoll, QueuedSendsAreBoundedAndWrittenWholeInOrder) {
    FakeServer server;
    client::Client c(client::ClientOptions{.timeout = 10s, .max_queued_send_bytes = 4096});
    ASSERT_TRUE(c.connect("127.0.0.1", server.port()).ok());
    server.accept();
    // The server does not read: the socket buffers fill, then the queue, then a send is refused
    // without waiting.
    std::uint32_t sent = 0;
    client::Status last = client::Done{};
    while (last.ok() && sent < 10'000'000) {
        const wire::Vec3 path[] = {{static_cast<float>(sent), 0, 0}};
        last = c.move(sent, path);
        if (last.ok()) {
            ++sent;
        }
    }
    ASSERT_FALSE(last.ok());
    EXPECT_EQ(last.error().kind, client::Error::Kind::kTimeout);
    // The queue's refusal, not the blocking send's timeout (which would have waited 10 s).
    EXPECT_NE(last.error().message.find("send queue is full"), std::string::npos)
        << last.error().message;
    EXPECT_TRUE(c.wants_write());
    // Once the server reads, flush() writes the rest; every packet arrives whole, in order.
    std::string all;
    const std::size_t size = 6 + 4 + 1 + 12;
    std::thread reader([&] { all = server.read(sent * size); });
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (c.wants_write() && std::chrono::steady_clock::now() < until) {
        ASSERT_TRUE(c.flush().ok());
        std::this_thread::yield();
    }
    reader.join();
    ASSERT_EQ(all.size(), sent * size);
    for (std::uint32_t i = 0; i < sent; i += 997) {
        const auto d =
            wire::decode<wire::MoveIntent>(std::string_view(all).substr(i * size + 6, size - 6));
        ASSERT_EQ(d.error, wire::WireError::kNone);
        EXPECT_EQ(d.message.seq, i);
    }
    EXPECT_EQ(c.traffic().packets_sent, sent);
    EXPECT_EQ(c.traffic().bytes_sent, sent * size);
}

}  // namespace
}  // namespace hearth::test
