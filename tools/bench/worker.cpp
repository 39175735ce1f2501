#include "bench/worker.hpp"
#include <algorithm>

namespace hearth::bench {

namespace {
constexpr auto kSweepInterval = std::chrono::milliseconds(100);
}  // namespace

Worker::Worker(std::size_t index, RunShared& shared)
    : index_(index),
      shared_(shared),
      guard_(io_.get_executor()),
      read_buffer_(std::make_unique<std::uint8_t[]>(kReadBufferBytes)),
      rng_(0x9E3779B97F4A7C15ULL ^ (now_ns() + index * 0x632BE59BD9B4E019ULL)),
      sweep_(io_),
      ticker_(io_) {}

Worker::~Worker() {
    stop();
    // Connections go before the timers and the io_context (declaration order does the rest):
    // their pending operations are destroyed, never run, with the io_context.
    connections_.clear();
}

void Worker::start() {
    thread_ = std::thread([this] { io_.run(); });
}

void Worker::stop() {
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) {
        thread_.join();
    }
}

std::uint64_t Worker::random() noexcept {
    // xorshift64*: masks and handshake keys need no cryptographic strength, only variety.
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545F4914F6CDD1DULL;
}

namespace {
// At most `max` bytes of `text`, cut at a UTF-8 character boundary, control characters replaced:
// reasons quote the server (close reasons, error codes) and become keys of the JSON report.
std::string printable(std::string_view text, std::size_t max) {
    if (text.size() > max) {
        std::size_t cut = max;
        while (cut > 0 && (static_cast<std::uint8_t>(text[cut]) & 0xC0) == 0x80) {
            --cut;  // a continuation byte: the character started before
        }
        text = text.substr(0, cut);
    }
    std::string out(text);
    for (auto& c : out) {
        if (static_cast<std::uint8_t>(c) < 0x20 || c == 0x7F) {
            c = ' ';
        }
    }
    return out;
}
}  // namespace

void Worker::count_reason(std::string_view raw) {
    const std::string reason = printable(raw, kMaxReasonBytes);
    if (auto it = reasons_.find(reason); it != reasons_.end()) {
        ++it->second;
        return;
    }
    if (reasons_.size() >= kMaxCloseReasons) {
        ++reasons_["other"];
        return;
    }
    reasons_.emplace(reason, 1);
}

void Worker::add(std::unique_ptr<Connection> connection, std::optional<asio::ip::address> source) {
    connections_.push_back(std::move(connection));
    sources_.push_back(source);
}

void Worker::start_connecting(std::size_t max_in_progress) {
    max_in_progress_ = std::max<std::size_t>(1, max_in_progress);
    start_next();
}

void Worker::handshake_done() {
    if (in_progress_ > 0) {
        --in_progress_;
    }
    start_next();
}

void Worker::stop_connecting() {
    next_start_ = connections_.size();
    std::vector<std::optional<asio::ip::address>>().swap(sources_);
}

void Worker::start_next() {
    while (in_progress_ < max_in_progress_ && next_start_ < connections_.size()) {
        const std::size_t i = next_start_++;
        ++in_progress_;
        connections_[i]->start(shared_.target, sources_[i], shared_.extra_headers);
    }
    if (next_start_ == connections_.size()) {
        std::vector<std::optional<asio::ip::address>>().swap(sources_);
    }
}

void Worker::watch(Connection* connection) {
    watched_.push_back(connection);
    arm_sweep();
}

void Worker::arm_sweep() {
    if (sweep_armed_ || watched_.empty()) {
        return;
    }
    sweep_armed_ = true;
    sweep_.expires_after(kSweepInterval);
    sweep_.async_wait([this](const boost::system::error_code& ec) {
        sweep_armed_ = false;
        if (ec) {
            return;
        }
        const auto now = Clock::now();
        // on_deadline() may end a connection, which may start the next handshake, which watches:
        // iterate over a copy so that new entries land in watched_ meanwhile.
        std::vector<Connection*> current;
        current.swap(watched_);
        for (Connection* c : current) {
            if (c->state() == Connection::State::kConnecting ||
                c->state() == Connection::State::kClosing) {
                if (now >= c->deadline()) {
                    c->on_deadline();
                }
            }
            if (c->state() == Connection::State::kConnecting ||
                c->state() == Connection::State::kClosing) {
                watched_.push_back(c);
            }
        }
        // A connection is watched once per state change (connecting, closing): drop duplicates.
        std::sort(watched_.begin(), watched_.end());
        watched_.erase(std::unique(watched_.begin(), watched_.end()), watched_.end());
        arm_sweep();
    });
}

void Worker::start_ticker(std::chrono::microseconds interval, std::function<bool()> tick) {
    tick_interval_ = interval;
    tick_ = std::move(tick);
    next_tick_ = Clock::now() + interval;
    arm_ticker();
}

void Worker::stop_ticker() {
    tick_ = nullptr;
    ticker_.cancel();
}

void Worker::arm_ticker() {
    ticker_.expires_at(next_tick_);
    ticker_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || !tick_) {
            return;
        }
        // Absolute expiries keep the pace; after a stall, skip the missed ticks rather than
        // running them back to back (tick functions work from the elapsed time anyway).
        next_tick_ = std::max(next_tick_ + tick_interval_, Clock::now());
        if (!tick_()) {
            tick_ = nullptr;
            return;
        }
        arm_ticker();
    });
}

}  // namespace hearth::bench
