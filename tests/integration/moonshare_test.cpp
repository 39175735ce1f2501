// The Moonshare front-end with real clients over loopback (Beast's WebSocket and HTTP clients, and
// raw frames where the plugin's fragmented uploads are needed), against the network layer, the
// account service and a real SQLite store built in the test: every message, text, status and close
// code of docs/protocol/moonshare.md. The last test goes through TestServer (the app's wiring).

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "auth/operator_auth.hpp"
#include "auth/secrets.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "core/ws_settings.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/moonshare.hpp"
#include "net/server.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "support/clients.hpp"
#include "support/moonshare.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace hearth::test::moonshare;

const std::regex kHexToken("[0-9a-f]{32}");
const std::map<std::string, std::string> kOperator = {{"Authorization", "Bearer " + kAdminToken}};

/// The next user_list_update push, skipping other messages.
std::string next_user_list(WsClient& c) {
    for (;;) {
        auto m = c.read();
        if (!m) {
            throw std::runtime_error("closed while a user list was expected");
        }
        if (is_user_list(*m)) {
            return m->data;
        }
    }
}

// ---- the token endpoint ---------------------------------------------------------------------

TEST(Moonshare, TokenEndpointIssuesHexTokens) {
    Fixture f;
    for (const std::string path : {"/sessions?userId=alice", "/sessions/?userId=alice"}) {
        auto r = http_request(f.token_port(), "GET", path);
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
        std::smatch m;
        ASSERT_TRUE(std::regex_match(r.body, m, std::regex(R"re(\{"token":"([0-9a-f]{32})"\})re")))
            << r.body;
    }
    // Two requests, two different tokens, both valid.
    const auto a = f.token("bob");
    const auto b = f.token("bob");
    EXPECT_NE(a, b);
    // Stored only as a digest: the clear token is in no file of the store.
    for (const auto& e : fs::directory_iterator(f.data_dir())) {
        if (!e.is_regular_file()) {
            continue;
        }
        std::ifstream in(e.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
        EXPECT_EQ(bytes.find(a), std::string::npos) << e.path();
        EXPECT_EQ(bytes.find(b), std::string::npos) << e.path();
    }
    for (const auto& t : {a, b}) {
        WsClient c(f.player_port(0), {.path = "/player"});
        c.send_text(auth_msg("bob", t));
        EXPECT_EQ(next_text(c), ok_result("bob"));
    }
}

TEST(Moonshare, TokenEndpointRefusals) {
    Fixture f;
    for (const std::string path : {"/sessions", "/sessions?userId=", "/sessions?userId=%20%20"}) {
        auto r = http_request(f.token_port(), "GET", path);
        EXPECT_EQ(r.status, 400) << path;
        EXPECT_EQ(r.body, R"({"error":"Missing userId parameter"})");
        EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
    }
    EXPECT_EQ(http_request(f.token_port(), "POST", "/sessions?userId=a").status, 405);
    EXPECT_EQ(http_request(f.token_port(), "DELETE", "/sessions/?userId=a").status, 405);
    auto r = http_request(f.token_port(), "GET", "/sessions?userId=" + std::string(300, 'x'));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body, R"({"error":"Invalid userId parameter"})");
}

// ---- the auth WebSocket ---------------------------------------------------------------------

TEST(Moonshare, TokenRequestsArePacedPerAddress) {
    MoonshareConfig c;
    c.token_requests_per_ip_per_min = 3;
    Fixture f(c);
    for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(http_request(f.token_port(), "GET", "/sessions?userId=paced").status, 200);
    }
    {
        WsClient a(f.auth_port(), {.path = "/auth?userId=paced"});  // the third, counted alike
        ASSERT_TRUE(a.read());
    }
    auto r = http_request(f.token_port(), "GET", "/sessions?userId=paced");
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(r.body, R"({"error":"Too many requests"})");
    EXPECT_EQ(r.headers["retry-after"], "60");
    EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
    WsClient refused(f.auth_port(), {.path = "/auth?userId=paced"});
    const auto closed = refused.wait_closed();
    EXPECT_EQ(closed.code, 1013);
    EXPECT_EQ(closed.reason, "Too many requests");
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_refused_total", {{"reason", "rate_limited"}}), 2);
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_issued_total"), 3);
}

TEST(Moonshare, AuthSocketSendsItsToken) {
    Fixture f;
    WsClient a(f.auth_port(), {.path = "/auth?userId=carol"});
    auto m = a.read();
    ASSERT_TRUE(m);
    std::smatch match;
    ASSERT_TRUE(std::regex_match(
        m->data, match, std::regex(R"re(\{"type":"session_token","token":"([0-9a-f]{32})"\})re")))
        << m->data;
    WsClient p(f.player_port(1), {.path = "/player"});
    p.send_text(auth_msg("carol", match[1].str()));
    EXPECT_EQ(next_text(p), ok_result("carol"));
    EXPECT_EQ(next_text(p), instance_info("Beta"));
}

TEST(Moonshare, AuthSocketWithoutUserIdCloses1008) {
    Fixture f;
    WsClient a(f.auth_port(), {.path = "/auth"});
    auto closed = a.wait_closed();
    EXPECT_EQ(closed.code, 1008);
    EXPECT_EQ(closed.reason, "Missing userId");
}

TEST(Moonshare, SessionsSocketListsFingerprintsNeverTokens) {
    Fixture f;
    const auto token = f.token("dave");
    WsClient s(f.auth_port(), {.path = "/sessions", .headers = kOperator});
    s.send_text("GET_SESSIONS");
    auto m = s.read();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->data.find(token), std::string::npos);
    auto list = json::parse(m->data).as_array();
    ASSERT_EQ(list.size(), 1u);
    const auto& o = list[0].as_object();
    std::vector<std::string> keys;
    for (const auto& kv : o) {
        keys.emplace_back(kv.key());
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"UserId", "SessionToken", "CreatedAt",
                                              "ClientAddress", "IsActive"}));
    EXPECT_EQ(o.at("UserId").as_string(), "dave");
    EXPECT_EQ(o.at("SessionToken").as_string(),
              "sha256:" + auth::token_digest(token).substr(0, 12));
    EXPECT_TRUE(std::regex_match(std::string(o.at("CreatedAt").as_string()),
                                 std::regex(R"re(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z)re")));
    EXPECT_EQ(o.at("ClientAddress").as_string(), "");  // no IP address is published
    EXPECT_EQ(o.at("IsActive").as_bool(), true);
    s.send_text("something else");
    EXPECT_EQ(s.read()->data, "ERROR:UnknownCommand");
}

// ---- session_auth ---------------------------------------------------------------------------

TEST(Moonshare, SessionAuthOnEveryInstance) {
    Fixture f;
    auto a = player(f, "u-alpha", 0);
    auto b = player(f, "u-beta", 1);
    auto g = player(f, "u-gamma", 2);
    EXPECT_EQ(f.metric("hearth_moonshare_players", {{"instance", "Beta"}}), 1);
}

