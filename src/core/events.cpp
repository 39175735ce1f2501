#include "core/events.hpp"
#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <memory>
#include <utility>

#include "core/metrics.hpp"
#include "util/line_throttle.hpp"
#include "util/log.hpp"

namespace hearth::core {

namespace {

struct KindName {
    EventKind kind;
    std::string_view name;
};

constexpr std::array kKindNames{
    KindName{EventKind::kConnectionOpened, "connection.open"},
    KindName{EventKind::kConnectionClosed, "connection.close"},
    KindName{EventKind::kHandshakeFailed, "handshake.failed"},
    KindName{EventKind::kUpgradeRefused, "upgrade.refused"},
    KindName{EventKind::kLoginSucceeded, "login.ok"},
    KindName{EventKind::kLoginFailed, "login.failed"},
    KindName{EventKind::kModuleStateChanged, "module.state"},
    KindName{EventKind::kConfigReloaded, "config.reload"},
    KindName{EventKind::kConfigRejected, "config.reload_rejected"},
    KindName{EventKind::kTopicCreated, "topic.created"},
    KindName{EventKind::kTopicEmptied, "topic.emptied"},
    KindName{EventKind::kServerStarted, "server.start"},
    KindName{EventKind::kServerStopping, "server.stopping"},
    KindName{EventKind::kOperatorAction, "operator.action"},
};

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("core");
    return l;
}

}  // namespace

std::string_view to_string(EventKind kind) {
    for (const auto& k : kKindNames) {
        if (k.kind == kind) {
            return k.name;
        }
    }
    return "unknown";
}

std::optional<EventKind> event_kind_named(std::string_view name) {
    for (const auto& k : kKindNames) {
        if (k.name == name) {
            return k.kind;
        }
    }
    return std::nullopt;
}

const std::vector<EventKind>& all_event_kinds() {
    static const std::vector<EventKind> kinds = [] {
        std::vector<EventKind> v;
        for (const auto& k : kKindNames) {
            v.push_back(k.kind);
        }
        return v;
    }();
    return kinds;
}

bool EventFilter::matches(const Event& e) const {
    return (!kind || e.kind == *kind) && (module.empty() || e.module == module) &&
           (!since || e.time >= *since);
}

/// The rate of each kind a client can trigger at will (EventBus::publish).
class EventRates {
public:
    EventRates() {
        for (auto kind : {EventKind::kConnectionOpened, EventKind::kConnectionClosed,
                          EventKind::kHandshakeFailed, EventKind::kUpgradeRefused,
                          EventKind::kLoginSucceeded}) {
            throttles_[index(kind)] =
                std::make_unique<util::LineThrottle>(EventBus::kClientEventRate);
        }
    }
    util::LineThrottle* throttle(EventKind kind) { return throttles_[index(kind)].get(); }
    Counter* suppressed(EventKind kind) {
        return suppressed_[index(kind)].load(std::memory_order_acquire);
    }
    void attach_metrics(MetricsRegistry& metrics) {
        for (auto kind : all_event_kinds()) {
            if (throttles_[index(kind)]) {
                suppressed_[index(kind)].store(
                    &metrics.counter("hearth_events_suppressed_total",
                                     "Events a client can trigger at will (connections, failed "
                                     "handshakes, logins) left out past their rate, by kind.",
                                     {{"kind", std::string(to_string(kind))}}),
                    std::memory_order_release);
            }
        }
    }

private:
    static constexpr std::size_t kKinds = static_cast<std::size_t>(EventKind::kOperatorAction) + 1;
    static std::size_t index(EventKind kind) { return static_cast<std::size_t>(kind); }

    std::array<std::unique_ptr<util::LineThrottle>, kKinds> throttles_{};
    std::array<std::atomic<Counter*>, kKinds> suppressed_{};
};

EventBus::EventBus(std::size_t history_capacity, std::size_t dispatch_capacity)
    : rates_(std::make_unique<EventRates>()),
      capacity_(history_capacity),
      dispatch_capacity_(dispatch_capacity),
      dispatch_thread_([this] { dispatch_loop(); }) {}

