// The store's behaviour on both backends (SQLite files, a real PostgreSQL server): mailbox
// operations, order, the bound, durability across reopening, group commit, the bounded queue and
// shutdown. Backend-specific behaviour (failure injection, files, reconnecting) is tested in
// sqlite_store_test.cpp and postgres_store_test.cpp.

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "store_fixture.hpp"

namespace hearth::store {
namespace {

using namespace test;
using ::testing::ElementsAre;

class StoreTest : public ::testing::TestWithParam<std::string> {};

TEST_P(StoreTest, AppendReadRemoveDepth) {
    BackendStore f(GetParam());
    EXPECT_TRUE(f.store->healthy());
    const auto before = std::chrono::system_clock::now() - 1s;
    auto a1 = append(f.m(), "a", "one");
    auto a2 = append(f.m(), "a", std::string("t\0o", 3));  // bodies are bytes
    auto b1 = append(f.m(), "b", "");
    auto a3 = append(f.m(), "a", "three");
    ASSERT_TRUE(a1 && a2 && b1 && a3);
    EXPECT_LT(a1->seq, a2->seq);
    EXPECT_LT(a2->seq, b1->seq);
    EXPECT_LT(b1->seq, a3->seq);
    EXPECT_EQ(a1->dropped, 0u);

    auto entries = read(f.m(), "a");
    ASSERT_TRUE(entries);
    EXPECT_THAT(bodies(*entries), ElementsAre("one", std::string("t\0o", 3), "three"));
    ASSERT_EQ(entries->size(), 3u);
    EXPECT_EQ((*entries)[0].key, "a");
    EXPECT_EQ((*entries)[0].seq, a1->seq);
    EXPECT_GE((*entries)[0].stored_at, before);
    EXPECT_LE((*entries)[0].stored_at, std::chrono::system_clock::now() + 1s);

    auto first_two = read(f.m(), "a", 2);
    ASSERT_TRUE(first_two);
    EXPECT_THAT(bodies(*first_two), ElementsAre("one", std::string("t\0o", 3)));
    auto empty_body = read(f.m(), "b");
    ASSERT_TRUE(empty_body);
    EXPECT_THAT(bodies(*empty_body), ElementsAre(""));
    auto none = read(f.m(), "nobody");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());

    EXPECT_EQ(depth(f.m(), "a").value(), 3u);
    EXPECT_EQ(depth(f.m(), "b").value(), 1u);
    EXPECT_EQ(depth(f.m(), "nobody").value(), 0u);

    EXPECT_TRUE(remove(f.m(), "a", a2->seq));
    EXPECT_TRUE(remove(f.m(), "a", a2->seq));     // already gone: not an error
    EXPECT_TRUE(remove(f.m(), "a", b1->seq));     // another mailbox's seq: nothing happens
    EXPECT_TRUE(remove(f.m(), "a", UINT64_MAX));  // beyond the database's integers: nothing
    EXPECT_EQ(depth(f.m(), "a").value(), 2u);
    EXPECT_EQ(depth(f.m(), "b").value(), 1u);

    EXPECT_EQ(remove_up_to(f.m(), "a", a1->seq).value(), 1u);
    EXPECT_THAT(bodies(read(f.m(), "a").value()), ElementsAre("three"));
    EXPECT_EQ(remove_up_to(f.m(), "a", UINT64_MAX).value(), 1u);
    EXPECT_EQ(remove_up_to(f.m(), "a", UINT64_MAX).value(), 0u);
    EXPECT_EQ(depth(f.m(), "a").value(), 0u);
    EXPECT_EQ(depth(f.m(), "b").value(), 1u);