TEST(Moonshare, SessionAuthRefusals) {
    Fixture f;
    const auto token = f.token("erin");
    {
        WsClient c(f.player_port(0), {.path = "/player"});
        c.send_text(R"({"type":"session_auth","userId":"erin"})");
        EXPECT_EQ(next_text(c),
                  R"({"type":"session_auth_result","success":false,"message":"Missing token"})");
        // A close frame without a status code: Beast reports it as 0 (the bytes are checked in
        // RefusalsCloseWithAnEmptyCloseFrame).
        const auto code = c.wait_closed().code;
        EXPECT_TRUE(code == 0 || code == 1005) << code;
    }
    for (const auto& [user, tok] : std::vector<std::pair<std::string, std::string>>{
             {"erin", "0123456789abcdef0123456789abcdef"},  // unknown
             {"mallory", token},                            // another user's token
             {"", token}}) {
        WsClient c(f.player_port(0), {.path = "/player"});
        c.send_text(auth_msg(user, tok));
        EXPECT_EQ(
            next_text(c),
            R"({"type":"session_auth_result","success":false,"message":"Invalid session token"})");
        const auto code = c.wait_closed().code;
        EXPECT_TRUE(code == 0 || code == 1005) << code;
    }
}

/// Raw frames for what Beast hides: the empty close frame, and fragmented uploads.
class RawPlayer {
public:
    explicit RawPlayer(std::uint16_t port) : raw_(port) {
        const auto head = raw_.upgrade("/player");
        if (head.rfind("HTTP/1.1 101", 0) != 0) {
            throw std::runtime_error("upgrade refused: " + head);
        }
    }
    void text(const std::string& s) { raw_.write(client_frame(0x1, s)); }
    void write(const std::string& bytes) { raw_.write(bytes); }
    /// Reads (and discards) everything until the server closes the connection.
    void drain() { (void)raw_.read_until_eof(); }
    RawFrame frame() {
        for (;;) {
            std::size_t used = 0;
            if (auto f = parse_server_frame(buffered_, used)) {
                buffered_.erase(0, used);
                return *f;
            }
            const auto more = raw_.read_exactly(1);
            if (more.empty()) {
                throw std::runtime_error("connection closed while a frame was expected");
            }
            buffered_ += more;
        }
    }
    /// The next text frame that is not a user_list_update.
    std::string next_text() {
        for (;;) {
            auto f = frame();
            if (f.opcode == 0x1 && !f.payload.starts_with(R"({"type":"user_list_update")")) {
                return f.payload;
            }
        }
    }

private:
    RawClient raw_;
    std::string buffered_;
};

TEST(Moonshare, RefusalsCloseWithAnEmptyCloseFrame) {
    Fixture f;
    RawPlayer p(f.player_port(0));
    p.text(R"({"type":"session_auth","userId":"x","token":""})");
    auto result = p.frame();
    EXPECT_EQ(result.opcode, 0x1);
    EXPECT_EQ(result.payload,
              R"({"type":"session_auth_result","success":false,"message":"Missing token"})");
    auto close = p.frame();
    EXPECT_EQ(close.opcode, 0x8);
    EXPECT_EQ(close.payload, "");
}

TEST(Moonshare, MessagesBeforeAuthenticationAreIgnored) {
    Fixture f;
    auto other = player(f, "frank");
    WsClient c(f.player_port(0), {.path = "/player"});
    c.send_text("not json at all");
    c.send_text(R"({"type":"connect","targetUserId":"frank"})");
    c.send_text(R"({"type":"file_send_begin","targetUserId":"frank","fileName":"a","fileSize":1})");
    c.send_binary("stray bytes");
    c.send_text(R"({"type":"list_online"})");  // answered, but with no user id
    EXPECT_EQ(next_text(c), R"(ONLINE:[])");
    EXPECT_GE(f.metric("hearth_moonshare_ignored_messages_total"), 4);
}

TEST(Moonshare, ServerFullClosesWith1008) {
    MoonshareConfig c;
    c.player_limit = 1;
    Fixture f(c);
    auto first = player(f, "first", 0);
    const auto token = f.token("second");
    WsClient second(f.player_port(0), {.path = "/player"});
    second.send_text(auth_msg("second", token));
    EXPECT_EQ(
        next_text(second),
        R"({"type":"session_auth_result","success":false,"message":"Server full, please try later"})");
    auto closed = second.wait_closed();
    EXPECT_EQ(closed.code, 1008);
    EXPECT_EQ(closed.reason, "Server full, please try later.");
    // The limit is per instance.
    auto other = player(f, "second", 1);
}

TEST(Moonshare, TokenExpiry) {
    MoonshareConfig c;
    c.token_ttl_s = 1;
    Fixture f(c);
    const auto token = f.token("gina");
    // Waits for the wall clock (the token's lifetime), polling with a deadline.
    const auto until = Clock::now() + kDeadline;
    std::string last;
    while (Clock::now() < until) {
        WsClient p(f.player_port(0), {.path = "/player"});
        p.send_text(auth_msg("gina", token));
        last = next_text(p);
        if (last.find("Invalid session token") != std::string::npos) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(
        last,
        R"({"type":"session_auth_result","success":false,"message":"Invalid session token"})");
}

// ---- presence -------------------------------------------------------------------------------

TEST(Moonshare, ListOnlineAcrossInstancesMostRecentFirst) {
    Fixture f;
    auto a = player(f, "anna", 0);
    auto b = player(f, "ben", 1);
    auto c = player(f, "cleo", 2);
    // Every message counts as activity, the asker's list_online included.
    a->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*a), R"(ONLINE:["anna","cleo","ben"])");
    b->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*b), R"(ONLINE:["ben","anna","cleo"])");
    c->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*c), R"(ONLINE:["cleo","ben","anna"])");
}

TEST(Moonshare, ListOnlineEscapesLikeDotNet) {
    Fixture f;
    auto r = http_request(f.token_port(), "GET", "/sessions?userId=a%3Cb%3E%2B%C3%A9");
    const auto token = std::string(json::parse(r.body).as_object().at("token").as_string());
    auto a = std::make_unique<WsClient>(f.player_port(0), WsOptions{.path = "/player"});
    a->send_text(auth_msg("a<b>+\xc3\xa9", token));
    EXPECT_EQ(
        next_text(*a),
        R"({"type":"session_auth_result","success":true,"message":"Authentication successful","userId":"a\u003Cb\u003E\u002B\u00E9"})");
    EXPECT_EQ(next_text(*a), instance_info("Alpha"));
    a->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*a), R"(ONLINE:["a\u003Cb\u003E\u002B\u00E9"])");
}

TEST(Moonshare, OnlineListAndUserListFitIn8KiB) {
    MoonshareConfig c;
    c.max_players_per_address = 0;  // forty players, all from 127.0.0.1
    Fixture f(c);
    std::vector<std::unique_ptr<WsClient>> players;
    for (int i = 0; i < 40; ++i) {
        char prefix[8];
        std::snprintf(prefix, sizeof prefix, "%02d", i);
        players.push_back(
            player(f, prefix + std::string(240, 'u'), static_cast<std::size_t>(i % 3)));
    }
    players.back()->send_text(R"({"type":"list_online"})");
    const auto online = next_text(*players.back());
    EXPECT_LE(online.size(), 8192u);
    EXPECT_GT(online.size(), 8192u - 250u);
    ASSERT_TRUE(online.starts_with("ONLINE:[\"39"));  // the most recent first
    auto names = json::parse(online.substr(7)).as_array();
    EXPECT_LT(names.size(), 40u);
    // The user list that the last join pushed to the first player is cut the same way.
    std::string list;
    for (int i = 0; i < 40; ++i) {
        list = next_user_list(*players.front());
        if (list.find("\"39") != std::string::npos) {
            break;
        }
    }
    EXPECT_LE(list.size(), 8192u);
    auto users = json::parse(list).as_object().at("users").as_array();
    EXPECT_LT(users.size(), 40u);
    EXPECT_EQ(users[0].as_object().at("userId").as_string(), "39" + std::string(240, 'u'));
}

