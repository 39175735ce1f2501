#include "api/event_stream.hpp"
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <utility>

#include <boost/json/serialize.hpp>

#include "api/operator_api.hpp"
#include "auth/operator_auth.hpp"
#include "core/metrics.hpp"
#include "util/log.hpp"
#include "util/time.hpp"

namespace hearth::api {

namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("api");
    return l;
}

// Observers: below any handler that might stop propagation for its own reasons.
constexpr int kStreamPriority = -1000;

/// One stream's delivery state, shared by its WebSocket handler (io thread) and its bus handler
/// (the bus's dispatch thread). While the history is being replayed, live events wait here so
/// that the client sees every event once, in seq order.
class StreamState {
public:
    StreamState(ConnectionHandle connection, std::size_t max_held)
        : connection_(std::move(connection)), max_held_(max_held) {}

    /// Dispatch thread.
    void deliver(const core::Event& e) {
        std::unique_lock lock(mutex_);
        if (closed_) {
            return;
        }
        if (replaying_) {
            if (held_.size() >= max_held_) {
                closed_ = true;
                lock.unlock();
                close(close_code::kTryAgainLater, "too many events during the replay");
                return;
            }
            held_.push_back(make_text(json::serialize(event_json(e))));
            return;
        }
        lock.unlock();
        send(make_text(json::serialize(event_json(e))));
    }

    /// Io thread: the replay is sent; what was held goes after it.
    void end_replay() {
        std::deque<SharedPayload> held;
        {
            std::lock_guard lock(mutex_);
            held.swap(held_);
            // Sent under the lock, so that a live event cannot overtake the held ones.
            for (auto& payload : held) {
                send(std::move(payload));
            }
            replaying_ = false;
        }
    }

    void send(SharedPayload payload) {
        if (auto c = connection_.lock()) {
            c->send(std::move(payload));
        }
    }

    void close(std::uint16_t code, std::string_view reason) {
        if (auto c = connection_.lock()) {
            c->close(code, reason);
        }
    }

    void mark_closed() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        held_.clear();
    }

private:
    ConnectionHandle connection_;
    std::size_t max_held_;
    std::mutex mutex_;
    bool replaying_ = true;
    bool closed_ = false;
    std::deque<SharedPayload> held_;
};

class EventStreamHandler final : public WsHandler {
public:
    EventStreamHandler(core::EventBus& events, core::EventFilter filter,
                       std::optional<std::uint64_t> cursor,
                       std::shared_ptr<std::atomic<std::size_t>> open, EventStreamLimits limits)
        : events_(events),
          filter_(std::move(filter)),
          cursor_(cursor),
          open_(std::move(open)),
          limits_(limits) {}

    ~EventStreamHandler() override { open_->fetch_sub(1); }

    void on_open(const ConnectionPtr& connection) override {
        state_ = std::make_shared<StreamState>(ConnectionHandle(connection),
                                               limits_.max_held_during_replay);
        subscription_ =
            events_.subscribe(kStreamPriority, filter_, [state = state_](const core::Event& e) {
                state->deliver(e);
                return core::Propagation::kContinue;
            });
        if (cursor_) {
            // Every event before the subscription's first comes from the history, then the
            // handler's: none is missed, none comes twice.
            const auto first_live = subscription_.first_seq();
            for (const auto& e : events_.recent(limits_.max_replay, *cursor_, filter_)) {
                if (e.seq >= first_live) {
                    break;
                }
                state_->send(make_text(json::serialize(event_json(e))));
            }
        }
        state_->end_replay();
    }

    void on_message(MessageKind, std::string_view) override {
        // Listen only: what a client sends is ignored (documented).
    }

    void on_close(const CloseInfo&) override {
        state_->mark_closed();
        // An io thread must not wait for the bus's thread: a delivery still running owns the
        // state it touches and finds it closed.
        subscription_.detach();
    }

private:
    core::EventBus& events_;
    core::EventFilter filter_;
    std::optional<std::uint64_t> cursor_;
    std::shared_ptr<std::atomic<std::size_t>> open_;
    EventStreamLimits limits_;
    std::shared_ptr<StreamState> state_;
    core::EventBus::Subscription subscription_;
};

}  // namespace

