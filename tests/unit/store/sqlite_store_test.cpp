// What only the SQLite store does, on real files in a temporary directory: durability through
// kill -9, storage failures (full, read-only, locked) and the files it creates. Behaviour both
// backends share is in store_test.cpp.

#include "store/sqlite/sqlite_store.hpp"
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store_test_support.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

/// A store in its own temporary directory with its own metrics.
struct Fixture {
    explicit Fixture(StorageConfig c = {}, SqliteTestHooks hooks = {}) : config(std::move(c)) {
        open(std::move(hooks));
    }
    void open(SqliteTestHooks hooks = {}) {
        store = open_sqlite_store(config, dir.str(), metrics, std::move(hooks));
    }
    Mailboxes& m() { return store->mailboxes(); }
    std::string path() const { return sqlite_path(config, dir.str()); }

    TempDir dir;
    StorageConfig config;
    core::MetricsRegistry metrics;
    std::unique_ptr<Store> store;
};

// `kill -9` right after the acknowledgements: what was acknowledged is in the file. The child
// is forked while this process has no other thread (the store's threads end with each test).
TEST(SqliteStoreDeathTest, AcknowledgedAppendsSurviveKill9) {
    GTEST_FLAG_SET(death_test_style, "fast");
    TempDir dir;
    StorageConfig config;
    EXPECT_EXIT(
        {
            core::MetricsRegistry metrics;
            auto store = open_sqlite_store(config, dir.str(), metrics);
            std::atomic<int> acked{0};
            std::promise<void> all;
            for (int i = 0; i < 200; ++i) {
                store->mailboxes().append("k", std::to_string(i), 1000,
                                          [&](Result<AppendResult> r) {
                                              if (r && ++acked == 200) {
                                                  all.set_value();
                                              }
                                          });
            }
            if (all.get_future().wait_for(kDeadline) == std::future_status::ready) {
                std::raise(SIGKILL);  // no destructor, no checkpoint, no close
            }
            std::exit(1);
        },
        ::testing::KilledBySignal(SIGKILL), "");
    core::MetricsRegistry metrics;
    auto store = open_sqlite_store(config, dir.str(), metrics);
    auto entries = read(store->mailboxes(), "k");
    ASSERT_TRUE(entries);
    ASSERT_EQ(entries->size(), 200u);
    for (int i = 0; i < 200; ++i) {
        EXPECT_EQ((*entries)[static_cast<std::size_t>(i)].body, std::to_string(i));
    }
}

TEST(SqliteStoreTest, LockHeldByAnotherProcessGivesUnavailable) {
    StorageConfig config;
    config.busy_timeout_ms = 50;
    Fixture f(config);
    ASSERT_TRUE(append(f.m(), "k", "before"));

    // Another connection (a backup, `hearth migrate`) holds the write lock past the timeout.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(f.path().c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto r = append(f.m(), "k", "blocked");
    EXPECT_EQ(r.error(), make_error_code(Errc::kUnavailable));
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "busy"}}), 1u);
    EXPECT_TRUE(f.store->healthy());  // contention, not a broken disk
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("before"));  // WAL: reads go on

    ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
    EXPECT_TRUE(append(f.m(), "k", "after"));
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("before", "after"));
}

