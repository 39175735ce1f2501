#pragma once

// Boost.JSON reads a number beyond a double's range (1e400) as infinity and writes it back as
// `Infinity`, which is not JSON: a client's value relayed as it was parsed would reach every
// recipient as text their JSON parsers refuse. Whatever is written back out is checked first.

#include <boost/json/value.hpp>

namespace hearth::core {

/// Whether every number in `value` is finite. Iterative: any nesting depth is safe.
bool finite_numbers(const boost::json::value& value);

}  // namespace hearth::core
