// Security part 2, items 8 and 10: Moonshare under abuse, over real sockets against the network
// layer, the account service and a real SQLite store (the parts of the app, as
// tests/integration/moonshare_test.cpp builds them).
//
// Item 8: a client trickling one byte now and then kept an upload slot and its reserved space;
// files to made-up recipients filled the storage; one or two addresses could take every player
// slot, every upload slot, or every user id binding; the token pace's table of addresses refused
// newcomers once full. Item 10: FILE_SENT_SERVER_ONLY came before the file was synced to disk.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "auth/operator_auth.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "core/ws_settings.hpp"
#include "frontends/moonshare/moonshare.hpp"
#include "net/server.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "support/clients.hpp"
#include "support/log_capture.hpp"
#include "support/moonshare.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace hearth::test::moonshare;

const std::string kServerFull =
    R"({"type":"session_auth_result","success":false,"message":"Server full, please try later"})";

/// Announces, sends and completes a file of `n` bytes; the first answer that is not
/// file_receive_ready (a refusal of the announcement, or the outcome).
std::string send_file(WsClient& c, const std::string& to, std::size_t n,
                      const std::string& name = "f") {
    c.send_text(begin_msg(to, name, n));
    auto ready = next_text(c);
    if (ready != "file_receive_ready") {
        return ready;
    }
    c.send_binary(std::string(n, 'q'));
    c.send_text(complete_msg(to, name));
    return next_text(c);
}

/// Polls a metric until it is `value` or the deadline passes (gauges change on io threads).
double wait_metric(Fixture& f, const std::string& name,
                   const std::map<std::string, std::string>& labels, double value) {
    const auto until = Clock::now() + kDeadline;
    while (f.metric(name, labels) != value && Clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    return f.metric(name, labels);
}

/// A player connection on a plain socket, for a client no library would be: one that sends a
/// message a byte at a time and meanwhile waits, with a deadline, for what the server says.
class RawPlayer {
public:
    /// `receive_buffer`: the socket's receive buffer (0: the system's), small for a client whose
    /// slowness the server must feel soon.
    explicit RawPlayer(std::uint16_t port, int receive_buffer = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ >= 0 && receive_buffer > 0) {
            (void)::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error("connect failed");
        }
        write(
            "GET /player HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n");
        const auto until = Clock::now() + kDeadline;
        std::size_t end = std::string::npos;
        while ((end = buffered_.find("\r\n\r\n")) == std::string::npos) {
            if (!receive(until)) {
                throw std::runtime_error("no upgrade response");
            }
        }
        if (!buffered_.starts_with("HTTP/1.1 101")) {
            throw std::runtime_error("upgrade refused: " + buffered_);
        }
        buffered_.erase(0, end + 4);
    }
    ~RawPlayer() { ::close(fd_); }
    RawPlayer(const RawPlayer&) = delete;
    RawPlayer& operator=(const RawPlayer&) = delete;

    void text(const std::string& s) { write(client_frame(0x1, s)); }
    void write(const std::string& bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                throw std::runtime_error("write failed");
            }
            off += static_cast<std::size_t>(n);
        }
    }
    /// The next text frame that is not a user_list_update, if one comes within `wait`.
    std::optional<std::string> text_within(std::chrono::milliseconds wait) {
        const auto until = Clock::now() + wait;
        for (;;) {
            std::size_t used = 0;
            if (auto f = parse_server_frame(buffered_, used)) {
                buffered_.erase(0, used);
                if (f->opcode == 0x1 &&
                    !is_user_list(WsMessage{.text = true, .data = f->payload})) {
                    return f->payload;
                }
                continue;
            }
            if (!receive(until)) {
                return std::nullopt;
            }
        }
    }
    std::string next_text() {
        auto t = text_within(kDeadline);
        if (!t) {
            throw std::runtime_error("no text message within the deadline");
        }
        return *t;
    }
    /// Reads at most `n` bytes if some come within `wait`; false once the connection ended.
    bool read_some(std::size_t n, std::chrono::milliseconds wait) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) {
            return true;
        }
        std::string buf(n, '\0');
        return ::recv(fd_, buf.data(), n, 0) > 0;
    }

