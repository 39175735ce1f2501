#include "frontends/moonshare/bindings.hpp"
#include <algorithm>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "auth/registration_throttle.hpp"
#include "auth/secrets.hpp"

namespace hearth::frontends::moonshare {

namespace json = boost::json;

namespace {

constexpr std::int64_t kSnapshotFormat = 1;
constexpr std::size_t kMaxUserIdBytes = 256;
constexpr std::size_t kMaxAddressBytes = 64;
// An address key: IPv4 or an IPv6 /64 prefix ("xxxx:xxxx:xxxx:xxxx::/64", 24 characters).
constexpr std::size_t kMaxOriginBytes = 32;
constexpr std::size_t kDigestBytes = 64;  // SHA-256, hex
constexpr std::size_t kBookkeepingBytes = 128;

std::int64_t seconds_of(Bindings::TimePoint t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Bindings::TimePoint time_of(std::int64_t s) {
    return Bindings::TimePoint(std::chrono::seconds(s));
}

std::string origin_of(std::string_view ip) {
    return ip.empty() ? std::string() : auth::address_key(ip).substr(0, kMaxOriginBytes);
}

}  // namespace

static_assert(kMaxUserIdBytes + kMaxAddressBytes + kMaxOriginBytes +
                      Bindings::kMaxTokensPerBinding *
                          (kDigestBytes + sizeof(Bindings::TimePoint) + kMaxAddressBytes) +
                      kBookkeepingBytes <=
                  Bindings::kMaxBindingBytes,
              "kMaxBindingBytes is the documented bound of one binding");

Bindings::TimePoint Bindings::end_of(const Binding& b) const {
    TimePoint end = b.last_used + limits_.ttl;
    for (const auto& t : b.tokens) {
        end = std::max(end, t.expires);
    }
    return end;
}

void Bindings::drop_expired(Binding& b, TimePoint now) {
    std::erase_if(b.tokens, [now](const Token& t) { return t.expires <= now; });
}

Bindings::Map::iterator Bindings::victim(const std::string* origin, const InUse& in_use) {
    // A scan, only when a bound is reached: at most max_bindings entries, and what it spares (an
    // index per address and per age) would cost memory on every binding for a rare event.
    auto best = by_user_.end();
    for (auto it = by_user_.begin(); it != by_user_.end(); ++it) {
        const Binding& b = it->second;
        if (b.pins != 0 || b.issuing != 0 || (origin != nullptr && b.origin != *origin) ||
            (origin == nullptr && b.authenticated)) {
            continue;
        }
        // Those that never authenticated go first (tokens minted and never used), then the least
        // recently used.
        if (best != by_user_.end() &&
            std::pair(best->second.authenticated, best->second.last_used) <=
                std::pair(b.authenticated, b.last_used)) {
            continue;
        }
        if (in_use && in_use(it->first)) {
            continue;
        }
        best = it;
    }
    return best;
}

void Bindings::erase(Map::iterator it) {
    if (!it->second.origin.empty()) {
        if (auto o = per_origin_.find(it->second.origin);
            o != per_origin_.end() && --o->second == 0) {
            per_origin_.erase(o);
        }
    }
    by_user_.erase(it);
    ++version_;
}

Bindings::Decision Bindings::request(const std::string& user, const std::string& ip,
                                     const std::optional<std::string>& proof, TimePoint now,
                                     const InUse& in_use, Eviction* evicted) {
    if (evicted != nullptr) {
        *evicted = Eviction::kNone;
    }
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        const std::string origin = origin_of(ip);
        if (limits_.max_per_address > 0 && !origin.empty()) {
            const auto o = per_origin_.find(origin);
            if (o != per_origin_.end() && o->second >= limits_.max_per_address) {
                // The address's own: a plugin makes a new user id at every start, and the ids it
                // left behind are the ones nobody uses.
                const auto v = victim(&origin, in_use);
                if (v == by_user_.end()) {
                    return Decision::kAddressFull;
                }
                erase(v);
                if (evicted != nullptr) {
                    *evicted = Eviction::kAddressCap;
                }
            }
        }
        if (by_user_.size() >= limits_.max_bindings) {
            const auto v = victim(nullptr, in_use);
            if (v == by_user_.end()) {
                return Decision::kFull;
            }
            erase(v);
            if (evicted != nullptr) {
                *evicted = Eviction::kFull;
            }
        }
        Binding b;
        b.address = ip.substr(0, kMaxAddressBytes);
        b.origin = origin;
        b.last_used = now;
        b.issuing = 1;
        if (!b.origin.empty()) {
            ++per_origin_[b.origin];
        }
        by_user_.emplace(user, std::move(b));
        ++version_;
        return Decision::kNew;
    }
    Binding& b = it->second;
    drop_expired(b, now);
    Decision d = Decision::kHeld;
    if (proof && std::any_of(b.tokens.begin(), b.tokens.end(), [&](const Token& t) {
            return auth::equal_constant_time(t.digest, *proof);
        })) {
        d = Decision::kHolder;
    } else if (limits_.renew_from_same_ip && !ip.empty() &&
               (b.address == ip || std::any_of(b.tokens.begin(), b.tokens.end(),
                                               [&](const Token& t) { return t.address == ip; }))) {
        d = Decision::kSameAddress;
    }
    if (granted(d)) {
        ++b.issuing;
    }
    return d;
}

void Bindings::issued(const std::string& user, const std::string& ip, std::string digest,
                      TimePoint expires, TimePoint now) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        return;  // cannot happen: a granted request holds its binding until now
    }
    Binding& b = it->second;
    b.issuing -= std::min<std::uint32_t>(b.issuing, 1);
    drop_expired(b, now);
    b.tokens.push_back(Token{std::move(digest), expires, ip.substr(0, kMaxAddressBytes)});
    if (b.tokens.size() > kMaxTokensPerBinding) {
        b.tokens.erase(
            b.tokens.begin(),
            b.tokens.begin() + static_cast<std::ptrdiff_t>(b.tokens.size() - kMaxTokensPerBinding));
    }
    b.address = ip.substr(0, kMaxAddressBytes);
    b.last_used = now;
    b.ever_issued = true;
    ++version_;
}

