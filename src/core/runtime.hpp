#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

namespace hearth::core {

/// The threads of the process: `io_threads` network threads, each running its own io_context (a
/// connection lives on one of them for its whole life, so its state needs no lock), and a pool for
/// blocking work (storage, password hashing, file I/O) that must never run on an io thread.
/// Owned by the app; start() and stop() are called from the main thread.
class Runtime {
public:
    Runtime(std::size_t io_threads, std::size_t blocking_threads);
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    void start();
    /// Stops every io_context and the pool, then joins the threads. Idempotent. The contexts and
    /// the pool stay until the runtime is destroyed: work posted to them later is dropped.
    void stop();

    std::size_t io_thread_count() const noexcept { return contexts_.size(); }
    boost::asio::io_context& io_context(std::size_t index) { return *contexts_.at(index); }
    /// Round-robin choice for a new connection. Thread-safe.
    boost::asio::io_context& next_io_context() noexcept;
    boost::asio::thread_pool& blocking_pool() noexcept { return *blocking_; }

    /// The index of the io thread the caller runs on, or -1 on any other thread.
    static int current_io_thread() noexcept;

private:
    using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

    std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
    std::vector<WorkGuard> guards_;
    std::vector<std::thread> threads_;
    std::unique_ptr<boost::asio::thread_pool> blocking_;
    std::size_t blocking_threads_;
    std::atomic<std::size_t> next_{0};
    bool started_ = false;
};

}  // namespace hearth::core
