#include "bot/provision.hpp"
#include <chrono>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

namespace hearth::bot {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

struct ApiClient::Impl {
    std::string host;
    std::string port;
    std::string token;
    asio::io_context io;
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buffer;

    void connect() {
        stream.emplace(io);
        stream->expires_after(std::chrono::seconds(30));
        asio::ip::tcp::resolver resolver(io);
        stream->connect(resolver.resolve(host, port));
    }

    Response once(http::verb verb, const std::string& target, const std::string& body) {
        if (!stream) {
            connect();
        }
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, host);
        req.set(http::field::authorization, "Bearer " + token);
        req.set(http::field::user_agent, "hearth-bot");
        req.keep_alive(true);
        if (!body.empty()) {
            req.set(http::field::content_type, "application/json");
            req.body() = body;
        }
        req.prepare_payload();
        stream->expires_after(std::chrono::seconds(30));
        http::write(*stream, req);
        http::response<http::string_body> res;
        http::read(*stream, buffer, res);
        if (!res.keep_alive()) {
            stream.reset();
        }
        return Response{static_cast<int>(res.result_int()), std::move(res.body())};
    }
};

ApiClient::ApiClient(const std::string& url, std::string token) : impl_(std::make_unique<Impl>()) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed || parsed->scheme() != "http" || parsed->host().empty()) {
        throw std::invalid_argument("not an http://HOST:PORT URL: " + url);
    }
    impl_->host = std::string(parsed->host());
    impl_->port = parsed->has_port() ? std::string(parsed->port()) : "80";
    impl_->token = std::move(token);
}

ApiClient::~ApiClient() = default;

ApiClient::Response ApiClient::request(const std::string& method, const std::string& target,
                                       const std::string& body) {
    const auto verb = http::string_to_verb(method);
    for (int attempt = 0;; ++attempt) {
        try {
            return impl_->once(verb, target, body);
        } catch (const std::exception& e) {
            // A kept connection the server closed meanwhile: once more on a new one.
            impl_->stream.reset();
            impl_->buffer.clear();
            if (attempt > 0) {
                return Response{0, e.what()};
            }
        }
    }
}

namespace {

bool busy(int status) {
    return status == 503 || status == 429 || status == 0;
}

std::string error_of(const ApiClient::Response& r) {
    return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 300);
}

std::string random_password() {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::random_device rd;
    std::string out;
    for (int i = 0; i < 24; ++i) {
        out += kAlphabet[rd() % (sizeof kAlphabet - 1)];
    }
    return out;
}

// Asks until the server is not busy, pausing longer each time, for about a minute.
ApiClient::Response patient(ApiClient& api, const std::string& method, const std::string& target,
                            const std::string& body) {
    auto pause = std::chrono::milliseconds(50);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        auto r = api.request(method, target, body);
        if (!busy(r.status) || std::chrono::steady_clock::now() + pause > until) {
            return r;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(2000));
    }
}

Identity make_identity(ApiClient& api, const std::string& username, double key_ttl_s) {
    Identity id{username, {}, {}};
    json::object account;
    account["username"] = username;
    account["password"] = random_password();
    account["roles"] = json::array{"player"};
    auto r = patient(api, "POST", "/api/v1/accounts", json::serialize(account));
    if (r.status != 201 && r.status != 409) {  // 409: made by an earlier run with this prefix
        id.error = "account " + username + ": " + error_of(r);
        return id;
    }
    json::object key;
    key["account"] = username;
    key["name"] = "hearth-bot";
    key["scopes"] = json::array{"packet"};
    key["ttl_s"] = static_cast<std::int64_t>(key_ttl_s);
    r = patient(api, "POST", "/api/v1/tokens", json::serialize(key));
    if (r.status != 201) {
        id.error = "API key for " + username + ": " + error_of(r);
        return id;
    }
    boost::system::error_code ec;
    const auto v = json::parse(r.body, ec);
    const auto* token = !ec && v.is_object() ? v.as_object().if_contains("token") : nullptr;
    if (token == nullptr || !token->is_string()) {
        id.error = "API key for " + username + ": no token in the answer";
        return id;
    }
    id.token = std::string(token->as_string());
    return id;
}

// Runs `work(i)` for i in [0, count) on `threads` threads, each with its own ApiClient; calls
// `progress(done)` on the calling thread about every 200 ms.
template <class F>
void in_parallel(const std::string& url, const std::string& admin_token, std::size_t count,
                 unsigned threads, F work, const std::function<void(std::size_t)>& progress) {
    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> pool;
    const unsigned n = std::max(1U, std::min<unsigned>(threads, static_cast<unsigned>(count)));
    for (unsigned t = 0; t < n; ++t) {
        pool.emplace_back([&] {
            ApiClient api(url, admin_token);
            for (std::size_t i = next++; i < count; i = next++) {
                work(api, i);
                ++done;
            }
        });
    }
    while (done.load() < count) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        if (progress) {
            progress(done.load());
        }
    }
    for (auto& t : pool) {
        t.join();
    }
}

}  // namespace

std::vector<Identity> provision(const std::string& url, const std::string& admin_token,
                                const std::string& prefix, std::size_t count, unsigned threads,
                                double key_ttl_s,
                                const std::function<void(std::size_t)>& progress) {
    ApiClient(url, admin_token);  // throws on a bad URL before any thread starts
    std::vector<Identity> out(count);
    in_parallel(
        url, admin_token, count, threads,
        [&](ApiClient& api, std::size_t i) {
            out[i] = make_identity(api, prefix + "-" + std::to_string(i), key_ttl_s);
        },
        progress);
    return out;
}

std::size_t remove_accounts(const std::string& url, const std::string& admin_token,
                            const std::vector<Identity>& identities, unsigned threads) {
    std::atomic<std::size_t> removed{0};
    in_parallel(url, admin_token, identities.size(), threads,
                [&](ApiClient& api, std::size_t i) {
                    const auto r =
                        patient(api, "DELETE", "/api/v1/accounts/" + identities[i].account, {});
                    if (r.status == 204) {
                        ++removed;
                    }
                },
                {});
    return removed.load();
}

std::optional<json::value> read_zones(const std::string& url, const std::string& admin_token,
                                      std::string& error) {
    ApiClient api(url, admin_token);
    const auto r = api.request("GET", "/api/v1/world/zones");
    if (r.status == 404) {
        error =
            "GET /api/v1/world/zones answered 404: this server has no world API (or the "
            "world module is disabled)";
        return std::nullopt;
    }
    if (r.status != 200) {
        error = "GET /api/v1/world/zones: " + error_of(r);
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec) {
        error = "GET /api/v1/world/zones: not JSON: " + ec.message();
        return std::nullopt;
    }
    if (v.is_object()) {
        if (auto* items = v.as_object().if_contains("items")) {
            return *items;
        }
    }
    return v;
}

}  // namespace hearth::bot