void Bindings::failed(const std::string& user) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        return;
    }
    Binding& b = it->second;
    b.issuing -= std::min<std::uint32_t>(b.issuing, 1);
    if (!b.ever_issued && b.issuing == 0 && b.pins == 0) {
        // A binding created by this request, never issued a token: the user id is free again, as
        // if nobody had asked. One that was issued (its tokens may have expired while its holder
        // is online or files wait) ends by its ttl alone.
        erase(it);
    }
}

bool Bindings::holds(const std::string& user, const std::string& digest, TimePoint now) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        return false;
    }
    Binding& b = it->second;
    drop_expired(b, now);
    const bool held = std::any_of(b.tokens.begin(), b.tokens.end(), [&](const Token& t) {
        return auth::equal_constant_time(t.digest, digest);
    });
    if (held) {
        b.last_used = now;
        if (!b.authenticated) {
            b.authenticated = true;
            ++version_;  // what eviction spares: written at once
        } else {
            ++touches_;  // a time of use alone: written lazily
        }
    }
    return held;
}

void Bindings::hold_unclaimed(const std::string& user, TimePoint now) {
    std::lock_guard lock(mutex_);
    if (by_user_.count(user) == 0) {
        Binding b;
        b.last_used = now;  // no token and no address: nobody can renew it
        by_user_.emplace(user, std::move(b));
        ++version_;
    }
}

bool Bindings::bound(const std::string& user) const {
    std::lock_guard lock(mutex_);
    return by_user_.count(user) > 0;
}

void Bindings::touch(const std::string& user, TimePoint now) {
    std::lock_guard lock(mutex_);
    if (auto it = by_user_.find(user); it != by_user_.end()) {
        it->second.last_used = std::max(it->second.last_used, now);
        ++touches_;
    }
}

bool Bindings::pin(const std::string& user) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        return false;
    }
    ++it->second.pins;
    return true;
}

void Bindings::unpin(const std::string& user) {
    std::lock_guard lock(mutex_);
    if (auto it = by_user_.find(user); it != by_user_.end() && it->second.pins > 0) {
        --it->second.pins;
    }
}

std::vector<std::string> Bindings::due(TimePoint now) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [user, b] : by_user_) {
        if (b.pins == 0 && b.issuing == 0 && end_of(b) <= now) {
            out.push_back(user);
        }
    }
    return out;
}

bool Bindings::end_if_due(const std::string& user, TimePoint now) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end() || it->second.pins != 0 || it->second.issuing != 0 ||
        end_of(it->second) > now) {
        return false;
    }
    erase(it);
    return true;
}

std::size_t Bindings::size() const {
    std::lock_guard lock(mutex_);
    return by_user_.size();
}

std::size_t Bindings::from_address(const std::string& ip) const {
    const auto key = origin_of(ip);
    std::lock_guard lock(mutex_);
    const auto it = per_origin_.find(key);
    return it == per_origin_.end() ? 0 : it->second;
}

std::size_t Bindings::bytes() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [user, b] : by_user_) {
        n += user.size() + b.address.size() + b.origin.size() + kBookkeepingBytes;
        for (const auto& t : b.tokens) {
            n += t.digest.size() + sizeof t.expires + t.address.size();
        }
    }
    return n;
}

std::uint64_t Bindings::version() const {
    std::lock_guard lock(mutex_);
    return version_;
}