    // 4 appends, 4 removes, 3 remove_up_to.
    EXPECT_EQ(counter(f.metrics, "hearth_store_writes_total"), 11u);
    EXPECT_GE(counter(f.metrics, "hearth_store_transactions_total"), 1u);
}

TEST_P(StoreTest, CompletionsRunOnStoreThreads) {
    BackendStore f(GetParam());
    const auto caller = std::this_thread::get_id();
    auto on = sync<std::thread::id>([&](auto done) {
        f.m().append("k", "x", 10,
                     [done](Result<AppendResult>) { done(std::this_thread::get_id()); });
    });
    EXPECT_NE(on.value(), caller);
    auto on_read = sync<std::thread::id>([&](auto done) {
        f.m().depth("k", [done](Result<std::uint64_t>) { done(std::this_thread::get_id()); });
    });
    EXPECT_NE(on_read.value(), caller);
}

TEST_P(StoreTest, ReadPrefixIsInInsertionOrderAcrossKeys) {
    BackendStore f(GetParam());
    ASSERT_TRUE(append(f.m(), "room:x", "1"));
    ASSERT_TRUE(append(f.m(), "room:y", "2"));
    ASSERT_TRUE(append(f.m(), "other", "3"));
    ASSERT_TRUE(append(f.m(), "room:x", "4"));
    ASSERT_TRUE(append(f.m(), "roomz", "5"));  // shares "room" but not "room:"
    ASSERT_TRUE(append(f.m(), "room:a", "6"));
    ASSERT_TRUE(append(f.m(), "\xff\xff", "7"));
    ASSERT_TRUE(append(f.m(),
                       "\xff"
                       "a",
                       "8"));

    EXPECT_THAT(bodies(read_prefix(f.m(), "room:").value()), ElementsAre("1", "2", "4", "6"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "room:", 2).value()), ElementsAre("1", "2"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "room").value()), ElementsAre("1", "2", "4", "5", "6"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "").value()),
                ElementsAre("1", "2", "3", "4", "5", "6", "7", "8"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "\xff").value()), ElementsAre("7", "8"));
    EXPECT_THAT(bodies(read_prefix(f.m(), "\xff\xff").value()), ElementsAre("7"));
    EXPECT_TRUE(read_prefix(f.m(), "zzz").value().empty());
    const auto entries = read_prefix(f.m(), "room:").value();
    EXPECT_EQ(entries[2].key, "room:x");
}

TEST_P(StoreTest, DepthPrefixCountsTheSameKeysAsReadPrefix) {
    BackendStore f(GetParam());
    for (const char* key : {"room:x", "room:y", "other", "room:x", "roomz", "\xff\xff",
                            "\xff"
                            "a"}) {
        ASSERT_TRUE(append(f.m(), key, "b"));
    }
    for (const std::string prefix : {"room:", "room", "", "\xff", "\xff\xff", "zzz"}) {
        EXPECT_EQ(depth_prefix(f.m(), prefix).value(), read_prefix(f.m(), prefix).value().size())
            << prefix;
    }
    EXPECT_EQ(depth_prefix(f.m(), "room:").value(), 3u);
    ASSERT_TRUE(remove_up_to(f.m(), "room:x", 100));
    EXPECT_EQ(depth_prefix(f.m(), "room:").value(), 1u);
}

TEST_P(StoreTest, ListDepthsPagesThroughNonEmptyMailboxesByKey) {
    BackendStore f(GetParam());
    for (const char* key : {"room:b", "room:a", "room:b", "other", "room:c", "\xff"}) {
        ASSERT_TRUE(append(f.m(), key, "m"));
    }
    auto list = [&](std::string prefix, std::optional<std::string> after, std::size_t max) {
        auto r = sync<std::vector<MailboxDepth>>([&](auto done) {
            f.m().list_depths(std::move(prefix), std::move(after), max, std::move(done));
        });
        std::vector<std::string> out;
        for (const auto& d : r.value()) {
            out.push_back(d.key + "=" + std::to_string(d.depth));
        }
        return out;
    };
    EXPECT_THAT(list("room:", std::nullopt, 10),
                ::testing::ElementsAre("room:a=1", "room:b=2", "room:c=1"));
    EXPECT_THAT(list("room:", std::nullopt, 2), ::testing::ElementsAre("room:a=1", "room:b=2"));
    EXPECT_THAT(list("room:", "room:b", 2), ::testing::ElementsAre("room:c=1"));
    EXPECT_THAT(list("", std::nullopt, 10),
                ::testing::ElementsAre("other=1", "room:a=1", "room:b=2", "room:c=1", "\xff=1"));
    EXPECT_THAT(list("\xff", std::nullopt, 10), ::testing::ElementsAre("\xff=1"));
    ASSERT_TRUE(remove_up_to(f.m(), "room:b", 1000));
    EXPECT_THAT(list("room:", std::nullopt, 10),
                ::testing::ElementsAre("room:a=1", "room:c=1"));  // emptied: gone
}

