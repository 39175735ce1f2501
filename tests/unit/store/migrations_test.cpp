// Schema migrations on real files: a new file, running twice, upgrading a database made by an
// older build (with data in it), a failing migration, and a database from a newer build.

#include "store/migrations.hpp"
#include <stdexcept>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store/sqlite/sqlite_store.hpp"
#include "store_test_support.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

/// A connection for making and inspecting databases by hand.
class Raw {
public:
    explicit Raw(const std::string& path) {
        if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
            throw std::runtime_error("cannot open " + path);
        }
    }
    ~Raw() { sqlite3_close(db_); }
    Raw(const Raw&) = delete;
    Raw& operator=(const Raw&) = delete;

    void exec(const std::string& sql) {
        char* message = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
            std::string m = message != nullptr ? message : "?";
            sqlite3_free(message);
            throw std::runtime_error(sql + ": " + m);
        }
    }
    /// Every row of `sql`, its columns joined with '|'.
    std::vector<std::string> rows(const std::string& sql) {
        std::vector<std::string> out;
        auto on_row = [](void* arg, int n, char** values, char**) {
            std::string row;
            for (int i = 0; i < n; ++i) {
                row += (i > 0 ? "|" : "") + std::string(values[i] != nullptr ? values[i] : "NULL");
            }
            static_cast<std::vector<std::string>*>(arg)->push_back(row);
            return 0;
        };
        char* message = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), on_row, &out, &message) != SQLITE_OK) {
            std::string m = message != nullptr ? message : "?";
            sqlite3_free(message);
            throw std::runtime_error(sql + ": " + m);
        }
        return out;
    }
    int user_version() { return std::stoi(rows("PRAGMA user_version").at(0)); }

private:
    sqlite3* db_ = nullptr;
};

// Migration 1 as the first release wrote it; a database made from this text is what an older
// build left behind.
constexpr std::string_view kVersion1Sql = R"sql(
CREATE TABLE mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at INTEGER NOT NULL
);
CREATE INDEX mailbox_key_seq ON mailbox (key, seq);
CREATE TABLE mailbox_depth (key TEXT PRIMARY KEY, depth INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER mailbox_depth_insert AFTER INSERT ON mailbox BEGIN
    INSERT INTO mailbox_depth (key, depth) VALUES (NEW.key, 1)
        ON CONFLICT (key) DO UPDATE SET depth = depth + 1;
END;
CREATE TRIGGER mailbox_depth_delete AFTER DELETE ON mailbox BEGIN
    UPDATE mailbox_depth SET depth = depth - 1 WHERE key = OLD.key;
    DELETE FROM mailbox_depth WHERE key = OLD.key AND depth <= 0;
END;
)sql";

TEST(MigrationsTest, NewFileGetsEveryMigrationAndASecondRunIsANoOp) {
    TempDir dir;
    const std::string path = dir.file("new.db");
    const auto first = migrate_sqlite(path);
    EXPECT_EQ(first.path, path);
    EXPECT_EQ(first.from_version, 0);
    EXPECT_EQ(first.to_version, latest_sqlite_schema_version());
    EXPECT_THAT(first.applied, ElementsAre("1 mailboxes", "2 logs", "3 accounts", "4 log_bytes",
                                           "5 mailbox_quotas", "6 characters"));
    EXPECT_EQ(first.summary(),
              path +
                  ": schema version 0 -> 6 (applied: 1 mailboxes, 2 logs, 3 accounts, 4 log_bytes, "
                  "5 mailbox_quotas, 6 characters)");

    const auto second = migrate_sqlite(path);
    EXPECT_EQ(second.from_version, latest_sqlite_schema_version());
    EXPECT_EQ(second.to_version, latest_sqlite_schema_version());
    EXPECT_THAT(second.applied, IsEmpty());
    EXPECT_EQ(second.summary(), path + ": schema version 6, up to date");

    Raw raw(path);
    EXPECT_EQ(raw.user_version(), 6);
    EXPECT_THAT(raw.rows("PRAGMA journal_mode"), ElementsAre("wal"));
}

TEST(MigrationsTest, MigrationsAreNumberedWithoutGaps) {
    const auto list = sqlite_migrations();
    ASSERT_FALSE(list.empty());
    for (std::size_t i = 0; i < list.size(); ++i) {
        EXPECT_EQ(list[i].version, static_cast<int>(i) + 1);
        EXPECT_FALSE(list[i].name.empty());
    }
    EXPECT_EQ(latest_sqlite_schema_version(), list.back().version);

    TempDir dir;
    const Migration gap[] = {{1, "one", "SELECT 1"}, {3, "three", "SELECT 1"}};
    EXPECT_THROW(migrate_sqlite(dir.file("x.db"), gap), std::logic_error);
}

TEST(MigrationsTest, UnversionedDatabaseKeepsItsTablesAndGetsMailboxes) {
    TempDir dir;
    {
        Raw raw(dir.file("hearth.db"));
        raw.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me');");
    }
    core::MetricsRegistry metrics;
    auto store = open_sqlite_store({}, dir.str(), metrics);
    EXPECT_TRUE(append(store->mailboxes(), "k", "v"));
    store.reset();
    Raw raw(dir.file("hearth.db"));
    EXPECT_EQ(raw.user_version(), latest_sqlite_schema_version());
    EXPECT_THAT(raw.rows("SELECT text FROM notes"), ElementsAre("keep me"));
}

