#include "frontends/packet/packet.hpp"
#include <algorithm>
#include <array>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <hearth/stream.hpp>

#include "auth/access_policy.hpp"
#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "frontends/packet/codec.hpp"
#include "frontends/packet/messages.hpp"
#include "util/log.hpp"
#include "util/strings.hpp"

namespace hearth::frontends::packet {

namespace wire = ::hearth::packet;

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("packet");
    return l;
}

// While a login is being checked, a connection's later bytes wait unparsed; past this many it
// stops reading until the answer is in (TCP backpressure).
constexpr std::size_t kMaxHeldBytes = 64 * 1024;

// How often each io thread looks for connections past their idle or login deadline: a deadline is
// kept to within this.
constexpr auto kSweepInterval = std::chrono::milliseconds(250);

// The transport's own idle timeout, beyond the front-end's deadlines: a backstop that closes a
// connection (without an Error) should the sweep ever miss one.
constexpr auto kTransportIdleSlack = std::chrono::seconds(10);

bool is(const boost::system::error_code& ec, Errc e) {
    return ec == make_error_code(e);
}

/// The metric label of an opcode: the protocol's parts.
enum class OpcodeClass : std::uint8_t { kSession, kCharacter, kWorld, kUnknown };
constexpr std::array<std::string_view, 4> kClassNames = {"session", "character", "world",
                                                         "unknown"};

OpcodeClass class_of(std::uint16_t type) {
    using wire::Opcode;
    switch (static_cast<Opcode>(type)) {
        case Opcode::kAlive:
        case Opcode::kLogout:
        case Opcode::kLogin:
        case Opcode::kNotice:
        case Opcode::kContinueOnNode:
            return OpcodeClass::kSession;
        case Opcode::kCharacterList:
        case Opcode::kCreateCharacter:
        case Opcode::kDeleteCharacter:
        case Opcode::kSelectCharacter:
            return OpcodeClass::kCharacter;
        case Opcode::kChangeMap:
        case Opcode::kEnterWorld:
        case Opcode::kMove:
        case Opcode::kCorrection:
        case Opcode::kWorldUpdate:
        case Opcode::kTargetHp:
        case Opcode::kAttack:
        case Opcode::kHpUpdate:
        case Opcode::kDeath:
        case Opcode::kRespawn:
        case Opcode::kChat:
        case Opcode::kWhisper:
            return OpcodeClass::kWorld;
    }
    return OpcodeClass::kUnknown;
}

template <class... Ms>
constexpr bool any_opcode(std::uint16_t type, std::tuple<Ms...>*) {
    return ((type == static_cast<std::uint16_t>(Ms::kOpcode)) || ...);
}

/// Whether a client may send a packet of this type at all.
bool known_to_server(std::uint16_t type) {
    return any_opcode(type, static_cast<wire::ToServerMessages*>(nullptr));
}

/// At most `max` bytes of `text`, cut at a UTF-8 character boundary.
std::string_view utf8_prefix(std::string_view text, std::size_t max) {
    if (text.size() <= max) {
        return text;
    }
    std::size_t n = max;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) {
        --n;
    }
    return text.substr(0, n);
}

/// Seconds to report for a wait, rounded up: a client that waits that long is let in.
std::uint32_t seconds_up(std::chrono::milliseconds wait) {
    const auto s = (wait.count() + 999) / 1000;
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(s, 1, 0xFFFF'FFFF));
}

}  // namespace

void PacketConfig::validate(core::ConfigErrors& errors) const {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(listen, host, port)) {
        errors.push_back("packet.listen: \"" + listen + "\" is not host:port");
    }
    // As core::check_message_rate, under this section's names.
    if (!(max_packets_per_s >= 0)) {
        errors.push_back("packet.max_packets_per_s: must be at least 0 (0 means unlimited), got " +
                         std::to_string(max_packets_per_s));
    }
    if (!(packet_burst >= 0)) {
        errors.push_back("packet.packet_burst: must be at least 0, got " +
                         std::to_string(packet_burst));
    } else if (max_packets_per_s > 0 && packet_burst < 1) {
        // Not even the first packet would pass.
        errors.push_back(
            "packet.packet_burst: must be at least 1 when max_packets_per_s is set, "
            "got " +
            std::to_string(packet_burst));
    }
}

