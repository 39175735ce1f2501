// dracosoft-chat: the DracoSoft protocol's clients (docs/protocol/dracosoft.md), over raw TCP
// rather than WebSocket: `--url tcp://HOST:PORT`. N clients connect, each registers its own
// account (or logs in with one made earlier, or both: register, then log in again on the same
// connection), then chats for --duration seconds: --rate messages per second each, or as fast as
// possible with at most --window of its own messages not yet relayed back to it (the server
// relays every chat to every logged-in connection, the sender included). Usernames are
// `--user-prefix` + a run id + `-` + the client's number, so reruns do not collide; the run id is
// random unless --run-id is given (needed by `--auth login`, to find the accounts of an earlier
// `--auth register` run).
//
// Reported: logins (registrations) per second and their latency (dominated by argon2id, whose
// cost the server's [auth] section sets), and per server CPU-second; chat messages sent,
// deliveries received per second and per server CPU-second, and the delivery latency: each chat
// carries its send time (`T<steady-clock ns> xx...`), which every recipient reads back from the
// relayed frame. Chats from users outside this run (another client on the same server) are
// counted apart and ignored.
//
// The client is written here, not shared with the server's codec: a 4-byte big-endian length,
// then the JSON. Each connection is driven on its worker thread; the harness's WebSocket
// connections are not used (the worker's connection list stays empty), but its workers, counters
// (opened, failed, closed, sent, delivered, errors), histogram, tickers and reports are.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <deque>
#include <mutex>
#include <random>

#include <CLI/CLI.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum DracoCounter : std::size_t {
    kAuthEnded = 0,  // clients whose auth is over: logged in, refused, or never connected
    kLoggedIn,       // clients logged in (and, with --auth both, logged in again)
    kRefused,        // auth_response with "success": false
    kForeignChats,   // chats from users outside this run (ignored)
    kSkipped,        // chats due while the outbox was full (--rate)
    kLost,           // logged-in clients whose connection ended before the end of the run
    kEnded,          // clients whose connection is closed (any reason)
};

enum class AuthMode { kRegister, kLogin, kBoth };

constexpr auto kTickInterval = std::chrono::milliseconds(2);
constexpr std::size_t kMaxBurst = 64;                 // chats per client per tick, --rate 0
constexpr std::size_t kMaxOutboxBytes = 1024 * 1024;  // then chats due are skipped
constexpr std::size_t kMaxFrameBytes = 1024 * 1024;   // the protocol's limit
constexpr std::string_view kChatPrefix = R"({"type": "chat", "from": ")";
constexpr std::string_view kMessageKey = R"(", "message": ")";

struct DracoSettings {
    std::size_t clients = 50;
    std::string auth_text = "register";
    AuthMode auth = AuthMode::kRegister;
    std::string prefix = "bench-";
    std::string run_id;
    std::string password = "bench-password";
    double rate = 1;  // chats per second per client; 0: as fast as --window allows
    std::size_t window = 4;
    std::size_t size = 64;
    std::size_t auth_concurrency = 16;
    double auth_timeout_s = 120;

    // Derived before the clients start; read-only while they run.
    std::string user_prefix;  // prefix + run id + "-"
    std::string padding;      // what follows the timestamp in a chat's text
    std::string password_json;
    std::uint64_t start_ns = 0;
};

std::string json_string(std::string_view s) {
    return boost::json::serialize(boost::json::value(s));
}

/// Appends a frame: the 4-byte big-endian length of the parts, then the parts.
void append_frame(std::string& out, std::initializer_list<std::string_view> parts) {
    std::size_t n = 0;
    for (auto p : parts) {
        n += p.size();
    }
    const char header[4] = {static_cast<char>((n >> 24) & 0xFF),
                            static_cast<char>((n >> 16) & 0xFF), static_cast<char>((n >> 8) & 0xFF),
                            static_cast<char>(n & 0xFF)};
    out.append(header, 4);
    for (auto p : parts) {
        out.append(p);
    }
}

class DracoClient;

