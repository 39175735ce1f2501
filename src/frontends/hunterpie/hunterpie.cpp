#include "frontends/hunterpie/hunterpie.hpp"
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "auth/operator_auth.hpp"
#include "core/metrics.hpp"
#include "core/ws_settings.hpp"
#include "frontends/hunterpie/codec.hpp"
#include "frontends/hunterpie/message.hpp"
#include "hub/hub.hpp"
#include "util/log.hpp"

namespace hearth::frontends::hunterpie {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("hunterpie");
    return l;
}

// Sessions as the hub's topics (membership mirrored, see HunterpieFrontend).
constexpr std::string_view kTopicPrefix = "hunterpie:";

static_assert(kTopicPrefix.size() + kMaxSessionIdBytes <= hub::kMaxTopicBytes,
              "every session's hub topic fits the hub's bound");

constexpr std::string_view kHtml = "text/html; charset=utf-8";

std::string random_name() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[32];
    std::snprintf(buf, sizeof buf, "player-%08llx",
                  static_cast<unsigned long long>(rng() & 0xffffffffULL));
    return buf;
}

HttpResponse with_cors(HttpResponse r) {
    r.headers.push_back({"Access-Control-Allow-Origin", "*"});
    return r;
}

/// The answer of the original's `cors()` middleware to a preflight.
HttpResponse preflight(const HttpRequest& req) {
    HttpResponse r = HttpResponse::text(204, "");
    r.content_type.clear();
    r.headers.push_back({"Access-Control-Allow-Origin", "*"});
    r.headers.push_back({"Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"});
    if (auto h = req.header("Access-Control-Request-Headers")) {
        r.headers.push_back({"Access-Control-Allow-Headers", std::string(*h)});
    }
    r.headers.push_back({"Vary", "Access-Control-Request-Headers"});
    return r;
}

/// A member of a session as the other members' threads see it. Immutable.
struct Member {
    ConnectionId id{};
    ConnectionHandle connection;
    bool leader = false;
};
using Members = std::shared_ptr<const std::vector<Member>>;

}  // namespace

void HunterpieConfig::validate(core::ConfigErrors& errors) const {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(listen, host, port)) {
        errors.push_back("hunterpie.listen: \"" + listen + "\" is not host:port");
    }
    if (tls_cert_file.empty() != tls_key_file.empty()) {
        errors.emplace_back("hunterpie.tls_cert_file, hunterpie.tls_key_file: set both or neither");
    }
    if (!path_prefix.empty() && (path_prefix.front() != '/' || path_prefix.back() == '/')) {
        errors.push_back("hunterpie.path_prefix: \"" + path_prefix +
                         "\" must start with '/' and not end with one");
    }
}

WsRouteSettings route_settings(const HunterpieConfig& c, const core::WebSocketConfig& ws) {
    WsRouteSettings s = core::ws_route_settings(ws);
    // Every received frame, pings included, refreshes the transport's idle timer: exactly the
    // original's activity rule.
    s.idle_timeout = std::chrono::seconds(c.socket_timeout_s);
    s.ping_interval = std::chrono::milliseconds(0);  // the original never pings; clients do
    s.first_message_timeout = std::chrono::milliseconds(0);
    s.compression = c.compression;
    s.compression_threshold_bytes = static_cast<std::size_t>(c.compression_threshold_bytes);
    return s;
}

// ---------------------------------------------------------------------------------------------