TEST(SqliteStoreTest, FullDiskGivesStorageFailureAndALogLine) {
    LogCapture log;
    SqliteTestHooks hooks;
    // The file may not grow beyond its current pages: what a full disk looks like to SQLite.
    hooks.writer_setup_sql = "PRAGMA max_page_count = 1";
    hooks.probe_interval = 1h;  // no probe: health follows the operations alone
    Fixture f({}, std::move(hooks));

    auto r = append(f.m(), "big", std::string(256 * 1024, 'x'));
    EXPECT_EQ(r.error(), make_error_code(Errc::kStorageFailure));
    EXPECT_TRUE(log.wait_for({"error", f.path(), "disk is full", "SQLITE_FULL"})) << log.all();
    EXPECT_FALSE(f.store->healthy());
    EXPECT_EQ(f.metrics.gauge("hearth_store_healthy", "").value(), 0);
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "full"}}), 1u);

    // One line per run of failures, not per operation.
    EXPECT_EQ(append(f.m(), "big", std::string(256 * 1024, 'y')).error(),
              make_error_code(Errc::kStorageFailure));
    EXPECT_EQ(log.count({"error", "disk is full"}), 1u);

    // Reads go on, and nothing of the failed writes is there.
    EXPECT_EQ(depth(f.m(), "big").value(), 0u);
    EXPECT_TRUE(read(f.m(), "big").value().empty());

    // Space for a small entry in the pages the file already has: the store recovers.
    EXPECT_TRUE(append(f.m(), "small", "fits"));
    EXPECT_TRUE(f.store->healthy());
    EXPECT_TRUE(log.wait_for({"succeed again"}));
}

TEST(SqliteStoreTest, IdleProbeNoticesThatWritesWorkAgain) {
    LogCapture log;
    SqliteTestHooks hooks;
    // The page limit refuses a large entry, while the probe (which rewrites a header field and
    // needs no new page) succeeds: like space freed on a full disk, with no traffic after.
    hooks.writer_setup_sql = "PRAGMA max_page_count = 1";
    hooks.probe_interval = 10ms;
    Fixture f({}, std::move(hooks));
    EXPECT_EQ(append(f.m(), "big", std::string(256 * 1024, 'x')).error(),
              make_error_code(Errc::kStorageFailure));
    EXPECT_TRUE(log.wait_for({"write transactions succeed again"})) << log.all();
    EXPECT_TRUE(f.store->healthy());
    EXPECT_EQ(f.metrics.gauge("hearth_store_healthy", "").value(), 1);
}

TEST(SqliteStoreTest, ReadOnlyDatabaseGivesStorageFailureAndReadsGoOn) {
    LogCapture log;
    Fixture f;
    ASSERT_TRUE(append(f.m(), "k", "kept"));
    f.store.reset();
    SqliteTestHooks hooks;
    hooks.writer_setup_sql = "PRAGMA query_only = 1";  // every write is refused as read-only
    hooks.probe_interval = 10ms;  // probes fail too: health stays false, and they are not counted
    f.open(std::move(hooks));

    EXPECT_EQ(append(f.m(), "k", "refused").error(), make_error_code(Errc::kStorageFailure));
    EXPECT_TRUE(log.wait_for({"error", f.path(), "read-only"})) << log.all();
    EXPECT_FALSE(f.store->healthy());
    EXPECT_EQ(remove_up_to(f.m(), "k", UINT64_MAX).error(), make_error_code(Errc::kStorageFailure));
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "read_only"}}), 2u);

    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("kept"));
    EXPECT_EQ(depth(f.m(), "k").value(), 1u);
    EXPECT_FALSE(f.store->healthy());
}

TEST(SqliteStoreTest, OpeningCreatesTheDataDirectory) {
    TempDir dir;
    core::MetricsRegistry metrics;
    const std::string data_dir = dir.file("a/b/data");
    auto store = open_sqlite_store({}, data_dir, metrics);
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(data_dir) / "hearth.db"));
    EXPECT_TRUE(append(store->mailboxes(), "k", "v"));
}

TEST(SqliteStoreTest, OpeningFailsWithAMessageNamingThePath) {
    TempDir dir;
    core::MetricsRegistry metrics;
    { std::ofstream(dir.file("not-a-dir")) << "x"; }
    try {
        (void)open_sqlite_store({}, dir.file("not-a-dir/data"), metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(dir.file("not-a-dir")));
    }
    {
        std::ofstream(dir.file("hearth.db")) << "this is not a database, but it is long enough "
                                                "to be read as one: SQLite checks the header";
    }
    try {
        (void)open_sqlite_store({}, dir.str(), metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(dir.file("hearth.db")));
        EXPECT_THAT(e.what(), HasSubstr("not a database"));
    }
}

}  // namespace
}  // namespace hearth::store
