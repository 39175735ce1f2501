#include "bench/histogram.hpp"
#include <algorithm>
#include <cmath>

namespace hearth::bench {

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
    if (other.count_ == 0) {
        return;
    }
    for (std::size_t i = 0; i < kBucketCount; ++i) {
        counts_[i] += other.counts_[i];
    }
    min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    count_ += other.count_;
}

std::uint64_t LatencyHistogram::bucket_lowest(std::size_t bucket) noexcept {
    if (bucket < kExactBuckets) {
        return bucket;
    }
    const std::size_t above = bucket - kExactBuckets;
    const auto exponent = static_cast<int>(above / kSubBuckets) + kSubBucketBits + 1;
    const std::uint64_t sub = kSubBuckets + above % kSubBuckets;
    return sub << (exponent - kSubBucketBits);
}

std::uint64_t LatencyHistogram::bucket_highest(std::size_t bucket) noexcept {
    if (bucket < kExactBuckets) {
        return bucket;
    }
    const std::size_t above = bucket - kExactBuckets;
    const auto exponent = static_cast<int>(above / kSubBuckets) + kSubBucketBits + 1;
    return bucket_lowest(bucket) + (std::uint64_t{1} << (exponent - kSubBucketBits)) - 1;
}

std::uint64_t LatencyHistogram::percentile(double percent) const noexcept {
    if (count_ == 0) {
        return 0;
    }
    percent = std::clamp(percent, 0.0, 100.0);
    // The rank of the sample asked for, 1-based: p50 of 10 samples is the 5th.
    auto rank =
        static_cast<std::uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
            return std::min(bucket_highest(i), max_);
        }
    }
    return max_;
}

}  // namespace hearth::bench