TEST(Moonshare, UserListUpdatesOnJoinAndLeave) {
    Fixture f;
    auto a = player(f, "amy", 0);
    EXPECT_EQ(next_user_list(*a),
              R"({"type":"user_list_update","users":[{"userId":"amy","userName":"amy"}]})");
    {
        auto b = player(f, "bea", 2);
        EXPECT_EQ(
            next_user_list(*a),
            R"({"type":"user_list_update","users":[{"userId":"bea","userName":"bea"},{"userId":"amy","userName":"amy"}]})");
        b->close();
    }
    EXPECT_EQ(next_user_list(*a),
              R"({"type":"user_list_update","users":[{"userId":"amy","userName":"amy"}]})");
}

// ---- connect ---------------------------------------------------------------------------------

TEST(Moonshare, ConnectAcceptRejectOfflineAndDisconnected) {
    Fixture f;
    auto u = player(f, "uma", 0);
    auto v = player(f, "vic", 2);
    u->send_text(R"({"type":"connect","targetUserId":"vic"})");
    EXPECT_EQ(next_text(*v), R"({"type":"connect_request","fromUserId":"uma"})");
    v->send_text(R"({"type":"connect_reject","targetUserId":"uma"})");
    EXPECT_EQ(next_text(*u), R"({"type":"connect_rejected","withUserId":"vic"})");
    u->send_text(R"({"type":"connect","targetUserId":"vic"})");
    EXPECT_EQ(next_text(*v), R"({"type":"connect_request","fromUserId":"uma"})");
    v->send_text(R"({"type":"connect_accept","targetUserId":"uma"})");
    EXPECT_EQ(next_text(*u), R"({"type":"connect_accepted","withUserId":"vic"})");
    // An answer without a request is ignored; an offline target is rejected at once.
    v->send_text(R"({"type":"connect_accept","targetUserId":"nobody"})");
    u->send_text(R"({"type":"connect","targetUserId":"nobody"})");
    EXPECT_EQ(next_text(*u), R"({"type":"connect_rejected","withUserId":"nobody"})");
    // vic leaves with "disconnect": 1000, and uma hears of it.
    v->send_text(R"({"type":"disconnect"})");
    EXPECT_EQ(v->wait_closed().code, 1000);
    EXPECT_EQ(next_text(*u), R"({"type":"disconnected","userId":"vic"})");
}

// ---- files -----------------------------------------------------------------------------------

std::string pattern(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (auto& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 16);
    }
    return s;
}

/// Expects the three messages of a delivered file on `c`; returns the bytes.
/// Sends a whole file as the plugin does: announces it, waits for file_receive_ready, sends the
/// bytes and file_send_complete.
void upload(WsClient& c, const std::string& to, const std::string& name, const std::string& data) {
    c.send_text(begin_msg(to, name, data.size()));
    EXPECT_EQ(next_text(c), "file_receive_ready");
    c.send_binary(data);
    c.send_text(complete_msg(to, name));
}

std::string received_file(WsClient& c, const std::string& from, const std::string& name,
                          std::size_t size) {
    EXPECT_EQ(next_text(c), R"({"type":"file_send_begin","fileName":")" + name +
                                R"(","fromUserId":")" + from + R"(","fileSize":)" +
                                std::to_string(size) + "}");
    auto bytes = next(c, 60s);
    EXPECT_TRUE(bytes && !bytes->text);
    EXPECT_EQ(next_text(c), R"({"type":"file_send_complete","fileName":")" + name +
                                R"(","fromUserId":")" + from + R"("})");
    return bytes ? bytes->data : std::string();
}

TEST(Moonshare, FileRelayedToAnOnlinePlayer) {
    Fixture f;
    auto u = player(f, "sender", 0);
    auto v = player(f, "receiver", 1);
    const auto data = pattern(300'000, 1);
    upload(*u, "receiver", "pic.png", data);
    EXPECT_EQ(received_file(*v, "sender", "pic.png", data.size()), data);
    EXPECT_EQ(next_text(*u), "FILE_SENT");
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "relayed"}}), 1);
}

TEST(Moonshare, FiftyMegabytesRelayedThroughDiskInBoundedMemory) {
    Fixture f;  // max_file_size_bytes: 64 MiB
    const std::string sender = "big-sender";
    auto v = player(f, "big-receiver", 1);
    const auto token = f.token(sender);
    RawPlayer u(f.player_port(0));
    u.text(auth_msg(sender, token));
    EXPECT_EQ(u.next_text(), ok_result(sender));
    EXPECT_EQ(u.next_text(), instance_info("Alpha"));
    const std::size_t n = 50'000'000;
    const auto data = pattern(n, 7);
    u.text(begin_msg("big-receiver", "big.bin", n));
    EXPECT_EQ(u.next_text(), "file_receive_ready");
    // One binary message in 32 KiB frames, as the plugin sends it.
    constexpr std::size_t kFrame = 32 * 1024;
    std::string batch;
    for (std::size_t off = 0; off < n; off += kFrame) {
        const auto len = std::min(kFrame, n - off);
        batch += client_frame(off == 0 ? 0x2 : 0x0, data.substr(off, len), off + len == n);
        if (batch.size() >= (1u << 20) || off + len == n) {
            u.write(batch);
            batch.clear();
        }
    }
    u.text(complete_msg("big-receiver", "big.bin"));
    const auto got = received_file(*v, sender, "big.bin", n);
    EXPECT_EQ(got.size(), n);
    EXPECT_EQ(auth::token_digest(got), auth::token_digest(data));  // SHA-256 of both
    EXPECT_EQ(u.next_text(), "FILE_SENT");
    // What the front-end held in memory never grew with the file: a few chunks at most.
    EXPECT_LE(f.metric("hearth_moonshare_buffered_bytes_max"), 2.0 * 1024 * 1024);
    EXPECT_EQ(f.metric("hearth_moonshare_buffered_bytes"), 0);
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "relayed"}}), 1);
}

TEST(Moonshare, FileStoredForAnOfflinePlayerAndDeliveredAtTheirNextAuth) {
    TempDir keep;
    const auto data = pattern(100'000, 2);
    {
        Fixture f({}, keep.path());
        (void)f.token("late");  // the recipient was here once: its user id is held
        auto u = player(f, "early", 0);
        upload(*u, "late", "notes.txt", data);
        EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
        EXPECT_EQ(f.metric("hearth_moonshare_stored_bytes"), 100'000);
    }
    // A restart: the stored file is indexed again and delivered at the next session_auth.
    Fixture f({}, keep.path());
    EXPECT_EQ(f.metric("hearth_moonshare_stored_bytes"), 100'000);
    auto v = player(f, "late", 2);
    EXPECT_EQ(received_file(*v, "early", "notes.txt", data.size()), data);
}

TEST(Moonshare, AStoredFileGoesToOneSessionOnly) {
    Fixture f;
    const auto data = pattern(8'000'000, 3);
    (void)f.token("twice");
    {
        auto u = player(f, "giver", 0);
        upload(*u, "twice", "once.bin", data);
        EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
    }
    // The first session's delivery is still being written (it reads nothing yet) when the same
    // user authenticates again: the second session does not get the file too.
    auto first = player(f, "twice", 0);
    auto second = player(f, "twice", 1);
    second->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*second), R"(ONLINE:["twice"])");
    EXPECT_EQ(received_file(*first, "giver", "once.bin", data.size()), data);
}

TEST(Moonshare, StoredFilesExpire) {
    TempDir keep;
    MoonshareConfig c;
    c.file_ttl_s = 1;
    {
        Fixture f(c, keep.path());
        (void)f.token("away");
        auto u = player(f, "expiring", 0);
        u->send_text(begin_msg("away", "old.txt", 3));
        EXPECT_EQ(next_text(*u), "file_receive_ready");
        u->send_binary("abc");
        u->send_text(complete_msg("away", "old.txt"));
        EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
    }
    // Waits for the wall clock (the file's lifetime) to pass.
    std::this_thread::sleep_for(1100ms);
    Fixture f(c, keep.path());  // the startup index deletes what expired
    EXPECT_EQ(f.metric("hearth_moonshare_stored_bytes"), 0);
    auto v = player(f, "away", 1);
    v->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*v), R"(ONLINE:["away"])");  // no file came first
    EXPECT_TRUE(fs::is_empty(fs::path(keep.path()) / "moonshare" / "stored"));
}

