// What only the PostgreSQL store does, against a real server started by the tests
// (postgres_server.hpp): migrations (once, idempotent, concurrent, failing, from a newer build),
// the server going away and coming back, lock timeouts, connection errors that name the host and
// port but never the password, the factory that picks the driver, and the account tables' conflicts
// and text rules (the account contract itself is account_store_test.cpp's, on both backends).

#include <algorithm>
#include <future>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <hearth/account_store.hpp>

#include "pg/pg.hpp"
#include "store/open_store.hpp"
#include "store/postgres/postgres_migrations.hpp"
#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr std::string_view kPassword = "pw-s3cret-xyzzy";

/// A fresh database on the test server, with a password in its URL (ignored by trust auth), so
/// that every message can be checked for it.
std::string fresh_url() {
    auto& server = PostgresServer::shared();
    const std::string plain = server.create_database();
    const auto slash = plain.rfind('/');
    const std::string name = plain.substr(slash + 1, plain.find('?') - slash - 1);
    return server.url(name, std::string(kPassword));
}

StorageConfig postgres_config(std::string url) {
    StorageConfig c;
    c.driver = "postgres";
    c.postgres_url = std::move(url);
    return c;
}

/// What a first migration applies: every migration, as MigrationReport names them ("1 mailboxes").
std::vector<std::string> all_migrations() {
    std::vector<std::string> out;
    for (const auto& m : postgres_migrations()) {
        out.push_back(std::to_string(m.version) + " " + std::string(m.name));
    }
    return out;
}

/// Waits (up to kDeadline) until `pred` holds.
template <class Pred>
bool eventually(Pred pred) {
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= until) {
            return false;
        }
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

TEST(PostgresMigrationsTest, ApplyOnceAndASecondRunIsANoOp) {
    const std::string url = fresh_url();
    const auto first = migrate_postgres(url);
    EXPECT_EQ(first.path, pg::mask_url(url));
    EXPECT_THAT(first.path, Not(HasSubstr(kPassword)));
    EXPECT_EQ(first.from_version, 0);
    EXPECT_EQ(first.to_version, latest_postgres_schema_version());
    EXPECT_THAT(first.applied, ElementsAre("1 mailboxes", "2 logs", "3 accounts", "4 log_bytes",
                                           "5 mailbox_quotas", "6 characters"));
    EXPECT_EQ(first.summary(),
              first.path +
                  ": schema version 0 -> 6 (applied: 1 mailboxes, 2 logs, 3 accounts, 4 log_bytes, "
                  "5 mailbox_quotas, 6 characters)");

    const auto second = migrate_postgres(url);
    EXPECT_EQ(second.from_version, latest_postgres_schema_version());
    EXPECT_THAT(second.applied, IsEmpty());
    EXPECT_EQ(second.summary(), first.path + ": schema version 6, up to date");
    EXPECT_EQ(PostgresServer::query(url, "SELECT version FROM hearth_schema"), "6");
    EXPECT_EQ(PostgresServer::query(url, "SELECT count(*) FROM hearth_schema"), "1");
}

TEST(PostgresMigrationsTest, BothBackendsHaveTheSameVersions) {
    const auto sqlite = sqlite_migrations();
    const auto postgres = postgres_migrations();
    ASSERT_EQ(sqlite.size(), postgres.size())
        << "a migration was added to one backend only: add it to store/migrations.cpp and "
           "store/postgres/postgres_migrations.cpp";
    for (std::size_t i = 0; i < sqlite.size(); ++i) {
        EXPECT_EQ(sqlite[i].version, postgres[i].version);
        EXPECT_EQ(sqlite[i].name, postgres[i].name);
    }
    EXPECT_EQ(latest_sqlite_schema_version(), latest_postgres_schema_version());
}

