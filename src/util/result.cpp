#include <hearth/result.hpp>

namespace hearth {
namespace {

// Boost's error_category has a public non-virtual destructor by design (categories are never
// deleted through a base pointer), which -Wnon-virtual-dtor reports on every derived class.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
/// Stateless, so any thread may use it.
class HearthCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "hearth"; }

    std::string message(int ev) const override {
        switch (static_cast<Errc>(ev)) {
            case Errc::kOk:
                return "Success.";
            case Errc::kInvalidArgument:
                return "An argument is invalid.";
            case Errc::kNotFound:
                return "The requested item does not exist.";
            case Errc::kAlreadyExists:
                return "The item already exists.";
            case Errc::kNotAllowed:
                return "The operation is not allowed.";
            case Errc::kUnauthenticated:
                return "Authentication is required or has failed.";
            case Errc::kLimitReached:
                return "A configured limit has been reached.";
            case Errc::kTooLarge:
                return "The request or message is too large.";
            case Errc::kUnavailable:
                return "The service is temporarily unavailable.";
            case Errc::kStorageFailure:
                return "The storage backend failed.";
            case Errc::kTimeout:
                return "The operation timed out.";
            case Errc::kShuttingDown:
                return "The server is shutting down.";
            case Errc::kInternal:
                return "An internal error occurred.";
        }
        return "Unknown hearth error " + std::to_string(ev) + ".";
    }
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& hearth_category() noexcept {
    static const HearthCategory category;
    return category;
}

std::string_view error_code_name(Errc e) noexcept {
    switch (e) {
        case Errc::kOk:
            return "ok";
        case Errc::kInvalidArgument:
            return "invalid_argument";
        case Errc::kNotFound:
            return "not_found";
        case Errc::kAlreadyExists:
            return "already_exists";
        case Errc::kNotAllowed:
            return "not_allowed";
        case Errc::kUnauthenticated:
            return "unauthenticated";
        case Errc::kLimitReached:
            return "limit_reached";
        case Errc::kTooLarge:
            return "too_large";
        case Errc::kUnavailable:
            return "unavailable";
        case Errc::kStorageFailure:
            return "storage_failure";
        case Errc::kTimeout:
            return "timeout";
        case Errc::kShuttingDown:
            return "shutting_down";
        case Errc::kInternal:
            return "internal";
    }
    // Wire names are stable; an out-of-range value is a bug in the sender, not a new code.
    return "internal";
}

}  // namespace hearth
