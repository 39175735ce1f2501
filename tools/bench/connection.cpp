#include "bench/connection.hpp"
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/parse.hpp>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <zlib.h>

#include "bench/worker.hpp"

namespace hearth::bench {

namespace {

constexpr std::size_t kMaxResponseHeadBytes = 16 * 1024;
constexpr std::size_t kTlsReadBufferBytes = 16 * 1024;
constexpr int kMaxReadsPerWake = 8;  // then let the thread's other connections run
constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr std::string_view kDeflateOffer =
    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
    "server_no_context_takeover\r\n";

std::string base64(const std::uint8_t* data, std::size_t size) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    for (std::size_t i = 0; i < size; i += 3) {
        const std::uint32_t a = data[i];
        const std::uint32_t b = i + 1 < size ? data[i + 1] : 0;
        const std::uint32_t c = i + 2 < size ? data[i + 2] : 0;
        const std::uint32_t v = (a << 16) | (b << 8) | c;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < size ? kAlphabet[(v >> 6) & 63] : '=';
        out += i + 2 < size ? kAlphabet[v & 63] : '=';
    }
    return out;
}

// Sec-WebSocket-Accept for a key (RFC 6455 4.2.2): base64(SHA-1(key + GUID)).
std::string accept_for(const std::string& key) {
    const std::string input = key + std::string(kWebSocketGuid);
    std::uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha1(), nullptr) != 1) {
        return {};
    }
    return base64(digest, size);
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool icontains(std::string_view haystack, std::string_view needle) {
    if (needle.size() > haystack.size()) {
        return false;
    }
    for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
        if (iequals(haystack.substr(i, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string close_text(std::string_view payload) {
    if (payload.size() < 2) {
        return "no status code";
    }
    const unsigned code = (static_cast<unsigned>(static_cast<std::uint8_t>(payload[0])) << 8) |
                          static_cast<std::uint8_t>(payload[1]);
    std::string text = std::to_string(code);
    if (payload.size() > 2) {
        text += ' ';
        text += payload.substr(2);  // count_reason bounds and cleans it
    }
    return text;
}

}  // namespace

// ---- MessageDeflate ---------------------------------------------------------------------------

struct MessageDeflate::Streams {
    z_stream in{};
    z_stream out{};
    bool in_ready = false;
    bool out_ready = false;
    Streams() = default;
    Streams(const Streams&) = delete;
    Streams& operator=(const Streams&) = delete;
    ~Streams() {
        if (in_ready) {
            inflateEnd(&in);
        }
        if (out_ready) {
            deflateEnd(&out);
        }
    }
};

MessageDeflate::MessageDeflate() = default;
MessageDeflate::~MessageDeflate() = default;

std::optional<std::string_view> MessageDeflate::inflate(std::string_view compressed,
                                                        std::size_t max_output, std::string& out) {
    if (!z_) {
        z_ = std::make_unique<Streams>();
    }
    z_stream& zs = z_->in;
    if (!z_->in_ready) {
        if (inflateInit2(&zs, -15) != Z_OK) {
            return std::nullopt;
        }
        z_->in_ready = true;
    } else if (inflateReset(&zs) != Z_OK) {
        return std::nullopt;
    }
    // RFC 7692 7.2.2: the sender removed the empty stored block's 00 00 FF FF; put it back.
    static constexpr char kTail[4] = {'\x00', '\x00', '\xFF', '\xFF'};
    const std::string_view inputs[2] = {compressed, std::string_view(kTail, sizeof kTail)};
    std::size_t produced = 0;
    if (out.size() < 4096) {
        out.resize(4096);
    }
    for (const auto input : inputs) {
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
        zs.avail_in = static_cast<uInt>(input.size());
        for (;;) {
            if (produced == out.size()) {
                if (out.size() > max_output) {
                    return std::nullopt;
                }
                out.resize(std::min(out.size() * 2, max_output + 1));
            }
            zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
            zs.avail_out = static_cast<uInt>(out.size() - produced);
            const int rc = ::inflate(&zs, Z_SYNC_FLUSH);
            produced = out.size() - zs.avail_out;
            if (produced > max_output) {
                return std::nullopt;
            }
            if (rc == Z_STREAM_END) {
                // A final block: whatever follows is not part of the message.
                return std::string_view(out.data(), produced);
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                return std::nullopt;
            }
            if (zs.avail_in == 0 && zs.avail_out != 0) {
                break;  // this input is used up and its output written
            }
            if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
                return std::nullopt;  // no progress with input and room left
            }
        }
    }
    return std::string_view(out.data(), produced);
}

std::string_view MessageDeflate::deflate(std::initializer_list<std::string_view> parts,
                                         std::string& out) {
    if (!z_) {
        z_ = std::make_unique<Streams>();
    }
    z_stream& zs = z_->out;
    if (!z_->out_ready) {
        if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
            throw std::runtime_error("deflateInit2 failed");
        }
        z_->out_ready = true;
    } else {
        deflateReset(&zs);
    }
    std::size_t total = 0;
    for (const auto part : parts) {
        total += part.size();
    }
    // deflateBound covers the whole input; the sync flush adds at most a few bytes.
    const std::size_t bound = deflateBound(&zs, static_cast<uLong>(total)) + 16;
    if (out.size() < bound) {
        out.resize(bound);
    }
    std::size_t produced = 0;
    const auto step = [&](int flush) {
        if (produced == out.size()) {
            out.resize(out.size() * 2);
        }
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        zs.avail_out = static_cast<uInt>(out.size() - produced);
        (void)::deflate(&zs, flush);  // Z_OK, or Z_BUF_ERROR when there was nothing to do
        produced = out.size() - zs.avail_out;
    };
    for (const auto part : parts) {
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(part.data()));
        zs.avail_in = static_cast<uInt>(part.size());
        while (zs.avail_in > 0) {
            step(Z_NO_FLUSH);
        }
    }
    zs.avail_in = 0;
    do {
        step(Z_SYNC_FLUSH);
    } while (zs.avail_out == 0);
    if (produced >= 4 && std::memcmp(out.data() + produced - 4, "\x00\x00\xFF\xFF", 4) == 0) {
        produced -= 4;
    }
    return std::string_view(out.data(), produced);
}