private:
    /// Waits for bytes until `until`; false when none came (or the connection ended).
    bool receive(Clock::time_point until) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 0))) <= 0) {
            return false;
        }
        char buf[65536];
        const auto n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) {
            return false;
        }
        buffered_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string buffered_;
};

// ---- item 8: the minimum transfer rate -----------------------------------------------------

TEST(MoonshareAbuse, ATricklingUploaderIsEndedAndItsSlotAndSpaceGoToAnother) {
    MoonshareConfig c;
    c.max_concurrent_uploads = 1;
    c.max_stored_bytes_total = 150'000;  // room for one of the two files below
    c.min_transfer_bytes_per_s = 4096;
    c.transfer_rate_window_s = 1;
    c.upload_timeout_s = 600;  // the trickle makes progress: the idle timeout never ends it
    Fixture f(c);
    (void)f.token("slow-target");
    auto other = player(f, "patient", 1);
    ASSERT_TRUE(other);

    RawPlayer t(f.player_port(0));
    t.text(auth_msg("trickler", f.token("trickler")));
    ASSERT_EQ(t.next_text(), ok_result("trickler"));
    (void)t.next_text();  // connection_info
    t.text(begin_msg("slow-target", "slow.bin", 100'000));
    ASSERT_EQ(t.next_text(), "file_receive_ready");
    // The only slot, and the space, are the trickler's.
    EXPECT_EQ(send_file(*other, "slow-target", 100'000),
              "FILE_FAILED: Server busy, please try later");
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 1);

    // One byte, then up to 100 ms waiting for the server's word, again and again: far below
    // 4 KiB/s, and never idle for upload_timeout_s.
    t.write(client_frame(0x2, "x", false));
    std::optional<std::string> answer;
    const auto until = Clock::now() + kDeadline;
    while (!(answer = t.text_within(100ms)) && Clock::now() < until) {
        t.write(client_frame(0x0, "x", false));
    }
    ASSERT_TRUE(answer) << "the trickle was never ended";
    EXPECT_EQ(*answer, "FILE_FAILED: Upload too slow");
    EXPECT_EQ(f.metric("hearth_moonshare_transfers_too_slow_total", {{"direction", "upload"}}), 1);
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);

    // Its slot and its reserved space are free: the other sender gets them.
    EXPECT_EQ(send_file(*other, "slow-target", 100'000), "FILE_SENT_SERVER_ONLY");

    // The trickler's connection goes on: the rest of the dropped message is discarded, and what
    // follows it is answered.
    t.write(client_frame(0x0, std::string(500, 'x'), true));
    t.text(R"({"type":"list_online"})");
    EXPECT_TRUE(t.next_text().starts_with("ONLINE:"));
}

TEST(MoonshareAbuse, APlayerReadingAFileTooSlowlyIsClosedAndTheFileStored) {
    MoonshareConfig c;
    c.min_transfer_bytes_per_s = 1024 * 1024;
    c.transfer_rate_window_s = 1;
    Fixture f(c);
    auto giver = player(f, "giver", 0);
    ASSERT_TRUE(giver);
    // The slow reader: a modest receive buffer, and at most 16 KiB every 100 ms (160 KiB/s) once
    // the server's and the kernel's buffers are full (the file is larger than they hold). Fast
    // enough that no single write of the server stalls for [websocket] write_timeout_ms, which
    // would close it first.
    RawPlayer slow(f.player_port(1), 64 * 1024);
    slow.text(auth_msg("slow-reader", f.token("slow-reader")));
    ASSERT_EQ(slow.next_text(), ok_result("slow-reader"));
    (void)slow.next_text();  // connection_info
    std::atomic<bool> stop{false};
    std::thread reader([&] {
        // The pace is the abuse itself, not a synchronisation: the wait is the client's.
        while (!stop && slow.read_some(16 * 1024, 50ms)) {
            std::this_thread::sleep_for(50ms);
        }
    });
    struct Join {
        std::atomic<bool>& stop;
        std::thread& t;
        ~Join() {
            stop = true;
            t.join();
        }
    } join{stop, reader};
    const std::string data(12 * 1024 * 1024, 'd');
    giver->send_text(begin_msg("slow-reader", "big.bin", data.size()));
    ASSERT_EQ(next_text(*giver), "file_receive_ready");
    giver->send_binary(data);
    giver->send_text(complete_msg("slow-reader", "big.bin"));
    // The reader is closed; the relay that did not complete is stored for its next session.
    EXPECT_EQ(next_text(*giver, 60s), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(f.metric("hearth_moonshare_transfers_too_slow_total", {{"direction", "download"}}),
              1);
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "stored"}}), 1);
    EXPECT_EQ(f.metric("hearth_ws_disconnects_total",
                       {{"route", "/player"}, {"reason", "stream_failed"}}),
              0);
}

