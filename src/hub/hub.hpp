#pragma once

// The hub: topics, fan-out, direct sends and presence, shared by every front-end. No Beast, no
// protocol: front-ends turn their wire messages into hub operations and hub messages back into
// their wire format (once per message and format, whatever the number of recipients).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <hearth/connection.hpp>
#include <hearth/result.hpp>

#include "core/config.hpp"

namespace hearth::core {
class EventBus;
class Runtime;
class MetricsRegistry;
}  // namespace hearth::core

namespace hearth::hub {

/// A message as the hub carries it: immutable and shared by every recipient, on every thread.
/// `data` is the publishing front-end's payload (for the native protocol: the `data` JSON text).
/// Each front-end encodes the whole wire message once per message through `encoded`.
class HubMessage {
public:
    static constexpr std::size_t kMaxFormats = 8;

    HubMessage(std::string topic, ConnectionId from, std::string from_principal, std::string data)
        : topic_(std::move(topic)),
          from_(from),
          from_principal_(std::move(from_principal)),
          data_(std::move(data)),
          published_at_(std::chrono::steady_clock::now()) {}

    HubMessage(const HubMessage&) = delete;
    HubMessage& operator=(const HubMessage&) = delete;

    /// The hub topic ("native:chat"); empty for a direct send.
    const std::string& topic() const noexcept { return topic_; }
    ConnectionId from() const noexcept { return from_; }
    const std::string& from_principal() const noexcept { return from_principal_; }
    const std::string& data() const noexcept { return data_; }
    std::chrono::steady_clock::time_point published_at() const noexcept { return published_at_; }

    /// The wire form of this message for format `slot` (a front-end's constant, see
    /// `register_format`), computed by the first recipient that needs it. Thread-safe.
    template <class Encode>
    const SharedPayload& encoded(std::size_t slot, Encode&& encode) const {
        // Not std::call_once: its first call per flag ends with a futex wake in glibc, a system
        // call per message and format (see Payload::derived).
        if (!encoded_ready_[slot].load(std::memory_order_acquire)) {
            std::lock_guard lock(encode_mutex_);
            if (!encoded_ready_[slot].load(std::memory_order_relaxed)) {
                encoded_[slot] = encode(*this);
                encoded_ready_[slot].store(true, std::memory_order_release);
            }
        }
        return encoded_[slot];
    }

private:
    std::string topic_;
    ConnectionId from_;
    std::string from_principal_;
    std::string data_;
    std::chrono::steady_clock::time_point published_at_;
    mutable std::mutex encode_mutex_;  // held by the first encoder of a slot only
    mutable std::array<std::atomic<bool>, kMaxFormats> encoded_ready_{};
    mutable std::array<SharedPayload, kMaxFormats> encoded_;  // written once, before its flag
};

using SharedMessage = std::shared_ptr<const HubMessage>;

/// A slot for `HubMessage::encoded`, one per wire format. Call at startup.
std::size_t register_format(std::string_view name);

struct PresenceEvent {
    enum class Kind : std::uint8_t { kJoin, kLeave };
    Kind kind = Kind::kJoin;
    std::string topic;
    ConnectionId connection{};
    std::string principal;
};

struct Member {
    ConnectionId connection{};
    std::string principal;
};

/// What the hub delivers to: a front-end's per-connection object. Every call runs on the
/// subscriber's own io thread (the one it attached on). The subscriber must `detach` before it is
/// destroyed; after that it is never called again.
class Subscriber {
public:
    virtual ~Subscriber() = default;
    virtual ConnectionId subscriber_id() const noexcept = 0;
    /// Who it acts for, as other members see it in presence and topic events: asked when it
    /// subscribes (the hub keeps it with each subscription, not per subscriber).
    virtual std::string principal() const = 0;
    /// A message of a topic it subscribed to, or sent to it directly (empty topic). false: the
    /// subscriber could not take it (its outbox was full), counted as a drop.
    virtual bool deliver(const SharedMessage& message) = 0;
    /// Another member joined or left a topic for which this subscriber asked for presence events.
    virtual void on_presence(const PresenceEvent& event) = 0;
};

struct HubConfig {
    static constexpr std::string_view kName = "hub";
    static constexpr std::string_view kDescription =
        "Topics and fan-out, shared by every front-end.";

    std::int64_t max_topics_per_connection = 100;
    std::int64_t max_subscribers_per_topic = 0;