EventBus::~EventBus() {
    {
        std::lock_guard lock(dispatch_mutex_);
        stopping_ = true;
    }
    dispatch_cv_.notify_all();
    dispatch_thread_.join();
}

void EventBus::attach_metrics(MetricsRegistry& metrics) {
    rates_->attach_metrics(metrics);
    auto& dropped = metrics.counter(
        "hearth_events_dispatch_dropped_total",
        "Events that skipped the bus's handlers because they were that far behind (the history "
        "still has them).");
    auto& errors = metrics.counter("hearth_events_handler_errors_total",
                                   "Event handlers that threw; the event went on to the others.");
    std::lock_guard lock(dispatch_mutex_);
    dispatch_dropped_counter_ = &dropped;
    handler_errors_counter_ = &errors;
}

void EventBus::publish(EventKind kind, std::string module, std::string subject, std::string detail,
                       std::string principal) {
    if (auto* throttle = rates_->throttle(kind)) {
        const auto admitted = throttle->admit();
        if (!admitted) {
            if (auto* c = rates_->suppressed(kind)) {
                c->inc();
            }
            return;
        }
        if (*admitted > 0) {
            detail += " (" + std::to_string(*admitted) + " more " + std::string(to_string(kind)) +
                      " left out)";
        }
    }
    std::lock_guard lock(history_mutex_);
    // The time is taken under the lock so that times never go backwards as seq goes forwards.
    auto event = std::make_shared<const Event>(Event{next_seq_++, std::chrono::system_clock::now(),
                                                     kind, std::move(module), std::move(subject),
                                                     std::move(detail), std::move(principal)});
    if (capacity_ == 0) {
        ++dropped_;
    } else {
        if (history_.size() == capacity_) {
            history_.pop_front();
            ++dropped_;
        }
        history_.push_back(event);
    }
    // Queued under the history lock too, so that handlers see events in seq order.
    bool wake = false;
    {
        std::lock_guard dispatch_lock(dispatch_mutex_);
        if (!handlers_.empty()) {
            if (queue_.size() >= dispatch_capacity_) {
                ++dispatch_dropped_;
                if (dispatch_dropped_counter_ != nullptr) {
                    dispatch_dropped_counter_->inc();
                }
            } else {
                queue_.push_back(std::move(event));
                wake = true;
            }
        }
    }
    if (wake) {
        dispatch_cv_.notify_one();
    }
}

EventBus::Subscription EventBus::subscribe(int priority, EventFilter filter, EventHandler handler) {
    // Both locks, in publish's order: the handler's first event is exactly the next one published.
    std::lock_guard history_lock(history_mutex_);
    std::lock_guard lock(dispatch_mutex_);
    const std::uint64_t id = next_handler_id_++;
    Handler h{id, priority, next_seq_, std::move(filter),
              std::make_shared<EventHandler>(std::move(handler))};
    // After every handler of a higher or equal priority: equal priorities keep subscription order.
    auto at = std::find_if(handlers_.begin(), handlers_.end(),
                           [priority](const Handler& other) { return other.priority < priority; });
    handlers_.insert(at, std::move(h));
    return Subscription(this, id, next_seq_);
}

void EventBus::unsubscribe(std::uint64_t id, bool wait) {
    std::unique_lock lock(dispatch_mutex_);
    std::erase_if(handlers_, [id](const Handler& h) { return h.id == id; });
    // From the handler itself the call is over once it returns; waiting here would never end.
    if (wait && std::this_thread::get_id() != dispatch_thread_id_) {
        dispatch_idle_cv_.wait(lock, [&] { return running_handler_ != id; });
    }
}

