#pragma once

// A log-linear latency histogram in the style of HdrHistogram, written by hand because Debian 12
// packages no HdrHistogram for C++. Memory is fixed whatever the number of samples, so a
// benchmark can record every message of a long run.

#include <array>
#include <cstdint>

namespace hearth::bench {

/// Values (nanoseconds, in practice) with a relative error below 1% (2 significant digits): values
/// below 256 are counted exactly; above, each power of two is split into 128 equal sub-buckets.
/// Values above `kMaxTrackable` (about 18 minutes in nanoseconds) are counted as that.
/// Not thread-safe: one per thread, merged once the threads have stopped.
class LatencyHistogram {
public:
    static constexpr int kSubBucketBits = 7;  // 128 sub-buckets per power of two: error < 1/128
    static constexpr int kMaxExponent = 40;   // 2^40 ns ~ 18 minutes
    static constexpr std::uint64_t kMaxTrackable = (std::uint64_t{1} << (kMaxExponent + 1)) - 1;
    static constexpr std::size_t kExactBuckets = std::size_t{1} << (kSubBucketBits + 1);
    static constexpr std::size_t kSubBuckets = std::size_t{1} << kSubBucketBits;
    static constexpr std::size_t kBucketCount =
        kExactBuckets + static_cast<std::size_t>(kMaxExponent - kSubBucketBits) * kSubBuckets;

    void record(std::uint64_t value) noexcept {
        if (value > kMaxTrackable) {
            value = kMaxTrackable;
        }
        ++counts_[bucket_of(value)];
        ++count_;
        if (value > max_) {
            max_ = value;
        }
        if (count_ == 1 || value < min_) {
            min_ = value;
        }
    }

    void merge(const LatencyHistogram& other) noexcept;

    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t max() const noexcept { return max_; }
    std::uint64_t min() const noexcept { return min_; }

    /// The smallest value such that at least `percent` % of the samples are at or below it, to the
    /// histogram's precision (the upper end of its bucket, never above the largest sample); 0 when
    /// empty. `percent` is clamped to [0, 100].
    std::uint64_t percentile(double percent) const noexcept;

    /// The bucket a value falls in, and that bucket's smallest and largest value.
    static std::size_t bucket_of(std::uint64_t value) noexcept {
        if (value < kExactBuckets) {
            return static_cast<std::size_t>(value);
        }
        const int exponent = 63 - __builtin_clzll(value);  // >= kSubBucketBits + 1
        const int shift = exponent - kSubBucketBits;
        const auto sub = static_cast<std::size_t>(value >> shift) - kSubBuckets;  // [0, 128)
        return kExactBuckets +
               static_cast<std::size_t>(exponent - kSubBucketBits - 1) * kSubBuckets + sub;
    }
    static std::uint64_t bucket_lowest(std::size_t bucket) noexcept;
    static std::uint64_t bucket_highest(std::size_t bucket) noexcept;

private:
    std::array<std::uint64_t, kBucketCount> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
    std::uint64_t min_ = 0;
};

}  // namespace hearth::bench
