#pragma once

// JSON values compared for the fuzz targets that write a client's value back out.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include <boost/json/value.hpp>

namespace hearth::fuzz {

namespace json = boost::json;

// Equal, doubles within a few units in the last place: boost.json 1.81 does not parse every
// number correctly rounded (123456789012345678901 reads one ulp off), so an exact round trip
// through text cannot be asked of the writer.
inline bool same_json(const json::value& a, const json::value& b) {
    if (a.is_double() && b.is_double()) {
        const double x = a.get_double();
        const double y = b.get_double();
        return x == y || std::fabs(x - y) <= 4 * std::numeric_limits<double>::epsilon() *
                                                 std::max(std::fabs(x), std::fabs(y));
    }
    if (a.is_array() && b.is_array()) {
        const auto& p = a.get_array();
        const auto& q = b.get_array();
        if (p.size() != q.size()) {
            return false;
        }
        for (std::size_t i = 0; i < p.size(); ++i) {
            if (!same_json(p[i], q[i])) {
                return false;
            }
        }
        return true;
    }
    if (a.is_object() && b.is_object()) {
        const auto& p = a.get_object();
        const auto& q = b.get_object();
        if (p.size() != q.size()) {
            return false;
        }
        for (const auto& e : p) {
            const auto* other = q.if_contains(e.key());
            if (other == nullptr || !same_json(e.value(), *other)) {
                return false;
            }
        }
        return true;
    }
    return a == b;
}

}  // namespace hearth::fuzz