/// State shared by every connection of the front-end. Thread-safe.
///
/// Sessions are kept here, in one map under a mutex, rather than as hub topics: `sessionstate`
/// must carry the exact member count and leader flag after every join and leave, in the same order
/// for every member, and the hub's subscribe and presence are asynchronous and per shard, which
/// makes those counts racy to compute. Membership changes are rare (a player joins a hunt); each
/// session has its own lock, held for its changes and for the sends of the resulting state (sends
/// only queue), so every member sees the states in the order the changes happened, and one
/// session's changes never wait for another's. The map's mutex is held only to look up or swap a
/// session's member list (copy-on-write): a push takes it only to copy that list, and sends
/// outside it. A setsession that changes nothing is answered to its sender alone. The hub, when
/// there is one, holds the same membership as `hunterpie:` topics, for operators; nothing is
/// published there.
struct HunterpieFrontend::Shared {
    Shared(core::MetricsRegistry& m)
        : started(std::chrono::steady_clock::now()),
          connections(m.gauge("hearth_hunterpie_connections", "Open HunterPie connections.")),
          sessions_gauge(m.gauge("hearth_hunterpie_sessions", "HunterPie sessions with members.")),
          pushes(m.counter("hearth_hunterpie_pushes_total", "HunterPie push messages received.")),
          deliveries(m.counter("hearth_hunterpie_push_deliveries_total",
                               "HunterPie push messages queued to a recipient.")),
          dropped(m.counter("hearth_hunterpie_push_dropped_total",
                            "HunterPie push messages a recipient could not take (outbox full or "
                            "closing).")),
          pushed_bytes(m.counter("hearth_hunterpie_pushed_bytes_total",
                                 "Bytes of HunterPie push messages received.")),
          invalid(m.counter("hearth_hunterpie_invalid_messages_total",
                            "HunterPie messages that were not JSON with a string type (answered "
                            "\"invalid message\").")),
          servermsgs(m.counter("hearth_hunterpie_servermsg_total",
                               "Operator notices sent through the admin API.")),
          long_session_ids(m.counter("hearth_hunterpie_refused_total",
                                     "HunterPie messages refused by a bound, by reason.",
                                     {{"reason", "session_id_too_long"}})),
          unchanged_setsessions(
              m.counter("hearth_hunterpie_setsession_unchanged_total",
                        "setsession messages that changed nothing (answered to the sender "
                        "alone, not sent to the other members).")),
          unknown_message(make_text(std::string(kUnknownMessage))),
          empty_session_id(make_text(std::string(kEmptySessionId))),
          long_session_id(make_text(std::string(kLongSessionId))),
          invalid_message(make_text(std::string(kInvalidMessage))),
          pong(make_text(std::string(kPong))) {}

    // ---- sessions -----------------------------------------------------------------------------

    /// Adds a member, or updates its leader flag. When that changes the session, every member
    /// gets the new state; when it does not (the same setsession again), only the joiner gets the
    /// current state, as an answer: the plugin waits for a state after each setsession it sends,
    /// and the other members have nothing new to learn.
    void join(const std::string& session, const Member& member) {
        for (;;) {
            const auto order = order_of(session);
            std::lock_guard session_lock(*order);
            Members now;
            bool changed = true;
            {
                std::lock_guard lock(mutex);
                auto found = sessions.find(session);
                if (found == sessions.end() || found->second.order != order) {
                    continue;  // emptied and removed meanwhile: join the session that follows it
                }
                Members& slot = found->second.members;
                if (slot) {
                    for (const auto& m : *slot) {
                        changed = changed && !(m.id == member.id && m.leader == member.leader);
                    }
                }
                if (changed) {
                    auto next = slot ? std::make_shared<std::vector<Member>>(*slot)
                                     : std::make_shared<std::vector<Member>>();
                    auto mine = std::find_if(next->begin(), next->end(),
                                             [&](const Member& m) { return m.id == member.id; });
                    if (mine == next->end()) {
                        next->push_back(member);
                    } else {
                        mine->leader = member.leader;
                    }
                    slot = std::move(next);
                }
                now = slot;
            }
            if (changed) {
                announce(*now, nullptr);
            } else {
                unchanged_setsessions.inc();
                announce(*now, &member.connection);
            }
            return;
        }
    }

