#include "support/clients.hpp"
#include <cctype>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace hearth::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// Runs `ioc` until `done` is set or the deadline passes; throws on the deadline.
void run_until(asio::io_context& ioc, const bool& done, std::chrono::milliseconds deadline,
               const char* what) {
    ioc.restart();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done) {
        if (ioc.run_one_until(until) == 0 && !done) {
            throw std::runtime_error(std::string("test deadline passed while waiting for: ") +
                                     what);
        }
    }
}

std::string lower(std::string s) {
    for (auto& c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

tcp::endpoint local(std::uint16_t port) {
    return {asio::ip::make_address("127.0.0.1"), port};
}

template <class Response>
HttpResult to_result(const Response& res) {
    HttpResult r;
    r.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
        r.headers[lower(std::string(f.name_string()))] = std::string(f.value());
    }
    r.body = res.body();
    return r;
}

asio::ssl::context& client_tls_context() {
    static asio::ssl::context ctx(asio::ssl::context::tls_client);
    ctx.set_verify_mode(asio::ssl::verify_none);  // the test certificate is self-signed
    return ctx;
}

}  // namespace

HttpResult api_request(std::uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body, const std::string& token) {
    std::map<std::string, std::string> headers{{"Content-Type", "application/json"}};
    if (!token.empty()) {
        headers["Authorization"] = "Bearer " + token;
    }
    return http_request(port, method, target, body, headers);
}

HttpResult http_request(std::uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body, const std::map<std::string, std::string>& headers,
                        bool tls) {
    asio::io_context ioc;
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) {
        req.set(k, v);
    }
    req.body() = body;
    req.prepare_payload();
    req.keep_alive(false);
    http::response<http::string_body> res;
    beast::flat_buffer buffer;
    bool done = false;
    boost::system::error_code result;

    auto exchange = [&](auto& stream) {
        http::async_write(stream, req, [&](boost::system::error_code ec, std::size_t) {
            if (ec) {
                result = ec;
                done = true;
                return;
            }
            http::async_read(stream, buffer, res, [&](boost::system::error_code ec2, std::size_t) {
                result = ec2;
                done = true;
            });
        });
    };
    if (tls) {
        beast::ssl_stream<beast::tcp_stream> stream(ioc, client_tls_context());
        beast::get_lowest_layer(stream).async_connect(
            local(port), [&](boost::system::error_code ec) {
                if (ec) {
                    result = ec;
                    done = true;
                    return;
                }
                stream.async_handshake(asio::ssl::stream_base::client,
                                       [&](boost::system::error_code ec2) {
                                           if (ec2) {
                                               result = ec2;
                                               done = true;
                                               return;
                                           }
                                           exchange(stream);
                                       });
            });
        run_until(ioc, done, kDeadline, "HTTPS response");
    } else {
        beast::tcp_stream stream(ioc);
        stream.async_connect(local(port), [&](boost::system::error_code ec) {
            if (ec) {
                result = ec;
                done = true;
                return;
            }
            exchange(stream);
        });
        run_until(ioc, done, kDeadline, "HTTP response");
    }
    if (result && result != http::error::end_of_stream) {
        throw std::runtime_error("HTTP request failed: " + result.message());
    }
    return to_result(res);
}

HttpResult http_request_from(const std::string& local_address, std::uint16_t port,
                             const std::string& method, const std::string& target,
                             const std::map<std::string, std::string>& headers) {
    asio::io_context ioc;
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (const auto& [k, v] : headers) {
        req.set(k, v);
    }
    req.prepare_payload();
    req.keep_alive(false);
    http::response<http::string_body> res;
    beast::flat_buffer buffer;
    bool done = false;
    boost::system::error_code result;
    beast::tcp_stream stream(ioc);
    stream.socket().open(tcp::v4());
    stream.socket().bind(tcp::endpoint(asio::ip::make_address(local_address), 0));
    stream.async_connect(local(port), [&](boost::system::error_code ec) {
        if (ec) {
            result = ec;
            done = true;
            return;
        }
        http::async_write(stream, req, [&](boost::system::error_code ec2, std::size_t) {
            if (ec2) {
                result = ec2;
                done = true;
                return;
            }
            http::async_read(stream, buffer, res, [&](boost::system::error_code ec3, std::size_t) {
                result = ec3;
                done = true;
            });
        });
    });
    run_until(ioc, done, kDeadline, "HTTP response");
    if (result && result != http::error::end_of_stream) {
        throw std::runtime_error("HTTP request failed: " + result.message());
    }
    return to_result(res);
}