TEST_P(StoreTest, FullMailboxDropsTheOldest) {
    BackendStore f(GetParam());
    std::vector<std::uint64_t> dropped;
    for (int i = 1; i <= 5; ++i) {
        auto r = append(f.m(), "k", "m" + std::to_string(i), 3);
        ASSERT_TRUE(r);
        dropped.push_back(r->dropped);
    }
    ASSERT_TRUE(append(f.m(), "other", "x", 3));
    EXPECT_THAT(dropped, ElementsAre(0u, 0u, 0u, 1u, 1u));
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("m3", "m4", "m5"));
    EXPECT_EQ(depth(f.m(), "k").value(), 3u);
    EXPECT_EQ(counter(f.metrics, "hearth_mailbox_dropped_total"), 2u);

    // A smaller bound (the config changed) trims everything beyond it at once.
    auto r = append(f.m(), "k", "m6", 1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->dropped, 3u);
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("m6"));
    EXPECT_EQ(counter(f.metrics, "hearth_mailbox_dropped_total"), 5u);
    EXPECT_THAT(bodies(read(f.m(), "other").value()), ElementsAre("x"));
}

TEST_P(StoreTest, ZeroMaxDepthIsInvalidAndFailsOnlyItself) {
    StorageConfig config;
    WriterGate gate;
    BackendStore f(GetParam(), config, gate.hooks());
    // Held writer: the three appends below share one transaction.
    std::promise<Result<AppendResult>> first, bad, last;
    f.m().append("k", "1", 10, [&](Result<AppendResult> r) { first.set_value(r); });
    ASSERT_TRUE(gate.wait_entered());
    f.m().append("k", "2", 0, [&](Result<AppendResult> r) { bad.set_value(r); });
    f.m().append("k", "3", 10, [&](Result<AppendResult> r) { last.set_value(r); });
    gate.release();
    auto f1 = first.get_future(), f2 = bad.get_future(), f3 = last.get_future();
    ASSERT_EQ(f3.wait_for(kDeadline), std::future_status::ready);
    EXPECT_TRUE(f1.get());
    EXPECT_EQ(f2.get().error(), make_error_code(Errc::kInvalidArgument));
    EXPECT_TRUE(f3.get());
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("1", "3"));
}