std::uint64_t Bindings::touches() const {
    std::lock_guard lock(mutex_);
    return touches_;
}

Bindings::Snapshot Bindings::snapshot() const {
    json::array list;
    Snapshot out;
    {
        std::lock_guard lock(mutex_);
        out.version = version_;
        out.touches = touches_;
        list.reserve(by_user_.size());
        for (const auto& [user, b] : by_user_) {
            json::array tokens;
            for (const auto& t : b.tokens) {
                tokens.push_back(json::object{{"digest", t.digest},
                                              {"expires_s", seconds_of(t.expires)},
                                              {"address", t.address}});
            }
            list.push_back(json::object{{"user", user},
                                        {"address", b.address},
                                        {"origin", b.origin},
                                        {"authenticated", b.authenticated},
                                        {"last_used_s", seconds_of(b.last_used)},
                                        {"tokens", std::move(tokens)}});
        }
    }
    out.text =
        json::serialize(json::object{{"format", kSnapshotFormat}, {"bindings", std::move(list)}});
    return out;
}

std::optional<Bindings::Loaded> Bindings::load(std::string_view text, TimePoint now) {
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    const auto* o = !ec && v.is_object() ? &v.get_object() : nullptr;
    const auto* format = o ? o->if_contains("format") : nullptr;
    const auto* list = o ? o->if_contains("bindings") : nullptr;
    if (format == nullptr || !format->is_int64() || format->get_int64() != kSnapshotFormat ||
        list == nullptr || !list->is_array()) {
        return std::nullopt;
    }
    Map loaded;
    std::size_t dropped = 0;
    for (const auto& entry : list->get_array()) {
        const auto* e = entry.if_object();
        if (e == nullptr) {
            return std::nullopt;
        }
        const auto* user = e->if_contains("user");
        const auto* address = e->if_contains("address");
        const auto* last_used = e->if_contains("last_used_s");
        const auto* tokens = e->if_contains("tokens");
        if (user == nullptr || !user->is_string() || user->get_string().empty() ||
            user->get_string().size() > kMaxUserIdBytes || address == nullptr ||
            !address->is_string() || last_used == nullptr || !last_used->is_int64() ||
            tokens == nullptr || !tokens->is_array()) {
            return std::nullopt;
        }
        const auto* origin = e->if_contains("origin");
        const auto* authenticated = e->if_contains("authenticated");
        if ((origin != nullptr && !origin->is_string()) ||
            (authenticated != nullptr && !authenticated->is_bool())) {
            return std::nullopt;
        }
        Binding b;
        b.ever_issued = true;  // a saved binding ends by its ttl alone
        b.address = std::string(address->get_string()).substr(0, kMaxAddressBytes);
        // Files written before these fields: the origin is the latest address's, and the binding
        // counts as used (it is spared by the eviction of unused ones).
        b.origin = origin != nullptr ? std::string(origin->get_string()).substr(0, kMaxOriginBytes)
                                     : origin_of(b.address);
        b.authenticated = authenticated == nullptr || authenticated->get_bool();
        b.last_used = time_of(last_used->get_int64());
        for (const auto& tv : tokens->get_array()) {
            const auto* t = tv.if_object();
            const auto* digest = t ? t->if_contains("digest") : nullptr;
            const auto* expires = t ? t->if_contains("expires_s") : nullptr;
            const auto* token_address = t ? t->if_contains("address") : nullptr;
            if (digest == nullptr || !digest->is_string() ||
                digest->get_string().size() != kDigestBytes || expires == nullptr ||
                !expires->is_int64() || token_address == nullptr || !token_address->is_string()) {
                return std::nullopt;
            }
            b.tokens.push_back(
                Token{std::string(digest->get_string()), time_of(expires->get_int64()),
                      std::string(token_address->get_string()).substr(0, kMaxAddressBytes)});
        }
        drop_expired(b, now);
        if (b.tokens.size() > kMaxTokensPerBinding) {
            b.tokens.erase(b.tokens.begin(),
                           b.tokens.begin() +
                               static_cast<std::ptrdiff_t>(b.tokens.size() - kMaxTokensPerBinding));
        }
        // A binding past its end is loaded all the same: the sweep ends it unless files still
        // wait for its user id (they must not go to whoever takes the id next).
        if (loaded.size() >= limits_.max_bindings) {
            ++dropped;
            continue;
        }
        loaded[std::string(user->get_string())] = std::move(b);
    }
    std::lock_guard lock(mutex_);
    by_user_ = std::move(loaded);
    per_origin_.clear();
    for (const auto& [user, b] : by_user_) {
        if (!b.origin.empty()) {
            ++per_origin_[b.origin];
        }
    }
    ++version_;
    return Loaded{by_user_.size(), dropped};
}

}  // namespace hearth::frontends::moonshare
