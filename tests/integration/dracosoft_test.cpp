// The DracoSoft front-end with real TCP clients over loopback, against the network layer, the
// account service and a real SQLite store built in the test: every message and rule of
// docs/protocol/dracosoft.md, byte for byte. Also the raw TCP (stream) listener of the network
// layer itself, with an echo handler.

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <regex>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hearth/stream.hpp>

#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/post_batch.hpp"
#include "core/runtime.hpp"
#include "frontends/dracosoft/dracosoft.hpp"
#include "net/server.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "support/send_until_refused.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 10s;  // the deadline of every wait

// ---- a blocking TCP client with a deadline on every read ------------------------------------

class TcpClient {
public:
    explicit TcpClient(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) {
            throw std::runtime_error("socket failed");
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(fd_);
            throw std::runtime_error("connect failed");
        }
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~TcpClient() { ::close(fd_); }
    TcpClient(const TcpClient&) = delete;
    TcpClient& operator=(const TcpClient&) = delete;

    void write(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                throw std::runtime_error("send failed");
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    /// Shuts down the sending side (the server reads EOF); reading still works.
    void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

    /// Exactly `n` bytes; nullopt at EOF (or a reset) first; throws past the deadline.
    std::optional<std::string> read_n(std::size_t n, std::chrono::milliseconds deadline = kWait) {
        std::string out;
        const auto until = Clock::now() + deadline;
        while (out.size() < n) {
            if (!wait_readable(until)) {
                throw std::runtime_error("read timed out with " + std::to_string(out.size()) +
                                         " of " + std::to_string(n) + " bytes");
            }
            char buf[65536];
            const auto want = std::min(sizeof buf, n - out.size());
            const auto got = ::recv(fd_, buf, want, 0);
            if (got <= 0) {
                return std::nullopt;
            }
            out.append(buf, static_cast<std::size_t>(got));
        }
        return out;
    }

    /// True once the server closed the connection (EOF or reset) with nothing more to read; false
    /// when bytes arrive instead. Throws past the deadline.
    bool closed_by_server(std::chrono::milliseconds deadline = kWait) {
        if (!wait_readable(Clock::now() + deadline)) {
            throw std::runtime_error("the server did not close the connection in time");
        }
        char c = 0;
        return ::recv(fd_, &c, 1, 0) <= 0;
    }

    /// Reads until the server closes; returns the number of bytes read. Throws past the deadline.
    std::size_t bytes_until_eof(std::chrono::milliseconds deadline = kWait) {
        const auto until = Clock::now() + deadline;
        std::size_t total = 0;
        for (;;) {
            if (!wait_readable(until)) {
                throw std::runtime_error("the server did not close the connection in time");
            }
            char buf[65536];
            const auto got = ::recv(fd_, buf, sizeof buf, 0);
            if (got <= 0) {
                return total;
            }
            total += static_cast<std::size_t>(got);
        }
    }

private:
    bool wait_readable(Clock::time_point until) {
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r > 0) {
                return true;
            }
        }
    }

    int fd_ = -1;
};

std::string frame(std::string_view payload) {
    std::string out(4, '\0');
    const auto n = static_cast<std::uint32_t>(payload.size());
    out[0] = static_cast<char>(n >> 24);
    out[1] = static_cast<char>(n >> 16);
    out[2] = static_cast<char>(n >> 8);
    out[3] = static_cast<char>(n);
    return out + std::string(payload);
}

std::string header(std::uint32_t n) {
    return std::string{static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
}

/// A DracoSoft client: frames in, frames out.
class DracoClient : public TcpClient {
public:
    using TcpClient::TcpClient;

    void send(std::string_view json_text) { write(frame(json_text)); }

    /// The next server frame's JSON text; throws at EOF or past the deadline.
    std::string next(std::chrono::milliseconds deadline = kWait) {
        auto h = read_n(4, deadline);
        if (!h) {
            throw std::runtime_error("connection closed while a frame was expected");
        }
        const auto* b = reinterpret_cast<const unsigned char*>(h->data());
        const std::size_t n = (std::size_t{b[0]} << 24) | (std::size_t{b[1]} << 16) |
                              (std::size_t{b[2]} << 8) | std::size_t{b[3]};
        auto body = read_n(n, deadline);
        if (!body) {
            throw std::runtime_error("connection closed inside a frame");
        }
        return *body;
    }

    json::object next_object() { return json::parse(next()).as_object(); }
};

const std::regex kTimestamp(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?)");  // Python's isoformat()
const std::regex kToken(R"([A-Za-z0-9_-]{43})");

/// `text` with its timestamp value replaced by "TS" (checked against the format first).
std::string without_timestamp(const std::string& text) {
    static const std::regex ts(R"re("timestamp": "([^"]*)")re");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(text, m, ts)) << text;
    if (m.size() > 1) {
        EXPECT_TRUE(std::regex_match(m[1].str(), kTimestamp)) << text;
    }
    return std::regex_replace(text, ts, R"("timestamp": "TS")");
}

/// `text` with the token value replaced by "TOKEN" (checked against the format first).
std::string without_token(const std::string& text) {
    static const std::regex tok(R"re("token": "([^"]*)")re");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(text, m, tok)) << text;
    if (m.size() > 1) {
        EXPECT_TRUE(std::regex_match(m[1].str(), kToken)) << text;
    }
    return std::regex_replace(text, tok, R"("token": "TOKEN")");
}

std::string auth_failure(std::string_view message) {
    return R"({"type": "auth_response", "success": false, "message": ")" + std::string(message) +
           R"(", "timestamp": "TS"})";
}

std::string auth_success(std::string_view message) {
    return R"({"type": "auth_response", "success": true, "message": ")" + std::string(message) +
           R"(", "timestamp": "TS", "token": "TOKEN"})";
}