TEST(MoonshareAbuse, AnUploadAtAnHonestRateIsNotEnded) {
    MoonshareConfig c;
    c.min_transfer_bytes_per_s = 4096;
    c.transfer_rate_window_s = 1;
    Fixture f(c);
    (void)f.token("steady-target");
    RawPlayer t(f.player_port(0));
    t.text(auth_msg("steady", f.token("steady")));
    ASSERT_EQ(t.next_text(), ok_result("steady"));
    (void)t.next_text();  // connection_info
    // 64 KiB every 100 ms at most (640 KiB/s, or whatever the machine manages, well above
    // 4 KiB/s), over more than two windows.
    constexpr std::size_t kPart = 64 * 1024;
    constexpr std::size_t kParts = 25;
    t.text(begin_msg("steady-target", "steady.bin", kPart * kParts));
    ASSERT_EQ(t.next_text(), "file_receive_ready");
    for (std::size_t i = 0; i < kParts; ++i) {
        t.write(client_frame(i == 0 ? 0x2 : 0x0, std::string(kPart, 's'), i + 1 == kParts));
        const auto early = t.text_within(100ms);
        ASSERT_FALSE(early) << *early;
    }
    t.text(complete_msg("steady-target", "steady.bin"));
    EXPECT_EQ(t.next_text(), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(f.metric("hearth_moonshare_transfers_too_slow_total", {{"direction", "upload"}}), 0);
}

// ---- item 8: quotas per recipient and per sender ---------------------------------------------

TEST(MoonshareAbuse, StoredFilesAreBoundedPerRecipientAndPerSenderAddress) {
    MoonshareConfig c;
    c.max_stored_files_per_user = 2;
    c.max_stored_files_per_sender = 3;
    c.max_stored_bytes_per_sender = 5000;
    Fixture f(c);
    for (const std::string id : {"made-up-1", "made-up-2", "made-up-3", "made-up-4"}) {
        (void)f.token(id, "127.0.0.9");  // user ids held by someone, offline
    }
    const std::string kQuota = "FILE_FAILED: Storage quota exceeded";
    auto u = player(f, "filler", 0, "127.0.0.2");
    ASSERT_TRUE(u);
    // Per recipient: two files wait for made-up-1; a third is refused before its bytes are sent.
    EXPECT_EQ(send_file(*u, "made-up-1", 100), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(send_file(*u, "made-up-1", 100), "FILE_SENT_SERVER_ONLY");
    u->send_text(begin_msg("made-up-1", "third", 100));
    EXPECT_EQ(next_text(*u), kQuota);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "recipient_quota"}}), 1);
    // Per sender: a third file anywhere, then no more from this address, whoever it is for.
    EXPECT_EQ(send_file(*u, "made-up-2", 100), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(send_file(*u, "made-up-3", 100), kQuota);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "sender_quota"}}), 1);
    // ... nor under another user id from the same address.
    auto again = player(f, "filler-2", 1, "127.0.0.2");
    ASSERT_TRUE(again);
    EXPECT_EQ(send_file(*again, "made-up-3", 1), kQuota);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "sender_quota"}}), 2);

    // Another address has its own quota, in bytes too (4000 + 1001 > 5000).
    auto v = player(f, "other-sender", 0, "127.0.0.3");
    ASSERT_TRUE(v);
    EXPECT_EQ(send_file(*v, "made-up-3", 4000), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(send_file(*v, "made-up-4", 1001), kQuota);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "sender_quota"}}), 3);

    // Two announcements that each fit when announced (one file waits for made-up-4), stored one
    // after the other: the second finds the recipient's quota full when it is stored, and is
    // refused then.
    auto w0 = player(f, "racer-0", 2, "127.0.0.6");
    ASSERT_TRUE(w0);
    EXPECT_EQ(send_file(*w0, "made-up-4", 10), "FILE_SENT_SERVER_ONLY");
    auto w1 = player(f, "racer-1", 0, "127.0.0.4");
    auto w2 = player(f, "racer-2", 1, "127.0.0.5");
    ASSERT_TRUE(w1 && w2);
    for (auto* w : {w1.get(), w2.get()}) {
        w->send_text(begin_msg("made-up-4", "race", 10));
        ASSERT_EQ(next_text(*w), "file_receive_ready");
    }
    w1->send_binary(std::string(10, 'a'));
    w1->send_text(complete_msg("made-up-4", "race"));
    EXPECT_EQ(next_text(*w1), "FILE_SENT_SERVER_ONLY");
    w2->send_binary(std::string(10, 'b'));
    w2->send_text(complete_msg("made-up-4", "race"));
    EXPECT_EQ(next_text(*w2), kQuota);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "recipient_quota"}}), 2);
    EXPECT_EQ(f.metric("hearth_moonshare_stored_bytes"), 100 * 3 + 4000 + 10 * 2);
}