TEST(Moonshare, AnUploadCutShortLeavesNothingBehind) {
    Fixture f;
    auto v = player(f, "cut-target", 1);
    {
        const auto token = f.token("cut-sender");
        RawPlayer u(f.player_port(0));
        u.text(auth_msg("cut-sender", token));
        EXPECT_EQ(u.next_text(), ok_result("cut-sender"));
        EXPECT_EQ(u.next_text(), instance_info("Alpha"));
        u.text(begin_msg("cut-target", "half.bin", 1'000'000));
        EXPECT_EQ(u.next_text(), "file_receive_ready");
        u.write(client_frame(0x2, std::string(300'000, 'h'), false));  // no final fragment
        u.text(R"({"type":"list_online"})");  // a control point: everything before it was read
    }
    // The sender's connection is gone: the upload is dropped and its file deleted.
    const auto until = Clock::now() + kDeadline;
    while (f.metric("hearth_moonshare_uploads") != 0 && Clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);
    while (f.metric("hearth_moonshare_buffered_bytes") != 0 && Clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(f.metric("hearth_moonshare_buffered_bytes"), 0);
    v->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*v), R"(ONLINE:["cut-target"])");
}

TEST(Moonshare, FileRefusals) {
    MoonshareConfig c;
    c.max_file_size_bytes = 1000;
    Fixture f(c);
    auto u = player(f, "refused", 0);
    auto v = player(f, "target", 1);
    u->send_text(R"({"type":"file_send_begin","targetUserId":"target","fileName":"a"})");
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing file_send_begin parameters");
    u->send_text(R"({"type":"file_send_begin","fileName":"a","fileSize":1})");
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing file_send_begin parameters");
    u->send_text(
        R"({"type":"file_send_begin","targetUserId":"target","fileName":"a","fileSize":-1})");
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing file_send_begin parameters");
    u->send_text(begin_msg(std::string(257, 't'), "a", 1));  // no user id is that long
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing file_send_begin parameters");
    u->send_text(begin_msg("target", std::string(1025, 'n'), 1));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: File name too long");
    u->send_text(begin_msg("target", "big", 1001));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: File too large");
    u->send_text(complete_msg("target", "nothing"));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing state for completion");
    u->send_text(
        begin_msg("target", std::string(1024, 'n'), 1));  // the longest name (replaced below)
    EXPECT_EQ(next_text(*u), "file_receive_ready");
    // Fewer bytes than announced, and more.
    u->send_text(begin_msg("target", "short", 10));
    EXPECT_EQ(next_text(*u), "file_receive_ready");
    u->send_binary("123456789");
    u->send_text(complete_msg("target", "short"));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Size mismatch");
    u->send_text(begin_msg("target", "long", 10));
    EXPECT_EQ(next_text(*u), "file_receive_ready");
    u->send_binary(std::string(900, 'x'));
    u->send_text(complete_msg("target", "long"));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Size mismatch");
    // Binary data with no transfer in progress is dropped; the connection goes on.
    u->send_binary("stray");
    u->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*u).substr(0, 7), "ONLINE:");
    // Nothing reached the target, nothing is left on disk.
    v->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*v).substr(0, 7), "ONLINE:");
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);
}

TEST(Moonshare, AnUploadWithNoBytesTimesOut) {
    MoonshareConfig c;
    c.upload_timeout_s = 1;
    Fixture f(c);
    (void)f.token("idle-target");
    auto u = player(f, "idle-sender", 0);
    u->send_text(begin_msg("idle-target", "never.bin", 1000));
    EXPECT_EQ(next_text(*u), "file_receive_ready");
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 1);
    // Nothing is sent: the slot is given back and the sender told.
    EXPECT_EQ(next_text(*u, 10s), "FILE_FAILED: Upload timed out");
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);
    u->send_text(complete_msg("idle-target", "never.bin"));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Missing state for completion");
    // The connection goes on: a new upload works.
    u->send_text(begin_msg("idle-target", "now.bin", 3));
    EXPECT_EQ(next_text(*u), "file_receive_ready");
    u->send_binary("abc");
    u->send_text(complete_msg("idle-target", "now.bin"));
    EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
}

/// A sender that sends every byte and file_send_complete, then closes at once (while the server
/// still writes the file to disk): the file still reaches its target, online or offline.
void send_and_leave(Fixture& f, const std::string& from, const std::string& to,
                    const std::string& data) {
    const auto token = f.token(from);
    RawPlayer u(f.player_port(0));
    u.text(auth_msg(from, token));
    EXPECT_EQ(u.next_text(), ok_result(from));
    EXPECT_EQ(u.next_text(), instance_info("Alpha"));
    u.text(begin_msg(to, "leaving.bin", data.size()));
    EXPECT_EQ(u.next_text(), "file_receive_ready");
    constexpr std::size_t kFrame = 32 * 1024;
    std::string all;
    for (std::size_t off = 0; off < data.size(); off += kFrame) {
        const auto len = std::min(kFrame, data.size() - off);
        all += client_frame(off == 0 ? 0x2 : 0x0, data.substr(off, len), off + len == data.size());
    }
    all += client_frame(0x1, complete_msg(to, "leaving.bin"));
    all += client_frame(0x8, std::string("\x03\xe8", 2));  // close 1000, right behind
    u.write(all);
    u.drain();  // the server closes; what it answered is not read
}

TEST(Moonshare, ASenderLeavingAfterCompletionLosesNothing) {
    Fixture f;
    const auto data = pattern(6'000'000, 11);
    {
        auto v = player(f, "stays", 1);
        send_and_leave(f, "leaver", "stays", data);
        EXPECT_EQ(received_file(*v, "leaver", "leaving.bin", data.size()), data);
    }
    (void)f.token("offline");
    send_and_leave(f, "leaver2", "offline", data);
    auto w = player(f, "offline", 2);  // whenever the store finished, the file comes
    for (;;) {
        const auto m = next_text(*w);
        if (m.starts_with(R"({"type":"file_send_begin")")) {
            EXPECT_EQ(
                m,
                R"({"type":"file_send_begin","fileName":"leaving.bin","fromUserId":"leaver2","fileSize":6000000})");
            break;
        }
    }
    auto bytes = next(*w, 60s);
    ASSERT_TRUE(bytes && !bytes->text);
    EXPECT_EQ(bytes->data, data);
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);
}