std::string error_reply(std::string_view message) {
    return R"({"type": "error", "message": ")" + std::string(message) + R"(", "timestamp": "TS"})";
}

constexpr std::string_view kPong = R"({"type": "pong", "timestamp": "TS"})";

std::string register_msg(const std::string& user, const std::string& password,
                         const std::string& email = "") {
    json::object o{
        {"type", "auth"}, {"action", "register"}, {"username", user}, {"password", password}};
    if (!email.empty()) {
        o["email"] = email;
    }
    return json::serialize(o);
}

std::string login_msg(const std::string& user, const std::string& password) {
    return json::serialize(json::object{
        {"type", "auth"}, {"action", "login"}, {"username", user}, {"password", password}});
}

// ---- the server, built from its parts -------------------------------------------------------

auth::AuthConfig fast_auth() {
    auth::AuthConfig c;
    c.password_ops_limit = 1;
    c.password_mem_limit_kib = 8;
    return c;
}

/// The network layer, a SQLite store, the account service and the front-end, in the app's order
/// (the server is destroyed first, the runtime last).
class Fixture {
public:
    explicit Fixture(std::int64_t client_timeout_s = 300, std::int64_t max_connections_per_ip = 256,
                     double max_messages_per_s = 1000)
        : store_(store::open_store(store::StorageConfig{}, dir_.path(), metrics_)),
          accounts_(
              store_->accounts(),
              [this](std::function<void()> work) {
                  boost::asio::post(runtime_.blocking_pool(), std::move(work));
              },
              metrics_, fast_auth()) {
        frontends::dracosoft::DracosoftConfig c;
        c.enabled = true;
        c.listen = "127.0.0.1:0";
        c.client_timeout_s = client_timeout_s;
        c.max_connections_per_ip = max_connections_per_ip;
        c.max_messages_per_s = max_messages_per_s;
        frontend_ = std::make_unique<frontends::dracosoft::DracosoftFrontend>(runtime_, accounts_,
                                                                              metrics_, c);
        server_ = std::make_unique<net::Server>(runtime_, metrics_, events_, net::HttpLimits{});
        frontend_->add_routes(*server_);
        runtime_.start();
        server_->start();
    }

    ~Fixture() {
        server_->begin_shutdown();
        EXPECT_TRUE(server_->wait_drained(Clock::now() + kWait));
        runtime_.stop();
        server_.reset();
        frontend_.reset();
    }

    std::uint16_t port() const { return server_->bound_port(frontend_->listener()); }
    auth::AccountService& accounts() { return accounts_; }
    net::Server& server() { return *server_; }
    std::size_t open_connections() const { return server_->open_connections(); }
    double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
        return metric_value(metrics_.render(), name, labels);
    }

private:
    TempDir dir_;
    core::MetricsRegistry metrics_;
    core::EventBus events_{1000};
    core::Runtime runtime_{2, 2};
    std::unique_ptr<store::Store> store_;
    auth::AccountService accounts_;
    std::unique_ptr<frontends::dracosoft::DracosoftFrontend> frontend_;
    std::unique_ptr<net::Server> server_;
};

/// Registers `user` on a new connection and returns it, logged in.
std::unique_ptr<DracoClient> logged_in(Fixture& f, const std::string& user) {
    auto c = std::make_unique<DracoClient>(f.port());
    c->send(register_msg(user, "password-" + user));
    EXPECT_EQ(without_token(without_timestamp(c->next())), auth_success("Registration successful"));
    return c;
}

// ---- messages --------------------------------------------------------------------------------