const auth::AccessPolicy& access_policy() {
    static const auth::AccessPolicy policy = [] {
        auth::AccessPolicy p{.door = "packet", .api_key_scope = "packet"};
        for (const auto role : auth::kRoles) {
            p.session_roles.emplace_back(role);
        }
        return p;
    }();
    return policy;
}

// ---------------------------------------------------------------------------------------------

/// State shared by every connection of the front-end: who holds each account (the takeover
/// rule), every open connection (the shutdown notice), the connections of each io thread (its
/// idle sweep), and the counters. Thread-safe: `mutex` guards `open` and `holders` and is held for
/// a few pointer copies, never across a send; `on_shard[i]` is touched only on io thread i.
struct PacketFrontend::Shared {
    /// A connection as its io thread's sweep sees it.
    class Member {
    public:
        virtual ~Member() = default;
        virtual void sweep(Clock::time_point now) = 0;
    };

    Shared(core::ShardSet s, auth::AccountService& a, core::MetricsRegistry& m,
           const PacketConfig& c)
        : shards(s), accounts(a), metrics(m), config(c), on_shard(s.size()) {
        for (std::size_t i = 0; i < kClassNames.size(); ++i) {
            packets_in[i] =
                &m.counter("hearth_packet_packets_total",
                           "Game packets, by direction and opcode class (session, "
                           "character, world, unknown).",
                           {{"direction", "in"}, {"class", std::string(kClassNames[i])}});
            packets_out[i] =
                &m.counter("hearth_packet_packets_total",
                           "Game packets, by direction and opcode class (session, character, "
                           "world, unknown).",
                           {{"direction", "out"}, {"class", std::string(kClassNames[i])}});
        }
        takeovers = &m.counter("hearth_packet_takeovers_total",
                               "Game connections closed (taken_over) because their account logged "
                               "in on another connection.");
        logged_in = &m.gauge("hearth_packet_logged_in",
                             "Game connections logged in (one per account at most).");
    }

    core::Counter& login_result(std::string_view method, std::string_view result) {
        return metrics.counter("hearth_packet_logins_total",
                               "Game logins, by method (password, token, transfer) and result (ok "
                               "or the error code's name).",
                               {{"method", std::string(method)}, {"result", std::string(result)}});
    }
    core::Counter& error_sent(wire::ErrorCode code) {
        return metrics.counter("hearth_packet_errors_total",
                               "Error packets sent to game clients, by code.",
                               {{"code", std::string(wire::error_name(code))}});
    }

    /// One Error packet, counted.
    SharedPayload error_packet(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail) {
        std::string out;
        const wire::Error e{
            .code = code, .opcode = opcode, .detail = detail, .message = wire::error_text(code)};
        (void)wire::encode(out, e);  // within every bound: the texts are short
        error_sent(code).inc();
        packets_out[static_cast<std::size_t>(OpcodeClass::kSession)]->inc();
        return make_binary(std::move(out));
    }

    void join(std::size_t shard, Member* m, const StreamConnectionPtr& c) {
        on_shard.at(shard).insert(m);
        std::lock_guard lock(mutex);
        open[c->id()] = c;
    }
    void leave(std::size_t shard, Member* m, ConnectionId id) {
        on_shard.at(shard).erase(m);
        std::lock_guard lock(mutex);
        open.erase(id);
    }

    /// Records `c` as the connection of `account`; returns the connection that held it before
    /// (to be taken over), if it is still open.
    StreamConnectionPtr claim(std::uint64_t account, const StreamConnectionPtr& c) {
        std::lock_guard lock(mutex);
        auto& holder = holders[account];
        auto previous = holder.second.lock();
        holder = {c->id(), c};
        logged_in->set(static_cast<std::int64_t>(holders.size()));
        return previous != c ? previous : nullptr;
    }
    void release(std::uint64_t account, ConnectionId id) {
        std::lock_guard lock(mutex);
        auto h = holders.find(account);
        if (h != holders.end() && h->second.first == id) {
            holders.erase(h);
            logged_in->set(static_cast<std::int64_t>(holders.size()));
        }
    }

