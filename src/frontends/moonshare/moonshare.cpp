#include "frontends/moonshare/moonshare.hpp"
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fcntl.h>
#include <unistd.h>

#include "auth/account_service.hpp"
#include "auth/operator_auth.hpp"
#include "auth/registration_throttle.hpp"
#include "auth/secrets.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/post.hpp"
#include "core/runtime.hpp"
#include "core/shard_set.hpp"
#include "core/ws_settings.hpp"
#include "frontends/moonshare/bindings.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/files.hpp"
#include "util/line_throttle.hpp"
#include "util/log.hpp"
#include "util/version.hpp"

namespace hearth::frontends::moonshare {

namespace json = boost::json;
namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("moonshare");
    return l;
}

constexpr std::array<std::string_view, 24> kInstanceNames = {
    "Alpha", "Beta",  "Gamma",  "Delta",   "Epsilon", "Zeta", "Eta",     "Theta",
    "Iota",  "Kappa", "Lambda", "Mu",      "Nu",      "Xi",   "Omicron", "Pi",
    "Rho",   "Sigma", "Tau",    "Upsilon", "Phi",     "Chi",  "Psi",     "Omega"};

// The plugin's receive buffer: server text messages fit in it, unfragmented.
constexpr std::size_t kClientBuffer = 8 * 1024;
// Largest text message a player may send (every protocol message is far smaller).
constexpr std::size_t kMaxTextBytes = 64 * 1024;
// Messages held while a session_auth or a file completion is in progress; more are dropped.
constexpr std::size_t kMaxHeldMessages = 64;
// Upload chunk handed to one disk write; at most one being written and one filling per upload.
constexpr std::size_t kWriteChunk = 256 * 1024;
// Relay chunk read from disk per part of the outgoing message.
constexpr std::size_t kReadChunk = 64 * 1024;
// Sessions remembered for the /sessions listings; past it the oldest are forgotten (their tokens
// stay valid).
constexpr std::size_t kMaxListedSessions = 10'000;
// Pending connect requests per target; past it new requests are rejected at once.
constexpr std::size_t kMaxPendingRequests = 64;
// Lines and events served by the gateway's /logs and /events/recent.
constexpr std::size_t kGatewayLines = 200;
constexpr std::size_t kMaxUserIdBytes = 256;

constexpr std::string_view kJsonUtf8 = "application/json; charset=utf-8";

// The texts, exactly.
constexpr std::string_view kAuthOk = "Authentication successful";
constexpr std::string_view kMissingToken = "Missing token";
constexpr std::string_view kInvalidToken = "Invalid session token";
constexpr std::string_view kServerFull = "Server full, please try later";
constexpr std::string_view kServerFullReason = "Server full, please try later.";
constexpr std::string_view kReceiveReady = "file_receive_ready";
constexpr std::string_view kMissingBegin = "FILE_FAILED: Missing file_send_begin parameters";
constexpr std::string_view kTooLarge = "FILE_FAILED: File too large";
constexpr std::string_view kMissingState = "FILE_FAILED: Missing state for completion";
constexpr std::string_view kSizeMismatch = "FILE_FAILED: Size mismatch";
constexpr std::string_view kFileSent = "FILE_SENT";
constexpr std::string_view kFileSentServerOnly = "FILE_SENT_SERVER_ONLY";
// Hearth's own answers where the original has none (documented deviations).
constexpr std::string_view kBusy = "FILE_FAILED: Server busy, please try later";
constexpr std::string_view kStorageFull = "FILE_FAILED: Server storage full";
constexpr std::string_view kQuota = "FILE_FAILED: Storage quota exceeded";
constexpr std::string_view kStorageError = "FILE_FAILED: Server storage error";
constexpr std::string_view kUploadTimedOut = "FILE_FAILED: Upload timed out";
constexpr std::string_view kUploadTooSlow = "FILE_FAILED: Upload too slow";
// The close of a connection that reads a file being sent to it too slowly.
constexpr std::string_view kTransferTooSlow = "transfer too slow";
constexpr std::string_view kNameTooLong = "FILE_FAILED: File name too long";
// A file for a user id that nobody holds would go to whoever takes the id first.
constexpr std::string_view kUnknownRecipient = "FILE_FAILED: Unknown recipient";
// Token requests for a user id held by another client, and past max_bindings.
constexpr std::string_view kUserIdHeld = "userId is held by another client";
constexpr std::string_view kTooManyUsers = "Too many users, please try later";
// The relayed file_send_begin carries the name escaped (at most 6 characters per byte): with this
// bound it stays within the client's 8 KiB receive buffer.
constexpr std::size_t kMaxFileNameBytes = 1024;

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool is_blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

// "1.2.3.4:5" -> "1.2.3.4"; "[::1]:5" -> "::1".
std::string ip_of(const std::string& peer) {
    const auto colon = peer.rfind(':');
    std::string ip = colon == std::string::npos ? peer : peer.substr(0, colon);
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
        ip = ip.substr(1, ip.size() - 2);
    }
    return ip;
}

// What a client is counted under in the per-address limits: its IP address, an IPv6 address by
// its /64 (one subscriber usually holds a whole /64, so rotating inside it does not escape).
std::string address_key_of(const std::string& peer) {
    return auth::address_key(ip_of(peer));
}

/// A compact JSON object written key by key, in order, with System.Text.Json's escaping.
class Obj {
public:
    Obj& str(std::string_view key, std::string_view value) {
        this->key(key);
        append_json_string(out_, value);
        return *this;
    }
    Obj& num(std::string_view key, std::int64_t value) {
        this->key(key);
        out_ += std::to_string(value);
        return *this;
    }
    Obj& boolean(std::string_view key, bool value) {
        this->key(key);
        out_ += value ? "true" : "false";
        return *this;
    }
    Obj& raw(std::string_view key, std::string_view json_text) {
        this->key(key);
        out_ += json_text;
        return *this;
    }
    std::string done() {
        out_ += '}';
        return std::move(out_);
    }

private:
    void key(std::string_view k) {
        out_ += first_ ? "" : ",";
        first_ = false;
        append_json_string(out_, k);
        out_ += ':';
    }
    std::string out_ = "{";
    bool first_ = true;
};

std::string auth_result(bool success, std::string_view message,
                        std::optional<std::string_view> user = std::nullopt) {
    Obj o;
    o.str("type", "session_auth_result").boolean("success", success).str("message", message);
    if (user) {
        o.str("userId", *user);
    }
    return std::move(o).done();
}

/// A JSON array of strings, cut (whole entries only) so that prefix + array stays within `limit`.
std::string string_array_within(std::string_view prefix, const std::vector<std::string>& items,
                                std::size_t limit) {
    std::string out(prefix);
    out += '[';
    bool first = true;
    for (const auto& item : items) {
        std::string entry = json_string(item);
        if (out.size() + (first ? 0 : 1) + entry.size() + 1 > limit) {
            break;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        out += entry;
    }
    out += ']';
    return out;
}

struct Field {
    const json::value* v = nullptr;
    std::optional<std::string_view> string() const {
        if (v == nullptr || !v->is_string()) {
            return std::nullopt;
        }
        return std::string_view(v->get_string());
    }
};

Field field(const json::object& o, std::string_view key) {
    return Field{o.if_contains(key)};
}

core::Counter& token_refusal(core::MetricsRegistry& m, std::string_view reason) {
    return m.counter("hearth_moonshare_tokens_refused_total",
                     "Moonshare token requests refused (token endpoint and /auth), by reason: "
                     "rate_limited (token_requests_per_ip_per_min), user_id_held (the user id is "
                     "bound to another client), too_many_user_ids (max_bindings), "
                     "too_many_user_ids_from_address (max_bindings_per_address).",
                     {{"reason", std::string(reason)}});
}

core::Counter& binding_eviction(core::MetricsRegistry& m, std::string_view reason) {
    return m.counter("hearth_moonshare_bindings_evicted_total",
                     "Moonshare user id bindings ended to make room for a new user id, by "
                     "reason: address_cap (max_bindings_per_address: one of the address's own), "
                     "full (max_bindings: one that never authenticated).",
                     {{"reason", std::string(reason)}});
}

core::Counter& too_slow(core::MetricsRegistry& m, std::string_view direction) {
    return m.counter("hearth_moonshare_transfers_too_slow_total",
                     "Moonshare file transfers ended for going slower than "
                     "min_transfer_bytes_per_s, by direction: upload (the sender's bytes), "
                     "download (a player reading a file sent to it).",
                     {{"direction", std::string(direction)}});
}

// The reasons of hearth_moonshare_refused_total (docs/protocol/moonshare.md, "Metrics").
constexpr const char* kRefusalReasons[] = {
    "missing_token",        // session_auth without a token
    "invalid_token",        // session_auth: unknown, expired or revoked, or another user id's
    "not_token_holder",     // session_auth: a valid token that the user id's holder does not hold
    "server_full",          // session_auth: player_limit reached on the instance
    "players_per_address",  // session_auth: max_players_per_address from the client's address
    "uploads_per_address",  // file_send_begin: max_uploads_per_address in progress
    "recipient_quota",      // a file past the recipient's stored files or bytes
    "sender_quota",         // a file past the sender address's stored files or bytes
    "list_before_auth",     // list_online before session_auth: an empty list
    "unknown_recipient",    // a file for a user id that nobody holds
    "operator_token_missing",  // gateway listings and logs, auth /sessions: no bearer token
    "operator_token_invalid",  // ... a token that is not the admin token nor a valid token
    "not_operator",            // ... a valid token without the admin right
    "operator_unavailable",    // ... the account store could not check the token
};

}  // namespace

// ---------------------------------------------------------------------------------------------

void MoonshareConfig::validate(core::ConfigErrors& errors) const {
    auto check = [&errors](std::string_view key, const std::string& value) {
        std::string host;
        std::uint16_t port = 0;
        if (!core::parse_host_port(value, host, port)) {
            errors.push_back("moonshare." + std::string(key) + ": \"" + value +
                             "\" is not host:port");
        }
    };
    check("token_listen", token_listen);
    check("auth_listen", auth_listen);
    check("gateway_listen", gateway_listen);
    if (player_listen.empty() || player_listen.size() > kInstanceNames.size()) {
        errors.push_back("moonshare.player_listen: give 1 to " +
                         std::to_string(kInstanceNames.size()) + " addresses");
    }
    for (const auto& p : player_listen) {
        check("player_listen", p);
    }
}

std::string_view instance_name(std::size_t index) {
    return index < kInstanceNames.size() ? kInstanceNames[index] : "Instance";
}

WsRouteSettings player_route_settings(const MoonshareConfig& c, const core::WebSocketConfig& ws) {
    WsRouteSettings s = core::ws_route_settings(ws);
    s.compression = false;  // the plugin's ClientWebSocket never negotiates permessage-deflate
    // Text messages are small and come whole; binary ones (files) come in parts as they arrive
    // (on_binary_part), never whole in memory, and no message may be larger than a file may be.
    s.max_message_bytes = kMaxTextBytes;
    s.stream_binary = true;
    s.max_streamed_message_bytes = static_cast<std::uint64_t>(c.max_file_size_bytes);
    // No byte rate: a file goes to disk at the disk's pace and then to one recipient, and a
    // player may send several of up to max_file_size_bytes in a row at the speed of its link.
    // Uploads are bounded by the file size, upload slots, storage quotas and the upload timeout;
    // text messages by their size and the message rate.
    s.max_bytes_per_s = 0;
    return s;
}

// ---------------------------------------------------------------------------------------------