TEST(Dracosoft, PingBeforeAndAfterLogin) {
    Fixture f;
    DracoClient c(f.port());
    c.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
    c.send(register_msg("pinger", "password-1"));
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
    c.send(R"({"type":"ping","extra":1})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
}

TEST(Dracosoft, RegisterThenLoginOnAnotherConnection) {
    Fixture f;
    std::string reg_token;
    {
        DracoClient c(f.port());
        c.send(register_msg("alice", "correct horse", "alice@example.com"));
        auto reply = c.next();
        EXPECT_EQ(without_token(without_timestamp(reply)), auth_success("Registration successful"));
        reg_token = std::string(json::parse(reply).as_object().at("token").as_string());
    }
    DracoClient c(f.port());
    c.send(login_msg("alice", "correct horse"));
    auto reply = c.next();
    EXPECT_EQ(without_token(without_timestamp(reply)), auth_success("Login successful"));
    const std::string token(json::parse(reply).as_object().at("token").as_string());
    EXPECT_NE(token, reg_token);
    // The token is a Hearth session token of the account.
    std::promise<Result<auth::Principal>> p;
    f.accounts().validate(token, [&p](Result<auth::Principal> r) { p.set_value(std::move(r)); });
    auto fut = p.get_future();
    ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
    auto principal = fut.get();
    ASSERT_TRUE(principal);
    EXPECT_EQ(principal->username, "alice");
}

TEST(Dracosoft, RegisterTakenUsername) {
    Fixture f;
    auto a = logged_in(f, "bob");
    DracoClient c(f.port());
    c.send(register_msg("bob", "another password"));
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Username already exists"));
    // Still unauthenticated.
    c.send(R"({"type":"chat","message":"x"})");
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Authentication required"));
}

TEST(Dracosoft, RegisterTakenEmail) {
    Fixture f;
    DracoClient c(f.port());
    c.send(register_msg("carol", "password-c", "shared@example.com"));
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
    DracoClient d(f.port());
    d.send(register_msg("dave", "password-d", "shared@example.com"));
    EXPECT_EQ(without_timestamp(d.next()), auth_failure("Failed to create user account"));
}

TEST(Dracosoft, RegisterRefusedByAccountRules) {
    Fixture f;
    DracoClient c(f.port());
    c.send(register_msg("erin", "x"));  // too short for Hearth's password rules
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Failed to create user account"));
}

TEST(Dracosoft, AnyPasswordWhenTheMinimumIsOne) {
    // [auth] min_password_length for a community whose original took any password.
    Fixture f;
    auto c = fast_auth();
    c.min_password_length = 1;
    f.accounts().reload(c);
    DracoClient d(f.port());
    d.send(register_msg("erin", "x"));
    EXPECT_EQ(without_token(without_timestamp(d.next())), auth_success("Registration successful"));
    d.send(login_msg("erin", "x"));
    EXPECT_EQ(without_token(without_timestamp(d.next())), auth_success("Login successful"));
    d.send(register_msg("fred", ""));  // empty is still missing
    EXPECT_EQ(without_timestamp(d.next()), auth_failure("Missing required fields"));
}

TEST(Dracosoft, RegistrationsPerAddressAreThrottledWithTheOriginalsWords) {
    Fixture f;
    auto c = fast_auth();
    c.registrations_per_address_per_hour = 2;
    f.accounts().reload(c);
    DracoClient d(f.port());
    d.send(register_msg("reg-a", "password-a"));
    EXPECT_EQ(without_token(without_timestamp(d.next())), auth_success("Registration successful"));
    DracoClient e(f.port());
    e.send(register_msg("reg-b", "password-b"));
    EXPECT_EQ(without_token(without_timestamp(e.next())), auth_success("Registration successful"));
    DracoClient g(f.port());
    g.send(register_msg("reg-c", "password-c"));
    EXPECT_EQ(without_timestamp(g.next()), auth_failure("Failed to create user account"));
    // Nothing was made, and logins are not throttled by it.
    g.send(login_msg("reg-c", "password-c"));
    EXPECT_EQ(without_timestamp(g.next()), auth_failure("Invalid username or password"));
    g.send(login_msg("reg-a", "password-a"));
    EXPECT_EQ(without_token(without_timestamp(g.next())), auth_success("Login successful"));
    EXPECT_EQ(
        f.metric("hearth_dracosoft_auth_total", {{"action", "register"}, {"result", "throttled"}}),
        1.0);
    EXPECT_EQ(f.metric("hearth_auth_registrations_total",
                       {{"door", "dracosoft"}, {"result", "throttled"}}),
              1.0);
}

TEST(Dracosoft, RegistrationCanBeClosed) {
    Fixture f;
    auto c = fast_auth();
    c.registrations_per_door_per_minute = 0;
    f.accounts().reload(c);
    DracoClient d(f.port());
    d.send(register_msg("nobody", "password-n"));
    EXPECT_EQ(without_timestamp(d.next()), auth_failure("Failed to create user account"));
}

TEST(Dracosoft, LoginWrongPasswordAndUnknownUser) {
    Fixture f;
    { auto a = logged_in(f, "frank"); }
    DracoClient c(f.port());
    c.send(login_msg("frank", "wrong password"));
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Invalid username or password"));
    c.send(login_msg("nobody", "whatever1"));
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Invalid username or password"));
    c.send(R"({"type":"chat","message":"x"})");
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Authentication required"));
}

TEST(Dracosoft, LoginDisabledAccount) {
    Fixture f;
    std::uint64_t id = 0;
    {
        std::promise<Result<store::AccountRecord>> p;
        f.accounts().create_account({"grace", "password-g"}, [&p](Result<store::AccountRecord> r) {
            p.set_value(std::move(r));
        });
        auto r = p.get_future().get();
        ASSERT_TRUE(r);
        id = r->id;
    }
    {
        std::promise<Result<store::AccountRecord>> p;
        auth::AccountChange change;
        change.disabled = true;
        f.accounts().change_account(
            id, change, [&p](Result<store::AccountRecord> r) { p.set_value(std::move(r)); });
        ASSERT_TRUE(p.get_future().get());
    }
    DracoClient c(f.port());
    c.send(login_msg("grace", "password-g"));
    EXPECT_EQ(without_timestamp(c.next()), auth_failure("Account is not active"));
}

TEST(Dracosoft, MissingRequiredFields) {
    Fixture f;
    DracoClient c(f.port());
    for (const char* m : {
             R"({"type":"auth","action":"login","username":"u"})",
             R"({"type":"auth","action":"login","password":"p"})",
             R"({"type":"auth","action":"login","username":"","password":"p"})",
             R"({"type":"auth","action":"login","username":"u","password":7})",
             R"({"type":"auth","action":"register","password":"password-1"})",
             R"({"type":"auth","action":"register","username":"u"})",
         }) {
        c.send(m);
        EXPECT_EQ(without_timestamp(c.next()), auth_failure("Missing required fields")) << m;
    }
}

TEST(Dracosoft, InvalidAction) {
    Fixture f;
    DracoClient c(f.port());
    for (const char* m : {
             R"({"type":"auth","action":"logout","username":"u","password":"p"})",
             R"({"type":"auth","username":"u","password":"p"})",
             R"({"type":"auth","action":1})",
         }) {
        c.send(m);
        EXPECT_EQ(without_timestamp(c.next()), auth_failure("Invalid action")) << m;
    }
}

TEST(Dracosoft, AuthenticationRequiredBeforeLogin) {
    Fixture f;
    DracoClient c(f.port());
    for (const char* m : {R"({"type":"chat","message":"hi"})", R"({"type":"whatever"})", "{}"}) {
        c.send(m);
        EXPECT_EQ(without_timestamp(c.next()), auth_failure("Authentication required")) << m;
    }
}

TEST(Dracosoft, ChatRelayedToEveryAuthenticatedConnection) {
    Fixture f;
    auto a = logged_in(f, "anna");
    auto b = logged_in(f, "ben");
    DracoClient outsider(f.port());
    a->send(R"({"type":"chat","message":"hello \"all\" \u00e9\ud83d\ude00"})");
    const std::string expected =
        R"({"type": "chat", "from": "anna", "message": "hello \"all\" \u00e9\ud83d\ude00", )"
        R"("timestamp": "TS"})";
    EXPECT_EQ(without_timestamp(a->next()), expected);  // the sender included
    EXPECT_EQ(without_timestamp(b->next()), expected);
    // The outsider got nothing: its next frame is the answer to its ping.
    outsider.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(outsider.next()), kPong);
    // A message of another type is ignored after login; a chat without a text too.
    a->send(R"({"type":"move","x":1})");
    a->send(R"({"type":"chat"})");
    a->send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(a->next()), kPong);
    b->send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(b->next()), kPong);
}

