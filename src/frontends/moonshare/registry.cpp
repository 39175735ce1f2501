#include "frontends/moonshare/registry.hpp"
#include <algorithm>
#include <utility>

#include "core/metrics.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

namespace {

// Pending connect requests per target; past it new requests are rejected at once.
constexpr std::size_t kMaxPendingRequests = 64;

void send_all(const std::vector<ConnectionHandle>& to, const SharedPayload& payload) {
    for (const auto& h : to) {
        if (auto c = h.lock()) {
            (void)c->send(payload);
        }
    }
}

}  // namespace

PlayerRegistry::PlayerRegistry(Limits limits, std::vector<core::Gauge*> online)
    : limits_(limits), online_(std::move(online)), per_instance_(online_.size(), 0) {}

PlayerRegistry::Admit PlayerRegistry::admit(ConnectionId id, const std::string& user,
                                            const std::string& address, std::size_t instance,
                                            ConnectionHandle handle) {
    {
        std::lock_guard lock(mutex_);
        if (per_instance_[instance] >= limits_.per_instance) {
            return Admit::kFull;
        }
        auto& from_address = per_address_[address];
        if (limits_.per_address > 0 && from_address >= limits_.per_address) {
            return Admit::kAddressFull;
        }
        ++from_address;
        ++per_instance_[instance];
        players_[id] =
            Player{user,        address,          instance, std::chrono::system_clock::now(),
                   ++activity_, std::move(handle)};
        by_user_[user].push_back(id);
    }
    online_[instance]->add(1);
    changed_ = true;
    return Admit::kAdmitted;
}

bool PlayerRegistry::remove(ConnectionId id) {
    std::vector<ConnectionHandle> peers_to_tell;
    std::string user;
    {
        std::lock_guard lock(mutex_);
        auto it = players_.find(id);
        if (it == players_.end()) {
            return false;
        }
        user = it->second.user;
        --per_instance_[it->second.instance];
        online_[it->second.instance]->sub(1);
        if (auto a = per_address_.find(it->second.address);
            a != per_address_.end() && --a->second == 0) {
            per_address_.erase(a);
        }
        players_.erase(it);
        auto& ids = by_user_[user];
        std::erase(ids, id);
        if (!ids.empty()) {
            changed_ = true;
            return false;  // the user is still here on another connection
        }
        by_user_.erase(user);
        pending_requests_.erase(user);
        if (auto l = links_.find(user); l != links_.end()) {
            for (const auto& peer : l->second) {
                links_[peer].erase(user);
                for (auto c : connections_locked(peer)) {
                    peers_to_tell.push_back(std::move(c));
                }
            }
            links_.erase(l);
        }
    }
    changed_ = true;
    if (!peers_to_tell.empty()) {
        send_all(peers_to_tell, make_text(encode_disconnected(user)));
    }
    broadcast_user_list();
    return true;
}

void PlayerRegistry::touch(ConnectionId id) {
    std::lock_guard lock(mutex_);
    if (auto it = players_.find(id); it != players_.end()) {
        it->second.active = ++activity_;
    }
}

std::vector<ConnectionHandle> PlayerRegistry::connections_locked(const std::string& user) const {
    std::vector<ConnectionHandle> out;
    if (auto it = by_user_.find(user); it != by_user_.end()) {
        for (auto id : it->second) {
            out.push_back(players_.at(id).connection);
        }
    }
    return out;
}

std::vector<ConnectionHandle> PlayerRegistry::connections_of(const std::string& user) const {
    std::lock_guard lock(mutex_);
    return connections_locked(user);
}

ConnectionPtr PlayerRegistry::latest_connection(const std::string& user) const {
    std::lock_guard lock(mutex_);
    if (auto it = by_user_.find(user); it != by_user_.end() && !it->second.empty()) {
        return players_.at(it->second.back()).connection.lock();
    }
    return nullptr;
}

bool PlayerRegistry::is_online(const std::string& user) const {
    std::lock_guard lock(mutex_);
    return by_user_.count(user) > 0;
}

std::size_t PlayerRegistry::players_online() const {
    std::lock_guard lock(mutex_);
    return players_.size();
}

std::vector<std::size_t> PlayerRegistry::instance_counts() const {
    std::lock_guard lock(mutex_);
    return per_instance_;
}

std::vector<std::string> PlayerRegistry::users_by_activity() const {
    std::vector<std::pair<std::uint64_t, std::string>> by;
    {
        std::lock_guard lock(mutex_);
        std::unordered_map<std::string, std::uint64_t> latest;
        for (const auto& [id, p] : players_) {
            auto& a = latest[p.user];
            a = std::max(a, p.active);
        }
        by.reserve(latest.size());
        for (auto& [u, a] : latest) {
            by.emplace_back(a, u);
        }
    }
    std::sort(by.begin(), by.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    std::vector<std::string> out;
    out.reserve(by.size());
    for (auto& [a, u] : by) {
        out.push_back(std::move(u));
    }
    return out;
}

std::string PlayerRegistry::online_text() const {
    return encode_online(users_by_activity());
}

std::string PlayerRegistry::user_list_text() const {
    return encode_user_list_update(users_by_activity());
}

std::string PlayerRegistry::players_json() const {
    std::vector<Player> copy;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, p] : players_) {
            copy.push_back(p);
        }
    }
    std::sort(copy.begin(), copy.end(),
              [](const Player& a, const Player& b) { return a.since < b.since; });
    std::string out = "[";
    for (std::size_t i = 0; i < copy.size(); ++i) {
        out += i ? "," : "";
        out += JsonObject()
                   .str("userId", copy[i].user)
                   .str("instance", instance_name(copy[i].instance))
                   .str("since", iso_time(copy[i].since))
                   .done();
    }
    return out + "]";
}

void PlayerRegistry::broadcast_user_list() {
    auto payload = make_text(user_list_text());
    std::vector<ConnectionHandle> all;
    {
        std::lock_guard lock(mutex_);
        all.reserve(players_.size());
        for (const auto& [id, p] : players_) {
            all.push_back(p.connection);
        }
    }
    send_all(all, payload);
}

void PlayerRegistry::send_to_user(const std::string& user, const SharedPayload& payload) {
    send_all(connections_of(user), payload);
}

bool PlayerRegistry::request(const std::string& from, const std::string& to) {
    {
        std::lock_guard lock(mutex_);
        if (!by_user_.count(to)) {
            return false;
        }
        auto& pending = pending_requests_[to];
        if (pending.size() >= kMaxPendingRequests && !pending.count(from)) {
            return false;
        }
        pending.insert(from);
    }
    send_to_user(to, make_text(encode_connect_request(from)));
    return true;
}

bool PlayerRegistry::answer(const std::string& answerer, const std::string& requester,
                            bool accept) {
    {
        std::lock_guard lock(mutex_);
        auto it = pending_requests_.find(answerer);
        if (it == pending_requests_.end() || it->second.erase(requester) == 0) {
            return false;
        }
        if (it->second.empty()) {
            pending_requests_.erase(it);
        }
        if (accept && by_user_.count(requester)) {
            links_[answerer].insert(requester);
            links_[requester].insert(answerer);
        }
    }
    send_to_user(requester, make_text(encode_connect_answer(accept, answerer)));
    return true;
}

}  // namespace hearth::frontends::moonshare
