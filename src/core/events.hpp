#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "util/token_bucket.hpp"

namespace hearth::core {

class Counter;
class EventRates;  // events.cpp
class MetricsRegistry;

/// What happened. The names (`to_string`) are the `kind` of the operator API and of the stream;
/// they are stable: clients filter on them.
enum class EventKind : std::uint8_t {
    kConnectionOpened,    // "connection.open"
    kConnectionClosed,    // "connection.close"
    kHandshakeFailed,     // "handshake.failed"
    kUpgradeRefused,      // "upgrade.refused"
    kLoginSucceeded,      // "login.ok"
    kLoginFailed,         // "login.failed"
    kModuleStateChanged,  // "module.state"
    kConfigReloaded,      // "config.reload"
    kConfigRejected,      // "config.reload_rejected"
    kTopicCreated,        // "topic.created"
    kTopicEmptied,        // "topic.emptied"
    kServerStarted,       // "server.start"
    kServerStopping,      // "server.stopping"
    kOperatorAction,      // "operator.action"
};

std::string_view to_string(EventKind kind);
/// The kind named `name`, or nothing when no kind has that name.
std::optional<EventKind> event_kind_named(std::string_view name);
/// Every kind, in declaration order (for docs and validation messages).
const std::vector<EventKind>& all_event_kinds();

/// A notable event for operators: structured, kept in the bus's history for the operator API and
/// streamed to subscribers. Not a log line.
struct Event {
    std::uint64_t seq = 0;  // increasing from 1, without gaps
    std::chrono::system_clock::time_point time;
    EventKind kind = EventKind::kConnectionOpened;
    std::string module;     // the module it concerns ("core" for the server's own)
    std::string subject;    // what it is about: a connection id, a listener, a topic, a file
    std::string detail;     // human-readable
    std::string principal;  // who, when known: an account or token id; empty when anonymous
};

/// Which events a reader or a subscriber wants; an empty field matches everything.
struct EventFilter {
    std::optional<EventKind> kind{};
    std::string module{};
    std::optional<std::chrono::system_clock::time_point> since{};  // at or after

    bool matches(const Event& e) const;
};

/// Whether lower-priority handlers still see an event.
enum class Propagation : std::uint8_t { kContinue, kStop };

using EventHandler = std::function<Propagation(const Event&)>;

/// The event bus: publishers on any thread, a bounded history (the operator API's tail), and
/// handlers that run on the bus's own dispatch thread, never on the publisher's (so an io thread
/// publishing an event never waits for a handler). Handlers run one event at a time, in order of
/// seq, highest priority first; a handler that returns kStop hides the event from the handlers
/// after it. Events inform: a handler cannot undo or refuse what happened.
///
/// Bounds: the history keeps `history_capacity` events (the oldest is dropped; `dropped()`). The
/// dispatch queue keeps `dispatch_capacity` events waiting for handlers; when handlers fall that
/// far behind, newer events skip the handlers (counted in `dispatch_dropped()` and
/// hearth_events_dispatch_dropped_total) but still enter the history, where a reader with a cursor
/// finds them. Thread-safe.
class EventBus {
public:
    static constexpr std::size_t kDefaultDispatchCapacity = 4096;

    explicit EventBus(std::size_t history_capacity,
                      std::size_t dispatch_capacity = kDefaultDispatchCapacity);
    ~EventBus();
    EventBus(const EventBus&) = delete;
    EventBus& operator=(const EventBus&) = delete;

    /// Counts what the bus drops in `metrics` from now on.
    void attach_metrics(MetricsRegistry& metrics);

    /// Kinds any client can trigger at will by connecting (connection.open and .close,
    /// handshake.failed, upgrade.refused, login.ok) are admitted at `kClientEventRate` each, so
    /// that a connect loop cannot push the operators' other events out of the history; past it they
    /// are counted (hearth_events_suppressed_total{kind}) and the next one admitted says how many
    /// were left out. Other kinds are never refused here.
    void publish(EventKind kind, std::string module, std::string subject, std::string detail,
                 std::string principal = {});