// ---------------------------------------------------------------------------------------------

struct KeepAliveClient::Impl {
    asio::io_context ioc;
    beast::tcp_stream stream{ioc};
    beast::flat_buffer buffer;
};

KeepAliveClient::KeepAliveClient(std::uint16_t port) : impl_(std::make_unique<Impl>()) {
    bool done = false;
    boost::system::error_code result;
    impl_->stream.async_connect(local(port), [&](boost::system::error_code ec) {
        result = ec;
        done = true;
    });
    run_until(impl_->ioc, done, kDeadline, "connect");
    if (result) {
        throw std::runtime_error("connect failed: " + result.message());
    }
}

KeepAliveClient::~KeepAliveClient() = default;

HttpResult KeepAliveClient::request(const std::string& method, const std::string& target,
                                    const std::string& body) {
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = body;
    req.prepare_payload();
    req.keep_alive(true);
    http::response<http::string_body> res;
    bool done = false;
    boost::system::error_code result;
    http::async_write(impl_->stream, req, [&](boost::system::error_code ec, std::size_t) {
        if (ec) {
            result = ec;
            done = true;
            return;
        }
        http::async_read(impl_->stream, impl_->buffer, res,
                         [&](boost::system::error_code ec2, std::size_t) {
                             result = ec2;
                             done = true;
                         });
    });
    run_until(impl_->ioc, done, kDeadline, "keep-alive response");
    if (result) {
        throw std::runtime_error("keep-alive request failed: " + result.message());
    }
    return to_result(res);
}

bool KeepAliveClient::closed_by_server() {
    bool done = false;
    boost::system::error_code result;
    char byte = 0;
    impl_->stream.socket().async_read_some(asio::buffer(&byte, 1),
                                           [&](boost::system::error_code ec, std::size_t) {
                                               result = ec;
                                               done = true;
                                           });
    run_until(impl_->ioc, done, kDeadline, "server close");
    return result == asio::error::eof || result == asio::error::connection_reset;
}

// ---------------------------------------------------------------------------------------------

struct WsClient::Impl {
    using Plain = websocket::stream<beast::tcp_stream>;
    using Tls = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

    asio::io_context ioc;
    std::variant<std::unique_ptr<Plain>, std::unique_ptr<Tls>> ws;
    beast::flat_buffer buffer;
    std::optional<WsClose> closed;
    struct PendingRead {
        bool done = false;
        boost::system::error_code result;
    };
    std::shared_ptr<PendingRead> pending_read;
    std::map<std::string, std::string> upgrade_headers;
    int pings = 0;

    template <class F>
    void with(F&& f) {
        std::visit([&](auto& p) { f(*p); }, ws);
    }
};