TEST(PostgresMigrationsTest, ConcurrentMigrationsApplyEachVersionOnce) {
    const std::string url = fresh_url();
    constexpr int kThreads = 4;
    std::vector<std::future<MigrationReport>> reports;
    std::promise<void> go;
    std::shared_future<void> start = go.get_future().share();
    for (int i = 0; i < kThreads; ++i) {
        reports.push_back(std::async(std::launch::async, [&] {
            start.wait();
            return migrate_postgres(url);
        }));
    }
    go.set_value();
    std::multiset<std::string> applied;
    for (auto& f : reports) {
        ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready);
        const auto report = f.get();  // no exception: none of them failed
        EXPECT_EQ(report.to_version, latest_postgres_schema_version());
        applied.insert(report.applied.begin(), report.applied.end());
    }
    const auto expected = all_migrations();
    EXPECT_EQ(applied, std::multiset<std::string>(expected.begin(), expected.end()));
    EXPECT_EQ(PostgresServer::query(url, "SELECT version FROM hearth_schema"),
              std::to_string(latest_postgres_schema_version()));

    core::MetricsRegistry metrics;
    auto store = open_postgres_store(postgres_config(url), metrics);
    EXPECT_TRUE(append(store->mailboxes(), "k", "v"));
    EXPECT_EQ(depth(store->mailboxes(), "k").value(), 1u);
}

TEST(PostgresMigrationsTest, FailedMigrationLeavesThePreviousVersion) {
    const std::string url = fresh_url();
    PostgresServer::exec(url,
                         "CREATE TABLE mailbox (whatever TEXT); INSERT INTO mailbox "
                         "VALUES ('mine')");
    try {
        (void)migrate_postgres(url);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(pg::mask_url(url)));
        EXPECT_THAT(e.what(), HasSubstr("migration 1 mailboxes failed"));
        EXPECT_THAT(e.what(), HasSubstr("already exists"));
        EXPECT_THAT(e.what(), HasSubstr("stays at schema version 0"));
        EXPECT_THAT(e.what(), Not(HasSubstr(kPassword)));
    }
    EXPECT_EQ(PostgresServer::query(url, "SELECT version FROM hearth_schema"), "0");
    EXPECT_EQ(PostgresServer::query(url, "SELECT whatever FROM mailbox"), "mine");
    EXPECT_EQ(PostgresServer::query(url,
                                    "SELECT count(*) FROM pg_tables WHERE tablename = "
                                    "'mailbox_depth'"),
              "0");

    // A later migration failing keeps the earlier ones.
    const std::string url2 = fresh_url();
    std::vector<Migration> list(postgres_migrations().begin(), postgres_migrations().end());
    const int last = latest_postgres_schema_version();
    list.push_back({last + 1, "broken", "CREATE TABLE t (x INT); THIS IS NOT SQL;"});
    EXPECT_THROW(migrate_postgres(url2, list), std::runtime_error);
    EXPECT_EQ(PostgresServer::query(url2, "SELECT version FROM hearth_schema"),
              std::to_string(last));
    EXPECT_EQ(PostgresServer::query(url2, "SELECT count(*) FROM pg_tables WHERE tablename = 't'"),
              "0");
}

TEST(PostgresMigrationsTest, DatabaseFromANewerBuildIsRefused) {
    const std::string url = fresh_url();
    (void)migrate_postgres(url);
    PostgresServer::exec(url, "UPDATE hearth_schema SET version = 99");
    core::MetricsRegistry metrics;
    try {
        (void)open_postgres_store(postgres_config(url), metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("schema version 99 is newer than this build knows (" +
                                        std::to_string(latest_postgres_schema_version()) + ")"));
    }
}