TEST(Dracosoft, ChatTooLargeToRelayIsRefused) {
    Fixture f;
    auto a = logged_in(f, "wordy");
    auto b = logged_in(f, "reader");
    // 200,000 "é": 400 KB as sent, but 1.2 MB once escaped as \u00e9 in the relayed frame, which
    // no client could read.
    std::string text;
    for (int i = 0; i < 200'000; ++i) {
        text += "\xc3\xa9";
    }
    a->send(R"({"type":"chat","message":")" + text + R"("})");
    EXPECT_EQ(without_timestamp(a->next()), error_reply("Message too large"));
    b->send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(b->next()), kPong);  // nothing was relayed
    // The largest message that still fits is relayed.
    a->send(R"({"type":"chat","message":")" + std::string(1024 * 1024 - 200, 'w') + R"("})");
    EXPECT_EQ(json::parse(a->next()).as_object().at("type").as_string(), "chat");
    EXPECT_EQ(json::parse(b->next()).as_object().at("type").as_string(), "chat");
}

TEST(Dracosoft, ConnectionsPerAddressAreBounded) {
    Fixture f(300, 2);
    DracoClient one(f.port());
    auto two = std::make_unique<DracoClient>(f.port());
    one.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(one.next()), kPong);
    two->send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(two->next()), kPong);
    DracoClient three(f.port());  // accepted by the kernel, closed by the server at once
    EXPECT_TRUE(three.closed_by_server());
    // The others are untouched; once one leaves, its place is free again.
    one.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(one.next()), kPong);
    two.reset();
    const auto until = Clock::now() + kWait;
    while (f.open_connections() > 1 && Clock::now() < until) {
        std::this_thread::sleep_for(5ms);
    }
    DracoClient four(f.port());
    four.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(four.next()), kPong);
}

TEST(Dracosoft, ClosedConnectionLeavesTheAudience) {
    Fixture f;
    auto a = logged_in(f, "ida");
    {
        auto b = logged_in(f, "jack");
        b.reset();
    }
    a->send(R"({"type":"chat","message":"anyone?"})");
    EXPECT_EQ(without_timestamp(a->next()),
              R"({"type": "chat", "from": "ida", "message": "anyone?", "timestamp": "TS"})");
}

