#pragma once

// The store every backend opens: its executor (store/executor.hpp) and the repositories
// (store/repo/) on it. A backend (sqlite/, postgres/) only brings its connections, as the
// executor's backend, and implements the SQL dialect layer (store/sql/sql.hpp) on them.

#include <memory>
#include <string>

#include <hearth/account_store.hpp>
#include <hearth/character_store.hpp>
#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "store/executor.hpp"
#include "store/storage_config.hpp"

namespace hearth::store {

class SqlStore final : public Store {
public:
    /// Starts the executor on `backend`'s connections (already open). Throws std::system_error
    /// when a thread cannot start.
    SqlStore(std::unique_ptr<detail::ExecutorBackend> backend,
             const detail::ExecutorSettings& settings, core::MetricsRegistry& metrics);
    /// Stops accepting operations, finishes everything queued (running its completions), joins
    /// the threads, then closes the backend's connections. Must not run on a store thread.
    ~SqlStore() override;
    SqlStore(const SqlStore&) = delete;
    SqlStore& operator=(const SqlStore&) = delete;

    Mailboxes& mailboxes() override { return *mailboxes_; }
    Logs& logs() override { return *logs_; }
    AccountStore& accounts() override { return *accounts_; }
    CharacterStore& characters() override { return *characters_; }
    bool healthy() const noexcept override { return executor_.healthy(); }

private:
    // First: destroyed last, once the executor's threads no longer use its connections.
    std::unique_ptr<detail::ExecutorBackend> backend_;
    detail::StoreExecutor executor_;
    std::unique_ptr<Mailboxes> mailboxes_;
    std::unique_ptr<Logs> logs_;
    std::unique_ptr<AccountStore> accounts_;
    std::unique_ptr<CharacterStore> characters_;
};

/// The executor's settings from `[storage]`, with `readers` reader threads. The config's ranges
/// keep the bounds at 1 or more; a struct filled in by code might not, and a zero would stall the
/// writer or refuse everything, so they are raised to 1.
detail::ExecutorSettings executor_settings(const StorageConfig& config, std::string name,
                                           std::size_t readers, const StoreTestHooks& hooks);

}  // namespace hearth::store