/// One worker thread's clients and what they share: the connect and auth queues (bounded by
/// --concurrency and --auth-concurrency, split over the threads) and the auth latencies. Runs on:
/// its worker thread; the main thread reads it only through Bench::on_workers or once the workers
/// have stopped.
struct Crew {
    Worker* worker = nullptr;
    std::vector<std::unique_ptr<DracoClient>> clients;
    std::vector<std::optional<asio::ip::address>> sources;
    std::size_t next_connect = 0;
    std::size_t connecting = 0;
    std::size_t max_connecting = 1;
    std::deque<DracoClient*> auth_queue;
    std::size_t authing = 0;
    std::size_t max_authing = 1;
    LatencyHistogram register_latency;
    LatencyHistogram login_latency;
    std::uint64_t first_auth_ns = 0;  // the first register or login sent
    std::uint64_t last_auth_ns = 0;   // the last auth_response received
    std::string first_refusal;        // "register refused for NAME: TEXT"

    void connect_next();
    void connect_done() {
        --connecting;
        connect_next();
    }
    void auth_next();
    void auth_done() {
        --authing;
        auth_next();
    }
};

/// One DracoSoft client. Runs on: its worker's thread. Owned by: its Crew, which destroys it
/// only once no handler of its socket is pending (see DracoScenario::cleanup).
class DracoClient {
public:
    DracoClient(Worker& worker, Crew& crew, const DracoSettings& settings, std::size_t index)
        : worker_(worker),
          crew_(crew),
          settings_(settings),
          index_(index),
          username_(settings.user_prefix + std::to_string(index)),
          socket_(worker.io()) {}

    bool logged_in() const noexcept { return state_ == State::kLoggedIn; }
    bool closed() const noexcept { return state_ == State::kClosed; }

    void connect(const tcp::endpoint& endpoint, std::optional<asio::ip::address> source) {
        state_ = State::kConnecting;
        boost::system::error_code ec;
        socket_.open(endpoint.protocol(), ec);
        if (!ec && source) {
            const int one = 1;
            ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                         sizeof one);
            socket_.bind(tcp::endpoint(*source, 0), ec);
        }
        if (ec) {
            asio::post(worker_.io(),
                       [this, why = "socket: " + ec.message()] { connect_failed(why); });
            return;
        }
        socket_.async_connect(endpoint, [this](const boost::system::error_code& e) {
            if (state_ != State::kConnecting) {
                return;
            }
            if (e) {
                connect_failed("connect: " + e.message());
                return;
            }
            boost::system::error_code ignored;
            socket_.set_option(tcp::no_delay(true), ignored);
            socket_.non_blocking(true, ignored);  // read_some after a readiness wait
            state_ = State::kWaitingForAuth;
            worker_.counters().opened.add();
            crew_.connect_done();
            crew_.auth_queue.push_back(this);
            crew_.auth_next();
            read_next();
        });
    }

    /// Sends the register or login (its turn in the crew's auth queue).
    void begin_auth() {
        if (state_ != State::kWaitingForAuth) {
            crew_.auth_done();
            return;
        }
        state_ = State::kAuthing;
        in_auth_slot_ = true;
        if (crew_.first_auth_ns == 0) {
            crew_.first_auth_ns = now_ns();
        }
        send_auth(settings_.auth == AuthMode::kLogin ? "login" : "register");
    }

    /// The chat phase, every tick: what is due (--rate) or what the window allows (--rate 0).
    void tick(std::uint64_t now) {
        if (state_ != State::kLoggedIn) {
            return;
        }
        if (settings_.rate <= 0) {
            for (std::size_t i = 0; i < kMaxBurst && outstanding_ < settings_.window; ++i) {
                if (!send_chat(now)) {
                    break;
                }
            }
        } else {
            const double interval_ns = 1e9 / settings_.rate;
            // Clients are spread evenly over the interval rather than all sending at once.
            const double offset = interval_ns * static_cast<double>(index_) /
                                  static_cast<double>(std::max<std::size_t>(1, settings_.clients));
            const double since = static_cast<double>(now - settings_.start_ns) - offset;
            if (since >= 0) {
                const auto due = static_cast<std::uint64_t>(since / interval_ns) + 1;
                if (issued_ < due) {
                    issued_ = due;  // a late tick sends one chat, not a burst
                    if (!send_chat(now)) {
                        worker_.counters().custom[kSkipped].add();
                    }
                }
            }
        }
        flush();
    }

    /// The end of the run: shut down the sending side; the server answers what it has and
    /// closes, and the read loop sees the end.
    void shutdown() {
        if (state_ == State::kClosed || state_ == State::kClosing) {
            return;
        }
        if (state_ == State::kIdle || state_ == State::kConnecting) {
            kill();
            return;
        }
        state_ = State::kClosing;
        if (!write_in_flight_) {
            boost::system::error_code ignored;
            socket_.shutdown(tcp::socket::shutdown_send, ignored);
        }
    }

    /// Closes the socket now; its pending handlers run with operation_aborted.
    void kill() {
        if (state_ == State::kConnecting) {
            connect_failed("not connected at the end of the run");
            return;
        }
        if (state_ == State::kIdle) {
            state_ = State::kClosed;
            return;
        }
        end();
    }