    /// Removes a member; the remaining ones get the new state. An empty session is removed.
    void leave(const std::string& session, ConnectionId id) {
        std::shared_ptr<std::mutex> order;
        {
            std::lock_guard lock(mutex);
            auto found = sessions.find(session);
            if (found == sessions.end()) {
                return;
            }
            order = found->second.order;
        }
        std::lock_guard session_lock(*order);
        Members now;
        {
            std::lock_guard lock(mutex);
            auto found = sessions.find(session);
            if (found == sessions.end() || found->second.order != order || !found->second.members) {
                return;
            }
            auto next = std::make_shared<std::vector<Member>>(*found->second.members);
            if (std::erase_if(*next, [id](const Member& m) { return m.id == id; }) == 0) {
                return;
            }
            if (next->empty()) {
                sessions.erase(found);
                sessions_gauge.sub(1);
                return;
            }
            found->second.members = std::move(next);
            now = found->second.members;
        }
        announce(*now, nullptr);
    }

    /// The lock that orders a session's changes; creates the session (without members) when
    /// there is none.
    std::shared_ptr<std::mutex> order_of(const std::string& session) {
        std::lock_guard lock(mutex);
        auto [it, created] = sessions.try_emplace(session);
        if (created) {
            it->second.order = std::make_shared<std::mutex>();
            sessions_gauge.add(1);
        }
        return it->second.order;
    }

    /// Sends the session's state to every member, or to `only` that one. Under the session's
    /// `order` lock (so that every member sees the states in the order of the changes), never
    /// under `mutex`.
    void announce(const std::vector<Member>& members, const ConnectionHandle* only) {
        bool leader = false;
        for (const auto& m : members) {
            leader = leader || m.leader;
        }
        auto state = make_text(encode_sessionstate(leader, members.size()));
        if (only != nullptr) {
            if (auto c = only->lock()) {
                (void)c->send(state);
            }
            return;
        }
        for (const auto& m : members) {
            if (auto c = m.connection.lock()) {
                (void)c->send(state);
            }
        }
    }

    Members members(const std::string& session) const {
        std::lock_guard lock(mutex);
        auto found = sessions.find(session);
        return found == sessions.end() ? nullptr : found->second.members;
    }

    std::size_t session_count() const {
        std::lock_guard lock(mutex);
        return sessions.size();
    }

    // ---- every connection, for operator notices -----------------------------------------------

    void add_connection(ConnectionId id, ConnectionHandle handle) {
        std::lock_guard lock(all_mutex);
        all[id] = std::move(handle);
    }
    void remove_connection(ConnectionId id) {
        std::lock_guard lock(all_mutex);
        all.erase(id);
    }
    std::vector<ConnectionHandle> every_connection() const {
        std::lock_guard lock(all_mutex);
        std::vector<ConnectionHandle> out;
        out.reserve(all.size());
        for (const auto& [id, h] : all) {
            out.push_back(h);
        }
        return out;
    }

    std::string status_page() const {
        return encode_status_page(session_count(), connections.value(), pushed_bytes.value(),
                                  std::chrono::steady_clock::now() - started);
    }

    const std::chrono::steady_clock::time_point started;
    core::Gauge& connections;
    core::Gauge& sessions_gauge;
    hub::Hub* hub = nullptr;  // where session membership is mirrored, if any
    core::Counter& pushes;
    core::Counter& deliveries;
    core::Counter& dropped;
    core::Counter& pushed_bytes;
    core::Counter& invalid;
    core::Counter& servermsgs;
    core::Counter& long_session_ids;
    core::Counter& unchanged_setsessions;
    const SharedPayload unknown_message;
    const SharedPayload empty_session_id;
    const SharedPayload long_session_id;
    const SharedPayload invalid_message;
    const SharedPayload pong;

