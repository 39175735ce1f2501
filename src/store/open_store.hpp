#pragma once

// The store the config asks for: `[storage] driver = "sqlite"` (sqlite/sqlite_store.hpp) or
// `"postgres"` (postgres/postgres_store.hpp). What the app and `hearth migrate` call.

#include <memory>
#include <string>

#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "store/migrations.hpp"
#include "store/storage_config.hpp"

namespace hearth::store {

/// Opens the store of `config.driver`, after applying pending migrations: SQLite in
/// `config.sqlite_file` (relative to `data_dir`, which is created if needed), or PostgreSQL at
/// `config.postgres_url` (`data_dir` unused). Throws std::runtime_error naming the file or the
/// database (a URL never with its password) and the cause, or for an unknown driver. `metrics`
/// must outlive the store; the store's destructor drains it (see store.hpp).
std::unique_ptr<Store> open_store(const StorageConfig& config, const std::string& data_dir,
                                  core::MetricsRegistry& metrics);

/// Applies pending migrations to the database of `config.driver` and reports what it did (for
/// `hearth migrate`; `report.summary()` is the line to print, naming the file or the URL without
/// its password). Throws std::runtime_error like open_store.
MigrationReport migrate_store(const StorageConfig& config, const std::string& data_dir);

/// The database as logs and messages name it: the SQLite file's path, or the PostgreSQL URL with
/// its password masked.
std::string store_location(const StorageConfig& config, const std::string& data_dir);

}  // namespace hearth::store
