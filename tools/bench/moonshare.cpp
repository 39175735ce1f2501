// moonshare-player: Moonshare players exchanging files through the server
// (/work/shared/design/protocols/moonshare.md, docs/protocol/moonshare.md once written). Each of
// --players players gets a token from the token endpoint (`GET /sessions?userId=GUID` on
// --token-url, the front-end's token_listen), connects to the player instance at --url
// (`ws://HOST:5000/player`) and authenticates (`session_auth`); then players 2k and 2k+1 send
// files of --file-size bytes to each other for --duration seconds: `file_send_begin`, wait for
// the text `file_receive_ready`, the file as one binary message in 32 KiB frames (the plugin's
// fragmentation), `file_send_complete`, wait for `FILE_SENT`; then the next file (at once, or
// --interval-ms after the previous one began). The recipient gets `file_send_begin`, one binary
// message and `file_send_complete`: a file received whole is a delivery, checked byte for byte
// against what its sender sent.
//
// Instances: the plugin picks port 5000 + StableHash(userId) % 3. The harness connects every
// player to --url, so the players' GUIDs are drawn until StableHash picks the instance whose port
// --url names among --instance-ports (5000,5001,5002 by default), as the plugin would have. A
// user on any instance reaches a user on any other through the one hub, so one instance measures
// the relay; run the tool once per instance port to load all three.
//
// Reported: files sent (acknowledged FILE_SENT) and received per second, MB/s relayed (bytes of
// whole files received by recipients), the transfer latency (the send time of file_send_begin,
// carried in the file's first 8 bytes, to the recipient's file_send_complete) and the sender's
// (file_send_begin to FILE_SENT), and, with --server-pid, files and MB per server CPU-second.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>

#include <CLI/CLI.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "bench/bench.hpp"

namespace hearth::bench {

namespace {

enum MoonshareCounter : std::size_t {
    kJoined = 0,     // players whose session_auth was answered (or whose connection ended)
    kAuthed,         // players authenticated
    kBegun,          // transfers begun (file_send_begin sent)
    kAcknowledged,   // FILE_SENT received
    kFailed,         // transfers that ended otherwise (FILE_FAILED, FILE_SENT_SERVER_ONLY, ...)
    kBytesReceived,  // bytes of whole files received and verified
    kBytesSent,      // bytes of files sent (acknowledged)
};

constexpr auto kTickInterval = std::chrono::milliseconds(2);
constexpr double kJoinTimeoutS = 15;
constexpr std::size_t kFragmentBytes = 32 * 1024;   // the plugin's frames
constexpr std::size_t kOutboxTarget = 1024 * 1024;  // refill the outbox up to this much
constexpr std::size_t kStampBytes = 8;              // a file starts with its send time

struct MoonshareSettings {
    std::size_t players = 20;
    std::size_t file_size = 1024 * 1024;
    double interval_ms = 0;
    std::string token_url;
    std::string instance_ports = "5000,5001,5002";

