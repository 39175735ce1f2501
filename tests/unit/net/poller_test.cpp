#include "net/poller.hpp"
#include <array>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/raw_socket.hpp"

namespace hearth::net {
namespace {

// A connected pair of non-blocking stream sockets: `ours` is polled, `theirs` is the peer.
struct Pair {
    Pair() {
        std::array<int, 2> fds{};
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds.data()), 0);
        ours = RawSocket(fds[0]);
        theirs = RawSocket(fds[1]);
    }
    RawSocket ours;
    RawSocket theirs;
};

// Reads what the poller reports until the socket would block; `also` runs after each report.
struct Reader : PollClient {
    explicit Reader(RawSocket& s) : socket(s) {}
    void on_ready(std::uint32_t events) override {
        ++reports;
        last_events = events;
        std::array<std::uint8_t, 64> buffer{};
        for (;;) {
            boost::system::error_code ec;
            const std::size_t n = socket.read_some(buffer, ec);
            if (ec) {
                eof = eof || ec == boost::asio::error::eof;
                break;
            }
            received.append(reinterpret_cast<const char*>(buffer.data()), n);
        }
        if (also) {
            also();
        }
    }
    RawSocket& socket;
    int reports = 0;
    std::uint32_t last_events = 0;
    std::string received;
    bool eof = false;
    std::function<void()> also;
};

void send(RawSocket& s, std::string_view bytes) {
    boost::system::error_code ec;
    const std::array buffers{boost::asio::const_buffer(bytes.data(), bytes.size())};
    EXPECT_EQ(s.write_some(buffers, ec), bytes.size());
    EXPECT_FALSE(ec);
}

// A reader registered with `poller` and referenced by nothing else.
std::weak_ptr<Reader> register_only_in(Poller& poller, RawSocket& socket) {
    auto reader = std::make_shared<Reader>(socket);
    boost::system::error_code ec;
    EXPECT_TRUE(poller.add(socket.native_handle(), reader, ec)) << ec.message();
    return reader;
}

TEST(Poller, ReportsInputAndTheEndOfIt) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair pair;
    auto reader = std::make_shared<Reader>(pair.ours);
    boost::system::error_code ec;
    ASSERT_TRUE(poller.add(pair.ours.native_handle(), reader, ec));
    EXPECT_TRUE(reader->polled());
    send(pair.theirs, "hello");
    reader->also = [&] {
        if (!reader->received.empty()) {
            pair.theirs.close();  // the next report is the end of input
        }
        if (reader->eof) {
            io.stop();
        }
    };
    io.run();
    EXPECT_EQ(reader->received, "hello");
    EXPECT_TRUE(reader->eof);
    poller.remove(*reader, pair.ours.native_handle());
    EXPECT_FALSE(reader->polled());
    EXPECT_EQ(poller.size(), 0u);
}

// Bytes and the peer's shutdown that arrive before the client reads come as one edge: a client
// that stops at a short read learns from hung_up() that the end of stream still waits.
TEST(Poller, TellsAClientThePeerHungUpAndTheReplacementToo) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair pair;
    auto first = std::make_shared<Reader>(pair.ours);
    first->also = [&] { io.stop(); };
    boost::system::error_code ec;
    ASSERT_TRUE(poller.add(pair.ours.native_handle(), first, ec));
    EXPECT_FALSE(first->hung_up());
    send(pair.theirs, "bye");
    ASSERT_EQ(::shutdown(pair.theirs.native_handle(), SHUT_WR), 0);
    io.run();
    EXPECT_TRUE(first->hung_up());
    EXPECT_NE(first->last_events & EPOLLRDHUP, 0u);

    // The registration handed on keeps what the edge said: none comes again.
    auto second = std::make_shared<Reader>(pair.ours);
    poller.replace(*first, second);
    EXPECT_TRUE(second->hung_up());
    poller.remove(*second, pair.ours.native_handle());
}

TEST(Poller, KeepsItsClientsAliveUntilRemoved) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair pair;
    const std::weak_ptr<Reader> weak = register_only_in(poller, pair.ours);
    ASSERT_TRUE(weak.lock() && weak.lock()->polled());
    poller.remove(*weak.lock(), pair.ours.native_handle());
    EXPECT_TRUE(weak.expired());
}

// A client removed (and its entry reused) by another client's report in the same batch gets no
// report meant for it: the event is stale.
TEST(Poller, AClientRemovedDuringABatchIsNotCalledAgain) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair first;
    Pair second;
    auto a = std::make_shared<Reader>(first.ours);
    auto b = std::make_shared<Reader>(second.ours);
    boost::system::error_code ec;
    ASSERT_TRUE(poller.add(first.ours.native_handle(), a, ec));
    ASSERT_TRUE(poller.add(second.ours.native_handle(), b, ec));
    // Whichever is reported first removes the other, and a third client takes its entry.
    Pair third;
    auto c = std::make_shared<Reader>(third.ours);
    bool removed = false;
    auto remove_other = [&](Reader& other, RawSocket& other_socket) {
        if (!removed) {
            removed = true;
            poller.remove(other, other_socket.native_handle());
            ASSERT_TRUE(poller.add(third.ours.native_handle(), c, ec));
        }
        io.stop();
    };
    a->also = [&] { remove_other(*b, second.ours); };
    b->also = [&] { remove_other(*a, first.ours); };
    send(first.theirs, "x");
    send(second.theirs, "y");
    io.run();
    // The removed one was not called with its stale event, nor was the client now in its entry.
    EXPECT_EQ(a->reports + b->reports, 1);
    EXPECT_EQ(c->reports, 0);
    EXPECT_EQ(poller.size(), 2u);
}

TEST(Poller, ReportsThatAFullSocketDrainedEnoughToWriteAgain) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair pair;
    auto reader = std::make_shared<Reader>(pair.ours);
    boost::system::error_code ec;
    ASSERT_TRUE(poller.add(pair.ours.native_handle(), reader, ec));
    // Fill our side until the socket refuses more.
    const std::string chunk(64 * 1024, 'z');
    const std::array buffers{boost::asio::const_buffer(chunk.data(), chunk.size())};
    std::size_t queued = 0;
    for (;;) {
        const std::size_t n = pair.ours.write_some(buffers, ec);
        if (ec) {
            ASSERT_EQ(ec, boost::asio::error::would_block);
            break;
        }
        queued += n;
    }
    ASSERT_GT(queued, 0u);
    reader->also = [&] {
        if ((reader->last_events & EPOLLOUT) != 0) {
            io.stop();
        }
    };
    // The peer reads everything: the socket becomes writable, and the poller says so.
    std::array<std::uint8_t, 64 * 1024> sink{};
    while (queued > 0) {
        const std::size_t n = pair.theirs.read_some(sink, ec);
        if (ec) {
            ASSERT_EQ(ec, boost::asio::error::would_block);
            break;
        }
        queued -= n;
    }
    io.run();
    EXPECT_NE(reader->last_events & EPOLLOUT, 0u);
    poller.remove(*reader, pair.ours.native_handle());
}

TEST(Poller, ClearDropsEveryClientAndStopsWaiting) {
    boost::asio::io_context io;
    Poller poller(io);
    Pair pair;
    const std::weak_ptr<Reader> weak = register_only_in(poller, pair.ours);
    ASSERT_TRUE(weak.lock() && weak.lock()->polled());
    poller.clear();
    EXPECT_TRUE(weak.expired());
    EXPECT_EQ(poller.size(), 0u);
    io.run();  // nothing is left to wait for: returns
}

}  // namespace
}  // namespace hearth::net