private:
    enum class State : std::uint8_t {
        kIdle,
        kConnecting,
        kWaitingForAuth,  // connected, waiting for an auth slot
        kAuthing,         // register or login sent
        kLoggedIn,
        kClosing,  // our sending side is shut down
        kClosed,
    };

    void connect_failed(const std::string& why) {
        if (state_ != State::kConnecting) {
            return;
        }
        state_ = State::kClosed;
        auto& c = worker_.counters();
        c.failed.add();
        c.errors.add();
        c.custom[kAuthEnded].add();
        c.custom[kEnded].add();
        worker_.count_reason(why);
        boost::system::error_code ignored;
        socket_.close(ignored);
        crew_.connect_done();
    }

    void send_auth(std::string_view action) {
        action_ = action;
        auth_sent_ns_ = now_ns();
        append_frame(out_, {R"({"type":"auth","action":")", action, R"(","username":")", username_,
                            R"(","password":)", settings_.password_json, "}"});
        flush();
    }

    bool send_chat(std::uint64_t now) {
        if (out_.size() > kMaxOutboxBytes) {
            return false;
        }
        char digits[24];
        const auto* end = std::to_chars(digits, digits + sizeof digits, now).ptr;
        const std::string_view time(digits, static_cast<std::size_t>(end - digits));
        append_frame(out_, {R"({"type":"chat","message":"T)", time, settings_.padding, R"("})"});
        worker_.counters().sent.add();
        ++outstanding_;
        return true;
    }

    void flush() {
        if (write_in_flight_ || out_.empty() ||
            (state_ == State::kClosed || state_ == State::kClosing)) {
            return;
        }
        writing_.swap(out_);
        out_.clear();
        write_in_flight_ = true;
        asio::async_write(socket_, asio::buffer(writing_),
                          [this](const boost::system::error_code& ec, std::size_t) {
                              write_in_flight_ = false;
                              writing_.clear();
                              if (state_ == State::kClosed) {
                                  return;
                              }
                              if (ec) {
                                  lost("write: " + ec.message());
                                  return;
                              }
                              if (state_ == State::kClosing) {
                                  boost::system::error_code ignored;
                                  socket_.shutdown(tcp::socket::shutdown_send, ignored);
                                  return;
                              }
                              flush();
                          });
    }

    void read_next() {
        socket_.async_wait(tcp::socket::wait_read,
                           [this](const boost::system::error_code& ec) { on_readable(ec); });
    }

    void on_readable(const boost::system::error_code& ec) {
        if (state_ == State::kClosed) {
            return;
        }
        if (ec) {
            lost("read: " + ec.message());
            return;
        }
        std::uint8_t* buffer = worker_.read_buffer();
        bool more = false;  // the buffer filled every time: let the thread's others run first
        for (int i = 0; i < 8; ++i) {
            boost::system::error_code read_ec;
            const std::size_t n =
                socket_.read_some(asio::buffer(buffer, Worker::kReadBufferBytes), read_ec);
            if (read_ec == asio::error::would_block || read_ec == asio::error::try_again) {
                break;
            }
            if (read_ec) {
                if (read_ec == asio::error::eof && state_ == State::kClosing) {
                    end();  // the server answered everything and closed: a clean end
                } else {
                    lost(read_ec == asio::error::eof ? std::string("closed by the server")
                                                     : "read: " + read_ec.message());
                }
                return;
            }
            on_bytes(reinterpret_cast<const char*>(buffer), n);
            if (state_ == State::kClosed) {
                return;
            }
            if (n < Worker::kReadBufferBytes) {
                break;
            }
            more = i == 7;
        }
        flush();
        if (more) {
            asio::post(worker_.io(), [this] { on_readable({}); });
        } else {
            read_next();
        }
    }

    void on_bytes(const char* data, std::size_t size) {
        std::string_view input;
        if (partial_.empty()) {
            input = std::string_view(data, size);
        } else {
            partial_.append(data, size);
            input = partial_;
        }
        std::size_t used = 0;
        while (state_ != State::kClosed && input.size() - used >= 4) {
            const auto* p = reinterpret_cast<const std::uint8_t*>(input.data() + used);
            const std::size_t length = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                                       (std::size_t{p[2]} << 8) | std::size_t{p[3]};
            if (length == 0 || length > kMaxFrameBytes) {
                lost(fmt::format("protocol error: a frame length of {}", length));
                return;
            }
            if (input.size() - used - 4 < length) {
                break;
            }
            on_frame(input.substr(used + 4, length));
            used += 4 + length;
        }
        if (state_ == State::kClosed) {
            return;
        }
        if (partial_.empty()) {
            if (used < size) {
                partial_.assign(data + used, size - used);
            }
        } else if (used == partial_.size()) {
            std::string().swap(partial_);
        } else {
            partial_.erase(0, used);
        }
    }

    void on_frame(std::string_view frame) {
        if (frame.starts_with(kChatPrefix)) {
            on_chat(frame.substr(kChatPrefix.size()));
            return;
        }
        boost::system::error_code ec;
        const auto value = boost::json::parse(frame, ec);
        const auto* o = ec ? nullptr : value.if_object();
        const auto* type = o ? o->if_contains("type") : nullptr;
        const auto text = [o](std::string_view key) -> std::string {
            const auto* v = o ? o->if_contains(key) : nullptr;
            return v && v->is_string() ? std::string(v->get_string()) : std::string();
        };
        if (type == nullptr || !type->is_string()) {
            worker_.counters().errors.add();
            worker_.count_reason("dracosoft: unexpected frame: " +
                                 std::string(frame.substr(0, 60)));
            return;
        }
        const std::string_view t = type->get_string();
        if (t == "auth_response") {
            const auto* success = o->if_contains("success");
            on_auth_response(success && success->is_bool() && success->get_bool(), text("message"));
        } else if (t == "error") {
            worker_.counters().errors.add();
            worker_.count_reason("dracosoft error: " + text("message"));
        } else if (t != "pong") {
            worker_.count_reason("dracosoft: unexpected " + std::string(t));
        }
    }

    void on_auth_response(bool success, const std::string& message) {
        if (state_ != State::kAuthing) {
            worker_.counters().errors.add();
            worker_.count_reason("dracosoft: auth_response out of turn: " + message);
            return;
        }
        crew_.last_auth_ns = now_ns();
        const std::uint64_t latency = crew_.last_auth_ns - auth_sent_ns_;
        auto& c = worker_.counters();
        if (!success) {
            const std::string why = action_ + " refused: " + message;
            c.errors.add();
            c.custom[kRefused].add();
            worker_.count_reason(why);
            if (crew_.first_refusal.empty()) {
                crew_.first_refusal =
                    action_ + " refused for " + username_ + ": \"" + message + "\"";
            }
            release_auth_slot();
            shutdown();
            return;
        }
        if (action_ == "register") {
            crew_.register_latency.record(latency);
            if (settings_.auth == AuthMode::kBoth) {
                send_auth("login");  // the same slot: one client's auth at a time
                return;
            }
        } else {
            crew_.login_latency.record(latency);
        }
        state_ = State::kLoggedIn;
        c.custom[kLoggedIn].add();
        release_auth_slot();
    }

    void release_auth_slot() {
        worker_.counters().custom[kAuthEnded].add();
        if (in_auth_slot_) {
            in_auth_slot_ = false;
            crew_.auth_done();
        }
    }

    // `{"type": "chat", "from": "` is consumed: `NAME", "message": "TEXT", "timestamp": ...}`.
    void on_chat(std::string_view rest) {
        const auto quote = rest.find('"');
        if (quote == std::string_view::npos) {
            return;
        }
        const std::string_view from = rest.substr(0, quote);
        auto& c = worker_.counters();
        if (!from.starts_with(settings_.user_prefix)) {
            c.custom[kForeignChats].add();
            return;
        }
        const std::string_view after = rest.substr(quote);
        std::uint64_t sent = 0;
        if (!after.starts_with(kMessageKey) || after.size() < kMessageKey.size() + 2 ||
            after[kMessageKey.size()] != 'T') {
            c.errors.add();
            worker_.count_reason("dracosoft: a chat of this run without its timestamp");
            return;
        }
        const char* begin = after.data() + kMessageKey.size() + 1;
        const auto [end, ec] = std::from_chars(begin, after.data() + after.size(), sent);
        if (ec != std::errc{} || end == begin) {
            c.errors.add();
            worker_.count_reason("dracosoft: a chat of this run without its timestamp");
            return;
        }
        if (from == username_ && outstanding_ > 0) {
            --outstanding_;
        }
        const auto phase = worker_.phase();
        if (phase != Phase::kMeasure && phase != Phase::kDrain) {
            return;
        }
        if (const auto now = now_ns(); sent <= now) {
            worker_.histogram().record(now - sent);
        }
        c.delivered.add();
    }

    void lost(const std::string& why) {
        if (state_ == State::kClosed) {
            return;
        }
        if (state_ == State::kClosing) {
            end();  // whatever way it ends once we are closing, it is the end we asked for
            return;
        }
        auto& c = worker_.counters();
        c.errors.add();
        worker_.count_reason(why);
        if (state_ == State::kLoggedIn) {
            c.custom[kLost].add();
        } else if (state_ == State::kWaitingForAuth || state_ == State::kAuthing) {
            c.custom[kAuthEnded].add();
            if (state_ == State::kAuthing) {
                in_auth_slot_ = false;
                crew_.auth_done();
            }
        }
        end();
    }

    void end() {
        if (state_ == State::kClosed) {
            return;
        }
        const bool was_open = state_ != State::kIdle && state_ != State::kConnecting;
        state_ = State::kClosed;
        boost::system::error_code ignored;
        socket_.close(ignored);
        if (was_open) {
            worker_.counters().closed.add();
        }
        worker_.counters().custom[kEnded].add();
        std::string().swap(out_);
        std::string().swap(partial_);
    }

    Worker& worker_;
    Crew& crew_;
    const DracoSettings& settings_;
    std::size_t index_;
    std::string username_;
    tcp::socket socket_;
    State state_ = State::kIdle;
    std::string action_;  // "register" or "login": the auth in progress
    bool in_auth_slot_ = false;
    std::uint64_t auth_sent_ns_ = 0;
    std::string partial_;  // bytes of an incomplete frame
    std::string out_;
    std::string writing_;
    bool write_in_flight_ = false;
    std::uint64_t issued_ = 0;       // --rate: chats due so far
    std::uint64_t outstanding_ = 0;  // own chats not yet relayed back
};