    // Derived before the connections open; read-only while they run.
    std::vector<std::string> user_ids;
    std::vector<std::string> tokens;
    std::string pattern;  // the bytes of every file after its send time
    std::uint64_t start_ns = 0;
    std::vector<std::unique_ptr<LatencyHistogram>> send_latency;  // per worker
};

/// The plugin's StableHash: h = 23; h = h * 31 + c for each UTF-16 code unit (32-bit wrap);
/// abs(h). nullopt for int.MinValue, whose Math.Abs throws in .NET.
std::optional<std::uint32_t> stable_hash(std::string_view s) {
    std::uint32_t h = 23;
    for (unsigned char c : s) {  // GUIDs are ASCII: one code unit per byte
        h = h * 31U + c;
    }
    const auto v = static_cast<std::int32_t>(h);
    if (v == INT32_MIN) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(v < 0 ? -v : v);
}

std::string guid(std::mt19937_64& rng) {
    const std::uint64_t a = rng();
    const std::uint64_t b = rng();
    return fmt::format("{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}", a >> 32, (a >> 16) & 0xFFFF,
                       a & 0xFFF, 8 + ((b >> 62) & 3), (b >> 48) & 0xFFF, b & 0xFFFFFFFFFFFFULL);
}

std::string json_string(std::string_view s) {
    return boost::json::serialize(boost::json::value(s));
}

/// GET /sessions?userId=ID on the token endpoint: the token, or an exception saying what the
/// endpoint answered. Blocking, with 10 s socket timeouts.
std::string fetch_token(asio::io_context& io, const tcp::endpoint& endpoint,
                        const std::string& host_header, const std::string& user_id) {
    tcp::socket socket(io);
    boost::system::error_code ec;
    socket.open(endpoint.protocol(), ec);
    if (!ec) {
        timeval tv{10, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        socket.connect(endpoint, ec);
    }
    if (ec) {
        throw std::runtime_error("token endpoint " + host_header + ": " + ec.message());
    }
    const std::string request = "GET /sessions?userId=" + user_id +
                                " HTTP/1.1\r\nHost: " + host_header +
                                "\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request), ec);
    std::string response;
    if (!ec) {
        asio::read(socket, asio::dynamic_buffer(response), ec);
    }
    if (ec && ec != asio::error::eof) {
        throw std::runtime_error("token endpoint " + host_header + ": " + ec.message());
    }
    const auto head_end = response.find("\r\n\r\n");
    const std::string status = response.substr(0, response.find("\r\n"));
    const std::string body = head_end == std::string::npos ? "" : response.substr(head_end + 4);
    if (!status.starts_with("HTTP/1.1 200")) {
        throw std::runtime_error("token endpoint " + host_header + " answered \"" + status +
                                 "\": " + body.substr(0, 200));
    }
    // The body: {"token":"<32 hex>"} (Content-Length; a chunked body has the object inside).
    const auto open = body.find('{');
    const auto close = body.rfind('}');
    boost::system::error_code parse_ec;
    const auto value = open == std::string::npos || close == std::string::npos
                           ? boost::json::value()
                           : boost::json::parse(body.substr(open, close - open + 1), parse_ec);
    const auto* o = parse_ec ? nullptr : value.if_object();
    const auto* token = o ? o->if_contains("token") : nullptr;
    if (token == nullptr || !token->is_string() || token->get_string().empty()) {
        throw std::runtime_error("token endpoint " + host_header + ": no token in \"" +
                                 body.substr(0, 200) + "\"");
    }
    return std::string(token->get_string());
}

/// One player. Runs on: its worker thread.
class Player final : public Connection {
public:
    Player(Worker& worker, const MoonshareSettings& settings, std::size_t index)
        : Connection(worker),
          settings_(settings),
          index_(index),
          partner_(index ^ 1U),
          user_(settings.user_ids[index]) {}

    /// Every tick of the measured phase: begin a transfer when due, keep the outbox filled.
    void tick(std::uint64_t now) {
        if (!is_open() || !authed_ || partner_ >= settings_.players) {
            return;
        }
        if (state_ == Send::kStreaming) {
            pump();
        } else if (state_ == Send::kIdle && worker_.measuring()) {
            const bool due =
                settings_.interval_ms <= 0 ||
                now >= last_begin_ns_ + static_cast<std::uint64_t>(settings_.interval_ms * 1e6);
            if (due) {
                begin(now);
            }
        }
        flush();
    }

    bool busy() const noexcept { return state_ != Send::kIdle; }

protected:
    void on_open() override {
        (void)queue(Opcode::kText, {R"({"type":"session_auth","userId":)", json_string(user_),
                                    R"(,"token":)", json_string(settings_.tokens[index_]), "}"});
    }

    void on_message(std::string_view payload, bool text) override {
        auto& c = worker_.counters();
        if (!text) {
            on_file_bytes(payload);
            return;
        }
        if (payload == "file_receive_ready") {
            if (state_ != Send::kAwaitingReady) {
                c.errors.add();
                worker_.count_reason("moonshare: file_receive_ready out of turn");
                return;
            }
            state_ = Send::kStreaming;
            offset_ = 0;
            pump();
            return;
        }
        if (payload == "FILE_SENT") {
            if (state_ != Send::kAwaitingSent) {
                c.errors.add();
                worker_.count_reason("moonshare: FILE_SENT out of turn");
                return;
            }
            settings_.send_latency[worker_.index()]->record(now_ns() - last_begin_ns_);
            c.custom[kAcknowledged].add();
            c.custom[kBytesSent].add(settings_.file_size);
            state_ = Send::kIdle;
            tick(now_ns());  // the next file at once when due
            return;
        }
        if (payload.starts_with("FILE_FAILED") || payload == "FILE_SENT_SERVER_ONLY") {
            c.errors.add();
            c.custom[kFailed].add();
            worker_.count_reason(payload == "FILE_SENT_SERVER_ONLY"
                                     ? std::string("moonshare: FILE_SENT_SERVER_ONLY (the "
                                                   "partner was not online)")
                                     : "moonshare: " + std::string(payload));
            state_ = Send::kIdle;
            return;
        }
        if (!payload.starts_with("{")) {
            return;  // ONLINE:[...] and other plain texts
        }
        boost::system::error_code ec;
        const auto value = boost::json::parse(payload, ec);
        const auto* o = ec ? nullptr : value.if_object();
        const auto* type = o ? o->if_contains("type") : nullptr;
        if (type == nullptr || !type->is_string()) {
            return;
        }
        const std::string_view t = type->get_string();
        if (t == "session_auth_result") {
            on_auth_result(*o);
        } else if (t == "file_send_begin") {
            const auto* size = o->if_contains("fileSize");
            receiving_ = true;
            received_ = false;
            receive_size_ = size && size->is_number() ? size->to_number<std::uint64_t>() : 0;
        } else if (t == "file_send_complete") {
            on_receive_complete();
        }
    }

    void on_closed(bool expected) override {
        if (!joined_) {
            joined_ = true;
            worker_.counters().custom[kJoined].add();
        }
        if (state_ != Send::kIdle && !expected) {
            worker_.counters().custom[kFailed].add();
        }
        state_ = Send::kIdle;
    }

private:
    enum class Send : std::uint8_t { kIdle, kAwaitingReady, kStreaming, kAwaitingSent };

    void on_auth_result(const boost::json::object& o) {
        const auto* success = o.if_contains("success");
        const auto* message = o.if_contains("message");
        auto& c = worker_.counters();
        if (success && success->is_bool() && success->get_bool()) {
            authed_ = true;
            c.custom[kAuthed].add();
        } else {
            c.errors.add();
            worker_.count_reason("session_auth refused: " +
                                 (message && message->is_string()
                                      ? std::string(message->get_string())
                                      : std::string("(no message)")));
        }
        if (!joined_) {
            joined_ = true;
            c.custom[kJoined].add();
        }
    }

    void begin(std::uint64_t now) {
        ++files_;
        last_begin_ns_ = now;
        const std::string name = fmt::format("bench-{}-{}.bin", index_, files_);
        if (!queue(Opcode::kText,
                   {R"({"type":"file_send_begin","targetUserId":)",
                    json_string(settings_.user_ids[partner_]), R"(,"fileName":")", name,
                    R"(","fileSize":)", std::to_string(settings_.file_size), "}"})) {
            return;
        }
        file_name_ = name;
        state_ = Send::kAwaitingReady;
        worker_.counters().custom[kBegun].add();
    }

    /// Queues the file's next fragments while the outbox holds less than kOutboxTarget; then
    /// file_send_complete once the last one is queued.
    void pump() {
        const std::size_t size = settings_.file_size;
        while (state_ == Send::kStreaming && queued_bytes() < kOutboxTarget) {
            if (offset_ >= size && size > 0) {
                break;
            }
            const std::size_t n = std::min(kFragmentBytes, size - offset_);
            const bool first = offset_ == 0;
            const bool last = offset_ + n == size;
            bool ok = false;
            if (first) {
                // The send time of file_send_begin, then the pattern.
                std::string head = settings_.pattern.substr(0, n);
                std::uint64_t stamp = last_begin_ns_;
                std::memcpy(head.data(), &stamp, std::min(n, kStampBytes));
                ok = queue_fragment(Opcode::kBinary, last, head);
            } else {
                ok = queue_fragment(Opcode::kContinuation, last,
                                    std::string_view(settings_.pattern).substr(offset_, n));
            }
            if (!ok) {
                break;
            }
            offset_ += n;
            if (last) {
                (void)queue(Opcode::kText, {R"({"type":"file_send_complete","fileName":")",
                                            file_name_, R"(","targetUserId":)",
                                            json_string(settings_.user_ids[partner_]), "}"});
                worker_.counters().sent.add();
                state_ = Send::kAwaitingSent;
                break;
            }
        }
        flush();
    }

