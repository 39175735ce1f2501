#include "frontends/dracosoft/dracosoft.hpp"
#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include <hearth/stream.hpp>

#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "core/runtime.hpp"
#include "frontends/dracosoft/codec.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace hearth::frontends::dracosoft {

namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("dracosoft");
    return l;
}

// While an auth request is in progress a connection's later frames wait, unparsed, in its
// FrameReader; past this many bytes it stops reading until the answer is in (TCP backpressure).
constexpr std::size_t kMaxHeldBytes = 256 * 1024;

// The page's texts, exactly.
constexpr std::string_view kRegistrationSuccessful = "Registration successful";
constexpr std::string_view kLoginSuccessful = "Login successful";
constexpr std::string_view kUsernameExists = "Username already exists";
constexpr std::string_view kCreateFailed = "Failed to create user account";
constexpr std::string_view kInvalidCredentials = "Invalid username or password";
constexpr std::string_view kNotActive = "Account is not active";
constexpr std::string_view kMissingFields = "Missing required fields";
constexpr std::string_view kInvalidAction = "Invalid action";
constexpr std::string_view kSessionFailed = "Failed to create session";
constexpr std::string_view kInternalError = "Internal server error";
constexpr std::string_view kAuthRequired = "Authentication required";
constexpr std::string_view kInvalidFrameLength = "Invalid frame length";
constexpr std::string_view kNotObject = "Message must be a JSON object";
constexpr std::string_view kInvalidJson = "Invalid JSON";
constexpr std::string_view kMessageTooLarge = "Message too large";
constexpr std::string_view kRateLimited = "Rate limit exceeded";  // Hearth's; the original has none

std::string now_timestamp() {
    return iso_timestamp(std::chrono::system_clock::now());
}

bool is(const boost::system::error_code& ec, Errc e) {
    return ec == make_error_code(e);
}

}  // namespace

void DracosoftConfig::validate(core::ConfigErrors& errors) const {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(listen, host, port)) {
        errors.push_back("dracosoft.listen: \"" + listen + "\" is not host:port");
    }
    core::check_message_rate(kName, max_messages_per_s, message_burst, errors);
}

// ---------------------------------------------------------------------------------------------

/// State shared by every connection of the front-end: the logged-in connections (the chat
/// handler's audience) and the counters. Thread-safe: a mutex held for a few pointer copies, never
/// across a send.
struct DracosoftFrontend::Shared {
    Shared(core::Runtime& r, auth::AccountService& a, core::MetricsRegistry& m,
           const DracosoftConfig& c)
        : runtime(r), accounts(a), metrics(m), config(c) {
        chat_relayed = &m.counter("hearth_dracosoft_chat_messages_total",
                                  "DracoSoft chat messages relayed (once per sender's message).");
        chat_deliveries = &m.counter("hearth_dracosoft_chat_deliveries_total",
                                     "DracoSoft chat messages queued to recipients.");
        chat_too_large = &m.counter("hearth_dracosoft_chat_too_large_total",
                                    "DracoSoft chat messages not relayed: their relayed frame "
                                    "would exceed 1 MiB.");
    }

    core::Counter& auth_result(std::string_view action, std::string_view result) {
        return metrics.counter("hearth_dracosoft_auth_total",
                               "DracoSoft register and login requests, by action and result.",
                               {{"action", std::string(action)}, {"result", std::string(result)}});
    }
    core::Counter& bad_input(std::string_view kind) {
        return metrics.counter("hearth_dracosoft_bad_input_total",
                               "DracoSoft frames refused, by kind (bad_length, invalid_json, "
                               "not_object).",
                               {{"kind", std::string(kind)}});
    }

    void set_authenticated(ConnectionId id, const StreamConnectionPtr& c) {
        std::lock_guard lock(mutex);
        authenticated[id] = c;
    }
    void remove(ConnectionId id) {
        std::lock_guard lock(mutex);
        authenticated.erase(id);
    }
    std::vector<StreamConnectionPtr> audience() {
        std::vector<StreamConnectionPtr> out;
        std::lock_guard lock(mutex);
        out.reserve(authenticated.size());
        for (const auto& [id, weak] : authenticated) {
            if (auto c = weak.lock()) {
                out.push_back(std::move(c));
            }
        }
        return out;
    }

