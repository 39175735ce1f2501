#pragma once

// Posts from one thread to the io threads, gathered while a PostBatch is open on that thread and
// handed to each io thread in one post when it closes.
//
// Why: a zone's tick sends one update to each of its characters, about half of them on the other
// io thread. Posted one by one, each costs an Asio operation, the destination scheduler's lock
// and often a wake-up of its thread (2,000 a tick in bench/world-bots.sh, 11% of the tick in
// perf). Gathered, a tick costs one post and at most one wake-up per io thread, and the sends
// are written together there.
//
// Order: everything a thread posts through this header (and ShardSet::post) to one io thread
// runs there in the order it was posted, gathered or not, since a batch hands over what it
// gathered for each io thread as one run, and nothing bypasses it while it is open. Posts made
// with asio::post directly are not part of that order: a transport posts each connection's work
// through one path.
//
// Bounds: a batch holds what its thread posts until it closes (one tick). What it holds is
// bounded by what its callers bound (a transport reserves a send's bytes against the
// connection's outbound bound before it gathers it).

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <hearth/payload.hpp>

namespace hearth::core {

class PostBatch {
public:
    /// Bytes for one recipient: a view of bytes `keeper` keeps alive (a payload shared with
    /// others, or a block of several recipients' bytes) or bytes of its own (one of them set),
    /// `reserved` of them counted against its bound by the caller.
    struct Delivery {
        std::shared_ptr<const void> keeper;  // keeps `view` alive: a shared payload or buffer
        std::string_view view;               // the bytes, when they are not `own`
        std::string own;
        std::size_t reserved = 0;
    };
    /// Hands a delivery to `target` on its io thread.
    using Deliver = void (*)(void* target, Delivery&& delivery);

    /// Opens the calling thread's batch; an inner batch while one is open is part of the outer.
    PostBatch() noexcept;
    /// Posts what the batch gathered, one run per io thread.
    ~PostBatch();
    PostBatch(const PostBatch&) = delete;
    PostBatch& operator=(const PostBatch&) = delete;

    /// Runs `fn` on `io`'s thread, later: gathered while the calling thread has a batch open,
    /// else posted at once. Never inline.
    static void post(boost::asio::io_context& io, std::function<void()> fn);

    /// The same for bytes delivered to `target`: gathered without an allocation of its own, for
    /// the transport's sends from other threads. `target` is kept alive until delivered.
    static void post_delivery(boost::asio::io_context& io, std::shared_ptr<void> target,
                              Deliver deliver, Delivery delivery);

    /// Whether the calling thread has a batch open.
    static bool open() noexcept;

private:
    bool outermost_;
};

}  // namespace hearth::core
