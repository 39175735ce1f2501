#include "bench/histogram.hpp"
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace hearth::bench {
namespace {

TEST(LatencyHistogram, EmptyReportsZero) {
    LatencyHistogram h;
    EXPECT_EQ(h.count(), 0U);
    EXPECT_EQ(h.percentile(50), 0U);
    EXPECT_EQ(h.percentile(100), 0U);
    EXPECT_EQ(h.max(), 0U);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
    LatencyHistogram h;
    for (std::uint64_t v = 0; v < 256; ++v) {
        EXPECT_EQ(LatencyHistogram::bucket_of(v), v);
        EXPECT_EQ(LatencyHistogram::bucket_lowest(v), v);
        EXPECT_EQ(LatencyHistogram::bucket_highest(v), v);
    }
    h.record(7);
    h.record(9);
    EXPECT_EQ(h.percentile(50), 7U);
    EXPECT_EQ(h.percentile(100), 9U);
    EXPECT_EQ(h.min(), 7U);
}

TEST(LatencyHistogram, BucketsTileTheRangeWithinOnePercent) {
    // Every bucket starts right after the previous one ends, and is narrower than 1% of its
    // values: two significant digits.
    for (std::size_t b = 1; b < LatencyHistogram::kBucketCount; ++b) {
        ASSERT_EQ(LatencyHistogram::bucket_lowest(b), LatencyHistogram::bucket_highest(b - 1) + 1)
            << "bucket " << b;
        const double lo = static_cast<double>(LatencyHistogram::bucket_lowest(b));
        const double hi = static_cast<double>(LatencyHistogram::bucket_highest(b));
        ASSERT_LE((hi - lo) / lo, 0.01) << "bucket " << b;
    }
    EXPECT_EQ(LatencyHistogram::bucket_highest(LatencyHistogram::kBucketCount - 1),
              LatencyHistogram::kMaxTrackable);
}

TEST(LatencyHistogram, EveryValueFallsInItsBucket) {
    std::mt19937_64 rng(42);
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t v = rng() >> (rng() % 64);
        if (v > LatencyHistogram::kMaxTrackable) {
            continue;
        }
        const auto b = LatencyHistogram::bucket_of(v);
        ASSERT_LT(b, LatencyHistogram::kBucketCount);
        ASSERT_LE(LatencyHistogram::bucket_lowest(b), v);
        ASSERT_GE(LatencyHistogram::bucket_highest(b), v);
    }
}

TEST(LatencyHistogram, PercentilesOfAUniformRangeAreWithinOnePercent) {
    LatencyHistogram h;
    for (std::uint64_t v = 1; v <= 100000; ++v) {
        h.record(v * 1000);  // 1 us .. 100 ms in nanoseconds
    }
    EXPECT_EQ(h.count(), 100000U);
    const auto near = [](std::uint64_t got, double want) {
        return std::abs(static_cast<double>(got) - want) <= want * 0.01;
    };
    EXPECT_TRUE(near(h.percentile(50), 50'000'000.0)) << h.percentile(50);
    EXPECT_TRUE(near(h.percentile(90), 90'000'000.0)) << h.percentile(90);
    EXPECT_TRUE(near(h.percentile(99), 99'000'000.0)) << h.percentile(99);
    EXPECT_TRUE(near(h.percentile(99.9), 99'900'000.0)) << h.percentile(99.9);
    EXPECT_EQ(h.percentile(100), 100'000'000U);  // the largest sample, exactly
    EXPECT_EQ(h.max(), 100'000'000U);
    EXPECT_EQ(h.min(), 1000U);
}

TEST(LatencyHistogram, PercentileIsTheRankedSampleNotAnInterpolation) {
    LatencyHistogram h;
    for (int i = 0; i < 99; ++i) {
        h.record(100);
    }
    h.record(5'000'000);
    EXPECT_EQ(h.percentile(50), 100U);
    EXPECT_EQ(h.percentile(99), 100U);
    EXPECT_TRUE(h.percentile(99.9) >= 4'950'000U && h.percentile(99.9) <= 5'000'000U);
    EXPECT_EQ(h.max(), 5'000'000U);
}

TEST(LatencyHistogram, ValuesAboveTheRangeAreClamped) {
    LatencyHistogram h;
    h.record(~std::uint64_t{0});
    EXPECT_EQ(h.count(), 1U);
    EXPECT_EQ(h.max(), LatencyHistogram::kMaxTrackable);
    EXPECT_EQ(h.percentile(50), LatencyHistogram::kMaxTrackable);
}

TEST(LatencyHistogram, MergeAddsCountsAndKeepsExtremes) {
    LatencyHistogram a;
    LatencyHistogram b;
    for (std::uint64_t v = 1; v <= 1000; ++v) {
        a.record(v);
    }
    for (std::uint64_t v = 1001; v <= 2000; ++v) {
        b.record(v);
    }
    LatencyHistogram empty;
    a.merge(empty);
    EXPECT_EQ(a.count(), 1000U);
    empty.merge(b);
    EXPECT_EQ(empty.min(), 1001U);

    a.merge(b);
    EXPECT_EQ(a.count(), 2000U);
    EXPECT_EQ(a.min(), 1U);
    EXPECT_EQ(a.max(), 2000U);
    EXPECT_NEAR(static_cast<double>(a.percentile(50)), 1000.0, 10.0);
}

TEST(LatencyHistogram, SizeIsFixed) {
    // Constant memory whatever the number of samples: the point of the structure.
    EXPECT_LE(sizeof(LatencyHistogram), 40U * 1024U);
}

}  // namespace
}  // namespace hearth::bench
