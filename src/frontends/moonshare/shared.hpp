#pragma once

// What the Moonshare front-end's connections share (internal to the front-end): each role an
// object of its own, with its own state and lock.
//
// Locks. Each role's mutex guards its own state only, and is held for bookkeeping, never across a
// send or a disk operation. Two are ever held together, in this order only: the bindings' mutex
// (Bindings::request), then the player registry's or the file store's (its `in_use` callback
// asks whether a user is online or has files waiting). Every other lock (the token pace, the
// session list, the upload slots, the gateway's subscribers, the binding file's writer, the
// refusal lines' budget) is a leaf: nothing else is taken while it is held.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/shard_set.hpp"
#include "frontends/moonshare/binding_file.hpp"
#include "frontends/moonshare/bindings.hpp"
#include "frontends/moonshare/files.hpp"
#include "frontends/moonshare/gateway.hpp"
#include "frontends/moonshare/moonshare.hpp"
#include "frontends/moonshare/registry.hpp"
#include "frontends/moonshare/relay.hpp"
#include "frontends/moonshare/stats.hpp"
#include "frontends/moonshare/token_pace.hpp"
#include "frontends/moonshare/tokens.hpp"

namespace hearth::frontends::moonshare {

/// Created by the front-end, shared by its connections and completions (they hold it by
/// shared_ptr, so that a completion after the front-end is gone still finds it).
struct MoonshareFrontend::Shared : std::enable_shared_from_this<Shared> {
    /// Blocking: indexes the stored files and loads the bindings.
    Shared(core::Runtime& runtime, auth::AccountService& accounts, core::MetricsRegistry& metrics,
           core::EventBus& events, const MoonshareConfig& config, const std::string& data_dir);

    /// The test seam of set_disk_hook.
    void before_disk(MoonshareFrontend::DiskStep step) const {
        if (disk_hook) {
            disk_hook(step);
        }
    }

    std::int64_t uptime_s() const {
        return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                started_steady)
            .count();
    }

    core::Runtime& runtime;  // its blocking pool: the disk
    core::ShardSet shards;
    auth::AccountService& accounts;
    core::EventBus& events;
    const MoonshareConfig config;
    const std::chrono::steady_clock::time_point started_steady;
    const std::chrono::system_clock::time_point started_wall;

    Stats stats;
    FileStore files;           // stored files and uploads on disk
    Bindings bindings;         // user ids and their holders
    BindingFile binding_file;  // ... on disk
    PlayerRegistry players;    // authenticated players, connect requests
    UploadSlots upload_slots;
    TokenPace pace;        // token requests per address
    SessionList sessions;  // tokens issued, for the listings
    GatewaySubscribers subscribers;
    const auth::OperatorAuth* operators = nullptr;  // set by add_routes, before any route runs
    std::function<void(MoonshareFrontend::DiskStep)> disk_hook;  // set_disk_hook (tests)
};

/// The housekeeping, once a second on shard 0 (`n` counts the ticks from 1): the gateway's push
/// when the player counts changed, and every minute the expiry of listed sessions, the token
/// pace's idle addresses and stored files; the bindings' expiry and saving.
void housekeeping_tick(const std::shared_ptr<MoonshareFrontend::Shared>& shared, std::uint64_t n);

}  // namespace hearth::frontends::moonshare