// ---- Target -----------------------------------------------------------------------------------

Target Target::parse(const std::string& url) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        throw std::runtime_error("invalid URL \"" + url + "\": " + parsed.error().message());
    }
    Target t;
    const std::string scheme(parsed->scheme());
    if (scheme == "wss") {
        t.tls = true;
    } else if (scheme == "tcp") {
        t.raw = true;  // a raw TCP protocol (dracosoft-chat): host and port only
    } else if (scheme != "ws") {
        throw std::runtime_error("URL \"" + url + "\": the scheme must be ws, wss or tcp");
    }
    t.host = std::string(parsed->encoded_host());
    if (t.host.empty()) {
        throw std::runtime_error("URL \"" + url + "\" has no host");
    }
    if (t.raw && !parsed->has_port()) {
        throw std::runtime_error("URL \"" + url + "\": a tcp:// URL needs a port");
    }
    t.port = parsed->has_port() ? parsed->port_number() : (t.tls ? 443 : 80);
    t.path = std::string(parsed->encoded_path());
    if (t.path.empty()) {
        t.path = "/";
    }
    if (parsed->has_query()) {
        t.path += "?" + std::string(parsed->encoded_query());
    }
    std::string host = t.host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) {
        asio::io_context io;
        tcp::resolver resolver(io);
        auto results = resolver.resolve(host, std::to_string(t.port), ec);
        if (ec || results.empty()) {
            throw std::runtime_error("cannot resolve " + host + ": " +
                                     (ec ? ec.message() : std::string("no address")));
        }
        address = results.begin()->endpoint().address();
        for (const auto& r : results) {
            if (r.endpoint().address().is_v4()) {
                address = r.endpoint().address();  // v4 first: source spreading needs 127/8
                break;
            }
        }
    }
    t.endpoint = tcp::endpoint(address, t.port);
    if (t.tls) {
        t.tls_context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
        // A load generator talks to test servers with self-signed certificates.
        t.tls_context->set_verify_mode(asio::ssl::verify_none);
    }
    return t;
}

