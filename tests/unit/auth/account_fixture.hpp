#pragma once

// An AccountService over a real SQLite store in a fresh directory: the fixture the auth and
// Moonshare unit tests share, with password hashing cheap enough for a test.

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <utility>

#include <gtest/gtest.h>

#include "auth/account_service.hpp"
#include "core/metrics.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "unit/store/store_test_support.hpp"

namespace hearth::auth::test {

/// The cheapest hashing libsodium accepts: the tests check what is stored and answered, not cost.
inline AuthConfig fast_hashing() {
    AuthConfig c;
    c.password_ops_limit = 1;
    c.password_mem_limit_kib = 8;
    return c;
}

/// Hashes run inline, on the store's thread that asked: as the CLI does.
inline void run_inline(std::function<void()> work) {
    work();
}

/// The value of `f`, or an exception if it is not ready within the store tests' deadline.
template <class T>
T wait(std::future<T>& f) {
    if (f.wait_for(store::test::kDeadline) != std::future_status::ready) {
        throw std::runtime_error("timed out");
    }
    return f.get();
}

class SqliteAccountsTest : public ::testing::Test {
protected:
    explicit SqliteAccountsTest(AuthConfig config = fast_hashing(),
                                BlockingExecutor blocking = run_inline)
        : store_(store::open_store(store::StorageConfig{}, dir_.str(), metrics_)),
          accounts_(store_->accounts(), std::move(blocking), metrics_, std::move(config)) {}

    store::test::TempDir dir_;
    core::MetricsRegistry metrics_;
    std::unique_ptr<store::Store> store_;
    AccountService accounts_;
};

}  // namespace hearth::auth::test
