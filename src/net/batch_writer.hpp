#pragma once

// Gathered writes of an outbox to a raw socket: the sending half that WebSocket and raw TCP
// connections share.

#include <cstddef>
#include <memory>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include "net/outbox.hpp"
#include "net/raw_socket.hpp"

namespace hearth::net {

/// Writes an Outbox's batches to a non-blocking RawSocket. Most batches fit in the socket's send
/// buffer and are written at once, with no copy of their buffer list and no Asio operation; the
/// rest of a batch the socket does not take is kept (the only memory a slow reader costs here
/// beyond its queued frames) and written when the Poller reports the socket writable.
/// Runs on: the connection's thread.
class BatchWriter {
public:
    enum class Step {
        kNothing,  // nothing queued (or a batch is in flight already)
        kWaiting,  // part of the batch is written; the rest waits for `resume`
        kDone,     // the batch is written, or failed: `result` says which; call outbox.complete()
    };
    struct Result {
        boost::system::error_code ec;
        std::size_t bytes = 0;  // of the batch, written
    };

    static constexpr std::size_t kMaxBatchFrames = 256;  // IOV_MAX is 1024; 2 buffers per frame
    static constexpr std::size_t kMaxBatchBytes = 512 * 1024;

    /// Takes the outbox's next batch into `scratch` (the thread's, reused by every connection)
    /// and writes it.
    Step start(RawSocket& socket, Outbox& outbox, std::vector<boost::asio::const_buffer>& scratch,
               Result& result);
    /// The socket is writable: writes more of the waiting rest.
    Step resume(RawSocket& socket, Result& result);

    bool waiting() const noexcept { return rest_ != nullptr; }
    /// The connection is closing: the rest will not be written.
    void abandon() noexcept;

private:
    void keep_rest(const std::vector<boost::asio::const_buffer>& batch, std::size_t written);
    void consume(std::size_t n);

    // Only while a batch waits for the socket (a slow reader): a connection that keeps up holds a
    // pointer, not an empty vector and a count.
    struct Rest {
        std::vector<boost::asio::const_buffer> buffers;
        std::size_t written = 0;  // of the waiting batch
    };
    std::unique_ptr<Rest> rest_;
};

}  // namespace hearth::net