    std::vector<StreamConnectionPtr> all_open() {
        std::vector<StreamConnectionPtr> out;
        std::lock_guard lock(mutex);
        out.reserve(open.size());
        for (const auto& [id, weak] : open) {
            if (auto c = weak.lock()) {
                out.push_back(std::move(c));
            }
        }
        return out;
    }

    void sweep(std::size_t shard) {
        const auto now = Clock::now();
        // A member may close (and leave) during its sweep: walk a copy.
        sweeping.assign(on_shard.at(shard).begin(), on_shard.at(shard).end());
        for (auto* m : sweeping) {
            if (on_shard[shard].contains(m)) {
                m->sweep(now);
            }
        }
        sweeping.clear();
    }

    core::ShardSet shards;
    auth::AccountService& accounts;
    core::MetricsRegistry& metrics;
    PacketConfig config;
    std::array<core::Counter*, kClassNames.size()> packets_in{};
    std::array<core::Counter*, kClassNames.size()> packets_out{};
    core::Counter* takeovers = nullptr;
    core::Gauge* logged_in = nullptr;

    std::vector<std::unordered_set<Member*>> on_shard;  // [i]: io thread i only
    // The sweep's copy of its shard's members: one per io thread, kept between sweeps.
    thread_local static std::vector<Member*> sweeping;

    std::mutex mutex;
    std::unordered_map<ConnectionId, std::weak_ptr<StreamConnection>> open;
    // account id -> the connection that holds it
    std::unordered_map<std::uint64_t, std::pair<ConnectionId, std::weak_ptr<StreamConnection>>>
        holders;
};

thread_local std::vector<PacketFrontend::Shared::Member*> PacketFrontend::Shared::sweeping;

namespace {

using Shared = PacketFrontend::Shared;

/// One game connection. Runs on: its connection's io thread (every callback, every completion
/// posted back, its sweep). Owned by: the network layer, until `on_close`.
///
/// Packets are handled strictly in order: while a login is being checked the later bytes wait
/// unparsed (reading pauses past kMaxHeldBytes), and the answer resumes the loop.
class PacketConnection final : public StreamHandler, public Shared::Member {
public:
    explicit PacketConnection(std::shared_ptr<Shared> shared)
        : shared_(std::move(shared)),
          decoder_(static_cast<std::size_t>(shared_->config.max_packet_bytes)) {}

    void on_open(StreamConnectionPtr connection) override {
        connection_ = std::move(connection);
        shard_ = core::ShardSet::current().value_or(0);
        opened_ = last_packet_ = Clock::now();
        shared_->join(shard_, this, connection_);
        log()->debug("[conn {}] open from {}", to_string(connection_->id()),
                     connection_->peer_address());
    }

    void on_data(std::string_view bytes) override { process(bytes); }

    // The client sent everything it will send: answer what is still held, then close.
    void on_end_of_input() override {
        end_of_input_ = true;
        close_if_done();
    }

    void on_close() override {
        closed_ = true;
        shared_->leave(shard_, this, connection_->id());
        if (account_id_ != 0) {
            shared_->release(account_id_, connection_->id());
        }
        if (!session_token_.empty()) {
            // The password login's session was this connection's alone: it ends with it.
            shared_->accounts.logout(std::move(session_token_), [](Result<void>) {});
        }
        log()->debug("[conn {}] closed{}", to_string(connection_->id()),
                     account_name_.empty() ? std::string() : " (" + account_name_ + ")");
        connection_.reset();
    }