/// Everything the front-end's connections share. Thread-safe: `mutex` guards the registry and
/// the session list, held for bookkeeping only, never across a send or a disk operation.
struct MoonshareFrontend::Shared : std::enable_shared_from_this<Shared> {
    Shared(core::Runtime& r, auth::AccountService& a, core::MetricsRegistry& m, core::EventBus& e,
           const MoonshareConfig& c, const std::string& data_dir)
        : runtime(r),
          shards(r),
          accounts(a),
          metrics(m),
          events(e),
          config(c),
          started_steady(std::chrono::steady_clock::now()),
          started_wall(SysClock::now()),
          files(fs::path(data_dir) / "moonshare",
                FileStore::Limits{static_cast<std::uint64_t>(c.max_stored_bytes_per_user),
                                  static_cast<std::uint64_t>(c.max_stored_bytes_total),
                                  std::chrono::seconds(c.file_ttl_s),
                                  static_cast<std::uint64_t>(c.max_stored_files_per_user),
                                  static_cast<std::uint64_t>(c.max_stored_bytes_per_sender),
                                  static_cast<std::uint64_t>(c.max_stored_files_per_sender)}),
          bindings(Bindings::Limits{static_cast<std::size_t>(c.max_bindings),
                                    std::chrono::seconds(c.binding_ttl_s), c.renew_from_same_ip,
                                    static_cast<std::size_t>(c.max_bindings_per_address)}),
          bindings_path(fs::path(data_dir) / "moonshare" / "bindings.json"),
          tokens_issued(m.counter("hearth_moonshare_tokens_issued_total",
                                  "Moonshare guest tokens issued (token endpoint and /auth).")),
          tokens_rate_limited(token_refusal(m, "rate_limited")),
          tokens_held(token_refusal(m, "user_id_held")),
          tokens_full(token_refusal(m, "too_many_user_ids")),
          tokens_address_full(token_refusal(m, "too_many_user_ids_from_address")),
          bindings_evicted_address(binding_eviction(m, "address_cap")),
          bindings_evicted_full(binding_eviction(m, "full")),
          paced_evicted(m.counter("hearth_moonshare_paced_addresses_evicted_total",
                                  "Addresses forgotten by the Moonshare token pace "
                                  "(max_paced_addresses) to make room for a new one.")),
          uploads_too_slow(too_slow(m, "upload")),
          downloads_too_slow(too_slow(m, "download")),
          files_relayed(m.counter("hearth_moonshare_files_total",
                                  "Moonshare file transfers, by outcome.",
                                  {{"outcome", "relayed"}})),
          files_stored(m.counter("hearth_moonshare_files_total",
                                 "Moonshare file transfers, by outcome.", {{"outcome", "stored"}})),
          files_delivered(m.counter("hearth_moonshare_files_total",
                                    "Moonshare file transfers, by outcome.",
                                    {{"outcome", "delivered_later"}})),
          files_failed(m.counter("hearth_moonshare_files_total",
                                 "Moonshare file transfers, by outcome.", {{"outcome", "failed"}})),
          files_expired(m.counter("hearth_moonshare_files_total",
                                  "Moonshare file transfers, by outcome.",
                                  {{"outcome", "expired"}})),
          wrong_subject(m.counter("hearth_auth_refusals_total",
                                  "Tokens refused at a door (front-end, operator API, log "
                                  "stream), by door and reason.",
                                  {{"door", "moonshare"}, {"reason", "wrong_subject"}})),
          ignored(m.counter("hearth_moonshare_ignored_messages_total",
                            "Moonshare player messages ignored (not JSON, unknown, before "
                            "authentication, binary without a transfer, held past the bound).")),
          buffered(m.gauge("hearth_moonshare_buffered_bytes",
                           "File bytes the Moonshare front-end holds in memory now (upload "
                           "chunks waiting for disk, relay chunks read from disk).")),
          buffered_max(m.gauge("hearth_moonshare_buffered_bytes_max",
                               "The most file bytes the Moonshare front-end held in memory at "
                               "once since it started.")),
          uploads(m.gauge("hearth_moonshare_uploads", "Moonshare file uploads in progress.")),
          stored_bytes(m.gauge("hearth_moonshare_stored_bytes",
                               "Bytes of Moonshare files stored for offline players.")),
          bindings_count(m.gauge("hearth_moonshare_bindings",
                                 "Moonshare user ids bound to the client that holds them.")),
          bindings_bytes(m.gauge("hearth_moonshare_binding_bytes",
                                 "Bytes the Moonshare user id bindings take (user ids, "
                                 "addresses, token digests, bookkeeping).")) {
        for (const auto* reason : kRefusalReasons) {
            (void)refusal_counter(reason);  // every reason shows, at 0, from the start
        }
        load_bindings();
        per_instance.assign(c.player_listen.size(), 0);
        for (std::size_t i = 0; i < per_instance.size(); ++i) {
            online.push_back(&m.gauge("hearth_moonshare_players",
                                      "Authenticated Moonshare players, by instance.",
                                      {{"instance", std::string(instance_name(i))}}));
        }
        stored_bytes.set(static_cast<std::int64_t>(files.stored_bytes()));
    }

    // ---- memory accounting ----------------------------------------------------------------------

    void hold(std::size_t n) {
        buffered.add(static_cast<std::int64_t>(n));
        const auto now = buffered.value();
        if (now > buffered_max.value()) {
            buffered_max.set(now);  // racy by a chunk at most: a high-water mark, not a bound
        }
    }
    void unhold(std::size_t n) { buffered.sub(static_cast<std::int64_t>(n)); }

    // ---- the registry of authenticated players --------------------------------------------------

    struct Player {
        std::string user;
        std::string address;  // the client's address key, for max_players_per_address
        std::size_t instance = 0;
        SysClock::time_point since{};
        std::uint64_t active = 0;  // activity sequence: larger is more recent
        ConnectionHandle connection;
    };

    enum class Admit : std::uint8_t { kAdmitted, kFull, kAddressFull };

    Admit admit(ConnectionId id, const std::string& user, const std::string& address,
                std::size_t instance, ConnectionHandle handle) {
        {
            std::lock_guard lock(mutex);
            if (per_instance[instance] >= static_cast<std::size_t>(config.player_limit)) {
                return Admit::kFull;
            }
            auto& from_address = players_per_address[address];
            if (config.max_players_per_address > 0 &&
                from_address >= static_cast<std::size_t>(config.max_players_per_address)) {
                return Admit::kAddressFull;
            }
            ++from_address;
            ++per_instance[instance];
            players[id] =
                Player{user, address, instance, SysClock::now(), ++activity, std::move(handle)};
            by_user[user].push_back(id);
        }
        online[instance]->add(1);
        status_dirty = true;
        return Admit::kAdmitted;
    }

    /// Forgets a connection; when it was its user's last, the user's peers are told.
    void remove(ConnectionId id) {
        std::vector<ConnectionHandle> peers_to_tell;
        std::string user;
        {
            std::lock_guard lock(mutex);
            auto it = players.find(id);
            if (it == players.end()) {
                return;
            }
            user = it->second.user;
            --per_instance[it->second.instance];
            online[it->second.instance]->sub(1);
            if (auto a = players_per_address.find(it->second.address);
                a != players_per_address.end() && --a->second == 0) {
                players_per_address.erase(a);
            }
            players.erase(it);
            auto& ids = by_user[user];
            std::erase(ids, id);
            if (!ids.empty()) {
                status_dirty = true;
                return;  // the user is still here on another connection
            }
            by_user.erase(user);
            pending_requests.erase(user);
            if (auto l = links.find(user); l != links.end()) {
                for (const auto& peer : l->second) {
                    links[peer].erase(user);
                    for (auto c : connections_locked(peer)) {
                        peers_to_tell.push_back(std::move(c));
                    }
                }
                links.erase(l);
            }
        }
        bindings.touch(user, SysClock::now());  // the binding's ttl counts from the last leave
        status_dirty = true;
        if (!peers_to_tell.empty()) {
            auto msg = make_text(Obj().str("type", "disconnected").str("userId", user).done());
            for (const auto& h : peers_to_tell) {
                if (auto c = h.lock()) {
                    (void)c->send(msg);
                }
            }
        }
        broadcast_user_list();
    }

    // ---- upload slots ---------------------------------------------------------------------------

    enum class Slot : std::uint8_t { kTaken, kBusy, kAddressBusy };

    /// Takes an upload slot for a client at `address` (its key): kBusy past
    /// max_concurrent_uploads, kAddressBusy past max_uploads_per_address.
    Slot take_upload_slot(const std::string& address) {
        {
            std::lock_guard lock(mutex);
            if (active_uploads >= static_cast<std::size_t>(config.max_concurrent_uploads)) {
                return Slot::kBusy;
            }
            auto& from_address = uploads_per_address[address];
            if (config.max_uploads_per_address > 0 &&
                from_address >= static_cast<std::size_t>(config.max_uploads_per_address)) {
                return Slot::kAddressBusy;
            }
            ++from_address;
            ++active_uploads;
        }
        uploads.add(1);
        return Slot::kTaken;
    }

    void give_upload_slot(const std::string& address) {
        {
            std::lock_guard lock(mutex);
            active_uploads -= std::min<std::size_t>(active_uploads, 1);
            if (auto a = uploads_per_address.find(address);
                a != uploads_per_address.end() && --a->second == 0) {
                uploads_per_address.erase(a);
            }
        }
        uploads.sub(1);
    }

    void touch(ConnectionId id) {
        std::lock_guard lock(mutex);
        if (auto it = players.find(id); it != players.end()) {
            it->second.active = ++activity;
        }
    }

    /// Under `mutex`.
    std::vector<ConnectionHandle> connections_locked(const std::string& user) const {
        std::vector<ConnectionHandle> out;
        if (auto it = by_user.find(user); it != by_user.end()) {
            for (auto id : it->second) {
                out.push_back(players.at(id).connection);
            }
        }
        return out;
    }

    std::vector<ConnectionHandle> connections_of(const std::string& user) const {
        std::lock_guard lock(mutex);
        return connections_locked(user);
    }

    /// The user's most recently authenticated connection, if any.
    ConnectionPtr latest_connection(const std::string& user) const {
        std::lock_guard lock(mutex);
        if (auto it = by_user.find(user); it != by_user.end() && !it->second.empty()) {
            return players.at(it->second.back()).connection.lock();
        }
        return nullptr;
    }

    bool is_online(const std::string& user) const {
        std::lock_guard lock(mutex);
        return by_user.count(user) > 0;
    }

    /// Distinct authenticated users, most recently active first.
    std::vector<std::string> users_by_activity() const {
        std::vector<std::pair<std::uint64_t, std::string>> by;
        {
            std::lock_guard lock(mutex);
            std::unordered_map<std::string, std::uint64_t> latest;
            for (const auto& [id, p] : players) {
                auto& a = latest[p.user];
                a = std::max(a, p.active);
            }
            by.reserve(latest.size());
            for (auto& [u, a] : latest) {
                by.emplace_back(a, u);
            }
        }
        std::sort(by.begin(), by.end(),
                  [](const auto& x, const auto& y) { return x.first > y.first; });
        std::vector<std::string> out;
        out.reserve(by.size());
        for (auto& [a, u] : by) {
            out.push_back(std::move(u));
        }
        return out;
    }

    std::string online_text() const {
        return string_array_within("ONLINE:", users_by_activity(), kClientBuffer);
    }

    std::string user_list_text() const {
        constexpr std::string_view kHead = R"({"type":"user_list_update","users":[)";
        std::string out(kHead);
        bool first = true;
        for (const auto& u : users_by_activity()) {
            std::string entry = Obj().str("userId", u).str("userName", u).done();
            if (out.size() + (first ? 0 : 1) + entry.size() + 2 > kClientBuffer) {
                break;
            }
            if (!first) {
                out += ',';
            }
            first = false;
            out += entry;
        }
        out += "]}";
        return out;
    }

    void broadcast_user_list() {
        auto payload = make_text(user_list_text());
        std::vector<ConnectionHandle> all;
        {
            std::lock_guard lock(mutex);
            all.reserve(players.size());
            for (const auto& [id, p] : players) {
                all.push_back(p.connection);
            }
        }
        for (const auto& h : all) {
            if (auto c = h.lock()) {
                (void)c->send(payload);
            }
        }
    }

    void send_to_user(const std::string& user, const SharedPayload& payload) {
        for (const auto& h : connections_of(user)) {
            if (auto c = h.lock()) {
                (void)c->send(payload);
            }
        }
    }

    // ---- connect requests -----------------------------------------------------------------------

    /// U asks V; false when V is offline or has too many requests waiting (rejected at once).
    bool request(const std::string& from, const std::string& to) {
        {
            std::lock_guard lock(mutex);
            if (!by_user.count(to)) {
                return false;
            }
            auto& pending = pending_requests[to];
            if (pending.size() >= kMaxPendingRequests && !pending.count(from)) {
                return false;
            }
            pending.insert(from);
        }
        send_to_user(
            to, make_text(Obj().str("type", "connect_request").str("fromUserId", from).done()));
        return true;
    }

    /// V answers U's request; false when there was none.
    bool answer(const std::string& answerer, const std::string& requester, bool accept) {
        {
            std::lock_guard lock(mutex);
            auto it = pending_requests.find(answerer);
            if (it == pending_requests.end() || it->second.erase(requester) == 0) {
                return false;
            }
            if (it->second.empty()) {
                pending_requests.erase(it);
            }
            if (accept && by_user.count(requester)) {
                links[answerer].insert(requester);
                links[requester].insert(answerer);
            }
        }
        send_to_user(requester,
                     make_text(Obj()
                                   .str("type", accept ? "connect_accepted" : "connect_rejected")
                                   .str("withUserId", answerer)
                                   .done()));
        return true;
    }

    // ---- status ---------------------------------------------------------------------------------

