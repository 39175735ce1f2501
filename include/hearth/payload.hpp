#pragma once

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
        std::call_once(derived_once_, [&] { derived_ = compute(bytes_); });
        return derived_;
    }

private:
    MessageKind kind_;
    std::string bytes_;
    mutable std::once_flag derived_once_;
    mutable std::string derived_;
};

using SharedPayload = std::shared_ptr<const Payload>;

inline SharedPayload make_text(std::string bytes) {
    return std::make_shared<const Payload>(MessageKind::kText, std::move(bytes));
}

inline SharedPayload make_binary(std::string bytes) {
    return std::make_shared<const Payload>(MessageKind::kBinary, std::move(bytes));
}

}  // namespace hearth