TEST(Moonshare, AFileStoredWhileItsTargetAuthenticatesIsDeliveredAtOnce) {
    DiskGate gate(DiskGate::Step::kStoreUpload);
    Fixture f({}, "", gate.hook());
    OpenAtExit open_at_exit{gate};
    (void)f.token("arriving");
    auto u = player(f, "sender", 0);
    const auto data = pattern(100'000, 3);
    upload(*u, "arriving", "late.bin", data);
    ASSERT_TRUE(gate.wait_held()) << "the upload was never stored";
    // The target authenticates while the store is out: its session's delivery finds nothing.
    auto v = player(f, "arriving", 1);
    gate.open();
    EXPECT_EQ(next_text(*u), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(received_file(*v, "sender", "late.bin", data.size()), data);
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "stored"}}), 1);
}

TEST(Moonshare, ASenderLeavingWhileItsLastChunkIsWrittenLosesNothing) {
    DiskGate gate(DiskGate::Step::kWriteChunk);
    Fixture f({}, "", gate.hook());
    OpenAtExit open_at_exit{gate};
    const auto data = pattern(100'000, 4);  // one chunk
    (void)f.token("later");
    {
        auto u = player(f, "quick", 0);
        u->send_text(begin_msg("later", "quick.bin", data.size()));
        EXPECT_EQ(next_text(*u), "file_receive_ready");
        u->send_binary(data);
        ASSERT_TRUE(gate.wait_held()) << "the chunk was never written";
        u->send_text(complete_msg("later", "quick.bin"));
        u->close();
        // The connection ends while its write is out: the upload is finished without it.
        const auto until = Clock::now() + kDeadline;
        while (f.metric("hearth_moonshare_uploads") != 0) {
            ASSERT_LT(Clock::now(), until) << "the sender's connection never ended";
            std::this_thread::yield();
        }
    }
    gate.open();
    auto v = player(f, "later", 1);  // whenever the store finished, the file comes
    EXPECT_EQ(received_file(*v, "quick", "quick.bin", data.size()), data);
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "stored"}}), 1);
}

TEST(Moonshare, ARelayCutShortIsStoredAndDeliveredAtTheNextSession) {
    Fixture f;
    auto u = player(f, "relayer", 0);
    // More than loopback's socket buffers hold, so that the relay is still running when the
    // target goes.
    const auto data = pattern(32'000'000, 5);
    {
        const auto token = f.token("vanishing");
        RawPlayer v(f.player_port(1));
        v.text(auth_msg("vanishing", token));
        EXPECT_EQ(v.next_text(), ok_result("vanishing"));
        EXPECT_EQ(v.next_text(), instance_info("Beta"));
        upload(*u, "vanishing", "cut.bin", data);
        EXPECT_EQ(
            v.next_text(),
            R"({"type":"file_send_begin","fileName":"cut.bin","fromUserId":"relayer","fileSize":32000000})");
        // The target reads nothing more and leaves, mid-file.
    }
    EXPECT_EQ(next_text(*u, 60s), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "stored"}}), 1);
    auto v = player(f, "vanishing", 1);
    EXPECT_EQ(received_file(*v, "relayer", "cut.bin", data.size()), data);
}

TEST(Moonshare, ConnectToAnOverLongUserIdIsIgnored) {
    Fixture f;
    auto u = player(f, "asker", 0);
    u->send_text(R"({"type":"connect","targetUserId":")" + std::string(300, 'z') + R"("})");
    u->send_text(R"({"type":"list_online"})");
    EXPECT_EQ(next_text(*u), R"(ONLINE:["asker"])");  // no connect_rejected came first
    EXPECT_EQ(f.metric("hearth_moonshare_ignored_messages_total"), 1);
}

TEST(Moonshare, StorageQuotas) {
    MoonshareConfig c;
    c.max_stored_bytes_per_user = 1500;
    c.max_stored_bytes_total = 2500;
    Fixture f(c);
    (void)f.token("off1");
    (void)f.token("off2");
    auto u = player(f, "quota", 0);
    auto send = [&](const std::string& to, std::size_t n) {
        u->send_text(begin_msg(to, "f", n));
        auto ready = next_text(*u);
        if (ready != "file_receive_ready") {
            return ready;
        }
        u->send_binary(std::string(n, 'q'));
        u->send_text(complete_msg(to, "f"));
        return next_text(*u);
    };
    EXPECT_EQ(send("off1", 1000), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(send("off1", 600), "FILE_FAILED: Storage quota exceeded");  // 1600 > 1500 for off1
    EXPECT_EQ(send("off1", 500), "FILE_SENT_SERVER_ONLY");                // exactly 1500
    EXPECT_EQ(send("off2", 1001), "FILE_FAILED: Server storage full");    // 2501 > 2500 in all
    EXPECT_EQ(send("off2", 1000), "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(f.metric("hearth_moonshare_stored_bytes"), 2500);
}

// ---- who may list, and who holds a user id ---------------------------------------------------

/// A guest token for `user` issued by the account system directly, around the token endpoint
/// (as a token from before bindings existed, or from another tool, would be): valid, but not one
/// its user id's holder was issued.
std::string token_around_the_endpoint(Fixture& f, const std::string& user) {
    std::promise<std::string> issued;
    f.accounts().issue_guest_token(
        std::string(frontends::moonshare::kRealm), user, 3600s, auth::GuestTokenFormat::kHex128,
        [&issued](Result<auth::GuestToken> r) { issued.set_value(r ? r->token : std::string()); });
    auto done = issued.get_future();
    if (done.wait_for(kDeadline) != std::future_status::ready) {
        throw std::runtime_error("the account service did not issue a token");
    }
    return done.get();
}

/// Authenticates `user` with `token` on instance `i` from `local_address`; returns the client
/// after the result and connection_info.
std::unique_ptr<WsClient> player_with(Fixture& f, const std::string& user, const std::string& token,
                                      std::size_t i = 0,
                                      const std::string& local_address = "127.0.0.1") {
    auto c = std::make_unique<WsClient>(
        f.player_port(i), WsOptions{.path = "/player", .local_address = local_address});
    c->send_text(auth_msg(user, token));
    EXPECT_EQ(next_text(*c), ok_result(user));
    static const char* kNames[] = {"Alpha", "Beta", "Gamma"};
    EXPECT_EQ(next_text(*c), instance_info(kNames[i]));
    return c;
}

/// Reads `observer`'s user list pushes until one no longer lists `user` (it has left).
void wait_left(WsClient& observer, const std::string& user) {
    while (next_user_list(observer).find("\"" + user + "\"") != std::string::npos) {
    }
}

/// A gauge the ticker updates once a second: polls it until it is `value` or the deadline.
double wait_gauge(Fixture& f, const std::string& name, double value) {
    const auto until = Clock::now() + kDeadline;
    while (f.metric(name) != value && Clock::now() < until) {
        std::this_thread::sleep_for(10ms);
    }
    return f.metric(name);
}

const std::string kInvalidResult =
    R"({"type":"session_auth_result","success":false,"message":"Invalid session token"})";

TEST(Moonshare, ListingsBeforeAuthenticationShowNoUserIdsNorAddresses) {
    Fixture f;
    auto listed = player(f, "listed-user", 0);
    WsClient anonymous(f.player_port(1), {.path = "/player"});
    // Someone authenticates after the anonymous connection opened: no user_list_update reaches
    // it (the reply to list_online is the first message it gets).
    auto later = player(f, "later-user", 2);
    anonymous.send_text(R"({"type":"list_online"})");
    auto first = anonymous.read();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->data, "ONLINE:[]");
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "list_before_auth"}}), 1);
    // The gateway's listings, without the operator's token or with a wrong one.
    const auto gw = f.gateway_port();
    for (const std::string path : {"/players", "/sessions", "/PLAYERS/", "/Sessions"}) {
        auto r = http_request(gw, "GET", path);
        EXPECT_EQ(r.status, 401) << path;
        EXPECT_EQ(r.body, R"({"error":"Unauthorized"})") << path;
        EXPECT_EQ(r.headers["www-authenticate"], "Bearer") << path;
        EXPECT_EQ(r.headers["content-type"], "application/json") << path;
    }
    auto wrong = http_request(gw, "GET", "/players", "", {{"Authorization", "Bearer nope"}});
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "operator_token_missing"}}),
              4);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "operator_token_invalid"}}),
              1);
    // The auth server's /sessions (GET_SESSIONS) refuses the upgrade itself.
    {
        RawClient raw(f.auth_port());
        const auto head = raw.upgrade("/sessions");
        EXPECT_TRUE(head.starts_with("HTTP/1.1 401")) << head;
    }
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "operator_token_missing"}}),
              5);
    // What stays public holds no user id and no address.
    for (const std::string path : {"/players/count", "/server_info", "/player/status", "/ws"}) {
        if (path == "/ws") {
            WsClient w(gw, {.path = "/ws"});
            const auto pushed = w.read();
            ASSERT_TRUE(pushed);
            EXPECT_EQ(pushed->data.find("listed-user"), std::string::npos);
            EXPECT_EQ(pushed->data.find("127.0.0.1"), std::string::npos);
            continue;
        }
        const auto body = http_request(gw, "GET", path).body;
        EXPECT_EQ(body.find("listed-user"), std::string::npos) << path;
        EXPECT_EQ(body.find("127.0.0.1"), std::string::npos) << path;
    }
    // Operators see the user ids, and no address anywhere either.
    const auto players = http_request(gw, "GET", "/players", "", kOperator);
    EXPECT_EQ(players.status, 200);
    EXPECT_NE(players.body.find("listed-user"), std::string::npos);
    const auto sessions = http_request(gw, "GET", "/sessions", "", kOperator);
    EXPECT_EQ(sessions.status, 200);
    EXPECT_NE(sessions.body.find("listed-user"), std::string::npos);
    WsClient s(f.auth_port(), {.path = "/sessions", .headers = kOperator});
    s.send_text("GET_SESSIONS");
    const auto all = s.read();
    ASSERT_TRUE(all);
    EXPECT_NE(all->data.find("listed-user"), std::string::npos);
    for (const auto& body : {players.body, sessions.body, all->data}) {
        EXPECT_EQ(body.find("127.0.0.1"), std::string::npos) << body;
    }
}