// ---- item 8: fair slots
// --------------------------------------------------------------------------

TEST(MoonshareAbuse, OneAddressCannotTakeEveryPlayerOrUploadSlot) {
    MoonshareConfig c;
    c.player_limit = 3;  // per instance
    c.max_players_per_address = 2;
    c.max_concurrent_uploads = 3;
    c.max_uploads_per_address = 1;
    Fixture f(c);
    (void)f.token("upload-target");
    auto a1 = player(f, "a1", 0, "127.0.0.2");
    auto a2 = player(f, "a2", 0, "127.0.0.2");
    ASSERT_TRUE(a1 && a2);
    // A third from the same address is refused, on any instance, as a full server is.
    std::string refusal;
    const auto a3_token = f.token("a3", "127.0.0.2");
    EXPECT_FALSE(try_player(f, "a3", a3_token, 1, "127.0.0.2", &refusal));
    EXPECT_EQ(refusal, kServerFull);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "players_per_address"}}), 1);
    // Another address still gets a slot on the same instance.
    auto b1 = player(f, "b1", 0, "127.0.0.3");
    ASSERT_TRUE(b1);

    // Upload slots: one per address in progress at once.
    a1->send_text(begin_msg("upload-target", "one", 10));
    EXPECT_EQ(next_text(*a1), "file_receive_ready");
    a2->send_text(begin_msg("upload-target", "two", 10));
    EXPECT_EQ(next_text(*a2), "FILE_FAILED: Server busy, please try later");
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "uploads_per_address"}}), 1);
    b1->send_text(begin_msg("upload-target", "three", 10));
    EXPECT_EQ(next_text(*b1), "file_receive_ready");
    // The address's upload ends: its slot is free for its other player.
    a1->send_binary(std::string(10, '1'));
    a1->send_text(complete_msg("upload-target", "one"));
    EXPECT_EQ(next_text(*a1), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(send_file(*a2, "upload-target", 10, "two"), "FILE_SENT_SERVER_ONLY");

    // A player of the address leaves: its slot is free for the address again.
    a1->close();
    ASSERT_EQ(wait_metric(f, "hearth_moonshare_players", {{"instance", "Alpha"}}, 2), 2);
    auto a3 = try_player(f, "a3", a3_token, 1, "127.0.0.2");
    EXPECT_TRUE(a3);
}

