// Mailbox quotas and lifetimes (MailboxLimits, Mailboxes::expire) and the writer's byte bound, on
// both backends (security part 2, items 3 and 11): a namespace's quota on non-empty mailboxes and
// on bytes refuses the append and stores nothing; expired entries are never read and `expire`
// deletes them within its budget; the per-namespace figures stay exact when the table is edited
// by hand; the writer refuses operations at its byte bound like at its count bound.

#include <atomic>
#include <future>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class MailboxLimitsTest : public ::testing::TestWithParam<std::string> {};

Result<AppendResult> append_limited(Mailboxes& m, std::string key, std::string body,
                                    const MailboxLimits& limits) {
    return sync<AppendResult>(
        [&](auto done) { m.append(std::move(key), std::move(body), limits, std::move(done)); });
}

Result<std::uint64_t> expire(Mailboxes& m, std::string prefix, std::uint64_t max_delete) {
    return sync<std::uint64_t>(
        [&](auto done) { m.expire(std::move(prefix), max_delete, std::move(done)); });
}

/// Runs SQL on the store's database from another connection, as an operator would.
void exec_sql(BackendStore& f, const std::string& sqlite_sql, const std::string& postgres_sql) {
    if (f.postgres()) {
        PostgresServer::exec(f.config.postgres_url, postgres_sql);
        return;
    }
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(sqlite_path(f.config, f.dir.str()).c_str(), &other), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(other, sqlite_sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "");
    sqlite3_free(error);
    sqlite3_close(other);
}

/// "mailboxes|bytes" of a namespace as mailbox_usage holds it ("" without a row).
std::string usage(BackendStore& f, const std::string& prefix) {
    if (f.postgres()) {
        return PostgresServer::query(f.config.postgres_url,
                                     "SELECT mailboxes || '|' || bytes FROM mailbox_usage WHERE "
                                     "prefix = convert_to('" +
                                         prefix + "', 'UTF8')");
    }
    sqlite3* other = nullptr;
    EXPECT_EQ(sqlite3_open(sqlite_path(f.config, f.dir.str()).c_str(), &other), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(other,
                                 "SELECT mailboxes || '|' || bytes FROM mailbox_usage WHERE "
                                 "prefix = ?1",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    sqlite3_bind_text(stmt, 1, prefix.c_str(), -1, SQLITE_TRANSIENT);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(other);
    return out;
}

TEST_P(MailboxLimitsTest, NamespaceQuotaOnMailboxesRefusesANewOneAndStoresNothing) {
    BackendStore f(GetParam());
    const MailboxLimits limits{.max_depth = 10, .max_mailboxes = 2};
    ASSERT_TRUE(append_limited(f.m(), "ns:a", "1", limits));
    ASSERT_TRUE(append_limited(f.m(), "ns:b", "2", limits));

    auto refused = append_limited(f.m(), "ns:c", "3", limits);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), make_error_code(Errc::kLimitReached));
    EXPECT_EQ(depth(f.m(), "ns:c").value(), 0u);

    // A mailbox that exists takes more; another namespace has its own count.
    EXPECT_TRUE(append_limited(f.m(), "ns:a", "4", limits));
    EXPECT_TRUE(append_limited(f.m(), "other:c", "5", limits));
    EXPECT_EQ(usage(f, "ns:"), "2|15");  // "ns:a" + "1", "ns:b" + "2", "ns:a" + "4"

    // Once a mailbox empties, its place is free again.
    EXPECT_EQ(remove_up_to(f.m(), "ns:b", UINT64_MAX).value(), 1u);
    EXPECT_TRUE(append_limited(f.m(), "ns:c", "3", limits));
    EXPECT_THAT(bodies(read_prefix(f.m(), "ns:").value()), ElementsAre("1", "4", "3"));
}

