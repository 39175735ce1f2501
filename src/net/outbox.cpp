#include "net/outbox.hpp"

namespace hearth::net {

namespace {

constexpr std::uint8_t kPongOpcode = 0x0A;

// Vectors that grew during a burst give their memory back once drained.
constexpr std::size_t kKeepCapacity = 64;

// The storage of drained queues, kept for the next queues of this thread that need some: an idle
// connection then keeps no queue storage at all (two frames' worth, 224 bytes, for the 101
// response it wrote), while a thread that fans a message out to a thousand connections, each
// queue filled and drained once per message, reuses the same storage every time instead of a
// malloc and a free per recipient. Bounded by the frames the spares can hold in total: past it a
// drained queue's storage is freed. Queues are touched only by their connection's thread.
class SpareQueues {
public:
    // About 256 KiB of frames per thread.
    static constexpr std::size_t kMaxFrames = 256 * 1024 / sizeof(OutFrame);

    void give(std::vector<OutFrame>& v) noexcept {
        if (v.capacity() > kKeepCapacity || frames_ + v.capacity() > kMaxFrames) {
            std::vector<OutFrame>().swap(v);
            return;
        }
        try {
            spares_.emplace_back();
        } catch (...) {
            std::vector<OutFrame>().swap(v);
            return;
        }
        frames_ += v.capacity();
        spares_.back().swap(v);
    }

    void take(std::vector<OutFrame>& v) noexcept {
        if (spares_.empty()) {
            return;
        }
        frames_ -= spares_.back().capacity();
        v.swap(spares_.back());
        spares_.pop_back();
    }

private:
    std::vector<std::vector<OutFrame>> spares_;
    std::size_t frames_ = 0;  // the spares' capacity, in frames
};

thread_local SpareQueues t_spares;

// Empties `v`, keeping its storage for the next queue on this thread, or freeing it.
void release(std::vector<OutFrame>& v) noexcept {
    v.clear();
    if (v.capacity() != 0) {
        t_spares.give(v);
    }
}

void append(std::vector<OutFrame>& v, OutFrame&& frame) {
    if (v.capacity() == 0) {
        t_spares.take(v);
    }
    v.push_back(std::move(frame));
}

}  // namespace

OutFrame Outbox::Queue::take_front() noexcept {
    OutFrame f = std::move(frames[head]);
    if (++head == frames.size()) {
        clear();
    }
    return f;
}

void Outbox::Queue::clear() noexcept {
    head = 0;
    release(frames);
}

bool Outbox::push_data(OutFrame frame) {
    const std::size_t size = frame.wire_size();
    if (data_bytes_ > 0 && data_bytes_ + size > max_data_bytes_) {
        return false;
    }
    data_bytes_ += size;
    append(data_.frames, std::move(frame));
    return true;
}

void Outbox::push_data_unbounded(OutFrame frame) {
    data_bytes_ += frame.wire_size();
    append(data_.frames, std::move(frame));
}

void Outbox::push_control(OutFrame frame) {
    frame.control = true;
    append(control_.frames, std::move(frame));
}

void Outbox::push_pong(OutFrame frame) {
    frame.control = true;
    for (std::size_t i = 0; i < control_.size(); ++i) {
        if ((control_[i].header[0] & 0x0F) == kPongOpcode) {
            control_[i] = std::move(frame);
            return;
        }
    }
    append(control_.frames, std::move(frame));
}

void Outbox::push_last(OutFrame frame) {
    frame.control = true;
    append(data_.frames, std::move(frame));
}

void Outbox::Queue::collect(std::vector<std::function<void(bool)>>& out) {
    for (std::size_t i = head; i < frames.size(); ++i) {
        if (frames[i].on_written) {
            out.push_back(std::move(frames[i].on_written));
        }
    }
}

std::vector<std::function<void(bool)>> Outbox::drop_queued_data() {
    std::vector<std::function<void(bool)>> callbacks;
    data_.collect(callbacks);
    for (std::size_t i = 0; i < data_.size(); ++i) {
        if (!data_[i].control) {
            data_bytes_ -= data_[i].wire_size();
        }
    }
    data_.clear();
    return callbacks;
}

std::size_t Outbox::gather(std::vector<boost::asio::const_buffer>& out, std::size_t max_frames,
                           std::size_t max_bytes) {
    if (in_flight()) {
        return 0;
    }
    std::size_t bytes = 0;
    for (Queue* q : {&control_, &data_}) {
        while (q->size() > 0 && in_flight_.size() < max_frames && bytes < max_bytes) {
            append(in_flight_, q->take_front());
            bytes += in_flight_.back().wire_size();
        }
    }
    // Buffers are taken only now: in_flight_ does not grow again until complete().
    for (const OutFrame& f : in_flight_) {
        if (f.header_size > 0) {
            out.emplace_back(f.header.data(), f.header_size);
        }
        const std::string_view body = f.body();
        if (!body.empty()) {
            out.emplace_back(body.data(), body.size());
        }
    }
    return in_flight_.size();
}

std::vector<std::function<void(bool)>> Outbox::complete() {
    std::vector<std::function<void(bool)>> callbacks;
    for (OutFrame& f : in_flight_) {
        if (!f.control) {
            data_bytes_ -= f.wire_size();
        }
        if (f.on_written) {
            callbacks.push_back(std::move(f.on_written));
        }
    }
    release(in_flight_);
    return callbacks;
}

std::vector<std::function<void(bool)>> Outbox::clear() {
    std::vector<std::function<void(bool)>> callbacks;
    for (OutFrame& f : in_flight_) {
        if (f.on_written) {
            callbacks.push_back(std::move(f.on_written));
        }
    }
    control_.collect(callbacks);
    data_.collect(callbacks);
    control_.clear();
    data_.clear();
    release(in_flight_);
    data_bytes_ = 0;
    return callbacks;
}

}  // namespace hearth::net