TEST_P(StoreTest, OperationsCompleteInSubmissionOrderAndReadTheirWrites) {
    BackendStore f(GetParam());
    std::mutex mutex;
    std::vector<int> order;
    std::vector<std::string> problems;
    auto note = [&](int step, bool ok, std::string what) {
        std::lock_guard lock(mutex);
        order.push_back(step);
        if (!ok) {
            problems.push_back("step " + std::to_string(step) + ": " + what);
        }
    };
    // Reads and writes interleaved from one thread, never waiting in between: each read must see
    // the writes before it, and every completion must come in submission order, although reads
    // and writes run on different threads.
    constexpr int kRounds = 100;
    std::promise<void> all_done;
    int step = 0;
    for (int round = 0; round < kRounds; ++round) {
        const std::string key = "k" + std::to_string(round % 3);
        f.m().append(key, "a", 1000,
                     [&, s = step++](Result<AppendResult> r) { note(s, r.has_value(), "append"); });
        f.m().depth(key, [&, s = step++](Result<std::uint64_t> r) {
            note(s, r && *r == 1, "depth after append: " + std::to_string(r ? *r : 99));
        });
        f.m().append(key, "b", 1000,
                     [&, s = step++](Result<AppendResult> r) { note(s, r.has_value(), "append"); });
        f.m().read(key, 10, [&, s = step++](Result<std::vector<MailboxEntry>> r) {
            note(s, r && bodies(*r) == std::vector<std::string>{"a", "b"}, "read after appends");
        });
        f.m().remove_up_to(key, UINT64_MAX, [&, s = step++](Result<std::uint64_t> r) {
            note(s, r && *r == 2, "remove_up_to");
        });
        f.m().read(
            key, 10,
            [&, s = step++, last = round == kRounds - 1](Result<std::vector<MailboxEntry>> r) {
                note(s, r && r->empty(), "read after remove");
                if (last) {
                    all_done.set_value();
                }
            });
    }
    ASSERT_EQ(all_done.get_future().wait_for(kDeadline), std::future_status::ready);
    std::lock_guard lock(mutex);
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
    ASSERT_EQ(order.size(), static_cast<std::size_t>(step));
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST_P(StoreTest, ReadOnAReaderThreadDoesNotSeeALaterWrite) {
    BackendStore f(GetParam());
    const auto writer_thread = sync<std::thread::id>([&](auto done) {
        f.m().append("k", "0", 1000,
                     [done](Result<AppendResult>) { done(std::this_thread::get_id()); });
    });
    ASSERT_TRUE(writer_thread);
    // A read completes on a reader thread once the writer has nothing pending; with no other
    // submitter, the next read then goes to a reader thread too.
    auto wait_writer_idle = [&] {
        for (int attempt = 0; attempt < 1000; ++attempt) {
            auto on = sync<std::thread::id>([&](auto done) {
                f.m().depth("k",
                            [done](Result<std::uint64_t>) { done(std::this_thread::get_id()); });
            });
            if (on && *on != *writer_thread) {
                return true;
            }
        }
        return false;
    };
    for (std::size_t round = 1; round <= 20; ++round) {
        ASSERT_TRUE(wait_writer_idle());
        std::mutex mutex;
        std::vector<std::string> events;
        std::promise<void> done;
        f.m().read("k", 1000, [&](Result<std::vector<MailboxEntry>> r) {
            std::lock_guard lock(mutex);
            events.push_back("read " + std::to_string(r ? r->size() : 99) +
                             (std::this_thread::get_id() != *writer_thread ? " on a reader" : ""));
        });
        f.m().append("k", std::to_string(round), 1000, [&](Result<AppendResult> r) {
            std::lock_guard lock(mutex);
            events.push_back(r ? "append" : "append failed");
        });
        f.m().read("k", 1000, [&](Result<std::vector<MailboxEntry>> r) {
            std::lock_guard lock(mutex);
            events.push_back("read " + std::to_string(r ? r->size() : 99));
            done.set_value();
        });
        ASSERT_EQ(done.get_future().wait_for(kDeadline), std::future_status::ready);
        std::lock_guard lock(mutex);
        EXPECT_THAT(events, ElementsAre("read " + std::to_string(round) + " on a reader", "append",
                                        "read " + std::to_string(round + 1)));
    }
}

TEST_P(StoreTest, EveryThreadSeesItsOwnOperationsInOrderUnderMixedLoad) {
    BackendStore f(GetParam());
    constexpr int kThreads = 4;
    constexpr int kRounds = 40;
    std::mutex mutex;
    std::vector<std::string> problems;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Each thread has its own mailbox; the others keep the writer busy or let it go idle
            // at random moments, so reads take both routes (reader threads, writer's batch).
            const std::string key = "t" + std::to_string(t);
            std::vector<int> order;
            std::mutex order_mutex;
            auto check = [&](int step, bool ok, const char* what) {
                std::lock_guard lock(order_mutex);
                order.push_back(step);
                if (!ok) {
                    std::lock_guard plock(mutex);
                    problems.push_back(key + " step " + std::to_string(step) + ": " + what);
                }
            };
            int step = 0;
            for (int round = 0; round < kRounds; ++round) {
                std::promise<void> round_done;
                f.m().read(key, 10, [&, s = step++](Result<std::vector<MailboxEntry>> r) {
                    check(s, r && r->empty(), "read before appends");
                });
                f.m().append(key, "a", 100, [&, s = step++](Result<AppendResult> r) {
                    check(s, r.has_value(), "append");
                });
                f.m().read(key, 10, [&, s = step++](Result<std::vector<MailboxEntry>> r) {
                    check(s, r && bodies(*r) == std::vector<std::string>{"a"}, "read after a");
                });
                f.m().depth(key, [&, s = step++](Result<std::uint64_t> r) {
                    check(s, r && *r == 1, "depth after a");
                });
                f.m().append(key, "b", 100, [&, s = step++](Result<AppendResult> r) {
                    check(s, r.has_value(), "append");
                });
                f.m().read_prefix(key, 10, [&, s = step++](Result<std::vector<MailboxEntry>> r) {
                    check(s, r && bodies(*r) == std::vector<std::string>{"a", "b"}, "prefix");
                });
                f.m().remove_up_to(key, UINT64_MAX, [&, s = step++](Result<std::uint64_t> r) {
                    check(s, r && *r == 2, "remove_up_to");
                });
                f.m().depth(key, [&, s = step++](Result<std::uint64_t> r) {
                    check(s, r && *r == 0, "depth after remove");
                    round_done.set_value();
                });
                if (round_done.get_future().wait_for(kDeadline) != std::future_status::ready) {
                    check(-1, false, "round timed out");
                    return;
                }
            }
            std::lock_guard lock(order_mutex);
            if (!std::is_sorted(order.begin(), order.end()) || order.size() != 8u * kRounds) {
                std::lock_guard plock(mutex);
                problems.push_back(key + ": completions out of order");
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_TRUE(problems.empty()) << ::testing::PrintToString(problems);
}

TEST_P(StoreTest, CommittedAppendsSurviveCloseAndReopen) {
    BackendStore f(GetParam());
    std::vector<std::uint64_t> seqs;
    for (int i = 0; i < 10; ++i) {
        seqs.push_back(append(f.m(), "k" + std::to_string(i % 2), std::to_string(i)).value().seq);
    }
    ASSERT_TRUE(remove(f.m(), "k1", seqs[9]));  // the newest: its seq must not come back
    f.store.reset();
    f.open();
    EXPECT_THAT(bodies(read(f.m(), "k0").value()), ElementsAre("0", "2", "4", "6", "8"));
    EXPECT_THAT(bodies(read(f.m(), "k1").value()), ElementsAre("1", "3", "5", "7"));
    EXPECT_EQ(depth(f.m(), "k0").value(), 5u);
    EXPECT_GT(append(f.m(), "k1", "new").value().seq, seqs[9]);
}

TEST_P(StoreTest, ConcurrentWritersShareTransactions) {
    StorageConfig config;
    config.max_batch = 1000;
    WriterGate gate;
    BackendStore f(GetParam(), config, gate.hooks());
    constexpr int kThreads = 8;
    constexpr int kPerThread = 250;
    std::mutex halves_mutex;
    std::condition_variable halves_cv;
    int first_halves = 0;  // threads that have queued half their appends
    std::mutex mutex;
    std::map<int, std::vector<std::uint64_t>> acked;  // thread -> seqs in completion order
    std::atomic<int> failures{0};
    std::atomic<int> done{0};
    std::promise<void> all_done;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                if (i == kPerThread / 2) {
                    std::lock_guard lock(halves_mutex);
                    ++first_halves;
                    halves_cv.notify_all();
                }
                f.m().append("shared", std::to_string(t) + ":" + std::to_string(i), 100'000,
                             [&, t](Result<AppendResult> r) {
                                 if (!r) {
                                     ++failures;
                                 } else {
                                     std::lock_guard lock(mutex);
                                     acked[t].push_back(r->seq);
                                 }
                                 if (++done == kThreads * kPerThread) {
                                     all_done.set_value();
                                 }
                             });
            }
        });
    }
    // The writer is held on its first batch until every thread has queued half its appends, so
    // that grouping is certain rather than likely; the second halves race the writer freely.
    // (EXPECT, not ASSERT: the threads must be joined either way.)
    EXPECT_TRUE(gate.wait_entered());
    {
        std::unique_lock lock(halves_mutex);
        EXPECT_TRUE(halves_cv.wait_for(lock, kDeadline, [&] { return first_halves == kThreads; }));
    }
    gate.release();
    for (auto& t : threads) {
        t.join();
    }
    ASSERT_EQ(all_done.get_future().wait_for(kDeadline), std::future_status::ready);
    EXPECT_EQ(failures.load(), 0);

    // Every append landed, and each thread's appends are in its submission order.
    auto entries = read(f.m(), "shared", 100'000);
    ASSERT_TRUE(entries);
    ASSERT_EQ(entries->size(), static_cast<std::size_t>(kThreads * kPerThread));
    std::map<int, int> next;
    for (const auto& e : *entries) {
        const auto colon = e.body.find(':');
        const int t = std::stoi(e.body.substr(0, colon));
        const int i = std::stoi(e.body.substr(colon + 1));
        EXPECT_EQ(i, next[t]++) << "thread " << t;
    }
    for (auto& [t, seqs] : acked) {
        EXPECT_EQ(seqs.size(), static_cast<std::size_t>(kPerThread));
        EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end())) << "thread " << t;
    }

    // Group commit: fewer transactions than writes, and the batch histogram agrees.
    const auto writes = counter(f.metrics, "hearth_store_writes_total");
    const auto transactions = counter(f.metrics, "hearth_store_transactions_total");
    EXPECT_EQ(writes, static_cast<std::uint64_t>(kThreads * kPerThread));
    EXPECT_LT(transactions, writes / 2);
    const auto batches =
        f.metrics
            .histogram("hearth_store_batch_size", "",
                       {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000})
            .snapshot();
    EXPECT_EQ(batches.count, transactions);
    EXPECT_DOUBLE_EQ(batches.sum, static_cast<double>(writes));
}

