#include "support/store_backend.hpp"
#include <atomic>
#include <map>
#include <mutex>

#include "unit/store/postgres_server.hpp"

namespace hearth::test {
namespace {

std::atomic<StoreBackend> g_backend{StoreBackend::kSqlite};

}  // namespace

std::string to_string(StoreBackend backend) {
    return backend == StoreBackend::kPostgres ? "postgres" : "sqlite";
}

void PrintTo(StoreBackend backend, std::ostream* out) {
    *out << to_string(backend);
}

void use_store_backend(StoreBackend backend) {
    g_backend.store(backend);
}

StoreBackend store_backend() {
    return g_backend.load();
}

Overrides store_overrides(const std::string& data_dir_toml) {
    if (store_backend() != StoreBackend::kPostgres) {
        return {};
    }
    // Keyed by the test too: a temporary directory's name may come back in a later test.
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string key =
        (test != nullptr ? std::string(test->test_suite_name()) + "." + test->name() : "") + "|" +
        data_dir_toml;
    static std::mutex mutex;
    static std::map<std::string, std::string> databases;  // test|data_dir -> URL
    std::lock_guard lock(mutex);
    auto it = databases.find(key);
    if (it == databases.end()) {
        it = databases.emplace(key, store::test::PostgresServer::shared().create_database()).first;
    }
    return {{"storage.driver", "\"postgres\""}, {"storage.postgres_url", "\"" + it->second + "\""}};
}

}  // namespace hearth::test