    std::int64_t uptime_s() const {
        return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                started_steady)
            .count();
    }

    std::string server_info() const {
        std::vector<std::size_t> counts;
        {
            std::lock_guard lock(mutex);
            counts = per_instance;
        }
        std::size_t total = 0;
        std::string servers = "[";
        for (std::size_t i = 0; i < counts.size(); ++i) {
            total += counts[i];
            if (i > 0) {
                servers += ',';
            }
            servers += Obj()
                           .str("name", instance_name(i))
                           .num("players_online", static_cast<std::int64_t>(counts[i]))
                           .num("max_players", config.player_limit)
                           .str("server_version", util::kVersion)
                           .num("uptime_seconds", uptime_s())
                           .str("status", "on")
                           .done();
        }
        servers += ']';
        return Obj()
            .num("total_players_online", static_cast<std::int64_t>(total))
            .num("total_max_players",
                 config.player_limit * static_cast<std::int64_t>(counts.size()))
            .raw("servers", servers)
            .done();
    }

    std::size_t players_online() const {
        std::lock_guard lock(mutex);
        return players.size();
    }

    std::string players_json() const {
        std::vector<Player> copy;
        {
            std::lock_guard lock(mutex);
            for (const auto& [id, p] : players) {
                copy.push_back(p);
            }
        }
        std::sort(copy.begin(), copy.end(),
                  [](const Player& a, const Player& b) { return a.since < b.since; });
        std::string out = "[";
        for (std::size_t i = 0; i < copy.size(); ++i) {
            out += i ? "," : "";
            out += Obj()
                       .str("userId", copy[i].user)
                       .str("instance", instance_name(copy[i].instance))
                       .str("since", iso_time(copy[i].since))
                       .done();
        }
        return out + "]";
    }

    // ---- issued sessions, for the listings
    // -------------------------------------------------------

    struct Session {
        std::string user;
        std::string fingerprint;  // "sha256:" + 12 hex digits of the token's SHA-256
        SysClock::time_point created;
        SysClock::time_point expires;
        // No address: Hearth publishes no client's IP address (ClientAddress is "").
    };

    void add_session(Session s) {
        std::lock_guard lock(mutex);
        prune_sessions_locked(SysClock::now());
        if (sessions.size() >= kMaxListedSessions) {
            sessions.pop_front();
        }
        sessions.push_back(std::move(s));
    }

    void prune_sessions_locked(SysClock::time_point now) {
        // Every session has the same lifetime, so they expire in the order they were added.
        while (!sessions.empty() && sessions.front().expires <= now) {
            sessions.pop_front();
        }
    }

    /// `full`: the auth server's form (with ClientAddress, always empty, and IsActive), else the
    /// gateway's.
    std::string sessions_json(bool full) {
        std::vector<Session> copy;
        const auto now = SysClock::now();
        {
            std::lock_guard lock(mutex);
            prune_sessions_locked(now);
            copy.assign(sessions.begin(), sessions.end());
        }
        std::string out = "[";
        for (std::size_t i = 0; i < copy.size(); ++i) {
            out += i ? "," : "";
            Obj o;
            o.str("UserId", copy[i].user)
                .str("SessionToken", copy[i].fingerprint)
                .str("CreatedAt", iso_time(copy[i].created));
            if (full) {
                o.str("ClientAddress", "").boolean("IsActive", copy[i].expires > now);
            }
            out += std::move(o).done();
        }
        return out + "]";
    }

    /// Counts a token request from `peer`'s address (IPv6 by /64); false past
    /// token_requests_per_ip_per_min in the current minute. At most max_paced_addresses are
    /// tracked: a new address takes the place of the least recently seen, among those that never
    /// authenticated a player if there is one. Refusing newcomers instead would let whoever fills
    /// the table (an IPv6 client rotating prefixes, a botnet) lock every new player out; the cost
    /// is that a client cycling through more prefixes than the table holds gets a fresh count
    /// each time it comes back (max_bindings still bounds the user ids it can hold).
    bool allow_token_request(const std::string& peer) {
        const auto limit = static_cast<std::uint64_t>(config.token_requests_per_ip_per_min);
        if (limit == 0) {
            return true;
        }
        const auto now = std::chrono::steady_clock::now();
        auto key = address_key_of(peer);
        std::lock_guard lock(rate_mutex);
        auto it = token_windows.find(key);
        if (it == token_windows.end()) {
            while (!token_windows.empty() &&
                   token_windows.size() >= static_cast<std::size_t>(config.max_paced_addresses)) {
                auto& from = paced_fresh.empty() ? paced_known : paced_fresh;
                token_windows.erase(from.front());
                from.pop_front();
                paced_evicted.inc();
            }
            paced_fresh.push_back(key);
            it = token_windows.emplace(std::move(key), TokenWindow{now, 0, false, {}}).first;
            it->second.lru = std::prev(paced_fresh.end());
        } else {
            auto& in = it->second.authenticated ? paced_known : paced_fresh;
            in.splice(in.end(), in, it->second.lru);  // the most recently seen
        }
        auto& w = it->second;
        if (now - w.start >= std::chrono::minutes(1)) {
            w.start = now;
            w.count = 0;
        }
        if (w.count >= limit) {
            tokens_rate_limited.inc();
            if (w.count++ == limit) {  // one line per address and minute, however many follow
                if (auto more = refusal_line()) {
                    log()->info("token requests from one address refused: over {} this minute{}",
                                limit, *more);
                }
            }
            return false;
        }
        ++w.count;
        return true;
    }

    /// A player from `peer` authenticated: its address is kept longest by the token pace.
    void paced_address_authenticated(const std::string& peer) {
        const auto key = address_key_of(peer);
        std::lock_guard lock(rate_mutex);
        auto it = token_windows.find(key);
        if (it == token_windows.end() || it->second.authenticated) {
            return;
        }
        paced_known.splice(paced_known.end(), paced_fresh, it->second.lru);
        it->second.authenticated = true;
    }

    /// Forgets the pace of addresses whose minute ended (they hold no state worth keeping).
    void prune_paced(std::chrono::steady_clock::time_point now) {
        std::lock_guard lock(rate_mutex);
        for (auto it = token_windows.begin(); it != token_windows.end();) {
            if (now - it->second.start >= std::chrono::minutes(1)) {
                (it->second.authenticated ? paced_known : paced_fresh).erase(it->second.lru);
                it = token_windows.erase(it);
            } else {
                ++it;
            }
        }
    }

    enum class Issued : std::uint8_t { kToken, kHeld, kFull, kUnavailable };

    /// A token request for `user` from `peer` (after the pace check): `proof` is the bearer token
    /// the request showed ("" when none). The token is issued when the binding allows it
    /// (Bindings::request); `done` gets the outcome and, with kToken, the token, on a store thread
    /// or the calling one.
    void request_token(std::string user, std::string peer, std::string proof,
                       std::function<void(Issued, std::optional<std::string>)> done) {
        if (proof.empty()) {
            decide_token(std::move(user), std::move(peer), std::nullopt, false, std::move(done));
            return;
        }
        // The proof must be a valid token of this user id (not expired, not revoked): the store
        // says so; the binding then says whether it is one of the holder's.
        accounts.validate(proof, [self = shared_from_this(), user = std::move(user),
                                  peer = std::move(peer), digest = auth::token_digest(proof),
                                  done = std::move(done)](Result<auth::Principal> p) mutable {
            const bool valid = p && p->kind == auth::TokenKind::kGuest &&
                               p->username == auth::guest_account_name(kRealm) &&
                               p->subject == user;
            self->decide_token(std::move(user), std::move(peer),
                               valid ? std::optional<std::string>(std::move(digest)) : std::nullopt,
                               true, std::move(done));
        });
    }

    void decide_token(std::string user, std::string peer, std::optional<std::string> proof,
                      bool showed_proof,
                      std::function<void(Issued, std::optional<std::string>)> done) {
        const auto ip = ip_of(peer);
        Bindings::Eviction evicted = Bindings::Eviction::kNone;
        // Lock order: the bindings' mutex, then the registry's or the file store's (in_use).
        const auto decision = bindings.request(
            user, ip, proof, SysClock::now(),
            [this](const std::string& u) { return is_online(u) || files.has_waiting(u); },
            &evicted);
        if (evicted == Bindings::Eviction::kAddressCap) {
            bindings_evicted_address.inc();
            log()->debug(
                "a user id binding ended for a new one from the same address "
                "(max_bindings_per_address)");
        } else if (evicted == Bindings::Eviction::kFull) {
            bindings_evicted_full.inc();
            log()->info(
                "a user id binding that never authenticated ended for a new one "
                "({} user ids are bound: max_bindings)",
                config.max_bindings);
        }
        if (decision == Bindings::Decision::kAddressFull) {
            tokens_address_full.inc();
            if (auto more = refusal_line()) {
                log()->info(
                    "token for user id {} refused: {} user ids in use from its address "
                    "(max_bindings_per_address){}",
                    user, config.max_bindings_per_address, *more);
            }
            done(Issued::kFull, std::nullopt);
            return;
        }
        if (decision == Bindings::Decision::kHeld) {
            tokens_held.inc();
            if (auto more = refusal_line()) {
                log()->info("token for user id {} refused: held by another client{}{}", user,
                            showed_proof ? " (the token shown is not the holder's)" : "", *more);
            }
            done(Issued::kHeld, std::nullopt);
            return;
        }
        if (decision == Bindings::Decision::kFull) {
            tokens_full.inc();
            if (auto more = refusal_line()) {
                log()->warn("token for user id {} refused: {} user ids are bound (max_bindings){}",
                            user, config.max_bindings, *more);
            }
            done(Issued::kFull, std::nullopt);
            return;
        }
        issue(std::move(user), ip, [done = std::move(done)](std::optional<std::string> token) {
            done(token ? Issued::kToken : Issued::kUnavailable, std::move(token));
        });
    }

    /// Issues a token for `user` to `ip`, which Bindings::request granted; `done` gets the token
    /// or nothing, on a store thread.
    void issue(std::string user, std::string ip,
               std::function<void(std::optional<std::string>)> done) {
        const auto ttl = std::chrono::seconds(config.token_ttl_s);
        accounts.issue_guest_token(
            std::string(kRealm), user, ttl, auth::GuestTokenFormat::kHex128,
            [self = shared_from_this(), user, ip = std::move(ip),
             done = std::move(done)](Result<auth::GuestToken> r) {
                if (!r) {
                    self->bindings.failed(user);
                    log()->warn("token for {} not issued: {}", user, r.error().message());
                    done(std::nullopt);
                    return;
                }
                const auto expires = r->record.expires_at.value_or(SysClock::time_point::max());
                self->bindings.issued(user, ip, r->record.digest, expires, SysClock::now());
                self->tokens_issued.inc();
                Session s;
                s.user = user;
                s.fingerprint = "sha256:" + r->record.digest.substr(0, 12);
                s.created = r->record.created_at;
                s.expires = expires;
                self->add_session(std::move(s));
                done(std::move(r->token));
            });
    }

    // ---- refusals and the operator check --------------------------------------------------------

    core::Counter& refusal_counter(std::string_view reason) {
        return metrics.counter("hearth_moonshare_refused_total",
                               "Moonshare requests refused (token requests: "
                               "hearth_moonshare_tokens_refused_total), by reason.",
                               {{"reason", std::string(reason)}});
    }
    void refused(std::string_view reason) { refusal_counter(reason).inc(); }

    /// Whether a line about a refusal a client triggered may be written: clients trigger them at
    /// will (from as many addresses as they hold), so they share one budget (util::LineThrottle)
    /// and the counters keep the full count. Empty: leave the line out; otherwise a suffix for it
    /// that says how many were left out before.
    std::optional<std::string> refusal_line() {
        const auto admitted = refusal_lines.admit();
        if (!admitted) {
            return std::nullopt;
        }
        return *admitted == 0 ? std::string()
                              : fmt::format(" ({} refusal lines left out before)", *admitted);
    }

    /// Runs `then` when `req` carries the operator's token (the admin token, or a token of an
    /// admin account: auth::OperatorAuth); otherwise answers the gateway's way (401, 403 or 503
    /// with {"error":"..."}), counts and logs the refusal. `then` runs on the calling thread or a
    /// store thread.
    void operator_only(const HttpRequest& req, std::string_view what, HttpResponder res,
                       std::function<void(HttpResponder)> then) {
        if (operators == nullptr) {  // cannot happen: add_routes sets it before any route runs
            res.respond(HttpResponse::json(503, R"({"error":"Service unavailable"})"));
            return;
        }
        operators->authorize(req,
                             [self = shared_from_this(), what = std::string(what),
                              showed = !auth::bearer_token(req).empty(), res = std::move(res),
                              then = std::move(then)](auth::OperatorAuth::Outcome outcome) mutable {
                                 const auto* refusal = std::get_if<HttpResponse>(&outcome);
                                 if (refusal == nullptr) {
                                     then(std::move(res));
                                     return;
                                 }
                                 res.respond(self->operator_refusal(*refusal, what, showed));
                             });
    }

    /// The gateway's form of an operator refusal; counted and logged.
    HttpResponse operator_refusal(const HttpResponse& refusal, std::string_view what, bool showed) {
        std::string_view reason = "operator_unavailable";
        std::string body = R"({"error":"Service unavailable"})";
        if (refusal.status == 401) {
            reason = showed ? "operator_token_invalid" : "operator_token_missing";
            body = R"({"error":"Unauthorized"})";
        } else if (refusal.status == 403) {
            reason = "not_operator";
            body = R"({"error":"Forbidden"})";
        }
        refused(reason);
        if (auto more = refusal_line()) {
            log()->info("{} refused: {}{}", what, reason, *more);
        }
        HttpResponse r = HttpResponse::json(refusal.status, std::move(body));
        r.headers = refusal.headers;  // WWW-Authenticate: Bearer on a 401
        return r;
    }

    // ---- bindings: persistence and expiry -------------------------------------------------------

    /// Blocking (construction). Loads the bindings saved by the last run, then binds the
    /// recipients of stored files that nobody holds (files stored before bindings existed, or in
    /// the second before a crash) to nobody, so that no one can take them.
    void load_bindings() {
        const auto now = SysClock::now();
        std::error_code ec;
        if (fs::exists(bindings_path, ec)) {
            std::ifstream in(bindings_path, std::ios::binary);
            const std::string text((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
            if (const auto n = bindings.load(text, now)) {
                log()->info("{} user id binding(s) loaded", n->loaded);
                if (n->dropped > 0) {
                    // Their user ids are free again; files waiting for them stay held (below).
                    log()->warn("{} user id binding(s) of {} not loaded: past max_bindings ({})",
                                n->dropped, bindings_path.string(), config.max_bindings);
                }
            } else {
                // Every session must then get a new token (the plugin does at reconnect); a user
                // id with stored files stays held by nobody (below).
                log()->error("{} is not a bindings file: ignored; every user id is free again",
                             bindings_path.string());
            }
        }
        for (const auto& user : files.recipients()) {
            bindings.hold_unclaimed(user, now);
        }
        saved_version = bindings.version();
        saved_touches = bindings.touches();
        update_binding_gauges();
    }

    void update_binding_gauges() {
        bindings_count.set(static_cast<std::int64_t>(bindings.size()));
        bindings_bytes.set(static_cast<std::int64_t>(bindings.bytes()));
    }

    /// Whether the bindings on disk are behind: a change (always), or only times of use and
    /// `touches_too` (they are written lazily).
    bool bindings_behind(bool touches_too) const {
        return bindings.version() != saved_version ||
               (touches_too && bindings.touches() != saved_touches);
    }

    /// Blocking. Writes the bindings when they changed since the last write (`touches_too`: also
    /// when only times of use did), durably (write_durably: a temporary file, synced, renamed,
    /// the directory synced), so that a crash leaves the old file or the new one. One writer at
    /// a time.
    void save_bindings(bool touches_too) {
        std::lock_guard lock(save_mutex);
        if (!bindings_behind(touches_too)) {
            return;
        }
        auto snap = bindings.snapshot();
        std::string error;
        if (!write_durably(bindings_path, snap.text, error)) {
            log()->error("cannot save the user id bindings: {}", error);
            return;
        }
        saved_version = snap.version;
        saved_touches = snap.touches;
        last_bindings_save = std::chrono::steady_clock::now();
    }

    /// Ends the bindings whose time is up, except those of users online or with files waiting.
    void sweep_bindings() {
        const auto now = SysClock::now();
        std::size_t ended = 0;
        for (const auto& user : bindings.due(now)) {
            if (is_online(user) || files.has_waiting(user)) {
                continue;
            }
            ended += bindings.end_if_due(user, now) ? 1 : 0;
        }
        if (ended > 0) {
            log()->debug("{} user id binding(s) ended", ended);
        }
        update_binding_gauges();
    }

    // ---- gateway /ws subscribers ----------------------------------------------------------------

    std::string server_info_push() const {
        return Obj()
            .str("type", "server_info")
            .str("timestamp", iso_time(SysClock::now()))
            .raw("data", server_info())
            .done();
    }

    void push_status() {
        std::vector<ConnectionHandle> subs;
        {
            std::lock_guard lock(mutex);
            for (const auto& [id, h] : gateway_subscribers) {
                subs.push_back(h);
            }
        }
        if (subs.empty()) {
            return;
        }
        auto payload = make_text(server_info_push());
        for (const auto& h : subs) {
            if (auto c = h.lock()) {
                (void)c->send(payload);
            }
        }
    }

    // ---- housekeeping ---------------------------------------------------------------------------

    void tick() {
        if (status_dirty.exchange(false)) {
            push_status();
        }
        if (++ticks % 60 == 1) {
            {
                std::lock_guard lock(mutex);
                prune_sessions_locked(SysClock::now());
            }
            prune_paced(std::chrono::steady_clock::now());
            boost::asio::post(runtime.blocking_pool(), [self = shared_from_this()] {
                const auto n = self->files.expire(SysClock::now());
                if (n > 0) {
                    self->files_expired.inc(n);
                    log()->info("{} stored file(s) expired", n);
                }
                self->stored_bytes.set(static_cast<std::int64_t>(self->files.stored_bytes()));
            });
        }
        sweep_bindings();
        // A change is saved within a second, times of use alone within kLazySave: every
        // authentication and leave bumps one, and rewriting the whole file each second for them
        // would cost far more than losing a minute of them to a crash (a binding ends that much
        // earlier). On the pool; one that failed is tried again at the next tick.
        constexpr auto kLazySave = std::chrono::seconds(60);
        const bool touches_due =
            std::chrono::steady_clock::now() - last_bindings_save.load() >= kLazySave;
        if (bindings_behind(touches_due) && !saving.exchange(true)) {
            boost::asio::post(runtime.blocking_pool(), [self = shared_from_this(), touches_due] {
                self->save_bindings(touches_due);
                self->saving = false;
            });
        }
    }

    core::Runtime& runtime;  // its blocking pool: the disk
    core::ShardSet shards;
    auth::AccountService& accounts;
    core::MetricsRegistry& metrics;
    core::EventBus& events;
    const MoonshareConfig config;
    const std::chrono::steady_clock::time_point started_steady;
    const SysClock::time_point started_wall;
    FileStore files;
    std::function<void(MoonshareFrontend::DiskStep)> disk_hook;  // set_disk_hook (tests)

    void before_disk(MoonshareFrontend::DiskStep step) const {
        if (disk_hook) {
            disk_hook(step);
        }
    }

    Bindings bindings;
    const fs::path bindings_path;
    const auth::OperatorAuth* operators = nullptr;  // set by add_routes, before any route runs
    std::mutex save_mutex;                          // one save_bindings at a time
    std::atomic<std::uint64_t> saved_version{0};    // the bindings' version on disk
    std::atomic<std::uint64_t> saved_touches{0};    // and their times of use
    std::atomic<std::chrono::steady_clock::time_point> last_bindings_save{
        std::chrono::steady_clock::now()};
    std::atomic<bool> saving{false};  // the ticker posted a save, not done yet

    core::Counter& tokens_issued;
    core::Counter& tokens_rate_limited;
    core::Counter& tokens_held;
    core::Counter& tokens_full;
    core::Counter& tokens_address_full;
    core::Counter& bindings_evicted_address;
    core::Counter& bindings_evicted_full;
    core::Counter& paced_evicted;
    util::LineThrottle refusal_lines{util::TokenRate{.per_s = 20, .depth = 100}};
    core::Counter& uploads_too_slow;
    core::Counter& downloads_too_slow;
    core::Counter& files_relayed;
    core::Counter& files_stored;
    core::Counter& files_delivered;
    core::Counter& files_failed;
    core::Counter& files_expired;
    core::Counter& wrong_subject;  // a valid guest token presented for another user id
    core::Counter& ignored;
    core::Gauge& buffered;
    core::Gauge& buffered_max;
    core::Gauge& uploads;
    core::Gauge& stored_bytes;
    core::Gauge& bindings_count;
    core::Gauge& bindings_bytes;
    std::vector<core::Gauge*> online;

    struct TokenWindow {
        std::chrono::steady_clock::time_point start;
        std::uint64_t count = 0;
        bool authenticated = false;            // a player authenticated from the address
        std::list<std::string>::iterator lru;  // its place in paced_fresh or paced_known
    };
    std::mutex rate_mutex;
    std::unordered_map<std::string, TokenWindow> token_windows;  // by address key
    std::list<std::string> paced_fresh;  // never authenticated, least recently seen first
    std::list<std::string> paced_known;  // authenticated a player, least recently seen first

    mutable std::mutex mutex;
    std::unordered_map<ConnectionId, Player> players;
    std::unordered_map<std::string, std::vector<ConnectionId>> by_user;  // in admission order
    std::vector<std::size_t> per_instance;
    std::size_t active_uploads = 0;
    std::unordered_map<std::string, std::size_t> players_per_address;  // by address key, non-zero
    std::unordered_map<std::string, std::size_t> uploads_per_address;  // likewise
    std::unordered_map<std::string, std::set<std::string>> links;      // accepted pairs
    std::unordered_map<std::string, std::set<std::string>> pending_requests;  // target -> from
    std::uint64_t activity = 0;
    std::deque<Session> sessions;
    std::unordered_map<ConnectionId, ConnectionHandle> gateway_subscribers;

    std::atomic<bool> status_dirty{true};
    std::uint64_t ticks = 0;  // the ticker's shard
};

namespace {

using Shared = MoonshareFrontend::Shared;

// ---- the token endpoint (HTTP) ------------------------------------------------------------------

void token_endpoint(const std::shared_ptr<Shared>& shared, const HttpRequest& req,
                    HttpResponder res) {
    if (req.method != "GET") {
        HttpResponse r = HttpResponse::text(405, "");
        r.content_type.clear();
        r.headers.push_back({"Allow", "GET"});
        res.respond(std::move(r));
        return;
    }
    auto user = req.query_param("userId");
    if (!user || is_blank(*user)) {
        HttpResponse r = HttpResponse::json(400, R"({"error":"Missing userId parameter"})");
        r.content_type = std::string(kJsonUtf8);
        res.respond(std::move(r));
        return;
    }
    if (user->size() > kMaxUserIdBytes) {
        HttpResponse r = HttpResponse::json(400, R"({"error":"Invalid userId parameter"})");
        r.content_type = std::string(kJsonUtf8);
        res.respond(std::move(r));
        return;
    }
    if (!shared->allow_token_request(req.peer_address)) {
        HttpResponse r = HttpResponse::json(429, R"({"error":"Too many requests"})");
        r.content_type = std::string(kJsonUtf8);
        r.headers.push_back({"Retry-After", "60"});
        res.respond(std::move(r));
        return;
    }
    shared->request_token(
        std::move(*user), req.peer_address, std::string(auth::bearer_token(req)),
        [res](Shared::Issued outcome, std::optional<std::string> token) mutable {
            HttpResponse r;
            switch (outcome) {
                case Shared::Issued::kToken:
                    r = HttpResponse::json(200, Obj().str("token", *token).done());
                    break;
                case Shared::Issued::kHeld:
                    r = HttpResponse::json(403, Obj().str("error", kUserIdHeld).done());
                    break;
                case Shared::Issued::kFull:
                    r = HttpResponse::json(503, Obj().str("error", kTooManyUsers).done());
                    r.headers.push_back({"Retry-After", "60"});
                    break;
                case Shared::Issued::kUnavailable:
                    r = HttpResponse::json(503, R"({"error":"Service unavailable"})");
                    break;
            }
            r.content_type = std::string(kJsonUtf8);
            res.respond(std::move(r));
        });
}

// ---- the auth WebSocket: /auth and /sessions ----------------------------------------------------

/// /auth?userId=ID (with the holder's token as Authorization: Bearer, to renew a bound user
/// id). Runs on its connection's io thread.
class AuthHandler final : public WsHandler {
public:
    AuthHandler(std::shared_ptr<Shared> shared, std::optional<std::string> user, std::string proof)
        : shared_(std::move(shared)), user_(std::move(user)), proof_(std::move(proof)) {}

    void on_open(const ConnectionPtr& connection) override {
        if (!user_ || is_blank(*user_) || user_->size() > kMaxUserIdBytes) {
            connection->close(close_code::kPolicyViolation, "Missing userId");
            return;
        }
        if (!shared_->allow_token_request(connection->peer_address())) {
            connection->close(close_code::kTryAgainLater, "Too many requests");
            return;
        }
        shared_->request_token(
            *user_, connection->peer_address(), std::move(proof_),
            [handle = ConnectionHandle(connection)](Shared::Issued outcome,
                                                    std::optional<std::string> token) {
                auto c = handle.lock();
                if (!c) {
                    return;
                }
                switch (outcome) {
                    case Shared::Issued::kToken:
                        (void)c->send(make_text(
                            Obj().str("type", "session_token").str("token", *token).done()));
                        break;
                    case Shared::Issued::kHeld:
                        c->close(close_code::kPolicyViolation, kUserIdHeld);
                        break;
                    case Shared::Issued::kFull:
                        c->close(close_code::kTryAgainLater, kTooManyUsers);
                        break;
                    case Shared::Issued::kUnavailable:
                        c->close(close_code::kTryAgainLater, "Service unavailable");
                        break;
                }
            });
    }
    void on_message(MessageKind, std::string_view) override {}  // the original ignores them
    void on_close(const CloseInfo&) override {}

private:
    std::shared_ptr<Shared> shared_;
    std::optional<std::string> user_;
    std::string proof_;  // the bearer token of the upgrade request, "" when none
};

/// /sessions, for operators only (the upgrade is refused without the operator's token). Runs on
/// its connection's io thread.
class SessionsHandler final : public WsHandler {
public:
    explicit SessionsHandler(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    void on_open(const ConnectionPtr& connection) override { connection_ = connection; }
    void on_message(MessageKind kind, std::string_view data) override {
        if (kind == MessageKind::kText && data == "GET_SESSIONS") {
            (void)connection_->send(make_text(shared_->sessions_json(true)));
        } else {
            (void)connection_->send(make_text("ERROR:UnknownCommand"));
        }
    }
    void on_close(const CloseInfo&) override { connection_.reset(); }

private:
    std::shared_ptr<Shared> shared_;
    ConnectionPtr connection_;
};

// ---- the gateway --------------------------------------------------------------------------------

HttpResponse gateway_json(int status, std::string body) {
    return HttpResponse::json(status, std::move(body));
}

std::string string_list(const std::vector<std::string>& lines) {
    std::string out = "[";
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += i ? "," : "";
        append_json_string(out, lines[i]);
    }
    return out + "]";
}

/// What the gateway shows operators only: the user ids (listings) and the server's own lines.
HttpResponse operator_view(Shared& shared, const std::string& path) {
    std::vector<std::string> lines;
    if (path == "/sessions") {
        return gateway_json(200, shared.sessions_json(false));
    }
    if (path == "/players") {
        return gateway_json(200, shared.players_json());
    }
    if (path == "/logs") {
        for (const auto& l : util::log_ring().recent(kGatewayLines)) {
            lines.push_back(iso_time(l.time) + " [" + l.level + "] [" + l.logger + "] " +
                            l.message);
        }
    } else {  // /events/recent
        for (const auto& e : shared.events.recent(kGatewayLines)) {
            lines.push_back(iso_time(e.time) + " " + std::string(core::to_string(e.kind)) + " " +
                            e.subject + (e.detail.empty() ? "" : " " + e.detail));
        }
    }
    return gateway_json(200, string_list(lines));
}

void gateway(const std::shared_ptr<Shared>& shared, const HttpRequest& req, HttpResponder res) {
    std::string path = lowercase(req.path);
    if (path.size() > 1 && path.back() == '/') {
        path.pop_back();
    }
    static const std::set<std::string, std::less<>> kKnown = {
        "/sessions", "/players/count", "/players", "/server_info",   "/uptime",
        "/version",  "/ping",          "/logs",    "/events/recent", "/player/status"};
    if (!kKnown.count(path)) {
        res.respond(gateway_json(404, R"({"error":"Not Found"})"));
        return;
    }
    if (req.method != "GET") {
        HttpResponse r = gateway_json(405, R"({"error":"Method Not Allowed"})");
        r.headers.push_back({"Allow", "GET"});
        res.respond(std::move(r));
        return;
    }
    static const std::set<std::string, std::less<>> kOperatorOnly = {"/sessions", "/players",
                                                                     "/logs", "/events/recent"};
    if (kOperatorOnly.count(path)) {
        shared->operator_only(
            req, "gateway " + path, std::move(res),
            [shared, path](HttpResponder r) { r.respond(operator_view(*shared, path)); });
        return;
    }
    if (path == "/players/count") {
        res.respond(gateway_json(
            200, Obj().num("count", static_cast<std::int64_t>(shared->players_online())).done()));
    } else if (path == "/server_info") {
        res.respond(gateway_json(200, shared->server_info()));
    } else if (path == "/uptime") {
        res.respond(gateway_json(
            200, Obj().str("uptime", timespan(std::chrono::seconds(shared->uptime_s()))).done()));
    } else if (path == "/version") {
        res.respond(gateway_json(
            200, Obj()
                     .str("lastUpdated", iso_time(shared->started_wall))
                     .str("rawData", util::kVersion)
                     .raw("parsedData",
                          Obj().str("version", util::kVersion).str("commit", util::kCommit).done())
                     .done()));
    } else if (path == "/ping") {
        // Hearth's latency: one round trip through every io thread, which is what a message
        // from one player to another crosses at most.
        struct Hop {
            std::shared_ptr<Shared> shared;
            HttpResponder res;
            std::chrono::steady_clock::time_point start;
            std::size_t next = 0;
            void go(std::shared_ptr<Hop> self) {
                if (next == shared->shards.size()) {
                    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count();
                    res.respond(gateway_json(200, Obj().num("latency_ms", ms).done()));
                    return;
                }
                shared->shards.post(next++, [self] { self->go(self); });
            }
        };
        auto hop =
            std::make_shared<Hop>(Hop{shared, std::move(res), std::chrono::steady_clock::now()});
        hop->go(hop);
    } else {  // /player/status
        const std::string info = shared->server_info();
        res.respond(gateway_json(
            200, Obj()
                     .raw("server_info", Obj()
                                             .str("lastUpdated", iso_time(SysClock::now()))
                                             .str("rawData", info)
                                             .raw("parsedData", info)
                                             .done())
                     .done()));
    }
}

/// The gateway's /ws. Runs on its connection's io thread.
class GatewayWsHandler final : public WsHandler {
public:
    explicit GatewayWsHandler(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

    void on_open(const ConnectionPtr& connection) override {
        id_ = connection->id();
        opened_ = true;
        {
            std::lock_guard lock(shared_->mutex);
            shared_->gateway_subscribers[id_] = ConnectionHandle(connection);
        }
        (void)connection->send(make_text(shared_->server_info_push()));
    }
    void on_message(MessageKind, std::string_view) override {}
    void on_close(const CloseInfo&) override {
        if (opened_) {
            std::lock_guard lock(shared_->mutex);
            shared_->gateway_subscribers.erase(id_);
        }
    }

private:
    std::shared_ptr<Shared> shared_;
    ConnectionId id_{};
    bool opened_ = false;
};

// ---- the player instances -----------------------------------------------------------------------

/// An upload in progress: the file being written under incoming/. The io thread (the sender's
/// connection) owns the bookkeeping; `fd` is touched only by disk jobs on the blocking pool, one
/// at a time per upload (a write is submitted only after the previous one came back), and
/// `disk_mutex` makes the final cleanup safe against a write still running.
struct Upload {
    std::string from;     // the sender's user id
    std::string address;  // the sender's address key: its upload slot's and its quota's
    std::string target;
    std::string name;
    std::uint64_t announced = 0;
    fs::path path;
    std::uint64_t received = 0;
    bool overflow = false;  // more bytes than announced (or than the limit): discarded
    bool failed = false;    // a disk write failed
    bool binary_started = false;
    bool binary_done = false;
    bool writing = false;  // a write job is out
    bool complete_requested = false;
    // The sender left after file_send_complete while a write was out: that write's completion
    // finishes the upload without the handler (finish_detached).
    bool finish_when_written = false;
    std::string filling;  // the next chunk (io thread)

    /// Every announced byte arrived, and none too many, and no write failed so far.
    bool whole() const noexcept { return received == announced && !overflow && !failed; }

    std::mutex disk_mutex;
    int fd = -1;
    bool closed = false;  // under disk_mutex: no more writes
};

/// Blocking (the pool). Appends `data` to the upload's file, opening it first if needed; false
/// when the file cannot be opened or written. Takes disk_mutex; nothing once the file is closed.
bool write_to_upload(Upload& u, std::string_view data) {
    std::lock_guard lock(u.disk_mutex);
    if (u.closed) {
        return true;
    }
    if (u.fd < 0) {
        u.fd = ::open(u.path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (u.fd < 0) {
        return false;
    }
    while (!data.empty()) {
        const auto w = ::write(u.fd, data.data(), data.size());
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(w));
    }
    return true;
}

/// A file on disk as the parts of one outgoing binary message (Connection::send_stream). Every
/// read runs on the blocking pool; the connection asks for the next part only once its outbox has
/// room, so a relay holds a few parts in memory whatever the file's size. Parts count in the
/// front-end's buffered bytes until the connection is done with them.
///
/// The receiving client must read at min_transfer_bytes_per_s, averaged over
/// transfer_rate_window_s of its own time: the time from a part's delivery to the connection to
/// the connection asking for the next one (the disk's time is the server's). A slower reader is
/// closed (1008 "transfer too slow"), so that it cannot hold a relay's reserved space, or a stored
/// file's claim, for hours; a relay cut so is stored for the target's next session, a stored
/// file stays for it.
class FileSource final : public MessageSource, public std::enable_shared_from_this<FileSource> {
public:
    FileSource(std::shared_ptr<Shared> shared, ConnectionHandle target, fs::path path,
               std::uint64_t size)
        : shared_(std::move(shared)),
          target_(std::move(target)),
          path_(std::move(path)),
          size_(size) {}

    ~FileSource() override {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    // The connection's thread; never again before `deliver` ran (MessageSource).
    void next(std::size_t max_bytes, std::function<void(StreamPart)> deliver) override {
        if (too_slow()) {
            if (auto c = target_.lock()) {
                c->close(close_code::kPolicyViolation, kTransferTooSlow);
            }
            deliver({});  // the connection is closing: nothing more is sent
            return;
        }
        boost::asio::post(shared_->runtime.blocking_pool(),
                          [self = shared_from_this(), max_bytes, deliver = std::move(deliver)] {
                              auto part = self->read(max_bytes);
                              self->delivered_at_ = std::chrono::steady_clock::now();
                              self->window_bytes_ += part.bytes ? part.bytes->size() : 0;
                              deliver(std::move(part));
                          });
    }

private:
    /// Counts the client's time since the last part was delivered; true when a whole window of
    /// it went by below the minimum rate.
    bool too_slow() {
        const auto& c = shared_->config;
        if (c.min_transfer_bytes_per_s <= 0 || offset_ == 0) {
            return false;  // nothing asked of the client yet
        }
        window_client_time_ += std::chrono::steady_clock::now() - delivered_at_;
        const std::chrono::duration<double> window = window_client_time_;
        if (window < std::chrono::seconds(c.transfer_rate_window_s)) {
            return false;
        }
        const double wanted = static_cast<double>(c.min_transfer_bytes_per_s) * window.count();
        if (static_cast<double>(window_bytes_) < wanted) {
            shared_->downloads_too_slow.inc();
            log()->info(
                "a player read a file too slowly: {} bytes in {:.0f} s, after {} of {} "
                "bytes; closed",
                window_bytes_, window.count(), offset_, size_);
            return true;
        }
        window_client_time_ = {};
        window_bytes_ = 0;
        return false;
    }

    // Blocking: the pool only. One at a time (the connection waits for each part).
    StreamPart read(std::size_t max_bytes) {
        if (fd_ < 0) {
            fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd_ < 0) {
                log()->warn("cannot open {} to relay it: {}", path_.string(), std::strerror(errno));
                return {};
            }
        }
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, size_ - offset_));
        std::string bytes(want, '\0');
        std::size_t got = 0;
        while (got < want) {
            const auto n = ::read(fd_, bytes.data() + got, want - got);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                log()->warn("cannot read {} to relay it: {}", path_.string(),
                            n == 0 ? "the file is shorter than announced" : std::strerror(errno));
                return {};
            }
            got += static_cast<std::size_t>(n);
        }
        offset_ += want;
        shared_->hold(want);
        // The part leaves the front-end's accounting when the connection drops its last
        // reference (written or discarded).
        auto* payload = new Payload(MessageKind::kBinary, std::move(bytes));
        SharedPayload part(payload, [shared = shared_, want](const Payload* p) {
            shared->unhold(want);
            delete p;
        });
        return StreamPart{std::move(part), offset_ == size_};
    }

    std::shared_ptr<Shared> shared_;
    ConnectionHandle target_;
    fs::path path_;
    std::uint64_t size_;
    std::uint64_t offset_ = 0;
    int fd_ = -1;
    // The rate window (too_slow): written on the pool after a read and read on the connection's
    // thread at the next `next`, one after the other (the post between them orders them).
    std::chrono::steady_clock::time_point delivered_at_{};
    std::chrono::steady_clock::duration window_client_time_{};
    std::uint64_t window_bytes_ = 0;
};

/// Sends one file to `target` as file_send_begin, the bytes (streamed from disk), then
/// file_send_complete; `done(true)` once all three were written, on some thread; `done(false)`
/// when the connection ended first.
void relay_file(const std::shared_ptr<Shared>& shared, const ConnectionPtr& target,
                const fs::path& path, const std::string& from, const std::string& name,
                std::uint64_t size, std::function<void(bool)> done) {
    (void)target->send(make_text(Obj()
                                     .str("type", "file_send_begin")
                                     .str("fileName", name)
                                     .str("fromUserId", from)
                                     .num("fileSize", static_cast<std::int64_t>(size))
                                     .done()));
    const auto streamed = target->send_stream(
        MessageKind::kBinary,
        std::make_shared<FileSource>(shared, ConnectionHandle(target), path, size), {});
    if (streamed != SendResult::kQueued) {
        done(false);
        return;
    }
    const auto completed = target->send(make_text(Obj()
                                                      .str("type", "file_send_complete")
                                                      .str("fileName", name)
                                                      .str("fromUserId", from)
                                                      .done()),
                                        done);
    if (completed != SendResult::kQueued) {
        done(false);
    }
}

/// Deletes a relayed upload or a delivered stored file, on the blocking pool.
void delete_later(const std::shared_ptr<Shared>& shared, fs::path path) {
    boost::asio::post(shared->runtime.blocking_pool(), [path = std::move(path)] {
        std::error_code ec;
        fs::remove(path, ec);
    });
}

/// Gives claimed files back for the next session.
void unclaim_all(Shared& shared, const std::deque<StoredFile>& files) {
    for (const auto& f : files) {
        shared.files.unclaim(f.id);
    }
}

/// Any thread. Sends `queue`'s files (claimed) to `handle` one after the other, each deleted once
/// written; a file that is not delivered (the connection ended) and those behind it are given
/// back for the next session.
void deliver_next(std::shared_ptr<Shared> shared, ConnectionHandle handle,
                  std::shared_ptr<std::deque<StoredFile>> queue) {
    auto c = handle.lock();
    if (!c) {
        unclaim_all(*shared, *queue);
        return;
    }
    if (queue->empty()) {
        return;
    }
    StoredFile f = std::move(queue->front());
    queue->pop_front();
    relay_file(
        shared, c, shared->files.data_path(f.id), f.from, f.name, f.size,
        [shared, handle, queue, id = f.id](bool ok) {
            if (!ok) {
                shared->files.unclaim(id);
                unclaim_all(*shared, *queue);
                return;
            }
            shared->files_delivered.inc();
            boost::asio::post(shared->runtime.blocking_pool(), [shared, id] {
                shared->files.remove(id);
                shared->stored_bytes.set(static_cast<std::int64_t>(shared->files.stored_bytes()));
            });
            deliver_next(shared, handle, queue);
        });
}

/// Any thread. Sends the files stored for `user` that no other delivery has claimed to
/// `connection` (the user's connection that just authenticated, or their latest).
void deliver_stored_files(const std::shared_ptr<Shared>& shared, const ConnectionPtr& connection,
                          const std::string& user) {
    if (!connection) {
        return;
    }
    auto waiting = shared->files.claim_waiting_for(user);
    if (waiting.empty()) {
        return;
    }
    auto queue = std::make_shared<std::deque<StoredFile>>(waiting.begin(), waiting.end());
    deliver_next(shared, ConnectionHandle(connection), queue);
}

void answer(const ConnectionHandle& sender, std::string_view text) {
    if (auto c = sender.lock()) {
        (void)c->send(make_text(std::string(text)));
    }
}

/// Blocking (the pool). Stores a complete upload for its target's next session and answers the
/// sender, if still connected.
void store_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                  const ConnectionHandle& sender) {
    shared->before_disk(MoonshareFrontend::DiskStep::kStoreUpload);
    // The binding may have ended since file_send_begin (its holder gone for binding_ttl_s): a
    // file is stored only for a held user id, and the pin keeps it held until the file is there.
    if (!shared->bindings.pin(u->target)) {
        shared->files_failed.inc();
        shared->files.release(u->announced);
        std::error_code ec;
        fs::remove(u->path, ec);
        shared->refused("unknown_recipient");
        if (auto more = shared->refusal_line()) {
            log()->info("file {} for user id {}, which nobody holds any more: dropped{}", u->name,
                        u->target, *more);
        }
        answer(sender, kUnknownRecipient);
        return;
    }
    // FILE_SENT_SERVER_ONLY promises the file: store() returns once it is on disk durably.
    const auto r =
        shared->files.store(u->path, u->from, u->target, u->name, u->announced, u->address,
                            [&shared] { shared->before_disk(MoonshareFrontend::DiskStep::kSync); });
    shared->bindings.unpin(u->target);
    shared->stored_bytes.set(static_cast<std::int64_t>(shared->files.stored_bytes()));
    if (r == FileStore::StoreResult::kStored) {
        shared->files_stored.inc();
        answer(sender, kFileSentServerOnly);
        // The target may have authenticated while the file was being stored (its session's
        // delivery ran before the file was there): then it gets the file now.
        deliver_stored_files(shared, shared->latest_connection(u->target), u->target);
    } else {
        shared->files_failed.inc();
        if (r == FileStore::StoreResult::kFailed) {
            answer(sender, kStorageError);
            return;
        }
        const bool recipient = r == FileStore::StoreResult::kUserQuota;
        shared->refused(recipient ? "recipient_quota" : "sender_quota");
        if (auto more = shared->refusal_line()) {
            log()->info("file {} for {} refused: {} quota{}", u->name, u->target,
                        recipient ? "the recipient's" : "the sender's", *more);
        }
        answer(sender, kQuota);
    }
}

