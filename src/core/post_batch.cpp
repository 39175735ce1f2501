#include "core/post_batch.hpp"
#include <exception>

#include "util/log.hpp"

namespace hearth::core {

namespace {

/// A gathered post: a delivery (`deliver` set) or a closure.
struct Gathered {
    PostBatch::Deliver deliver = nullptr;
    std::shared_ptr<void> target;
    PostBatch::Delivery delivery;
    std::function<void()> fn;

    void run() {
        if (deliver != nullptr) {
            deliver(target.get(), std::move(delivery));
        } else {
            fn();
        }
    }
};

struct Destination {
    boost::asio::io_context* io = nullptr;
    std::vector<Gathered> posts;
};

/// The calling thread's batch: destinations in the order first posted to (an io thread count's
/// worth, so a linear search).
struct ThreadBatch {
    bool open = false;
    std::vector<Destination> destinations;

    std::vector<Gathered>& to(boost::asio::io_context& io) {
        for (auto& d : destinations) {
            if (d.io == &io) {
                return d.posts;
            }
        }
        destinations.push_back({.io = &io, .posts = {}});
        return destinations.back().posts;
    }
};

thread_local ThreadBatch t_batch;

}  // namespace

PostBatch::PostBatch() noexcept : outermost_(!t_batch.open) {
    t_batch.open = true;
}

PostBatch::~PostBatch() {
    if (!outermost_) {
        return;
    }
    t_batch.open = false;
    for (auto& d : t_batch.destinations) {
        if (d.posts.empty()) {
            continue;
        }
        const std::size_t gathered = d.posts.size();
        boost::asio::post(*d.io, [posts = std::move(d.posts)]() mutable {
            for (auto& p : posts) {
                // Each as if posted on its own: one that throws (a bug) costs only itself.
                try {
                    p.run();
                } catch (const std::exception& e) {
                    util::logger("core")->error("a batched post threw: {}", e.what());
                }
            }
        });
        // The next tick gathers about as many: one allocation, not a doubling series.
        d.posts = {};
        d.posts.reserve(gathered);
    }
}

bool PostBatch::open() noexcept {
    return t_batch.open;
}

void PostBatch::post(boost::asio::io_context& io, std::function<void()> fn) {
    if (!t_batch.open) {
        boost::asio::post(io, std::move(fn));
        return;
    }
    Gathered g;
    g.fn = std::move(fn);
    t_batch.to(io).push_back(std::move(g));
}

void PostBatch::post_delivery(boost::asio::io_context& io, std::shared_ptr<void> target,
                              Deliver deliver, Delivery delivery) {
    if (!t_batch.open) {
        boost::asio::post(
            io, [target = std::move(target), deliver, delivery = std::move(delivery)]() mutable {
                deliver(target.get(), std::move(delivery));
            });
        return;
    }
    t_batch.to(io).push_back({.deliver = deliver,
                              .target = std::move(target),
                              .delivery = std::move(delivery),
                              .fn = {}});
}

}  // namespace hearth::core
