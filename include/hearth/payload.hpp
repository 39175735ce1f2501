#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace hearth {

enum class MessageKind : std::uint8_t { kText, kBinary };

/// An outgoing message: immutable bytes shared by every recipient, so that a broadcast is encoded
/// once, whatever the number of recipients. Thread-safe: only `derived()` mutates, once.
class Payload {
public:
    Payload(MessageKind kind, std::string bytes) : kind_(kind), bytes_(std::move(bytes)) {}

    /// A payload whose derived form is already known, e.g. a relay forwarding a message that
    /// arrived compressed (`WsHandler::on_deflated_message`): the transport then sends `derived`
    /// instead of computing it. `derived` must be what every `compute` would give, or equivalent
    /// to it (for the WebSocket layer: a self-contained raw deflate of `bytes`, tail removed).
    Payload(MessageKind kind, std::string bytes, std::string derived)
        : kind_(kind),
          bytes_(std::move(bytes)),
          derived_(std::move(derived)),
          derived_ready_(true) {}

    Payload(const Payload&) = delete;
    Payload& operator=(const Payload&) = delete;

    MessageKind kind() const noexcept { return kind_; }
    std::string_view bytes() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return bytes_.size(); }

    /// A transport's derived form of the bytes (the WebSocket layer keeps its permessage-deflate
    /// compression here), computed by the first recipient that needs it and shared by the rest.
    /// A payload has at most one derived form: every caller must pass an equivalent `compute`.
    template <class Compute>
    std::string_view derived(Compute&& compute) const {
        // Not std::call_once: glibc's pthread_once ends every first call with a futex wake, a
        // system call per payload (one per HunterPie push) even when no thread waits. An
        // uncontended mutex stays in user space.
        if (!derived_ready_.load(std::memory_order_acquire)) {
            std::lock_guard lock(derived_mutex_);
            if (!derived_ready_.load(std::memory_order_relaxed)) {
                derived_ = compute(bytes_);
                derived_ready_.store(true, std::memory_order_release);
            }
        }
        return derived_;
    }

private:
    MessageKind kind_;
    std::string bytes_;
    mutable std::mutex derived_mutex_;
    mutable std::string derived_;  // written once, under the mutex, before derived_ready_
    mutable std::atomic<bool> derived_ready_{false};
};

using SharedPayload = std::shared_ptr<const Payload>;

inline SharedPayload make_text(std::string bytes) {
    return std::make_shared<const Payload>(MessageKind::kText, std::move(bytes));
}

/// A text payload with its permessage-deflate form precomputed: `deflated` is a raw deflate of
/// `bytes` with no context takeover, its 00 00 FF FF tail removed, made with a window of at most
/// 15 bits (what a client's compressed message is under client_no_context_takeover). Connections
/// that compress this message send `deflated`; the others send `bytes`.
inline SharedPayload make_text(std::string bytes, std::string deflated) {
    return std::make_shared<const Payload>(MessageKind::kText, std::move(bytes),
                                           std::move(deflated));
}

inline SharedPayload make_binary(std::string bytes) {
    return std::make_shared<const Payload>(MessageKind::kBinary, std::move(bytes));
}

}  // namespace hearth