/// Any thread. A complete upload, on disk and closed, goes to its target: relayed to the target's
/// latest connection when online, else stored. A relay that does not reach the target (its
/// connection ended) stores the file instead, so that it is delivered at the next session. The
/// sender is answered when still connected, but nothing depends on it: a sender that leaves right
/// after file_send_complete loses nothing.
void deliver_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                    const ConnectionHandle& sender) {
    if (auto target = shared->latest_connection(u->target)) {
        relay_file(shared, target, u->path, u->from, u->name, u->announced,
                   [shared, u, sender](bool ok) {
                       if (ok) {
                           shared->files.release(u->announced);
                           delete_later(shared, u->path);
                           shared->files_relayed.inc();
                           answer(sender, kFileSent);
                           return;
                       }
                       log()->info("relay of {} to {} did not complete; stored for later", u->name,
                                   u->target);
                       boost::asio::post(shared->runtime.blocking_pool(),
                                         [shared, u, sender] { store_upload(shared, u, sender); });
                   });
        return;
    }
    boost::asio::post(shared->runtime.blocking_pool(),
                      [shared, u, sender] { store_upload(shared, u, sender); });
}

/// The sender's connection is gone but its upload is complete (every byte received, completion
/// asked): write what is left, close the file and deliver it, without the handler. Io thread,
/// with no write of the upload out.
void finish_detached(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u) {
    auto tail = std::make_shared<std::string>(std::move(u->filling));
    u->filling.clear();
    boost::asio::post(shared->runtime.blocking_pool(), [shared, u, tail] {
        // Also when the tail is empty: an empty file is opened (created) here.
        bool ok = !u->failed && write_to_upload(*u, *tail);
        {
            std::lock_guard lock(u->disk_mutex);
            if (u->fd >= 0) {
                ::close(u->fd);
                u->fd = -1;
            }
            u->closed = true;
        }
        shared->unhold(tail->size());
        // A write that failed after the handler left is only seen here: by the file's size.
        std::error_code size_ec;
        ok = ok && fs::file_size(u->path, size_ec) == u->announced && !size_ec;
        if (!ok) {
            shared->files_failed.inc();
            shared->files.release(u->announced);
            std::error_code ec;
            fs::remove(u->path, ec);
            log()->warn("cannot finish the upload of {} for {} (its sender left)", u->name,
                        u->target);
            return;
        }
        deliver_upload(shared, u, {});
    });
}