TEST(PostgresStoreTest, WrongUrlNamesTheHostAndPortButNotThePassword) {
    // Port 1 on loopback: privileged, and nothing listens there (connection refused).
    const int port = 1;
    const std::string url = "postgresql://hearth:" + std::string(kPassword) +
                            "@127.0.0.1:" + std::to_string(port) + "/hearth?connect_timeout=5";
    core::MetricsRegistry metrics;
    LogCapture log;
    try {
        (void)open_store(postgres_config(url), "unused", metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_THAT(what, HasSubstr("127.0.0.1"));
        EXPECT_THAT(what, HasSubstr(std::to_string(port)));
        EXPECT_THAT(what, HasSubstr("hearth:***@"));
        EXPECT_THAT(what, HasSubstr("cannot connect"));
        EXPECT_THAT(what, Not(HasSubstr(kPassword)));
    }
    EXPECT_THAT(log.all(), Not(HasSubstr(kPassword)));

    // A URL libpq cannot parse.
    try {
        (void)open_store(postgres_config("host=db password='pw-s3cret-xyzzy"), "unused", metrics);
        FAIL() << "expected an exception";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), Not(HasSubstr(kPassword)));
        EXPECT_THAT(e.what(), HasSubstr("password=***"));
    }
}

TEST(PostgresStoreTest, ServerGoingAwayFailsOperationsOnceLoggedAndRecovers) {
    auto& server = PostgresServer::shared();
    LogCapture log;
    StoreTestHooks hooks;
    hooks.probe_interval = 50ms;
    StorageConfig config = postgres_config(fresh_url());
    core::MetricsRegistry metrics;
    auto store = open_postgres_store(config, metrics, hooks);
    Mailboxes& m = store->mailboxes();
    ASSERT_TRUE(append(m, "k", "before"));
    EXPECT_TRUE(store->healthy());

    server.stop();
    auto failed = append(m, "k", "lost");
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), make_error_code(Errc::kStorageFailure));
    EXPECT_FALSE(store->healthy());
    EXPECT_EQ(metrics.gauge("hearth_store_healthy", "").value(), 0);
    EXPECT_EQ(append(m, "k", "lost too").error(), make_error_code(Errc::kStorageFailure));
    const auto read_failure = read(m, "k");
    ASSERT_FALSE(read_failure);
    EXPECT_EQ(read_failure.error(), make_error_code(Errc::kStorageFailure));
    EXPECT_GE(counter(metrics, "hearth_store_errors_total", {{"kind", "connection"}}), 3u);
    // One line per run of failures, naming the database without its password.
    EXPECT_TRUE(log.wait_for({"error", "write transaction failed", "cannot be reached"}))
        << log.all();
    EXPECT_TRUE(log.wait_for({"127.0.0.1", std::to_string(server.port())})) << log.all();
    EXPECT_EQ(log.count({"write transaction failed"}), 1u) << log.all();
    // The read ran on a reader (its own run of failures: one line) or, submitted right after a
    // write completed, in the writer's next transaction (the same run: no new line).
    EXPECT_LE(log.count({"read failed"}), 1u) << log.all();
    EXPECT_TRUE(log.wait_for({pg::mask_url(config.postgres_url)}));

    server.start();
    // The idle writer probes and reconnects by itself.
    EXPECT_TRUE(eventually([&] { return store->healthy(); }));
    EXPECT_TRUE(log.wait_for({"write transactions succeed again"})) << log.all();
    EXPECT_TRUE(append(m, "k", "after"));
    EXPECT_THAT(bodies(read(m, "k").value()), ElementsAre("before", "after"));
    EXPECT_EQ(depth(m, "k").value(), 2u);
    EXPECT_THAT(log.all(), Not(HasSubstr(kPassword)));
}

TEST(PostgresStoreTest, RestartWithoutTrafficCostsNoOperation) {
    auto& server = PostgresServer::shared();
    core::MetricsRegistry metrics;
    auto store = open_postgres_store(postgres_config(fresh_url()), metrics);
    Mailboxes& m = store->mailboxes();
    ASSERT_TRUE(append(m, "k", "1"));
    ASSERT_EQ(depth(m, "k").value(), 1u);
    server.stop();
    server.start();
    // Every connection of the pool is broken now; each notices on first use and reconnects
    // before anything was done, so the operations run again on the new connection.
    EXPECT_TRUE(append(m, "k", "2"));
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(depth(m, "k").value(), 2u);
    }
    EXPECT_EQ(counter(metrics, "hearth_store_errors_total", {{"kind", "connection"}}), 0u);
    EXPECT_TRUE(store->healthy());
}