    template <class V>
    void visit(V& v) {
        v("max_topics_per_connection", max_topics_per_connection,
          {.help = "Topics one connection may subscribe to; more is refused with limit_reached.",
           .min = 1,
           .max = 1'000'000});
        v("max_subscribers_per_topic", max_subscribers_per_topic,
          {.help = "Subscribers one topic may have; 0 means unlimited. More is refused with "
                   "limit_reached.",
           .min = 0,
           .max = 100'000'000});
    }
    bool operator==(const HubConfig&) const = default;
};

/// The longest topic name the hub keeps, in bytes, namespace included ("native:" plus the native
/// protocol's 256-byte topics fits, as does "hunterpie:" plus a 256-byte session id). A topic
/// name is copied into every structure that holds a subscription (the subscriber's thread, the
/// shard, each presence event), so an unbounded name costs memory several times over:
/// `subscribe` refuses a longer one with kTooLarge, `publish` drops it (no topic can have that
/// name), and `unsubscribe`, `presence` and `topic_members` find nothing. Each refusal counts in
/// `hearth_hub_limit_rejections_total{limit="topic_bytes"}`.
inline constexpr std::size_t kMaxTopicBytes = 512;

/// The longest topic name (`subject`) and member principal a topic event carries, in bytes; the
/// detail says when a name was cut.
inline constexpr std::size_t kMaxEventTopicBytes = 200;
inline constexpr std::size_t kMaxEventPrincipalBytes = 64;

/// Topics sharded over the io threads. Runs on: every io thread; each topic lives on the thread its
/// name hashes to (its shard, `core::ShardSet::shard_of`), each subscriber on its connection's
/// thread. A publish costs one post
/// to the topic's shard and one post per destination thread that has subscribers, never one per
/// recipient. Order: messages of one publisher to one topic arrive in the order published.
///
/// Every operation must be called on an io thread (the subscriber's own, for the ones taking a
/// subscriber); completions run on the calling thread.
class Hub {
public:
    using Done = std::function<void(Errc)>;

    Hub(core::Runtime& runtime, core::MetricsRegistry& metrics, HubConfig config);
    ~Hub();
    Hub(const Hub&) = delete;
    Hub& operator=(const Hub&) = delete;

    /// Makes a subscriber known (addressable by id for `send`, able to subscribe).
    void attach(Subscriber& subscriber);
    /// Removes every subscription of the subscriber (leave events follow) and forgets it.
    void detach(Subscriber& subscriber);
    /// The subscriber attached as `id` on the calling io thread, or null (never attached, detached
    /// since, or on another thread). Ids are never reused, so a completion that kept its
    /// connection's id finds its subscriber again only while it is attached, without holding a
    /// pointer or a guard of its own.
    Subscriber* local(ConnectionId id) const;

    /// `done(kOk)` once publishes to the topic reach the subscriber; kLimitReached past a bound;
    /// kTooLarge for a topic longer than kMaxTopicBytes (nothing is kept). Subscribing again is
    /// not an error (the presence flag is updated).
    void subscribe(Subscriber& subscriber, const std::string& topic, bool presence_events,
                   Done done);
    /// `done(kOk)`; kNotFound when it was not subscribed.
    void unsubscribe(Subscriber& subscriber, const std::string& topic, Done done);
    /// Fans `message` out to the subscribers of its topic, the sender only when `echo`. A topic
    /// longer than kMaxTopicBytes has no subscribers: the message is dropped and counted.
    void publish(SharedMessage message, bool echo);
    /// Delivers to one connection by id: `done(kOk)` once handed to it, kNotFound when no such
    /// connection is attached.
    void send(ConnectionId to, SharedMessage message, Done done);
    /// The members of a topic, with their principal (none for a topic longer than
    /// kMaxTopicBytes).
    void presence(const std::string& topic, std::function<void(std::vector<Member>)> done);

    /// Applies new limits (config reload); they apply to later subscriptions.
    void update_config(HubConfig config);

    /// Publishes `topic.created` when a topic gets its first subscriber and `topic.emptied` when
    /// its last one leaves, on `events` from now on; null stops it (after the call returns, no
    /// event is published any more, so the bus may go). Module: the topic's namespace (before its
    /// first ':'); subject: its name, cut to kMaxEventTopicBytes. Only those transitions publish,
    /// on the topic's shard; a publish to a topic never touches the bus. Any thread.
    void set_events(core::EventBus* events);

    /// Operator views, callable from any thread; `done` runs on an io thread. Topics (every
    /// front-end's namespace) with their subscriber counts, sorted by name, at most `max`.
    struct TopicInfo {
        std::string topic;
        std::size_t subscribers = 0;
    };
    void list_topics(std::size_t max, std::function<void(std::vector<TopicInfo>)> done);
    /// The members of a topic (like presence), from any thread.
    void topic_members(const std::string& topic, std::function<void(std::vector<Member>)> done);

    /// The runtime whose io threads the hub runs on (front-ends post completions back with it).
    core::Runtime& runtime() const noexcept;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace hearth::hub
