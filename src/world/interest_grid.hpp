#pragma once

// The uniform grid a zone answers "who is near this point" with (docs/world.md, "Zones:
// interest, movement, combat, chat"). Rebuilt from scratch once per tick by a counting sort:
// every entity moves each tick in a busy zone, so updating cells one move at a time would cost
// as much, and the sort leaves each row of cells as one contiguous run of positions, which a
// query scans without indirection. Each position carries a payload (what the caller reads of the
// entities it finds), sorted with it, so that a query's results are read from the same few
// contiguous runs rather than from arrays indexed by entity. Runs on: its zone's shard.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace hearth::world {

template <class Payload>
class InterestGrid {
public:
    /// The most cells: a huge zone gets larger cells rather than a grid that costs more memory
    /// and more time to clear per tick than its entities do.
    static constexpr std::size_t kMaxCells = std::size_t{1} << 14;

    /// `reach`: the farthest distance queries ask for (view radius plus hysteresis).
    void configure(float width, float height, float reach) {
        const double area = static_cast<double>(width) * static_cast<double>(height);
        // Half the reach: a query covers 5 rows of cells, each cut to the circle. (A quarter of
        // the reach scans fewer entities, but costs more per row than it saves at 80 in view.)
        double cell = std::max(static_cast<double>(reach) / 2, 1.0);
        cell = std::max(cell, std::sqrt(area / static_cast<double>(kMaxCells)));
        for (;;) {
            cols_ = std::max<std::uint32_t>(
                1, static_cast<std::uint32_t>(std::ceil(static_cast<double>(width) / cell)));
            rows_ = std::max<std::uint32_t>(
                1, static_cast<std::uint32_t>(std::ceil(static_cast<double>(height) / cell)));
            if (static_cast<std::size_t>(cols_) * rows_ <= kMaxCells) {
                break;
            }
            cell *= 1.1;  // a long, narrow zone
        }
        cell_ = static_cast<float>(cell);
        inv_cell_ = static_cast<float>(1 / cell);
        start_.assign(static_cast<std::size_t>(cols_) * rows_ + 1, 0);
    }

    void clear() { staged_.clear(); }
    void add(float x, float y, const Payload& payload) {
        staged_.push_back({x, y, cell_of(x, y), payload});
    }
    /// Sorts what was added by cell.
    void build() {
        std::fill(start_.begin(), start_.end(), 0);
        for (const Staged& s : staged_) {
            ++start_[s.cell + 1];
        }
        for (std::size_t c = 1; c < start_.size(); ++c) {
            start_[c] += start_[c - 1];
        }
        x_.resize(staged_.size());
        y_.resize(staged_.size());
        payload_.resize(staged_.size());
        fill_.assign(start_.begin(), start_.end() - 1);
        for (const Staged& s : staged_) {
            const std::uint32_t at = fill_[s.cell]++;
            x_[at] = s.x;
            y_[at] = s.y;
            payload_[at] = s.payload;
        }
    }

    /// Calls f(first, count) for each run of positions (x(first) .. x(first + count - 1)) that
    /// holds every entity within `reach` of (x, y) (and others: the caller checks distances).
    template <class F>
    void for_each_run(float x, float y, float reach, F&& f) const {
        const std::uint32_t cy0 = row(y - reach);
        const std::uint32_t cy1 = row(y + reach);
        for (std::uint32_t cy = cy0; cy <= cy1; ++cy) {
            // The row's cells that the circle reaches: its half-width at the row's nearest y.
            const float top = static_cast<float>(cy) * cell_;
            const float dy = y < top ? top - y : std::max(0.0F, y - (top + cell_));
            const float half = std::sqrt(std::max(0.0F, reach * reach - dy * dy));
            const std::uint32_t cx0 = col(x - half);
            const std::uint32_t cx1 = col(x + half);
            const std::size_t first = start_[static_cast<std::size_t>(cy) * cols_ + cx0];
            const std::size_t last = start_[static_cast<std::size_t>(cy) * cols_ + cx1 + 1];
            if (first != last) {
                f(first, last - first);
            }
        }
    }

    std::size_t size() const noexcept { return x_.size(); }
    const float* x() const noexcept { return x_.data(); }
    const float* y() const noexcept { return y_.data(); }
    const Payload& payload(std::size_t i) const noexcept { return payload_[i]; }
    const Payload* payloads() const noexcept { return payload_.data(); }
    std::size_t cells() const noexcept { return start_.size() - 1; }

private:
    struct Staged {
        float x;
        float y;
        std::uint32_t cell;
        Payload payload;
    };

    // Truncation is the floor for the non-negative values it is left with (and cheaper).
    std::uint32_t col(float x) const {
        const float c = x * inv_cell_;
        return c <= 0 ? 0 : std::min(static_cast<std::uint32_t>(c), cols_ - 1);
    }
    std::uint32_t row(float y) const {
        const float r = y * inv_cell_;
        return r <= 0 ? 0 : std::min(static_cast<std::uint32_t>(r), rows_ - 1);
    }
    std::uint32_t cell_of(float x, float y) const { return row(y) * cols_ + col(x); }

    float cell_ = 1;
    float inv_cell_ = 1;
    std::uint32_t cols_ = 1;
    std::uint32_t rows_ = 1;
    std::vector<Staged> staged_;
    std::vector<std::uint32_t> start_;  // per cell, then the end: positions sorted by cell
    std::vector<std::uint32_t> fill_;
    std::vector<float> x_;
    std::vector<float> y_;
    std::vector<Payload> payload_;
};

}  // namespace hearth::world
