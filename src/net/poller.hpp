#pragma once

// Readiness of the raw sockets of one io thread: one epoll set per thread, waited on through Asio.

#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>
#include <sys/epoll.h>

namespace hearth::net {

class Poller;

/// A socket registered with its thread's Poller. Runs on: its io thread, like the Poller.
class PollClient {
public:
    virtual ~PollClient() = default;

    /// The socket became readable (or the peer closed, or it failed: `events` holds EPOLLRDHUP,
    /// EPOLLHUP, EPOLLERR) and/or writable (EPOLLOUT). Edge-triggered: called once per change,
    /// so the client reads (and writes) until the socket would block. May be called with nothing
    /// new to do (a readiness it already used): the client must tolerate it.
    virtual void on_ready(std::uint32_t events) = 0;

    bool polled() const noexcept { return poll_slot_ != 0; }

    /// Whether the poller has reported the peer's hang-up (or a failure) for this socket. A
    /// client that stops reading at a short read (the socket drained: the next bytes bring a new
    /// edge) must read on to the end of stream once this is set: the peer's FIN may wait behind
    /// the bytes just read, reported by the same edge or by one that came while reading was
    /// paused, and no other edge comes for it.
    bool hung_up() const noexcept { return hung_up_; }

    /// The events that mean "read now": input, the peer's end of it, or a failure.
    static constexpr std::uint32_t kInputEvents = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;

private:
    friend class Poller;
    std::uint32_t poll_slot_ = 0;  // entry index + 1; 0: not registered
    bool hung_up_ = false;
};

/// Why not Asio's own sockets for connections: Asio's reactor keeps a 168-byte descriptor state
/// per socket, and a socket waiting for readability holds a wait operation (about 100 bytes) and
/// costs an epoll_ctl(EPOLL_CTL_MOD) for every wait it starts, that is per message received: with
/// 15,000 idle WebSockets that was a quarter of their memory, and under echo load the epoll_ctl
/// was a third of the system calls. Here each socket is added once, edge-triggered for input and
/// output, to an epoll set of its thread; the set's descriptor is the only thing Asio waits on.
/// uWebSockets and nginx poll the same way.
///
/// The poller holds a strong reference to each registered client (as a pending Asio operation
/// did), so a connection lives while its socket is registered. `remove` takes it out; a
/// reference removed while events are being dispatched is dropped after the batch, so that an
/// event already read for it is never delivered to a destroyed client. `clear` drops everything
/// (the server calls it once the io threads have stopped). Runs on: its io thread; not
/// thread-safe.
class Poller {
public:
    explicit Poller(boost::asio::io_context& io);
    ~Poller();
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    /// Registers `fd` for `client`. False (nothing registered, `ec` set) when epoll refuses it.
    bool add(int fd, std::shared_ptr<PollClient> client, boost::system::error_code& ec);
    /// Hands `from`'s registration to `to` (the same socket, a new owner: an HTTP connection that
    /// became a WebSocket), without a system call.
    void replace(PollClient& from, std::shared_ptr<PollClient> to) noexcept;
    /// Unregisters `client`'s socket; nothing when it is not registered. Call before closing the
    /// descriptor (its number may be reused at once).
    void remove(PollClient& client, int fd) noexcept;
    /// Unregisters everything without calling anyone and stops waiting.
    void clear() noexcept;

    std::size_t size() const noexcept { return entries_.size() - free_.size(); }

private:
    struct Entry {
        std::shared_ptr<PollClient> client;
        std::uint32_t generation = 0;  // in the event's data: an event for an earlier client of
                                       // this entry is ignored
    };

    void wait();
    void dispatch();
    void release(std::uint32_t index) noexcept;

    int epoll_fd_ = -1;
    boost::asio::posix::basic_stream_descriptor<boost::asio::io_context::executor_type> descriptor_;
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> free_;
    std::vector<epoll_event> events_;
    // References removed while dispatching, dropped after the batch.
    std::vector<std::shared_ptr<PollClient>> removed_;
    bool dispatching_ = false;
    bool waiting_ = false;
};

/// What a connection does first with its socket: no Nagle delay (frames go out as they are
/// written), and registered with its thread's poller unless it took over a registration already.
/// False (`ec` set): the socket cannot be polled (epoll's watch limit) and the connection must end,
/// since nothing would ever tell it of input.
bool poll_connection(Poller* poller, int fd, const std::shared_ptr<PollClient>& client,
                     boost::system::error_code& ec);

}  // namespace hearth::net