void EventBus::dispatch_loop() {
    std::unique_lock lock(dispatch_mutex_);
    dispatch_thread_id_ = std::this_thread::get_id();
    for (;;) {
        dispatch_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) {
            queue_.clear();
            busy_ = false;
            dispatch_idle_cv_.notify_all();
            return;
        }
        auto event = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        // handlers_ may change while a handler runs unlocked, so the walk resumes after the last
        // handler called, found by its id (or at its old index when it has since unsubscribed).
        std::uint64_t last_called = 0;
        for (std::size_t i = 0;;) {
            if (last_called != 0) {
                auto it = std::find_if(handlers_.begin(), handlers_.end(),
                                       [&](const Handler& h) { return h.id == last_called; });
                if (it != handlers_.end()) {
                    i = static_cast<std::size_t>(it - handlers_.begin()) + 1;
                }
            }
            while (i < handlers_.size() &&
                   (handlers_[i].first_seq > event->seq || !handlers_[i].filter.matches(*event))) {
                ++i;
            }
            if (i >= handlers_.size()) {
                break;
            }
            const auto& h = handlers_[i];
            const auto fn = h.fn;
            running_handler_ = h.id;
            last_called = h.id;
            lock.unlock();
            Propagation result = Propagation::kContinue;
            bool failed = false;
            try {
                result = (*fn)(*event);
            } catch (const std::exception& e) {
                failed = true;
                log()->error("event handler failed on {} #{}: {}", to_string(event->kind),
                             event->seq, e.what());
            } catch (...) {
                failed = true;
                log()->error("event handler failed on {} #{}", to_string(event->kind), event->seq);
            }
            lock.lock();
            running_handler_ = 0;
            if (failed && handler_errors_counter_ != nullptr) {
                handler_errors_counter_->inc();
            }
            dispatch_idle_cv_.notify_all();
            if (result == Propagation::kStop) {
                break;
            }
        }
        busy_ = false;
        dispatch_idle_cv_.notify_all();
    }
}

void EventBus::wait_dispatched() {
    std::unique_lock lock(dispatch_mutex_);
    dispatch_idle_cv_.wait(lock, [&] { return stopping_ || (queue_.empty() && !busy_); });
}

std::vector<Event> EventBus::recent(std::size_t max, std::uint64_t after_seq,
                                    const EventFilter& filter) const {
    std::lock_guard lock(history_mutex_);
    if (history_.empty() || max == 0) {
        return {};
    }
    // Kept events have consecutive seqs, so the first one after `after_seq` is found by arithmetic.
    const std::uint64_t first_seq = history_.front()->seq;
    const std::size_t begin =
        after_seq < first_seq ? 0 : static_cast<std::size_t>(after_seq - first_seq + 1);
    if (begin >= history_.size()) {
        return {};
    }
    // The newest `max` matches: walk back from the end, then return them oldest first.
    std::vector<Event> out;
    for (std::size_t i = history_.size(); i > begin && out.size() < max; --i) {
        const auto& e = *history_[i - 1];
        if (filter.matches(e)) {
            out.push_back(e);
        }
    }
    std::reverse(out.begin(), out.end());
    return out;
}

std::uint64_t EventBus::next_seq() const {
    std::lock_guard lock(history_mutex_);
    return next_seq_;
}

std::size_t EventBus::capacity() const {
    std::lock_guard lock(history_mutex_);
    return capacity_;
}

std::uint64_t EventBus::dropped() const {
    std::lock_guard lock(history_mutex_);
    return dropped_;
}

std::uint64_t EventBus::dispatch_dropped() const {
    std::lock_guard lock(dispatch_mutex_);
    return dispatch_dropped_;
}

EventBus::Subscription::Subscription(Subscription&& other) noexcept
    : bus_(std::exchange(other.bus_, nullptr)),
      id_(std::exchange(other.id_, 0)),
      first_seq_(other.first_seq_) {}

EventBus::Subscription& EventBus::Subscription::operator=(Subscription&& other) noexcept {
    if (this != &other) {
        reset();
        bus_ = std::exchange(other.bus_, nullptr);
        id_ = std::exchange(other.id_, 0);
        first_seq_ = other.first_seq_;
    }
    return *this;
}

EventBus::Subscription::~Subscription() {
    reset();
}

void EventBus::Subscription::reset() {
    if (auto* bus = std::exchange(bus_, nullptr)) {
        bus->unsubscribe(id_, true);
    }
}

void EventBus::Subscription::detach() {
    if (auto* bus = std::exchange(bus_, nullptr)) {
        bus->unsubscribe(id_, false);
    }
}

}  // namespace hearth::core