TEST_P(MailboxLimitsTest, NamespaceQuotaOnBytesCountsKeysAndBodiesAndWhatTheDepthDrops) {
    BackendStore f(GetParam());
    const std::string body(37, 'x');  // with the 3-byte key: 40 bytes an entry
    const MailboxLimits limits{.max_depth = 10, .max_bytes = 100};
    ASSERT_TRUE(append_limited(f.m(), "q:k", body, limits));
    ASSERT_TRUE(append_limited(f.m(), "q:j", body, limits));
    EXPECT_EQ(usage(f, "q:"), "2|80");

    auto refused = append_limited(f.m(), "q:k", body, limits);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), make_error_code(Errc::kTooLarge));
    EXPECT_EQ(depth(f.m(), "q:k").value(), 1u);
    EXPECT_EQ(usage(f, "q:"), "2|80");

    // Exactly at the quota is allowed.
    EXPECT_TRUE(append_limited(f.m(), "q:k", std::string(17, 'y'), limits));
    EXPECT_EQ(usage(f, "q:"), "2|100");

    // At its depth a mailbox drops its oldest entries with the append: their bytes make room.
    const MailboxLimits shallow{.max_depth = 1, .max_bytes = 100};
    auto replaced = append_limited(f.m(), "q:j", body, shallow);
    ASSERT_TRUE(replaced);
    EXPECT_EQ(replaced->dropped, 1u);
    EXPECT_EQ(usage(f, "q:"), "2|100");
    EXPECT_FALSE(append_limited(f.m(), "q:j", body + "z", shallow));

    // Another namespace has its own bytes.
    EXPECT_TRUE(append_limited(f.m(), "r:k", body, limits));
    EXPECT_EQ(usage(f, "r:"), "1|40");
}

TEST_P(MailboxLimitsTest, ExpiredEntriesAreNeverReadAndExpireDeletesThemWithinItsBudget) {
    BackendStore f(GetParam());
    const MailboxLimits day{.max_depth = 10, .lifetime = std::chrono::hours(24)};
    auto kept = append_limited(f.m(), "a:1", "kept", day);
    ASSERT_TRUE(kept);
    for (const char* body : {"old1", "old2", "old3"}) {
        ASSERT_TRUE(append_limited(f.m(), "a:1", body, day));
    }
    ASSERT_TRUE(append_limited(f.m(), "b:1", "old4", day));
    ASSERT_TRUE(append(f.m(), "a:2", "forever"));  // no lifetime

    auto entries = read(f.m(), "a:1").value();
    ASSERT_EQ(entries.size(), 4u);
    ASSERT_TRUE(entries[0].expires_at.has_value());
    EXPECT_EQ(*entries[0].expires_at - entries[0].stored_at, std::chrono::hours(24));
    EXPECT_FALSE(read(f.m(), "a:2").value()[0].expires_at.has_value());

    // The clock is moved by moving the entries' expiry into the past.
    exec_sql(f, "UPDATE mailbox SET expires_at = 1 WHERE substr(body, 1, 3) = CAST('old' AS BLOB)",
             "UPDATE mailbox SET expires_at = 1 WHERE substring(body FROM 1 FOR 3) = 'old'::bytea");
    EXPECT_THAT(bodies(read(f.m(), "a:1").value()), ElementsAre("kept"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "").value()), ElementsAre("kept", "forever"));
    EXPECT_THAT(read(f.m(), "b:1").value(), IsEmpty());
    // Until the sweep they still count.
    EXPECT_EQ(depth(f.m(), "a:1").value(), 4u);

    EXPECT_EQ(expire(f.m(), "a:", 2).value(), 2u);  // the budget
    EXPECT_EQ(expire(f.m(), "a:", 2).value(), 1u);
    EXPECT_EQ(expire(f.m(), "a:", 2).value(), 0u);
    EXPECT_EQ(depth(f.m(), "a:1").value(), 1u);
    EXPECT_EQ(depth(f.m(), "b:1").value(), 1u);  // another prefix: left alone
    EXPECT_EQ(usage(f, "a:"), "2|17");           // "a:1" + "kept", "a:2" + "forever"
    EXPECT_EQ(expire(f.m(), "", 10).value(), 1u);
    EXPECT_EQ(depth(f.m(), "b:1").value(), 0u);
    EXPECT_EQ(usage(f, "b:"), "0|0");
    EXPECT_EQ(read(f.m(), "a:1").value()[0].seq, kept->seq);
}

