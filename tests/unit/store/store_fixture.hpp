#pragma once

// A store on either backend, for the suites that run on both (TEST_P over "sqlite" and
// "postgres"): SQLite in a temporary directory, PostgreSQL in a fresh database on the test
// process's own server (postgres_server.hpp). Also the writer gate that holds the writer's first
// batch, which works the same on both (it is a hook of the shared executor).

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "postgres_server.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store_test_support.hpp"

namespace hearth::store::test {

/// The backends every TEST_P suite runs on; test names end in /sqlite or /postgres.
inline auto backends() {
    return ::testing::Values(std::string("sqlite"), std::string("postgres"));
}
inline std::string backend_name(const ::testing::TestParamInfo<std::string>& info) {
    return info.param;
}

/// A store of one backend with its own metrics.
struct BackendStore {
    explicit BackendStore(std::string which, StorageConfig c = {}, StoreTestHooks hooks = {})
        : backend(std::move(which)), config(std::move(c)) {
        if (backend == "postgres") {
            config.driver = "postgres";
            config.postgres_url = PostgresServer::shared().create_database();
        }
        open(std::move(hooks));
    }
    void open(StoreTestHooks hooks = {}) {
        if (backend == "postgres") {
            store = open_postgres_store(config, metrics, std::move(hooks));
        } else {
            SqliteTestHooks sqlite_hooks;
            static_cast<StoreTestHooks&>(sqlite_hooks) = std::move(hooks);
            store = open_sqlite_store(config, dir.str(), metrics, std::move(sqlite_hooks));
        }
    }
    bool postgres() const { return backend == "postgres"; }
    Mailboxes& m() { return store->mailboxes(); }
    Logs& logs() { return store->logs(); }

    std::string backend;
    TempDir dir;
    StorageConfig config;
    core::MetricsRegistry metrics;
    std::unique_ptr<Store> store;
};

/// Blocks the writer's first batch until released; tells when the writer got there.
class WriterGate {
public:
    StoreTestHooks hooks() {
        StoreTestHooks h;
        h.before_batch = [this] {
            if (first_.exchange(false)) {
                entered_.set_value();
                EXPECT_EQ(released_future_.wait_for(kDeadline), std::future_status::ready);
            }
        };
        return h;
    }
    bool wait_entered() { return entered_future_.wait_for(kDeadline) == std::future_status::ready; }
    void release() { released_.set_value(); }

private:
    std::atomic<bool> first_{true};
    std::promise<void> entered_;
    std::future<void> entered_future_ = entered_.get_future();
    std::promise<void> released_;
    std::shared_future<void> released_future_ = released_.get_future().share();
};

}  // namespace hearth::store::test