TEST_P(StoreTest, FullWriterQueueFailsFastWithUnavailable) {
    StorageConfig config;
    config.writer_queue_max = 4;
    WriterGate gate;
    BackendStore f(GetParam(), config, gate.hooks());
    std::atomic<int> ok{0};
    std::promise<void> all_ok;
    auto count_ok = [&](Result<AppendResult> r) {
        EXPECT_TRUE(r);
        if (++ok == 5) {
            all_ok.set_value();
        }
    };
    f.m().append("k", "0", 100, count_ok);
    ASSERT_TRUE(gate.wait_entered());  // the writer holds "0" in its batch; the queue is empty
    for (int i = 1; i <= 4; ++i) {
        f.m().append("k", std::to_string(i), 100, count_ok);
    }
    EXPECT_EQ(f.metrics.gauge("hearth_store_queue_depth", "", {{"queue", "write"}}).value(), 4);

    // At the bound: refused at once, on the calling thread, nothing stored.
    std::optional<Result<AppendResult>> refused;
    f.m().append("k", "5", 100, [&](Result<AppendResult> r) { refused = r; });
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(refused->error(), make_error_code(Errc::kUnavailable));
    EXPECT_EQ(counter(f.metrics, "hearth_store_errors_total", {{"kind", "queue_full"}}), 1u);

    gate.release();
    ASSERT_EQ(all_ok.get_future().wait_for(kDeadline), std::future_status::ready);
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("0", "1", "2", "3", "4"));
    EXPECT_EQ(f.metrics.gauge("hearth_store_queue_depth", "", {{"queue", "write"}}).value(), 0);
    EXPECT_TRUE(append(f.m(), "k", "6"));  // room again
}