    core::Runtime& runtime;
    auth::AccountService& accounts;
    core::MetricsRegistry& metrics;
    DracosoftConfig config;
    core::Counter* chat_relayed = nullptr;
    core::Counter* chat_deliveries = nullptr;
    core::Counter* chat_too_large = nullptr;

    std::mutex mutex;
    std::unordered_map<ConnectionId, std::weak_ptr<StreamConnection>> authenticated;
};

namespace {

using Shared = DracosoftFrontend::Shared;

/// What a logged-in connection's other messages reach: the `client:message` events of the
/// original, handled here by its chat module (relay `chat` to every logged-in connection, the
/// sender included; ignore the rest). A later issue moves this onto the event bus.
/// Thread-safe.
class ChatHandler {
public:
    explicit ChatHandler(Shared& shared) : shared_(shared) {}

    void on_message(StreamConnection& sender, const std::string& from,
                    const json::object& message) {
        const auto* type = message.if_contains("type");
        if (type == nullptr || !type->is_string() || type->get_string() != "chat") {
            return;  // unhandled types are ignored
        }
        const auto* text = message.if_contains("message");
        if (text == nullptr || !text->is_string()) {
            return;
        }
        auto frame = chat_frame(from, text->get_string(), now_timestamp());
        if (frame.size() - kHeaderBytes > kMaxFrameBytes) {
            // The relayed form (escaped, with the sender and timestamp) can outgrow the limit that
            // the sender's message met; no client could read it. The original drops it silently;
            // the sender is told.
            shared_.chat_too_large->inc();
            (void)sender.send(make_binary(error_frame(kMessageTooLarge, now_timestamp())));
            return;
        }
        // Encoded once; every recipient gets the same payload.
        auto payload = make_binary(std::move(frame));
        shared_.chat_relayed->inc();
        std::uint64_t n = 0;
        for (const auto& c : shared_.audience()) {
            if (c->send(payload) == SendResult::kQueued) {
                ++n;
            }
        }
        shared_.chat_deliveries->inc(n);
    }

private:
    Shared& shared_;
};

/// One DracoSoft connection. Runs on: its connection's io thread (every callback and every
/// completion, posted back). Owned by: the network layer, until `on_close`.
///
/// Frames are handled strictly in order: while a register or login is in progress the later
/// frames stay unparsed in the reader (reading pauses past kMaxHeldBytes), and the completion
/// resumes the loop.
class DracosoftConnection final : public StreamHandler {
public:
    explicit DracosoftConnection(std::shared_ptr<Shared> shared)
        : shared_(std::move(shared)), chat_(*shared_) {}

    void on_open(StreamConnectionPtr connection) override {
        connection_ = std::move(connection);
        log()->debug("[conn {}] open from {}", to_string(connection_->id()),
                     connection_->peer_address());
    }

    void on_data(std::string_view bytes) override {
        reader_.feed(bytes);
        process();
    }

    // The client sent everything it will send: answer what is still held, then close (the
    // original's read loop ends at EOF after handling each message in turn).
    void on_end_of_input() override {
        end_of_input_ = true;
        close_if_done();
    }

    void on_close() override {
        closed_ = true;
        shared_->remove(connection_->id());
        log()->debug("[conn {}] closed{}", to_string(connection_->id()),
                     username_ ? " (" + *username_ + ")" : std::string());
        connection_.reset();
    }

private:
    void send(std::string frame) { (void)connection_->send(make_binary(std::move(frame))); }

    void process() {
        while (!closed_ && !auth_pending_ && !failed_) {
            const auto r = reader_.next();
            if (r.status == DecodeStatus::kNeedMore) {
                break;
            }
            if (r.status == DecodeStatus::kBadLength) {
                // The stream cannot be resynchronised: say why, then close.
                failed_ = true;
                shared_->bad_input("bad_length").inc();
                send(error_frame(kInvalidFrameLength, now_timestamp()));
                connection_->close();
                return;
            }
            connection_->touch();  // a complete message: the inactivity clock restarts
            if (!connection_->take_message(r.payload.size())) {
                // Over the listener's message or byte rate: say why, handle nothing more (the
                // frames already read included), then close.
                failed_ = true;
                send(error_frame(kRateLimited, now_timestamp()));
                connection_->close();
                return;
            }
            on_frame(r.payload);
        }
        if (auth_pending_ && !closed_ && reader_.buffered() > kMaxHeldBytes && !paused_) {
            paused_ = true;
            connection_->pause_reading();
        }
    }