TEST(Dracosoft, MessagesAfterAnAuthAreAnsweredInOrder) {
    Fixture f;
    DracoClient c(f.port());
    // One write: the register, then a chat and a ping that must wait for it.
    c.write(frame(register_msg("kim", "password-k")) + frame(R"({"type":"chat","message":"m"})") +
            frame(R"({"type":"ping"})"));
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
    EXPECT_EQ(without_timestamp(c.next()),
              R"({"type": "chat", "from": "kim", "message": "m", "timestamp": "TS"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
}

TEST(Dracosoft, EndOfInputAnswersWhatWasSentThenCloses) {
    Fixture f;
    DracoClient c(f.port());
    c.write(frame(register_msg("liv", "password-l")) + frame(R"({"type":"ping"})"));
    c.shutdown_write();
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
    EXPECT_EQ(without_timestamp(c.next()), kPong);
    EXPECT_TRUE(c.closed_by_server());
}

TEST(Dracosoft, ManyFramesHeldDuringAnAuth) {
    // 20,000 messages at once, ten times the message burst: the message rate is off, so that only
    // the held-bytes bound acts (tests/abuse/net_message_rate_test.cpp covers the rate).
    Fixture f(300, 256, 0);
    DracoClient c(f.port());
    // Far more than the held-bytes bound: reading pauses, then resumes, and nothing is lost.
    std::string burst = frame(register_msg("lea", "password-l"));
    const std::string ping = frame(R"({"type":"ping"})");
    constexpr int kPings = 20'000;  // about 380 KB
    for (int i = 0; i < kPings; ++i) {
        burst += ping;
    }
    std::thread writer([&] { c.write(burst); });
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
    for (int i = 0; i < kPings; ++i) {
        ASSERT_EQ(without_timestamp(c.next()), kPong) << i;
    }
    writer.join();
}

TEST(Dracosoft, InvalidJsonKeepsTheConnection) {
    Fixture f;
    DracoClient c(f.port());
    c.send("{not json");
    EXPECT_EQ(without_timestamp(c.next()), error_reply("Invalid JSON"));
    c.send("{\"type\":\"\xFF\"}");  // not UTF-8
    EXPECT_EQ(without_timestamp(c.next()), error_reply("Invalid JSON"));
    c.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
}

TEST(Dracosoft, NonObjectKeepsTheConnection) {
    Fixture f;
    DracoClient c(f.port());
    for (const char* m : {"[1,2]", "\"ping\"", "42", "null", "true"}) {
        c.send(m);
        EXPECT_EQ(without_timestamp(c.next()), error_reply("Message must be a JSON object")) << m;
    }
    c.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
}

TEST(Dracosoft, ZeroLengthRepliesThenCloses) {
    Fixture f;
    DracoClient c(f.port());
    c.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
    c.write(header(0) + frame(R"({"type":"ping"})"));  // nothing after a bad length is read
    EXPECT_EQ(without_timestamp(c.next()), error_reply("Invalid frame length"));
    EXPECT_TRUE(c.closed_by_server());
}

TEST(Dracosoft, OverLimitLengthRepliesThenCloses) {
    Fixture f;
    DracoClient c(f.port());
    // Refused from the header alone, with payload bytes following that are never read.
    c.write(header(1024 * 1024 + 1) + std::string(64 * 1024, 'x'));
    EXPECT_EQ(without_timestamp(c.next()), error_reply("Invalid frame length"));
    EXPECT_TRUE(c.closed_by_server());
}

TEST(Dracosoft, LargestFrameIsAccepted) {
    Fixture f;
    DracoClient c(f.port());
    // Exactly 1 MiB of JSON, split across many reads.
    std::string m = R"({"type":"ping","pad":")";
    m += std::string(1024 * 1024 - m.size() - 2, 'p') + "\"}";
    ASSERT_EQ(m.size(), 1024u * 1024u);
    c.send(m);
    EXPECT_EQ(without_timestamp(c.next()), kPong);
}

TEST(Dracosoft, InactivityTimeoutCloses) {
    Fixture f(1);
    DracoClient idle(f.port());
    DracoClient partial(f.port());
    const auto start = Clock::now();
    // An incomplete frame is no message: it does not keep the connection alive.
    partial.write(frame(R"({"type":"ping"})").substr(0, 6));
    EXPECT_TRUE(idle.closed_by_server(5s));
    EXPECT_TRUE(partial.closed_by_server(5s));
    EXPECT_GE(Clock::now() - start, 900ms);
}

TEST(Dracosoft, ShutdownClosesConnections) {
    Fixture f;
    auto a = logged_in(f, "max");
    EXPECT_EQ(f.open_connections(), 1u);
    f.server().begin_shutdown();
    EXPECT_TRUE(a->closed_by_server());
    a.reset();  // the server waits (at most its linger time) for the client's side to close
    EXPECT_TRUE(f.server().wait_drained(Clock::now() + kWait));
    EXPECT_EQ(f.open_connections(), 0u);
}