// GET /api/v1/events filters: type (a kind's name), module, since (epoch ms or RFC 3339).
std::variant<core::EventFilter, HttpResponse> parse_event_filter(const HttpRequest& req) {
    core::EventFilter filter;
    if (auto type = req.query_param("type"); type && !type->empty()) {
        filter.kind = core::event_kind_named(*type);
        if (!filter.kind) {
            std::string known;
            for (auto kind : core::all_event_kinds()) {
                known += (known.empty() ? "" : ", ") + std::string(core::to_string(kind));
            }
            return HttpResponse::error(400, "invalid_parameter",
                                       "type: unknown event type (known: " + known + ")");
        }
    }
    filter.module = req.query_param("module").value_or("");
    if (auto since = req.query_param("since"); since && !since->empty()) {
        const auto ms = util::parse_time_ms(*since);
        if (!ms) {
            return HttpResponse::error(400, "invalid_parameter",
                                       "since: milliseconds since the Unix epoch or an RFC 3339 "
                                       "time, e.g. 2026-11-22T03:04:05Z");
        }
        // The clock counts nanoseconds in 64 bits (until 2262): later (or earlier) times clamp.
        using Clock = std::chrono::system_clock;
        constexpr auto kMaxMs =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max()).count();
        filter.since = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
            std::chrono::milliseconds(std::clamp<std::int64_t>(*ms, -kMaxMs, kMaxMs))));
    }
    return filter;
}

json::object event_json(const core::Event& e) {
    json::object o;
    o["seq"] = e.seq;
    o["time"] = rfc3339(e.time);
    o["kind"] = core::to_string(e.kind);
    o["module"] = e.module;
    o["subject"] = e.subject;
    o["detail"] = e.detail;
    if (e.principal.empty()) {
        o["principal"] = nullptr;
    } else {
        o["principal"] = e.principal;
    }
    return o;
}

void add_event_stream_route(Router& router, const std::string& listener, core::EventBus& events,
                            const auth::OperatorAuth& operators,
                            std::shared_ptr<const WsRouteSettings> settings,
                            std::function<std::vector<std::string>()> allowed_origins,
                            core::MetricsRegistry& metrics, EventStreamLimits limits) {
    auto open = std::make_shared<std::atomic<std::size_t>>(0);
    auto& opened = metrics.counter("hearth_event_streams_total",
                                   "Operator event streams opened (/api/v1/events/stream).");
    WsRoute route;
    route.frontend = "operator-api";
    route.listen_only = true;
    route.settings = std::move(settings);
    route.subprotocols = {std::string(kEventStreamSubprotocol)};
    route.accept_async = [&events, &operators, allowed_origins = std::move(allowed_origins), open,
                          &opened, limits](const HttpRequest& req,
                                           std::function<void(WsRoute::Decision)> decide) {
        auto filter = parse_event_filter(req);
        if (auto* refused = std::get_if<HttpResponse>(&filter)) {
            decide(std::move(*refused));
            return;
        }
        auto cursor = parse_id_cursor(req);
        if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
            decide(std::move(*refused));
            return;
        }
        operators.authorize_upgrade(
            req, auth::presented_token(req), allowed_origins(),
            [&events, open, &opened, limits, peer = req.peer_address,
             filter = std::get<core::EventFilter>(std::move(filter)),
             cursor = std::get<std::optional<std::uint64_t>>(cursor),
             decide = std::move(decide)](auth::OperatorAuth::Outcome who) mutable {
                if (auto* refused = std::get_if<HttpResponse>(&who)) {
                    decide(std::move(*refused));
                    return;
                }
                // Counted before the handler exists; the handler gives it back when destroyed.
                if (open->fetch_add(1) >= limits.max_streams) {
                    open->fetch_sub(1);
                    decide(HttpResponse::error(503, "too_many_streams",
                                               "Too many event streams are open; close one."));
                    return;
                }
                opened.inc();
                log()->info("event stream opened by {} from {}", std::get<auth::Actor>(who).name,
                            peer);
                decide(std::make_unique<EventStreamHandler>(events, std::move(filter), cursor, open,
                                                            limits));
            });
    };
    router.add_ws_route(listener, std::string(kEventStreamPath), std::move(route));
}

}  // namespace hearth::api