    void sweep(Clock::time_point now) override {
        if (done_ || closed_) {
            return;
        }
        const auto& c = shared_->config;
        if (now - last_packet_ >= std::chrono::seconds(c.idle_timeout_s) ||
            (account_id_ == 0 && now - opened_ >= std::chrono::seconds(c.login_timeout_s))) {
            fail(wire::ErrorCode::kIdleTimeout, 0, 0);
        }
    }

private:
    template <class M>
    void send(const M& m) {
        std::string out;
        const auto e = wire::encode(out, m, decoder_.max_packet_bytes());
        if (e != wire::WireError::kNone) {
            log()->error("[conn {}] cannot encode {}: {}", to_string(connection_->id()),
                         wire::opcode_name(static_cast<std::uint16_t>(M::kOpcode)),
                         wire::wire_error_text(e));
            send_error(wire::ErrorCode::kInternalError, static_cast<std::uint16_t>(M::kOpcode));
            return;
        }
        shared_
            ->packets_out[static_cast<std::size_t>(
                class_of(static_cast<std::uint16_t>(M::kOpcode)))]
            ->inc();
        (void)connection_->send(make_binary(std::move(out)));
    }

    void send_error(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail = 0) {
        (void)connection_->send(shared_->error_packet(code, opcode, detail));
    }

    /// An error that ends the connection: nothing more is read or handled.
    void fail(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail) {
        done_ = true;
        send_error(code, opcode, detail);
        connection_->close();
    }

    void process(std::string_view input) {
        while (!input.empty() && !done_ && !closed_) {
            if (login_pending_) {
                held_.append(input);
                if (held_.size() > kMaxHeldBytes && !paused_) {
                    paused_ = true;
                    connection_->pause_reading();
                }
                return;
            }
            const auto r = decoder_.next(input);
            input.remove_prefix(r.consumed);
            switch (r.status) {
                case wire::FrameStatus::kNeedMore:
                    break;
                case wire::FrameStatus::kTooLarge:
                    fail(wire::ErrorCode::kPacketTooLarge, 0, r.declared_size);
                    return;
                case wire::FrameStatus::kTooSmall:
                    fail(wire::ErrorCode::kPacketTooSmall, 0, r.declared_size);
                    return;
                case wire::FrameStatus::kPacket:
                    on_packet(r.packet);
                    break;
            }
        }
    }

    void on_packet(const wire::Packet& p) {
        last_packet_ = Clock::now();
        connection_->touch();
        shared_->packets_in[static_cast<std::size_t>(class_of(p.type))]->inc();
        if (!connection_->take_message(p.payload.size())) {
            // Over the listener's packet or byte rate: the transport closes the connection after
            // this last answer.
            done_ = true;
            send_error(wire::ErrorCode::kRateLimited, p.type);
            return;
        }
        const bool session = p.type == static_cast<std::uint16_t>(wire::Opcode::kAlive) ||
                             p.type == static_cast<std::uint16_t>(wire::Opcode::kLogin) ||
                             p.type == static_cast<std::uint16_t>(wire::Opcode::kLogout);
        if (!known_to_server(p.type)) {
            send_error(wire::ErrorCode::kUnknownOpcode, p.type);
            return;
        }
        if (account_id_ == 0 && !session) {
            send_error(wire::ErrorCode::kNotLoggedIn, p.type);
            return;
        }
        const auto e =
            wire::dispatch_to_server(p, [this, &p](const auto& m) { on_message(m, p.type); });
        if (e != wire::WireError::kNone) {
            send_error(wire::ErrorCode::kMalformedPacket, p.type, static_cast<std::uint32_t>(e));
        }
    }

    void on_message(const wire::Alive&, std::uint16_t) {}  // the clock was reset above

    void on_message(const wire::LogoutRequest&, std::uint16_t) {
        send(wire::LogoutReply{});
        done_ = true;
        connection_->close();
    }

    void on_message(const wire::LoginRequest& m, std::uint16_t type) {
        if (account_id_ != 0) {
            send_error(wire::ErrorCode::kAlreadyLoggedIn, type);
            return;
        }
        switch (m.method) {
            case wire::LoginMethod::kPassword:
                password_login(std::string(m.username), std::string(m.secret));
                return;
            case wire::LoginMethod::kToken:
                token_login(std::string(m.secret));
                return;
            case wire::LoginMethod::kTransfer:
                // Reserved for the cluster: no node issues transfer tokens yet, so none is valid.
                refuse("transfer", wire::ErrorCode::kBadCredentials);
                return;
        }
    }