    /// A session in the registry. `order` is held for each membership change of the session and
    /// the sends of its state (sends only queue), and never with another session's: changes of
    /// different sessions do not wait for each other, and `mutex` is never held while sending.
    struct Session {
        std::shared_ptr<std::mutex> order;
        Members members;  // null or empty only while its first member is joining
    };
    // Lock order: a session's `order`, then `mutex`; `mutex` is held only to read or swap entries.
    mutable std::mutex mutex;
    std::unordered_map<std::string, Session> sessions;
    mutable std::mutex all_mutex;
    std::unordered_map<ConnectionId, ConnectionHandle> all;
};

namespace {

/// One /connect connection. Runs on: the connection's io thread (every callback); owned by the
/// network layer. Its session id and leader flag are touched only there.
class Handler final : public WsHandler, public hub::Subscriber {
public:
    Handler(std::shared_ptr<HunterpieFrontend::Shared> shared, std::string name)
        : shared_(std::move(shared)), name_(std::move(name)) {}

    void on_open(const ConnectionPtr& connection) override {
        connection_ = ConnectionHandle(connection);
        id_ = connection->id();
        connection->set_principal(name_);  // the plugin's playerName (or a random one)
        opened_ = true;
        if (shared_->hub != nullptr) {
            shared_->hub->attach(*this);
        }
        shared_->connections.add(1);
        shared_->add_connection(id_, connection_);
        last_activity_ = std::chrono::steady_clock::now();
        log()->debug("[conn {}] connected as {}", to_string(id_), name_);
    }

    void on_ping() override { last_activity_ = std::chrono::steady_clock::now(); }

    void on_message(MessageKind kind, std::string_view data) override { handle(kind, data, {}); }

    // A push that arrived compressed is forwarded compressed as it came: no deflate per push.
    void on_deflated_message(MessageKind kind, std::string_view data,
                             std::string_view deflated) override {
        handle(kind, data, deflated);
    }

    void on_close(const CloseInfo&) override {
        if (!opened_) {
            return;  // the upgrade never completed: nothing was counted or registered
        }
        leave_session();
        if (shared_->hub != nullptr) {
            shared_->hub->detach(*this);
        }
        shared_->remove_connection(id_);
        shared_->connections.sub(1);
        log()->debug("[conn {}] {} disconnected", to_string(id_), name_);
    }

private:
    // `deflated`: the message's compressed form as received, or empty.
    void handle(MessageKind kind, std::string_view data, std::string_view deflated) {
        // The transport's idle timer already counts this frame; these mirror the original's
        // per-connection fields.
        last_activity_ = std::chrono::steady_clock::now();
        bytes_received_ += data.size();
        auto msg = parse_client_message(kind != MessageKind::kText, data);
        if (std::holds_alternative<Ping>(msg)) {
            reply(shared_->pong);
        } else if (const auto* error = std::get_if<ClientError>(&msg)) {
            if (*error == ClientError::kInvalid) {
                shared_->invalid.inc();
                reply(shared_->invalid_message);
            } else {
                reply(shared_->unknown_message);
            }
        } else if (auto* set = std::get_if<SetSession>(&msg)) {
            on_set_session(*set);
        } else if (const auto* push = std::get_if<Push>(&msg)) {
            on_push(*push, data, deflated);
        } else if (std::holds_alternative<LeaveSession>(msg)) {
            leave_session();
            if (auto c = connection_.lock()) {
                c->close(close_code::kNoStatus, "");  // an empty close frame, as the original
            }
        } else if (auto* rename = std::get_if<SetName>(&msg)) {
            if (rename->name) {
                name_ = std::move(*rename->name);
            }
        } else {
            reply(make_text(encode_unexpected_type(std::get<OtherType>(msg).type)));
        }
    }

    void reply(const SharedPayload& payload) {
        if (auto c = connection_.lock()) {
            (void)c->send(payload);
        }
    }