// ---- Connection -------------------------------------------------------------------------------

struct Connection::Handshake {
    const Target* target = nullptr;
    std::string request;
    std::string expected_accept;
    std::string response;
    std::array<char, 2048> buffer{};
};

Connection::Connection(Worker& worker) : worker_(worker), socket_(worker.io()) {}

Connection::~Connection() = default;

void Connection::watch(Clock::duration timeout) {
    deadline_ = Clock::now() + timeout;
    worker_.watch(this);
}

void Connection::start(const Target& target, std::optional<asio::ip::address> source,
                       const std::string& extra_headers) {
    state_ = State::kConnecting;
    started_ns_ = now_ns();
    watch(worker_.shared().handshake_timeout);
    if (target.raw) {
        asio::post(worker_.io(), [this] {
            fail_handshake("this scenario speaks WebSocket: give a ws:// or wss:// URL");
        });
        return;
    }

    handshake_ = std::make_unique<Handshake>();
    handshake_->target = &target;
    std::uint8_t key_bytes[16];
    for (std::size_t i = 0; i < sizeof key_bytes; i += 8) {
        const std::uint64_t r = worker_.random();
        std::memcpy(key_bytes + i, &r, 8);
    }
    const std::string key = base64(key_bytes, sizeof key_bytes);
    handshake_->expected_accept = accept_for(key);
    auto& req = handshake_->request;
    req.reserve(256 + target.path.size() + extra_headers.size());
    req += "GET ";
    req += target.path;
    req += " HTTP/1.1\r\nHost: ";
    req += target.host;
    req += ':';
    req += std::to_string(target.port);
    req +=
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: ";
    req += key;
    req += "\r\n";
    if (worker_.shared().compression) {
        req += kDeflateOffer;
    }
    req += extra_headers;
    req += "\r\n";

    boost::system::error_code ec;
    socket_.open(target.endpoint.protocol(), ec);
    if (!ec && source) {
        // Let connect() pick the port, unique per (source, destination) pair: bind() alone would
        // pick one unique per source address whatever the destination, exhausting the range
        // sooner when other programs use the same source address.
        const int one = 1;
        ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof one);
        socket_.bind(tcp::endpoint(*source, 0), ec);
    }
    if (ec) {
        // Posted: failing here would start the next connection from inside this call, and a
        // run of failures (out of file descriptors) would recurse once per connection.
        asio::post(worker_.io(), [this, why = "socket: " + ec.message()] { fail_handshake(why); });
        return;
    }
    if (target.tls) {
        tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *target.tls_context);
    }
    socket_.async_connect(target.endpoint,
                          [this](const boost::system::error_code& e) { connect_done(e); });
}

void Connection::connect_done(const boost::system::error_code& ec) {
    if (state_ != State::kConnecting) {
        return;
    }
    if (ec) {
        fail_handshake("connect: " + ec.message());
        return;
    }
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    if (!tls_) {
        send_upgrade();
        return;
    }
    const std::string& host = handshake_->target->host;
    boost::system::error_code not_ip;
    (void)asio::ip::make_address(host, not_ip);
    if (not_ip) {
        // SNI. SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.
        SSL_ctrl(tls_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(host.c_str()));
    }
    tls_->async_handshake(asio::ssl::stream_base::client,
                          [this](const boost::system::error_code& e) {
                              if (state_ != State::kConnecting) {
                                  return;
                              }
                              if (e) {
                                  fail_handshake("TLS handshake: " + e.message());
                                  return;
                              }
                              send_upgrade();
                          });
}

