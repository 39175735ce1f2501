#pragma once

// The native protocol's requests read and checked, with no I/O (docs/protocol/native.md): the
// message up to its type, each field a request type reads, the topic names and the topic rules.
// native.cpp answers what these return; the fuzz target tests/fuzz/native_fuzz.cpp drives them
// with arbitrary bytes. Thread-safety: free functions without shared state; a TopicRules is
// read-only once built.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <hearth/payload.hpp>

namespace hearth::frontends::native {

/// What the hub's names of native topics start with.
inline constexpr std::string_view kNativePrefix = "native:";
/// The longest topic name a client may use (without the "native:" the hub's name adds).
inline constexpr std::size_t kMaxTopicBytes = 256;

/// What a native client may do to a topic of another front-end's namespace.
enum class Action : std::uint8_t { kSubscribe, kPublish, kPresence };

/// The parsed `topic_rules`. Thread-safe to read.
class TopicRules {
public:
    explicit TopicRules(const std::vector<std::string>& rules);
    bool allows(Action action, std::string_view hub_topic) const;

private:
    struct Rule {
        bool any_action;
        Action action;
        std::string pattern;  // without the trailing '*'
        bool prefix;
    };
    std::vector<Rule> rules_;
};

/// Whether a `topic_rules` entry is ACTION:TOPIC (ACTION one of subscribe, publish, presence, *;
/// TOPIC may end in *). TopicRules skips the others; the config check refuses them.
bool valid_topic_rule(std::string_view rule);

/// Maps a client's topic name to the hub's: "chat" -> "native:chat"; "hunterpie:abc" (another
/// front-end's namespace) stays as it is and needs a topic rule.
std::string hub_topic(std::string_view client_topic);
/// Whether a hub topic is outside the native namespace.
bool is_foreign(std::string_view hub_topic);

/// A request refused: the `code` and `message` of the error reply.
struct Refusal {
    std::string_view code;
    std::string message;
};

/// A message read up to its type: a JSON object whose `type` is a string, or the refusal.
class Request {
public:
    /// Reads a received message: a text frame holding a JSON object with a string `type`.
    static Request read(MessageKind kind, std::string_view data);

    /// Why the message is not a request; nothing when it is one.
    const std::optional<Refusal>& refusal() const noexcept { return refusal_; }
    /// The request's `id`, echoed in every reply to it; null when absent (or not an object).
    const boost::json::value* id() const;
    /// The `type` (a request only).
    std::string_view type() const;
    /// Every field (a request only).
    const boost::json::object& fields() const { return document_.get_object(); }

private:
    boost::json::value document_;
    std::optional<Refusal> refusal_;
};

/// A field read: its value or the refusal.
template <class T>
using Read = std::variant<T, Refusal>;

/// A hello's `token`: nothing when absent or null.
Read<std::optional<std::string>> read_token(const boost::json::object& request);
/// The `topic` of a subscribe, publish or presence, as the hub names it: a non-empty string of
/// at most kMaxTopicBytes, in the native namespace or allowed by `rules` for `action`.
Read<std::string> read_topic(const boost::json::object& request, const TopicRules& rules,
                             Action action);
/// The `topic` of an unsubscribe, as the hub names it: any non-empty string (leaving a topic one
/// is not in changes nothing).
Read<std::string> read_unsubscribe_topic(const boost::json::object& request);
/// An optional boolean field: false when absent.
Read<bool> read_flag(const boost::json::object& request, std::string_view field);
/// The `data` of a publish or send, serialised: at most `max_bytes` of JSON.
Read<std::string> read_data(const boost::json::object& request, std::size_t max_bytes);
/// The connection id in the `to` of a send: a string of decimal digits that fits 64 bits.
Read<std::uint64_t> read_target(const boost::json::object& request);

}  // namespace hearth::frontends::native