void Crew::connect_next() {
    while (connecting < max_connecting && next_connect < clients.size()) {
        const std::size_t i = next_connect++;
        ++connecting;
        clients[i]->connect(worker->shared().target.endpoint, sources[i]);
    }
}

void Crew::auth_next() {
    while (authing < max_authing && !auth_queue.empty()) {
        DracoClient* c = auth_queue.front();
        auth_queue.pop_front();
        ++authing;
        c->begin_auth();
    }
}

std::string random_run_id() {
    std::random_device rd;
    return fmt::format("{:06x}", rd() & 0xFFFFFF);
}

/// `v` rounded to `decimals` decimal places (divided by a power of ten: no 483.40000000000003).
double rounded(double v, int decimals = 0) {
    const double scale = std::pow(10.0, decimals);
    return std::round(v * scale) / scale;
}

boost::json::object latency_ms(const LatencyHistogram& h) {
    boost::json::object o;
    o["p50"] = rounded(static_cast<double>(h.percentile(50)) / 1e6, 2);
    o["p99"] = rounded(static_cast<double>(h.percentile(99)) / 1e6, 2);
    o["max"] = rounded(static_cast<double>(h.max()) / 1e6, 2);
    o["count"] = h.count();
    return o;
}

class DracoScenario final : public Scenario {
public:
    void add_options(CLI::App& cmd) override {
        cmd.add_option("--clients", s_.clients, "Clients, each with its own account")
            ->check(CLI::Range(1, 1'000'000))
            ->capture_default_str();
        cmd.add_option("--auth", s_.auth_text,
                       "register: a new account per client; login: accounts of an earlier "
                       "register run (needs its --run-id); both: register, then log in again on "
                       "the same connection")
            ->check(CLI::IsMember({"register", "login", "both"}))
            ->capture_default_str();
        cmd.add_option("--user-prefix", s_.prefix,
                       "Usernames are this prefix, the run id, '-' and the client's number")
            ->capture_default_str();
        cmd.add_option("--run-id", s_.run_id,
                       "The run id in usernames (letters, digits, '_', '-', '.'); default: 6 "
                       "random hex digits, printed in the report");
        cmd.add_option("--password", s_.password, "Every client's password (at least 8 characters)")
            ->capture_default_str();
        cmd.add_option("--rate", s_.rate,
                       "Chat messages per second per client; 0: as fast as --window allows")
            ->check(CLI::Range(0.0, 1'000'000.0))
            ->capture_default_str();
        cmd.add_option("--window", s_.window,
                       "With --rate 0: a client's own chats not yet relayed back to it")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--size", s_.size,
                       "Characters of each chat's text (its send time, then padding)")
            ->check(CLI::Range(24, 512 * 1024))
            ->capture_default_str();
        cmd.add_option("--auth-concurrency", s_.auth_concurrency,
                       "Registers and logins in progress at once, all threads together (the "
                       "server refuses hashes past [auth] max_pending_hashes, 64 by default)")
            ->check(CLI::Range(1, 100'000))
            ->capture_default_str();
        cmd.add_option("--auth-timeout", s_.auth_timeout_s,
                       "Seconds allowed for connecting and logging in every client")
            ->check(CLI::Range(1.0, 86400.0))
            ->capture_default_str();
    }

    std::string validate(const CommonOptions& options) override {
        if (!options.url.starts_with("tcp://")) {
            return "dracosoft-chat speaks raw TCP: --url tcp://HOST:PORT (the [dracosoft] "
                   "listener, 8889 by default)";
        }
        s_.auth = s_.auth_text == "login"  ? AuthMode::kLogin
                  : s_.auth_text == "both" ? AuthMode::kBoth
                                           : AuthMode::kRegister;
        if (s_.auth == AuthMode::kLogin && s_.run_id.empty()) {
            return "--auth login needs the --run-id of the run that registered the accounts";
        }
        if (s_.password.size() < 8) {
            return "--password: Hearth's accounts need at least 8 characters";
        }
        if (s_.run_id.empty()) {
            s_.run_id = random_run_id();
        }
        s_.user_prefix = s_.prefix + s_.run_id + "-";
        const auto ok = [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
        };
        if (!std::all_of(s_.user_prefix.begin(), s_.user_prefix.end(), ok)) {
            return "--user-prefix and --run-id: only letters, digits, '_', '-' and '.' (Hearth's "
                   "usernames)";
        }
        if (s_.user_prefix.size() + std::to_string(s_.clients - 1).size() > 64) {
            return "usernames would be longer than 64 characters: shorten --user-prefix or "
                   "--run-id";
        }
        return {};
    }

    std::size_t connections() const override { return s_.clients; }

    double expected_seconds(const CommonOptions& options) const override {
        return options.duration_s + s_.auth_timeout_s + 15;
    }

    void run(Bench& bench, Report& report) override {
        try {
            run_phases(bench, report);
        } catch (...) {
            cleanup(bench);
            throw;
        }
        cleanup(bench);
        finish_report(bench, report);
    }

private:
    void run_phases(Bench& bench, Report& report) {
        // The chat text: "T<send time ns> " then 'x' up to --size characters (the steady
        // clock's nanoseconds since boot: their digits do not change during a run).
        const std::size_t digits = std::to_string(now_ns()).size();
        s_.padding = " " + std::string(s_.size > digits + 2 ? s_.size - digits - 2 : 0, 'x');
        s_.password_json = json_string(s_.password);
        report.latency_meaning = "chat relay: sent to received by each logged-in client";
        auto& f = report.figures;
        f["clients"] = s_.clients;
        f["auth"] = s_.auth_text;
        f["run_id"] = s_.run_id;
        f["usernames"] = s_.user_prefix + "0 .. " + s_.user_prefix + std::to_string(s_.clients - 1);
        f["rate_per_client"] = s_.rate;
        if (s_.rate <= 0) {
            f["window"] = s_.window;
        }
        f["chat_text_bytes"] = 1 + digits + s_.padding.size();

        const std::size_t workers = bench.worker_count();
        crews_.clear();
        for (std::size_t i = 0; i < workers; ++i) {
            crews_.push_back(std::make_unique<Crew>());
        }
        const auto address = bench.target().endpoint.address();
        unsigned sources = bench.options().source_addresses;
        if (sources == 0 && s_.clients > 500) {
            sources = static_cast<unsigned>(std::min<std::size_t>((s_.clients + 499) / 500, 254));
        }
        if (!(address.is_v4() && address.to_v4().to_bytes()[0] == 127)) {
            sources = 0;
        }

        // Connect and authenticate.
        const Snapshot auth_begin = bench.snapshot();
        bench.on_workers([&](Worker& w) {
            Crew& crew = *crews_[w.index()];
            crew.worker = &w;
            crew.max_connecting = std::max<std::size_t>(1, bench.options().concurrency / workers);
            crew.max_authing = std::max<std::size_t>(1, s_.auth_concurrency / workers);
            for (std::size_t i = w.index(); i < s_.clients; i += workers) {
                crew.clients.push_back(std::make_unique<DracoClient>(w, crew, s_, i));
                crew.sources.push_back(
                    sources > 1 ? std::optional<asio::ip::address>(asio::ip::address_v4(
                                      0x7F000001U + static_cast<std::uint32_t>(i % sources)))
                                : std::nullopt);
            }
            crew.connect_next();
        });
        const bool all = bench.wait(s_.auth_timeout_s, "auth", [&] {
            return bench.totals().custom[kAuthEnded] >= s_.clients;
        });
        const Snapshot auth_end = bench.snapshot();
        const auto logged_in = auth_end.totals.custom[kLoggedIn];
        const auto refused = auth_end.totals.custom[kRefused];
        std::string first_refusal;
        std::uint64_t first_auth = 0;
        std::uint64_t last_auth = 0;
        std::mutex mutex;
        bench.on_workers([&](Worker& w) {
            const Crew& crew = *crews_[w.index()];
            std::lock_guard lock(mutex);
            if (first_refusal.empty()) {
                first_refusal = crew.first_refusal;
            }
            if (crew.first_auth_ns != 0 && (first_auth == 0 || crew.first_auth_ns < first_auth)) {
                first_auth = crew.first_auth_ns;
            }
            last_auth = std::max(last_auth, crew.last_auth_ns);
        });
        // From the first register or login sent to the last answer received.
        const double auth_s =
            last_auth > first_auth ? static_cast<double>(last_auth - first_auth) / 1e9 : 0.0;
        f["logged_in"] = logged_in;
        f["auth_refused"] = refused;
        f["auth_s"] = rounded(auth_s, 3);
        const double auths_per_client = s_.auth == AuthMode::kBoth ? 2 : 1;
        if (auth_s > 0) {
            f["auth_per_s"] =
                rounded(static_cast<double>(logged_in) * auths_per_client / auth_s, 1);
        }
        if (auth_begin.server && auth_end.server) {
            const double cpu = auth_end.server->cpu_seconds - auth_begin.server->cpu_seconds;
            f["auth_server_cpu_s"] = rounded(cpu, 3);
            if (cpu > 0 && logged_in > 0) {
                f["auth_per_server_cpu_s"] =
                    rounded(static_cast<double>(logged_in) * auths_per_client / cpu, 1);
            }
        }
        if (!first_refusal.empty()) {
            bench.note(fmt::format("{} of {} clients refused; the first: {}", refused, s_.clients,
                                   first_refusal));
        }
        if (!all) {
            bench.note(fmt::format("{} of {} clients were not logged in after --auth-timeout {} s",
                                   s_.clients - auth_end.totals.custom[kAuthEnded], s_.clients,
                                   s_.auth_timeout_s));
        }
        if (logged_in == 0) {
            throw std::runtime_error(first_refusal.empty()
                                         ? std::string("no client logged in (see close_reasons)")
                                         : "no client logged in; the server answered: " +
                                               first_refusal);
        }
        if (Bench::interrupted()) {
            return;
        }

        // Chat.
        const Snapshot begin = bench.snapshot();
        s_.start_ns = now_ns();
        bench.set_phase(Phase::kMeasure);
        bench.on_workers([this](Worker& w) {
            Crew* crew = crews_[w.index()].get();
            w.start_ticker(kTickInterval, [&w, crew] {
                if (!w.measuring()) {
                    return false;
                }
                const std::uint64_t now = now_ns();
                for (auto& c : crew->clients) {
                    c->tick(now);
                }
                return true;
            });
        });
        bench.wait(bench.options().duration_s, "dracosoft-chat");
        bench.set_phase(Phase::kDrain);
        bench.wait(bench.options().drain_s, "drain", [&] {
            const auto t = bench.totals();
            const auto audience = logged_in - t.custom[kLost];
            return t.delivered >= (t.sent - begin.totals.sent) * audience;
        });
        const Snapshot end = bench.snapshot();
        Bench::fill_window(report, begin, end);
        const auto& t = end.totals;
        const auto sent = t.sent - begin.totals.sent;
        const auto delivered = t.delivered - begin.totals.delivered;
        const auto lost = t.custom[kLost];
        f["chats_sent"] = sent;
        f["chat_deliveries"] = delivered;
        if (lost == 0) {
            f["deliveries_expected"] = sent * logged_in;
            if (delivered < sent * logged_in) {
                bench.note(fmt::format("{} of {} deliveries missing {} s after the last chat",
                                       sent * logged_in - delivered, sent * logged_in,
                                       bench.options().drain_s));
            }
        } else {
            f["clients_lost"] = lost;
        }
        if (t.custom[kSkipped] > 0) {
            f["chats_skipped"] = t.custom[kSkipped];
        }
        if (t.custom[kForeignChats] > 0) {
            f["foreign_chats_ignored"] = t.custom[kForeignChats];
        }
        if (report.elapsed_s > 0) {
            f["chats_sent_per_s"] = rounded(static_cast<double>(sent) / report.elapsed_s);
        }
        if (report.server_cpu_s && *report.server_cpu_s > 0 && delivered > 0) {
            f["deliveries_per_server_cpu_s"] =
                rounded(static_cast<double>(delivered) / *report.server_cpu_s);
        }
        if (end.server) {
            f["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

    /// Ends every client and destroys them while the workers still run: a socket must go before
    /// its io_context, and a client only once no handler of its socket is pending.
    void cleanup(Bench& bench) {
        if (crews_.empty()) {
            return;
        }
        bench.set_phase(Phase::kDone);
        bench.on_workers([this](Worker& w) {
            w.stop_ticker();
            for (auto& c : crews_[w.index()]->clients) {
                c->shutdown();
            }
        });
        bench.wait(
            2.0, "close", [&] { return bench.totals().custom[kEnded] >= s_.clients; }, false);
        bench.on_workers([this](Worker& w) {
            for (auto& c : crews_[w.index()]->clients) {
                c->kill();  // handlers of the closed sockets are queued (operation_aborted)...
            }
        });
        bench.on_workers([this](Worker& w) {
            auto& crew = *crews_[w.index()];
            crew.auth_queue.clear();
            crew.clients.clear();  // ...and have run: this task was queued after them
        });
        for (const auto& crew : crews_) {
            register_latency_.merge(crew->register_latency);
            login_latency_.merge(crew->login_latency);
        }
        crews_.clear();
    }

    void finish_report(Bench&, Report& report) {
        if (register_latency_.count() > 0) {
            report.figures["register_latency_ms"] = latency_ms(register_latency_);
        }
        if (login_latency_.count() > 0) {
            report.figures["login_latency_ms"] = latency_ms(login_latency_);
        }
    }

    DracoSettings s_;
    std::vector<std::unique_ptr<Crew>> crews_;
    LatencyHistogram register_latency_;
    LatencyHistogram login_latency_;
};

const RegisterScenario kRegistered{
    {"dracosoft-chat",
     "DracoSoft over raw TCP (--url tcp://HOST:8889): N clients register or log in, then chat "
     "(--rate per client, or as fast as possible); logins/s and latency, chat deliveries/s, "
     "relay latency, deliveries per server CPU-second.",
     [] { return std::make_unique<DracoScenario>(); }}};

}  // namespace

}  // namespace hearth::bench
