#pragma once

#include <string>
#include <type_traits>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace hearth {

/// Errors that cross module boundaries. Each has a stable snake_case code (`error_code_name`) that
/// the HTTP API and the native protocol put on the wire.
enum class Errc {
    kOk = 0,
    kInvalidArgument,
    kNotFound,
    kAlreadyExists,
    kNotAllowed,
    kUnauthenticated,
    kLimitReached,
    kTooLarge,
    kUnavailable,
    kStorageFailure,
    kTimeout,
    kShuttingDown,
    kInternal,
};

const boost::system::error_category& hearth_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), hearth_category()};
}

/// The stable wire name of an error, e.g. `limit_reached`.
std::string_view error_code_name(Errc e) noexcept;

/// A value or an error; the return type of every fallible call between modules.
template <class T>
using Result = boost::system::result<T>;

}  // namespace hearth

template <>
struct boost::system::is_error_code_enum<hearth::Errc> : std::true_type {};