/// One /player connection. Runs on: its connection's io thread (every callback, and every
/// completion, posted back). Owned by: the network layer, until `on_close`.
class PlayerHandler final : public WsHandler {
public:
    PlayerHandler(std::shared_ptr<Shared> shared, std::size_t instance)
        : shared_(std::move(shared)), instance_(instance) {}

    void on_open(const ConnectionPtr& connection) override {
        connection_ = connection;
        id_ = connection->id();
        address_ = address_key_of(connection->peer_address());
        log()->debug("[conn {}] player connected to {}", to_string(id_), instance_name(instance_));
    }

    void on_message(MessageKind kind, std::string_view data) override {
        if (kind == MessageKind::kBinary) {
            on_binary_part(data, true, true);
            return;
        }
        if (busy()) {
            hold(data);
            return;
        }
        handle_text(data);
    }

    void on_binary_part(std::string_view data, bool first, bool last) {
        if (closed_) {
            return;
        }
        if (first) {
            discarding_ = !upload_ || upload_->binary_started;
            if (discarding_) {
                shared_->ignored.inc();
                log()->debug("[conn {}] binary data with no transfer in progress: dropped",
                             to_string(id_));
            } else {
                upload_->binary_started = true;
            }
        }
        if (discarding_ || !upload_) {
            return;
        }
        Upload& u = *upload_;
        u.received += data.size();
        const auto limit = static_cast<std::uint64_t>(shared_->config.max_file_size_bytes);
        if (u.received > u.announced || u.received > limit) {
            if (!u.overflow) {
                u.overflow = true;
                shared_->unhold(u.filling.size());
                u.filling.clear();
                u.filling.shrink_to_fit();
            }
        } else {
            shared_->hold(data.size());
            u.filling.append(data);
        }
        if (last) {
            u.binary_done = true;
        }
        pump_writes();
    }

