#include "frontends/homestead/homestead.hpp"
#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <hearth/store.hpp>

#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "core/shard_set.hpp"
#include "core/ws_settings.hpp"
#include "frontends/homestead/codec.hpp"
#include "util/log.hpp"

namespace hearth::frontends::homestead {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("homestead");
    return l;
}

// Mailbox keys: one queue per channel and direction. The bot's flush reads every channel's
// to-bot queue with one prefix read, in insertion (receive) order.
constexpr std::string_view kToBotPrefix = "homestead:to-bot:";
constexpr std::string_view kToModPrefix = "homestead:to-mod:";

// Entries read per flush page; the next page is read once this one is written and removed.
constexpr std::size_t kFlushPage = 256;
// The flush's window: what it has handed to the connection and not yet seen written (queued
// entries, then the live messages held meanwhile). At most this many messages, and this many bytes
// or half the connection's outbox bound when that is less; one message is always let through,
// whatever its size. The next goes when a write completes (`on_flushed`), so a flush never fills
// its recipient's outbox past the bound (which would close it as a slow consumer, every time it
// reconnects, with the queue never draining), and a recipient that stops reading is left to the
// write timeout with the rest of its queue still stored.
constexpr std::size_t kFlushWindowMessages = 64;
constexpr std::size_t kFlushWindowBytes = 1024 * 1024;
// Live messages held for a recipient while its queue is being flushed (they must not overtake
// the older queued ones). Past it a message is not held: it goes to the store, like a message for
// an offline recipient, and is flushed with the queue.
constexpr std::size_t kMaxHeld = 4096;
// ... and in bytes: a flush lasts as long as the recipient takes to read, so a slow reader must
// not let senders pile up 4096 messages of body_size_mb each in memory.
constexpr std::size_t kMaxHeldBytes = 16 * 1024 * 1024;
// Messages of one sender whose ack is not yet sent (waiting for a commit or a write, or for an
// earlier one). Past it a message is answered `failed` at once, in order: the bound keeps a sender
// that floods a stalled store or recipient from holding unbounded memory.
constexpr std::size_t kMaxUnacked = 8192;
// The sweep of expired queued messages: at most this often (more often when the lifetime is
// shorter), deleting at most kSweepBudget per store operation (a long delete would hold the
// store's writer); a sweep that fills its budget goes on at once.
constexpr std::chrono::seconds kSweepInterval{60};
constexpr std::uint64_t kSweepBudget = 1000;
// A quota refusal is logged at most this often (each one is counted): under abuse every message
// is refused, and a line each would flood the log.
constexpr std::chrono::seconds kQuotaLogInterval{60};

enum class Quota : std::uint8_t { kQueues, kBytes };
constexpr std::array<std::string_view, 2> kQuotaLabels = {"queues", "bytes"};

using Digest = std::array<unsigned char, 32>;

/// SHA-256 of an API key: keys are compared as digests so that the comparison takes the same time
/// whatever the length or content of the key presented.
Digest digest(std::string_view key) {
    Digest d{};
    unsigned int size = 0;
    if (EVP_Digest(key.data(), key.size(), d.data(), &size, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 is not available");
    }
    return d;
}

enum class Ack : std::uint8_t { kPending, kCompleted, kQueued, kFailed, kMalformed };
constexpr std::size_t kAckKinds = 3;  // completed, queued, failed: the ones counted

std::string_view ack_name(Ack a) {
    switch (a) {
        case Ack::kCompleted:
            return "completed";
        case Ack::kQueued:
            return "queued";
        default:
            return "failed";
    }
}

std::string_view direction_name(Kind sender) {
    return sender == Kind::kMod ? "mod_to_bot" : "bot_to_mod";
}

/// A message on its way to one recipient. `done` may be called from any thread (it posts to the
/// sender's thread) and must be called exactly once: true once written to the recipient's socket.
struct Delivery {
    std::shared_ptr<const std::string> prefix;  // encode_forward_prefix
    std::function<void(bool written)> done;
};

/// A connected, handshaken mod or bot as other connections see it. Immutable; its functions are
/// thread-safe (they post to the recipient's io thread).
struct Route {
    ConnectionId id{};
    ConnectionHandle connection;
    std::function<void(Delivery)> deliver;
    std::function<void()> flush_hint;  // "your queue has new entries": re-read it
};
using RoutePtr = std::shared_ptr<const Route>;

/// Who is connected: the bot (at most one) and the mods by channel. Thread-safe: a mutex held for
/// a few pointer copies, never across a send or a close.
class Registry {
public:
    /// False when a bot is already registered.
    bool add_bot(RoutePtr route) {
        std::lock_guard lock(mutex_);
        if (bot_) {
            return false;
        }
        bot_ = std::move(route);
        return true;
    }
    /// Registers a mod; returns the mods it replaces (none with `multi`), for the caller to close.
    std::vector<RoutePtr> add_mod(const std::string& channel, RoutePtr route, bool multi) {
        std::vector<RoutePtr> replaced;
        std::lock_guard lock(mutex_);
        auto& list = mods_[channel];
        if (!multi) {
            replaced.swap(list);
        }
        list.push_back(std::move(route));
        return replaced;
    }
    void remove_bot(ConnectionId id) {
        std::lock_guard lock(mutex_);
        if (bot_ && bot_->id == id) {
            bot_.reset();
        }
    }
    void remove_mod(const std::string& channel, ConnectionId id) {
        std::lock_guard lock(mutex_);
        auto it = mods_.find(channel);
        if (it == mods_.end()) {
            return;
        }
        std::erase_if(it->second, [id](const RoutePtr& r) { return r->id == id; });
        if (it->second.empty()) {
            mods_.erase(it);
        }
    }
    RoutePtr bot() const {
        std::lock_guard lock(mutex_);
        return bot_;
    }
    std::vector<RoutePtr> mods(const std::string& channel) const {
        std::lock_guard lock(mutex_);
        auto it = mods_.find(channel);
        return it == mods_.end() ? std::vector<RoutePtr>{} : it->second;
    }

private:
    mutable std::mutex mutex_;
    RoutePtr bot_;
    std::unordered_map<std::string, std::vector<RoutePtr>> mods_;
};

}  // namespace

