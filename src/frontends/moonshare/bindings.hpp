#pragma once

// Who holds each Moonshare user id (docs/protocol/moonshare.md, "User ids and their holders").
// The original issues a token for any user id to anyone who asks, and user ids are listed, so
// anyone could become anyone and take their waiting files. Here the first token issued for a user
// id binds the id to its holder: a later token for it is issued only to the holder (who shows one
// of its tokens) or, as the unmodified plugin asks for a new token at every reconnect without
// showing the old one, to a request from the IP address of one of the holder's tokens; and a
// session authenticates as the user id only with one of the holder's tokens.
//
// Pure bookkeeping, no I/O: times are passed in, and the front-end persists `snapshot()` itself.
// Thread-safe: one mutex, held for bookkeeping only. Bounded: at most `max_bindings` user ids,
// each with at most kMaxTokensPerBinding tokens, a user id of at most 256 bytes and one address,
// and at most `max_per_address` of them created from one client address (IPv6 by /64): a new user
// id past either bound takes the place of a binding nobody uses (see `request`), so that one
// address cannot hold every user id the server keeps.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hearth::frontends::moonshare {

class Bindings {
public:
    using Clock = std::chrono::system_clock;
    using TimePoint = Clock::time_point;

    /// Tokens remembered per user id: the plugin asks for a new one at every reconnect; past this
    /// many the oldest is forgotten (no new session authenticates with it; open ones go on).
    static constexpr std::size_t kMaxTokensPerBinding = 4;
    /// What one binding may take in memory at most (a 256-byte user id, an IPv6 address, the
    /// tokens' digests and the bookkeeping), for the documented bound max_bindings x this.
    static constexpr std::size_t kMaxBindingBytes = 1024;

    struct Limits {
        std::size_t max_bindings = 20'000;
        std::chrono::seconds ttl{86'400};  // after the last use (and the last token's expiry)
        bool renew_from_same_ip = true;
        std::size_t max_per_address = 0;  // bindings created from one address key; 0: no bound
    };

    enum class Decision : std::uint8_t {
        kNew,          // the user id was free: the requester becomes its holder
        kHolder,       // the requester showed one of the holder's tokens
        kSameAddress,  // from the address of one of the holder's tokens (renew_from_same_ip)
        kHeld,         // refused: the user id is held by another client
        kFull,         // refused: max_bindings user ids are held, none of them evictable
        kAddressFull,  // refused: max_per_address from this address, none of them evictable
    };
    /// Why `request` ended another binding to make room for a new user id.
    enum class Eviction : std::uint8_t {
        kNone,
        kAddressCap,  // the address's own least useful binding (max_per_address)
        kFull,        // the least recently used binding that never authenticated (max_bindings)
    };
    /// Whether a user id is in use in a way the bindings cannot see (online, files waiting): such
    /// a binding is never evicted. Called with the bindings' mutex held: it may take other locks
    /// (the registry's, the file store's), which must never be held while calling in here.
    using InUse = std::function<bool(const std::string& user)>;
    static constexpr bool granted(Decision d) noexcept { return d <= Decision::kSameAddress; }

    explicit Bindings(Limits limits) : limits_(limits) {}

    /// Decides on a token request for `user` from the IP address `ip`. `proof`: the digest of a
    /// token the requester showed, which the account service found valid for `user` (nothing when
    /// none). A granted request holds its binding (created if new) until `issued` or `failed`.
    /// A new user id from an address that created max_per_address bindings ends one of that
    /// address's own (one that never authenticated first, else the least recently used); past
    /// max_bindings it ends the least recently used binding that never authenticated. Never one
    /// that is pinned, being issued or `in_use`; when there is none, kAddressFull or kFull.
    /// `evicted` (optional) tells what was ended.
    Decision request(const std::string& user, const std::string& ip,
                     const std::optional<std::string>& proof, TimePoint now,
                     const InUse& in_use = {}, Eviction* evicted = nullptr);
    /// The token that `request` granted was issued to `ip`: it is one of the holder's now.
    void issued(const std::string& user, const std::string& ip, std::string digest,
                TimePoint expires, TimePoint now);
    /// The token that `request` granted could not be issued: a binding it created is forgotten.
    void failed(const std::string& user);

