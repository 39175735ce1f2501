#include "core/runtime.hpp"
#include <string>

#include <pthread.h>

#include "util/log.hpp"

namespace hearth::core {

namespace {
thread_local int tl_io_thread = -1;
}  // namespace

Runtime::Runtime(std::size_t io_threads, std::size_t blocking_threads)
    : blocking_threads_(blocking_threads == 0 ? 1 : blocking_threads) {
    if (io_threads == 0) {
        io_threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    }
    contexts_.reserve(io_threads);
    for (std::size_t i = 0; i < io_threads; ++i) {
        // concurrency_hint 1: each context is run by exactly one thread, so Asio can skip locking.
        contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    }
}

Runtime::~Runtime() {
    stop();
}

void Runtime::start() {
    if (started_) {
        return;
    }
    started_ = true;
    blocking_ = std::make_unique<boost::asio::thread_pool>(blocking_threads_);
    for (std::size_t i = 0; i < contexts_.size(); ++i) {
        guards_.push_back(boost::asio::make_work_guard(*contexts_[i]));
        threads_.emplace_back([this, i] {
            tl_io_thread = static_cast<int>(i);
            std::string name = "hearth-io-" + std::to_string(i);
            pthread_setname_np(pthread_self(), name.c_str());
            for (;;) {
                try {
                    contexts_[i]->run();
                    break;
                } catch (const std::exception& e) {
                    // A handler threw: a bug, but one connection's bug must not stop the thread.
                    util::logger("core")->error("io thread {}: unhandled exception: {}", i,
                                                e.what());
                }
            }
        });
    }
}

void Runtime::stop() {
    if (!started_) {
        return;
    }
    started_ = false;
    guards_.clear();
    for (auto& c : contexts_) {
        c->stop();
    }
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
    threads_.clear();
    if (blocking_) {
        // Stopped, not freed: a thread that is not the runtime's (a store thread completing a
        // password check, say) may still post to the pool; the work is then dropped with the pool
        // when the runtime is destroyed, as the io contexts' is.
        blocking_->stop();
        blocking_->join();
    }
}

boost::asio::io_context& Runtime::next_io_context() noexcept {
    return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

int Runtime::current_io_thread() noexcept {
    return tl_io_thread;
}

}  // namespace hearth::core