    // The character opcodes (0x0712-0x0715) and the world's: served once the characters service
    // and the world are wired (issues 19 and 20); until then a logged-in client hears that they
    // cannot be served now.
    template <class M>
    void on_message(const M&, std::uint16_t type) {
        send_error(wire::ErrorCode::kUnavailable, type);
    }

    /// Wraps a completion so that it runs here, on this connection's thread, and only while the
    /// connection is open; then the held bytes are processed.
    template <class T, class F>
    std::function<void(T)> back_here(F f) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<T>(shared_->shards,
                                               [this, alive, f = std::move(f)](T r) mutable {
                                                   if (alive.expired() || closed_) {
                                                       return;
                                                   }
                                                   f(std::move(r));
                                                   end_login();
                                               });
    }

    void password_login(std::string username, std::string password) {
        login_pending_ = true;
        auto ip = util::ip_of_peer(connection_->peer_address());
        shared_->accounts.login(
            username, std::move(password), ip, "packet",
            back_here<Result<auth::SessionToken>>(
                [this, username, ip](Result<auth::SessionToken> r) {
                    if (r) {
                        session_token_ = std::move(r->token);
                        logged_in(r->principal, "password");
                    } else if (is(r.error(), Errc::kUnauthenticated) ||
                               is(r.error(), Errc::kInvalidArgument)) {
                        refuse("password", wire::ErrorCode::kBadCredentials);
                    } else if (is(r.error(), Errc::kLimitReached)) {
                        refuse("password", wire::ErrorCode::kThrottled,
                               seconds_up(shared_->accounts.retry_after(username, ip)));
                    } else if (is(r.error(), Errc::kNotAllowed)) {
                        refuse("password", wire::ErrorCode::kAccountDisabled);
                    } else if (is(r.error(), Errc::kUnavailable) ||
                               is(r.error(), Errc::kStorageFailure)) {
                        log()->warn("[conn {}] login failed: {}", to_string(connection_->id()),
                                    r.error().message());
                        refuse("password", wire::ErrorCode::kUnavailable);
                    } else {
                        log()->warn("[conn {}] login failed: {}", to_string(connection_->id()),
                                    r.error().message());
                        refuse("password", wire::ErrorCode::kInternalError);
                    }
                }));
    }

    void token_login(std::string token) {
        login_pending_ = true;
        shared_->accounts.authorize_login(
            std::move(token), access_policy(), connection_->peer_address(),
            back_here<auth::AccessDecision>([this](auth::AccessDecision d) {
                using auth::Refusal;
                switch (d.refusal) {
                    case Refusal::kNone:
                        logged_in(d.principal, "token");
                        return;
                    case Refusal::kInvalidToken:
                        // `why` comes from the token's record: the client may learn that its
                        // own token expired, or that its account is disabled (it holds the token).
                        refuse("token", d.why == "expired" ? wire::ErrorCode::kExpiredToken
                                        : d.why == "account disabled"
                                            ? wire::ErrorCode::kAccountDisabled
                                            : wire::ErrorCode::kBadCredentials);
                        return;
                    case Refusal::kMissingToken:
                        refuse("token", wire::ErrorCode::kBadCredentials);
                        return;
                    case Refusal::kKindNotAccepted:
                    case Refusal::kMissingScope:
                    case Refusal::kMissingRole:
                    case Refusal::kForeignRealm:
                        refuse("token", wire::ErrorCode::kRefusedTokenKind);
                        return;
                    case Refusal::kUnavailable:
                        refuse("token", wire::ErrorCode::kUnavailable);
                        return;
                }
                refuse("token", wire::ErrorCode::kBadCredentials);
            }));
    }

    void refuse(std::string_view method, wire::ErrorCode code, std::uint32_t detail = 0) {
        shared_->login_result(method, wire::error_name(code)).inc();
        send_error(code, static_cast<std::uint16_t>(wire::Opcode::kLogin), detail);
    }