TEST(Moonshare, ATokenForAHeldUserIdIsRefusedAndCannotClaimItsFiles) {
    Fixture f;
    // The victim's plugin got its token (from 127.0.0.1) and is offline now; a file waits for it.
    const auto victims = f.token("victim");
    auto sender = player(f, "sender", 0);
    const auto data = pattern(10'000, 21);
    upload(*sender, "victim", "secret.txt", data);
    EXPECT_EQ(next_text(*sender), "FILE_SENT_SERVER_ONLY");
    // Elsewhere, someone who saw the user id asks for a token for it: refused, on both paths.
    auto r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=victim");
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.body, R"({"error":"userId is held by another client"})");
    EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");
    r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=victim",
                          {{"Authorization", "Bearer 0123456789abcdef0123456789abcdef"}});
    EXPECT_EQ(r.status, 403);
    const auto others = f.token("sender");  // a valid token, of another user id
    r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=victim",
                          {{"Authorization", "Bearer " + others}});
    EXPECT_EQ(r.status, 403);
    {
        WsClient a(f.auth_port(), {.path = "/auth?userId=victim", .local_address = "127.0.0.2"});
        const auto closed = a.wait_closed();
        EXPECT_EQ(closed.code, 1008);
        EXPECT_EQ(closed.reason, "userId is held by another client");
    }
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_refused_total", {{"reason", "user_id_held"}}), 4);
    // A valid token for the user id that its holder was not issued is refused at session_auth,
    // and the file stays where it is.
    const auto minted = token_around_the_endpoint(f, "victim");
    ASSERT_TRUE(std::regex_match(minted, kHexToken));
    {
        WsClient m(f.player_port(2), {.path = "/player", .local_address = "127.0.0.2"});
        m.send_text(auth_msg("victim", minted));
        auto first = m.read();
        ASSERT_TRUE(first);
        EXPECT_EQ(first->data, kInvalidResult);  // no file_send_begin came before
        const auto code = m.wait_closed().code;
        EXPECT_TRUE(code == 0 || code == 1005) << code;
    }
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "not_token_holder"}}), 1);
    EXPECT_EQ(f.metric("hearth_moonshare_files_total", {{"outcome", "delivered_later"}}), 0);
    // The holder's own token gets the file.
    auto v = player_with(f, "victim", victims, 1);
    EXPECT_EQ(received_file(*v, "sender", "secret.txt", data.size()), data);
    // The refusals were logged, never with a token.
    const auto logs = http_request(f.gateway_port(), "GET", "/logs", "", kOperator).body;
    EXPECT_NE(logs.find("held by another client"), std::string::npos);
    EXPECT_NE(logs.find("not_token_holder"), std::string::npos);
    for (const auto& t : {victims, minted, others}) {
        EXPECT_EQ(logs.find(t), std::string::npos);
    }
    EXPECT_EQ(logs.find("127.0.0.2"), std::string::npos);  // nor the caller's address
}

TEST(Moonshare, AFileForAUserIdNobodyHoldsIsRefused) {
    Fixture f;
    auto u = player(f, "to-nobody", 0);
    u->send_text(begin_msg("never-seen", "drop.bin", 3));
    EXPECT_EQ(next_text(*u), "FILE_FAILED: Unknown recipient");
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "unknown_recipient"}}), 1);
    EXPECT_EQ(f.metric("hearth_moonshare_uploads"), 0);
    // Once the user id is held, files for it are taken.
    (void)f.token("never-seen");
    u->send_text(begin_msg("never-seen", "drop.bin", 3));
    EXPECT_EQ(next_text(*u), "file_receive_ready");
}

// The real plugin (FFXIV-Moonshare/Moonshare, UserSessionManager.cs): a new GUID as its user id
// at every start, a new token (GET /sessions?userId=) at every connection attempt, never the old
// one shown and never kept across a restart.

TEST(Moonshare, PluginFirstStartAndItsRetries) {
    Fixture f;
    const std::string me = "0f8fad5b-d9cb-469f-a165-70867728950e";
    auto buddy = player(f, "buddy", 1);
    // InitializeAsync asks for a token at each attempt (the first connection failed, say).
    const auto first = f.token(me);
    const auto second = f.token(me);
    EXPECT_NE(first, second);
    auto p = player_with(f, me, second, 0);
    std::string list;
    do {
        list = next_user_list(*buddy);
    } while (list.find(me) == std::string::npos);
    EXPECT_EQ(list, R"({"type":"user_list_update","users":[{"userId":")" + me +
                        R"(","userName":")" + me + R"("},{"userId":"buddy","userName":"buddy"}]})");
    // The earlier token is the holder's too.
    auto again = player_with(f, me, first, 2);
}