// ---- the stream layer itself -------------------------------------------------------------------

/// What the stream tests share with the echo handlers, across threads.
struct EchoShared {
    std::atomic<int> closes{0};
    std::atomic<int> slow_consumers{0};  // on_slow_consumer calls
    // "share" in the input: the connection, for a test's thread to send to.
    std::promise<StreamConnectionPtr> shared;
    // "hold" in the input: the handler (so the connection's io thread) waits for this.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
};

/// Echoes every byte back; "close" in the input closes the connection after the echo.
class EchoHandler final : public StreamHandler {
public:
    explicit EchoHandler(EchoShared& shared) : shared_(shared), closes_(shared.closes) {}
    void on_open(StreamConnectionPtr c) override { c_ = std::move(c); }
    void on_data(std::string_view bytes) override {
        (void)c_->send(make_binary(std::string(bytes)));
        if (bytes.find("close") != std::string_view::npos) {
            c_->close();
        }
        if (bytes.find("share") != std::string_view::npos) {
            shared_.shared.set_value(c_);
        }
        if (bytes.find("hold") != std::string_view::npos) {
            // A deadline, so that a failing test does not hang the io thread for good.
            (void)shared_.released.wait_for(kWait);
        }
        if (bytes.find("flood") != std::string_view::npos) {
            // 64 x 64 KiB against a 256 KiB outbox and a client that does not read.
            const auto chunk = make_binary(std::string(64 * 1024, 'f'));
            for (int i = 0; i < 64; ++i) {
                if (c_->send(chunk) != SendResult::kQueued) {
                    break;
                }
            }
        }
    }
    void on_end_of_input() override { c_->close(); }
    void on_close() override {
        closes_.fetch_add(1);
        c_.reset();
    }
    void on_slow_consumer() override { shared_.slow_consumers.fetch_add(1); }

private:
    EchoShared& shared_;
    std::atomic<int>& closes_;
    StreamConnectionPtr c_;
};

class StreamFixture {
public:
    StreamFixture() {
        StreamRoute route;
        route.settings.max_outbound_bytes = 256 * 1024;
        route.settings.idle_timeout = 0ms;
        route.make_handler = [this] { return std::make_unique<EchoHandler>(echo); };
        key_ = server_->add_stream_listener({"echo", "127.0.0.1:0", "", ""}, std::move(route));
        runtime_.start();
        server_->start();
    }
    ~StreamFixture() {
        server_->begin_shutdown();
        EXPECT_TRUE(server_->wait_drained(Clock::now() + kWait));
        runtime_.stop();
        server_.reset();
    }
    std::uint16_t port() const { return server_->bound_port(key_); }
    net::Server& server() { return *server_; }
    core::MetricsRegistry& metrics() { return metrics_; }
    std::uint64_t slow_consumer_closes() {
        return metrics_
            .counter("hearth_stream_disconnects_total",
                     "Raw TCP (stream) connections closed by the server, by listener and reason.",
                     {{"listener", "echo"}, {"reason", "slow_consumer"}})
            .value();
    }
    /// The connection that sent "share" (waits at most kWait).
    StreamConnectionPtr shared_connection() {
        auto f = echo.shared.get_future();
        if (f.wait_for(kWait) != std::future_status::ready) {
            throw std::runtime_error("no connection was shared in time");
        }
        return f.get();
    }

    /// The connection of `client`, once its echo of "share" has been read back.
    StreamConnectionPtr share(TcpClient& client) {
        client.write("share");
        EXPECT_EQ(client.read_n(5), "share");
        return shared_connection();
    }

    /// Returns once every io thread has finished what it was running when called (a task
    /// posted to each has run), e.g. the rest of a write whose bytes a client has read.
    void pass_io_threads() {
        for (std::size_t i = 0; i < runtime_.io_thread_count(); ++i) {
            std::promise<void> ran;
            auto done = ran.get_future();
            boost::asio::post(runtime_.io_context(i), [&ran] { ran.set_value(); });
            if (done.wait_for(kWait) != std::future_status::ready) {
                throw std::runtime_error("an io thread did not run a task in time");
            }
        }
    }

    EchoShared echo;  // before the server: its handlers refer to it until they are closed
    std::atomic<int>& closes = echo.closes;

private:
    core::MetricsRegistry metrics_;
    core::EventBus events_{100};
    core::Runtime runtime_{2, 1};
    std::unique_ptr<net::Server> server_ =
        std::make_unique<net::Server>(runtime_, metrics_, events_, net::HttpLimits{});
    std::string key_;
};

TEST(DracosoftStreamLayer, EchoesBytesInAnySplit) {
    StreamFixture f;
    TcpClient c(f.port());
    std::string sent;
    for (int i = 0; i < 100; ++i) {
        const std::string piece = "piece-" + std::to_string(i) + ";";
        c.write(piece);
        sent += piece;
    }
    EXPECT_EQ(c.read_n(sent.size()), sent);
    // Several reads, under the outbox bound in all (the client reads only once it has written).
    const std::string big(200 * 1024, 'b');
    c.write(big);
    const auto echoed = c.read_n(big.size());
    ASSERT_TRUE(echoed);
    EXPECT_TRUE(*echoed == big);
}

