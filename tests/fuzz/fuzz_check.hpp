#pragma once

// What every fuzz target uses to state an invariant: a failed check aborts, which libFuzzer and
// the corpus replay (replay_main.cpp) both report as a crash with the input that caused it.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace hearth::fuzz {

inline void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz check failed: %s\n", what);
        std::abort();
    }
}

/// Reads a fuzz input front to back: a few bytes of settings, then the rest.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

    /// The next byte, or 0 when none is left.
    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
    /// Everything not read yet.
    std::string_view rest() {
        const std::string_view r(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
        pos_ = size_;
        return r;
    }
    std::size_t remaining() const { return size_ - pos_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

/// Split points for feeding an input in pieces: seed 0 means whole, others mostly small pieces and
/// sometimes a big one. A codec must give the same results for every split.
class Splitter {
public:
    explicit Splitter(std::uint64_t seed) : seed_(seed), state_(seed * 0x9E3779B97F4A7C15ULL + 1) {}

    /// The size of the next piece, at most `left` (and at least 1 when left > 0).
    std::size_t next(std::size_t left) {
        if (seed_ == 0 || left == 0) {
            return left;
        }
        state_ ^= state_ << 13;
        state_ ^= state_ >> 7;
        state_ ^= state_ << 17;
        const std::size_t step =
            (state_ & 3) == 0 ? 1 + (state_ >> 8) % 4096 : 1 + (state_ >> 8) % 16;
        return step < left ? step : left;
    }

private:
    std::uint64_t seed_;
    std::uint64_t state_;
};

}  // namespace hearth::fuzz
