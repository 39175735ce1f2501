#pragma once

#include <mutex>
#include <string>

#include "core/events.hpp"

namespace hearth::core {

/// A publisher's optional link to the event bus. The bus may be absent (unit tests, the CLI) and
/// the link may be cut while the publisher's asynchronous work is still in flight (a store
/// callback, a post to an io thread): after `set(nullptr)` returns, nothing is published through
/// it any more, so the bus may then be destroyed before that work ends. Thread-safe; the lock is
/// held only for the bus's own (non-blocking) publish.
class EventSink {
public:
    void set(EventBus* bus) {
        std::lock_guard lock(mutex_);
        bus_ = bus;
    }

    bool connected() const {
        std::lock_guard lock(mutex_);
        return bus_ != nullptr;
    }

    /// Publishes when a bus is set; false when none is.
    bool publish(EventKind kind, std::string module, std::string subject, std::string detail,
                 std::string principal = {}) {
        std::lock_guard lock(mutex_);
        if (bus_ == nullptr) {
            return false;
        }
        bus_->publish(kind, std::move(module), std::move(subject), std::move(detail),
                      std::move(principal));
        return true;
    }

private:
    mutable std::mutex mutex_;
    EventBus* bus_ = nullptr;
};

}  // namespace hearth::core