    /// Whether the token whose digest is `digest` is one of `user`'s holder's, unexpired; a use
    /// (and the binding has authenticated: it is no longer the first evicted).
    bool holds(const std::string& user, const std::string& digest, TimePoint now);
    bool bound(const std::string& user) const;
    /// Binds `user`, when nobody holds it, to no token and no address: nobody can take it (at
    /// startup, for stored files whose recipient has no binding, e.g. files stored before
    /// bindings existed); it ends like any binding once no file waits for it.
    void hold_unclaimed(const std::string& user, TimePoint now);
    /// Records a use of `user`'s binding (its last connection left: the ttl counts from now).
    void touch(const std::string& user, TimePoint now);
    /// Keeps `user`'s binding from ending until `unpin` (a file is being stored for it); false,
    /// and nothing to unpin, when the user id is not held.
    [[nodiscard]] bool pin(const std::string& user);
    void unpin(const std::string& user);

    /// The user ids whose bindings may end now: ttl after their last use and their last token's
    /// expiry, and neither pinned nor waiting for a token being issued.
    std::vector<std::string> due(TimePoint now) const;
    /// Ends `user`'s binding if it is still due (checked again: it may have been used since
    /// `due`). The caller first makes sure that the user is not online and no file waits for it.
    bool end_if_due(const std::string& user, TimePoint now);

    std::size_t size() const;
    /// Bindings created from the address key of `ip` (IPv6 by /64).
    std::size_t from_address(const std::string& ip) const;
    /// Bytes held: user ids, addresses, digests, and a fixed amount of bookkeeping per binding.
    std::size_t bytes() const;

    /// Grows at every change that a snapshot holds but times of use: new and ended bindings,
    /// tokens, a first authentication. Worth writing at once.
    std::uint64_t version() const;
    /// Grows when only a time of use changed (an authentication, a leave): worth writing lazily,
    /// since losing one costs a binding at most the time since the last write of its ttl.
    std::uint64_t touches() const;
    struct Snapshot {
        std::string text;  // every binding as JSON
        std::uint64_t version = 0;
        std::uint64_t touches = 0;
    };
    Snapshot snapshot() const;
    struct Loaded {
        std::size_t loaded = 0;
        std::size_t dropped = 0;  // past max_bindings
    };
    /// Replaces the bindings with a snapshot's (at startup, before any request), dropping those
    /// past max_bindings (counted: the caller logs them); nothing when the text is not a
    /// snapshot. Those past their end are kept for the sweep (`due`), which leaves them while
    /// files wait for their user ids.
    std::optional<Loaded> load(std::string_view text, TimePoint now);

private:
    struct Token {
        std::string digest;  // the token's SHA-256, hex (as the store keeps it)
        TimePoint expires;
        std::string address;  // the IP address it was issued to
    };
    struct Binding {
        std::vector<Token> tokens;  // oldest first
        std::string address;        // the IP address of the holder's latest token (kept when
                                    // the tokens expire; empty: nobody may renew without one)
        std::string origin;         // the address key it was created from ("": none, not counted)
        TimePoint last_used{};
        std::uint32_t issuing = 0;  // granted requests not yet issued or failed
        std::uint32_t pins = 0;
        bool ever_issued = false;    // a token was issued for it: only the ttl may end it
        bool authenticated = false;  // a session authenticated with one of its tokens
    };
    using Map = std::unordered_map<std::string, Binding>;

    TimePoint end_of(const Binding& b) const;
    static void drop_expired(Binding& b, TimePoint now);
    /// Under mutex_. The binding to end to make room: of `origin` alone when given, else one that
    /// never authenticated; by_user_.end() when none may end.
    Map::iterator victim(const std::string* origin, const InUse& in_use);
    void erase(Map::iterator it);  // under mutex_, with the per-address count

    const Limits limits_;
    mutable std::mutex mutex_;
    Map by_user_;
    std::unordered_map<std::string, std::size_t> per_origin_;  // bindings by origin, non-zero
    std::uint64_t version_ = 0;
    std::uint64_t touches_ = 0;
};

}  // namespace hearth::frontends::moonshare
