#include <string>

#include <benchmark/benchmark.h>

#include "core/metrics.hpp"

namespace {

using hearth::core::Histogram;
using hearth::core::MetricsRegistry;

// The hot path: one relaxed atomic add. Run with --benchmark_threads or ->Threads() for contention.
void BM_CounterInc(benchmark::State& state) {
    static MetricsRegistry registry;
    auto& counter = registry.counter("bench_messages_total", "Messages.");
    for (auto _ : state) {
        counter.inc();
    }
    benchmark::DoNotOptimize(counter.value());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
    static MetricsRegistry registry;
    auto& histogram = registry.histogram("bench_latency_seconds", "Latency.",
                                         Histogram::latency_seconds_bounds());
    double value = 0.0001;
    for (auto _ : state) {
        histogram.observe(value);
        value = value > 5 ? 0.0001 : value * 1.7;  // walk the buckets
    }
    benchmark::DoNotOptimize(histogram.snapshot().count);
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

// A scrape of a server this size: ~200 series (counters and gauges per listener and topic shard,
// and a few latency histograms, each 20 lines).
void BM_Render200Series(benchmark::State& state) {
    MetricsRegistry registry;
    for (int i = 0; i < 60; ++i) {
        const std::string shard = std::to_string(i);
        registry.counter("hearth_messages_in_total", "Messages received.", {{"shard", shard}})
            .inc(static_cast<std::uint64_t>(i) * 1000);
        registry.counter("hearth_messages_out_total", "Messages sent.", {{"shard", shard}})
            .inc(static_cast<std::uint64_t>(i) * 3000);
        registry.gauge("hearth_connections", "Open connections.", {{"shard", shard}}).set(i);
    }
    for (const char* op : {"get", "put", "delete", "list"}) {
        auto& h = registry.histogram("hearth_store_latency_seconds", "Store latency.",
                                     Histogram::latency_seconds_bounds(), {{"op", op}});
        for (int i = 0; i < 100; ++i) {
            h.observe(0.0001 * i);
        }
    }
    hearth::core::register_process_metrics(registry);
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto text = registry.render();
        bytes = text.size();
        benchmark::DoNotOptimize(text);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes) * state.iterations());
}
BENCHMARK(BM_Render200Series);

}  // namespace