    void on_file_bytes(std::string_view bytes) {
        auto& c = worker_.counters();
        if (!receiving_ || received_) {
            c.errors.add();
            worker_.count_reason("moonshare: binary data outside a transfer");
            return;
        }
        received_ = true;
        const std::size_t size = settings_.file_size;
        if (bytes.size() != receive_size_ || bytes.size() != size ||
            (size > kStampBytes && bytes.substr(kStampBytes) !=
                                       std::string_view(settings_.pattern).substr(kStampBytes))) {
            c.errors.add();
            worker_.count_reason("moonshare: a file differs from what its sender sent");
            receive_ok_ = false;
            return;
        }
        receive_ok_ = true;
        receive_stamp_ = 0;
        std::memcpy(&receive_stamp_, bytes.data(), std::min(size, kStampBytes));
    }

    void on_receive_complete() {
        auto& c = worker_.counters();
        if (!receiving_) {
            c.errors.add();
            worker_.count_reason("moonshare: file_send_complete without file_send_begin");
            return;
        }
        receiving_ = false;
        if (!received_ && settings_.file_size > 0) {
            c.errors.add();
            worker_.count_reason("moonshare: file_send_complete without the file's bytes");
            return;
        }
        if (settings_.file_size > 0 && !receive_ok_) {
            return;  // counted when the bytes came
        }
        if (settings_.file_size >= kStampBytes) {
            if (const auto now = now_ns(); receive_stamp_ <= now) {
                worker_.histogram().record(now - receive_stamp_);
            }
        }
        c.delivered.add();
        c.custom[kBytesReceived].add(settings_.file_size);
    }