    /// 20 a second per kind after a burst of 100, as for the auth refusal log lines.
    static constexpr util::TokenRate kClientEventRate{20, 100};

    /// Unsubscribes when destroyed (it must not outlive its bus); after its destructor returns the
    /// handler is not running and is never called again (unless destroyed from inside the handler
    /// itself, which is allowed).
    class Subscription {
    public:
        Subscription() = default;
        Subscription(Subscription&& other) noexcept;
        Subscription& operator=(Subscription&& other) noexcept;
        ~Subscription();
        void reset();
        /// Unsubscribes without waiting for a call in progress (which may still finish after
        /// this returns): for an io thread, whose handler holds only what it shares by owning it.
        void detach();
        explicit operator bool() const { return bus_ != nullptr; }
        /// The seq of the first event the handler may see: every earlier one is in the history
        /// only (a reader that replays the history up to here and then takes the handler's events
        /// misses none and sees none twice).
        std::uint64_t first_seq() const { return first_seq_; }

    private:
        friend class EventBus;
        Subscription(EventBus* bus, std::uint64_t id, std::uint64_t first_seq)
            : bus_(bus), id_(id), first_seq_(first_seq) {}
        EventBus* bus_ = nullptr;
        std::uint64_t id_ = 0;
        std::uint64_t first_seq_ = 0;
    };

    /// `handler` sees the events published from now on that match `filter`. Higher `priority`
    /// runs first; equal priorities run in subscription order. An exception from a handler is
    /// logged and counted as that handler returning kContinue.
    [[nodiscard]] Subscription subscribe(int priority, EventFilter filter, EventHandler handler);

    /// Up to `max` most recent events with seq > `after_seq` that match `filter`, oldest first.
    std::vector<Event> recent(std::size_t max, std::uint64_t after_seq = 0,
                              const EventFilter& filter = {}) const;
    /// The seq the next event will get.
    std::uint64_t next_seq() const;

    /// Blocks until every event published before the call has been through the handlers (or was
    /// dropped from dispatch). For an orderly shutdown and for tests; never from a handler.
    void wait_dispatched();

    std::size_t capacity() const;
    std::uint64_t dropped() const;
    std::uint64_t dispatch_dropped() const;

private:
    struct Handler {
        std::uint64_t id;
        int priority;
        std::uint64_t first_seq;  // the first event it may see: none published before it came
        EventFilter filter;
        std::shared_ptr<EventHandler> fn;
    };

    void unsubscribe(std::uint64_t id, bool wait);
    void dispatch_loop();

    const std::unique_ptr<EventRates> rates_;  // per client-triggered kind; thread-safe

    mutable std::mutex history_mutex_;
    std::size_t capacity_;
    std::deque<std::shared_ptr<const Event>> history_;
    std::uint64_t next_seq_ = 1;
    std::uint64_t dropped_ = 0;

    // Dispatch state, under its own lock so that readers of the history never wait for it.
    mutable std::mutex dispatch_mutex_;
    std::condition_variable dispatch_cv_;       // the loop waits for work
    std::condition_variable dispatch_idle_cv_;  // wait_dispatched and unsubscribe wait here
    std::size_t dispatch_capacity_;
    std::deque<std::shared_ptr<const Event>> queue_;
    std::vector<Handler> handlers_;  // sorted: priority descending, then id ascending
    std::uint64_t next_handler_id_ = 1;
    std::uint64_t running_handler_ = 0;  // the handler being called, 0 when none
    bool busy_ = false;                  // an event taken from queue_ is still with handlers
    std::uint64_t dispatch_dropped_ = 0;
    bool stopping_ = false;
    Counter* dispatch_dropped_counter_ = nullptr;
    Counter* handler_errors_counter_ = nullptr;
    std::thread::id dispatch_thread_id_;
    std::thread dispatch_thread_;  // last: started when everything above exists
};

}  // namespace hearth::core
