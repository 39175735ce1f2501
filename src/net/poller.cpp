#include "net/poller.hpp"
#include <cerrno>
#include <system_error>
#include <utility>

#include <boost/asio/error.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace hearth::net {

namespace {

// Events read per epoll_wait; more ready sockets stay in the set and make it readable again.
constexpr int kMaxEventsPerWake = 256;

int make_epoll() {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "epoll_create1");
    }
    return fd;
}

}  // namespace

bool poll_connection(Poller* poller, int fd, const std::shared_ptr<PollClient>& client,
                     boost::system::error_code& ec) {
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (poller == nullptr) {
        ec = boost::asio::error::shut_down;  // the server is gone
        return false;
    }
    return client->polled() || poller->add(fd, client, ec);
}

Poller::Poller(boost::asio::io_context& io)
    : epoll_fd_(make_epoll()), descriptor_(io.get_executor(), epoll_fd_) {
    events_.resize(kMaxEventsPerWake);
}

Poller::~Poller() {
    clear();
}

bool Poller::add(int fd, std::shared_ptr<PollClient> client, boost::system::error_code& ec) {
    std::uint32_t index = 0;
    if (free_.empty()) {
        index = static_cast<std::uint32_t>(entries_.size());
        entries_.emplace_back();
    } else {
        index = free_.back();
        free_.pop_back();
    }
    Entry& entry = entries_[index];
    ++entry.generation;
    epoll_event ev{};
    // Edge-triggered: registered once for the socket's life, never modified (no epoll_ctl per
    // read or write); the client reads and writes until the socket would block.
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (static_cast<std::uint64_t>(entry.generation) << 32) | index;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ec.assign(errno, boost::system::system_category());
        free_.push_back(index);
        return false;
    }
    client->poll_slot_ = index + 1;
    entry.client = std::move(client);
    if (!waiting_) {
        wait();
    }
    return true;
}

void Poller::replace(PollClient& from, std::shared_ptr<PollClient> to) noexcept {
    if (from.poll_slot_ == 0) {
        return;
    }
    Entry& entry = entries_[from.poll_slot_ - 1];
    to->poll_slot_ = std::exchange(from.poll_slot_, 0);
    to->hung_up_ = from.hung_up_;  // an edge the old owner saw comes no more
    // The generation stays: events already read for the socket are the new owner's to handle.
    auto previous = std::exchange(entry.client, std::move(to));
    if (dispatching_) {
        removed_.push_back(std::move(previous));
    }
}

void Poller::remove(PollClient& client, int fd) noexcept {
    if (client.poll_slot_ == 0) {
        return;
    }
    const std::uint32_t index = client.poll_slot_ - 1;
    client.poll_slot_ = 0;
    epoll_event ignored{};
    (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ignored);
    release(index);
}

void Poller::release(std::uint32_t index) noexcept {
    Entry& entry = entries_[index];
    ++entry.generation;  // events already read for this entry are stale now
    auto client = std::move(entry.client);
    free_.push_back(index);
    if (dispatching_) {
        removed_.push_back(std::move(client));
        return;
    }
    if (free_.size() == entries_.size() && entries_.size() > 1024) {
        // A burst of connections is over: give the memory back.
        std::vector<Entry>().swap(entries_);
        std::vector<std::uint32_t>().swap(free_);
    }
    // `client` goes last, when the poller is consistent again: its destructor may remove others.
}

void Poller::clear() noexcept {
    auto entries = std::move(entries_);
    entries_.clear();
    free_.clear();
    for (auto& e : entries) {
        if (e.client) {
            e.client->poll_slot_ = 0;
        }
    }
    boost::system::error_code ignored;
    descriptor_.close(ignored);  // closes epoll_fd_, and the wait ends (operation_aborted)
    epoll_fd_ = -1;
    removed_.clear();
    entries.clear();
}

void Poller::wait() {
    if (epoll_fd_ < 0) {
        return;
    }
    waiting_ = true;
    descriptor_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                           [this](const boost::system::error_code& ec) {
                               waiting_ = false;
                               if (ec) {
                                   return;  // cleared
                               }
                               dispatch();
                               wait();
                           });
}

void Poller::dispatch() {
    const int n = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), 0);
    if (n <= 0) {
        return;  // EINTR, or nothing after all: wait again
    }
    dispatching_ = true;
    for (int i = 0; i < n; ++i) {
        const std::uint64_t data = events_[static_cast<std::size_t>(i)].data.u64;
        const auto index = static_cast<std::uint32_t>(data & 0xffffffffU);
        const auto generation = static_cast<std::uint32_t>(data >> 32);
        if (index >= entries_.size()) {
            continue;
        }
        Entry& entry = entries_[index];
        if (entry.generation != generation || !entry.client) {
            continue;  // removed (and maybe reused) since the event was read
        }
        // A raw pointer is enough: removing the client during its call parks the reference in
        // removed_ until the batch ends.
        PollClient* client = entry.client.get();
        const std::uint32_t events = events_[static_cast<std::size_t>(i)].events;
        if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
            client->hung_up_ = true;
        }
        client->on_ready(events);
    }
    dispatching_ = false;
    removed_.clear();
}

}  // namespace hearth::net
