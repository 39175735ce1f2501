#include "net/batch_writer.hpp"

#include <boost/asio/error.hpp>

namespace hearth::net {

BatchWriter::Step BatchWriter::start(RawSocket& socket, Outbox& outbox,
                                     std::vector<boost::asio::const_buffer>& scratch,
                                     Result& result) {
    scratch.clear();
    if (rest_ != nullptr || outbox.gather(scratch, kMaxBatchFrames, kMaxBatchBytes) == 0) {
        return Step::kNothing;
    }
    const std::size_t total = boost::asio::buffer_size(scratch);
    boost::system::error_code ec;
    std::size_t written = socket.write_some(scratch, ec);
    if (ec == boost::asio::error::would_block) {
        ec = {};
        written = 0;
    }
    if (ec || written == total) {
        result = Result{ec, written};
        return Step::kDone;
    }
    keep_rest(scratch, written);
    return Step::kWaiting;
}

BatchWriter::Step BatchWriter::resume(RawSocket& socket, Result& result) {
    if (rest_ == nullptr) {
        return Step::kNothing;
    }
    boost::system::error_code ec;
    const std::size_t n = socket.write_some(rest_->buffers, ec);
    if (ec == boost::asio::error::would_block) {
        return Step::kWaiting;  // the next edge comes when the peer has read more
    }
    if (!ec) {
        rest_->written += n;
        consume(n);
        if (!rest_->buffers.empty()) {
            return Step::kWaiting;
        }
    }
    result = Result{ec, rest_->written};
    abandon();
    return Step::kDone;
}

void BatchWriter::abandon() noexcept {
    rest_.reset();  // a slow write is over
}

void BatchWriter::keep_rest(const std::vector<boost::asio::const_buffer>& batch,
                            std::size_t written) {
    rest_ = std::make_unique<Rest>();
    rest_->buffers.assign(batch.begin(), batch.end());
    rest_->written = written;
    consume(written);
}

void BatchWriter::consume(std::size_t n) {
    auto& buffers = rest_->buffers;
    std::size_t skip = 0;
    while (skip < buffers.size() && n >= buffers[skip].size()) {
        n -= buffers[skip].size();
        ++skip;
    }
    buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(skip));
    if (n > 0 && !buffers.empty()) {
        buffers.front() += n;
    }
}

}  // namespace hearth::net