TEST_P(MailboxLimitsTest, UsageStaysExactWhenTheTableIsEditedByHand) {
    BackendStore f(GetParam());
    for (const char* key : {"x:a", "x:a", "x:b", "y:a"}) {
        ASSERT_TRUE(append(f.m(), key, "12345"));
    }
    EXPECT_EQ(usage(f, "x:"), "2|24");
    EXPECT_EQ(usage(f, "y:"), "1|8");
    // One entry moves to another namespace, one body grows, one entry goes.
    exec_sql(f,
             "UPDATE mailbox SET key = 'y:b' WHERE key = 'x:b';"
             "UPDATE mailbox SET body = CAST('123456789' AS BLOB) WHERE key = 'y:a';"
             "DELETE FROM mailbox WHERE seq = (SELECT min(seq) FROM mailbox);",
             "UPDATE mailbox SET key = 'y:b'::bytea WHERE key = 'x:b'::bytea;"
             "UPDATE mailbox SET body = '123456789'::bytea WHERE key = 'y:a'::bytea;"
             "DELETE FROM mailbox WHERE seq = (SELECT min(seq) FROM mailbox);");
    EXPECT_EQ(usage(f, "x:"), "1|8");
    EXPECT_EQ(usage(f, "y:"), "2|20");
    if (f.postgres()) {
        PostgresServer::exec(f.config.postgres_url, "TRUNCATE mailbox");
        EXPECT_EQ(usage(f, "x:"), "0|0");
        EXPECT_EQ(usage(f, "y:"), "0|0");
    }
}

// Item 11: 10,000 queued appends of 2 MiB would be 20 GiB. At the byte bound a new operation
// fails at once with unavailable, counted apart from the count bound; one that fits still goes.
TEST_P(MailboxLimitsTest, WriterByteBoundFailsFastWithUnavailable) {
    StorageConfig config;
    config.writer_queue_max_bytes = 1000;
    WriterGate gate;
    BackendStore f(GetParam(), config, gate.hooks());
    std::atomic<int> ok{0};
    std::promise<void> all_ok;
    auto count_ok = [&](Result<AppendResult> r) {
        EXPECT_TRUE(r);
        if (++ok == 3) {
            all_ok.set_value();
        }
    };
    f.m().append("k", std::string(99, 'a'), 100, count_ok);  // 100 bytes with the key
    ASSERT_TRUE(gate.wait_entered());  // held in the running batch: still counted
    f.m().append("k", std::string(799, 'b'), 100, count_ok);
    auto& bytes = f.metrics.gauge("hearth_store_queue_bytes", "", {{"queue", "write"}});
    EXPECT_EQ(bytes.value(), 900);

    std::optional<Result<AppendResult>> refused;
    f.m().append("k", std::string(200, 'c'), 100, [&](Result<AppendResult> r) { refused = r; });
    ASSERT_TRUE(refused.has_value());  // at once, on the calling thread
    EXPECT_EQ(refused->error(), make_error_code(Errc::kUnavailable));
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "queue_bytes"}}), 1u);
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "queue_full"}}), 0u);

    f.m().append("k", std::string(99, 'd'), 100, count_ok);  // fits: 1000 exactly
    EXPECT_EQ(bytes.value(), 1000);
    gate.release();
    ASSERT_EQ(all_ok.get_future().wait_for(kDeadline), std::future_status::ready);
    auto stored = read(f.m(), "k").value();
    ASSERT_EQ(stored.size(), 3u);
    EXPECT_EQ(stored[1].body, std::string(799, 'b'));
    EXPECT_EQ(stored[2].body, std::string(99, 'd'));
}

TEST_P(MailboxLimitsTest, WriterTakesOneOperationLargerThanItsByteBoundWhenItHoldsNothing) {
    StorageConfig config;
    config.writer_queue_max_bytes = 1000;
    WriterGate gate;
    BackendStore f(GetParam(), config, gate.hooks());
    std::promise<Result<AppendResult>> big;
    f.m().append("k", std::string(5000, 'x'), 10,
                 [&](Result<AppendResult> r) { big.set_value(r); });
    ASSERT_TRUE(gate.wait_entered());
    std::optional<Result<AppendResult>> refused;
    f.m().append("k", "y", 10, [&](Result<AppendResult> r) { refused = r; });
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->error(), make_error_code(Errc::kUnavailable));
    gate.release();
    auto future = big.get_future();
    ASSERT_EQ(future.wait_for(kDeadline), std::future_status::ready);
    EXPECT_TRUE(future.get());
}

INSTANTIATE_TEST_SUITE_P(Backends, MailboxLimitsTest, backends(), backend_name);

}  // namespace
}  // namespace hearth::store