// ---- item 8: the token pace's table of addresses -----------------------------------------------

TEST(MoonshareAbuse, AFullTokenPaceTableStillAdmitsANewcomer) {
    MoonshareConfig c;
    c.token_requests_per_ip_per_min = 2;
    c.max_paced_addresses = 3;
    Fixture f(c);
    // 127.0.0.2 is a player's: it authenticates, and has used its two requests this minute.
    const auto token = f.token("regular", "127.0.0.2");
    auto p = try_player(f, "regular", token, 0, "127.0.0.2");
    ASSERT_TRUE(p);
    EXPECT_EQ(f.token_request("regular", "127.0.0.2").status, 200);
    EXPECT_EQ(f.token_request("regular", "127.0.0.2").status, 429);
    // Two addresses that only ask for tokens fill the table.
    EXPECT_EQ(f.token_request("minted-3", "127.0.0.3").status, 200);
    EXPECT_EQ(f.token_request("minted-4", "127.0.0.4").status, 200);
    // A newcomer is admitted all the same (before: 429 until a minute passed).
    EXPECT_EQ(f.token_request("newcomer", "127.0.0.5").status, 200);
    EXPECT_EQ(f.metric("hearth_moonshare_paced_addresses_evicted_total"), 1);
    // The place was taken from an address that never authenticated, the least recently seen:
    // the player's address is still paced, 127.0.0.3 starts over.
    EXPECT_EQ(f.token_request("regular", "127.0.0.2").status, 429);
    EXPECT_EQ(f.token_request("minted-3", "127.0.0.3").status, 200);
    EXPECT_EQ(f.token_request("minted-3", "127.0.0.3").status, 200);
    EXPECT_EQ(f.token_request("minted-3", "127.0.0.3").status, 429);
    EXPECT_EQ(f.metric("hearth_moonshare_paced_addresses_evicted_total"), 2);
}

// ---- item 8: user id bindings per address
// ----------------------------------------------------------

TEST(MoonshareAbuse, OneAddressHoldsAtMostItsShareOfUserIds) {
    MoonshareConfig c;
    c.max_bindings_per_address = 2;
    c.max_bindings = 4;
    Fixture f(c);
    const std::string kTooMany = R"({"error":"Too many users, please try later"})";
    // An address at its share: a new user id ends the address's own binding that never
    // authenticated (the plugin's user id of an earlier start), not the one in use.
    auto x1 = player(f, "x1", 0, "127.0.0.2");
    ASSERT_TRUE(x1);
    EXPECT_EQ(f.token_request("x2", "127.0.0.2").status, 200);
    EXPECT_EQ(f.token_request("x3", "127.0.0.2").status, 200);
    EXPECT_EQ(f.metric("hearth_moonshare_bindings_evicted_total", {{"reason", "address_cap"}}), 1);
    // x2 is free again: anyone may take it.
    EXPECT_EQ(f.token_request("x2", "127.0.0.3").status, 200);
    // Both of the address's bindings in use (online): a third is refused.
    auto x3 = try_player(f, "x3", f.token("x3", "127.0.0.2"), 1, "127.0.0.2");
    ASSERT_TRUE(x3);
    const auto refused = f.token_request("x4", "127.0.0.2");
    EXPECT_EQ(refused.status, 503);
    EXPECT_EQ(refused.body, kTooMany);
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_refused_total",
                       {{"reason", "too_many_user_ids_from_address"}}),
              1);

    // max_bindings (x1, x3, x2 and y1): a newcomer ends the oldest binding that never
    // authenticated (x2) rather than being refused.
    EXPECT_EQ(f.token_request("y1", "127.0.0.4").status, 200);
    EXPECT_EQ(f.token_request("y2", "127.0.0.5").status, 200);
    EXPECT_EQ(f.metric("hearth_moonshare_bindings_evicted_total", {{"reason", "full"}}), 1);
    EXPECT_EQ(f.token_request("x2", "127.0.0.6").status, 200);  // x2 was the one ended (y1 goes)
    // When every binding authenticated, a new user id is refused as before.
    auto y2 = player(f, "y2", 2, "127.0.0.5");
    auto x2 = try_player(f, "x2", f.token("x2", "127.0.0.6"), 2, "127.0.0.6");
    ASSERT_TRUE(y2 && x2);
    EXPECT_EQ(f.token_request("z", "127.0.0.7").status, 503);
}

