#pragma once

// What the load tools (hearth-bench, hearth-bot) share: room for their connections' file
// descriptors, the server's /proc figures (--server-pid), and their JSON reports' text.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "core/metrics.hpp"

namespace hearth::tools {

/// Raises the soft open-file limit to the hard one. False, with a message on standard error
/// prefixed by `tool`, when `connections` (plus a reserve for the tool's own descriptors) cannot
/// fit under it.
bool raise_file_limit(std::string_view tool, std::size_t connections);

/// SIGINT and SIGTERM end a run early: they set a flag that stop_requested() reads (the run then
/// reports what it has); a second one ends the process at once.
void install_stop_handlers();
bool stop_requested() noexcept;

/// The figures of process `pid` from /proc: nullopt when `pid` is 0 or below, or the process is
/// gone (or went between the check and the read).
std::optional<core::ProcessStats> sample_process(int pid);

/// JSON text with doubles in their shortest form ("47.4"; Boost.JSON 1.81 writes "4.74E1") and
/// non-finite ones as null.
std::string json_text(const boost::json::value& v);

}  // namespace hearth::tools
