// Mailbox appends per second through the SQLite store with group commit: submitters keep a
// window of appends outstanding (as io threads would), the writer commits whatever queued up
// while the last transaction ran. The database is a real file in a temporary directory, so the
// figures include fsync (synchronous = full: one per transaction; normal: at checkpoints).

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <hearth/store.hpp>

#include "core/metrics.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace {

using namespace hearth;

/// A fresh directory for one benchmark run, removed afterwards.
class BenchDir {
public:
    BenchDir() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern =
            (std::filesystem::path(base != nullptr ? base : "/tmp") / "hearth-bench-XXXXXX")
                .string();
        if (mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~BenchDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    BenchDir(const BenchDir&) = delete;
    BenchDir& operator=(const BenchDir&) = delete;
    std::string str() const { return path_.string(); }

private:
    std::filesystem::path path_;
};

// Args: submitters, outstanding appends per submitter, synchronous (0: full, 1: normal).
// One iteration is 4000 appends of 100 bytes (200 with a window of 1, which needs one fsync per
// append), spread over 1000 mailboxes.
void BM_MailboxAppend(benchmark::State& state) {
    const auto submitters = static_cast<int>(state.range(0));
    const auto window = static_cast<std::ptrdiff_t>(state.range(1));
    BenchDir dir;
    core::MetricsRegistry metrics;
    store::StorageConfig config;
    config.synchronous = state.range(2) == 0 ? "full" : "normal";
    config.writer_queue_max = 100'000;
    auto store = store::open_sqlite_store(config, dir.str(), metrics);
    store::Mailboxes& mailboxes = store->mailboxes();

    const int per_iteration = window == 1 ? 200 : 4000;
    const std::string body(100, 'x');
    std::atomic<std::uint64_t> failed{0};
    for (auto _ : state) {
        std::vector<std::thread> threads;
        for (int s = 0; s < submitters; ++s) {
            threads.emplace_back([&, s] {
                std::counting_semaphore<> slots(window);
                const int count = per_iteration / submitters;
                for (int i = 0; i < count; ++i) {
                    slots.acquire();
                    mailboxes.append("bench:" + std::to_string((s * count + i) % 1000), body,
                                     10'000, [&](Result<store::AppendResult> r) {
                                         if (!r) {
                                             failed.fetch_add(1, std::memory_order_relaxed);
                                         }
                                         slots.release();
                                     });
                }
                for (std::ptrdiff_t i = 0; i < window; ++i) {
                    slots.acquire();  // every append of this submitter has completed
                }
            });
        }
        for (auto& t : threads) {
            t.join();
        }
    }
    const auto writes = metrics.counter("hearth_store_writes_total", "").value();
    const auto transactions = metrics.counter("hearth_store_transactions_total", "").value();
    const auto latency = metrics
                             .histogram("hearth_store_write_latency_seconds", "",
                                        core::Histogram::latency_seconds_bounds())
                             .snapshot();
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * per_iteration);
    state.counters["writes_per_txn"] =
        transactions > 0 ? static_cast<double>(writes) / static_cast<double>(transactions) : 0;
    state.counters["mean_latency_ms"] =
        latency.count > 0 ? 1000 * latency.sum / static_cast<double>(latency.count) : 0;
    state.counters["failed"] = static_cast<double>(failed.load());
}
BENCHMARK(BM_MailboxAppend)
    ->ArgNames({"submitters", "window", "normal"})
    ->Args({1, 1, 0})  // no concurrency: one transaction and one fsync per append
    ->Args({1, 256, 0})
    ->Args({8, 64, 0})
    ->Args({1, 1, 1})
    ->Args({1, 256, 1})
    ->Args({8, 64, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