void Connection::send_upgrade() {
    auto done = [this](const boost::system::error_code& ec, std::size_t) {
        if (state_ != State::kConnecting) {
            return;
        }
        if (ec) {
            fail_handshake("upgrade request: " + ec.message());
            return;
        }
        read_upgrade_response();
    };
    if (tls_) {
        asio::async_write(*tls_, asio::buffer(handshake_->request), std::move(done));
    } else {
        asio::async_write(socket_, asio::buffer(handshake_->request), std::move(done));
    }
}

void Connection::read_upgrade_response() {
    auto done = [this](const boost::system::error_code& ec, std::size_t n) {
        if (state_ != State::kConnecting) {
            return;
        }
        if (ec) {
            fail_handshake("upgrade response: " + ec.message());
            return;
        }
        on_upgrade_bytes(n);
    };
    if (tls_) {
        tls_->async_read_some(asio::buffer(handshake_->buffer), std::move(done));
    } else {
        socket_.async_read_some(asio::buffer(handshake_->buffer), std::move(done));
    }
}

void Connection::on_upgrade_bytes(std::size_t n) {
    auto& hs = *handshake_;
    hs.response.append(hs.buffer.data(), n);
    const auto end = hs.response.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (hs.response.size() > kMaxResponseHeadBytes) {
            fail_handshake("upgrade: response head too large");
            return;
        }
        read_upgrade_response();
        return;
    }
    const std::string_view head(hs.response.data(), end + 2);
    const auto first_eol = head.find("\r\n");
    const std::string_view status_line = head.substr(0, first_eol);
    if (!status_line.starts_with("HTTP/1.1 101")) {
        // "HTTP/1.1 404 Not Found" -> "upgrade refused: HTTP 404"
        const auto sp = status_line.find(' ');
        const std::string code(sp == std::string_view::npos ? std::string_view("?")
                                                            : status_line.substr(sp + 1, 3));
        fail_handshake("upgrade refused: HTTP " + code);
        return;
    }
    bool upgrade_ok = false;
    bool accept_ok = false;
    std::string extensions_error;
    std::size_t pos = first_eol + 2;
    while (pos < head.size()) {
        const auto eol = head.find("\r\n", pos);
        const std::string_view line = head.substr(pos, eol - pos);
        pos = eol + 2;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            continue;
        }
        const auto name = trim(line.substr(0, colon));
        const auto value = trim(line.substr(colon + 1));
        if (iequals(name, "upgrade")) {
            upgrade_ok = icontains(value, "websocket");
        } else if (iequals(name, "sec-websocket-accept")) {
            accept_ok = value == hs.expected_accept;
        } else if (iequals(name, "sec-websocket-extensions") && extensions_error.empty()) {
            extensions_error = accept_extensions(value);
        }
    }
    if (!upgrade_ok || !accept_ok) {
        fail_handshake(upgrade_ok ? "upgrade: wrong Sec-WebSocket-Accept"
                                  : "upgrade: no Upgrade: websocket header");
        return;
    }
    if (!extensions_error.empty()) {
        fail_handshake("upgrade: " + extensions_error);
        return;
    }
    const std::string leftover = hs.response.substr(end + 4);
    opened(leftover);
}

std::string Connection::accept_extensions(std::string_view value) {
    if (!worker_.shared().compression) {
        return "the server chose an extension that was not offered";
    }
    if (deflate_ || value.find(',') != std::string_view::npos) {
        return "the server chose more than the one extension offered";
    }
    // permessage-deflate; server_no_context_takeover [; client_no_context_takeover]
    // [; server_max_window_bits=N]: anything else was not offered (RFC 7692 5.1, 7.1).
    bool first = true;
    bool server_no_context = false;
    while (!value.empty()) {
        const auto semi = value.find(';');
        const auto token = trim(value.substr(0, semi));
        value = semi == std::string_view::npos ? std::string_view() : value.substr(semi + 1);
        if (first) {
            if (!iequals(token, "permessage-deflate")) {
                return "the server chose an extension that was not offered";
            }
            first = false;
            continue;
        }
        const auto eq = token.find('=');
        const auto name = trim(token.substr(0, eq));
        if (iequals(name, "server_no_context_takeover") && eq == std::string_view::npos) {
            server_no_context = true;
        } else if (iequals(name, "client_no_context_takeover") && eq == std::string_view::npos) {
            // Ours is reset per message anyway.
        } else if (iequals(name, "server_max_window_bits") && eq != std::string_view::npos) {
            // A smaller window than 15: the inflater's 15-bit window covers it.
        } else {
            return "permessage-deflate parameter not offered: " + std::string(token);
        }
    }
    if (first) {
        return "empty Sec-WebSocket-Extensions";
    }
    if (!server_no_context) {
        return "permessage-deflate without server_no_context_takeover";
    }
    deflate_ = true;
    return {};
}

