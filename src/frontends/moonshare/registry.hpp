#pragma once

// Moonshare's registry of authenticated players (docs/protocol/moonshare.md, "Player
// instances"): one for every instance, so that users on any instance see each other; their
// admission (player_limit per instance, max_players_per_address), the connect requests between
// them and the listings and pushes built from it. Thread-safe: one mutex, held for bookkeeping
// only, never across a send. It takes no other lock while holding it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <hearth/http.hpp>

namespace hearth::core {
class Gauge;
}  // namespace hearth::core

namespace hearth::frontends::moonshare {

class PlayerRegistry {
public:
    struct Limits {
        std::size_t per_instance = 0;  // player_limit
        std::size_t per_address = 0;   // max_players_per_address; 0: unlimited
    };
    /// `online`: one gauge per instance (their count is the number of instances).
    PlayerRegistry(Limits limits, std::vector<core::Gauge*> online);

    enum class Admit : std::uint8_t { kAdmitted, kFull, kAddressFull };

    /// Admits an authenticated connection of `user` from `address` (its key) on `instance`.
    Admit admit(ConnectionId id, const std::string& user, const std::string& address,
                std::size_t instance, ConnectionHandle handle);

    /// Forgets a connection; when it was its user's last, the user's peers are told and the user
    /// list goes to everyone. True when the user left (no connection of theirs remains).
    bool remove(ConnectionId id);

    /// Marks the connection's user as the most recently active.
    void touch(ConnectionId id);

    std::vector<ConnectionHandle> connections_of(const std::string& user) const;
    /// The user's most recently authenticated connection, if any.
    ConnectionPtr latest_connection(const std::string& user) const;
    bool is_online(const std::string& user) const;
    std::size_t players_online() const;
    /// Players per instance.
    std::vector<std::size_t> instance_counts() const;

    /// Distinct authenticated users, most recently active first.
    std::vector<std::string> users_by_activity() const;
    /// The answer to list_online, and user_list_update (both within the client's buffer).
    std::string online_text() const;
    std::string user_list_text() const;
    /// The gateway's /players: every player, oldest first.
    std::string players_json() const;

    void broadcast_user_list();
    void send_to_user(const std::string& user, const SharedPayload& payload);

    /// U asks V; false when V is offline or has too many requests waiting (rejected at once).
    bool request(const std::string& from, const std::string& to);
    /// V answers U's request; false when there was none.
    bool answer(const std::string& answerer, const std::string& requester, bool accept);

    /// Whether the player counts changed since the last call (the gateway pushes them).
    bool take_changed() { return changed_.exchange(false); }

private:
    struct Player {
        std::string user;
        std::string address;  // the client's address key, for max_players_per_address
        std::size_t instance = 0;
        std::chrono::system_clock::time_point since{};
        std::uint64_t active = 0;  // activity sequence: larger is more recent
        ConnectionHandle connection;
    };

    /// Under `mutex_`.
    std::vector<ConnectionHandle> connections_locked(const std::string& user) const;

    const Limits limits_;
    const std::vector<core::Gauge*> online_;
    std::atomic<bool> changed_{true};

    mutable std::mutex mutex_;
    std::unordered_map<ConnectionId, Player> players_;
    std::unordered_map<std::string, std::vector<ConnectionId>> by_user_;  // in admission order
    std::vector<std::size_t> per_instance_;
    std::unordered_map<std::string, std::size_t> per_address_;      // by address key, non-zero
    std::unordered_map<std::string, std::set<std::string>> links_;  // accepted pairs
    std::unordered_map<std::string, std::set<std::string>> pending_requests_;  // target -> from
    std::uint64_t activity_ = 0;
};

}  // namespace hearth::frontends::moonshare
