// Fuzz target: HTTP/1.1 requests as an HTTP session reads them (src/net/http_session.cpp), with
// the bounds Hearth applies (net::HttpLimits through apply_limits, src/net/http_request.hpp).
//
// Input: byte 0 picks the settings (bit 0: the default limits scaled down by 64, so that short
// inputs reach the head and body bounds too; the other bits seed the split points), the rest is
// what the client sends: any number of pipelined requests.
//
// Per request, as the session does: the head is parsed within the head bound (the parser's limit,
// then the whole head measured: head_within_limit), then the body within the body bound; a request
// that completes goes through to_request (the routes' view: decoded path, query parameters,
// headers) and, when it asks for an upgrade, the WebSocket header checks (subprotocol,
// permessage-deflate offer, Sec-WebSocket-Key). Another request is read only after one that keeps
// the connection alive, as the session does.
//
// Checked on every input: no crash or sanitizer report; the parser never takes more than it was
// given; a completed request's body is within its bound; and the requests served are the same
// whether the bytes arrive whole or in random pieces.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include "fuzz_check.hpp"
#include "net/http_request.hpp"
#include "net/server.hpp"
#include "net/ws_codec.hpp"

namespace {

namespace http = boost::beast::http;
using hearth::fuzz::check;

// How a request ended, as the session answers it.
enum class End : std::uint8_t {
    kRequest,    // complete: dispatched or upgraded
    kHeadLimit,  // 431
    kBodyLimit,  // 413
    kBad,        // 400
    kEof,        // the client stopped sending (nothing answered)
};

struct Outcome {
    End end = End::kEof;
    std::string method;
    std::string target;
    std::size_t headers = 0;
    std::string body;
    bool operator==(const Outcome&) const = default;
};

const std::vector<std::string> kSubprotocols = {"hearth.v1", "chat", ""};

// What the session and the routes read from a complete request.
void inspect(const hearth::net::BeastRequest& req, const hearth::net::HttpLimits& limits) {
    check(req.body().size() <= limits.max_body_bytes, "body over the body bound");
    const hearth::HttpRequest r = hearth::net::to_request(req, "192.0.2.1:4000", "http", false);
    check(r.target == req.target(), "target changed");
    check(r.query.size() < r.target.size() || r.query.empty(), "query longer than the target");
    for (const std::string_view name : {"host", "authorization", "content-type", "origin"}) {
        (void)r.header(name);
    }
    for (const std::string_view name : {"userId", "token", "limit", ""}) {
        if (const auto value = r.query_param(name)) {
            check(value->size() <= r.query.size(), "decoded parameter longer than the query");
        }
    }
    if (hearth::net::is_websocket_upgrade(req)) {
        if (const auto p = hearth::net::select_subprotocol(req, kSubprotocols)) {
            check(std::find(kSubprotocols.begin(), kSubprotocols.end(), *p) != kSubprotocols.end(),
                  "a subprotocol the server does not speak");
        }
        (void)hearth::net::ws::negotiate_deflate(req[http::field::sec_websocket_extensions]);
        const auto key = req[http::field::sec_websocket_key];
        if (key.size() == 24) {
            check(hearth::net::ws::accept_key(key).size() == 28, "accept key not 28 characters");
        }
    }
}

// The session's read loop over `wire`, arriving in pieces as `split` says.
std::vector<Outcome> run(std::string_view wire, const hearth::net::HttpLimits& limits,
                         std::uint64_t seed) {
    hearth::fuzz::Splitter split(seed);
    std::vector<Outcome> outcomes;
    std::string buffer;  // received, not yet consumed by a parser
    std::size_t fed = 0;
    const auto receive = [&]() -> bool {
        if (fed == wire.size()) {
            return false;
        }
        const std::size_t n = split.next(wire.size() - fed);
        buffer.append(wire.substr(fed, n));
        fed += n;
        return true;
    };
    for (;;) {
        if (buffer.empty() && !receive()) {
            return outcomes;  // the client closed between requests
        }
        hearth::net::RequestParser parser;
        hearth::net::apply_limits(parser, limits);
        boost::system::error_code ec;
        std::size_t head_bytes = 0;
        while (!parser.is_done()) {
            if (buffer.empty() && !receive()) {
                parser.put_eof(ec);
                break;
            }
            // As Beast's read_header and read: not eager for the head (a put that completes it
            // takes the head's bytes only), eager for the body.
            const bool head = !parser.is_header_done();
            parser.eager(!head);
            const std::size_t n = parser.put(boost::asio::buffer(buffer), ec);
            check(n <= buffer.size(), "parser consumed more than it was given");
            if (head) {
                head_bytes += n;
            }
            buffer.erase(0, n);
            if (ec == http::error::need_more) {
                ec = {};
                if (!receive()) {
                    parser.put_eof(ec);
                    break;
                }
                continue;
            }
            if (ec) {
                break;
            }
        }
        if (!ec && parser.is_done() && !hearth::net::head_within_limit(head_bytes, limits)) {
            ec = http::error::header_limit;  // as the session refuses it
        }
        Outcome o;
        if (ec == http::error::header_limit) {
            o.end = End::kHeadLimit;
        } else if (ec == http::error::body_limit) {
            o.end = End::kBodyLimit;
        } else if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
            o.end = End::kEof;
        } else if (ec || !parser.is_done()) {
            o.end = End::kBad;
        } else {
            o.end = End::kRequest;
        }
        if (o.end != End::kRequest) {
            outcomes.push_back(std::move(o));
            return outcomes;  // answered (or not) and closed
        }
        const auto& req = parser.get();
        inspect(req, limits);
        o.method = std::string(req.method_string());
        o.target = std::string(req.target());
        o.headers = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
        o.body = req.body();
        outcomes.push_back(std::move(o));
        if (hearth::net::is_websocket_upgrade(req) || !req.keep_alive()) {
            return outcomes;  // the rest belongs to the WebSocket connection, or nobody
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hearth::fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    hearth::net::HttpLimits limits;  // the defaults [http] starts with
    if ((settings & 1) != 0) {
        limits.max_header_bytes /= 64;
        limits.max_body_bytes /= 64;
    }
    const std::string_view wire = in.rest();
    auto whole = run(wire, limits, 0);
    auto pieces = run(wire, limits, (settings >> 1) + 1U);
    // How the connection ends may depend on the split: Beast looks for the end of a head before
    // reading its lines, so a head with bare LFs is refused at once when it arrives whole but waits
    // for the head bound (or deadline) when it trickles in. Either way it ends the connection; the
    // requests served before it must be the same.
    const auto served = [](std::vector<Outcome>& v) {
        if (!v.empty() && v.back().end != End::kRequest) {
            v.pop_back();
        }
        return v;
    };
    check(served(whole) == served(pieces), "the requests served depend on the split points");
    return 0;
}