void Connection::opened(std::string_view leftover) {
    state_ = State::kOpen;
    deadline_ = Clock::time_point::max();
    handshake_.reset();
    if (!tls_) {
        boost::system::error_code ignored;
        socket_.non_blocking(true, ignored);  // read_some after a readiness wait must not block
    }
    worker_.counters().opened.add();
    if (deflate_) {
        worker_.counters().negotiated.add();
    }
    worker_.handshake_done();
    on_open();
    if (state_ == State::kClosed) {
        return;
    }
    if (!leftover.empty()) {
        on_bytes(reinterpret_cast<const std::uint8_t*>(leftover.data()), leftover.size());
        if (state_ == State::kClosed) {
            return;
        }
    }
    flush();
    read_next();
}

void Connection::fail_handshake(const std::string& why) {
    if (state_ != State::kConnecting) {
        return;
    }
    state_ = State::kClosed;
    worker_.counters().errors.add();
    worker_.counters().failed.add();
    worker_.count_reason(why);
    boost::system::error_code ignored;
    socket_.close(ignored);
    // handshake_ stays: an aborted operation may still refer to its buffers until its handler
    // has run. It goes with the connection.
    worker_.handshake_done();
    on_closed(false);
}

// ---- reading ----------------------------------------------------------------------------------

void Connection::read_next() {
    if (state_ == State::kClosed) {
        return;
    }
    if (tls_) {
        if (!tls_buf_) {
            tls_buf_ = std::make_unique<std::uint8_t[]>(kTlsReadBufferBytes);
        }
        tls_->async_read_some(
            asio::buffer(tls_buf_.get(), kTlsReadBufferBytes),
            [this](const boost::system::error_code& ec, std::size_t n) { on_tls_read(ec, n); });
        return;
    }
    socket_.async_wait(tcp::socket::wait_read,
                       [this](const boost::system::error_code& ec) { on_readable(ec); });
}

// Plain sockets: readable; read until the socket would block (the reactor reports an edge once).
void Connection::on_readable(const boost::system::error_code& ec) {
    if (state_ == State::kClosed) {
        return;
    }
    if (ec) {
        on_transport_error(ec);
        return;
    }
    std::uint8_t* buffer = worker_.read_buffer();
    for (int i = 0; i < kMaxReadsPerWake; ++i) {
        boost::system::error_code read_ec;
        const std::size_t n =
            socket_.read_some(asio::buffer(buffer, Worker::kReadBufferBytes), read_ec);
        if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) {
            read_next();
            return;
        }
        if (read_ec) {
            on_transport_error(read_ec);
            return;
        }
        on_bytes(buffer, n);
        if (state_ == State::kClosed) {
            return;
        }
        if (n < Worker::kReadBufferBytes) {
            read_next();
            return;
        }
    }
    asio::post(worker_.io(), [this] { on_readable({}); });
}

void Connection::on_tls_read(const boost::system::error_code& ec, std::size_t n) {
    if (state_ == State::kClosed) {
        return;
    }
    if (ec) {
        on_transport_error(ec);
        return;
    }
    on_bytes(tls_buf_.get(), n);
    read_next();
}

