#include "frontends/native/native.hpp"
#include <mutex>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "hub/hub.hpp"
#include "util/log.hpp"

namespace hearth::frontends::native {

namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("native");
    return l;
}

std::string quoted(std::string_view s) {
    return json::serialize(json::string_view(s.data(), s.size()));
}

}  // namespace

void NativeConfig::validate(core::ConfigErrors& errors) const {
    if (auto why = auth::check_roles(session_roles)) {
        errors.push_back("native.session_roles: " + *why);
    }
    for (const auto& r : topic_rules) {
        if (!valid_topic_rule(r)) {
            errors.push_back("native.topic_rules: \"" + r +
                             "\" is not ACTION:TOPIC (ACTION one of subscribe, publish, presence, "
                             "*; TOPIC may end in *)");
        }
    }
}

auth::AccessPolicy access_policy(const NativeConfig& config) {
    return {.door = "native", .api_key_scope = "native", .session_roles = config.session_roles};
}

// ---------------------------------------------------------------------------------------------

/// Settings and counters shared by every connection of the front-end.
struct NativeFrontend::Shared {
    struct Settings {
        bool allow_anonymous;
        std::size_t max_publish_bytes;
        TopicRules rules;
        auth::AccessPolicy access;  // which tokens a hello may carry
    };

    Shared(hub::Hub& h, core::MetricsRegistry& m, const NativeConfig& c) : hub(h), metrics(m) {
        set(c);
        format = hub::register_format("native");
        requests = &m.counter("hearth_native_requests_total", "Native protocol requests received.");
        held_overflow = &m.counter(
            "hearth_native_hello_held_overflow_total",
            "Connections closed (1008) for sending more than 256 messages or 64 KiB while their "
            "hello's token was being checked.");
    }

    void set(const NativeConfig& c) {
        auto s = std::make_shared<const Settings>(
            Settings{c.allow_anonymous, static_cast<std::size_t>(c.max_publish_bytes),
                     TopicRules(c.topic_rules), access_policy(c)});
        std::lock_guard lock(mutex);
        settings = std::move(s);
    }
    std::shared_ptr<const Settings> get() const {
        std::lock_guard lock(mutex);
        return settings;
    }

    void count_error(std::string_view code) {
        metrics
            .counter("hearth_native_errors_total", "Native protocol errors answered, by code.",
                     {{"code", std::string(code)}})
            .inc();
    }

    auth::AccountService* account_service() const {
        std::lock_guard lock(mutex);
        return accounts;
    }

    hub::Hub& hub;
    core::MetricsRegistry& metrics;
    auth::AccountService* accounts = nullptr;  // guarded by mutex
    std::size_t format = 0;
    core::Counter* requests = nullptr;
    core::Counter* held_overflow = nullptr;
    mutable std::mutex mutex;
    std::shared_ptr<const Settings> settings;
};

namespace {

// Messages held while a hello's token is checked (a store read, usually well under a
// millisecond; a better-auth lookup can take up to its query timeout): at most this many, and at
// most this many bytes unless the one held message is larger (a client may send its first publish
// with its hello). Past either, the connection is closed 1008: without the bound, 256 messages of
// [websocket] max_message_bytes (1 MiB, far more inflated from permessage-deflate's input) could
// be held per connection before anyone is authenticated.
constexpr std::size_t kMaxHeldMessages = 256;
constexpr std::size_t kMaxHeldBytes = 64 * 1024;
constexpr std::string_view kHeldOverflowReason = "too much sent before the hello was answered";

/// The wire form of a hub message for native clients, built once per message.
SharedPayload encode_message(const hub::HubMessage& m) {
    std::string out;
    out.reserve(64 + m.topic().size() + m.data().size());
    out += R"({"type":"message",)";
    if (!m.topic().empty()) {
        std::string_view topic = m.topic();
        if (topic.starts_with(kNativePrefix)) {
            topic.remove_prefix(kNativePrefix.size());
        }
        out += R"("topic":)";
        out += quoted(topic);
        out += ',';
    }
    out += R"("from":")";
    out += to_string(m.from());
    out += R"(","data":)";
    out += m.data();
    out += '}';
    return make_text(std::move(out));
}

