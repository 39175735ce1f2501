#include "net/batch_writer.hpp"

#include <boost/asio/error.hpp>

namespace hearth::net {

BatchWriter::Step BatchWriter::start(RawSocket& socket, Outbox& outbox,
                                     std::vector<boost::asio::const_buffer>& scratch,
                                     Result& result) {
    scratch.clear();
    if (waiting_ || outbox.gather(scratch, kMaxBatchFrames, kMaxBatchBytes) == 0) {
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
    if (!waiting_) {
        return Step::kNothing;
    }
    boost::system::error_code ec;
    const std::size_t n = socket.write_some(rest_, ec);
    if (ec == boost::asio::error::would_block) {
        return Step::kWaiting;  // the next edge comes when the peer has read more
    }
    if (!ec) {
        written_ += n;
        consume(n);
        if (!rest_.empty()) {
            return Step::kWaiting;
        }
    }
    result = Result{ec, written_};
    abandon();
    return Step::kDone;
}

void BatchWriter::abandon() noexcept {
    waiting_ = false;
    written_ = 0;
    std::vector<boost::asio::const_buffer>().swap(rest_);  // a slow write is over
}

void BatchWriter::keep_rest(const std::vector<boost::asio::const_buffer>& batch,
                            std::size_t written) {
    rest_.assign(batch.begin(), batch.end());
    written_ = written;
    waiting_ = true;
    consume(written);
}

void BatchWriter::consume(std::size_t n) {
    std::size_t skip = 0;
    while (skip < rest_.size() && n >= rest_[skip].size()) {
        n -= rest_[skip].size();
        ++skip;
    }
    rest_.erase(rest_.begin(), rest_.begin() + static_cast<std::ptrdiff_t>(skip));
    if (n > 0 && !rest_.empty()) {
        rest_.front() += n;
    }
}

}  // namespace hearth::net
