#pragma once

// What the Moonshare front-end's files share (internal to the front-end): its logger and how a
// client's address is keyed for the per-address limits.

#include <memory>
#include <string>
#include <string_view>

#include "util/log.hpp"

namespace hearth::frontends::moonshare {

/// The front-end's logger, "moonshare".
std::shared_ptr<spdlog::logger> log();

/// What a client is counted under in the per-address limits: its IP address, an IPv6 address by
/// its /64 (one subscriber usually holds a whole /64, so rotating inside it does not escape).
std::string address_key_of(const std::string& peer);

std::string lowercase(std::string_view s);
bool is_blank(std::string_view s);

}  // namespace hearth::frontends::moonshare