WsClient::WsClient(std::uint16_t port, WsOptions options) : impl_(std::make_unique<Impl>()) {
    auto& ioc = impl_->ioc;
    if (options.tls) {
        impl_->ws = std::make_unique<Impl::Tls>(ioc, client_tls_context());
    } else {
        impl_->ws = std::make_unique<Impl::Plain>(ioc);
    }
    impl_->with([&](auto& ws) {
        auto& socket = beast::get_lowest_layer(ws).socket();
        if (!options.local_address.empty()) {
            socket.open(tcp::v4());
            socket.bind(tcp::endpoint(asio::ip::make_address(options.local_address), 0));
        }
        websocket::permessage_deflate pmd;
        pmd.client_enable = options.compression;
        ws.set_option(pmd);
        ws.auto_fragment(false);
        ws.read_message_max(64 * 1024 * 1024);
        ws.control_callback([impl = impl_.get()](websocket::frame_type kind, beast::string_view) {
            if (kind == websocket::frame_type::ping) {
                ++impl->pings;
            }
        });
        ws.set_option(websocket::stream_base::decorator([&options](websocket::request_type& req) {
            for (const auto& [k, v] : options.headers) {
                req.set(k, v);
            }
        }));

        bool done = false;
        boost::system::error_code result;
        websocket::response_type response;
        auto do_handshake = [&] {
            ws.async_handshake(response, "127.0.0.1", options.path,
                               [&](boost::system::error_code ec) {
                                   result = ec;
                                   done = true;
                               });
        };
        beast::get_lowest_layer(ws).async_connect(local(port), [&](boost::system::error_code ec) {
            if (ec) {
                result = ec;
                done = true;
                return;
            }
            if constexpr (std::is_same_v<std::decay_t<decltype(ws)>, Impl::Tls>) {
                ws.next_layer().async_handshake(asio::ssl::stream_base::client,
                                                [&](boost::system::error_code ec2) {
                                                    if (ec2) {
                                                        result = ec2;
                                                        done = true;
                                                        return;
                                                    }
                                                    do_handshake();
                                                });
            } else {
                do_handshake();
            }
        });
        run_until(ioc, done, kDeadline, "WebSocket handshake");
        for (const auto& f : response) {
            impl_->upgrade_headers[lower(std::string(f.name_string()))] = std::string(f.value());
        }
        if (result) {
            throw std::runtime_error("WebSocket handshake failed: " + result.message() + " (HTTP " +
                                     std::to_string(response.result_int()) + ")");
        }
    });
}

WsClient::~WsClient() {
    if (!impl_->closed) {
        try {
            close();
        } catch (...) {
            // The server may already be gone; nothing to clean up then.
        }
    }
}

void WsClient::send_text(const std::string& data) {
    impl_->with([&](auto& ws) {
        ws.text(true);
        bool done = false;
        boost::system::error_code result;
        ws.async_write(asio::buffer(data), [&](boost::system::error_code ec, std::size_t) {
            result = ec;
            done = true;
        });
        run_until(impl_->ioc, done, kDeadline, "WebSocket write");
        if (result) {
            throw std::runtime_error("WebSocket write failed: " + result.message());
        }
    });
}

void WsClient::send_binary(const std::string& data) {
    impl_->with([&](auto& ws) {
        ws.binary(true);
        bool done = false;
        boost::system::error_code result;
        ws.async_write(asio::buffer(data), [&](boost::system::error_code ec, std::size_t) {
            result = ec;
            done = true;
        });
        run_until(impl_->ioc, done, kDeadline, "WebSocket write");
        if (result) {
            throw std::runtime_error("WebSocket write failed: " + result.message());
        }
    });
}

std::optional<WsMessage> WsClient::read(std::chrono::milliseconds deadline) {
    if (impl_->closed) {
        return std::nullopt;
    }
    std::optional<WsMessage> out;
    impl_->with([&](auto& ws) {
        // A read that outlives its deadline stays pending (Beast allows one at a time); the next
        // call waits for that same read instead of starting another. Its state is shared, so the
        // completion never writes into a stack frame that is gone.
        if (!impl_->pending_read) {
            impl_->pending_read = std::make_shared<Impl::PendingRead>();
            impl_->buffer.clear();
            ws.async_read(impl_->buffer,
                          [state = impl_->pending_read](boost::system::error_code ec, std::size_t) {
                              state->result = ec;
                              state->done = true;
                          });
        }
        const auto state = impl_->pending_read;
        run_until(impl_->ioc, state->done, deadline, "WebSocket message");
        impl_->pending_read.reset();
        if (state->result) {
            WsClose c;
            if (state->result == websocket::error::closed) {
                c.code = static_cast<std::uint16_t>(ws.reason().code);
                c.reason = std::string(ws.reason().reason.data(), ws.reason().reason.size());
            }
            impl_->closed = c;
            return;
        }
        out = WsMessage{ws.got_text(), beast::buffers_to_string(impl_->buffer.data())};
    });
    return out;
}