    void on_frame(std::string_view payload) {
        auto parsed = parse_message(payload);
        if (parsed.error == ParseError::kInvalidJson) {
            shared_->bad_input("invalid_json").inc();
            send(error_frame(kInvalidJson, now_timestamp()));
            return;
        }
        if (parsed.error == ParseError::kNotObject) {
            shared_->bad_input("not_object").inc();
            send(error_frame(kNotObject, now_timestamp()));
            return;
        }
        const auto& msg = parsed.object;
        const auto* type = msg.if_contains("type");
        const std::string_view t =
            type != nullptr && type->is_string() ? std::string_view(type->get_string()) : "";
        if (t == "ping") {
            send(pong_frame(now_timestamp()));
            return;
        }
        if (t == "auth") {
            on_auth(msg);
            return;
        }
        if (!username_) {
            send(auth_response_frame(false, kAuthRequired, now_timestamp()));
            return;
        }
        chat_.on_message(*connection_, *username_, msg);
    }

    void answer(std::string_view action, bool success, std::string_view message,
                std::optional<std::string> token = std::nullopt) {
        shared_->auth_result(action, success ? "ok" : "failed").inc();
        send(auth_response_frame(success, message, now_timestamp(), token));
    }

    void on_auth(const json::object& msg) {
        const auto action = string_field(msg, "action");
        if (!action || (*action != "register" && *action != "login")) {
            answer("invalid", false, kInvalidAction);
            return;
        }
        auto username = string_field(msg, "username");
        auto password = string_field(msg, "password");
        if (!username || !password) {
            answer(*action, false, kMissingFields);
            return;
        }
        if (*action == "login") {
            login(std::move(*username), std::move(*password));
        } else {
            register_account(std::move(*username), std::move(*password),
                             string_field(msg, "email"));
        }
    }

    /// Wraps a completion so that it runs here, on this connection's thread, and only while the
    /// connection is open; then the held frames are processed.
    template <class T, class F>
    std::function<void(Result<T>)> back_here(F f) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<Result<T>>(
            shared_->runtime, [this, alive, f = std::move(f)](Result<T> r) mutable {
                if (alive.expired() || closed_) {
                    return;
                }
                f(std::move(r));
            });
    }

    void begin_auth() { auth_pending_ = true; }

    void end_auth() {
        auth_pending_ = false;
        if (paused_) {
            paused_ = false;
            connection_->resume_reading();
        }
        process();
        close_if_done();
    }

    void close_if_done() {
        if (end_of_input_ && !auth_pending_ && !closed_) {
            connection_->close();
        }
    }

    void login(std::string username, std::string password) {
        begin_auth();
        shared_->accounts.login(
            username, std::move(password), util::ip_of_peer(connection_->peer_address()),
            "dracosoft", back_here<auth::SessionToken>([this](Result<auth::SessionToken> r) {
                if (r) {
                    logged_in(r->principal.username, std::move(r->token), "login",
                              kLoginSuccessful);
                } else if (is(r.error(), Errc::kUnauthenticated) ||
                           is(r.error(), Errc::kLimitReached) ||
                           is(r.error(), Errc::kInvalidArgument)) {
                    // Throttled logins get the same answer as a wrong password:
                    // the original has no throttle, so its clients know no
                    // other text, and the answer reveals nothing about the
                    // account.
                    answer("login", false, kInvalidCredentials);
                } else if (is(r.error(), Errc::kNotAllowed)) {
                    answer("login", false, kNotActive);
                } else {
                    log()->warn("[conn {}] login failed: {}", to_string(connection_->id()),
                                r.error().message());
                    answer("login", false, kInternalError);
                }
                end_auth();
            }));
    }

    void register_account(std::string username, std::string password,
                          std::optional<std::string> email) {
        begin_auth();
        // create_account says kAlreadyExists for a taken username and for a taken email; the page
        // answers them differently, so the username is looked up first.
        auto name = username;
        shared_->accounts.store().account_by_name(
            std::move(name),
            back_here<store::AccountRecord>(
                [this, username = std::move(username), password = std::move(password),
                 email = std::move(email)](Result<store::AccountRecord> found) mutable {
                    if (found) {
                        answer("register", false, kUsernameExists);
                        end_auth();
                        return;
                    }
                    if (!is(found.error(), Errc::kNotFound)) {
                        log()->warn("[conn {}] register: account lookup failed: {}",
                                    to_string(connection_->id()), found.error().message());
                        answer("register", false, kInternalError);
                        end_auth();
                        return;
                    }
                    create(std::move(username), std::move(password), std::move(email));
                }));
    }

