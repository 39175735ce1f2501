#pragma once

// Test clients for integration tests: real sockets, and a deadline on every wait. The WebSocket
// client is Beast's, an implementation independent of Hearth's own framing; RawClient speaks bytes
// for the cases a well-behaved client cannot produce.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/json/value.hpp>

namespace hearth::test {

using namespace std::chrono_literals;
constexpr std::chrono::milliseconds kDeadline = 10s;  // no single wait in a test takes longer

struct HttpResult {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
};

/// One HTTP/1.1 request per call on a fresh connection (or on `KeepAliveClient`).
HttpResult http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body = "",
                        const std::map<std::string, std::string>& headers = {}, bool tls = false);

/// A JSON request to the operator API with `Authorization: Bearer <token>` (none when `token` is
/// empty).
HttpResult api_request(std::uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body, const std::string& token);

/// One plain HTTP/1.1 request from the source address `local_address` (e.g. "127.0.0.2": the
/// whole 127/8 block is loopback), for per-address behaviour.
HttpResult http_request_from(const std::string& local_address, std::uint16_t port,
                             const std::string& method, const std::string& target,
                             const std::map<std::string, std::string>& headers = {});

/// Several requests over one connection, to test keep-alive.
class KeepAliveClient {
public:
    explicit KeepAliveClient(std::uint16_t port);
    ~KeepAliveClient();
    HttpResult request(const std::string& method, const std::string& target,
                       const std::string& body = "");
    /// Whether the server closed the connection (a read sees EOF within the deadline).
    bool closed_by_server();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct WsMessage {
    bool text = true;
    std::string data;
};

/// What a WebSocket client saw at the end: the close frame's code and reason (code 1006 and an
/// empty reason when the connection ended without one).
struct WsClose {
    std::uint16_t code = 1006;
    std::string reason;
};

struct WsOptions {
    std::string path = "/echo";
    bool compression = false;  // offer permessage-deflate
    bool tls = false;
    std::map<std::string, std::string> headers{};
    std::string local_address{};  // bind the client to this source address (per-IP limits)
};

/// A Beast WebSocket client. Every call waits at most `kDeadline`; on timeout it throws.
class WsClient {
public:
    WsClient(std::uint16_t port, WsOptions options = {});
    ~WsClient();

    void send_text(const std::string& data);
    void send_binary(const std::string& data);
    /// The next message; nullopt when the connection closed instead (see `close_info`). Throws
    /// when the deadline passes; a later call resumes waiting for the same message.
    std::optional<WsMessage> read(std::chrono::milliseconds deadline = kDeadline);
    /// Reads (discarding messages) until the connection closes; returns how it closed.
    WsClose wait_closed(std::chrono::milliseconds deadline = kDeadline);
    void close(std::uint16_t code = 1000, const std::string& reason = "");
    const std::optional<WsClose>& close_info() const;
    /// The response headers of the upgrade.
    const std::map<std::string, std::string>& upgrade_headers() const;
    /// How many pings the client saw.
    int pings_seen() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A plain TCP client for byte-level tests.
class RawClient {
public:
    explicit RawClient(std::uint16_t port);
    ~RawClient();

    void write(const std::string& bytes);
    /// Reads at least `n` bytes (or until EOF); returns what arrived.
    std::string read_exactly(std::size_t n, std::chrono::milliseconds deadline = kDeadline);
    /// Reads the HTTP response head of an upgrade (up to and including the blank line).
    std::string read_http_head(std::chrono::milliseconds deadline = kDeadline);
    /// Reads until the peer closes; returns everything read. Throws on deadline.
    std::string read_until_eof(std::chrono::milliseconds deadline = kDeadline);
    /// Sends a WebSocket upgrade request for `path` and returns the response head.
    std::string upgrade(const std::string& path, const std::string& extra_headers = "");

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A server frame parsed from raw bytes (tests only; the server's own parser is not used).
struct RawFrame {
    bool fin = true;
    bool rsv1 = false;
    std::uint8_t opcode = 0;
    std::string payload;
};
/// Parses the first frame of `bytes`; nullopt when incomplete. `consumed` is set to its size.
std::optional<RawFrame> parse_server_frame(const std::string& bytes, std::size_t& consumed);
/// A masked client frame.
std::string client_frame(std::uint8_t opcode, const std::string& payload, bool fin = true);

/// A self-signed certificate and key for 127.0.0.1, written into `dir` by the openssl command.
struct TestCertificate {
    std::string cert_file;
    std::string key_file;
};
TestCertificate make_test_certificate(const std::string& dir);

/// base64url without padding (RFC 4648 section 5), written here independently of the server's
/// decoder: how a browser passes a token in the subprotocol hearth.bearer.<...>.
std::string base64url(const std::string& in);

/// A refused upgrade, read off a raw socket: the status, the head's headers (lower-case names) and
/// the body parsed as JSON (null when it is not JSON).
struct UpgradeRefusal {
    int status = 0;
    std::map<std::string, std::string> headers;
    boost::json::value body;
};

/// Sends a WebSocket upgrade for `path` with `headers` and reads the refusal.
UpgradeRefusal refused_upgrade(std::uint16_t port, const std::string& path,
                               const std::map<std::string, std::string>& headers);

}  // namespace hearth::test
