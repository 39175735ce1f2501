#include "frontends/moonshare/bindings.hpp"
#include <algorithm>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "auth/secrets.hpp"

namespace hearth::frontends::moonshare {

namespace json = boost::json;

namespace {

constexpr std::int64_t kSnapshotFormat = 1;
constexpr std::size_t kMaxUserIdBytes = 256;
constexpr std::size_t kMaxAddressBytes = 64;
constexpr std::size_t kDigestBytes = 64;  // SHA-256, hex
constexpr std::size_t kBookkeepingBytes = 128;

std::int64_t seconds_of(Bindings::TimePoint t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Bindings::TimePoint time_of(std::int64_t s) {
    return Bindings::TimePoint(std::chrono::seconds(s));
}

}  // namespace

static_assert(kMaxUserIdBytes + kMaxAddressBytes +
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

Bindings::Decision Bindings::request(const std::string& user, const std::string& ip,
                                     const std::optional<std::string>& proof, TimePoint now) {
    std::lock_guard lock(mutex_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) {
        if (by_user_.size() >= limits_.max_bindings) {
            return Decision::kFull;
        }
        Binding b;
        b.address = ip.substr(0, kMaxAddressBytes);
        b.last_used = now;
        b.issuing = 1;
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
        by_user_.erase(it);
        ++version_;
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
        ++version_;
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
        ++version_;
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
    by_user_.erase(it);
    ++version_;
    return true;
}

std::size_t Bindings::size() const {
    std::lock_guard lock(mutex_);
    return by_user_.size();
}

std::size_t Bindings::bytes() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [user, b] : by_user_) {
        n += user.size() + b.address.size() + kBookkeepingBytes;
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

std::pair<std::string, std::uint64_t> Bindings::snapshot() const {
    json::array list;
    std::uint64_t version = 0;
    {
        std::lock_guard lock(mutex_);
        version = version_;
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
                                        {"last_used_s", seconds_of(b.last_used)},
                                        {"tokens", std::move(tokens)}});
        }
    }
    return {
        json::serialize(json::object{{"format", kSnapshotFormat}, {"bindings", std::move(list)}}),
        version};
}

std::optional<std::size_t> Bindings::load(std::string_view text, TimePoint now) {
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    const auto* o = !ec && v.is_object() ? &v.get_object() : nullptr;
    const auto* format = o ? o->if_contains("format") : nullptr;
    const auto* list = o ? o->if_contains("bindings") : nullptr;
    if (format == nullptr || !format->is_int64() || format->get_int64() != kSnapshotFormat ||
        list == nullptr || !list->is_array()) {
        return std::nullopt;
    }
    std::unordered_map<std::string, Binding> loaded;
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
        Binding b;
        b.ever_issued = true;  // a saved binding ends by its ttl alone
        b.address = std::string(address->get_string()).substr(0, kMaxAddressBytes);
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
            continue;
        }
        loaded[std::string(user->get_string())] = std::move(b);
    }
    std::lock_guard lock(mutex_);
    by_user_ = std::move(loaded);
    ++version_;
    return by_user_.size();
}

}  // namespace hearth::frontends::moonshare