/// One native client. Runs on: its connection's io thread. Owned by: the WebSocket connection.
class NativeConnection final : public WsHandler, public hub::Subscriber {
public:
    explicit NativeConnection(std::shared_ptr<NativeFrontend::Shared> shared)
        : shared_(std::move(shared)) {}

    // WsHandler
    void on_open(const ConnectionPtr& connection) override {
        connection_ = connection;
        id_ = connection->id();
        shared_->hub.attach(*this);
        attached_ = true;
    }

    void on_message(MessageKind kind, std::string_view data) override {
        if (held_overflow_) {
            return;  // closing: what was read after the close is dropped
        }
        if (hello_pending_) {
            // Requests after a hello wait for its token check, so that they are answered in
            // order and as the authenticated client. Bounded in count and bytes: a client that
            // floods meanwhile is closed (dropping a message would break the order of replies).
            if (!held_) {
                held_ = std::make_unique<HeldMessages>();
            }
            if (held_->messages.size() >= kMaxHeldMessages ||
                (!held_->messages.empty() && held_->bytes + data.size() > kMaxHeldBytes)) {
                close_held_overflow();
                return;
            }
            held_->bytes += data.size();
            held_->messages.push_back({kind, std::string(data)});
            return;
        }
        shared_->requests->inc();
        const Request request = Request::read(kind, data);
        const json::value* id = request.id();
        if (const auto& refusal = request.refusal()) {
            reply_error(id, refusal->code, refusal->message);
            return;
        }
        const json::object& msg = request.fields();
        const auto settings = shared_->get();
        const std::string_view t = request.type();
        if (t == "hello") {
            on_hello(msg, id, *settings);
            return;
        }
        if (!settings->allow_anonymous && !authenticated_) {
            reply_error(id, "not_allowed", "Send a hello with a valid token first.");
            return;
        }
        if (t == "subscribe") {
            subscribed_ = true;
            on_subscribe(msg, id, *settings);
        } else if (t == "unsubscribe") {
            on_unsubscribe(msg, id);
        } else if (t == "publish") {
            on_publish(msg, id, *settings);
        } else if (t == "send") {
            on_send(msg, id, *settings);
        } else if (t == "presence") {
            on_presence_request(msg, id, *settings);
        } else {
            reply_error(id, "unknown_type", "Unknown message type \"" + std::string(t) + "\".");
        }
    }

    void on_close(const CloseInfo&) override {
        if (attached_) {
            shared_->hub.detach(*this);
            attached_ = false;
        }
        connection_.reset();
    }

    // hub::Subscriber
    ConnectionId subscriber_id() const noexcept override { return id_; }
    std::string principal() const override {
        if (!authenticated_ || anonymous_in_hub_ || !connection_) {
            return "anonymous";
        }
        return connection_->principal();  // the account, set at the hello
    }

    bool deliver(const hub::SharedMessage& message) override {
        if (!connection_) {
            return false;
        }
        const auto& payload = message->encoded(shared_->format, encode_message);
        return connection_->send(payload) == SendResult::kQueued;
    }

    void on_presence(const hub::PresenceEvent& e) override {
        if (!connection_) {
            return;
        }
        std::string_view topic = e.topic;
        if (topic.starts_with(kNativePrefix)) {
            topic.remove_prefix(kNativePrefix.size());
        }
        std::string out = e.kind == hub::PresenceEvent::Kind::kJoin ? R"({"type":"join","topic":)"
                                                                    : R"({"type":"leave","topic":)";
        out += quoted(topic);
        out += R"(,"connection":")";
        out += to_string(e.connection);
        out += R"("})";
        (void)connection_->send(make_text(std::move(out)));
    }

