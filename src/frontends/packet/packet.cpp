#include "frontends/packet/packet.hpp"
#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <hearth/stream.hpp>
#include <hearth/world.hpp>

#include "auth/access_policy.hpp"
#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "frontends/packet/codec.hpp"
#include "frontends/packet/messages.hpp"
#include "frontends/packet/send.hpp"
#include "frontends/packet/world_sink.hpp"
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

// While a login or a character request is being answered, a connection's later bytes wait
// unparsed; past this many it stops reading until the answer is in (TCP backpressure).
constexpr std::size_t kMaxHeldBytes = 64 * 1024;

// How often each io thread looks for connections past their idle or login deadline: a deadline is
// kept to within this.
constexpr auto kSweepInterval = std::chrono::milliseconds(250);

// The transport's own idle timeout, beyond the front-end's deadlines: a backstop that closes a
// connection (without an Error) should the sweep ever miss one.
constexpr auto kTransportIdleSlack = std::chrono::seconds(10);
// Bytes queued for one connection, with what the world's zones sent it from their threads and
// its io thread has not queued yet, past which it is a slow consumer and is closed
// (StreamSettings::max_outbound_bytes).
constexpr std::size_t kMaxOutboundBytes = 256 * 1024;

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

/// Seconds to report for a wait, rounded up: a client that waits that long is let in.
std::uint32_t seconds_up(std::chrono::milliseconds wait) {
    const auto s = (wait.count() + 999) / 1000;
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(s, 1, 0xFFFF'FFFF));
}

/// A value of the store in a narrower wire field: clamped (the store's values fit today's
/// fields; this keeps a future larger value from wrapping).
template <class To, class From>
To narrow(From v) {
    if (v < 0) {
        return 0;
    }
    using U = std::make_unsigned_t<From>;
    return static_cast<U>(v) > std::numeric_limits<To>::max() ? std::numeric_limits<To>::max()
                                                              : static_cast<To>(v);
}

/// A character as listed; its name views `c`'s.
wire::CharacterSummary summary_of(const store::CharacterRecord& c) {
    return {.id = c.id,
            // `[characters] name_max_length` may allow more than the wire's 32 bytes; names are
            // ASCII, so the cut is at a character boundary.
            .name = utf8_prefix(c.name, wire::kMaxCharacterNameBytes),
            .level = narrow<std::uint16_t>(c.level),
            .looks = looks_of(c.looks),
            .zone = c.position.zone};
}

/// The selected character, whole; its name views `c`'s.
wire::CharacterSelected selected_of(const store::CharacterRecord& c) {
    wire::CharacterSelected s{
        .id = c.id,
        .name = utf8_prefix(c.name, wire::kMaxCharacterNameBytes),
        .level = narrow<std::uint16_t>(c.level),
        .experience = narrow<std::uint64_t>(c.experience),
        .money = narrow<std::uint64_t>(c.money),
        .stats = {.hp = narrow<std::uint32_t>(c.stats.hp),
                  .max_hp = narrow<std::uint32_t>(c.stats.max_hp),
                  .mp = narrow<std::uint32_t>(c.stats.mp),
                  .max_mp = narrow<std::uint32_t>(c.stats.max_mp),
                  .strength = narrow<std::uint16_t>(c.stats.str),
                  .dexterity = narrow<std::uint16_t>(c.stats.dex),
                  .intelligence = narrow<std::uint16_t>(c.stats.intelligence),
                  .vitality = narrow<std::uint16_t>(c.stats.con)},
        .looks = looks_of(c.looks),
        .position = {.zone = c.position.zone,
                     .at = {.x = c.position.x, .y = c.position.y, .z = c.position.z},
                     .heading = c.position.heading},
        .inventory = {}};
    // The store keeps up to 100 slots in the order they were saved, the message 48 (so that it
    // fits the smallest packet): the 48 lowest slot numbers, in order; the world's inventory
    // messages (issue 20) will carry the rest.
    s.inventory.reserve(c.inventory.size());
    for (const auto& slot : c.inventory) {
        s.inventory.push_back({.slot = slot.slot, .item = slot.item_id, .count = slot.count});
    }
    std::ranges::sort(s.inventory, {}, &wire::InventorySlot::slot);
    if (s.inventory.size() > wire::kMaxInventorySlots) {
        s.inventory.resize(wire::kMaxInventorySlots);
    }
    return s;
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

/// State shared by every connection of the front-end: who holds each character and each account's
/// connections (the takeover rules), every open connection (the shutdown notice), the connections
/// of each io thread (its idle sweep), and the counters. Thread-safe: `mutex` guards `open`,
/// `holders` and `by_account` and is held for a few pointer copies, never across a send;
/// `on_shard[i]` is touched only on io thread i.
struct PacketFrontend::Shared {
    /// A connection as its io thread's sweep sees it.
    class Member {
    public:
        virtual ~Member() = default;
        virtual void sweep(Clock::time_point now) = 0;
    };

    Shared(core::ShardSet s, auth::AccountService& a, characters::CharacterService& ch,
           world::WorldService& w, core::MetricsRegistry& m, const PacketConfig& c)
        : shards(s),
          accounts(a),
          characters(ch),
          world(w),
          metrics(m),
          config(c),
          send_counters(std::make_shared<const SendCounters>(m)),
          on_shard(s.size()) {
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
        constexpr std::string_view kTakeovers =
            "Game connections closed (taken_over), by rule: their character was selected on "
            "another connection (character), or their account logged in on more connections than "
            "[packet] max_connections_per_account (account).";
        character_takeovers = &m.counter("hearth_packet_takeovers_total", std::string(kTakeovers),
                                         {{"rule", "character"}});
        account_takeovers = &m.counter("hearth_packet_takeovers_total", std::string(kTakeovers),
                                       {{"rule", "account"}});
        logged_in = &m.gauge("hearth_packet_logged_in", "Game connections logged in.");
        selected = &m.gauge("hearth_packet_characters_selected",
                            "Characters selected on a game connection (one connection each).");
    }

    core::Counter& login_result(std::string_view method, std::string_view result) {
        return metrics.counter("hearth_packet_logins_total",
                               "Game logins, by method (password, token, transfer) and result (ok "
                               "or the error code's name).",
                               {{"method", std::string(method)}, {"result", std::string(result)}});
    }
    /// One Error packet, counted; `message` replaces the code's default text.
    SharedPayload error_packet(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail,
                               std::string_view message = {}) {
        return packet::error_packet(*send_counters, code, opcode, detail, message);
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

    /// Records `c` as one of `account`'s connections; returns those it pushes past
    /// `max_connections_per_account` (the oldest first: to be taken over), if still open.
    std::vector<StreamConnectionPtr> log_in(std::uint64_t account, const StreamConnectionPtr& c) {
        std::vector<StreamConnectionPtr> out;
        std::lock_guard lock(mutex);
        auto& list = by_account[account];
        list.emplace_back(c->id(), c);
        while (list.size() > static_cast<std::size_t>(config.max_connections_per_account)) {
            if (auto oldest = list.front().second.lock()) {
                out.push_back(std::move(oldest));
            }
            list.pop_front();
        }
        return out;
    }
    void log_out(std::uint64_t account, ConnectionId id) {
        std::lock_guard lock(mutex);
        auto a = by_account.find(account);
        if (a == by_account.end()) {
            return;
        }
        std::erase_if(a->second, [id](const auto& e) { return e.first == id; });
        if (a->second.empty()) {
            by_account.erase(a);
        }
    }

    /// Records `c` (of `account`) as the connection of `character`; returns the connection that
    /// held it before (to be taken over), if it is still open.
    StreamConnectionPtr claim(std::uint64_t character, std::uint64_t account,
                              const StreamConnectionPtr& c) {
        std::lock_guard lock(mutex);
        auto& holder = holders[character];
        auto previous = holder.connection.lock();
        holder = {c->id(), account, c};
        selected->set(static_cast<std::int64_t>(holders.size()));
        return previous != c ? previous : nullptr;
    }
    void release(std::uint64_t character, ConnectionId id) {
        std::lock_guard lock(mutex);
        auto h = holders.find(character);
        if (h != holders.end() && h->second.id == id) {
            holders.erase(h);
            selected->set(static_cast<std::int64_t>(holders.size()));
        }
    }
    /// Whether `character` of `account` is selected on an open connection.
    bool held(std::uint64_t character, std::uint64_t account) {
        std::lock_guard lock(mutex);
        auto h = holders.find(character);
        return h != holders.end() && h->second.account == account &&
               !h->second.connection.expired();
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
    characters::CharacterService& characters;
    world::WorldService& world;
    core::MetricsRegistry& metrics;
    PacketConfig config;
    std::shared_ptr<const SendCounters> send_counters;  // shared with the world's sinks
    std::array<core::Counter*, kClassNames.size()> packets_in{};
    std::array<core::Counter*, kClassNames.size()> packets_out{};
    core::Counter* character_takeovers = nullptr;
    core::Counter* account_takeovers = nullptr;
    core::Gauge* logged_in = nullptr;
    core::Gauge* selected = nullptr;

    std::vector<std::unordered_set<Member*>> on_shard;  // [i]: io thread i only
    // The sweep's copy of its shard's members: one per io thread, kept between sweeps.
    thread_local static std::vector<Member*> sweeping;

    std::mutex mutex;
    std::unordered_map<ConnectionId, std::weak_ptr<StreamConnection>> open;
    struct Holder {
        ConnectionId id{};
        std::uint64_t account = 0;
        std::weak_ptr<StreamConnection> connection;
    };
    // character id -> the connection that selected it
    std::unordered_map<std::uint64_t, Holder> holders;
    // account id -> its logged-in connections, oldest first (at most max_connections_per_account)
    std::unordered_map<std::uint64_t,
                       std::deque<std::pair<ConnectionId, std::weak_ptr<StreamConnection>>>>
        by_account;
};

thread_local std::vector<PacketFrontend::Shared::Member*> PacketFrontend::Shared::sweeping;

namespace {

using Shared = PacketFrontend::Shared;

/// One game connection. Runs on: its connection's io thread (every callback, every completion
/// posted back, its sweep). Owned by: the network layer, until `on_close`.
///
/// Packets are handled strictly in order: while a login, a character request or an entry into the
/// world is being answered the later bytes wait unparsed (reading pauses past kMaxHeldBytes), and
/// the answer resumes the loop. In the world, requests go to the character's Player, which keeps
/// their order, and are not waited for.
class PacketConnection final : public StreamHandler, public Shared::Member, public WorldSinkOwner {
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
        // Out of the world (its position saved); its sink drops what the world still says.
        player_.reset();
        shared_->leave(shard_, this, connection_->id());
        if (character_id_ != 0) {
            shared_->release(character_id_, connection_->id());
        }
        if (account_id_ != 0) {
            shared_->log_out(account_id_, connection_->id());
            shared_->logged_in->sub(1);
        }
        if (!session_token_.empty()) {
            // The password login's session was this connection's alone: it ends with it.
            shared_->accounts.logout(std::move(session_token_), [](Result<void>) {});
        }
        log()->debug("[conn {}] closed{}", to_string(connection_->id()),
                     account_name_.empty() ? std::string() : " (" + account_name_ + ")");
        connection_.reset();
    }

    // What was sent (by the world, mostly) piled up past the connection's outbound bound: the
    // close waits for the transport's write timeout while the client does not read, and its
    // character should not stand in the world (seen, and unsaved) until then.
    void on_slow_consumer() override {
        done_ = true;
        player_.reset();
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
        deliver(static_cast<std::uint16_t>(M::kOpcode), std::move(out), e);
    }

    /// A batch (the character list) as as many packets as it needs, sent at once so that no other
    /// packet comes between them.
    template <class M>
    void send_batch(const M& m) {
        std::string out;
        const auto e = wire::encode_batched(out, m, decoder_.max_packet_bytes());
        deliver(static_cast<std::uint16_t>(M::kOpcode), std::move(out), e);
    }

    /// Sends the packets `encoded` holds, counted; `internal_error` instead when encoding failed.
    void deliver(std::uint16_t opcode, std::string encoded, wire::WireError e) {
        if (e != wire::WireError::kNone) {
            log()->error("[conn {}] cannot encode {}: {}", to_string(connection_->id()),
                         wire::opcode_name(opcode), wire::wire_error_text(e));
            send_error(wire::ErrorCode::kInternalError, opcode);
            return;
        }
        auto& counter = *shared_->packets_out[static_cast<std::size_t>(class_of(opcode))];
        for (std::size_t at = 0; at + wire::kHeaderBytes <= encoded.size();) {
            counter.inc();
            at += static_cast<unsigned char>(encoded[at]) |
                  (static_cast<std::size_t>(static_cast<unsigned char>(encoded[at + 1])) << 8);
        }
        (void)connection_->send(make_binary(std::move(encoded)));
    }

    void send_error(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail = 0,
                    std::string_view message = {}) {
        (void)connection_->send(shared_->error_packet(code, opcode, detail, message));
    }

    /// An error that ends the connection: nothing more is read or handled.
    void fail(wire::ErrorCode code, std::uint16_t opcode, std::uint32_t detail) {
        done_ = true;
        send_error(code, opcode, detail);
        connection_->close();
    }

    void process(std::string_view input) {
        while (!input.empty() && !done_ && !closed_) {
            if (waiting_) {
                // Held packets are not parsed yet, but they are traffic: a keep-alive sent while
                // a slow answer is awaited must not end in idle_timeout.
                last_packet_ = Clock::now();
                connection_->touch();
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
        done_ = true;
        if (in_world_) {
            // The sink answers LogoutReply and closes once the world saved the character (`left`).
            player_->leave(world::LeaveReason::kLogout);
            return;
        }
        send(wire::LogoutReply{});
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

    /// A character packet in the world: refused (the character stays in play as it is).
    bool refused_in_world(std::uint16_t type) {
        if (in_world_) {
            send_error(wire::ErrorCode::kAlreadyInWorld, type);
        }
        return in_world_;
    }

    void on_message(const wire::CharacterListRequest&, std::uint16_t type) {
        if (refused_in_world(type)) {
            return;
        }
        using Records = std::vector<store::CharacterRecord>;
        waiting_ = true;
        shared_->characters.list(account_id_,
                                 back_here<Result<Records>>([this, type](Result<Records> r) {
                                     if (!r) {
                                         character_error(r.error(), type);
                                         return;
                                     }
                                     wire::CharacterList list;
                                     list.characters.reserve(r->size());
                                     for (const auto& c : *r) {
                                         list.characters.push_back(summary_of(c));
                                     }
                                     send_batch(list);
                                 }));
    }

    void on_message(const wire::CreateCharacterRequest& m, std::uint16_t type) {
        if (refused_in_world(type)) {
            return;
        }
        waiting_ = true;
        shared_->characters.create(
            account_id_,
            {.name = std::string(m.name),
             .looks = {.body = m.looks.body,
                       .face = m.looks.face,
                       .hair = m.looks.hair,
                       .hair_color = m.looks.hair_color}},
            back_here<Result<store::CharacterRecord>>(
                [this, type](Result<store::CharacterRecord> r) {
                    if (!r) {
                        character_error(r.error(), type);
                        return;
                    }
                    send(wire::CharacterCreated{.character = summary_of(*r)});
                }));
    }

    void on_message(const wire::DeleteCharacterRequest& m, std::uint16_t type) {
        if (refused_in_world(type)) {
            return;
        }
        // A character in play (selected here or on another connection of the account) stays: it
        // would vanish under its player. Another account's character is not looked up here, so
        // its answer stays no_such_character whoever plays it.
        if (shared_->held(m.character_id, account_id_)) {
            send_error(wire::ErrorCode::kCharacterInUse, type);
            return;
        }
        waiting_ = true;
        shared_->characters.remove(account_id_, m.character_id,
                                   back_here<Result<store::CharacterRecord>>(
                                       [this, type](Result<store::CharacterRecord> r) {
                                           if (!r) {
                                               character_error(r.error(), type);
                                               return;
                                           }
                                           send(wire::CharacterDeleted{.character_id = r->id});
                                       }));
    }

    void on_message(const wire::SelectCharacterRequest& m, std::uint16_t type) {
        if (refused_in_world(type)) {
            return;
        }
        waiting_ = true;
        shared_->characters.select(account_id_, m.character_id,
                                   back_here<Result<store::CharacterRecord>>(
                                       [this, type](Result<store::CharacterRecord> r) {
                                           if (!r) {
                                               character_error(r.error(), type);
                                               return;
                                           }
                                           take(r->id);
                                           send(selected_of(*r));
                                           // What the world is given at entry.
                                           selected_ = std::move(*r);
                                       }));
    }

    // The world's opcodes, in the states of docs/protocol/packets.md.
    template <class M>
    void on_message(const M& m, std::uint16_t type) {
        if (character_id_ == 0) {
            send_error(wire::ErrorCode::kNoCharacterSelected, type);
        } else if (in_world_) {
            in_world(m, type);
        } else if constexpr (std::is_same_v<M, wire::EnterWorldRequest>) {
            enter_world();
        } else {
            send_error(wire::ErrorCode::kNotInWorld, type);
        }
    }

    /// Puts the selected character into the world; the packets after the request wait for its
    /// answer (WorldEntered or an Error, from the sink, which then calls world_entered or
    /// world_enter_refused here).
    void enter_world() {
        waiting_ = true;
        auto sink = std::make_shared<WorldSink>(connection_, shared_->shards, shard_,
                                                shared_->send_counters, decoder_.max_packet_bytes(),
                                                *this, alive_);
        player_ = shared_->world.enter(*selected_, std::move(sink));
    }

    void world_entered() override {
        if (closed_ || done_) {
            return;
        }
        in_world_ = true;
        end_wait();
    }

    void world_enter_refused() override {
        if (closed_ || done_) {
            return;
        }
        player_.reset();
        end_wait();
    }

    // In the world: each request goes to the Player, whose answers and refusals come through the
    // sink.
    void in_world(const wire::EnterWorldRequest&, std::uint16_t type) {
        send_error(wire::ErrorCode::kAlreadyInWorld, type);
    }
    void in_world(const wire::ChangeMapRequest& m, std::uint16_t) { player_->change_zone(m.zone); }
    void in_world(const wire::MoveIntent& m, std::uint16_t) {
        std::array<world::Vec3, wire::kMaxPathPoints> path;
        for (std::size_t i = 0; i < m.count; ++i) {
            path[i] = {.x = m.points[i].x, .y = m.points[i].y, .z = m.points[i].z};
        }
        player_->move(m.seq, std::span(path.data(), m.count));
    }
    void in_world(const wire::TargetHpRequest& m, std::uint16_t) { player_->target_hp(m.entity); }
    void in_world(const wire::AttackRequest& m, std::uint16_t) { player_->attack(m.target); }
    void in_world(const wire::RespawnRequest&, std::uint16_t) { player_->respawn(); }
    void in_world(const wire::ChatSend& m, std::uint16_t) {
        player_->chat(static_cast<world::ChatChannel>(m.channel), m.text);
    }
    void in_world(const wire::WhisperSend& m, std::uint16_t) { player_->whisper(m.to, m.text); }

    /// `character` is this connection's now: one selected before is let go, and a connection
    /// that held it is taken over (told why, then closed: its own thread sees the close).
    void take(std::uint64_t character) {
        if (character_id_ != 0 && character_id_ != character) {
            shared_->release(character_id_, connection_->id());
        }
        character_id_ = character;
        if (auto previous = shared_->claim(character, account_id_, connection_)) {
            take_over(*previous, *shared_->character_takeovers);
            log()->debug("[conn {}] {} selected character {} again: connection {} taken over",
                         to_string(connection_->id()), account_name_, character,
                         to_string(previous->id()));
        }
    }

    void take_over(StreamConnection& previous, core::Counter& counter) {
        counter.inc();
        (void)previous.send(shared_->error_packet(wire::ErrorCode::kTakenOver, 0, 0));
        previous.close();
    }

    /// The protocol's answer to a character service error (docs/protocol/packets.md, "Error
    /// codes").
    void character_error(const boost::system::error_code& ec, std::uint16_t type) {
        using characters::CharacterError;
        using wire::ErrorCode;
        const auto name_invalid = [&](wire::NameProblem p) {
            send_error(ErrorCode::kNameInvalid, type, static_cast<std::uint32_t>(p));
        };
        switch (const auto e = characters::character_error_of(ec)) {
            case CharacterError::kNameTooShort:
                return name_invalid(wire::NameProblem::kTooShort);
            case CharacterError::kNameTooLong:
                return name_invalid(wire::NameProblem::kTooLong);
            case CharacterError::kNameInvalid:
                return name_invalid(wire::NameProblem::kBadCharacter);
            case CharacterError::kNameReserved:
                return name_invalid(wire::NameProblem::kReserved);
            case CharacterError::kNameTaken:
                return send_error(ErrorCode::kNameTaken, type);
            case CharacterError::kTooManyCharacters:
                return send_error(ErrorCode::kTooManyCharacters, type,
                                  narrow<std::uint32_t>(static_cast<std::int64_t>(
                                      shared_->characters.max_per_account())));
            case CharacterError::kNotFound:
                return send_error(ErrorCode::kNoSuchCharacter, type);
            case CharacterError::kNoSuchAccount:
                // The account was deleted since this connection logged in.
                return send_error(ErrorCode::kAccountDisabled, type);
            case CharacterError::kDisabled:
                // Retrying will not help until an operator enables the module: the detail says
                // so.
                return send_error(ErrorCode::kUnavailable, type,
                                  static_cast<std::uint32_t>(wire::Unavailable::kNotServed),
                                  "Characters are disabled on this server");
            case CharacterError::kUnavailable:
                return send_error(ErrorCode::kUnavailable, type);
            default:
                log()->warn("[conn {}] {} failed: {}", to_string(connection_->id()),
                            wire::opcode_name(type), characters::character_error_name(e));
                return send_error(ErrorCode::kInternalError, type);
        }
    }

    /// Wraps a completion so that it runs here, on this connection's thread, and only while the
    /// connection is open and not closing (a closing connection must not take another over); then
    /// the held bytes are processed (the caller set `waiting_`). Otherwise `dropped` gets the
    /// result, for what must not outlive the connection; it must not touch `this`.
    template <class T, class F>
    std::function<void(T)> back_here(F f, std::function<void(T)> dropped = {}) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<T>(
            shared_->shards,
            [this, alive, f = std::move(f), dropped = std::move(dropped)](T r) mutable {
                if (alive.expired() || closed_ || done_) {
                    if (dropped) {
                        dropped(std::move(r));
                    }
                    return;
                }
                f(std::move(r));
                end_wait();
            });
    }

    void password_login(std::string username, std::string password) {
        waiting_ = true;
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
                },
                // The connection went away during the login: the session it made is revoked
                // here, or every login-then-reset would leave one behind for the session's life.
                [shared = shared_](Result<auth::SessionToken> r) {
                    if (r) {
                        shared->accounts.logout(std::move(r->token), [](Result<void>) {});
                    }
                }));
    }

    void token_login(std::string token) {
        waiting_ = true;
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
        shared_->logged_in->add(1);
        // An account's connections are bounded: logging in again in a loop takes the oldest over
        // rather than piling connections up (with a bound of 1, the rule is one per account).
        for (const auto& oldest : shared_->log_in(account_id_, connection_)) {
            take_over(*oldest, *shared_->account_takeovers);
            // Debug: a client can log in again in a loop; the counter above counts every one.
            log()->debug("[conn {}] {} logged in again: connection {} taken over",
                         to_string(connection_->id()), account_name_, to_string(oldest->id()));
        }
        shared_->login_result(method, "ok").inc();
        log()->debug("[conn {}] logged in as {}", to_string(connection_->id()), account_name_);
        send(wire::LoginReply{
            .account_id = account_id_,
            .account_name = utf8_prefix(account_name_, wire::kMaxAccountNameBytes),
            .max_packet_bytes = static_cast<std::uint16_t>(decoder_.max_packet_bytes()),
            .idle_timeout_s = static_cast<std::uint16_t>(shared_->config.idle_timeout_s)});
    }

    void end_wait() {
        waiting_ = false;
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
        if (end_of_input_ && !waiting_ && !closed_) {
            connection_->close();
        }
    }

    std::shared_ptr<Shared> shared_;
    wire::FrameDecoder decoder_;
    StreamConnectionPtr connection_;
    std::size_t shard_ = 0;
    Clock::time_point opened_{};
    Clock::time_point last_packet_{};
    std::uint64_t account_id_ = 0;                    // set once logged in (account ids start at 1)
    std::uint64_t character_id_ = 0;                  // the selected character (ids start at 1)
    std::optional<store::CharacterRecord> selected_;  // as the character service selected it
    std::unique_ptr<world::Player> player_;           // from an EnterWorldRequest on
    bool in_world_ = false;                           // WorldEntered was sent
    std::string account_name_;
    std::string session_token_;  // a password login's session, revoked at close
    std::string held_;           // bytes received while a request is answered
    bool waiting_ = false;       // a login or a character request is being answered
    bool paused_ = false;
    bool done_ = false;          // a closing error was sent: nothing more is handled
    bool end_of_input_ = false;  // the client shut down its sending side
    bool closed_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
};

}  // namespace

PacketFrontend::PacketFrontend(core::ShardSet shards, auth::AccountService& accounts,
                               characters::CharacterService& characters, world::WorldService& world,
                               core::MetricsRegistry& metrics, const PacketConfig& config)
    : shared_(std::make_shared<Shared>(shards, accounts, characters, world, metrics, config)),
      config_(config) {
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
    // What a client that stops reading can make one connection queue (the transport's 4 MiB
    // default times 256 connections per address would be a gigabyte): well above the largest
    // answer, a character list spanning packets (about 52 KB for 1,000 characters).
    route.settings.max_outbound_bytes = kMaxOutboundBytes;
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
