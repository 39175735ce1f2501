#include "core/metrics.hpp"
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

namespace hearth::core {
namespace {

TEST(Metrics, CountersAndGaugesRenderExactly) {
    MetricsRegistry registry;
    registry.counter("hearth_ws_messages_in_total", "Messages received.", {{"listener", "game"}})
        .inc(3);
    registry.counter("hearth_ws_messages_in_total", "Messages received.", {{"listener", "admin"}})
        .inc();
    auto& connections = registry.gauge("hearth_net_connections", "Open connections.");
    connections.add(5);
    connections.sub(7);
    registry.counter("hearth_auth_failures_total", "Failed logins.");

    EXPECT_EQ(registry.render(),
              "# HELP hearth_auth_failures_total Failed logins.\n"
              "# TYPE hearth_auth_failures_total counter\n"
              "hearth_auth_failures_total 0\n"
              "# HELP hearth_net_connections Open connections.\n"
              "# TYPE hearth_net_connections gauge\n"
              "hearth_net_connections -2\n"
              "# HELP hearth_ws_messages_in_total Messages received.\n"
              "# TYPE hearth_ws_messages_in_total counter\n"
              "hearth_ws_messages_in_total{listener=\"game\"} 3\n"
              "hearth_ws_messages_in_total{listener=\"admin\"} 1\n");
}

TEST(Metrics, HistogramRendersCumulativeBucketsSumAndCount) {
    MetricsRegistry registry;
    // Binary fractions, so the expected sum is exact.
    auto& sqlite = registry.histogram("hearth_store_latency_seconds", "Store call latency.",
                                      {0.125, 0.5, 1}, {{"store", "sqlite"}, {"op", "get"}});
    for (double v : {0.0625, 0.125, 0.25, 4.0}) {
        sqlite.observe(v);
    }
    sqlite.observe(std::numeric_limits<double>::quiet_NaN());  // ignored
    registry.histogram("hearth_tick_seconds", "Tick duration.", {0.5});

    EXPECT_EQ(registry.render(),
              "# HELP hearth_store_latency_seconds Store call latency.\n"
              "# TYPE hearth_store_latency_seconds histogram\n"
              "hearth_store_latency_seconds_bucket{store=\"sqlite\",op=\"get\",le=\"0.125\"} 2\n"
              "hearth_store_latency_seconds_bucket{store=\"sqlite\",op=\"get\",le=\"0.5\"} 3\n"
              "hearth_store_latency_seconds_bucket{store=\"sqlite\",op=\"get\",le=\"1\"} 3\n"
              "hearth_store_latency_seconds_bucket{store=\"sqlite\",op=\"get\",le=\"+Inf\"} 4\n"
              "hearth_store_latency_seconds_sum{store=\"sqlite\",op=\"get\"} 4.4375\n"
              "hearth_store_latency_seconds_count{store=\"sqlite\",op=\"get\"} 4\n"
              "# HELP hearth_tick_seconds Tick duration.\n"
              "# TYPE hearth_tick_seconds histogram\n"
              "hearth_tick_seconds_bucket{le=\"0.5\"} 0\n"
              "hearth_tick_seconds_bucket{le=\"+Inf\"} 0\n"
              "hearth_tick_seconds_sum 0\n"
              "hearth_tick_seconds_count 0\n");

    const auto snap = sqlite.snapshot();
    EXPECT_EQ(snap.cumulative_counts, (std::vector<std::uint64_t>{2, 3, 3, 4}));
    EXPECT_EQ(snap.count, 4u);
    EXPECT_EQ(snap.sum, 4.4375);
}

TEST(Metrics, LatencyBoundsRenderAsPrometheusNumbers) {
    MetricsRegistry registry;
    registry.histogram("lat_seconds", "h", Histogram::latency_seconds_bounds());
    const auto text = registry.render();
    std::string les;
    for (std::size_t pos = text.find("le=\""); pos != std::string::npos;
         pos = text.find("le=\"", pos + 1)) {
        les += text.substr(pos + 4, text.find('"', pos + 4) - pos - 4) + ",";
    }
    EXPECT_EQ(les,
              "5e-05,0.0001,0.00025,0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,"
              "10,+Inf,");
    EXPECT_EQ(Histogram::latency_seconds_bounds().size(), 17u);
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
    MetricsRegistry registry;
    registry
        .gauge("esc", "Back\\slash, \"quotes\" and a\nnewline.", {{"path", "C:\\dir\\\"x\"\nend"}})
        .set(1);
    EXPECT_EQ(registry.render(),
              "# HELP esc Back\\\\slash, \"quotes\" and a\\nnewline.\n"
              "# TYPE esc gauge\n"
              "esc{path=\"C:\\\\dir\\\\\\\"x\\\"\\nend\"} 1\n");
}

TEST(Metrics, SameNameAndLabelsReturnTheSameObject) {
    MetricsRegistry registry;
    auto& a = registry.counter("c_total", "first help", {{"x", "1"}, {"y", "2"}});
    auto& b = registry.counter("c_total", "other help", {{"y", "2"}, {"x", "1"}});
    auto& c = registry.counter("c_total", "first help", {{"x", "2"}, {"y", "2"}});
    EXPECT_EQ(&a, &b);
    EXPECT_NE(&a, &c);
    EXPECT_EQ(&registry.gauge("g", "h"), &registry.gauge("g", "h"));
    EXPECT_EQ(&registry.histogram("h", "h", {1, 2}), &registry.histogram("h", "h", {1, 2}));
    const auto inf = std::numeric_limits<double>::infinity();
    EXPECT_EQ(&registry.histogram("h", "h", {1, 2}), &registry.histogram("h", "h", {1, 2, inf}));
    a.inc();
    b.inc();
    EXPECT_NE(registry.render().find("c_total{x=\"1\",y=\"2\"} 2\n"), std::string::npos);
    EXPECT_NE(registry.render().find("# HELP c_total first help\n"), std::string::npos);
}

TEST(Metrics, TypeConflictsThrow) {
    MetricsRegistry registry;
    registry.counter("x_total", "h");
    EXPECT_THROW(registry.gauge("x_total", "h"), std::logic_error);
    EXPECT_THROW(registry.histogram("x_total", "h", {1}), std::logic_error);
    registry.histogram("lat", "h", {1, 2});
    EXPECT_THROW(registry.counter("lat", "h", {{"a", "b"}}), std::logic_error);
    EXPECT_THROW(registry.histogram("lat", "h", {1, 3}), std::logic_error);
    EXPECT_THROW(registry.histogram("lat", "h", {1, 3}, {{"a", "b"}}), std::logic_error);
    // Names that would render as a line of the histogram.
    EXPECT_THROW(registry.counter("lat_count", "h"), std::logic_error);
    EXPECT_THROW(registry.gauge("lat_bucket", "h"), std::logic_error);
    registry.gauge("dur_sum", "h");
    EXPECT_THROW(registry.histogram("dur", "h", {1}), std::logic_error);
}

TEST(Metrics, InvalidNamesThrow) {
    MetricsRegistry registry;
    EXPECT_THROW(registry.counter("", "h"), std::invalid_argument);
    EXPECT_THROW(registry.counter("1st", "h"), std::invalid_argument);
    EXPECT_THROW(registry.counter("a-b", "h"), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok", "h", {{"bad-name", "v"}}), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok", "h", {{"9x", "v"}}), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok", "h", {{"__reserved", "v"}}), std::invalid_argument);
    EXPECT_THROW(registry.counter("ok", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("hist", "h", {1}, {{"le", "1"}}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("hist", "h", {2, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("hist", "h", {1, 1}), std::invalid_argument);
    EXPECT_THROW(registry.histogram("hist", "h", {std::nan("")}), std::invalid_argument);
    EXPECT_NO_THROW(registry.counter("ns:sub_total", "h", {{"_x9", ""}}));
    // Nothing half-registered by the failures.
    EXPECT_EQ(registry.render(),
              "# HELP ns:sub_total h\n# TYPE ns:sub_total counter\nns:sub_total{_x9=\"\"} 0\n");
}

TEST(Metrics, CollectorSamplesMergeIntoFamiliesByName) {
    MetricsRegistry registry;
    registry.gauge("b_rooms", "Rooms.", {{"shard", "0"}}).set(2);
    registry.counter("d_total", "D.");
    registry.add_collector([](MetricsWriter& out) {
        out.gauge("b_rooms", "ignored help", 7, {{"shard", "1"}});
        out.gauge("c_values", "Values.", 0.5, {{"k", "half"}});
        out.gauge("c_values", "Values.", 0.30000000000000004, {{"k", "sum"}});
        out.gauge("c_values", "Values.", 1e21, {{"k", "big"}});
        out.gauge("c_values", "Values.", 1e-7, {{"k", "tiny"}});
        out.gauge("c_values", "Values.", -3, {{"k", "neg"}});
        out.gauge("c_values", "Values.", std::numeric_limits<double>::infinity(), {{"k", "inf"}});
        out.gauge("c_values", "Values.", std::nan(""), {{"k", "nan"}});
        out.counter("a_seconds_total", "A.", 12.25);
        // Skipped: wrong type, duplicate series, bad names.
        out.gauge("d_total", "D.", 1);
        out.counter("d_total", "D.", 5);
        out.gauge("c_values", "Values.", 9, {{"k", "half"}});
        out.gauge("bad name", "x", 1);
        out.gauge("e", "x", 1, {{"bad label", "v"}});
    });
    registry.add_collector([](MetricsWriter&) { throw std::runtime_error("collector failed"); });

    EXPECT_EQ(registry.render(),
              "# HELP a_seconds_total A.\n"
              "# TYPE a_seconds_total counter\n"
              "a_seconds_total 12.25\n"
              "# HELP b_rooms Rooms.\n"
              "# TYPE b_rooms gauge\n"
              "b_rooms{shard=\"0\"} 2\n"
              "b_rooms{shard=\"1\"} 7\n"
              "# HELP c_values Values.\n"
              "# TYPE c_values gauge\n"
              "c_values{k=\"half\"} 0.5\n"
              "c_values{k=\"sum\"} 0.30000000000000004\n"
              "c_values{k=\"big\"} 1e+21\n"
              "c_values{k=\"tiny\"} 1e-07\n"
              "c_values{k=\"neg\"} -3\n"
              "c_values{k=\"inf\"} +Inf\n"
              "c_values{k=\"nan\"} NaN\n"
              "# HELP d_total D.\n"
              "# TYPE d_total counter\n"
              "d_total 0\n");
}

TEST(Metrics, CollectorsRunOncePerRenderAndMayRegister) {
    MetricsRegistry registry;
    int runs = 0;
    registry.add_collector([&](MetricsWriter& out) {
        ++runs;
        // Registering from a collector must not deadlock.
        registry.counter("registered_in_collector_total", "x").inc();
        out.gauge("runs", "Runs.", runs);
    });
    registry.render();
    const auto text = registry.render();
    EXPECT_EQ(runs, 2);
    EXPECT_NE(text.find("runs 2\n"), std::string::npos);
    EXPECT_NE(text.find("registered_in_collector_total 2\n"), std::string::npos);
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
    MetricsRegistry registry;
    constexpr int kThreads = 8;
    constexpr int kIncrements = 50'000;
    auto& counter = registry.counter("hits_total", "h");
    auto& gauge = registry.gauge("level", "h");
    auto& histogram = registry.histogram("obs", "h", {1, 2});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kIncrements; ++i) {
                counter.inc();
                gauge.add(2);
                gauge.sub(1);
                histogram.observe(t % 2 == 0 ? 0.5 : 1.5);
            }
        });
    }
    // Rendering concurrently must be safe too (run under the sanitizers).
    for (int i = 0; i < 20; ++i) {
        EXPECT_FALSE(registry.render().empty());
    }
    for (auto& thread : threads) {
        thread.join();
    }
    EXPECT_EQ(counter.value(), std::uint64_t{kThreads} * kIncrements);
    EXPECT_EQ(gauge.value(), std::int64_t{kThreads} * kIncrements);
    const auto snap = histogram.snapshot();
    EXPECT_EQ(snap.count, std::uint64_t{kThreads} * kIncrements);
    EXPECT_EQ(snap.cumulative_counts[0], std::uint64_t{kThreads / 2} * kIncrements);
    EXPECT_EQ(snap.sum, (0.5 + 1.5) * (kThreads / 2) * kIncrements);
}

// Found by make test-tsan: a registration returned a reference into the family's vector of
// series and read the metric from it after unlocking, while another thread's registration could
// grow that vector (moving every series): a data race, and a read of freed memory when the vector
// moved. Under the sanitizers this fails on the old code; every counter must count its own
// increments.
TEST(Metrics, ConcurrentRegistrationsInOneFamilyAreSafe) {
    MetricsRegistry registry;
    constexpr int kThreads = 4;
    constexpr int kSeries = 2'000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&registry, t] {
            for (int i = 0; i < kSeries; ++i) {
                registry
                    .counter("disconnects_total", "h",
                             {{"thread", std::to_string(t)}, {"i", std::to_string(i)}})
                    .inc();
                registry.counter("disconnects_total", "h", {{"thread", "shared"}}).inc();
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (int t = 0; t < kThreads; ++t) {
        for (int i = 0; i < kSeries; i += 97) {
            EXPECT_EQ(registry
                          .counter("disconnects_total", "h",
                                   {{"thread", std::to_string(t)}, {"i", std::to_string(i)}})
                          .value(),
                      1u);
        }
    }
    EXPECT_EQ(registry.counter("disconnects_total", "h", {{"thread", "shared"}}).value(),
              std::uint64_t{kThreads} * kSeries);
}

TEST(Metrics, ProcessStatsAreSane) {
    const auto stats = read_process_stats();
    EXPECT_GE(stats.cpu_seconds, 0.0);
    EXPECT_GT(stats.resident_bytes, 0u);
    EXPECT_GE(stats.virtual_bytes, stats.resident_bytes);
    EXPECT_GT(stats.open_fds, 0u);  // at least stdin, stdout, stderr
    EXPECT_GE(stats.max_fds, stats.open_fds);
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_LE(stats.start_time_seconds, now + 2);  // btime is whole seconds
    EXPECT_GT(stats.start_time_seconds, now - 24 * 3600);

    EXPECT_EQ(read_process_stats(::getpid()).max_fds, stats.max_fds);
    const auto missing = read_process_stats(std::numeric_limits<int>::max());
    EXPECT_EQ(missing.resident_bytes, 0u);
    EXPECT_EQ(missing.open_fds, 0u);
}

TEST(Metrics, ProcessMetricsAreRendered) {
    MetricsRegistry registry;
    register_process_metrics(registry);
    register_process_metrics(registry);  // a second registration adds no duplicate series
    const auto text = registry.render();
    for (const char* family :
         {"process_cpu_seconds_total counter", "process_resident_memory_bytes gauge",
          "process_virtual_memory_bytes gauge", "process_open_fds gauge", "process_max_fds gauge",
          "process_start_time_seconds gauge"}) {
        const std::string type_line = std::string("# TYPE ") + family + "\n";
        EXPECT_NE(text.find(type_line), std::string::npos) << family;
        const std::string name(family, std::string_view(family).find(' '));
        const auto first = text.find("\n" + name + " ");
        ASSERT_NE(first, std::string::npos) << name;
        EXPECT_EQ(text.find("\n" + name + " ", first + 1), std::string::npos) << name;
    }
}

}  // namespace
}  // namespace hearth::core