TEST(PostgresStoreTest, LockHeldByAnotherSessionGivesUnavailable) {
    StorageConfig config = postgres_config(fresh_url());
    config.busy_timeout_ms = 50;  // lock_timeout
    core::MetricsRegistry metrics;
    auto store = open_postgres_store(config, metrics);
    Mailboxes& m = store->mailboxes();
    ASSERT_TRUE(append(m, "k", "before"));

    PGconn* other = PQconnectdb(config.postgres_url.c_str());
    ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
    PQclear(PQexec(other, "BEGIN"));
    PGresult* locked = PQexec(other, "LOCK TABLE mailbox IN EXCLUSIVE MODE");
    EXPECT_EQ(PQresultStatus(locked), PGRES_COMMAND_OK);
    PQclear(locked);

    EXPECT_EQ(append(m, "k", "blocked").error(), make_error_code(Errc::kUnavailable));
    EXPECT_EQ(counter(metrics, "hearth_store_errors_total", {{"kind", "busy"}}), 1u);
    EXPECT_TRUE(store->healthy());  // contention, not a broken database
    EXPECT_THAT(bodies(read(m, "k").value()), ElementsAre("before"));  // reads go on

    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    EXPECT_TRUE(append(m, "k", "after"));
    EXPECT_THAT(bodies(read(m, "k").value()), ElementsAre("before", "after"));
}

