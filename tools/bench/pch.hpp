#pragma once
// Precompiled for hearth-bench: Asio (with SSL), Boost.JSON and CLI11, parsed once per build.
// No Beast: the client's WebSocket framing is its own (see connection.hpp).
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