void HomesteadConfig::validate(core::ConfigErrors& errors) const {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(listen, host, port)) {
        errors.push_back("homestead.listen: \"" + listen + "\" is not host:port");
    }
    if (tls_cert_file.empty() != tls_key_file.empty()) {
        errors.emplace_back("homestead.tls_cert_file, homestead.tls_key_file: set both or neither");
    }
    if (api_key.empty()) {
        // An empty key would let any client in that sends none.
        errors.emplace_back("homestead.api_key: must not be empty");
    }
    if (ping_interval_s > 0 && read_timeout_s <= ping_interval_s) {
        errors.emplace_back(
            "homestead.read_timeout_s: must be greater than ping_interval_s, or a client that "
            "only answers pings is closed before it is pinged");
    }
}

WsRouteSettings route_settings(const HomesteadConfig& c, const core::WebSocketConfig& ws) {
    WsRouteSettings s = core::ws_route_settings(ws);
    s.max_message_bytes = static_cast<std::size_t>(c.body_size_mb) * 1024 * 1024;
    s.ping_interval = std::chrono::seconds(c.ping_interval_s);
    // The original's read deadline: 60 s after the last message or pong, whatever the pings.
    s.idle_timeout = std::chrono::seconds(c.read_timeout_s);
    s.pong_timeout = std::chrono::seconds(c.read_timeout_s);
    s.write_timeout = std::chrono::seconds(c.write_timeout_s);
    s.first_message_timeout = std::chrono::seconds(c.handshake_timeout_s);
    s.compression = false;
    return s;
}

// ---------------------------------------------------------------------------------------------

/// State shared by every connection of the front-end. Thread-safe.
struct HomesteadFrontend::Shared {
    Shared(const core::ShardSet& s, store::Mailboxes& m, core::MetricsRegistry& metrics,
           const HomesteadConfig& c)
        : shards(s), mailboxes(m) {
        set(c);
        for (Kind k : {Kind::kMod, Kind::kBot}) {
            const auto i = static_cast<std::size_t>(k);
            const std::string kind(kind_name(k));
            const std::string direction(direction_name(k));
            connections[i] = &metrics.gauge(
                "hearth_homestead_connections",
                "Homestead connections that completed their handshake, by kind.", {{"kind", kind}});
            for (std::size_t a = 0; a < kAckKinds; ++a) {
                messages[i][a] = &metrics.counter(
                    "hearth_homestead_messages_total",
                    "Homestead messages received, by direction and acknowledgement.",
                    {{"direction", direction},
                     {"ack", std::string(ack_name(static_cast<Ack>(a + 1)))}});
            }
            // Indexed by the sender's kind: the direction of the queue.
            dropped[i] = &metrics.counter(
                "hearth_homestead_queue_dropped_total",
                "Queued Homestead messages dropped because their queue was full (queue_max).",
                {{"direction", direction}});
            depth[i] = &metrics.gauge("hearth_homestead_queue_depth",
                                      "Homestead messages stored for offline recipients.",
                                      {{"direction", direction}});
            flushed[i] = &metrics.counter(
                "hearth_homestead_queue_delivered_total",
                "Queued Homestead messages written to their recipient after it connected.",
                {{"direction", direction}});
            expired[i] = &metrics.counter(
                "hearth_homestead_queue_expired_total",
                "Queued Homestead messages dropped undelivered at queue_lifetime_s.",
                {{"direction", direction}});
            for (std::size_t q = 0; q < kQuotaLabels.size(); ++q) {
                refused[i][q] = &metrics.counter(
                    "hearth_homestead_queue_refused_total",
                    "Homestead messages answered failed because the queues were at "
                    "queues_total_max (queues) or queues_total_mb (bytes).",
                    {{"direction", direction}, {"quota", std::string(kQuotaLabels[q])}});
            }
            for (std::size_t a = 0; a < kAckKinds; ++a) {
                acks[i][a] = make_text(encode_status(ack_name(static_cast<Ack>(a + 1)), k));
            }
        }
        rejected_metrics = &metrics;
    }

    void set(const HomesteadConfig& c) {
        auto d = digest(c.api_key);
        {
            std::lock_guard lock(mutex);
            key_digest = d;
        }
        queue_max.store(static_cast<std::size_t>(c.queue_max), std::memory_order_relaxed);
        queues_total_max.store(static_cast<std::uint64_t>(c.queues_total_max),
                               std::memory_order_relaxed);
        queues_total_bytes.store(static_cast<std::uint64_t>(c.queues_total_mb) * 1024 * 1024,
                                 std::memory_order_relaxed);
        queue_lifetime_s.store(c.queue_lifetime_s, std::memory_order_relaxed);
        multi_mod.store(c.multi_mod, std::memory_order_relaxed);
    }