TEST(PostgresStoreTest, TextPostgresCannotStoreFailsOnlyItsOwnAppend) {
    WriterGate gate;
    BackendStore f("postgres", {}, gate.hooks());
    std::promise<Result<void>> first, bad, last;
    f.logs().append({LogRow{.room = "r", .user = "", .level = "", .body = "{}"}},
                    [&](Result<void> r) { first.set_value(r); });
    ASSERT_TRUE(gate.wait_entered());
    // Held writer: these share one transaction; the NUL byte must not fail the others.
    f.logs().append({LogRow{.room = std::string("a\0b", 3), .user = "", .level = "", .body = "{}"}},
                    [&](Result<void> r) { bad.set_value(r); });
    f.logs().append({LogRow{.room = "r", .user = "", .level = "", .body = "{\"x\":1}"}},
                    [&](Result<void> r) { last.set_value(r); });
    gate.release();
    auto f1 = first.get_future(), f2 = bad.get_future(), f3 = last.get_future();
    ASSERT_EQ(f3.wait_for(kDeadline), std::future_status::ready);
    EXPECT_TRUE(f1.get());
    EXPECT_EQ(f2.get().error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_TRUE(f3.get());
    EXPECT_EQ(sync<std::uint64_t>([&](auto done) { f.logs().count(std::move(done)); }).value(), 2u);
    // Such a filter matches nothing rather than failing.
    auto rows = sync<std::vector<LogRow>>(
        [&](auto done) { f.logs().query({.room = std::string("a\0b", 3)}, std::move(done)); });
    ASSERT_TRUE(rows);
    EXPECT_TRUE(rows->empty());
}

/// Collects a completion's result without waiting: the writer is held.
template <class T>
struct Pending {
    std::promise<Result<T>> promise;
    std::future<Result<T>> future = promise.get_future();
    Completion<T> done() {
        return [this](Result<T> r) { promise.set_value(std::move(r)); };
    }
    Result<T> get() {
        EXPECT_EQ(future.wait_for(kDeadline), std::future_status::ready);
        return future.get();
    }
};

bool failed_with(const auto& result, Errc e) {
    return !result && result.error() == make_error_code(e);
}

AccountRecord named(std::string name, std::optional<std::string> email = std::nullopt) {
    AccountRecord a;
    a.username = std::move(name);
    a.email = std::move(email);
    a.roles = {"player"};
    return a;
}

AuditEntry audit_entry(std::string actor, std::string detail = "") {
    AuditEntry e;
    e.actor = std::move(actor);
    e.action = "account.create";
    e.detail = std::move(detail);
    return e;
}

TokenRecord token_for(std::uint64_t account_id, std::string digest) {
    TokenRecord t;
    t.account_id = account_id;
    t.digest = std::move(digest);
    return t;
}

TEST(PostgresStoreTest, AccountConflictsInOneBatchFailOnlyTheirOwnOperation) {
    // Conflicts are ON CONFLICT DO NOTHING (inserts) or a statement in a savepoint (a new email):
    // neither may abort the batch's transaction, which holds everyone else's writes.
    WriterGate gate;
    BackendStore f("postgres", {}, gate.hooks());
    AccountStore& s = f.store->accounts();
    Pending<AccountRecord> root, alice, alice_again, email_taken, bob, alice_to_bob, alice_moves,
        bad_name, bad_role;
    Pending<TokenRecord> token, token_again, token_orphan;
    Pending<AuditEntry> audit;
    s.create_account(named("root"), root.done());
    ASSERT_TRUE(gate.wait_entered());
    // One batch from here on. In a fresh database root gets id 1 and Alice id 2.
    s.create_account(named("Alice", "Alice@Example.org"), alice.done());
    s.create_account(named("ALICE"), alice_again.done());
    s.create_account(named("bob", "alice@EXAMPLE.org"), email_taken.done());
    s.create_account(named("bob", "bob@example.org"), bob.done());
    s.update_account(2, {.email = std::optional<std::string>("BOB@example.org")},
                     alice_to_bob.done());
    s.update_account(2, {.email = std::optional<std::string>("Alice2@Example.org")},
                     alice_moves.done());
    s.insert_token(token_for(1, "d1"), token.done());
    s.insert_token(token_for(1, "d1"), token_again.done());
    s.insert_token(token_for(999, "d2"), token_orphan.done());
    s.create_account(named(std::string("nul\0name", 8)), bad_name.done());
    AccountRecord comma = named("carol");
    comma.roles = {"a,b"};
    s.create_account(comma, bad_role.done());
    s.append_audit(audit_entry("cli"), audit.done());
    gate.release();

    ASSERT_EQ(root.get().value().id, 1U);
    auto a = alice.get();
    ASSERT_TRUE(a);
    ASSERT_EQ(a->id, 2U);
    EXPECT_TRUE(failed_with(alice_again.get(), Errc::kAlreadyExists));
    EXPECT_TRUE(failed_with(email_taken.get(), Errc::kAlreadyExists));
    auto b = bob.get();
    ASSERT_TRUE(b);
    EXPECT_GT(b->id, a->id);
    EXPECT_TRUE(failed_with(alice_to_bob.get(), Errc::kAlreadyExists));
    EXPECT_EQ(alice_moves.get().value().email, "Alice2@Example.org");
    EXPECT_TRUE(token.get());
    EXPECT_TRUE(failed_with(token_again.get(), Errc::kAlreadyExists));
    EXPECT_TRUE(failed_with(token_orphan.get(), Errc::kNotFound));
    EXPECT_TRUE(failed_with(bad_name.get(), Errc::kInvalidArgument));
    EXPECT_TRUE(failed_with(bad_role.get(), Errc::kInvalidArgument));
    EXPECT_TRUE(audit.get());
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "other"}}), 0U);

    // Everything else committed, with the keys the store folded (ASCII only).
    const std::string& url = f.config.postgres_url;
    EXPECT_EQ(PostgresServer::query(
                  url,
                  "SELECT string_agg(username_key || '/' || coalesce(email_key, '-'), ' ' "
                  "ORDER BY id) FROM account"),
              "root/- alice/alice2@example.org bob/bob@example.org");
    EXPECT_EQ(PostgresServer::query(url, "SELECT count(*) FROM token"), "1");
    EXPECT_EQ(PostgresServer::query(url, "SELECT count(*) FROM audit"), "1");
    // The freed email can be taken again.
    EXPECT_TRUE(sync<AccountRecord>(
        [&](auto done) { s.create_account(named("dave", "ALICE@example.org"), std::move(done)); }));
}