    void create(std::string username, std::string password, std::optional<std::string> email) {
        auth::NewAccount account{
            std::move(username), std::move(password), std::move(email), {"player"}};
        shared_->accounts.register_account(
            std::move(account), "dracosoft", util::ip_of_peer(connection_->peer_address()),
            back_here<store::AccountRecord>([this](Result<store::AccountRecord> created) {
                if (!created) {
                    const auto& ec = created.error();
                    if (is(ec, Errc::kLimitReached)) {
                        // The original has no limit, so its clients know no other text than this
                        // for a registration that did not happen.
                        shared_->auth_result("register", "throttled").inc();
                        send(auth_response_frame(false, kCreateFailed, now_timestamp()));
                    } else if (is(ec, Errc::kStorageFailure) || is(ec, Errc::kUnavailable)) {
                        log()->warn("[conn {}] register failed: {}", to_string(connection_->id()),
                                    ec.message());
                        answer("register", false, kInternalError);
                    } else {
                        // kAlreadyExists here is the email (the username was free a moment ago,
                        // or taken since: either way "failed"); kInvalidArgument a username or
                        // password Hearth's rules refuse.
                        answer("register", false, kCreateFailed);
                    }
                    end_auth();
                    return;
                }
                // The session token for the account just made: no second hash, no throttle.
                shared_->accounts.open_session(
                    std::move(*created), "dracosoft", util::ip_of_peer(connection_->peer_address()),
                    back_here<auth::SessionToken>([this](Result<auth::SessionToken> r) {
                        if (r) {
                            logged_in(r->principal.username, std::move(r->token), "register",
                                      kRegistrationSuccessful);
                        } else {
                            log()->warn("[conn {}] register: no session: {}",
                                        to_string(connection_->id()), r.error().message());
                            answer("register", false, kSessionFailed);
                        }
                        end_auth();
                    }));
            }));
    }

    void logged_in(std::string username, std::string token, std::string_view action,
                   std::string_view message) {
        username_ = std::move(username);
        connection_->set_principal(*username_);
        shared_->set_authenticated(connection_->id(), connection_);
        log()->debug("[conn {}] logged in as {}", to_string(connection_->id()), *username_);
        answer(action, true, message, std::move(token));
    }

    std::shared_ptr<Shared> shared_;
    ChatHandler chat_;
    StreamConnectionPtr connection_;
    FrameReader reader_;
    std::optional<std::string> username_;  // set once logged in
    bool auth_pending_ = false;
    bool paused_ = false;
    bool failed_ = false;        // a bad length or over a rate: nothing more is handled
    bool end_of_input_ = false;  // the client shut down its sending side
    bool closed_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
};

}  // namespace

DracosoftFrontend::DracosoftFrontend(core::Runtime& runtime, auth::AccountService& accounts,
                                     core::MetricsRegistry& metrics, const DracosoftConfig& config)
    : shared_(std::make_shared<Shared>(runtime, accounts, metrics, config)), config_(config) {}

DracosoftFrontend::~DracosoftFrontend() = default;

void DracosoftFrontend::add_routes(Router& router) {
    StreamRoute route;
    route.frontend = "dracosoft";
    route.settings.idle_timeout = std::chrono::seconds(config_.client_timeout_s);
    route.settings.idle_reset = IdleReset::kOnTouch;  // "no complete message for client_timeout"
    route.settings.max_connections_per_ip =
        static_cast<std::size_t>(config_.max_connections_per_ip);
    route.settings.max_messages_per_s = config_.max_messages_per_s;
    route.settings.message_burst = config_.message_burst;
    route.settings.max_bytes_per_s = static_cast<std::uint64_t>(config_.max_bytes_per_s);
    // One frame of the largest size always passes a full bucket.
    route.settings.bytes_burst =
        std::max<std::uint64_t>(static_cast<std::uint64_t>(config_.bytes_burst), kMaxFrameBytes);
    route.make_handler = [shared = shared_]() -> std::unique_ptr<StreamHandler> {
        return std::make_unique<DracosoftConnection>(shared);
    };
    listener_ = router.add_stream_listener({"dracosoft", config_.listen, "", ""}, std::move(route));
    log()->info("DracoSoft protocol on {}", config_.listen);
}

}  // namespace hearth::frontends::dracosoft