void Connection::on_bytes(const std::uint8_t* data, std::size_t size) {
    in_batch_ = true;
    if (partial_.empty()) {
        const std::size_t used = parse(data, size);
        if (used < size && state_ != State::kClosed) {
            partial_.assign(reinterpret_cast<const char*>(data + used), size - used);
        }
    } else {
        partial_.append(reinterpret_cast<const char*>(data), size);
        const std::size_t used =
            parse(reinterpret_cast<const std::uint8_t*>(partial_.data()), partial_.size());
        if (state_ == State::kClosed || used == partial_.size()) {
            std::string().swap(partial_);  // give a large frame's memory back
        } else {
            partial_.erase(0, used);
        }
    }
    in_batch_ = false;
    flush();
}

std::size_t Connection::parse(const std::uint8_t* data, std::size_t size) {
    std::size_t offset = 0;
    while (state_ != State::kClosed) {
        const std::size_t available = size - offset;
        if (available < 2) {
            break;
        }
        const std::uint8_t* p = data + offset;
        const bool fin = (p[0] & 0x80) != 0;
        const bool rsv1 = (p[0] & 0x40) != 0;
        const auto opcode = static_cast<Opcode>(p[0] & 0x0F);
        if ((p[0] & 0x30) != 0 || (rsv1 && !deflate_) || (p[1] & 0x80) != 0) {
            abort((p[1] & 0x80) == 0 ? "protocol error: reserved bits set"
                                     : "protocol error: masked frame from the server");
            return size;
        }
        std::uint64_t length = p[1] & 0x7F;
        std::size_t header = 2;
        if (length == 126) {
            if (available < 4) {
                break;
            }
            length = (std::uint64_t{p[2]} << 8) | p[3];
            header = 4;
        } else if (length == 127) {
            if (available < 10) {
                break;
            }
            length = 0;
            for (int i = 0; i < 8; ++i) {
                length = (length << 8) | p[2 + i];
            }
            header = 10;
        }
        if (length > kMaxMessageBytes) {
            abort("protocol error: frame larger than 16 MiB");
            return size;
        }
        if (available - header < length) {
            break;
        }
        on_frame(opcode, fin, rsv1,
                 std::string_view(reinterpret_cast<const char*>(p + header),
                                  static_cast<std::size_t>(length)));
        offset += header + static_cast<std::size_t>(length);
    }
    return offset;
}

void Connection::deliver(std::string_view payload, bool text, bool compressed) {
    if (state_ != State::kOpen) {
        return;
    }
    if (!compressed) {
        on_message(payload, text);
        return;
    }
    const auto inflated =
        worker_.deflate().inflate(payload, kMaxMessageBytes, worker_.inflate_buffer());
    if (!inflated) {
        abort("protocol error: invalid compressed message (or over 16 MiB inflated)");
        return;
    }
    worker_.counters().inflated.add();
    on_message(*inflated, text);
}

void Connection::on_frame(Opcode opcode, bool fin, bool compressed, std::string_view payload) {
    if (compressed && opcode != Opcode::kText && opcode != Opcode::kBinary) {
        abort("protocol error: RSV1 set on a control or continuation frame");
        return;
    }
    switch (opcode) {
        case Opcode::kText:
        case Opcode::kBinary:
            if (in_fragmented_) {
                abort("protocol error: new message inside a fragmented one");
                return;
            }
            if (fin) {
                deliver(payload, opcode == Opcode::kText, compressed);
                return;
            }
            in_fragmented_ = true;
            fragments_opcode_ = opcode;
            fragments_compressed_ = compressed;
            fragments_.assign(payload);
            return;
        case Opcode::kContinuation:
            if (!in_fragmented_) {
                abort("protocol error: continuation without a message");
                return;
            }
            if (fragments_.size() + payload.size() > kMaxMessageBytes) {
                abort("protocol error: message larger than 16 MiB");
                return;
            }
            fragments_.append(payload);
            if (fin) {
                in_fragmented_ = false;
                std::string message;
                message.swap(fragments_);
                deliver(message, fragments_opcode_ == Opcode::kText, fragments_compressed_);
            }
            return;
        case Opcode::kPing:
            if (state_ == State::kOpen || (state_ == State::kClosing && !close_sent_)) {
                // Control frames bypass the outbox bound: they are at most 125 bytes.
                append_frame(Opcode::kPong, {payload});
            }
            return;
        case Opcode::kPong:
            return;
        case Opcode::kClose:
            on_server_close(payload);
            return;
    }
    abort("protocol error: unknown opcode");
}

