#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <utility>

#include "core/runtime.hpp"
#include "core/shard_set.hpp"

namespace hearth::core {

/// Wraps `f` so that, called from any thread, it runs on the shard (io thread) that called this
/// function: the way back from the store's or the blocking pool's threads. Call on an io thread.
template <class... Args, class F>
std::function<void(Args...)> post_to_current_thread(const ShardSet& shards, F f) {
    const auto shard = ShardSet::current();
    if (!shard) {
        throw std::logic_error("post_to_current_thread called off an io thread");
    }
    return [shards, shard = *shard, f = std::make_shared<F>(std::move(f))](Args... args) {
        shards.post(shard, [f, ... a = std::move(args)]() mutable { (*f)(std::move(a)...); });
    };
}

template <class... Args, class F>
std::function<void(Args...)> post_to_current_thread(Runtime& runtime, F f) {
    return post_to_current_thread<Args...>(ShardSet(runtime), std::move(f));
}

}  // namespace hearth::core
