// Stored log entries on both backends (a real SQLite file, a real PostgreSQL server): insertion
// order, every query filter, the cursor, retention by age and by row count, and that the data
// survives reopening the store.

#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class LogStoreTest : public ::testing::TestWithParam<std::string> {};

LogRow row(std::int64_t time, std::string room, std::string user, std::string level,
           std::string body) {
    return LogRow{.server_time_ms = time,
                  .room = std::move(room),
                  .user = std::move(user),
                  .level = std::move(level),
                  .body = std::move(body)};
}

Result<void> append(Logs& logs, std::vector<LogRow> rows) {
    return sync<void>([&](auto done) { logs.append(std::move(rows), std::move(done)); });
}
Result<std::vector<LogRow>> query(Logs& logs, LogQuery q) {
    return sync<std::vector<LogRow>>([&](auto done) { logs.query(std::move(q), std::move(done)); });
}
Result<std::uint64_t> prune(Logs& logs, std::int64_t older_than, std::uint64_t max_rows,
                            std::uint64_t max_delete = 1000,
                            std::uint64_t max_bytes = std::numeric_limits<std::uint64_t>::max()) {
    return sync<std::uint64_t>([&](auto done) {
        logs.prune(older_than, max_rows, max_bytes, max_delete, std::move(done));
    });
}
Result<std::uint64_t> count(Logs& logs) {
    return sync<std::uint64_t>([&](auto done) { logs.count(std::move(done)); });
}

std::vector<std::string> bodies_of(const Result<std::vector<LogRow>>& rows) {
    std::vector<std::string> out;
    if (!rows) {
        ADD_FAILURE() << "query failed: " << rows.error().message();
        return out;
    }
    for (const auto& r : *rows) {
        out.push_back(r.body);
    }
    return out;
}

/// Five entries in two rooms, three users, three levels, at times 1000..5000.
void seed(Logs& logs) {
    ASSERT_TRUE(
        append(logs, {row(1000, "", "server", "INFO", "a"), row(2000, "r1", "alice", "ERROR", "b"),
                      row(3000, "r1", "bob", "INFO", "c"), row(4000, "r2", "alice", "WARN", "d"),
                      row(5000, "r1", "alice", "INFO", "e")}));
}

TEST_P(LogStoreTest, QueryReturnsNewestFirstWithTheStoredColumns) {
    BackendStore f(GetParam());
    seed(f.logs());
    auto rows = query(f.logs(), {});
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 5u);
    EXPECT_EQ(rows->front().body, "e");
    EXPECT_EQ(rows->front().server_time_ms, 5000);
    EXPECT_EQ(rows->front().room, "r1");
    EXPECT_EQ(rows->front().user, "alice");
    EXPECT_EQ(rows->front().level, "INFO");
    for (std::size_t i = 1; i < rows->size(); ++i) {
        EXPECT_GT((*rows)[i - 1].id, (*rows)[i].id);
    }
    EXPECT_EQ(*count(f.logs()), 5u);
}

TEST_P(LogStoreTest, EveryFilterAndTheirCombinations) {
    BackendStore f(GetParam());
    seed(f.logs());
    EXPECT_THAT(bodies_of(query(f.logs(), {.room = "r1"})), ElementsAre("e", "c", "b"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.room = ""})), ElementsAre("a"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.user = "alice"})), ElementsAre("e", "d", "b"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.levels = {"ERROR", "WARN"}})), ElementsAre("d", "b"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.since_ms = 3000})), ElementsAre("e", "d", "c"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.room = "r1", .user = "alice"})), ElementsAre("e", "b"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.room = "r1", .levels = {"INFO"}, .since_ms = 3500})),
                ElementsAre("e"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.user = "alice", .levels = {"WARN"}})),
                ElementsAre("d"));
    EXPECT_THAT(bodies_of(query(f.logs(), {.room = "nope"})), IsEmpty());
    EXPECT_THAT(bodies_of(query(f.logs(), {.levels = {"x\"y", "INFO"}})),
                ElementsAre("e", "c", "a"));  // a quote in a level name matches nothing
}

TEST_P(LogStoreTest, PagesWithTheCursorUntilTheEnd) {
    BackendStore f(GetParam());
    seed(f.logs());
    std::vector<std::string> seen;
    std::optional<std::uint64_t> before;
    int pages = 0;
    for (;;) {
        auto rows = query(f.logs(), {.before_id = before, .limit = 2});
        ASSERT_TRUE(rows);
        if (rows->empty()) {
            break;
        }
        ++pages;
        for (const auto& r : *rows) {
            seen.push_back(r.body);
        }
        before = rows->back().id;
    }
    EXPECT_EQ(pages, 3);
    EXPECT_THAT(seen, ElementsAre("e", "d", "c", "b", "a"));
}