void Connection::on_server_close(std::string_view payload) {
    if (close_sent_) {
        end(true);  // the answer to our close: the closing handshake is complete
        return;
    }
    worker_.counters().errors.add();
    worker_.count_reason("closed by server: " + close_text(payload));
    // Echo the code (RFC 6455 5.5.1), then end once it is written.
    state_ = State::kClosing;
    close_sent_ = true;
    close_after_write_ = true;
    if (payload.size() >= 2) {
        append_frame(Opcode::kClose, {payload.substr(0, 2)});
    } else {
        append_frame(Opcode::kClose, {});
    }
    watch(worker_.shared().close_timeout);
    flush();
}

void Connection::on_transport_error(const boost::system::error_code& ec) {
    if (state_ == State::kClosed) {
        return;
    }
    if (state_ == State::kConnecting) {
        fail_handshake(ec.message());
        return;
    }
    if (state_ == State::kClosing && close_sent_) {
        // After our close frame (or our answer to the server's), the transport ending is the
        // end of the closing handshake.
        end(true);
        return;
    }
    worker_.counters().errors.add();
    worker_.count_reason(ec == asio::error::eof || ec == asio::error::connection_reset
                             ? std::string("connection lost: closed without a close frame")
                             : "connection lost: " + ec.message());
    end(false);
}

// ---- writing ----------------------------------------------------------------------------------

void Connection::append_frame(Opcode opcode, std::initializer_list<std::string_view> parts,
                              bool rsv1, bool fin) {
    std::size_t length = 0;
    for (auto part : parts) {
        length += part.size();
    }
    std::uint8_t header[14];
    std::size_t header_size = 0;
    header[header_size++] = static_cast<std::uint8_t>((fin ? 0x80 : 0x00) | (rsv1 ? 0x40 : 0x00) |
                                                      static_cast<std::uint8_t>(opcode));
    if (length < 126) {
        header[header_size++] = static_cast<std::uint8_t>(0x80 | length);
    } else if (length <= 0xFFFF) {
        header[header_size++] = 0x80 | 126;
        header[header_size++] = static_cast<std::uint8_t>(length >> 8);
        header[header_size++] = static_cast<std::uint8_t>(length);
    } else {
        header[header_size++] = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8) {
            header[header_size++] = static_cast<std::uint8_t>(std::uint64_t{length} >> shift);
        }
    }
    const std::uint64_t r = worker_.random();
    std::uint8_t mask[4];
    std::memcpy(mask, &r, 4);
    std::memcpy(header + header_size, mask, 4);
    header_size += 4;

    const std::size_t at = out_.size();
    out_.resize(at + header_size + length);
    char* dst = out_.data() + at;
    std::memcpy(dst, header, header_size);
    dst += header_size;
    // Mask eight bytes at a time; the 8-byte pattern depends only on the phase (offset % 4).
    std::size_t offset = 0;
    for (auto part : parts) {
        std::uint8_t pattern_bytes[8];
        for (std::size_t j = 0; j < 8; ++j) {
            pattern_bytes[j] = mask[(offset + j) % 4];
        }
        std::uint64_t pattern = 0;
        std::memcpy(&pattern, pattern_bytes, 8);
        const char* src = part.data();
        const std::size_t n = part.size();
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::uint64_t v = 0;
            std::memcpy(&v, src + i, 8);
            v ^= pattern;
            std::memcpy(dst + i, &v, 8);
        }
        for (; i < n; ++i) {
            dst[i] = static_cast<char>(static_cast<std::uint8_t>(src[i]) ^ mask[(offset + i) % 4]);
        }
        dst += n;
        offset += n;
    }
}