    const MoonshareSettings& settings_;
    std::size_t index_;
    std::size_t partner_;
    std::string user_;
    bool joined_ = false;
    bool authed_ = false;

    Send state_ = Send::kIdle;
    std::uint64_t files_ = 0;
    std::uint64_t last_begin_ns_ = 0;
    std::string file_name_;
    std::size_t offset_ = 0;

    bool receiving_ = false;  // between file_send_begin and file_send_complete
    bool received_ = false;   // the binary message came
    bool receive_ok_ = false;
    std::uint64_t receive_size_ = 0;
    std::uint64_t receive_stamp_ = 0;
};

double rounded(double v, int decimals = 0) {
    const double scale = std::pow(10.0, decimals);
    return std::round(v * scale) / scale;
}

class MoonshareScenario final : public Scenario {
public:
    void add_options(CLI::App& cmd) override {
        cmd.add_option("--players", s_.players,
                       "Players; 2k and 2k+1 send files to each other (an even number)")
            ->check(CLI::Range(2, 100'000))
            ->capture_default_str();
        cmd.add_option("--file-size", s_.file_size,
                       "Bytes of each file (at most 16 MiB, the largest message this client "
                       "reassembles)")
            ->check(CLI::Range(std::size_t{0}, Connection::kMaxMessageBytes))
            ->capture_default_str();
        cmd.add_option("--interval-ms", s_.interval_ms,
                       "Milliseconds from the start of a player's transfer to the start of its "
                       "next (when the previous one is done); 0: back to back")
            ->check(CLI::Range(0.0, 3'600'000.0))
            ->capture_default_str();
        cmd.add_option("--token-url", s_.token_url,
                       "The token endpoint, http://HOST:PORT (token_listen); default: --url's "
                       "host, port 5003");
        cmd.add_option("--instance-ports", s_.instance_ports,
                       "The player instances' ports in order (player_listen): user ids are drawn "
                       "so that StableHash picks the one --url names")
            ->capture_default_str();
    }

    std::string validate(const CommonOptions& options) override {
        if (s_.players % 2 != 0) {
            return "--players must be even (players send files in pairs)";
        }
        if (!options.url.starts_with("ws://") && !options.url.starts_with("wss://")) {
            return "moonshare-player: --url ws://HOST:PORT/player (a player instance)";
        }
        return {};
    }

    std::size_t connections() const override { return s_.players; }

    /// A transfer in progress may be a whole file of --file-size bytes.
    double default_drain_s() const override { return 10; }

    double expected_seconds(const CommonOptions& options) const override {
        // Tokens are fetched one at a time (10 s timeouts each, at worst a few).
        return options.duration_s + kJoinTimeoutS + 30 + static_cast<double>(s_.players) * 0.05;
    }

    void run(Bench& bench, Report& report) override {
        auto& f = report.figures;
        report.latency_meaning =
            "transfer: sender's file_send_begin to the recipient's file_send_complete";
        f["players"] = s_.players;
        f["file_size"] = s_.file_size;
        f["interval_ms"] = s_.interval_ms;

        choose_user_ids(bench);
        fetch_tokens(bench, report);
        s_.pattern.resize(s_.file_size);
        std::uint64_t seed = 0x9E3779B97F4A7C15ULL;
        for (auto& ch : s_.pattern) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            ch = static_cast<char>(seed >> 56);
        }
        for (std::size_t i = 0; i < bench.worker_count(); ++i) {
            s_.send_latency.push_back(std::make_unique<LatencyHistogram>());
        }

        const std::size_t opened = bench.open(s_.players, [this](Worker& w, std::size_t i) {
            return std::make_unique<Player>(w, s_, i);
        });
        if (opened == 0) {
            return;
        }
        bench.wait(kJoinTimeoutS, "session_auth",
                   [&bench, opened] { return bench.totals().custom[kJoined] >= opened; });
        const auto authed = bench.totals().custom[kAuthed];
        f["authenticated"] = authed;
        if (authed < s_.players) {
            bench.note(fmt::format("{} of {} players authenticated (see close_reasons)", authed,
                                   s_.players));
        }
        if (authed == 0) {
            throw std::runtime_error("no player authenticated");
        }
        // The user_list_update messages of the last players to join arrive before the measure.
        bench.wait(0.5, "settle");

        const Snapshot begin = bench.snapshot();
        s_.start_ns = now_ns();
        bench.set_phase(Phase::kMeasure);
        bench.on_workers([](Worker& w) {
            std::vector<Player*> players;
            for (auto& c : w.connections()) {
                players.push_back(static_cast<Player*>(c.get()));
            }
            w.start_ticker(kTickInterval, [&w, players] {
                if (w.phase() != Phase::kMeasure && w.phase() != Phase::kDrain) {
                    return false;
                }
                const std::uint64_t now = now_ns();
                for (auto* p : players) {
                    p->tick(now);
                }
                return true;
            });
        });
        bench.wait(bench.options().duration_s, "moonshare-player");
        bench.set_phase(Phase::kDrain);  // no new transfer; those in progress go on
        const bool drained = bench.wait(bench.options().drain_s, "drain", [&] {
            const auto t = bench.totals();
            return t.custom[kBegun] <= t.custom[kAcknowledged] + t.custom[kFailed] &&
                   t.delivered >= t.custom[kAcknowledged];
        });
        const Snapshot end = bench.snapshot();
        Bench::fill_window(report, begin, end);
        const auto& t = end.totals;
        if (!drained) {
            bench.note(fmt::format("{} transfers still in progress {} s after the last began",
                                   t.custom[kBegun] - t.custom[kAcknowledged] - t.custom[kFailed],
                                   bench.options().drain_s));
        }
        f["files_begun"] = t.custom[kBegun];
        f["files_sent"] = t.custom[kAcknowledged];
        f["files_received"] = t.delivered;
        f["files_failed"] = t.custom[kFailed];
        const double mb = static_cast<double>(t.custom[kBytesReceived]) / 1e6;
        f["mb_received"] = rounded(mb, 3);
        if (report.elapsed_s > 0) {
            f["files_per_s"] = rounded(static_cast<double>(t.delivered) / report.elapsed_s, 1);
            f["mb_per_s"] = rounded(mb / report.elapsed_s, 2);
        }
        if (report.server_cpu_s && *report.server_cpu_s > 0 && t.delivered > 0) {
            f["files_per_server_cpu_s"] =
                rounded(static_cast<double>(t.delivered) / *report.server_cpu_s, 1);
            f["mb_per_server_cpu_s"] = rounded(mb / *report.server_cpu_s, 2);
        }
        LatencyHistogram send;
        bench.on_workers([&](Worker& w) {
            std::lock_guard lock(merge_mutex_);  // the workers run this at the same time
            send.merge(*s_.send_latency[w.index()]);
        });
        if (send.count() > 0) {
            boost::json::object o;
            o["p50"] = rounded(static_cast<double>(send.percentile(50)) / 1e6, 2);
            o["p99"] = rounded(static_cast<double>(send.percentile(99)) / 1e6, 2);
            o["max"] = rounded(static_cast<double>(send.max()) / 1e6, 2);
            o["count"] = send.count();
            f["send_latency_ms"] = std::move(o);
        }
        if (end.server) {
            f["server_rss_bytes"] = end.server->resident_bytes;
        }
    }

private:
    void choose_user_ids(Bench& bench) {
        std::vector<std::uint16_t> ports;
        std::string_view list = s_.instance_ports;
        while (!list.empty()) {
            const auto comma = list.find(',');
            const auto item = list.substr(0, comma);
            unsigned v = 0;
            const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
            if (ec != std::errc{} || p != item.data() + item.size() || v == 0 || v > 65535) {
                throw std::runtime_error("--instance-ports: \"" + std::string(item) +
                                         "\" is not a port");
            }
            ports.push_back(static_cast<std::uint16_t>(v));
            list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        }
        const auto it = std::find(ports.begin(), ports.end(), bench.target().port);
        std::optional<std::size_t> instance;
        if (it != ports.end()) {
            instance = static_cast<std::size_t>(it - ports.begin());
        } else {
            bench.note(
                fmt::format("port {} is not one of --instance-ports {}: user ids are not "
                            "matched to the instance",
                            bench.target().port, s_.instance_ports));
        }
        std::mt19937_64 rng(std::random_device{}() ^ static_cast<std::uint64_t>(now_ns()));
        while (s_.user_ids.size() < s_.players) {
            auto id = guid(rng);
            const auto h = stable_hash(id);
            if (!h || (instance && *h % ports.size() != *instance)) {
                continue;
            }
            s_.user_ids.push_back(std::move(id));
        }
    }

    void fetch_tokens(Bench& bench, Report& report) {
        std::string url = s_.token_url;
        if (url.empty()) {
            url = "http://" + bench.target().host + ":5003";
        }
        auto parsed = boost::urls::parse_uri(url);
        if (!parsed || parsed->scheme() != "http") {
            throw std::runtime_error("--token-url \"" + url + "\": give http://HOST:PORT");
        }
        std::string host(parsed->encoded_host());
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
            host = host.substr(1, host.size() - 2);
        }
        const std::uint16_t port = parsed->has_port() ? parsed->port_number() : 80;
        asio::io_context io;
        boost::system::error_code ec;
        auto address = asio::ip::make_address(host, ec);
        if (ec) {
            tcp::resolver resolver(io);
            auto results = resolver.resolve(host, std::to_string(port), ec);
            if (ec || results.empty()) {
                throw std::runtime_error("--token-url: cannot resolve " + host);
            }
            address = results.begin()->endpoint().address();
        }
        const tcp::endpoint endpoint(address, port);
        const std::string host_header =
            std::string(parsed->encoded_host()) + ":" + std::to_string(port);
        const auto started = Clock::now();
        for (const auto& id : s_.user_ids) {
            if (Bench::interrupted()) {
                throw std::runtime_error("interrupted while fetching tokens");
            }
            s_.tokens.push_back(fetch_token(io, endpoint, host_header, id));
        }
        const double s = std::chrono::duration<double>(Clock::now() - started).count();
        report.figures["token_url"] = url;
        if (s > 0) {
            report.figures["tokens_per_s"] = rounded(static_cast<double>(s_.tokens.size()) / s, 1);
        }
    }

    MoonshareSettings s_;
    std::mutex merge_mutex_;
};

const RegisterScenario kRegistered{
    {"moonshare-player",
     "Moonshare: players get tokens (GET /sessions), authenticate on /player, and pairs send "
     "each other files of --file-size bytes; files/s, MB/s relayed, transfer latency, per server "
     "CPU-second.",
     [] { return std::make_unique<MoonshareScenario>(); }}};

}  // namespace

}  // namespace hearth::bench
