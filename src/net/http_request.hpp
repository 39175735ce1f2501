#pragma once

// Reading a client's HTTP request, with no I/O: Beast's request parser with the bounds Hearth
// applies, the request as routes see it, and the headers of a WebSocket upgrade. The session
// (http_session.cpp) does the reading and writing; the fuzz target tests/fuzz/http_request_fuzz.cpp
// drives these with arbitrary bytes. Thread-safety: free functions without shared state.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <hearth/http.hpp>

#include "net/server.hpp"

namespace hearth::net {

using BeastRequest = boost::beast::http::request<boost::beast::http::string_body>;
using RequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

/// Applies the head and body bounds of `limits` to a fresh parser: past them the parser fails with
/// header_limit (answered 431) or body_limit (answered 413).
void apply_limits(RequestParser& parser, const HttpLimits& limits);

/// Whether a head the parser accepted, of `head_bytes` (request line and fields), is within the
/// head bound. Beast 1.81 applies header_limit to the request line and to the fields separately
/// when the request line is complete in one read, so a head of up to twice max_header_bytes gets
/// through the parser; the session refuses it as 431 like any head over the bound.
bool head_within_limit(std::size_t head_bytes, const HttpLimits& limits);

/// Whether a comma-separated header value (e.g. "Connection: keep-alive, Upgrade") holds `token`,
/// compared case-insensitively.
bool has_token(std::string_view list, std::string_view token);

/// Whether the request asks for a WebSocket upgrade (GET, Connection: upgrade, Upgrade:
/// websocket).
bool is_websocket_upgrade(const BeastRequest& req);

/// The first of `supported` that the client offers in any Sec-WebSocket-Protocol header (a
/// comma-separated list; values compared exactly, as browsers compare the answer).
std::optional<std::string_view> select_subprotocol(const BeastRequest& req,
                                                   const std::vector<std::string>& supported);

/// The request as routes see it: the path percent-decoded (as sent when it is not valid
/// percent-encoding), the query raw, the headers in order.
HttpRequest to_request(const BeastRequest& req, const std::string& peer,
                       const std::string& listener, bool tls);

}  // namespace hearth::net