WsClose WsClient::wait_closed(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!impl_->closed) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error(
                "test deadline passed while waiting for the connection to close");
        }
        (void)read(left);
    }
    return *impl_->closed;
}

void WsClient::close(std::uint16_t code, const std::string& reason) {
    impl_->with([&](auto& ws) {
        bool done = false;
        ws.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                       [&](boost::system::error_code) { done = true; });
        run_until(impl_->ioc, done, kDeadline, "WebSocket close");
    });
    impl_->closed = WsClose{code, reason};
}

const std::optional<WsClose>& WsClient::close_info() const {
    return impl_->closed;
}
const std::map<std::string, std::string>& WsClient::upgrade_headers() const {
    return impl_->upgrade_headers;
}
int WsClient::pings_seen() const {
    return impl_->pings;
}

// ---------------------------------------------------------------------------------------------

struct RawClient::Impl {
    asio::io_context ioc;
    tcp::socket socket{ioc};
    std::string pending;  // read but not yet returned
};

RawClient::RawClient(std::uint16_t port) : impl_(std::make_unique<Impl>()) {
    bool done = false;
    boost::system::error_code result;
    impl_->socket.async_connect(local(port), [&](boost::system::error_code ec) {
        result = ec;
        done = true;
    });
    run_until(impl_->ioc, done, kDeadline, "connect");
    if (result) {
        throw std::runtime_error("connect failed: " + result.message());
    }
}

RawClient::~RawClient() = default;

void RawClient::write(const std::string& bytes) {
    bool done = false;
    boost::system::error_code result;
    asio::async_write(impl_->socket, asio::buffer(bytes),
                      [&](boost::system::error_code ec, std::size_t) {
                          result = ec;
                          done = true;
                      });
    run_until(impl_->ioc, done, kDeadline, "raw write");
    if (result) {
        throw std::runtime_error("raw write failed: " + result.message());
    }
}

std::string RawClient::read_exactly(std::size_t n, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (impl_->pending.size() < n) {
        char buf[65536];
        bool done = false;
        boost::system::error_code result;
        std::size_t got = 0;
        impl_->socket.async_read_some(asio::buffer(buf),
                                      [&](boost::system::error_code ec, std::size_t k) {
                                          result = ec;
                                          got = k;
                                          done = true;
                                      });
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        run_until(impl_->ioc, done, std::max(left, std::chrono::milliseconds(1)), "raw read");
        impl_->pending.append(buf, got);
        if (result) {
            break;
        }
    }
    const std::size_t take = std::min(n, impl_->pending.size());
    std::string out = impl_->pending.substr(0, take);
    impl_->pending.erase(0, take);
    return out;
}

std::string RawClient::read_http_head(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
        auto end = impl_->pending.find("\r\n\r\n");
        if (end != std::string::npos) {
            std::string head = impl_->pending.substr(0, end + 4);
            impl_->pending.erase(0, end + 4);
            return head;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw std::runtime_error(
                "test deadline passed while waiting for an HTTP response head");
        }
        std::string more = read_exactly(impl_->pending.size() + 1, left);
        impl_->pending = more + impl_->pending;
        if (more.empty()) {
            throw std::runtime_error("connection closed before the HTTP response head");
        }
    }
}

std::string RawClient::read_until_eof(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    std::string out = std::move(impl_->pending);
    impl_->pending.clear();
    for (;;) {
        char buf[65536];
        bool done = false;
        boost::system::error_code result;
        std::size_t got = 0;
        impl_->socket.async_read_some(asio::buffer(buf),
                                      [&](boost::system::error_code ec, std::size_t k) {
                                          result = ec;
                                          got = k;
                                          done = true;
                                      });
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        run_until(impl_->ioc, done, std::max(left, std::chrono::milliseconds(1)), "EOF");
        out.append(buf, got);
        if (result) {
            return out;
        }
    }
}

std::string RawClient::upgrade(const std::string& path, const std::string& extra_headers) {
    write("GET " + path +
          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
          extra_headers + "\r\n");
    return read_http_head();
}