    void on_set_session(SetSession& msg) {
        if (msg.state == SessionIdState::kTooLong) {
            // Refused as an empty id is (the id was not copied): the reply, and the connection
            // leaves the session it was in, as it would to join another.
            refused_long_session_id("setsession");
            reply(shared_->long_session_id);
            leave_session();
            return;
        }
        if (msg.state == SessionIdState::kMissing) {
            reply(shared_->empty_session_id);
            leave_session();
            return;
        }
        std::string next = std::move(msg.session_id);
        if (next != session_) {
            leave_session();
        }
        leader_ = msg.leader;
        const bool changed = next != session_;
        session_ = std::move(next);
        shared_->join(session_, Member{id_, connection_, leader_});
        if (changed && shared_->hub != nullptr) {
            // Membership only. The name fits the hub's bound (see kMaxSessionIdBytes); a
            // subscription a hub limit refuses is simply not mirrored.
            shared_->hub->subscribe(*this, std::string(kTopicPrefix) + session_, false,
                                    [](Errc) {});
        }
    }

    // hub::Subscriber: nothing is published to hunterpie: topics (pushes bypass the hub, so that
    // one buffer and one compressed frame serve every member), so there is nothing to deliver.
    ConnectionId subscriber_id() const noexcept override { return id_; }
    std::string principal() const override { return name_; }
    bool deliver(const hub::SharedMessage&) override { return true; }
    void on_presence(const hub::PresenceEvent&) override {}

    void on_push(const Push& msg, std::string_view frame, std::string_view deflated) {
        shared_->pushes.inc();
        shared_->pushed_bytes.inc(frame.size());
        if (msg.state == SessionIdState::kTooLong) {
            refused_long_session_id("push");  // no session has such an id: nothing to forward
            return;
        }
        if (msg.state != SessionIdState::kValid) {
            return;
        }
        const auto members = shared_->members(msg.session_id);
        if (!members) {
            return;
        }
        // One payload for every recipient. Its compressed form is the leader's own compressed
        // frame when it came compressed (self-contained: client_no_context_takeover), otherwise
        // computed once, by the first compressing recipient; either way shared.
        SharedPayload payload;
        // Counted once per push: the counters are shared by every io thread.
        std::uint64_t queued = 0;
        std::uint64_t dropped = 0;
        for (const auto& m : *members) {
            if (m.leader || m.id == id_) {
                continue;
            }
            auto c = m.connection.lock();
            if (!c) {
                continue;
            }
            if (!payload) {
                payload = deflated.empty() ? make_text(std::string(frame))
                                           : make_text(std::string(frame), std::string(deflated));
            }
            if (c->send(payload) == SendResult::kQueued) {
                ++queued;
            } else {
                ++dropped;
            }
        }
        if (queued > 0) {
            shared_->deliveries.inc(queued);
        }
        if (dropped > 0) {
            shared_->dropped.inc(dropped);
        }
    }

    // Counted each time; logged at info once per connection (then at debug), so that a client
    // repeating it cannot flood the log.
    void refused_long_session_id(std::string_view what) {
        shared_->long_session_ids.inc();
        const auto level = logged_long_session_id_ ? spdlog::level::debug : spdlog::level::info;
        logged_long_session_id_ = true;
        log()->log(level, "[conn {}] {}: a session id over {} bytes refused", to_string(id_), what,
                   kMaxSessionIdBytes);
    }

    void leave_session() {
        if (session_.empty()) {
            return;
        }
        shared_->leave(session_, id_);
        if (shared_->hub != nullptr) {
            shared_->hub->unsubscribe(*this, std::string(kTopicPrefix) + session_, [](Errc) {});
        }
        session_.clear();
        leader_ = false;
    }

    std::shared_ptr<HunterpieFrontend::Shared> shared_;
    ConnectionHandle connection_;
    ConnectionId id_{};
    bool opened_ = false;
    std::string name_;
    std::string session_;  // empty: in no session
    bool leader_ = false;
    bool logged_long_session_id_ = false;
    std::chrono::steady_clock::time_point last_activity_{};
    std::uint64_t bytes_received_ = 0;
};

}  // namespace

