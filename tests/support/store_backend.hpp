#pragma once

// Which store the test servers use. The app-level suites (Homestead, the accounts API, logs) run
// on both: SQLite (a file in the server's data_dir, the default) and PostgreSQL (a database of its
// own on the test process's PostgreSQL server, tests/unit/store/postgres_server.hpp). A
// value-parameterised suite derives from StoreBackendTest and is instantiated with
// HEARTH_INSTANTIATE_STORE_BACKENDS; every TestServer (and test_config_toml) of its tests then
// uses the test's backend without further changes to the test.
//
// Store identity follows data_dir, as with SQLite: servers given the same `server.data_dir` (a
// restart) share one database, and every other server gets a fresh, empty one.

#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "support/server.hpp"

namespace hearth::test {

enum class StoreBackend { kSqlite, kPostgres };

std::string to_string(StoreBackend backend);
/// For GoogleTest, which names each instance's parameter (also in ctest's test names).
void PrintTo(StoreBackend backend, std::ostream* out);

/// The backend of the servers created from now on in this process (the main thread sets it).
void use_store_backend(StoreBackend backend);
StoreBackend store_backend();

/// The [storage] overrides for a server whose data_dir is `data_dir_toml` (TOML text, as in
/// Overrides) under the current backend: none for SQLite; for PostgreSQL the driver and the URL of
/// that data_dir's database, created on first use (the PostgreSQL server starts on first use,
/// with fsync off: these tests are about behaviour, not crashes).
Overrides store_overrides(const std::string& data_dir_toml);

/// Names the instances "sqlite" and "postgres".
struct StoreBackendName {
    std::string operator()(const ::testing::TestParamInfo<StoreBackend>& param) const {
        return to_string(param.param);
    }
};

/// A fixture whose parameter is the store backend.
class StoreBackendTest : public ::testing::TestWithParam<StoreBackend> {
protected:
    void SetUp() override { use_store_backend(GetParam()); }
    void TearDown() override { use_store_backend(StoreBackend::kSqlite); }
};

}  // namespace hearth::test

/// Instantiates the StoreBackendTest-derived `suite` for both backends: tests are named
/// Store/<suite>.<test>/sqlite and Store/<suite>.<test>/postgres (tests/CMakeLists.txt registers
/// the PostgreSQL ones per suite, so that each suite starts one PostgreSQL server).
#define HEARTH_INSTANTIATE_STORE_BACKENDS(suite)                                         \
    INSTANTIATE_TEST_SUITE_P(Store, suite,                                               \
                             ::testing::Values(::hearth::test::StoreBackend::kSqlite,    \
                                               ::hearth::test::StoreBackend::kPostgres), \
                             ::hearth::test::StoreBackendName())