TEST(DracosoftStreamLayer, CloseWritesWhatIsQueuedFirst) {
    StreamFixture f;
    TcpClient c(f.port());
    c.write("please close");
    EXPECT_EQ(c.read_n(12), "please close");
    EXPECT_TRUE(c.closed_by_server());
}

TEST(DracosoftStreamLayer, PeerCloseEndsTheConnection) {
    StreamFixture f;
    {
        TcpClient c(f.port());
        c.write("x");
        EXPECT_EQ(c.read_n(1), "x");
    }
    EXPECT_TRUE(eventually([&] { return f.closes.load() == 1; }, kWait));
}

TEST(DracosoftStreamLayer, OutboxBoundClosesASlowReader) {
    StreamFixture f;
    TcpClient c(f.port());
    c.write("flood");
    // One handler run queues past the bound: what is queued is dropped and the connection closed.
    EXPECT_LE(c.bytes_until_eof(), 256u * 1024);
    EXPECT_EQ(f.metrics()
                  .counter("hearth_stream_disconnects_total",
                           "Raw TCP (stream) connections closed by the server, by listener and "
                           "reason.",
                           {{"listener", "echo"}, {"reason", "slow_consumer"}})
                  .value(),
              1u);
}

TEST(DracosoftStreamLayer, SendsFromAnotherThreadCountAgainstTheBoundWhileItsThreadIsBusy) {
    StreamFixture f;
    TcpClient other(f.port());
    other.write("before");
    EXPECT_EQ(other.read_n(6), "before");
    TcpClient slow(f.port());
    // Its handler shares the connection, then holds its io thread: whatever another thread sends
    // now is posted to a thread that cannot queue it.
    slow.write("share hold");
    auto c = f.shared_connection();
    const auto chunk = make_binary(std::string(1024, 's'));
    const auto [r, accepted] = send_until_refused([&] { return c->send(chunk); }, chunk->size());
    // Refused on this thread at the connection's 256 KiB, posted and queued together (the echo of
    // "share hold", 10 bytes, is queued): what the server holds for it is bounded.
    EXPECT_EQ(r, SendResult::kDropped);
    EXPECT_LE(accepted + 10, 256u * 1024);
    EXPECT_GT(accepted + 10 + chunk->size(), 256u * 1024);
    EXPECT_EQ(f.slow_consumer_closes(), 1u);
    // Nothing more is posted for it.
    EXPECT_EQ(c->send(chunk), SendResult::kDropped);
    EXPECT_EQ(f.slow_consumer_closes(), 1u);
    f.echo.release.set_value();
    c.reset();
    // Closed: at most what was accepted reaches the client, and its handler is told why.
    EXPECT_LE(slow.bytes_until_eof(), accepted + 10);
    EXPECT_TRUE(eventually([&] { return f.echo.slow_consumers.load() == 1; }, kWait));
    // The other connection is served as before.
    other.write("after");
    EXPECT_EQ(other.read_n(5), "after");
    EXPECT_EQ(f.slow_consumer_closes(), 1u);
}

TEST(DracosoftStreamLayer, OwnSharedAndViewedBytesFromAnotherThreadArriveInTheOrderSent) {
    StreamFixture f;
    TcpClient client(f.port());
    auto c = f.share(client);
    std::string expected;
    for (int i = 0; i < 300; ++i) {
        // Every third round in a batch of this thread's (as a zone's tick sends), handed over
        // when the round ends.
        std::optional<core::PostBatch> batch;
        if (i % 3 == 0) {
            batch.emplace();
        }
        const std::string shared = "s" + std::to_string(i) + ";";
        const std::string own = "o" + std::to_string(i) + ";";
        // Two views of one buffer, as a zone's updates share a block: the first is kept when
        // the connection has caught up, the second waits behind other bytes and is copied.
        auto block = std::make_shared<const std::string>("v" + std::to_string(i) + ";w;");
        const std::string_view view(*block);
        ASSERT_EQ(c->send_view(block, view.substr(0, view.size() - 2)), SendResult::kQueued);
        ASSERT_EQ(c->send(make_binary(shared)), SendResult::kQueued);
        ASSERT_EQ(c->send_own(own), SendResult::kQueued);
        ASSERT_EQ(c->send_view(block, view.substr(view.size() - 2)), SendResult::kQueued);
        expected += view.substr(0, view.size() - 2);
        expected += shared;
        expected += own;
        expected += view.substr(view.size() - 2);
    }
    c.reset();
    EXPECT_EQ(client.read_n(expected.size()), expected);
}

