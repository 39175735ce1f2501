#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>

#include <hearth/payload.hpp>

namespace hearth::net {

/// One frame waiting to be written: a small header kept inline and a body that is either a view
/// into a shared payload or buffer (data frames: no copy per recipient; send_view) or owned bytes
/// (control frames, the HTTP 101 response, a stream payload sent to one connection alone with
/// send_own).
struct OutFrame {
    std::array<std::uint8_t, 10> header{};
    std::uint8_t header_size = 0;
    bool control = false;
    // Keeps `shared_body` alive: a shared payload (its bytes or its derived, compressed form),
    // or a buffer of several connections' own bytes (StreamConnection::send_view).
    std::shared_ptr<const void> keeper;
    std::string_view shared_body;
    std::string owned;                     // set: the frame's own bytes, not a view
    std::function<void(bool)> on_written;  // optional: told whether the frame reached the kernel

    std::string_view body() const noexcept {
        return owned.empty() ? shared_body : std::string_view(owned);
    }
    std::size_t wire_size() const noexcept { return header_size + body().size(); }
};

/// The write queue of one connection: data frames, control frames ahead of them. Pure logic with
/// no I/O, so the order is unit-tested without sockets. It keeps no bound of its own: the
/// connection admits data against its SendBound (send_bound.hpp), which also counts what other
/// threads posted and is the one place the slow-consumer policy looks.
/// Runs on: the owning connection's thread.
///
/// A write takes a batch from the front (`gather`) and, once the socket accepted all of it,
/// `complete` drops it. Frames pushed while a batch is in flight wait for the next batch; control
/// frames go ahead of queued data, never into a batch already in flight.
class Outbox {
public:
    Outbox() = default;

    /// Queues a data frame the caller admitted against its bound.
    void push_data(OutFrame frame);
    /// Never refused: the protocol bounds control frames (one close; pongs coalesce).
    void push_control(OutFrame frame);
    /// Replaces a pong still waiting (RFC 6455 5.5.3 allows answering only the latest ping), so a
    /// ping flood cannot grow the queue.
    void push_pong(OutFrame frame);

    /// Queues a control frame after everything already queued (the close frame: it must be the
    /// last frame on the wire). Not counted in data_bytes().
    void push_last(OutFrame frame);
    /// Drops queued data frames that are not yet in flight (a slow consumer about to be closed).
    /// Returns the dropped frames' `on_written` callbacks, for the caller to run with false.
    std::vector<std::function<void(bool)>> drop_queued_data();

    /// Moves the next batch (at most `max_frames` frames; it stops adding at `max_bytes`) in flight
    /// and appends its buffers to `out`; they stay valid until `complete`. Returns the number of
    /// frames; 0 when nothing is queued or a batch is already in flight.
    std::size_t gather(std::vector<boost::asio::const_buffer>& out, std::size_t max_frames,
                       std::size_t max_bytes);
    /// The batch in flight was written: drop it. Returns the frames' `on_written` callbacks (the
    /// caller runs them: not from inside the outbox, which they might re-enter).
    std::vector<std::function<void(bool)>> complete();

    bool empty() const noexcept { return q_ == nullptr; }
    bool in_flight() const noexcept { return q_ != nullptr && !q_->in_flight.empty(); }
    std::size_t queued() const noexcept {
        return q_ == nullptr ? 0 : q_->control.size() + q_->data.size();
    }
    /// Data bytes queued or in flight: what the connection's bound applies to.
    std::size_t data_bytes() const noexcept { return q_ == nullptr ? 0 : q_->data_bytes; }
    /// Empties everything; returns every pending `on_written` callback, to run with false.
    std::vector<std::function<void(bool)>> clear();

    Outbox(Outbox&&) noexcept = default;
    Outbox& operator=(Outbox&&) noexcept = default;
    ~Outbox();

private:
    // A vector with a moving head rather than std::deque: an empty one allocates nothing, which
    // matters with 100,000 idle connections (libstdc++'s deque allocates 576 bytes up front).
    struct Queue {
        std::vector<OutFrame> frames;
        std::size_t head = 0;

        std::size_t size() const noexcept { return frames.size() - head; }
        OutFrame& operator[](std::size_t i) noexcept { return frames[head + i]; }
        OutFrame take_front() noexcept;
        void clear() noexcept;
        void collect(std::vector<std::function<void(bool)>>& out);
    };
    // What an outbox holds while anything is queued or in flight. Taken from a pool of the
    // thread's when the first frame comes and given back when the last one is written: an idle
    // connection keeps a pointer, not the 88 bytes of three empty queues.
    struct Queues {
        std::size_t data_bytes = 0;
        Queue control;
        Queue data;
        std::vector<OutFrame> in_flight;
    };
    friend class SpareBlocks;

    Queues& queues();
    // Gives the block back to the thread's pool once nothing is queued or in flight.
    void release_if_empty() noexcept;

    std::unique_ptr<Queues> q_;  // null: nothing queued, nothing in flight
};

}  // namespace hearth::net