TEST(MigrationsTest, OlderDatabaseIsUpgradedAndItsDataSurvives) {
    TempDir dir;
    const std::string path = dir.file("old.db");
    {
        Raw raw(path);
        raw.exec(std::string(kVersion1Sql));
        raw.exec(
            "INSERT INTO mailbox (key, body, stored_at) VALUES ('k', 'first', 1000), ('k', "
            "'second', 2000), ('j', 'other', 3000);"
            "PRAGMA user_version = 1;");
    }
    // The current build applies what came after version 1 (the log table), once.
    {
        const auto report = migrate_sqlite(path);
        EXPECT_EQ(report.from_version, 1);
        EXPECT_THAT(report.applied, ElementsAre("2 logs", "3 accounts", "4 log_bytes",
                                                "5 mailbox_quotas", "6 characters"));
        EXPECT_THAT(migrate_sqlite(path).applied, IsEmpty());
    }
    // A later build with one more migration (what the accounts issue will add): it runs, once.
    constexpr std::string_view kNextSql =
        "CREATE TABLE next_feature (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
        "ALTER TABLE mailbox ADD COLUMN sender TEXT;";
    std::vector<Migration> next(sqlite_migrations().begin(), sqlite_migrations().end());
    const int next_version = latest_sqlite_schema_version() + 1;
    next.push_back({next_version, "next", kNextSql});
    const auto report = migrate_sqlite(path, next);
    EXPECT_EQ(report.from_version, next_version - 1);
    EXPECT_EQ(report.to_version, next_version);
    EXPECT_THAT(report.applied, ElementsAre(std::to_string(next_version) + " next"));
    EXPECT_THAT(migrate_sqlite(path, next).applied, IsEmpty());

    Raw raw(path);
    EXPECT_EQ(raw.user_version(), next_version);
    EXPECT_THAT(raw.rows("SELECT key, body, stored_at, sender FROM mailbox ORDER BY seq"),
                ElementsAre("k|first|1000|NULL", "k|second|2000|NULL", "j|other|3000|NULL"));
    EXPECT_THAT(raw.rows("SELECT key, depth FROM mailbox_depth ORDER BY key"),
                ElementsAre("j|1", "k|2"));
    // Migration 5 counted the entries already there: two mailboxes in the namespace "" (no ':'
    // in their keys), their keys and bodies 6 + 7 + 6 bytes.
    EXPECT_THAT(raw.rows("SELECT prefix, mailboxes, bytes FROM mailbox_usage"),
                ElementsAre("|2|19"));
    EXPECT_THAT(raw.rows("SELECT count(*) FROM next_feature"), ElementsAre("0"));
}

TEST(MigrationsTest, StoreOpensAnOlderDatabaseWithItsData) {
    TempDir dir;
    {
        Raw raw(dir.file("hearth.db"));
        raw.exec(std::string(kVersion1Sql));
        raw.exec(
            "INSERT INTO mailbox (key, body, stored_at) VALUES ('k', 'first', 1000);"
            "PRAGMA user_version = 1;");
    }
    core::MetricsRegistry metrics;
    auto store = open_sqlite_store({}, dir.str(), metrics);
    auto entries = read(store->mailboxes(), "k").value();
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].body, "first");
    EXPECT_EQ(entries[0].stored_at, std::chrono::system_clock::time_point(1000ms));
    EXPECT_EQ(depth(store->mailboxes(), "k").value(), 1u);
}

TEST(MigrationsTest, FailedMigrationLeavesTheDatabaseAtThePreviousVersion) {
    TempDir dir;
    const std::string path = dir.file("bad.db");
    {
        // A table in the way of migration 1.
        Raw raw(path);
        raw.exec("CREATE TABLE mailbox (whatever TEXT); INSERT INTO mailbox VALUES ('mine');");
    }
    try {
        (void)migrate_sqlite(path);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(path));
        EXPECT_THAT(e.what(), HasSubstr("migration 1 mailboxes failed"));
        EXPECT_THAT(e.what(), HasSubstr("already exists"));
        EXPECT_THAT(e.what(), HasSubstr("stays at schema version 0"));
    }
    Raw raw(path);
    EXPECT_EQ(raw.user_version(), 0);
    EXPECT_THAT(raw.rows("SELECT whatever FROM mailbox"), ElementsAre("mine"));
    EXPECT_THAT(raw.rows("SELECT name FROM sqlite_master WHERE name = 'mailbox_depth'"), IsEmpty());

    // A later migration failing keeps the earlier ones.
    const std::string path2 = dir.file("half.db");
    std::vector<Migration> list(sqlite_migrations().begin(), sqlite_migrations().end());
    const int last = latest_sqlite_schema_version();
    list.push_back({last + 1, "broken", "CREATE TABLE t (x); THIS IS NOT SQL;"});
    EXPECT_THROW(migrate_sqlite(path2, list), std::runtime_error);
    Raw raw2(path2);
    EXPECT_EQ(raw2.user_version(), last);
    EXPECT_THAT(raw2.rows("SELECT name FROM sqlite_master WHERE name = 't'"), IsEmpty());
}

TEST(MigrationsTest, DatabaseFromANewerBuildIsRefused) {
    TempDir dir;
    {
        Raw raw(dir.file("hearth.db"));
        raw.exec("PRAGMA user_version = 99;");
    }
    core::MetricsRegistry metrics;
    try {
        (void)open_sqlite_store({}, dir.str(), metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(dir.file("hearth.db")));
        EXPECT_THAT(e.what(), HasSubstr("schema version 99 is newer than this build knows (" +
                                        std::to_string(latest_sqlite_schema_version()) + ")"));
    }
}

}  // namespace
}  // namespace hearth::store
