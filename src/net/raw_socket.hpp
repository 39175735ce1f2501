#pragma once

// A connected TCP socket held as a plain descriptor, its readiness reported by the io thread's
// Poller (net/poller.hpp) rather than by Asio's reactor.

#include <cerrno>
#include <cstddef>
#include <span>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace hearth::net {

/// Owns a non-blocking descriptor. Reads and writes never wait: they return what the socket took
/// or gave, and asio::error::would_block when it had nothing. Runs on: its io thread.
class RawSocket {
public:
    RawSocket() = default;
    explicit RawSocket(int fd) noexcept : fd_(fd) {}
    RawSocket(RawSocket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    RawSocket& operator=(RawSocket&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    RawSocket(const RawSocket&) = delete;
    RawSocket& operator=(const RawSocket&) = delete;
    ~RawSocket() { close(); }

    int native_handle() const noexcept { return fd_; }
    bool is_open() const noexcept { return fd_ >= 0; }
    /// Gives the descriptor up (to an Asio socket).
    int release() noexcept { return std::exchange(fd_, -1); }

    boost::asio::ip::tcp::endpoint remote_endpoint(boost::system::error_code& ec) const noexcept {
        boost::asio::ip::tcp::endpoint endpoint;
        auto size = static_cast<socklen_t>(endpoint.capacity());
        if (::getpeername(fd_, endpoint.data(), &size) != 0) {
            ec = last_error();
            return {};
        }
        endpoint.resize(size);
        ec = {};
        return endpoint;
    }

    std::size_t read_some(std::span<std::uint8_t> into, boost::system::error_code& ec) noexcept {
        for (;;) {
            const ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
            if (n > 0) {
                ec = {};
                return static_cast<std::size_t>(n);
            }
            if (n == 0) {
                ec = boost::asio::error::eof;
                return 0;
            }
            if (errno != EINTR) {
                ec = last_error();
                return 0;
            }
        }
    }

    /// One sendmsg of the buffers (at most IOV_MAX of them; the caller's batches are smaller).
    template <class Buffers>
    std::size_t write_some(const Buffers& buffers, boost::system::error_code& ec) noexcept {
        constexpr std::size_t kMaxIov = 1024;  // IOV_MAX on Linux
        iovec iov[kMaxIov];
        std::size_t count = 0;
        for (const auto& b : buffers) {
            if (count == kMaxIov) {
                break;
            }
            if (b.size() == 0) {
                continue;
            }
            // sendmsg reads the buffers only.
            iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
        }
        if (count == 0) {
            ec = {};
            return 0;
        }
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = count;
        for (;;) {
            const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0) {
                ec = {};
                return static_cast<std::size_t>(n);
            }
            if (errno != EINTR) {
                ec = last_error();
                return 0;
            }
        }
    }

    void shutdown_send() noexcept {
        if (fd_ >= 0) {
            (void)::shutdown(fd_, SHUT_WR);
        }
    }

    void close() noexcept {
        if (fd_ >= 0) {
            (void)::close(fd_);
            fd_ = -1;
        }
    }

private:
    static boost::system::error_code last_error() noexcept {
        const int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            return boost::asio::error::would_block;
        }
        return {e, boost::asio::error::get_system_category()};
    }

    int fd_ = -1;
};

/// Gives a RawSocket's descriptor to an Asio socket on `executor` (for Beast's HTTP session).
template <class AsioSocket, class Executor>
AsioSocket raw_to_asio(RawSocket& raw, const Executor& executor, boost::system::error_code& ec) {
    AsioSocket socket(executor);
    const auto endpoint = raw.remote_endpoint(ec);
    if (!ec) {
        socket.assign(endpoint.protocol(), raw.native_handle(), ec);
    }
    if (!ec) {
        (void)raw.release();  // the Asio socket owns it now
    }
    return socket;
}

/// Takes the descriptor of an Asio socket (out of Asio's reactor) for a RawSocket, non-blocking.
/// Nothing may be pending on the socket.
template <class AsioSocket>
RawSocket release_to_raw(AsioSocket& socket, boost::system::error_code& ec) {
    const int fd = socket.release(ec);
    if (ec) {
        return RawSocket();
    }
    int on = 1;
    if (::ioctl(fd, FIONBIO, &on) != 0) {
        ec.assign(errno, boost::asio::error::get_system_category());
        (void)::close(fd);
        return RawSocket();
    }
    return RawSocket(fd);
}

}  // namespace hearth::net