private:
    using Settings = NativeFrontend::Shared::Settings;

    void on_hello(const json::object& msg, const json::value* id, const Settings& settings) {
        auto token = read_token(msg);
        if (refused(token, id)) {
            return;
        }
        if (auto& t = std::get<0>(token)) {
            hello_with_token(std::move(*t), id, settings.access);
            return;
        }
        if (!settings.allow_anonymous) {
            reply_error(id, "unauthenticated", "This server requires a token.");
            return;
        }
        if (connection_) {
            connection_->set_principal("anonymous");
        }
        welcome(id, std::nullopt);
    }

    // Checks the token off this thread (the account store), then answers here.
    void hello_with_token(std::string token, const json::value* id,
                          const auth::AccessPolicy& policy) {
        auto* accounts = shared_->account_service();
        if (accounts == nullptr) {
            reply_error(id, "unauthenticated", "The token is not valid.");
            return;
        }
        auto rid = id != nullptr ? std::make_shared<json::value>(*id) : nullptr;
        hello_pending_ = true;
        accounts->authorize_login(
            std::move(token), policy, connection_ ? connection_->peer_address() : std::string(),
            core::post_to_current_thread<auth::AccessDecision>(
                shared_->hub.runtime(), [this, alive = alive_token(), rid](auth::AccessDecision d) {
                    if (!alive()) {
                        return;
                    }
                    hello_pending_ = false;
                    auto held = std::move(held_);
                    if (held_overflow_) {
                        return;  // closed; nothing more is answered
                    }
                    on_token_checked(d, rid.get());
                    if (held) {
                        for (auto& m : held->messages) {
                            on_message(m.kind, m.data);
                        }
                    }
                }));
    }

    void close_held_overflow() {
        held_overflow_ = true;
        shared_->held_overflow->inc();
        if (connection_) {
            log()->debug("connection {} from {}: {} ({} messages, {} bytes held): closing 1008",
                         to_string(id_), connection_->peer_address(), kHeldOverflowReason,
                         held_ ? held_->messages.size() : 0, held_ ? held_->bytes : 0);
            connection_->close(close_code::kPolicyViolation, kHeldOverflowReason);
        }
        held_.reset();
    }

    void on_token_checked(auth::AccessDecision& d, const json::value* rid) {
        switch (d.refusal) {
            case auth::Refusal::kNone:
                break;
            case auth::Refusal::kMissingToken:
            case auth::Refusal::kInvalidToken:
                reply_error(rid, "unauthenticated",
                            "The token is not valid (unknown, expired or revoked).");
                return;
            case auth::Refusal::kUnavailable:
                reply_error(rid, "unavailable", "Tokens cannot be checked right now; try again.");
                return;
            case auth::Refusal::kKindNotAccepted:
            case auth::Refusal::kForeignRealm:
                reply_error(rid, "not_allowed",
                            "This kind of token is not accepted by the native protocol (it takes "
                            "API keys with the scope native, and sessions of accounts with a role "
                            "in [native] session_roles).");
                return;
            case auth::Refusal::kMissingScope:
                reply_error(rid, "not_allowed",
                            "This API key is not valid for the native protocol (it needs "
                            "the scope native).");
                return;
            case auth::Refusal::kMissingRole:
                reply_error(rid, "not_allowed",
                            "This account's roles do not allow the native protocol "
                            "([native] session_roles).");
                return;
        }
        const auth::Principal& p = d.principal;
        authenticated_ = true;
        if (connection_) {
            connection_->set_principal(p.username);
        }
        // The principal others see in presence is the account's, unless something was
        // subscribed under the anonymous one already: then it stays anonymous, so that one
        // connection never shows as two members.
        anonymous_in_hub_ = subscribed_;
        welcome(rid, p.username);
    }

    void welcome(const json::value* id, const std::optional<std::string>& account) {
        json::object r;
        r["type"] = "welcome";
        r["connection"] = to_string(id_);
        if (account) {
            r["account"] = *account;
        }
        reply(std::move(r), id);
    }

    // Answers a field that was refused; true when it was.
    template <class T>
    bool refused(const Read<T>& field, const json::value* id) {
        if (const auto* refusal = std::get_if<Refusal>(&field)) {
            reply_error(id, refusal->code, refusal->message);
            return true;
        }
        return false;
    }

    void on_subscribe(const json::object& msg, const json::value* id, const Settings& settings) {
        auto topic = read_topic(msg, settings.rules, Action::kSubscribe);
        if (refused(topic, id)) {
            return;
        }
        const auto presence = read_flag(msg, "presence");
        if (refused(presence, id)) {
            return;
        }
        shared_->hub.subscribe(*this, std::get<0>(topic), std::get<0>(presence),
                               guarded(id, [this](Errc e, const json::value* rid) {
                                   if (e == Errc::kOk) {
                                       reply_ok(rid);
                                   } else if (e == Errc::kLimitReached) {
                                       reply_error(rid, "limit_reached",
                                                   "A subscription limit was reached.");
                                   } else {
                                       reply_error(rid, "not_allowed", "Subscription refused.");
                                   }
                               }));
    }

    void on_unsubscribe(const json::object& msg, const json::value* id) {
        auto topic = read_unsubscribe_topic(msg);
        if (refused(topic, id)) {
            return;
        }
        // Unsubscribing from a topic one is not in is not an error: the outcome is the same.
        shared_->hub.unsubscribe(*this, std::move(std::get<0>(topic)), [](Errc) {});
        reply_ok(id);
    }

    void on_publish(const json::object& msg, const json::value* id, const Settings& settings) {
        auto topic = read_topic(msg, settings.rules, Action::kPublish);
        if (refused(topic, id)) {
            return;
        }
        const auto echo = read_flag(msg, "echo");
        if (refused(echo, id)) {
            return;
        }
        auto data = read_data(msg, settings.max_publish_bytes);
        if (refused(data, id)) {
            return;
        }
        // The ok goes first, so that a publisher with echo sees its ok before its own message.
        reply_ok(id);
        shared_->hub.publish(
            std::make_shared<const hub::HubMessage>(std::move(std::get<0>(topic)), id_, "anonymous",
                                                    std::move(std::get<0>(data))),
            std::get<0>(echo));
    }

    void on_send(const json::object& msg, const json::value* id, const Settings& settings) {
        const auto target = read_target(msg);
        if (refused(target, id)) {
            return;
        }
        const std::string_view to_text = msg.at("to").get_string();
        auto data = read_data(msg, settings.max_publish_bytes);
        if (refused(data, id)) {
            return;
        }
        auto message = std::make_shared<const hub::HubMessage>(std::string(), id_, "anonymous",
                                                               std::move(std::get<0>(data)));
        shared_->hub.send(
            static_cast<ConnectionId>(std::get<0>(target)), std::move(message),
            guarded(id, [this, to_text = std::string(to_text)](Errc e, const json::value* rid) {
                if (e == Errc::kOk) {
                    reply_ok(rid);
                } else {
                    reply_error(rid, "unknown_connection", "No connection \"" + to_text + "\".");
                }
            }));
    }

    void on_presence_request(const json::object& msg, const json::value* id,
                             const Settings& settings) {
        auto topic = read_topic(msg, settings.rules, Action::kPresence);
        if (refused(topic, id)) {
            return;
        }
        std::string client_topic(msg.at("topic").get_string());
        auto rid = id != nullptr ? std::make_shared<json::value>(*id) : nullptr;
        shared_->hub.presence(std::get<0>(topic), [this, alive = alive_token(), rid,
                                                   client_topic](std::vector<hub::Member> members) {
            if (!alive()) {
                return;
            }
            json::array list;
            list.reserve(members.size());
            for (const auto& m : members) {
                json::object o;
                o["connection"] = to_string(m.connection);
                o["principal"] = m.principal;
                list.push_back(std::move(o));
            }
            json::object r;
            r["type"] = "presence";
            r["topic"] = client_topic;
            r["members"] = std::move(list);
            reply(std::move(r), rid.get());
        });
    }

    // Whether this handler still serves its connection, asked by a completion before it touches
    // `this`: the hub knows the handler by its connection's id from on_open to on_close, and ids
    // are never reused. Completions run on the connection's thread (the hub's on the calling
    // thread, the account service's posted back here), where the hub answers without a lock; no
    // guard object per connection is needed.
    struct AliveToken {
        std::shared_ptr<NativeFrontend::Shared> shared;
        ConnectionId id;
        const hub::Subscriber* self;
        bool operator()() const { return shared->hub.local(id) == self; }
    };
    AliveToken alive_token() const { return {shared_, id_, this}; }

    // Wraps a completion so that it runs only while this connection exists, with its request id.
    template <class F>
    hub::Hub::Done guarded(const json::value* id, F f) {
        auto rid = id != nullptr ? std::make_shared<json::value>(*id) : nullptr;
        return [alive = alive_token(), rid, f = std::move(f)](Errc e) {
            if (alive()) {
                f(e, rid.get());
            }
        };
    }

    void reply(json::object r, const json::value* id) {
        if (id != nullptr) {
            r["id"] = *id;
        }
        if (connection_) {
            (void)connection_->send(make_text(json::serialize(r)));
        }
    }

    void reply_ok(const json::value* id) {
        json::object r;
        r["type"] = "ok";
        reply(std::move(r), id);
    }

    void reply_error(const json::value* id, std::string_view code, std::string_view message) {
        shared_->count_error(code);
        json::object r;
        r["type"] = "error";
        r["code"] = code;
        r["message"] = message;
        reply(std::move(r), id);
    }

    std::shared_ptr<NativeFrontend::Shared> shared_;
    ConnectionPtr connection_;
    ConnectionId id_{};
    bool attached_ = false;
    bool authenticated_ = false;
    bool subscribed_ = false;        // a subscribe was sent (see hello_with_token)
    bool hello_pending_ = false;     // a hello's token is being checked: messages are held
    bool anonymous_in_hub_ = false;  // subscribed before its hello: see principal()
    bool held_overflow_ = false;     // closed for holding too much: later messages are dropped
    // Messages that came while a hello's token was checked: made by the first one (most clients
    // wait for the welcome, and keep a pointer rather than an empty vector and a count).
    struct HeldMessages {
        struct Message {
            MessageKind kind;
            std::string data;
        };
        std::vector<Message> messages;  // at most kMaxHeldMessages, and kMaxHeldBytes unless one
        std::size_t bytes = 0;          // the sum of the messages' sizes
    };
    std::unique_ptr<HeldMessages> held_;
};

}  // namespace

NativeFrontend::NativeFrontend(hub::Hub& hub, core::MetricsRegistry& metrics,
                               const NativeConfig& config)
    : shared_(std::make_shared<Shared>(hub, metrics, config)) {}

NativeFrontend::~NativeFrontend() = default;

void NativeFrontend::add_routes(Router& router, const std::string& listener,
                                std::shared_ptr<const WsRouteSettings> settings) {
    WsRoute route;
    route.frontend = "native";
    route.settings = std::move(settings);
    route.accept =
        [shared = shared_](
            const HttpRequest&) -> std::variant<std::unique_ptr<WsHandler>, HttpResponse> {
        return std::make_unique<NativeConnection>(shared);
    };
    router.add_ws_route(listener, "/ws", std::move(route));
    log()->info("native protocol on /ws");
}

void NativeFrontend::reload(const NativeConfig& config) {
    shared_->set(config);
}

void NativeFrontend::set_accounts(auth::AccountService* accounts) {
    std::lock_guard lock(shared_->mutex);
    shared_->accounts = accounts;
}

}  // namespace hearth::frontends::native