TEST(Moonshare, PluginReconnectGetsANewTokenAndItsFiles) {
    Fixture f;
    const std::string me = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    auto buddy = player(f, "reconnect-buddy", 1);
    {
        auto p = player(f, me, 0);
        p->send_text(R"({"type":"disconnect"})");  // the plugin's Disconnect button
        EXPECT_EQ(p->wait_closed().code, 1000);
    }
    wait_left(*buddy, me);  // offline: the file is stored
    const auto data = pattern(20'000, 22);
    upload(*buddy, me, "while-away.bin", data);
    EXPECT_EQ(next_text(*buddy), "FILE_SENT_SERVER_ONLY");
    // Connect again: a new token for the same GUID, from the same address, without the old one.
    auto p = player(f, me, 0);
    EXPECT_EQ(received_file(*p, "reconnect-buddy", "while-away.bin", data.size()), data);
}

TEST(Moonshare, PluginRestartIsAFirstStartAndBindingsSurviveAServerRestart) {
    TempDir keep;
    const std::string before = "16fd2706-8baf-433b-82eb-8c7fada847da";
    const std::string after = "886313e1-3b8a-5372-9b90-0c9aee199e5d";
    const auto data = pattern(5'000, 23);
    {
        Fixture f({}, keep.path());
        auto p = player(f, before, 0);
        auto buddy = player(f, "restart-buddy", 1);
        p->close();
        wait_left(*buddy, before);
        upload(*buddy, before, "kept.bin", data);
        EXPECT_EQ(next_text(*buddy), "FILE_SENT_SERVER_ONLY");
    }
    // The server restarted: the user id is still held, by the same client.
    Fixture f({}, keep.path());
    auto r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=" + before);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(f.metric("hearth_moonshare_bindings"), 2);
    auto p = player(f, before, 0);  // the plugin reconnects, same address
    EXPECT_EQ(received_file(*p, "restart-buddy", "kept.bin", data.size()), data);
    // The plugin restarts: a new GUID, a first start like any other.
    p->close();
    auto fresh = player(f, after, 2);
    EXPECT_EQ(wait_gauge(f, "hearth_moonshare_bindings", 3), 3);
}

TEST(Moonshare, ASecondDeviceRenewsWithTheHoldersToken) {
    Fixture f;
    const std::string me = "shared-user";
    const auto home_token = f.token(me);
    auto home = player_with(f, me, home_token, 0);
    // Elsewhere, showing the holder's token: a token of its own, by HTTP or /auth.
    auto r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=" + me,
                               {{"Authorization", "Bearer " + home_token}});
    ASSERT_EQ(r.status, 200) << r.body;
    const auto away_token = std::string(json::parse(r.body).as_object().at("token").as_string());
    {
        WsClient a(f.auth_port(), {.path = "/auth?userId=" + me,
                                   .headers = {{"Authorization", "Bearer " + home_token}},
                                   .local_address = "127.0.0.3"});
        auto m = a.read();
        ASSERT_TRUE(m);
        EXPECT_TRUE(m->data.starts_with(R"({"type":"session_token","token":")")) << m->data;
    }
    auto away = player_with(f, me, away_token, 1, "127.0.0.2");
    // Both devices are the user: a file goes to the most recent.
    auto buddy = player(f, "device-buddy", 2);
    const auto data = pattern(4'000, 24);
    upload(*buddy, me, "to-both.bin", data);
    EXPECT_EQ(received_file(*away, "device-buddy", "to-both.bin", data.size()), data);
    EXPECT_EQ(next_text(*buddy), "FILE_SENT");
    // The second device reconnects from its own address without a token, like the plugin.
    away->close();
    auto r2 = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=" + me);
    EXPECT_EQ(r2.status, 200) << r2.body;
    // A third address without a token is still refused.
    auto r3 = http_request_from("127.0.0.4", f.token_port(), "GET", "/sessions?userId=" + me);
    EXPECT_EQ(r3.status, 403);
}

TEST(Moonshare, BindingsAreBounded) {
    MoonshareConfig c;
    c.max_bindings = 2;
    Fixture f(c);
    const auto one = f.token("one");
    // Both authenticated: a binding whose tokens never did would make room for a new user id
    // (tests/abuse/moonshare_limits_test.cpp).
    (void)player_with(f, "one", one);
    (void)player_with(f, "two", f.token("two"));
    auto r = http_request(f.token_port(), "GET", "/sessions?userId=three");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, R"({"error":"Too many users, please try later"})");
    EXPECT_EQ(r.headers["retry-after"], "60");
    {
        WsClient a(f.auth_port(), {.path = "/auth?userId=three"});
        const auto closed = a.wait_closed();
        EXPECT_EQ(closed.code, 1013);
        EXPECT_EQ(closed.reason, "Too many users, please try later");
    }
    EXPECT_EQ(f.metric("hearth_moonshare_tokens_refused_total", {{"reason", "too_many_user_ids"}}),
              2);
    // Held user ids still renew; past four tokens, the oldest no longer authenticates.
    for (int i = 0; i < 4; ++i) {
        (void)f.token("one");
    }
    {
        WsClient old(f.player_port(0), {.path = "/player"});
        old.send_text(auth_msg("one", one));
        EXPECT_EQ(next_text(old), kInvalidResult);
    }
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "not_token_holder"}}), 1);
    // The gauges, within the documented bound (1 KiB per binding), once the ticker updated them.
    EXPECT_EQ(wait_gauge(f, "hearth_moonshare_bindings", 2), 2);
    EXPECT_GT(f.metric("hearth_moonshare_binding_bytes"), 0);
    EXPECT_LE(f.metric("hearth_moonshare_binding_bytes"), 2 * 1024);
}

TEST(Moonshare, ABindingEndsAfterItsTtlUnlessFilesWait) {
    MoonshareConfig c;
    c.binding_ttl_s = 1;
    c.token_ttl_s = 1;
    Fixture f(c);
    (void)f.token("kept");  // first: due before "brief"
    auto sender = player(f, "ttl-sender", 0);
    upload(*sender, "kept", "waiting.bin", "abc");
    EXPECT_EQ(next_text(*sender), "FILE_SENT_SERVER_ONLY");
    (void)f.token("brief");
    // Waits for the wall clock (the binding's lifetime), polling with a deadline: the sweep runs
    // every second.
    const auto until = Clock::now() + kDeadline;
    HttpResult r;
    while (Clock::now() < until) {
        r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=brief");
        if (r.status == 200) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(r.status, 200) << "the binding of \"brief\" never ended";
    // "kept" was due as early, but a file waits for it: still held.
    r = http_request_from("127.0.0.2", f.token_port(), "GET", "/sessions?userId=kept");
    EXPECT_EQ(r.status, 403);
}

TEST(Moonshare, GatewayLogsAndEventsNeedTheOperatorsToken) {
    Fixture f;
    const auto gw = f.gateway_port();
    const auto guest = f.token("not-an-operator");
    for (const std::string path : {"/logs", "/events/recent", "/Logs/"}) {
        auto none = http_request(gw, "GET", path);
        EXPECT_EQ(none.status, 401) << path;
        EXPECT_EQ(none.body, R"({"error":"Unauthorized"})");
        EXPECT_EQ(none.headers["www-authenticate"], "Bearer");
        auto wrong =
            http_request(gw, "GET", path, "", {{"Authorization", "Bearer " + kAdminToken + "x"}});
        EXPECT_EQ(wrong.status, 401) << path;
        // A valid token without the admin right (a Moonshare guest token).
        auto guest_r = http_request(gw, "GET", path, "", {{"Authorization", "Bearer " + guest}});
        EXPECT_EQ(guest_r.status, 403) << path;
        EXPECT_EQ(guest_r.body, R"({"error":"Forbidden"})");
        auto ok = http_request(gw, "GET", path, "", kOperator);
        EXPECT_EQ(ok.status, 200) << path;
        EXPECT_TRUE(json::parse(ok.body).is_array()) << ok.body;
    }
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "operator_token_missing"}}),
              3);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "operator_token_invalid"}}),
              3);
    EXPECT_EQ(f.metric("hearth_moonshare_refused_total", {{"reason", "not_operator"}}), 3);
    // An admin account's session token is an operator's token too.
    std::promise<std::string> logged_in;
    f.accounts().create_account(
        auth::NewAccount{
            .username = "ops", .password = "correct horse battery", .roles = {"admin"}},
        [&](Result<store::AccountRecord> created) {
            if (!created) {
                logged_in.set_value("");
                return;
            }
            f.accounts().login("ops", "correct horse battery", "127.0.0.1", "test",
                               [&](Result<auth::SessionToken> s) {
                                   logged_in.set_value(s ? s->token : std::string());
                               });
        });
    auto done = logged_in.get_future();
    ASSERT_EQ(done.wait_for(kDeadline), std::future_status::ready);
    const auto session = done.get();
    ASSERT_FALSE(session.empty());
    auto r =
        http_request(gw, "GET", "/events/recent", "", {{"Authorization", "Bearer " + session}});
    EXPECT_EQ(r.status, 200) << r.body;
}