TEST(PostgresStoreTest, AccountTextPostgresCannotStoreIsRefusedOrMatchesNothing) {
    BackendStore f("postgres");
    AccountStore& s = f.store->accounts();
    const std::string invalid_utf8 = "\xC3\x28";
    EXPECT_TRUE(failed_with(sync<AccountRecord>([&](auto done) {
                                s.create_account(named(invalid_utf8), std::move(done));
                            }),
                            Errc::kInvalidArgument));
    auto a =
        sync<AccountRecord>([&](auto done) { s.create_account(named("Émile"), std::move(done)); });
    ASSERT_TRUE(a);
    // Only ASCII letters fold: "É" and "é" differ, like on SQLite.
    EXPECT_TRUE(
        sync<AccountRecord>([&](auto done) { s.account_by_name("ÉMILE", std::move(done)); }));
    EXPECT_TRUE(failed_with(
        sync<AccountRecord>([&](auto done) { s.account_by_name("émile", std::move(done)); }),
        Errc::kNotFound));
    EXPECT_TRUE(failed_with(sync<AccountRecord>([&](auto done) {
                                s.update_account(a->id, {.password_hash = std::string("a\0b", 3)},
                                                 std::move(done));
                            }),
                            Errc::kInvalidArgument));
    EXPECT_TRUE(failed_with(sync<AccountRecord>([&](auto done) {
                                s.account_by_name(std::string("a\0b", 3), std::move(done));
                            }),
                            Errc::kNotFound));
    EXPECT_TRUE(failed_with(
        sync<TokenLookup>([&](auto done) { s.token_by_digest(invalid_utf8, std::move(done)); }),
        Errc::kNotFound));
    auto listed = sync<std::vector<AccountRecord>>(
        [&](auto done) { s.list_accounts({.role = invalid_utf8}, std::move(done)); });
    ASSERT_TRUE(listed);
    EXPECT_TRUE(listed->empty());
    auto audit = sync<std::vector<AuditEntry>>(
        [&](auto done) { s.list_audit({.actor = std::string("\0", 1)}, std::move(done)); });
    ASSERT_TRUE(audit);
    EXPECT_TRUE(audit->empty());
    EXPECT_TRUE(failed_with(sync<AuditEntry>([&](auto done) {
                                s.append_audit(audit_entry("cli", invalid_utf8), std::move(done));
                            }),
                            Errc::kInvalidArgument));
    EXPECT_TRUE(f.store->healthy());
}

TEST(PostgresStoreTest, FactoryOpensTheConfiguredDriver) {
    core::MetricsRegistry metrics;
    TempDir dir;
    {
        auto sqlite = open_store({}, dir.str(), metrics);
        EXPECT_TRUE(append(sqlite->mailboxes(), "k", "file"));
        EXPECT_TRUE(std::filesystem::exists(dir.file("hearth.db")));
    }
    const StorageConfig pg = postgres_config(fresh_url());
    const auto report = migrate_store(pg, dir.str());
    EXPECT_EQ(report.applied, all_migrations());
    EXPECT_THAT(report.summary(), Not(HasSubstr(kPassword)));
    EXPECT_EQ(store_location(pg, dir.str()), pg::mask_url(pg.postgres_url));
    EXPECT_EQ(store_location({}, dir.str()), dir.file("hearth.db"));
    {
        auto postgres = open_store(pg, dir.str(), metrics);
        EXPECT_TRUE(append(postgres->mailboxes(), "k", "server"));
        EXPECT_THAT(bodies(read(postgres->mailboxes(), "k").value()), ElementsAre("server"));
    }
    EXPECT_EQ(PostgresServer::query(pg.postgres_url, "SELECT count(*) FROM mailbox"), "1");
    EXPECT_THAT(migrate_store({}, dir.str()).applied, IsEmpty());

    StorageConfig unknown;
    unknown.driver = "mysql";
    EXPECT_THROW((void)open_store(unknown, dir.str(), metrics), std::runtime_error);
}

}  // namespace
}  // namespace hearth::store