    /// What an append of a queued message may take, from the config applied last.
    store::MailboxLimits limits() const {
        return store::MailboxLimits{
            .max_depth = queue_max.load(std::memory_order_relaxed),
            .max_mailboxes = queues_total_max.load(std::memory_order_relaxed),
            .max_bytes = queues_total_bytes.load(std::memory_order_relaxed),
            .lifetime = std::chrono::seconds(queue_lifetime_s.load(std::memory_order_relaxed))};
    }

    /// Counts a message refused by a quota, and logs it at most once per kQuotaLogInterval.
    void quota_refused(Kind sender, Quota quota) {
        refused[static_cast<std::size_t>(sender)][static_cast<std::size_t>(quota)]->inc();
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        auto last = last_quota_log.load(std::memory_order_relaxed);
        const auto interval =
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(kQuotaLogInterval)
                .count();
        if ((last != 0 && now - last < interval) ||
            !last_quota_log.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
            return;
        }
        log()->warn(
            "the queues for offline recipients are at homestead.{}: messages that would be "
            "queued are answered failed until recipients collect theirs or they expire; further "
            "refusals are counted in hearth_homestead_queue_refused_total",
            quota == Quota::kQueues ? "queues_total_max" : "queues_total_mb");
    }

    /// Deletes the expired queued messages of one direction (queues of messages from `sender`),
    /// kSweepBudget at a time, on the store's writer; runs again at once while it fills the
    /// budget. The completions hold the front-end weakly: a sweep ends with it.
    static void sweep(const std::shared_ptr<Shared>& self, Kind sender) {
        self->mailboxes.expire(
            std::string(sender == Kind::kMod ? kToBotPrefix : kToModPrefix), kSweepBudget,
            [weak = std::weak_ptr<Shared>(self), sender](Result<std::uint64_t> r) {
                auto shared = weak.lock();
                if (!shared || !r) {
                    return;  // gone, or the store logged why; the next sweep tries again
                }
                const auto k = static_cast<std::size_t>(sender);
                shared->depth[k]->sub(static_cast<std::int64_t>(*r));
                shared->expired[k]->inc(*r);
                if (*r >= kSweepBudget) {
                    sweep(shared, sender);
                }
            });
    }

    bool key_matches(std::string_view presented) const {
        const Digest d = digest(presented);
        Digest expected;
        {
            std::lock_guard lock(mutex);
            expected = key_digest;
        }
        return CRYPTO_memcmp(d.data(), expected.data(), d.size()) == 0;
    }

    void count_rejected(std::string_view reason) {
        rejected_metrics
            ->counter("hearth_homestead_rejected_total",
                      "Homestead requests and messages refused, by reason.",
                      {{"reason", std::string(reason)}})
            .inc();
    }

    /// Counts a message of `sender` by its acknowledgement (completed, queued or failed).
    void count(Kind sender, Ack ack) {
        messages[static_cast<std::size_t>(sender)][static_cast<std::size_t>(ack) - 1]->inc();
    }

    static std::string mailbox_key(Kind sender, std::string_view channel) {
        std::string key(sender == Kind::kMod ? kToBotPrefix : kToModPrefix);
        key += channel;
        return key;
    }

    /// The registered recipients of a message from `sender` to `channel`.
    std::vector<RoutePtr> recipients(Kind sender, const std::string& channel) const {
        if (sender == Kind::kMod) {
            auto bot = registry.bot();
            return bot ? std::vector<RoutePtr>{std::move(bot)} : std::vector<RoutePtr>{};
        }
        return registry.mods(channel);
    }

    core::ShardSet shards;  // store completions go back to the connection's shard
    store::Mailboxes& mailboxes;
    Registry registry;
    mutable std::mutex mutex;
    Digest key_digest{};
    auth::AccountService* accounts = nullptr;  // guarded by mutex

    auth::AccountService* account_service() const {
        std::lock_guard lock(mutex);
        return accounts;
    }
    std::atomic<std::size_t> queue_max{8};
    std::atomic<std::uint64_t> queues_total_max{0};
    std::atomic<std::uint64_t> queues_total_bytes{0};
    std::atomic<std::int64_t> queue_lifetime_s{0};
    std::atomic<bool> multi_mod{false};
    std::atomic<std::chrono::steady_clock::rep> last_quota_log{0};

    // Indexed by Kind (the sender's, for per-direction figures), then by Ack - 1.
    std::array<core::Gauge*, 2> connections{};
    std::array<std::array<core::Counter*, kAckKinds>, 2> messages{};
    std::array<core::Counter*, 2> dropped{};
    std::array<core::Gauge*, 2> depth{};
    std::array<core::Counter*, 2> flushed{};
    std::array<core::Counter*, 2> expired{};
    std::array<std::array<core::Counter*, kQuotaLabels.size()>, 2> refused{};
    std::array<std::array<SharedPayload, kAckKinds>, 2> acks{};
    core::MetricsRegistry* rejected_metrics = nullptr;
    SharedPayload malformed_message = make_text(std::string(kMalformedMessage));
};