    void logged_in(const auth::Principal& p, std::string_view method) {
        account_id_ = p.account_id;
        account_name_ = p.username;
        connection_->set_principal(account_name_);
        if (auto previous = shared_->claim(account_id_, connection_)) {
            // One live game connection per account: the earlier one is told why, then closed
            // (its own thread sees the close; it sends nothing more).
            shared_->takeovers->inc();
            (void)previous->send(shared_->error_packet(wire::ErrorCode::kTakenOver, 0, 0));
            previous->close();
            // Debug: a client can log in again in a loop; the counter above counts every one.
            log()->debug("[conn {}] {} logged in again: connection {} taken over",
                         to_string(connection_->id()), account_name_, to_string(previous->id()));
        }
        shared_->login_result(method, "ok").inc();
        log()->debug("[conn {}] logged in as {}", to_string(connection_->id()), account_name_);
        send(wire::LoginReply{
            .account_id = account_id_,
            .account_name = utf8_prefix(account_name_, wire::kMaxAccountNameBytes),
            .max_packet_bytes = static_cast<std::uint16_t>(decoder_.max_packet_bytes()),
            .idle_timeout_s = static_cast<std::uint16_t>(shared_->config.idle_timeout_s)});
    }

    void end_login() {
        login_pending_ = false;
        if (paused_) {
            paused_ = false;
            connection_->resume_reading();
        }
        std::string work;
        work.swap(held_);
        process(work);
        close_if_done();
    }

    void close_if_done() {
        if (end_of_input_ && !login_pending_ && !closed_) {
            connection_->close();
        }
    }

    std::shared_ptr<Shared> shared_;
    wire::FrameDecoder decoder_;
    StreamConnectionPtr connection_;
    std::size_t shard_ = 0;
    Clock::time_point opened_{};
    Clock::time_point last_packet_{};
    std::uint64_t account_id_ = 0;  // set once logged in (account ids start at 1)
    std::string account_name_;
    std::string session_token_;  // a password login's session, revoked at close
    std::string held_;           // bytes received while a login is checked
    bool login_pending_ = false;
    bool paused_ = false;
    bool done_ = false;          // a closing error was sent: nothing more is handled
    bool end_of_input_ = false;  // the client shut down its sending side
    bool closed_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
};

}  // namespace

PacketFrontend::PacketFrontend(core::ShardSet shards, auth::AccountService& accounts,
                               core::MetricsRegistry& metrics, const PacketConfig& config)
    : shared_(std::make_shared<Shared>(shards, accounts, metrics, config)), config_(config) {
    for (std::size_t i = 0; i < shards.size(); ++i) {
        sweeps_.push_back(shards.every(i, kSweepInterval, [s = shared_.get(), i] { s->sweep(i); }));
    }
}

PacketFrontend::~PacketFrontend() {
    sweeps_.clear();  // before shared_: a sweep in progress ends first
}

void PacketFrontend::add_routes(Router& router) {
    StreamRoute route;
    route.frontend = "packet";
    route.settings.idle_timeout =
        std::chrono::seconds(std::max(config_.idle_timeout_s, config_.login_timeout_s)) +
        kTransportIdleSlack;
    route.settings.idle_reset = IdleReset::kOnTouch;  // per complete packet
    route.settings.max_connections_per_ip =
        static_cast<std::size_t>(config_.max_connections_per_ip);
    route.settings.max_messages_per_s = config_.max_packets_per_s;
    route.settings.message_burst = config_.packet_burst;
    route.settings.max_bytes_per_s = static_cast<std::uint64_t>(config_.max_bytes_per_s);
    // One packet of the largest size always passes a full bucket.
    route.settings.bytes_burst =
        std::max<std::uint64_t>(static_cast<std::uint64_t>(config_.bytes_burst),
                                static_cast<std::uint64_t>(config_.max_packet_bytes));
    route.make_handler = [shared = shared_]() -> std::unique_ptr<StreamHandler> {
        return std::make_unique<PacketConnection>(shared);
    };
    listener_ = router.add_stream_listener({"packet", config_.listen, "", ""}, std::move(route));
    log()->info("Game packet protocol on {}", config_.listen);
}

void PacketFrontend::say_shutting_down() {
    for (const auto& c : shared_->all_open()) {
        (void)c->send(shared_->error_packet(wire::ErrorCode::kShuttingDown, 0, 0));
    }
}

}  // namespace hearth::frontends::packet