HunterpieFrontend::HunterpieFrontend(core::MetricsRegistry& metrics, const HunterpieConfig& config,
                                     hub::Hub* hub)
    : shared_(std::make_shared<Shared>(metrics)), start_config_(config) {
    shared_->hub = hub;
}

HunterpieFrontend::~HunterpieFrontend() = default;

std::string HunterpieFrontend::connect_path() const {
    return start_config_.path_prefix + "/connect";
}

void HunterpieFrontend::add_routes(Router& router,
                                   std::shared_ptr<const WsRouteSettings> settings) {
    // The listener's address, TLS files and prefix need a restart: the config it started with.
    const HunterpieConfig& c = start_config_;
    const std::string& prefix = c.path_prefix;
    listener_ = router.listener({"hunterpie", c.listen, c.tls_cert_file, c.tls_key_file});
    router.add_http_route(
        listener_, "GET", prefix + "/version", sync_handler([](const HttpRequest&) {
            return with_cors(HttpResponse::text(200, std::string(kVersion), std::string(kHtml)));
        }));
    router.add_http_route(
        listener_, "GET", prefix.empty() ? "/" : prefix + "/",
        sync_handler([shared = shared_](const HttpRequest&) {
            return with_cors(HttpResponse::text(200, shared->status_page(), std::string(kHtml)));
        }));
    for (const std::string path : {"/", "/version", "/connect"}) {
        router.add_http_route(listener_, "OPTIONS", prefix + path, sync_handler(preflight));
    }
    WsRoute route;
    route.frontend = "hunterpie";
    route.settings = std::move(settings);
    route.accept =
        [shared = shared_](
            const HttpRequest& req) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        auto name = req.query_param("playerName");
        return std::make_unique<Handler>(shared,
                                         name && !name->empty() ? std::move(*name) : random_name());
    };
    router.add_ws_route(listener_, connect_path(), std::move(route));
    log()->info("HunterPie sync on {} ({}/connect, {}/version)", c.listen, prefix, prefix);
}

void HunterpieFrontend::add_api_routes(Router& router, const std::string& http_listener,
                                       const auth::OperatorAuth& operators) {
    router.add_http_route(
        http_listener, "POST", "/api/v1/hunterpie/servermsg",
        [shared = shared_, &operators](const HttpRequest& request, HttpResponder res) {
            // An admin account's token is checked on a store thread: the request is copied.
            operators.authorize(request,
                                [shared, request, res](auth::OperatorAuth::Outcome who) mutable {
                                    if (auto* refused = std::get_if<HttpResponse>(&who)) {
                                        res.respond(std::move(*refused));
                                        return;
                                    }
                                    res.respond(send_servermsg(*shared, request));
                                });
        });
}

HttpResponse HunterpieFrontend::send_servermsg(Shared& shared, const HttpRequest& req) {
    auto parsed = parse_servermsg_request(req.body);
    if (const auto* error = std::get_if<ServermsgError>(&parsed)) {
        const auto e = servermsg_error(*error);
        return HttpResponse::error(400, e.code, e.message);
    }
    const auto& notice = std::get<ServermsgRequest>(parsed);
    auto payload = make_text(encode_servermsg(notice.level, notice.text));
    std::size_t delivered = 0;
    auto send = [&](const ConnectionHandle& h) {
        if (auto c = h.lock(); c && c->send(payload) == SendResult::kQueued) {
            ++delivered;
        }
    };
    if (notice.session_id) {
        if (auto members = shared.members(*notice.session_id)) {
            for (const auto& m : *members) {
                send(m.connection);
            }
        }
    } else {
        for (const auto& h : shared.every_connection()) {
            send(h);
        }
    }
    shared.servermsgs.inc();
    log()->info("operator notice ({}) sent to {} connection(s)", notice.level, delivered);
    return HttpResponse::json(200, encode_delivered(delivered));
}

}  // namespace hearth::frontends::hunterpie