namespace {

using Shared = HomesteadFrontend::Shared;

/// One /sync connection: its handshake, its messages as a sender (forwarding, storing, ordered
/// acks) and as a recipient (live messages and the flush of its queue). Runs on: its connection's
/// io thread; everything else reaches it by posting there. Owned by: its WsHandler, and by the
/// completions of its own messages (so that a message whose delivery fails after its sender left
/// is still stored). The registry holds only weak references to it.
class Peer final : public std::enable_shared_from_this<Peer> {
public:
    explicit Peer(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    void open(const ConnectionPtr& connection) {
        connection_ = ConnectionHandle(connection);
        open_ = true;
        id_ = connection->id();
        peer_address_ = connection->peer_address();
    }

    void message(std::string_view data) {
        // Binary frames are read like text ones: the original's reader takes either.
        switch (phase_) {
            case Phase::kHandshake:
                on_handshake(data);
                break;
            case Phase::kMod:
            case Phase::kBot:
                on_chat(data);
                break;
            case Phase::kRefused:
            case Phase::kClosed:
                break;
        }
    }

    void closed(const CloseInfo& info) {
        if (phase_ == Phase::kMod || phase_ == Phase::kBot) {
            if (phase_ == Phase::kMod) {
                shared_->registry.remove_mod(handshake_.channel_id, id_);
            } else {
                shared_->registry.remove_bot(id_);
            }
            shared_->connections[static_cast<std::size_t>(handshake_.kind)]->sub(1);
            log()->info("[conn {}] {} disconnected: {} {}", to_string(id_),
                        kind_name(handshake_.kind), info.code, info.reason);
        }
        phase_ = Phase::kClosed;
        open_ = false;
        // Held live messages go back to their senders, which store them.
        auto held = std::move(held_);
        held_.clear();
        held_bytes_ = 0;
        for (auto& d : held) {
            d.done(false);
        }
        pump_flush();  // drops the unsent rest of the page: it stays stored
    }

private:
    enum class Phase : std::uint8_t { kHandshake, kMod, kBot, kRefused, kClosed };

    /// The connection while it is open; null after on_close.
    ConnectionPtr connection() const { return open_ ? connection_.lock() : nullptr; }

    // ---- handshake ---------------------------------------------------------------------------

    void on_handshake(std::string_view data) {
        auto parsed = parse_handshake(data);
        if (auto* error = std::get_if<HandshakeError>(&parsed)) {
            static constexpr std::string_view kReasons[] = {
                "malformed_handshake", "malformed_mod_handshake", "malformed_bot_handshake",
                "unknown_handshake"};
            refuse(handshake_error_frame(*error), kReasons[static_cast<std::size_t>(*error)]);
            return;
        }
        handshake_ = std::get<Handshake>(std::move(parsed));
        auto route = make_route();
        if (handshake_.kind == Kind::kBot) {
            if (!shared_->registry.add_bot(route)) {
                refuse(kBotAlreadyConnected, "bot_already_connected");
                return;
            }
            phase_ = Phase::kBot;
            log()->info("[conn {}] bot connected: bot_id={} from {}", to_string(id_),
                        handshake_.bot_id, peer_address_);
        } else {
            auto replaced = shared_->registry.add_mod(
                handshake_.channel_id, route, shared_->multi_mod.load(std::memory_order_relaxed));
            phase_ = Phase::kMod;
            log()->info("[conn {}] mod connected: server_id={} channel_id={} from {}",
                        to_string(id_), handshake_.server_id, handshake_.channel_id, peer_address_);
            for (const auto& old : replaced) {
                if (auto c = old->connection.lock()) {
                    log()->info("[conn {}] mod replaced by [conn {}] on channel {}",
                                to_string(old->id), to_string(id_), handshake_.channel_id);
                    c->close(kCloseCode, kCloseReason);
                }
            }
        }
        shared_->connections[static_cast<std::size_t>(handshake_.kind)]->add(1);
        if (auto c = connection()) {
            c->set_principal(handshake_.kind == Kind::kBot ? "bot:" + handshake_.bot_id
                                                           : "mod:" + handshake_.channel_id);
            (void)c->send(make_text(encode_status("connected", handshake_.kind)));
        }
        start_flush();
    }

    void refuse(std::string_view frame, std::string_view reason) {
        shared_->count_rejected(reason);
        log()->debug("[conn {}] handshake refused: {}", to_string(id_), reason);
        phase_ = Phase::kRefused;
        if (auto c = connection()) {
            (void)c->send(make_text(std::string(frame)));
            c->close(kCloseCode, kCloseReason);
        }
    }

    RoutePtr make_route() {
        std::weak_ptr<Peer> weak = weak_from_this();
        auto route = std::make_shared<Route>();
        route->id = id_;
        route->connection = connection_;
        route->deliver =
            core::post_to_current_thread<Delivery>(shared_->shards, [weak](Delivery d) {
                if (auto self = weak.lock()) {
                    self->deliver(std::move(d));
                } else {
                    d.done(false);
                }
            });
        route->flush_hint = core::post_to_current_thread(shared_->shards, [weak] {
            if (auto self = weak.lock()) {
                self->on_flush_hint();
            }
        });
        return route;
    }

    // ---- as a sender -------------------------------------------------------------------------

    /// One received message, from its arrival until its ack (or error frame) is sent. Acks leave
    /// in message order, whatever order their outcomes arrive in.
    struct Slot {
        Ack ack = Ack::kPending;
        bool live = false;         // deliveries in flight: outcome unknown
        bool needs_store = false;  // no recipient took it: append once every earlier one has
        bool any_written = false;
        int awaiting = 0;  // deliveries in flight
        std::shared_ptr<const std::string> prefix;
        std::string key;
    };

    void on_chat(std::string_view data) {
        const auto received_at = std::chrono::system_clock::now();
        const Kind kind = handshake_.kind;
        const auto index = next_slot_index();
        slots_.emplace_back();
        Slot& slot = slots_.back();
        if (slots_.size() > kMaxUnacked) {
            slot.ack = Ack::kFailed;
            shared_->count(kind, Ack::kFailed);
            drain_acks();
            return;
        }
        auto message = parse_message(handshake_, data);
        if (!message) {
            shared_->count_rejected("malformed_message");
            slot.ack = Ack::kMalformed;
            drain_acks();
            return;
        }
        slot.prefix =
            std::make_shared<const std::string>(encode_forward_prefix(kind, *message, received_at));
        slot.key = Shared::mailbox_key(kind, message->channel_id);
        auto targets = shared_->recipients(kind, message->channel_id);
        if (targets.empty()) {
            slot.needs_store = true;
            pump_store();
            return;
        }
        slot.live = true;
        slot.awaiting = static_cast<int>(targets.size());
        auto done = core::post_to_current_thread<bool>(
            shared_->shards, [self = shared_from_this(), index](bool written) {
                self->on_delivered(index, written);
            });
        const auto prefix = slot.prefix;
        for (const auto& t : targets) {
            t->deliver(Delivery{prefix, done});
        }
    }

    std::uint64_t next_slot_index() const { return first_slot_ + slots_.size(); }

    Slot* slot_at(std::uint64_t index) {
        if (index < first_slot_ || index >= next_slot_index()) {
            return nullptr;
        }
        return &slots_[static_cast<std::size_t>(index - first_slot_)];
    }

    void on_delivered(std::uint64_t index, bool written) {
        Slot* s = slot_at(index);
        if (s == nullptr) {
            return;
        }
        s->any_written = s->any_written || written;
        if (--s->awaiting > 0) {
            return;
        }
        s->live = false;
        if (s->any_written) {
            resolve(*s, Ack::kCompleted);
        } else {
            // The recipient left, or could not take it in time: store it like a message for an
            // offline recipient.
            s->needs_store = true;
        }
        pump_store();
        drain_acks();
    }

    /// Submits the appends that may go now. Appends leave in message order (the store commits one
    /// thread's operations in submission order), so a message whose delivery is still in flight
    /// holds back the appends of later ones: if it fails, it must be queued before them.
    void pump_store() {
        store_cursor_ = std::max(store_cursor_, first_slot_);
        while (store_cursor_ < next_slot_index()) {
            Slot& s = *slot_at(store_cursor_);
            if (s.live) {
                break;
            }
            if (s.needs_store) {
                s.needs_store = false;
                append(store_cursor_, s);
            }
            ++store_cursor_;
        }
    }

    void append(std::uint64_t index, Slot& s) {
        const Kind kind = handshake_.kind;
        const std::string key = s.key;
        shared_->mailboxes.append(s.key, *s.prefix, shared_->limits(),
                                  core::post_to_current_thread<Result<store::AppendResult>>(
                                      shared_->shards, [self = shared_from_this(), index, kind,
                                                        key](Result<store::AppendResult> r) {
                                          self->on_appended(index, kind, key, r);
                                      }));
    }

    void on_appended(std::uint64_t index, Kind kind, const std::string& key,
                     const Result<store::AppendResult>& r) {
        const auto k = static_cast<std::size_t>(kind);
        Ack ack = Ack::kQueued;
        if (r) {
            shared_->dropped[k]->inc(r->dropped);
            shared_->depth[k]->add(1 - static_cast<std::int64_t>(r->dropped));
            // A recipient that connected after this message found it offline may have read its
            // queue before this commit: tell it to read again.
            const auto channel =
                key.substr(kind == Kind::kMod ? kToBotPrefix.size() : kToModPrefix.size());
            for (const auto& t : shared_->recipients(kind, channel)) {
                t->flush_hint();
            }
        } else if (r.error() == make_error_code(Errc::kLimitReached)) {
            ack = Ack::kFailed;  // the documented answer: "neither delivered nor queued"
            shared_->quota_refused(kind, Quota::kQueues);
        } else if (r.error() == make_error_code(Errc::kTooLarge)) {
            ack = Ack::kFailed;
            shared_->quota_refused(kind, Quota::kBytes);
        } else {
            ack = Ack::kFailed;
            log()->warn("[conn {}] could not queue a message for {}: {}", to_string(id_), key,
                        r.error().message());
        }
        if (Slot* s = slot_at(index)) {
            resolve(*s, ack);
            drain_acks();
        }
    }

    void resolve(Slot& s, Ack ack) {
        s.ack = ack;
        s.prefix.reset();
        shared_->count(handshake_.kind, ack);
    }

    void drain_acks() {
        const auto c = connection();  // null once the sender left: its messages still go on
        while (!slots_.empty() && slots_.front().ack != Ack::kPending) {
            const Ack ack = slots_.front().ack;
            slots_.pop_front();
            ++first_slot_;
            if (c) {
                (void)c->send(ack == Ack::kMalformed
                                  ? shared_->malformed_message
                                  : shared_->acks[static_cast<std::size_t>(handshake_.kind)]
                                                 [static_cast<std::size_t>(ack) - 1]);
            }
        }
    }

    // ---- as a recipient ----------------------------------------------------------------------

    void deliver(Delivery d) {
        if (!open_ || (phase_ != Phase::kMod && phase_ != Phase::kBot)) {
            d.done(false);
            return;
        }
        if (flushing_) {
            const std::size_t bytes = d.prefix->size();
            if (held_.size() >= kMaxHeld || held_bytes_ + bytes > kMaxHeldBytes) {
                d.done(false);
                return;
            }
            held_bytes_ += bytes;
            held_.push_back(std::move(d));
            return;
        }
        send_live(std::move(d));
    }

    void send_live(Delivery d) {
        const auto c = connection();
        if (!c) {
            d.done(false);
            return;
        }
        auto payload = make_text(finish_forward(*d.prefix, std::chrono::system_clock::now()));
        if (c->send(std::move(payload), [done = d.done](bool written) { done(written); }) !=
            SendResult::kQueued) {
            d.done(false);  // not queued: the callback was dropped unrun
        }
    }

    void on_flush_hint() {
        if (!open_ || (phase_ != Phase::kMod && phase_ != Phase::kBot)) {
            return;
        }
        if (flushing_) {
            flush_again_ = true;
        } else {
            start_flush();
        }
    }

    // The flush: the queue is read a page at a time; each page's entries are sent through the
    // window (kFlushWindowMessages) and each is removed from the store once written; the next
    // page is read once every entry of this one is written and removed. Then the live messages
    // held meanwhile go out, through the same window, and live delivery resumes.

    void start_flush() {
        flushing_ = true;
        flush_again_ = false;
        stage_ = FlushStage::kReading;
        read_page();
    }

    void read_page() {
        auto done = core::post_to_current_thread<Result<std::vector<store::MailboxEntry>>>(
            shared_->shards,
            [self = shared_from_this()](Result<std::vector<store::MailboxEntry>> r) {
                self->on_page(std::move(r));
            });
        if (handshake_.kind == Kind::kBot) {
            shared_->mailboxes.read_prefix(std::string(kToBotPrefix), kFlushPage, std::move(done));
        } else {
            shared_->mailboxes.read(Shared::mailbox_key(Kind::kBot, handshake_.channel_id),
                                    kFlushPage, std::move(done));
        }
    }

    void on_page(Result<std::vector<store::MailboxEntry>> r) {
        if (!connection()) {
            stage_ = FlushStage::kHeld;  // closed meanwhile: the queue stays as it is
            pump_flush();
            return;
        }
        page_failed_ = !r;
        if (r) {
            page_full_ = r->size() >= kFlushPage;
            page_outstanding_ = r->size();
            page_.assign(std::make_move_iterator(r->begin()), std::make_move_iterator(r->end()));
        } else {
            log()->warn("[conn {}] could not read the queue: {}; it stays for the next connection",
                        to_string(id_), r.error().message());
            page_full_ = false;
            page_outstanding_ = 0;
        }
        stage_ = FlushStage::kSending;
        pump_flush();
    }

    /// Whether the window takes one more message of `bytes`.
    bool window_open(Connection& c, std::size_t bytes) {
        if (window_messages_ == 0) {
            return true;
        }
        const std::size_t limit = std::min(kFlushWindowBytes, c.max_outbound_bytes() / 2);
        return window_messages_ < kFlushWindowMessages && window_bytes_ + bytes <= limit;
    }

    /// Moves the flush on as far as it can go now: sends what the window takes, reads the next
    /// page, releases the held messages, ends the flush. Called after every event of the flush (a
    /// page read, a write, a removal, the close); re-entered from a send (a connection that closes
    /// runs the callbacks of what it drops at once), it leaves the work to the outer call.
    void pump_flush() {
        if (pumping_ || !flushing_) {
            return;
        }
        pumping_ = true;
        for (bool more = true; more;) {
            more = false;
            const auto c = connection();
            if (stage_ == FlushStage::kSending) {
                while (c && !page_failed_ && !page_.empty() &&
                       window_open(*c, page_.front().body.size())) {
                    send_entry(*c);
                }
                if (!c || page_failed_) {
                    // The connection is gone (or a removal failed, and reading the page again
                    // would deliver twice): what is left of the page stays queued.
                    page_outstanding_ -= page_.size();
                    page_.clear();
                }
                if (page_outstanding_ == 0) {
                    if (!page_failed_ && c && (page_full_ || flush_again_)) {
                        flush_again_ = false;
                        stage_ = FlushStage::kReading;
                        read_page();  // sees the removals: submitted after them from this thread
                    } else {
                        stage_ = FlushStage::kHeld;
                        more = true;
                    }
                }
            } else if (stage_ == FlushStage::kHeld) {
                while (c && !held_.empty() && window_open(*c, held_.front().prefix->size())) {
                    send_held(*c);
                }
                if (held_.empty()) {
                    // Live messages now go straight out, behind what the flush left in the outbox.
                    flushing_ = false;
                    stage_ = FlushStage::kIdle;
                    if (flush_again_ && c) {
                        start_flush();  // entries committed during the flush follow the held
                    }
                }
            }
        }
        pumping_ = false;
    }

    /// Sends the page's next entry (or drops it when unreadable) and counts it in the window.
    void send_entry(Connection& c) {
        store::MailboxEntry e = std::move(page_.front());
        page_.pop_front();
        if (!valid_forward_prefix(e.body)) {
            log()->warn("[conn {}] dropping an unreadable queued message {} of {}", to_string(id_),
                        e.seq, e.key);
            remove(std::move(e.key), e.seq);
            return;
        }
        if (e.expires_at && *e.expires_at <= std::chrono::system_clock::now()) {
            // Expired while the page waited for the window (a slow recipient): never delivered.
            // Left to the sweep, which deletes, counts and takes it off the depth exactly once
            // (the next page's read skips it).
            --page_outstanding_;
            return;
        }
        auto payload = make_text(finish_forward(e.body, std::chrono::system_clock::now()));
        const std::size_t bytes = payload->size();
        ++window_messages_;
        window_bytes_ += bytes;
        const auto result =
            c.send(std::move(payload), [self = shared_from_this(), key = std::move(e.key),
                                        seq = e.seq, bytes](bool written) mutable {
                self->on_flushed(std::move(key), seq, bytes, written);
            });
        if (result != SendResult::kQueued) {
            close_window(bytes);
            page_failed_ = true;  // the connection is closing: the entry stays queued
            --page_outstanding_;
        }
    }

    /// The direction of a queue, as the metrics index it: the kind of its messages' sender.
    static std::size_t direction_of(std::string_view key) {
        return static_cast<std::size_t>(key.starts_with(kToBotPrefix) ? Kind::kMod : Kind::kBot);
    }

    void on_flushed(std::string key, std::uint64_t seq, std::size_t bytes, bool written) {
        close_window(bytes);
        if (written) {
            shared_->flushed[direction_of(key)]->inc();
            remove(std::move(key), seq);
        } else {
            page_failed_ = true;
            --page_outstanding_;
        }
        pump_flush();
    }

    /// Removes a delivered (or unreadable) entry; the page is done when every entry is.
    void remove(std::string key, std::uint64_t seq) {
        const auto direction = direction_of(key);
        auto done = core::post_to_current_thread<Result<void>>(
            shared_->shards, [self = shared_from_this(), direction](Result<void> r) {
                if (r) {
                    self->shared_->depth[direction]->sub(1);
                } else {
                    // Reading the page again would deliver the entry twice: stop this flush.
                    self->page_failed_ = true;
                    log()->warn("[conn {}] could not remove a delivered message: {}",
                                to_string(self->id_), r.error().message());
                }
                --self->page_outstanding_;
                self->pump_flush();
            });
        shared_->mailboxes.remove(std::move(key), seq, std::move(done));
    }

    /// Sends the oldest live message held during the flush, counted in the window.
    void send_held(Connection& c) {
        Delivery d = std::move(held_.front());
        held_.pop_front();
        held_bytes_ -= d.prefix->size();
        auto payload = make_text(finish_forward(*d.prefix, std::chrono::system_clock::now()));
        const std::size_t bytes = payload->size();
        ++window_messages_;
        window_bytes_ += bytes;
        const auto result = c.send(std::move(payload),
                                   [self = shared_from_this(), done = d.done, bytes](bool written) {
                                       self->close_window(bytes);
                                       done(written);
                                       self->pump_flush();
                                   });
        if (result != SendResult::kQueued) {
            close_window(bytes);
            d.done(false);  // not queued: the callback was dropped unrun
        }
    }

    void close_window(std::size_t bytes) {
        --window_messages_;
        window_bytes_ -= bytes;
    }

    std::shared_ptr<Shared> shared_;
    // Weak: callbacks queued on other io threads may keep this Peer alive, and must not keep
    // the connection (and its socket) alive with it.
    ConnectionHandle connection_;
    bool open_ = false;  // between on_open and on_close
    std::string peer_address_;
    ConnectionId id_{};
    Phase phase_ = Phase::kHandshake;
    Handshake handshake_;

    // As a sender: messages whose ack is not sent yet, oldest first.
    std::deque<Slot> slots_;
    std::uint64_t first_slot_ = 0;    // the index of slots_.front()
    std::uint64_t store_cursor_ = 0;  // slots before it need no more appends

    // As a recipient.
    enum class FlushStage : std::uint8_t {
        kIdle,
        kReading,  // a page read is pending
        kSending,  // the page's entries go out through the window, and are removed once written
        kHeld,     // the queue is done: the held live messages go out through the window
    };
    bool flushing_ = false;     // from the handshake (or a flush hint) until the held messages are
                                // out; live messages wait in held_ meanwhile
    bool flush_again_ = false;  // new entries were committed during the flush
    bool pumping_ = false;      // in pump_flush
    FlushStage stage_ = FlushStage::kIdle;
    bool page_full_ = false;
    bool page_failed_ = false;
    std::deque<store::MailboxEntry> page_;  // the page's entries not yet sent, oldest first
    std::size_t page_outstanding_ = 0;      // entries of the page not yet written and removed
    std::deque<Delivery> held_;
    std::size_t held_bytes_ = 0;  // of held_'s prefixes, bounded by kMaxHeldBytes
    // Messages of the flush handed to the connection and not yet written (the window), and their
    // bytes. Kept across flushes: what one flush left in the outbox counts against the next.
    std::size_t window_messages_ = 0;
    std::size_t window_bytes_ = 0;
};

/// Adapts a Peer to the connection's callbacks. Runs on: the connection's io thread.
class Handler final : public WsHandler {
public:
    explicit Handler(std::shared_ptr<Shared> shared)
        : peer_(std::make_shared<Peer>(std::move(shared))) {}

