#pragma once

#include <functional>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>

#include "core/runtime.hpp"

namespace hearth::core {

/// Wraps `f` so that, called from any thread, it runs on the io thread that called this function:
/// the way back from the store's or the blocking pool's threads. Call on an io thread.
template <class... Args, class F>
std::function<void(Args...)> post_to_current_thread(Runtime& runtime, F f) {
    const int index = Runtime::current_io_thread();
    if (index < 0) {
        throw std::logic_error("post_to_current_thread called off an io thread");
    }
    auto executor = runtime.io_context(static_cast<std::size_t>(index)).get_executor();
    return [executor, f = std::make_shared<F>(std::move(f))](Args... args) {
        boost::asio::post(executor,
                          [f, ... a = std::move(args)]() mutable { (*f)(std::move(a)...); });
    };
}

}  // namespace hearth::core