bool Connection::queue(Opcode opcode, std::initializer_list<std::string_view> parts) {
    if (state_ != State::kOpen) {
        return false;
    }
    std::size_t length = 14;
    for (auto part : parts) {
        length += part.size();
    }
    // An empty outbox takes any message (up to the message bound): otherwise a message larger
    // than the outbox bound could never be sent.
    if (!out_.empty() && out_.size() + length > kMaxOutboundBytes) {
        return false;
    }
    if (deflate_ && (opcode == Opcode::kText || opcode == Opcode::kBinary)) {
        // Every data message, compressed on its own (client_no_context_takeover).
        const auto compressed = worker_.deflate().deflate(parts, worker_.deflate_buffer());
        append_frame(opcode, {compressed}, true);
        worker_.counters().deflated.add();
        return true;
    }
    append_frame(opcode, parts);
    return true;
}

bool Connection::queue_fragment(Opcode opcode, bool fin, std::string_view part) {
    if (state_ != State::kOpen) {
        return false;
    }
    if (!out_.empty() && out_.size() + part.size() + 14 > kMaxOutboundBytes) {
        return false;
    }
    append_frame(opcode, {part}, false, fin);
    return true;
}

void Connection::flush() {
    if (write_in_flight_ || in_batch_ || out_.empty() ||
        (state_ != State::kOpen && state_ != State::kClosing)) {
        return;
    }
    writing_.swap(out_);
    out_.clear();  // keeps the capacity of the previous batch: no allocation per write
    write_in_flight_ = true;
    auto done = [this](const boost::system::error_code& ec, std::size_t) { on_written(ec); };
    if (tls_) {
        asio::async_write(*tls_, asio::buffer(writing_), std::move(done));
    } else {
        asio::async_write(socket_, asio::buffer(writing_), std::move(done));
    }
}

void Connection::on_written(const boost::system::error_code& ec) {
    write_in_flight_ = false;
    writing_.clear();
    if (writing_.capacity() > 1024 * 1024) {
        std::string().swap(writing_);
    }
    if (state_ == State::kClosed) {
        return;
    }
    if (ec) {
        on_transport_error(ec);
        return;
    }
    if (!out_.empty()) {
        flush();
        return;
    }
    if (close_after_write_) {
        end(false);  // our answer to the server's close is out; the server closed, not us
    }
}

// ---- closing ----------------------------------------------------------------------------------

void Connection::close() {
    if (state_ != State::kOpen) {
        return;
    }
    state_ = State::kClosing;
    close_sent_ = true;
    append_frame(Opcode::kClose, {std::string_view("\x03\xE8", 2)});  // 1000, normal closure
    watch(worker_.shared().close_timeout);
    flush();
}

void Connection::abort(std::string_view why) {
    if (state_ == State::kClosed) {
        return;
    }
    if (state_ == State::kConnecting) {
        fail_handshake(why.empty() ? std::string("not open at the end of the run")
                                   : std::string(why));
        return;
    }
    if (!why.empty()) {
        worker_.counters().errors.add();
        worker_.count_reason(why);
    }
    end(false);
}

void Connection::on_deadline() {
    if (state_ == State::kConnecting) {
        fail_handshake("handshake timed out");
    } else if (state_ == State::kClosing) {
        worker_.count_reason("closing handshake timed out");
        end(true);
    }
}

void Connection::end(bool expected) {
    if (state_ == State::kClosed) {
        return;
    }
    state_ = State::kClosed;
    deadline_ = Clock::time_point::max();
    boost::system::error_code ignored;
    socket_.close(ignored);  // pending operations complete with operation_aborted
    worker_.counters().closed.add();
    std::string().swap(out_);
    std::string().swap(partial_);
    std::string().swap(fragments_);
    on_closed(expected);
}

}  // namespace hearth::bench