TEST_P(LogStoreTest, PruneByAgeThenByRowCountWithinTheBudget) {
    BackendStore f(GetParam());
    seed(f.logs());
    // Older than 2500: a and b.
    EXPECT_EQ(*prune(f.logs(), 2500, 100), 2u);
    EXPECT_THAT(bodies_of(query(f.logs(), {})), ElementsAre("e", "d", "c"));
    // At most 1 row: the two oldest go.
    EXPECT_EQ(*prune(f.logs(), 0, 1), 2u);
    EXPECT_THAT(bodies_of(query(f.logs(), {})), ElementsAre("e"));
    EXPECT_EQ(*count(f.logs()), 1u);
    // Nothing to do.
    EXPECT_EQ(*prune(f.logs(), 0, 1), 0u);

    // The budget caps one call; the caller calls again.
    ASSERT_TRUE(append(f.logs(), {row(6000, "", "", "", "f"), row(7000, "", "", "", "g"),
                                  row(8000, "", "", "", "h")}));
    EXPECT_EQ(*prune(f.logs(), 0, 1, 2), 2u);
    EXPECT_EQ(*prune(f.logs(), 0, 1, 2), 1u);
    EXPECT_THAT(bodies_of(query(f.logs(), {})), ElementsAre("h"));
}

TEST_P(LogStoreTest, IdsAreNotReusedAfterPruningAndRowsSurviveReopening) {
    BackendStore f(GetParam());
    seed(f.logs());
    const auto newest = query(f.logs(), {.limit = 1})->front().id;
    EXPECT_EQ(*prune(f.logs(), 0, 0), 5u);
    ASSERT_TRUE(append(f.logs(), {row(9000, "r", "u", "INFO", "z")}));
    const auto after = query(f.logs(), {})->front().id;
    EXPECT_GT(after, newest);

    f.store.reset();
    f.open();
    EXPECT_THAT(bodies_of(query(f.logs(), {})), ElementsAre("z"));
    EXPECT_EQ(*count(f.logs()), 1u);
}

TEST_P(LogStoreTest, EmptyAppendsAndTheCountStayExact) {
    BackendStore f(GetParam());
    seed(f.logs());
    // An empty append stores nothing and succeeds.
    EXPECT_TRUE(append(f.logs(), {}));
    EXPECT_EQ(*count(f.logs()), 5u);
    // Prune by count within one call after a new append: the count stays exact.
    ASSERT_TRUE(append(f.logs(), {row(6000, "r3", "carol", "DEBUG", "f")}));
    EXPECT_EQ(*count(f.logs()), 6u);
    EXPECT_EQ(*prune(f.logs(), 0, 3), 3u);
    EXPECT_EQ(*count(f.logs()), 3u);
    EXPECT_THAT(bodies_of(query(f.logs(), {})), ElementsAre("f", "e", "d"));
}

TEST_P(LogStoreTest, PruneByBytesDeletesTheFewestOldestWithinTheBudget) {
    BackendStore f(GetParam());
    const auto body = [](char c, std::size_t n) { return std::string(n, c); };
    // 100 + 200 + 300 + 400 bytes; "d" holds two 2-byte UTF-8 characters: bytes, not characters.
    ASSERT_TRUE(append(
        f.logs(), {row(1000, "", "", "", body('a', 100)), row(2000, "", "", "", body('b', 200)),
                   row(3000, "", "", "", body('c', 300)),
                   row(4000, "", "", "", body('d', 396) + "\xc3\xa9\xc3\xa9")}));
    // 1000 bytes stored; at most 1000: nothing goes.
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 1000), 0u);
    // At most 999: "a" alone brings it under.
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 999), 1u);
    // At most 700 of the 900 left: "b" (200) is just enough.
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 700), 1u);
    // At most 399 of the 700 left: "c" and "d" would be needed, the budget allows one.
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1, 399), 1u);
    EXPECT_EQ(*count(f.logs()), 1u);
    // "d" is 400 bytes (398 characters): over 399, it goes too.
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 399), 1u);
    EXPECT_EQ(*count(f.logs()), 0u);
    // The byte count stays exact through deletes: 50 bytes, bound 50.
    ASSERT_TRUE(append(f.logs(), {row(5000, "", "", "", body('e', 50))}));
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 50), 0u);
    EXPECT_EQ(*prune(f.logs(), 0, 100, 1000, 49), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, LogStoreTest, backends(), backend_name);

}  // namespace
}  // namespace hearth::store