    void on_open(const ConnectionPtr& connection) override { peer_->open(connection); }
    void on_message(MessageKind, std::string_view data) override { peer_->message(data); }
    void on_close(const CloseInfo& info) override { peer_->closed(info); }

private:
    std::shared_ptr<Peer> peer_;
};

}  // namespace

namespace {

/// The original's README gives its default key, so on a listener others can reach it is no key.
void warn_if_default_key_exposed(std::string_view listen, std::string_view api_key) {
    if (api_key == HomesteadConfig::kDefaultApiKey && listens_beyond_loopback(listen)) {
        log()->warn(
            "homestead.api_key is the well-known default \"{}\" and the gateway listens on {}, "
            "beyond loopback: anyone who can reach it can connect as a mod or as the bot; set "
            "homestead.api_key to a long random key (and the same in the mods and the bot)",
            api_key, listen);
    }
}

}  // namespace

namespace {

// A short lifetime is swept as often, so that expired messages do not linger in the quotas long; a
// lifetime of 0 still sweeps: entries stored with an earlier lifetime.
std::chrono::seconds sweep_interval(std::int64_t queue_lifetime_s) {
    const std::chrono::seconds lifetime(queue_lifetime_s);
    return lifetime.count() > 0 ? std::clamp(lifetime, std::chrono::seconds(1), kSweepInterval)
                                : kSweepInterval;
}

}  // namespace

HomesteadFrontend::HomesteadFrontend(const core::ShardSet& shards, store::Mailboxes& mailboxes,
                                     core::MetricsRegistry& metrics, const HomesteadConfig& config)
    : shared_(std::make_shared<Shared>(shards, mailboxes, metrics, config)),
      start_config_(config),
      api_key_(config.api_key) {
    warn_if_default_key_exposed(config.listen, config.api_key);
    sweep_timer_ = shards.every(0, sweep_interval(config.queue_lifetime_s),
                                [weak = std::weak_ptr<Shared>(shared_)] {
                                    if (auto shared = weak.lock()) {
                                        Shared::sweep(shared, Kind::kMod);
                                        Shared::sweep(shared, Kind::kBot);
                                    }
                                });
    // The depth gauges start from what the store holds (messages queued before a restart).
    for (Kind k : {Kind::kMod, Kind::kBot}) {
        mailboxes.depth_prefix(
            std::string(k == Kind::kMod ? kToBotPrefix : kToModPrefix),
            [shared = shared_, k](Result<std::uint64_t> r) {
                if (r) {
                    shared->depth[static_cast<std::size_t>(k)]->add(static_cast<std::int64_t>(*r));
                }
            });
    }
}

HomesteadFrontend::~HomesteadFrontend() = default;

void HomesteadFrontend::add_routes(Router& router,
                                   std::shared_ptr<const WsRouteSettings> settings) {
    // The listener's address and TLS files need a restart: the config the front-end started with.
    const HomesteadConfig& c = start_config_;
    listener_ = router.listener({"homestead", c.listen, c.tls_cert_file, c.tls_key_file});
    router.add_http_route(listener_, "GET", "/health", sync_handler([](const HttpRequest&) {
                              return HttpResponse::json(200, std::string(kHealthy));
                          }));
    WsRoute route;
    route.frontend = "homestead";
    route.settings = std::move(settings);
    route.accept_async = [shared = shared_](const HttpRequest& req,
                                            std::function<void(WsRoute::Decision)> decide) {
        // The query is decoded here, as Go's url.Values decodes it ('+' is a space), so that any
        // key a client of the original could present is read the same.
        auto key = query_value(req.query, "api_key");
        std::string presented = key && !key->empty()
                                    ? std::move(*key)
                                    : std::string(req.header("X-API-Key").value_or(""));
        if (shared->key_matches(presented)) {
            decide(std::make_unique<Handler>(shared));
            return;
        }
        auto refuse = [shared, peer = req.peer_address](std::function<void(WsRoute::Decision)>& d) {
            shared->count_rejected("invalid_api_key");
            log()->debug("refused /sync from {}: invalid API key", peer);
            d(HttpResponse::json(401, std::string(kInvalidApiKey)));
        };
        auto* accounts = shared->account_service();
        if (accounts == nullptr || presented.empty()) {
            refuse(decide);
            return;
        }
        // Not the configured key: an API key of an account, with scope homestead, is accepted too;
        // nothing else is (access_policy() in homestead.hpp).
        accounts->authorize_login(
            std::move(presented), access_policy(), req.peer_address,
            [shared, refuse, decide = std::move(decide)](auth::AccessDecision d) mutable {
                if (d.accepted()) {
                    decide(std::make_unique<Handler>(shared));
                    return;
                }
                refuse(decide);
            });
    };
    router.add_ws_route(listener_, "/sync", std::move(route));
    log()->info("Homestead gateway on {} (/sync, /health)", c.listen);
}

const auth::AccessPolicy& HomesteadFrontend::access_policy() {
    static const auth::AccessPolicy policy{.door = "homestead", .api_key_scope = "homestead"};
    return policy;
}

void HomesteadFrontend::reload(const HomesteadConfig& config) {
    shared_->set(config);
    sweep_timer_.set_interval(sweep_interval(config.queue_lifetime_s));
    if (config.api_key != api_key_) {
        api_key_ = config.api_key;
        // The listener keeps the address it started with (listen needs a restart).
        warn_if_default_key_exposed(start_config_.listen, config.api_key);
    }
}

bool listens_beyond_loopback(std::string_view listen) {
    std::string host;
    std::uint16_t port = 0;
    if (!core::parse_host_port(listen, host, port)) {
        return true;
    }
    if (host == "localhost") {
        return false;
    }
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    return ec || !address.is_loopback();
}

void HomesteadFrontend::set_accounts(auth::AccountService* accounts) {
    std::lock_guard lock(shared_->mutex);
    shared_->accounts = accounts;
}

}  // namespace hearth::frontends::homestead
