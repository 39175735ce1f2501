#include "store/open_store.hpp"
#include <filesystem>
#include <stdexcept>

#include "pg/pg.hpp"
#include "store/postgres/postgres_migrations.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace hearth::store {
namespace {

[[noreturn]] void unknown_driver(const StorageConfig& config) {
    throw std::runtime_error("storage.driver: unknown driver \"" + config.driver +
                             "\" (expected sqlite or postgres)");
}

}  // namespace

std::unique_ptr<Store> open_store(const StorageConfig& config, const std::string& data_dir,
                                  core::MetricsRegistry& metrics) {
    if (config.driver == "sqlite") {
        return open_sqlite_store(config, data_dir, metrics);
    }
    if (config.driver == "postgres") {
        return open_postgres_store(config, metrics);
    }
    unknown_driver(config);
}

MigrationReport migrate_store(const StorageConfig& config, const std::string& data_dir) {
    if (config.driver == "sqlite") {
        const std::string path = sqlite_path(config, data_dir);
        // Like open_sqlite_store: a first `hearth migrate` may come before the first start.
        const auto parent = std::filesystem::path(path).parent_path();
        if (!parent.empty()) {
            std::error_code ec;
            std::filesystem::create_directories(parent, ec);
            if (ec) {
                throw std::runtime_error(parent.string() +
                                         ": cannot create the data directory: " + ec.message());
            }
        }
        return migrate_sqlite(path);
    }
    if (config.driver == "postgres") {
        if (config.postgres_url.empty()) {
            throw std::runtime_error(
                "storage.postgres_url: required when storage.driver = \"postgres\"");
        }
        return migrate_postgres(config.postgres_url);
    }
    unknown_driver(config);
}

std::string store_location(const StorageConfig& config, const std::string& data_dir) {
    return config.driver == "postgres" ? pg::mask_url(config.postgres_url)
                                       : sqlite_path(config, data_dir);
}

}  // namespace hearth::store