std::optional<RawFrame> parse_server_frame(const std::string& bytes, std::size_t& consumed) {
    if (bytes.size() < 2) {
        return std::nullopt;
    }
    const auto b0 = static_cast<std::uint8_t>(bytes[0]);
    const auto b1 = static_cast<std::uint8_t>(bytes[1]);
    std::size_t len = b1 & 0x7F;
    std::size_t pos = 2;
    if (len == 126) {
        if (bytes.size() < 4) {
            return std::nullopt;
        }
        len = (static_cast<std::size_t>(static_cast<std::uint8_t>(bytes[2])) << 8) |
              static_cast<std::uint8_t>(bytes[3]);
        pos = 4;
    } else if (len == 127) {
        if (bytes.size() < 10) {
            return std::nullopt;
        }
        len = 0;
        for (int i = 0; i < 8; ++i) {
            len = (len << 8) | static_cast<std::uint8_t>(bytes[2 + static_cast<std::size_t>(i)]);
        }
        pos = 10;
    }
    if (bytes.size() < pos + len) {
        return std::nullopt;
    }
    consumed = pos + len;
    RawFrame f;
    f.fin = (b0 & 0x80) != 0;
    f.rsv1 = (b0 & 0x40) != 0;
    f.opcode = b0 & 0x0F;
    f.payload = bytes.substr(pos, len);
    return f;
}

std::string client_frame(std::uint8_t opcode, const std::string& payload, bool fin) {
    static std::mt19937 rng(12345);
    std::string out;
    out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | opcode));
    if (payload.size() < 126) {
        out.push_back(static_cast<char>(0x80 | payload.size()));
    } else if (payload.size() < 65536) {
        out.push_back(static_cast<char>(0x80 | 126));
        out.push_back(static_cast<char>(payload.size() >> 8));
        out.push_back(static_cast<char>(payload.size() & 0xFF));
    } else {
        out.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) {
            out.push_back(
                static_cast<char>((static_cast<std::uint64_t>(payload.size()) >> (8 * i)) & 0xFF));
        }
    }
    std::uint8_t mask[4];
    for (auto& m : mask) {
        m = static_cast<std::uint8_t>(rng());
        out.push_back(static_cast<char>(m));
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        out.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask[i % 4]));
    }
    return out;
}

TestCertificate make_test_certificate(const std::string& dir) {
    TestCertificate c{dir + "/cert.pem", dir + "/key.pem"};
    const std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -keyout '" +
        c.key_file + "' -out '" + c.cert_file + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
        throw std::runtime_error("openssl could not make a test certificate");
    }
    return c;
}

std::string base64url(const std::string& in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int held = 0;
    for (const unsigned char c : in) {
        bits = (bits << 8) | c;
        held += 8;
        while (held >= 6) {
            held -= 6;
            out.push_back(kAlphabet[(bits >> held) & 0x3F]);
        }
    }
    if (held > 0) {
        out.push_back(kAlphabet[(bits << (6 - held)) & 0x3F]);
    }
    return out;
}

UpgradeRefusal refused_upgrade(std::uint16_t port, const std::string& path,
                               const std::map<std::string, std::string>& headers) {
    RawClient raw(port);
    std::string extra;
    for (const auto& [k, v] : headers) {
        extra += k + ": " + v + "\r\n";
    }
    const std::string head = raw.upgrade(path, extra);
    UpgradeRefusal r;
    EXPECT_EQ(head.rfind("HTTP/1.1 ", 0), 0U) << head;
    r.status = std::stoi(head.substr(9, 3));
    std::size_t pos = head.find("\r\n") + 2;
    while (pos < head.size() - 2) {
        const auto end = head.find("\r\n", pos);
        const auto line = head.substr(pos, end - pos);
        const auto colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (char& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
        pos = end + 2;
    }
    const std::string body = raw.read_until_eof();
    boost::system::error_code ec;
    r.body = boost::json::parse(body, ec);
    EXPECT_FALSE(ec) << body;
    return r;
}

}  // namespace hearth::test