    void on_close(const CloseInfo&) override {
        closed_ = true;
        if (authenticated_) {
            shared_->remove(id_);
        }
        if (upload_ && upload_->complete_requested && upload_->binary_done && upload_->whole()) {
            detach_upload();
        } else {
            abandon_upload();
        }
        held_.clear();
        connection_.reset();
        log()->debug("[conn {}] player left", to_string(id_));
    }

private:
    bool busy() const { return authenticating_ || finishing_; }

    void hold(std::string_view data) {
        if (held_.size() >= kMaxHeldMessages) {
            shared_->ignored.inc();
            log()->debug("[conn {}] message dropped: {} already held", to_string(id_),
                         kMaxHeldMessages);
            return;
        }
        held_.emplace_back(data);
        update_reading();
    }

    void replay_held() {
        while (!held_.empty() && !busy() && !closed_) {
            std::string m = std::move(held_.front());
            held_.pop_front();
            handle_text(m);
        }
        update_reading();
    }

    void reply(std::string_view text) {
        if (connection_) {
            (void)connection_->send(make_text(std::string(text)));
        }
    }

    /// Wraps a completion so that it runs on this connection's thread while it is open.
    template <class... Args, class F>
    std::function<void(Args...)> back_here(F f) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<Args...>(
            shared_->runtime, [this, alive, f = std::move(f)](Args... args) mutable {
                if (alive.expired() || closed_) {
                    return;
                }
                f(std::move(args)...);
            });
    }

    /// Like back_here, but when the connection is gone by then, `gone` runs instead (on the same
    /// thread; it must not touch the handler): the cleanup a completion would have done.
    template <class... Args, class F, class G>
    std::function<void(Args...)> back_here_or(F f, G gone) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<Args...>(
            shared_->runtime,
            [this, alive, f = std::move(f), gone = std::move(gone)](Args... args) mutable {
                if (alive.expired() || closed_) {
                    gone();
                    return;
                }
                f(std::move(args)...);
            });
    }

    void handle_text(std::string_view data) {
        boost::system::error_code ec;
        json::value v = json::parse(data, ec);
        const json::object* o = !ec && v.is_object() ? &v.get_object() : nullptr;
        const auto type = o ? field(*o, "type").string() : std::nullopt;
        if (!type) {
            shared_->ignored.inc();
            log()->debug("[conn {}] not a protocol message: ignored", to_string(id_));
            return;
        }
        if (authenticated_) {
            shared_->touch(id_);
        }
        if (*type == "session_auth") {
            remember_presented_token(*o);
            on_session_auth(*o);
        } else if (*type == "list_online" && !authenticated_) {
            // User ids are for authenticated players only: the plugin never asks before.
            shared_->refused("list_before_auth");
            log()->debug("[conn {}] list_online before authentication: an empty list",
                         to_string(id_));
            reply("ONLINE:[]");
        } else if (*type == "list_online") {
            reply(shared_->online_text());
        } else if (!authenticated_) {
            shared_->ignored.inc();
            log()->debug("[conn {}] {} before authentication: ignored", to_string(id_), *type);
        } else if (*type == "connect") {
            on_connect(*o);
        } else if (*type == "connect_accept" || *type == "connect_reject") {
            auto target = field(*o, "targetUserId").string();
            if (!target ||
                !shared_->answer(user_, std::string(*target), *type == "connect_accept")) {
                shared_->ignored.inc();
                log()->debug("[conn {}] {} without a request: ignored", to_string(id_), *type);
            }
        } else if (*type == "file_send_begin") {
            on_file_begin(*o);
        } else if (*type == "file_send_complete") {
            on_file_complete();
        } else if (*type == "disconnect") {
            connection_->close(close_code::kNormal, "");
        } else {
            shared_->ignored.inc();
            log()->debug("[conn {}] unknown type {}: ignored", to_string(id_), *type);
        }
    }

    // ---- session_auth ---------------------------------------------------------------------------

    void on_session_auth(const json::object& o) {
        if (authenticated_) {
            shared_->ignored.inc();
            log()->debug("[conn {}] session_auth again: ignored", to_string(id_));
            return;
        }
        const auto token = field(o, "token").string();
        if (!token || token->empty()) {
            refuse(kMissingToken, close_code::kNoStatus, "");
            return;
        }
        const auto user = field(o, "userId").string();
        if (!user || user->empty() || user->size() > kMaxUserIdBytes) {
            refuse(kInvalidToken, close_code::kNoStatus, "");
            return;
        }
        authenticating_ = true;
        shared_->accounts.authorize(
            std::string(*token), access_policy(), "connection " + to_string(id_),
            back_here<auth::AccessDecision>([this,
                                             user = std::string(*user)](auth::AccessDecision d) {
                authenticating_ = false;
                // A guest token of this realm, issued for this very user id.
                if (!d.accepted() || d.principal.subject != user) {
                    if (d.refusal == auth::Refusal::kUnavailable) {
                        log()->warn(
                            "[conn {}] token validation failed: the store cannot "
                            "answer",
                            to_string(id_));
                    } else if (d.accepted()) {
                        shared_->wrong_subject.inc();
                        if (auto more = shared_->refusal_line()) {
                            log()->info("[conn {}] refused a token issued for another user id{}",
                                        to_string(id_), *more);
                        }
                    }
                    // The plugin hears "invalid token" whatever the reason; the operator's
                    // login.failed event says which.
                    std::string detail = d.accepted() ? "a guest token issued for another user id"
                                         : d.refusal == auth::Refusal::kInvalidToken
                                             ? d.why
                                             : std::string(auth::to_string(d.refusal)) +
                                                   (d.why.empty() ? "" : ", " + d.why);
                    refuse(kInvalidToken, close_code::kNoStatus, "", {}, detail);
                    return;
                }
                admitted(user);
                if (authenticated_) {
                    shared_->accounts.publish_login_ok(access_policy().door,
                                                       connection_->peer_address(), d.principal);
                }
                replay_held();
            }));
    }

    /// The digest of the token a session_auth shows, for the binding check in `admitted` (the
    /// token itself is not kept), and the user id it claims, for the refusal's log line.
    void remember_presented_token(const json::object& o) {
        const auto token = field(o, "token").string();
        presented_digest_ = token ? auth::token_digest(*token) : std::string();
        claimed_user_ = std::string(field(o, "userId").string().value_or("").substr(0, 256));
    }

    /// A refused session_auth: counted by `why` (derived from the message unless given), logged
    /// (never the token), answered, closed.
    void refuse(std::string_view message, std::uint16_t code, std::string_view reason,
                std::string_view why = {}, std::string_view detail = {}) {
        if (why.empty()) {
            why = message == kMissingToken ? "missing_token"
                  : message == kServerFull ? "server_full"
                                           : "invalid_token";
        }
        shared_->refused(why);
        shared_->accounts.publish_login_failed(
            access_policy().door, connection_->peer_address(), claimed_user_,
            detail.empty() ? std::string(why) : std::string(why) + ": " + std::string(detail));
        if (auto more = shared_->refusal_line()) {
            log()->info("[conn {}] session_auth as {} refused on {}: {}{}", to_string(id_),
                        claimed_user_, instance_name(instance_), why, *more);
        }
        held_.clear();
        reply(auth_result(false, message));
        connection_->close(code, reason);
    }

    void admitted(const std::string& user) {
        // The token is valid for this user id; it must also be one its holder was issued (a
        // token minted by someone else for a held user id never is: the token endpoint refuses
        // it, and a token from before a binding ended is no longer the holder's).
        if (!shared_->bindings.holds(user, presented_digest_, SysClock::now())) {
            refuse(kInvalidToken, close_code::kNoStatus, "", "not_token_holder");
            return;
        }
        switch (shared_->admit(id_, user, address_, instance_, ConnectionHandle(connection_))) {
            case Shared::Admit::kFull:
                refuse(kServerFull, close_code::kPolicyViolation, kServerFullReason);
                return;
            case Shared::Admit::kAddressFull:
                // The plugin knows no other answer; the server is full for this address.
                refuse(kServerFull, close_code::kPolicyViolation, kServerFullReason,
                       "players_per_address");
                return;
            case Shared::Admit::kAdmitted:
                break;
        }
        shared_->paced_address_authenticated(connection_->peer_address());
        authenticated_ = true;
        user_ = user;
        connection_->set_principal(user_);
        reply(auth_result(true, kAuthOk, user_));
        reply(Obj()
                  .str("type", "connection_info")
                  .str("message", "You are connected through instance " +
                                      std::string(instance_name(instance_)))
                  .done());
        // After the result, so that the new player's first messages are the two above.
        shared_->broadcast_user_list();
        log()->debug("[conn {}] authenticated as {} on {}", to_string(id_), user_,
                     instance_name(instance_));
        deliver_stored_files(shared_, connection_, user_);
    }

    // ---- connect --------------------------------------------------------------------------------

    void on_connect(const json::object& o) {
        auto target = field(o, "targetUserId").string();
        if (target && target->size() > kMaxUserIdBytes) {
            // No such user can exist, and echoing it could exceed the client's 8 KiB buffer.
            shared_->ignored.inc();
            log()->debug("[conn {}] connect to an over-long user id: ignored", to_string(id_));
            return;
        }
        if (!target || !shared_->request(user_, std::string(*target))) {
            reply(Obj()
                      .str("type", "connect_rejected")
                      .str("withUserId", target.value_or(""))
                      .done());
        }
    }

    // ---- files ----------------------------------------------------------------------------------

    void on_file_begin(const json::object& o) {
        const auto target = field(o, "targetUserId").string();
        const auto name = field(o, "fileName").string();
        const auto* size = o.if_contains("fileSize");
        std::optional<std::uint64_t> n;
        if (size != nullptr) {
            if (size->is_int64() && size->get_int64() >= 0) {
                n = static_cast<std::uint64_t>(size->get_int64());
            } else if (size->is_uint64()) {
                n = size->get_uint64();
            }
        }
        if (!target || target->empty() || target->size() > kMaxUserIdBytes || !name ||
            name->empty() || !n) {
            reply(kMissingBegin);
            return;
        }
        if (name->size() > kMaxFileNameBytes) {
            reply(kNameTooLong);
            return;
        }
        if (*n > static_cast<std::uint64_t>(shared_->config.max_file_size_bytes)) {
            reply(kTooLarge);
            return;
        }
        if (!shared_->bindings.bound(std::string(*target))) {
            // Nobody holds the user id: a stored file would go to whoever takes it first.
            shared_->refused("unknown_recipient");
            if (auto more = shared_->refusal_line()) {
                log()->info("[conn {}] file for user id {}, which nobody holds: refused{}",
                            to_string(id_), *target, *more);
            }
            reply(kUnknownRecipient);
            return;
        }
        abandon_upload();  // a new announcement replaces one whose bytes never came
        if (!shared_->is_online(std::string(*target)) && !quota_allows(std::string(*target), *n)) {
            return;  // a file for an offline target would be refused once sent: say so now
        }
        switch (shared_->take_upload_slot(address_)) {
            case Shared::Slot::kBusy:
                reply(kBusy);
                return;
            case Shared::Slot::kAddressBusy:
                shared_->refused("uploads_per_address");
                if (auto more = shared_->refusal_line()) {
                    log()->info(
                        "[conn {}] upload refused: {} in progress from its address "
                        "(max_uploads_per_address){}",
                        to_string(id_), shared_->config.max_uploads_per_address, *more);
                }
                reply(kBusy);
                return;
            case Shared::Slot::kTaken:
                break;
        }
        if (!shared_->files.reserve(*n)) {
            shared_->give_upload_slot(address_);
            reply(kStorageFull);
            return;
        }
        upload_ = std::make_shared<Upload>();
        upload_->from = user_;
        upload_->address = address_;
        upload_->target = std::string(*target);
        upload_->name = std::string(*name);
        upload_->announced = *n;
        upload_->path = shared_->files.new_upload_path();
        reply(kReceiveReady);
        arm_upload_timer();
    }

    /// Whether a file of `size` bytes from this client for `target` fits in the recipient's and
    /// the sender's quotas now; answers and counts the refusal when not.
    bool quota_allows(const std::string& target, std::uint64_t size) {
        const auto r = shared_->files.fits(address_, target, size);
        if (r == FileStore::StoreResult::kStored) {
            return true;
        }
        const bool recipient = r == FileStore::StoreResult::kUserQuota;
        shared_->refused(recipient ? "recipient_quota" : "sender_quota");
        if (auto more = shared_->refusal_line()) {
            log()->info("[conn {}] file for {} refused: {} quota{}", to_string(id_), target,
                        recipient ? "the recipient's" : "the sender's", *more);
        }
        reply(kQuota);
        return false;
    }

    /// Hands the filled chunk to the disk when no write is out (and it is full, or the message
    /// ended); keeps reading paused while a full chunk waits.
    void pump_writes() {
        Upload& u = *upload_;
        const bool ready = !u.filling.empty() && (u.filling.size() >= kWriteChunk || u.binary_done);
        if (!u.writing && ready) {
            u.writing = true;
            auto chunk = std::make_shared<std::string>(std::move(u.filling));
            u.filling.clear();
            boost::asio::post(
                shared_->runtime.blocking_pool(),
                [upload = upload_, chunk,
                 done = back_here_or<bool>([this, upload = upload_,
                                            n = chunk->size()](bool ok) { written(upload, n, ok); },
                                           [shared = shared_, upload = upload_, n = chunk->size()] {
                                               shared->unhold(n);
                                               if (upload->finish_when_written) {
                                                   finish_detached(shared, upload);
                                               }
                                           }),
                 shared = shared_] {
                    shared->before_disk(MoonshareFrontend::DiskStep::kWriteChunk);
                    done(write_to_upload(*upload, *chunk));
                });
        }
        set_paused(u.writing && u.filling.size() >= kWriteChunk);
        if (!u.writing && u.filling.empty() && u.complete_requested) {
            finish_upload();
        }
    }

    void written(const std::shared_ptr<Upload>& upload, std::size_t n, bool ok) {
        shared_->unhold(n);
        if (upload != upload_) {
            return;  // abandoned meanwhile (its cleanup owns the file)
        }
        upload_->writing = false;
        if (!ok && !upload_->failed) {
            upload_->failed = true;
            log()->warn("[conn {}] cannot write an upload to {}", to_string(id_),
                        upload_->path.string());
        }
        pump_writes();
    }

    void set_paused(bool pause) {
        chunk_waiting_ = pause;
        update_reading();
    }

    /// Reading pauses while a full upload chunk waits for the disk, or while half the bound of
    /// held messages is reached (what is already read still arrives: the bound drops past it).
    void update_reading() {
        const bool pause = chunk_waiting_ || held_.size() >= kMaxHeldMessages / 2;
        if (pause == paused_ || !connection_ || closed_) {
            return;
        }
        paused_ = pause;
        if (pause) {
            window_excused_ = true;  // the server keeps the client waiting: not its slowness
            connection_->pause_reading();
        } else {
            connection_->resume_reading();
        }
    }

    void on_file_complete() {
        if (!upload_) {
            reply(kMissingState);
            return;
        }
        upload_->complete_requested = true;
        finishing_ = true;
        pump_writes();
    }

    /// Every byte is on disk (or the upload failed): answer, then relay or store.
    void finish_upload() {
        auto u = std::exchange(upload_, nullptr);
        shared_->give_upload_slot(u->address);
        set_paused(false);
        if (!u->whole()) {
            shared_->files_failed.inc();
            shared_->files.release(u->announced);
            close_and_delete(u);
            reply(u->failed ? kStorageError : kSizeMismatch);
            finished();
            return;
        }
        // Close the file on the pool, then relay to an online target or store: from there on the
        // sender's connection may go without the file being lost.
        boost::asio::post(
            shared_->runtime.blocking_pool(),
            [u, done = [shared = shared_, u, sender = ConnectionHandle(connection_)] {
                deliver_upload(shared, u, sender);
            }] {
                {
                    std::lock_guard lock(u->disk_mutex);
                    if (u->fd < 0 && u->announced == 0) {  // an empty file: nothing was written
                        u->fd =
                            ::open(u->path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
                    }
                    if (u->fd >= 0) {
                        ::close(u->fd);
                        u->fd = -1;
                    }
                    u->closed = true;
                }
                done();
            });
        // The upload slot is free again: later messages need not wait for the relay or the
        // store (their replies may come before this file's).
        finished();
    }

    void finished() {
        finishing_ = false;
        replay_held();
    }

    /// Starts watching the upload just announced.
    void arm_upload_timer() {
        const auto now = std::chrono::steady_clock::now();
        progress_mark_ = 0;
        last_progress_ = now;
        window_start_ = now;
        window_mark_ = 0;
        window_excused_ = paused_;
        schedule_upload_check();
    }

    /// The announced upload is checked every upload_timeout_s, or every transfer_rate_window_s
    /// if shorter. It is dropped when no byte came (nor the completion) for upload_timeout_s, or
    /// when over a whole window its bytes came slower than min_transfer_bytes_per_s: a client
    /// announcing files it never sends, or sending one byte now and then, cannot keep an upload
    /// slot and its reserved space. A window in which the server paused reading (the disk is
    /// behind) is not held against the client.
    void schedule_upload_check() {
        if (!upload_timer_) {
            upload_timer_ = std::make_unique<boost::asio::steady_timer>(shared_->runtime.io_context(
                static_cast<std::size_t>(core::Runtime::current_io_thread())));
        }
        const auto& c = shared_->config;
        auto every = std::chrono::seconds(c.upload_timeout_s);
        if (c.min_transfer_bytes_per_s > 0) {
            every = std::min(every, std::chrono::seconds(c.transfer_rate_window_s));
        }
        upload_timer_->expires_after(every);
        std::weak_ptr<int> alive = alive_;
        upload_timer_->async_wait([this, alive, upload = std::weak_ptr<Upload>(upload_)](
                                      const boost::system::error_code& ec) {
            if (ec || alive.expired() || closed_) {
                return;
            }
            auto u = upload.lock();
            if (!u || u != upload_ || u->complete_requested) {
                return;  // replaced, finished or being finished
            }
            check_upload(*u);
        });
    }

    void check_upload(Upload& u) {
        const auto& c = shared_->config;
        const auto now = std::chrono::steady_clock::now();
        if (u.received != progress_mark_ || u.writing) {
            progress_mark_ = u.received;
            last_progress_ = now;
        } else if (now - last_progress_ >= std::chrono::seconds(c.upload_timeout_s)) {
            log()->info("[conn {}] upload of {} timed out after {} of {} bytes", to_string(id_),
                        u.name, u.received, u.announced);
            shared_->files_failed.inc();
            abandon_upload();
            reply(kUploadTimedOut);
            return;
        }
        const std::chrono::duration<double> window = now - window_start_;
        if (c.min_transfer_bytes_per_s > 0 && !u.binary_done &&
            window >= std::chrono::seconds(c.transfer_rate_window_s)) {
            const auto got = static_cast<double>(u.received - window_mark_);
            const double wanted = static_cast<double>(c.min_transfer_bytes_per_s) * window.count();
            // A window with no byte at all is idleness, the timeout's to judge.
            if (!window_excused_ && !paused_ && got > 0 && got < wanted) {
                log()->info(
                    "[conn {}] upload of {} too slow: {} bytes in {:.0f} s, after {} of "
                    "{} bytes",
                    to_string(id_), u.name, u.received - window_mark_, window.count(), u.received,
                    u.announced);
                shared_->files_failed.inc();
                shared_->uploads_too_slow.inc();
                abandon_upload();
                reply(kUploadTooSlow);
                return;
            }
            window_start_ = now;
            window_mark_ = u.received;
            window_excused_ = paused_;
        }
        schedule_upload_check();
    }

    /// The connection is gone after a complete upload: it is finished without the handler, once
    /// the write that is out (if any) comes back.
    void detach_upload() {
        auto u = std::exchange(upload_, nullptr);
        shared_->give_upload_slot(u->address);
        if (u->writing) {
            u->finish_when_written = true;  // the write's completion calls finish_detached
        } else {
            finish_detached(shared_, u);
        }
    }

    /// Drops an upload in progress (connection gone, replaced, or failed): its file is closed and
    /// deleted on the pool once no write runs, and its reservation released.
    void abandon_upload() {
        if (!upload_) {
            return;
        }
        auto u = std::exchange(upload_, nullptr);
        shared_->give_upload_slot(u->address);
        shared_->unhold(u->filling.size());
        shared_->files.release(u->announced);
        close_and_delete(u);
        if (finishing_) {
            finishing_ = false;
        }
        // The rest of a binary message in progress belongs to no transfer now: dropped, and
        // reading goes on (a write of the upload that is out no longer resumes it).
        if (u->binary_started && !u->binary_done) {
            discarding_ = true;
        }
        if (chunk_waiting_) {
            set_paused(false);
        }
    }

    void close_and_delete(const std::shared_ptr<Upload>& u) {
        boost::asio::post(shared_->runtime.blocking_pool(), [u] {
            std::lock_guard lock(u->disk_mutex);
            if (u->fd >= 0) {
                ::close(u->fd);
                u->fd = -1;
            }
            u->closed = true;
            std::error_code ec;
            fs::remove(u->path, ec);
        });
    }

    std::shared_ptr<Shared> shared_;
    std::size_t instance_;
    ConnectionPtr connection_;
    ConnectionId id_{};
    bool authenticating_ = false;
    bool authenticated_ = false;
    bool finishing_ = false;  // a file_send_complete is in progress: later messages wait
    bool closed_ = false;
    bool paused_ = false;         // reading is paused (update_reading)
    bool chunk_waiting_ = false;  // a full upload chunk waits for the disk
    bool discarding_ = false;     // the binary message in progress is dropped
    std::string user_;
    std::string address_;  // the client's address key (IPv6 by /64), for the per-address limits
    std::string presented_digest_;  // the SHA-256 of the token of the session_auth in progress
    std::string claimed_user_;      // and the user id it claims (for the log)
    std::deque<std::string> held_;
    std::shared_ptr<Upload> upload_;
    std::unique_ptr<boost::asio::steady_timer> upload_timer_;  // while an upload is announced
    // The upload's watch (check_upload): its bytes at the last check and when they last grew,
    // and the rate window: when it started, the bytes then, and whether reading was paused
    // during it.
    std::uint64_t progress_mark_ = 0;
    std::chrono::steady_clock::time_point last_progress_{};
    std::chrono::steady_clock::time_point window_start_{};
    std::uint64_t window_mark_ = 0;
    bool window_excused_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
};

}  // namespace