TEST(DracosoftStreamLayer, AViewPinsItsBufferOnlyWhileNothingElseOfTheConnectionWaits) {
    StreamFixture f;
    TcpClient client(f.port());
    auto c = f.share(client);
    f.pass_io_threads();  // the echo's write has completed: nothing of the connection waits
    auto block = std::make_shared<const std::string>("v1;v2;v3;");
    const std::string_view view(*block);
    const std::weak_ptr<const std::string> weak = block;
    {
        core::PostBatch batch;  // nothing reaches the connection's thread before it closes
        ASSERT_EQ(c->send_view(block, view.substr(0, 3)), SendResult::kQueued);
        EXPECT_EQ(block.use_count(), 2) << "an idle connection keeps the view, not a copy";
        ASSERT_EQ(c->send_view(block, view.substr(3, 3)), SendResult::kQueued);
        ASSERT_EQ(c->send_own("o;"), SendResult::kQueued);
        ASSERT_EQ(c->send_view(block, view.substr(6, 3)), SendResult::kQueued);
        EXPECT_EQ(block.use_count(), 2) << "a view behind other bytes is copied";
    }
    block.reset();
    EXPECT_EQ(client.read_n(11), "v1;v2;o;v3;");
    EXPECT_TRUE(eventually([&] { return weak.expired(); }, kWait))
        << "the buffer is let go once its view is written";
}

TEST(DracosoftStreamLayer, OwnBytesFromAnotherThreadCountAgainstTheBoundWhileItsThreadIsBusy) {
    StreamFixture f;
    TcpClient slow(f.port());
    slow.write("share hold");
    auto c = f.shared_connection();
    const std::string chunk(1024, 'o');
    SendRun run;
    {
        core::PostBatch batch;  // gathered or not, a send is counted when it is made
        run = send_until_refused([&] { return c->send_own(chunk); }, chunk.size());
    }
    const auto [r, accepted] = run;
    EXPECT_EQ(r, SendResult::kDropped);
    EXPECT_LE(accepted + 10, 256u * 1024);
    EXPECT_GT(accepted + 10 + chunk.size(), 256u * 1024);
    EXPECT_EQ(f.slow_consumer_closes(), 1u);
    f.echo.release.set_value();
    c.reset();
    EXPECT_LE(slow.bytes_until_eof(), accepted + 10);
    EXPECT_TRUE(eventually([&] { return f.echo.slow_consumers.load() == 1; }, kWait));
}

TEST(DracosoftStreamLayer, AClientThatDoesNotReadIsClosedWhenAnotherThreadSends) {
    StreamFixture f;
    TcpClient other(f.port());
    TcpClient slow(f.port());
    auto c = f.share(slow);
    // The client reads nothing more while this thread sends: the kernel's buffers fill, then the
    // connection's 256 KiB, and a send is refused at the bound, however fast its thread queues.
    const auto chunk = make_binary(std::string(16 * 1024, 'n'));
    SendResult r = SendResult::kQueued;
    int sends = 0;
    while (r == SendResult::kQueued && sends < 100'000) {  // 1.6 GB: far past any buffer
        r = c->send(chunk);
        ++sends;
    }
    EXPECT_EQ(r, SendResult::kDropped);
    EXPECT_EQ(f.slow_consumer_closes(), 1u);
    c.reset();
    EXPECT_LE(slow.bytes_until_eof(), static_cast<std::size_t>(sends) * chunk->size());
    EXPECT_TRUE(eventually([&] { return f.echo.slow_consumers.load() == 1; }, kWait));
    other.write("still here");
    EXPECT_EQ(other.read_n(10), "still here");
}

TEST(DracosoftStreamLayer, RefusesHttpRoutesAndSharedPorts) {
    core::MetricsRegistry metrics;
    core::EventBus events{10};
    core::Runtime runtime{1, 1};
    net::Server server(runtime, metrics, events, net::HttpLimits{});
    StreamRoute route;
    route.make_handler = [] { return std::unique_ptr<StreamHandler>(); };
    const auto key = server.add_stream_listener({"s", "127.0.0.1:18889", "", ""}, route);
    EXPECT_THROW(server.add_http_route(key, "GET", "/x", sync_handler([](const HttpRequest&) {
                                           return HttpResponse::text(200, "x");
                                       }),
                                       PathMatch::kExact),
                 std::runtime_error);
    EXPECT_THROW(server.add_stream_listener({"t", "127.0.0.1:18889", "", ""}, route),
                 std::runtime_error);
    const auto http = server.listener({"h", "127.0.0.1:18890", "", ""});
    EXPECT_THROW(server.add_stream_listener({"u", "127.0.0.1:18890", "", ""}, route),
                 std::runtime_error);
    EXPECT_THROW(server.add_stream_listener({"v", "127.0.0.1:0", "cert.pem", "key.pem"}, route),
                 std::runtime_error);
    (void)http;
}

// ---- the server program ----------------------------------------------------------------------

TEST(Dracosoft, ServedByTheServerWhenEnabled) {
    TestServer s{{"dracosoft.enabled", "true"}, {"dracosoft.listen", "\"127.0.0.1:0\""}};
    DracoClient c(s.app().server().bound_port("dracosoft"));
    c.send(R"({"type":"ping"})");
    EXPECT_EQ(without_timestamp(c.next()), kPong);
    c.send(register_msg("served", "password-s"));
    EXPECT_EQ(without_token(without_timestamp(c.next())), auth_success("Registration successful"));
}

}  // namespace
}  // namespace hearth::test