// ---- the gateway ----------------------------------------------------------------------------

TEST(Moonshare, GatewayEndpoints) {
    Fixture f;
    auto p = player(f, "gw-user", 1);
    const auto port = f.gateway_port();
    auto get = [&](const std::string& path) {
        // The listings and the logs are for operators; the rest is public.
        auto r = http_request(port, "GET", path, "", kOperator);
        EXPECT_EQ(r.status, 200) << path << " " << r.body;
        EXPECT_EQ(r.headers["content-type"], "application/json") << path;
        return r.body;
    };
    EXPECT_EQ(get("/players/count"), R"({"count":1})");
    EXPECT_EQ(get("/PLAYERS/Count"), R"({"count":1})");  // case-insensitive
    const auto players = get("/players");
    EXPECT_TRUE(std::regex_match(
        players,
        std::regex(R"re(\[\{"userId":"gw-user","instance":"Beta","since":"[^"]+Z"\}\])re")))
        << players;
    const auto sessions = get("/Sessions");
    EXPECT_TRUE(std::regex_match(
        sessions,
        std::regex(
            R"re(\[\{"UserId":"gw-user","SessionToken":"sha256:[0-9a-f]{12}","CreatedAt":"[^"]+Z"\}\])re")))
        << sessions;
    const auto info = get("/server_info");
    EXPECT_TRUE(std::regex_match(
        info,
        std::regex(
            R"re(\{"total_players_online":1,"total_max_players":4500,"servers":\[\{"name":"Alpha","players_online":0,"max_players":1500,"server_version":"[^"]+","uptime_seconds":\d+,"status":"on"\},\{"name":"Beta","players_online":1,.*"name":"Gamma".*\]\})re")))
        << info;
    EXPECT_TRUE(std::regex_match(get("/uptime"), std::regex(R"re(\{"uptime":"00:00:\d\d"\})re")));
    const auto version = json::parse(get("/version")).as_object();
    EXPECT_TRUE(version.contains("lastUpdated"));
    EXPECT_TRUE(version.at("parsedData").as_object().contains("commit"));
    EXPECT_TRUE(json::parse(get("/ping")).as_object().at("latency_ms").is_int64());
    EXPECT_TRUE(json::parse(get("/logs")).is_array());
    EXPECT_TRUE(json::parse(get("/events/recent")).is_array());
    const auto status =
        json::parse(get("/player/status")).as_object().at("server_info").as_object();
    EXPECT_EQ(json::parse(status.at("rawData").as_string()), status.at("parsedData"));
    auto missing = http_request(port, "GET", "/nothing/here");
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(missing.body, R"({"error":"Not Found"})");
    EXPECT_EQ(missing.headers["content-type"], "application/json");
}

TEST(Moonshare, GatewayWebSocketPushesStatus) {
    Fixture f;
    WsClient w(f.gateway_port(), {.path = "/ws"});
    auto first = w.read();
    ASSERT_TRUE(first);
    auto o = json::parse(first->data).as_object();
    EXPECT_EQ(o.at("type").as_string(), "server_info");
    EXPECT_EQ(o.at("data").as_object().at("total_players_online").as_int64(), 0);
    auto p = player(f, "pushed", 2);
    for (;;) {  // pushes come within a second of a change
        auto m = w.read();
        ASSERT_TRUE(m);
        auto d = json::parse(m->data).as_object().at("data").as_object();
        if (d.at("total_players_online").as_int64() == 1) {
            break;
        }
    }
}

// ---- through the app (TestServer): the wiring in src/app/server_app.cpp ---------------------

TEST(Moonshare, ServedByTheApp) {
    TestServer s{{"moonshare.enabled", "true"},
                 {"moonshare.token_listen", "\"127.0.0.1:0\""},
                 {"moonshare.auth_listen", "\"127.0.0.1:0\""},
                 {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
                 {"moonshare.player_listen", R"(["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"])"}};
    auto& server = s.app().server();
    auto r = http_request(server.bound_port("moonshare-token"), "GET", "/sessions?userId=app");
    ASSERT_EQ(r.status, 200);
    const auto token = std::string(json::parse(r.body).as_object().at("token").as_string());
    WsClient p(server.bound_port("moonshare-gamma"), {.path = "/player"});
    p.send_text(auth_msg("app", token));
    EXPECT_EQ(next_text(p), ok_result("app"));
    EXPECT_EQ(next_text(p), instance_info("Gamma"));
    EXPECT_EQ(http_request(server.bound_port("moonshare-gateway"), "GET", "/players/count").body,
              R"({"count":1})");
}

// Port 5001 is Moonshare's Beta instance and HunterPie's listener by default: both front-ends
// share it (their paths differ), so both can be enabled on their defaults.
TEST(Moonshare, SharesAPortWithHunterPie) {
    std::uint16_t port = 0;
    {
        boost::asio::io_context io;
        boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    const std::string shared = "\"127.0.0.1:" + std::to_string(port) + "\"";
    TestServer s{{"moonshare.enabled", "true"},
                 {"moonshare.token_listen", "\"127.0.0.1:0\""},
                 {"moonshare.auth_listen", "\"127.0.0.1:0\""},
                 {"moonshare.gateway_listen", "\"127.0.0.1:0\""},
                 {"moonshare.player_listen", "[\"127.0.0.1:0\", " + shared + ", \"127.0.0.1:0\"]"},
                 {"hunterpie.enabled", "true"},
                 {"hunterpie.listen", shared}};
    auto& server = s.app().server();
    auto r = http_request(server.bound_port("moonshare-token"), "GET", "/sessions?userId=both");
    ASSERT_EQ(r.status, 200);
    const auto token = std::string(json::parse(r.body).as_object().at("token").as_string());
    WsClient p(port, {.path = "/player"});
    p.send_text(auth_msg("both", token));
    EXPECT_EQ(next_text(p), ok_result("both"));
    EXPECT_EQ(next_text(p), instance_info("Beta"));
    // HunterPie's routes on the same port.
    EXPECT_EQ(http_request(port, "GET", "/version").status, 200);
    WsClient hp(port, {.path = "/connect"});
    hp.send_text("ping");
    EXPECT_EQ(hp.read()->data, "pong");
}

}  // namespace
}  // namespace hearth::test