// ---------------------------------------------------------------------------------------------

const auth::AccessPolicy& access_policy() {
    static const auth::AccessPolicy policy{.door = "moonshare", .guest_realm = std::string(kRealm)};
    return policy;
}

MoonshareFrontend::MoonshareFrontend(core::Runtime& runtime, auth::AccountService& accounts,
                                     core::MetricsRegistry& metrics, core::EventBus& events,
                                     const MoonshareConfig& config, const std::string& data_dir)
    : shared_(std::make_shared<Shared>(runtime, accounts, metrics, events, config, data_dir)),
      config_(config) {}

MoonshareFrontend::~MoonshareFrontend() {
    stop();
    shared_->save_bindings(true);  // what changed since the ticker's last save, times of use too
}

void MoonshareFrontend::add_routes(Router& router, std::shared_ptr<const WsRouteSettings> player,
                                   std::shared_ptr<const WsRouteSettings> ws,
                                   const auth::OperatorAuth& operators) {
    const auto& c = config_;
    shared_->operators = &operators;
    token_listener_ = router.listener({"moonshare-token", c.token_listen, "", ""});
    for (const std::string path : {"/sessions", "/sessions/"}) {
        router.add_http_route(token_listener_, "", path,
                              [shared = shared_](const HttpRequest& req, HttpResponder res) {
                                  token_endpoint(shared, req, std::move(res));
                              });
    }

    auth_listener_ = router.listener({"moonshare-auth", c.auth_listen, "", ""});
    WsRoute auth;
    auth.settings = ws;
    auth.frontend = "moonshare";
    auth.listen_only = true;  // the plugin holds /auth open and sends nothing
    auth.accept = [shared = shared_](const HttpRequest& req) -> WsRoute::Decision {
        return std::make_unique<AuthHandler>(shared, req.query_param("userId"),
                                             std::string(auth::bearer_token(req)));
    };
    router.add_ws_route(auth_listener_, "/auth", std::move(auth));
    WsRoute sessions;
    sessions.settings = ws;
    sessions.frontend = "moonshare";
    // The original's own gateway reads the sessions here; Hearth's gateway needs no such link,
    // and the list holds user ids: operators only.
    sessions.accept_async = [shared = shared_](const HttpRequest& req,
                                               std::function<void(WsRoute::Decision)> decide) {
        shared->operators->authorize(
            req, [shared, showed = !auth::bearer_token(req).empty(),
                  decide = std::move(decide)](auth::OperatorAuth::Outcome outcome) {
                if (const auto* refusal = std::get_if<HttpResponse>(&outcome)) {
                    decide(shared->operator_refusal(*refusal, "auth /sessions", showed));
                    return;
                }
                decide(std::make_unique<SessionsHandler>(shared));
            });
    };
    router.add_ws_route(auth_listener_, "/sessions", std::move(sessions));

    for (std::size_t i = 0; i < c.player_listen.size(); ++i) {
        const auto key = router.listener(
            {"moonshare-" + lowercase(instance_name(i)), c.player_listen[i], "", ""});
        player_listeners_.push_back(key);
        WsRoute route;
        route.settings = player;
        route.frontend = "moonshare";
        route.accept = [shared = shared_, i](const HttpRequest&) -> WsRoute::Decision {
            return std::make_unique<PlayerHandler>(shared, i);
        };
        router.add_ws_route(key, "/player", std::move(route));
    }

    gateway_listener_ = router.listener({"moonshare-gateway", c.gateway_listen, "", ""});
    router.add_http_route(
        gateway_listener_, "", "/",
        [shared = shared_](const HttpRequest& req, HttpResponder res) {
            gateway(shared, req, std::move(res));
        },
        PathMatch::kPrefix);
    WsRoute push;
    push.settings = ws;
    push.frontend = "moonshare";
    push.listen_only = true;  // dashboards only receive
    push.accept = [shared = shared_](const HttpRequest&) -> WsRoute::Decision {
        return std::make_unique<GatewayWsHandler>(shared);
    };
    router.add_ws_route(gateway_listener_, "/ws", std::move(push));

    std::string players;
    for (const auto& p : c.player_listen) {
        players += (players.empty() ? "" : ", ") + p;
    }
    log()->info("Moonshare: tokens on {}, auth on {}, players on {}, gateway on {}", c.token_listen,
                c.auth_listen, players, c.gateway_listen);
}

void MoonshareFrontend::set_disk_hook(std::function<void(DiskStep)> hook) {
    shared_->disk_hook = std::move(hook);
}

void MoonshareFrontend::start() {
    if (ticker_) {
        return;
    }
    // The housekeeping, once a second on shard 0.
    ticker_ =
        shared_->shards.every(0, std::chrono::seconds(1), [weak = std::weak_ptr<Shared>(shared_)] {
            if (auto s = weak.lock()) {
                s->tick();
            }
        });
}

void MoonshareFrontend::stop() {
    // Waits for a tick under way: the destructor's last save of the bindings comes after it.
    ticker_.cancel();
}

}  // namespace hearth::frontends::moonshare
