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

}  // namespace

// Blocks of drained outboxes, kept for this thread's next outbox that queues something: a fan-out
// to a thousand connections takes and gives back a block per recipient without a malloc. Bounded:
// past kMaxBlocks a drained block is freed.
class SpareBlocks {
public:
    static constexpr std::size_t kMaxBlocks = 1024;

    std::unique_ptr<Outbox::Queues> take() {
        if (blocks_.empty()) {
            return std::make_unique<Outbox::Queues>();
        }
        auto block = std::move(blocks_.back());
        blocks_.pop_back();
        return block;
    }

    void give(std::unique_ptr<Outbox::Queues> block) noexcept {
        if (blocks_.size() >= kMaxBlocks) {
            return;  // freed here
        }
        try {
            blocks_.push_back(std::move(block));
        } catch (...) {
            // freed with `block`
        }
    }

private:
    std::vector<std::unique_ptr<Outbox::Queues>> blocks_;
};

namespace {

thread_local SpareBlocks t_blocks;

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

Outbox::~Outbox() = default;  // a block is freed, not pooled: this may be another thread

Outbox::Queues& Outbox::queues() {
    if (q_ == nullptr) {
        q_ = t_blocks.take();
    }
    return *q_;
}

void Outbox::release_if_empty() noexcept {
    if (q_ != nullptr && q_->control.size() == 0 && q_->data.size() == 0 && q_->in_flight.empty()) {
        q_->data_bytes = 0;
        q_->control.clear();
        q_->data.clear();
        release(q_->in_flight);
        t_blocks.give(std::move(q_));
        q_.reset();
    }
}

void Outbox::push_data(OutFrame frame) {
    Queues& q = queues();
    q.data_bytes += frame.wire_size();
    append(q.data.frames, std::move(frame));
}

void Outbox::push_control(OutFrame frame) {
    frame.control = true;
    append(queues().control.frames, std::move(frame));
}

void Outbox::push_pong(OutFrame frame) {
    frame.control = true;
    Queue& control = queues().control;
    for (std::size_t i = 0; i < control.size(); ++i) {
        if ((control[i].header[0] & 0x0F) == kPongOpcode) {
            control[i] = std::move(frame);
            return;
        }
    }
    append(control.frames, std::move(frame));
}

void Outbox::push_last(OutFrame frame) {
    frame.control = true;
    append(queues().data.frames, std::move(frame));
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
    if (q_ == nullptr) {
        return callbacks;
    }
    Queue& data = q_->data;
    data.collect(callbacks);
    for (std::size_t i = 0; i < data.size(); ++i) {
        if (!data[i].control) {
            q_->data_bytes -= data[i].wire_size();
        }
    }
    data.clear();
    release_if_empty();
    return callbacks;
}

std::size_t Outbox::gather(std::vector<boost::asio::const_buffer>& out, std::size_t max_frames,
                           std::size_t max_bytes) {
    if (q_ == nullptr || !q_->in_flight.empty()) {
        return 0;
    }
    std::vector<OutFrame>& in_flight = q_->in_flight;
    std::size_t bytes = 0;
    for (Queue* q : {&q_->control, &q_->data}) {
        while (q->size() > 0 && in_flight.size() < max_frames && bytes < max_bytes) {
            append(in_flight, q->take_front());
            bytes += in_flight.back().wire_size();
        }
    }
    // Buffers are taken only now: in_flight does not grow again until complete().
    for (const OutFrame& f : in_flight) {
        if (f.header_size > 0) {
            out.emplace_back(f.header.data(), f.header_size);
        }
        const std::string_view body = f.body();
        if (!body.empty()) {
            out.emplace_back(body.data(), body.size());
        }
    }
    return in_flight.size();
}

std::vector<std::function<void(bool)>> Outbox::complete() {
    std::vector<std::function<void(bool)>> callbacks;
    if (q_ == nullptr) {
        return callbacks;
    }
    for (OutFrame& f : q_->in_flight) {
        if (!f.control) {
            q_->data_bytes -= f.wire_size();
        }
        if (f.on_written) {
            callbacks.push_back(std::move(f.on_written));
        }
    }
    release(q_->in_flight);
    release_if_empty();
    return callbacks;
}

std::vector<std::function<void(bool)>> Outbox::clear() {
    std::vector<std::function<void(bool)>> callbacks;
    if (q_ == nullptr) {
        return callbacks;
    }
    for (OutFrame& f : q_->in_flight) {
        if (f.on_written) {
            callbacks.push_back(std::move(f.on_written));
        }
    }
    q_->control.collect(callbacks);
    q_->data.collect(callbacks);
    q_->in_flight.clear();
    q_->control.clear();
    q_->data.clear();
    release_if_empty();
    return callbacks;
}

}  // namespace hearth::net