// Each refusal a client triggers wrote a log line: from many addresses (past the pace's line per
// address), as fast as it asked. The lines share one budget of 100 at once and 20 a second; the
// counter counts every refusal.
TEST(MoonshareAbuse, RefusalLinesShareOneBudget) {
    LogCapture log;
    Fixture f;
    (void)f.token("held-id");
    constexpr int kRefusals = 400;
    const auto start = Clock::now();
    for (int i = 0; i < kRefusals; ++i) {
        const auto address =
            "127.0." + std::to_string(1 + i / 200) + "." + std::to_string(2 + i % 200);
        ASSERT_EQ(f.token_request("held-id", address).status, 403) << address;
    }
    const std::chrono::duration<double> elapsed = Clock::now() - start;
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_refused_total", {{"reason", "user_id_held"}}),
              kRefusals);
    const int lines = log.count_after_marker("refused: held by another client");
    EXPECT_GE(lines, 100);
    EXPECT_LE(lines, 100 + static_cast<int>(20 * elapsed.count()) + 1);
    EXPECT_LT(lines, kRefusals);
}

// ---- item 10: FILE_SENT_SERVER_ONLY after the file is synced
// -------------------------------------

TEST(MoonshareAbuse, FileSentServerOnlyComesOnceTheFileIsSyncedWhole) {
    DiskGate gate(DiskGate::Step::kSync);
    Fixture f({}, "", gate.hook());
    OpenAtExit open_at_exit{gate};
    (void)f.token("durable-target");
    auto u = player(f, "durable-sender");
    ASSERT_TRUE(u);
    std::string data(300'000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>(i * 131 % 251);
    }
    u->send_text(begin_msg("durable-target", "kept.bin", data.size()));
    ASSERT_EQ(next_text(*u), "file_receive_ready");
    u->send_binary(data);
    u->send_text(complete_msg("durable-target", "kept.bin"));
    // The store is about to sync the file: the acknowledgement waits for it (the answer to a
    // later message comes first).
    ASSERT_TRUE(gate.wait_held()) << "the file was never synced";
    u->send_text(R"({"type":"list_online"})");
    EXPECT_TRUE(next_text(*u).starts_with("ONLINE:"));
    gate.open();
    EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
    // When it comes, the file is in place, whole, with its metadata, and nothing half-written.
    std::vector<fs::path> bins;
    std::vector<fs::path> metas;
    for (const auto& e : fs::directory_iterator(f.stored_dir())) {
        (e.path().extension() == ".bin" ? bins : metas).push_back(e.path());
    }
    ASSERT_EQ(bins.size(), 1u);
    ASSERT_EQ(metas.size(), 1u);
    EXPECT_EQ(metas[0].extension(), ".meta");
    EXPECT_EQ(metas[0].stem(), bins[0].stem());
    std::ifstream in(bins[0], std::ios::binary);
    const std::string on_disk((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
    EXPECT_EQ(on_disk.size(), data.size());
    EXPECT_TRUE(on_disk == data);
    std::ifstream meta_in(metas[0]);
    const std::string meta((std::istreambuf_iterator<char>(meta_in)),
                           std::istreambuf_iterator<char>());
    EXPECT_EQ(json::parse(meta).as_object().at("size").as_int64(), 300'000);
}

}  // namespace
}  // namespace hearth::test