TEST_P(StoreTest, ShutdownFinishesQueuedWorkAndRefusesNewWork) {
    WriterGate gate;
    StoreTestHooks hooks = gate.hooks();
    hooks.on_stop = [&] { gate.release(); };  // the store refuses new work from here on
    BackendStore f(GetParam(), {}, std::move(hooks));
    Mailboxes& m = f.m();
    std::vector<Result<AppendResult>> results;
    std::optional<Result<AppendResult>> late;
    m.append("k", "0", 10, [&](Result<AppendResult> r) {
        results.push_back(r);
        // Submitted while the store is draining: refused, completed at once.
        m.append("k", "late", 10, [&](Result<AppendResult> r2) { late = r2; });
    });
    ASSERT_TRUE(gate.wait_entered());
    for (int i = 1; i <= 3; ++i) {
        m.append("k", std::to_string(i), 10, [&](Result<AppendResult> r) { results.push_back(r); });
    }
    f.store.reset();  // drains: every queued append completes before the destructor returns

    ASSERT_EQ(results.size(), 4u);
    for (const auto& r : results) {
        EXPECT_TRUE(r);
    }
    ASSERT_TRUE(late.has_value());
    EXPECT_EQ(late->error(), make_error_code(Errc::kShuttingDown));

    f.open();
    EXPECT_THAT(bodies(read(f.m(), "k").value()), ElementsAre("0", "1", "2", "3"));
}

TEST_P(StoreTest, DepthStaysExactWhenTheTableIsEditedByHand) {
    BackendStore f(GetParam());
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(append(f.m(), "k", std::to_string(i)));
    }
    if (f.postgres()) {
        PostgresServer::exec(f.config.postgres_url,
                             "DELETE FROM mailbox WHERE body = '0'::bytea;"
                             "UPDATE mailbox SET key = 'j'::bytea WHERE body = '1'::bytea;");
    } else {
        sqlite3* other = nullptr;
        ASSERT_EQ(sqlite3_open(sqlite_path(f.config, f.dir.str()).c_str(), &other), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(other,
                               "DELETE FROM mailbox WHERE body = CAST('0' AS BLOB);"
                               "UPDATE mailbox SET key = 'j' WHERE body = CAST('1' AS BLOB);",
                               nullptr, nullptr, nullptr),
                  SQLITE_OK);
        sqlite3_close(other);
    }
    EXPECT_EQ(depth(f.m(), "k").value(), 2u);
    EXPECT_EQ(depth(f.m(), "j").value(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, backends(), backend_name);

}  // namespace
}  // namespace hearth::store
