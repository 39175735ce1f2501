#include "core/json_numbers.hpp"
#include <cmath>
#include <vector>

namespace hearth::core {

bool finite_numbers(const boost::json::value& value) {
    std::vector<const boost::json::value*> pending{&value};
    while (!pending.empty()) {
        const boost::json::value* v = pending.back();
        pending.pop_back();
        if (v->is_double()) {
            if (!std::isfinite(v->get_double())) {
                return false;
            }
        } else if (v->is_array()) {
            for (const auto& e : v->get_array()) {
                pending.push_back(&e);
            }
        } else if (v->is_object()) {
            for (const auto& e : v->get_object()) {
                pending.push_back(&e.value());
            }
        }
    }
    return true;
}

}  // namespace hearth::core
