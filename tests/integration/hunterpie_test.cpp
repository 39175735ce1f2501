// The HunterPie sync front-end with real clients: every row of the message table in its exact
// bytes, sessions, the HTTP pages, compression (with and without, in one session), the inactivity
// timeout and the operator notice endpoint.

#include <chrono>
#include <cstdio>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "net/server.hpp"
#include "net/ws_codec.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"
#include "util/log.hpp"

namespace hearth::test {
namespace {

constexpr std::string_view kLeaderJoin =
    R"({"sessionId":"host-abc","type":"SetSession","isLeader":true})";
constexpr std::string_view kMemberJoin =
    R"({"sessionId":"host-abc","type":"SetSession","isLeader":false})";
constexpr std::string_view kPush =
    R"({"sessionId":"host-abc","type":"Push","data":[["m1",[[0,99.5]],[[1,12]]]]})";

std::string state(bool leader, int players) {
    return std::string(R"({"type":"sessionstate","leaderConnected":)") +
           (leader ? "true" : "false") + R"(,"playersCount":)" + std::to_string(players) + "}";
}

Overrides with_hunterpie(Overrides extra) {
    Overrides all = {{"hunterpie.enabled", "true"}, {"hunterpie.listen", "\"127.0.0.1:0\""}};
    for (auto& [k, v] : extra) {
        all[k] = v;
    }
    return all;
}

/// The in-process server with the HunterPie front-end on its own port.
class Sync {
public:
    Sync() : server_(with_hunterpie({})) {}
    explicit Sync(Overrides extra) : server_(with_hunterpie(std::move(extra))) {}
    std::uint16_t port() { return server_.app().server().bound_port("hunterpie"); }
    TestServer& server() { return server_; }

private:
    TestServer server_;
};

/// A sync client over Beast's WebSocket client.
class Client {
public:
    explicit Client(std::uint16_t port, bool compression = false,
                    const std::string& path = "/connect?playerName=hunter")
        : ws_(port, WsOptions{.path = path, .compression = compression}) {}

    void send(std::string_view text) { ws_.send_text(std::string(text)); }
    /// The next text message; fails the test on close or deadline.
    std::string next() {
        auto m = ws_.read();
        if (!m) {
            ADD_FAILURE() << "connection closed: " << ws_.close_info()->code;
            return {};
        }
        EXPECT_TRUE(m->text);
        return m->data;
    }
    std::string call(std::string_view text) {
        send(text);
        return next();
    }
    /// A round trip: everything the server sent before the pong was read, and nothing was.
    void expect_nothing_pending() { EXPECT_EQ(call("ping"), "pong"); }
    WsClient& ws() { return ws_; }

private:
    WsClient ws_;
};

/// Joins `leader`, then each of `members`, to host-abc; every client already in the session gets
/// the new state at each join, and that is checked.
void join_party(Client& leader, std::initializer_list<Client*> members) {
    EXPECT_EQ(leader.call(kLeaderJoin), state(true, 1));
    std::vector<Client*> joined{&leader};
    for (Client* member : members) {
        const int players = static_cast<int>(joined.size()) + 1;
        EXPECT_EQ(member->call(kMemberJoin), state(true, players));
        for (Client* earlier : joined) {
            EXPECT_EQ(earlier->next(), state(true, players));
        }
        joined.push_back(member);
    }
}

/// Reads one whole server frame from a raw client.
RawFrame next_frame(RawClient& raw, std::string& buffered) {
    for (;;) {
        std::size_t used = 0;
        if (auto f = parse_server_frame(buffered, used)) {
            buffered.erase(0, used);
            return *f;
        }
        const std::string more = raw.read_exactly(1);
        if (more.empty()) {
            throw std::runtime_error("connection closed before a whole frame");
        }
        buffered += more;
    }
}

constexpr std::string_view kDeflateOffer =
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

TEST(HunterPie, VersionIsExactly01AsHtmlWithCors) {
    Sync s;
    auto r = http_request(s.port(), "GET", "/version");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "0.1");
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
}

TEST(HunterPie, StatusPageCountsSessionsSocketsAndPushedBytes) {
    Sync s;
    auto r = http_request(s.port(), "GET", "/");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
    EXPECT_TRUE(std::regex_match(r.body, std::regex("Sever is OK!<br>Active sessions: 0<br>Active "
                                                    "sockets: 0<br>Data pushed total: 0 "
                                                    "Bytes<br>Uptime: [0-9]+\\.[0-9]{2} sec")))
        << r.body;
    Client leader(s.port());
    Client member(s.port());
    join_party(leader, {&member});
    leader.send(kPush);
    EXPECT_EQ(member.next(), kPush);
    r = http_request(s.port(), "GET", "/");
    EXPECT_NE(r.body.find("Active sessions: 1<br>Active sockets: 2<br>Data pushed total: " +
                          std::to_string(kPush.size()) + " Bytes"),
              std::string::npos)
        << r.body;
}

TEST(HunterPie, PreflightsAreAnsweredWithCors) {
    Sync s;
    for (const char* path : {"/", "/version", "/connect"}) {
        auto r = http_request(s.port(), "OPTIONS", path, "",
                              {{"Origin", "http://example.org"},
                               {"Access-Control-Request-Method", "GET"},
                               {"Access-Control-Request-Headers", "content-type"}});
        EXPECT_EQ(r.status, 204) << path;
        EXPECT_EQ(r.headers["access-control-allow-origin"], "*") << path;
        EXPECT_EQ(r.headers["access-control-allow-headers"], "content-type") << path;
    }
}

TEST(HunterPie, UpgradeOnAnUnknownPathGets404) {
    Sync s;
    RawClient raw(s.port());
    EXPECT_EQ(raw.upgrade("/nope").rfind("HTTP/1.1 404", 0), 0u);
}

TEST(HunterPie, PathPrefixMovesEveryPath) {
    Sync s(Overrides{{"hunterpie.path_prefix", "\"/hp\""}});
    EXPECT_EQ(http_request(s.port(), "GET", "/hp/version").body, "0.1");
    EXPECT_EQ(http_request(s.port(), "GET", "/version").status, 404);
    Client c(s.port(), false, "/hp/connect");
    EXPECT_EQ(c.call("ping"), "pong");
}

TEST(HunterPie, TextPingIsAnsweredPongAndBinaryIsUnknown) {
    Sync s;
    Client c(s.port());
    EXPECT_EQ(c.call("ping"), "pong");
    c.ws().send_binary("ping");
    EXPECT_EQ(c.next(), R"({"type":"servermsg","level":"warn","text":"uknown message"})");
    c.ws().send_binary(std::string(kPush));
    EXPECT_EQ(c.next(), R"({"type":"servermsg","level":"warn","text":"uknown message"})");
}

TEST(HunterPie, InvalidJsonIsAnsweredAndTheConnectionKept) {
    Sync s;
    Client c(s.port());
    const std::string invalid = R"({"type":"servermsg","level":"warn","text":"invalid message"})";
    for (const char* bad :
         {"{nope", "[1,2]", "\"x\"", R"({"name":"x"})", R"({"type":5})", "pong"}) {
        EXPECT_EQ(c.call(bad), invalid) << bad;
    }
    EXPECT_EQ(c.call("ping"), "pong");
    EXPECT_EQ(s.server().metric("hearth_hunterpie_invalid_messages_total"), 6);
}

TEST(HunterPie, UnknownTypeIsNamedLowercased) {
    Sync s;
    Client c(s.port());
    EXPECT_EQ(c.call(R"({"type":"DoStuff"})"),
              R"({"type":"servermsg","level":"warn","text":"unexpected message type dostuff!"})");
}

TEST(HunterPie, SetNameHasNoReply) {
    Sync s;
    Client c(s.port());
    c.send(R"({"type":"SetName","name":"hunter"})");
    c.expect_nothing_pending();
}

TEST(HunterPie, JoiningSendsTheStateToEveryMember) {
    Sync s;
    Client leader(s.port());
    Client a(s.port());
    Client b(s.port());
    EXPECT_EQ(a.call(kMemberJoin), state(false, 1));
    EXPECT_EQ(leader.call(kLeaderJoin), state(true, 2));
    EXPECT_EQ(a.next(), state(true, 2));
    // The type is case-insensitive.
    EXPECT_EQ(b.call(R"({"sessionId":"host-abc","type":"setsession","isLeader":false})"),
              state(true, 3));
    EXPECT_EQ(a.next(), state(true, 3));
    EXPECT_EQ(leader.next(), state(true, 3));
    // Setting the same session again updates the flag and tells everyone again.
    EXPECT_EQ(leader.call(R"({"sessionId":"host-abc","type":"SETSESSION","isLeader":false})"),
              state(false, 3));
    EXPECT_EQ(a.next(), state(false, 3));
    EXPECT_EQ(b.next(), state(false, 3));
}

/// The hub's view of the `hunterpie:` topics through the operator API: "topic=count" by name.
std::string hub_topics(Sync& s) {
    auto r = http_request(s.server().port(), "GET", "/api/v1/topics?prefix=hunterpie:", "",
                          {{"Authorization", "Bearer topics-admin"}});
    EXPECT_EQ(r.status, 200) << r.body;
    std::string out;
    const auto page = boost::json::parse(r.body);
    for (const auto& t : page.at("items").as_array()) {
        out += std::string(t.at("topic").as_string()) + "=" +
               std::to_string(t.at("subscribers").as_int64()) + " ";
    }
    return out;
}

/// Polls the hub's view until it is `expected` (the hub applies membership asynchronously).
bool hub_topics_become(Sync& s, const std::string& expected) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
        if (hub_topics(s) == expected) {
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "the hub shows " << hub_topics(s) << ", not " << expected;
    return false;
}

TEST(HunterPie, SessionsAreMirroredAsHubTopics) {
    Sync s(Overrides{{"http.admin_token", "\"topics-admin\""}});
    Client leader(s.port(), false, "/connect?playerName=Leader");
    Client a(s.port(), false, "/connect?playerName=Member");
    join_party(leader, {&a});
    EXPECT_TRUE(hub_topics_become(s, "hunterpie:host-abc=2 "));
    auto r = http_request(s.server().port(), "GET",
                          "/api/v1/topics/subscribers?topic=hunterpie:host-abc", "",
                          {{"Authorization", "Bearer topics-admin"}});
    ASSERT_EQ(r.status, 200);
    std::set<std::string> principals;
    const auto members = boost::json::parse(r.body);
    for (const auto& m : members.at("items").as_array()) {
        principals.insert(std::string(m.at("principal").as_string()));
    }
    EXPECT_EQ(principals, (std::set<std::string>{"Leader", "Member"}));
    // Moving to another session moves the membership; leaving ends it.
    EXPECT_EQ(a.call(R"({"sessionId":"other","type":"setsession","isLeader":false})"),
              state(false, 1));
    EXPECT_TRUE(hub_topics_become(s, "hunterpie:host-abc=1 hunterpie:other=1 "));
    a.send(R"({"type":"leavesession"})");
    a.ws().wait_closed();
    EXPECT_TRUE(hub_topics_become(s, "hunterpie:host-abc=1 "));
    leader.ws().close();
    leader.ws().wait_closed();
    EXPECT_TRUE(hub_topics_become(s, ""));
}

TEST(HunterPie, PushGoesByteForByteToNonLeaderMembersButTheSender) {
    Sync s;
    Client leader(s.port());
    Client other_leader(s.port());
    Client a(s.port());
    Client b(s.port());
    Client outsider(s.port());
    EXPECT_EQ(leader.call(kLeaderJoin), state(true, 1));
    EXPECT_EQ(other_leader.call(kLeaderJoin), state(true, 2));
    EXPECT_EQ(leader.next(), state(true, 2));
    EXPECT_EQ(a.call(kMemberJoin), state(true, 3));
    EXPECT_EQ(leader.next(), state(true, 3));
    EXPECT_EQ(other_leader.next(), state(true, 3));
    EXPECT_EQ(b.call(kMemberJoin), state(true, 4));
    EXPECT_EQ(leader.next(), state(true, 4));
    EXPECT_EQ(other_leader.next(), state(true, 4));
    EXPECT_EQ(a.next(), state(true, 4));
    // Odd spacing and key order: forwarded as sent, not re-serialised.
    const std::string odd =
        R"({ "type" : "push", "data" : {"b":1, "a":[1.50,2]}, "sessionId":"host-abc" })";
    for (std::string_view push : {kPush, std::string_view(odd)}) {
        leader.send(push);
        EXPECT_EQ(a.next(), push);
        EXPECT_EQ(b.next(), push);
    }
    // A member may push too (no membership or leader check): the others get it, not the leaders.
    a.send(kPush);
    EXPECT_EQ(b.next(), kPush);
    // Even from outside the session.
    outsider.send(kPush);
    EXPECT_EQ(a.next(), kPush);
    EXPECT_EQ(b.next(), kPush);
    for (Client* c : {&leader, &other_leader, &a, &b, &outsider}) {
        c->expect_nothing_pending();
    }
}

TEST(HunterPie, PushToAnUnknownSessionDoesNothing) {
    Sync s;
    Client c(s.port());
    c.send(R"({"sessionId":"nobody","type":"Push","data":[]})");
    c.send(R"({"type":"Push","data":[]})");
    c.expect_nothing_pending();
}

TEST(HunterPie, EmptySessionIdIsRefusedAndLeavesTheSession) {
    Sync s;
    Client leader(s.port());
    Client a(s.port());
    join_party(leader, {&a});
    const std::string refused =
        R"({"type":"servermsg","level":"warn","text":"Session id cannot be empty!"})";
    EXPECT_EQ(a.call(R"({"sessionId":"","type":"SetSession","isLeader":false})"), refused);
    EXPECT_EQ(leader.next(), state(true, 1));
    EXPECT_EQ(a.call(R"({"type":"SetSession"})"), refused);
    a.expect_nothing_pending();
    // No longer a member: pushes do not reach it.
    leader.send(kPush);
    a.expect_nothing_pending();
}

TEST(HunterPie, SwitchingSessionsNotifiesTheOldOne) {
    Sync s;
    Client leader(s.port());
    Client a(s.port());
    join_party(leader, {&a});
    EXPECT_EQ(a.call(R"({"sessionId":"other","type":"SetSession","isLeader":false})"),
              state(false, 1));
    EXPECT_EQ(leader.next(), state(true, 1));
}

TEST(HunterPie, LeaveSessionNotifiesAndClosesWithoutAStatusCode) {
    Sync s;
    Client leader(s.port());
    Client a(s.port());
    join_party(leader, {&a});
    a.send(R"({"type":"LeaveSession"})");
    // An empty close frame: Beast reports "no code" as 0 (the bytes are checked in the next
    // test).
    const auto code = a.ws().wait_closed().code;
    EXPECT_TRUE(code == 0 || code == 1005) << code;
    EXPECT_EQ(leader.next(), state(true, 1));
}

TEST(HunterPie, LeaveSessionSendsAnEmptyCloseFrame) {
    Sync s;
    RawClient raw(s.port());
    ASSERT_EQ(raw.upgrade("/connect").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(client_frame(0x1, R"({"type":"LeaveSession"})"));
    std::string buffered;
    auto f = next_frame(raw, buffered);
    EXPECT_EQ(f.opcode, 0x8);
    EXPECT_EQ(f.payload, "");
}

TEST(HunterPie, CloseNotifiesTheRestAndAnEmptySessionIsRemoved) {
    Sync s;
    Client leader(s.port());
    {
        Client a(s.port());
        join_party(leader, {&a});
        a.ws().close();
    }
    EXPECT_EQ(leader.next(), state(true, 1));
    leader.ws().close();
    leader.ws().wait_closed();
    // The server's on_close may still be running: poll the page with a deadline.
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    std::string body;
    while (std::chrono::steady_clock::now() < until) {
        body = http_request(s.port(), "GET", "/").body;
        if (body.find("Active sessions: 0<br>Active sockets: 0") != std::string::npos) {
            break;
        }
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_NE(body.find("Active sessions: 0<br>Active sockets: 0"), std::string::npos) << body;
}

TEST(HunterPie, InactiveConnectionsAreClosedAndLeave) {
    Sync s(Overrides{{"hunterpie.socket_timeout_s", "1"}});
    Client leader(s.port());
    EXPECT_EQ(leader.call(kLeaderJoin), state(true, 1));
    Client quiet(s.port());
    EXPECT_EQ(quiet.call(kMemberJoin), state(true, 2));
    EXPECT_EQ(leader.next(), state(true, 2));
    // The leader stays alive with ping frames only (as the real client does), the member sends
    // nothing and is closed.
    RawClient pinger(s.port());
    ASSERT_EQ(pinger.upgrade("/connect").rfind("HTTP/1.1 101", 0), 0u);
    std::string buffered;
    const auto start = std::chrono::steady_clock::now();
    bool got_state = false;
    while (std::chrono::steady_clock::now() - start < 2500ms) {
        leader.ws().send_text("ping");  // keep the leader alive with text pings
        pinger.write(client_frame(0x9, "12345678"));
        auto f = next_frame(pinger, buffered);
        EXPECT_EQ(f.opcode, 0xA);  // pong, and the connection is alive
        EXPECT_EQ(f.payload, "12345678");
        for (;;) {
            auto m = leader.next();
            if (m == "pong") {
                break;
            }
            EXPECT_EQ(m, state(true, 1));
            got_state = true;
        }
        std::this_thread::sleep_for(300ms);  // pacing, not synchronisation
    }
    // The member leaves once its closing handshake ends (the server waits for its close frame).
    EXPECT_EQ(quiet.ws().wait_closed().code, 1001);
    if (!got_state) {
        EXPECT_EQ(leader.next(), state(true, 1));
    }
    pinger.write(client_frame(0x1, "ping"));
    auto f = next_frame(pinger, buffered);
    EXPECT_EQ(f.payload, "pong");
}

TEST(HunterPie, CompressedAndPlainClientsShareASession) {
    Sync s;
    Client leader(s.port(), true);
    Client zipped(s.port(), true);
    Client plain(s.port(), false);
    EXPECT_NE(
        zipped.ws().upgrade_headers().at("sec-websocket-extensions").find("permessage-deflate"),
        std::string::npos);
    EXPECT_EQ(plain.ws().upgrade_headers().count("sec-websocket-extensions"), 0u);
    join_party(leader, {&zipped, &plain});
    std::string big = R"({"sessionId":"host-abc","type":"Push","data":[)";
    for (int i = 0; i < 40; ++i) {
        big += (i ? "," : "") + std::string(R"(["m)") + std::to_string(i) +
               R"(",[[0,99.5],[1,1200.25]],[[1,12]]])";
    }
    big += "]}";
    leader.send(big);
    EXPECT_EQ(zipped.next(), big);
    EXPECT_EQ(plain.next(), big);
}

// A push is written to a member's socket by the leader's io thread when the member has nothing
// queued. Members that stop reading fill their socket buffers: those writes end half done, the
// rest of the frame must still be the next bytes on the wire, and later pushes queue behind it
// (and are dropped at the outbox bound). Every frame a member reads must be whole and in order.
TEST(HunterPie, PushesToMembersThatStopReadingArriveWholeAndInOrder) {
    Sync s({{"websocket.max_message_bytes", "1048576"},
            {"websocket.max_outbound_bytes", "1048576"},
            {"websocket.overflow_policy", "\"drop\""},
            {"websocket.max_messages_per_s", "0"},
            // 39 MB pushed as fast as the leader can: the subject is slow readers, not rates.
            {"websocket.max_bytes_per_s", "0"}});
    Client leader(s.port());
    // With two io threads, at least one of two members is on another thread than the leader.
    Client a(s.port(), true);
    Client b(s.port(), false);
    join_party(leader, {&a, &b});

    auto push = [](int seq) {
        // Pseudo-random letters: deflate cannot shrink them much, and a misplaced piece of one
        // frame cannot pass for another.
        std::string pad(64 * 1024 + static_cast<std::size_t>(seq) * 7, 'a');
        std::uint32_t x = 2463534242u + static_cast<std::uint32_t>(seq);
        for (char& c : pad) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            c = static_cast<char>('a' + x % 26);
        }
        return R"({"sessionId":"host-abc","type":"Push","seq":)" + std::to_string(seq) +
               R"(,"pad":")" + pad + R"("})";
    };
    constexpr int kPushes = 600;  // 24 MB for each member: more than loopback buffers hold
    for (int seq = 0; seq < kPushes; ++seq) {
        leader.send(push(seq));
    }
    leader.expect_nothing_pending();  // the server has handled every push
    EXPECT_GT(s.server().metric("hearth_hunterpie_push_dropped_total"), 0)
        << "the members' buffers never filled: the test did not reach its subject";

    for (Client* member : {&a, &b}) {
        // The pong is queued behind everything the member has not read yet.
        member->send("ping");
        int last = -1;
        int received = 0;
        for (std::string m = member->next(); m != "pong"; m = member->next()) {
            ASSERT_TRUE(m.starts_with(R"({"sessionId":"host-abc","type":"Push","seq":)"))
                << m.substr(0, 80);
            const int seq = std::stoi(m.substr(m.find("\"seq\":") + 6));
            ASSERT_GT(seq, last) << "out of order after " << received << " pushes";
            ASSERT_EQ(m, push(seq)) << "push " << seq << " arrived damaged";
            last = seq;
            ++received;
        }
        EXPECT_GT(received, 0);
        EXPECT_LT(received, kPushes) << "this member's buffers never filled";
    }
    // Drained, the members get the next push at once again.
    leader.send(push(kPushes));
    EXPECT_EQ(a.next(), push(kPushes));
    EXPECT_EQ(b.next(), push(kPushes));
}

TEST(HunterPie, CompressionNoContextTakeoverThresholdAndASharedFrame) {
    Sync s;
    RawClient r1(s.port());
    RawClient r2(s.port());
    Client leader(s.port());
    for (RawClient* r : {&r1, &r2}) {
        const auto head = r->upgrade("/connect?playerName=raw", std::string(kDeflateOffer));
        ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
        EXPECT_NE(head.find("permessage-deflate"), std::string::npos) << head;
        EXPECT_NE(head.find("server_no_context_takeover"), std::string::npos) << head;
        EXPECT_NE(head.find("client_no_context_takeover"), std::string::npos) << head;
    }
    std::string b1;
    std::string b2;
    // "pong" is under 50 bytes: uncompressed.
    r1.write(client_frame(0x1, "ping"));
    auto pong = next_frame(r1, b1);
    EXPECT_FALSE(pong.rsv1);
    EXPECT_EQ(pong.payload, "pong");
    EXPECT_EQ(leader.call(kLeaderJoin), state(true, 1));
    r1.write(client_frame(0x1, std::string(kMemberJoin)));
    auto st = next_frame(r1, b1);  // 63 bytes: compressed
    EXPECT_TRUE(st.rsv1);
    EXPECT_EQ(leader.next(), state(true, 2));
    r2.write(client_frame(0x1, std::string(kMemberJoin)));
    (void)next_frame(r2, b2);
    (void)next_frame(r1, b1);
    EXPECT_EQ(leader.next(), state(true, 3));
    // Two pushes of the same bytes: with no context takeover every copy compresses the same.
    leader.send(kPush);
    leader.send(kPush);
    auto p1 = next_frame(r1, b1);
    auto p2 = next_frame(r2, b2);
    auto p1b = next_frame(r1, b1);
    EXPECT_TRUE(p1.rsv1);
    EXPECT_TRUE(p2.rsv1);
    EXPECT_EQ(p1.payload, p2.payload);
    EXPECT_EQ(p1.payload, p1b.payload);
    EXPECT_LT(p1.payload.size(), kPush.size());
    // A push under the threshold goes uncompressed.
    const std::string tiny = R"({"sessionId":"host-abc","type":"push"})";
    ASSERT_LT(tiny.size(), 50u);
    leader.send(tiny);
    auto t = next_frame(r1, b1);
    EXPECT_FALSE(t.rsv1);
    EXPECT_EQ(t.payload, tiny);
}

TEST(HunterPie, ServermsgNeedsTheAdminToken) {
    Sync s;  // no admin_token: refuses everything
    auto r = http_request(s.server().port(), "POST", "/api/v1/hunterpie/servermsg",
                          R"({"text":"x","level":"info"})", {{"Authorization", "Bearer "}});
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find(R"("code":"unauthorized")"), std::string::npos) << r.body;
}

TEST(HunterPie, ServermsgReachesEveryoneOrOneSession) {
    Sync s(Overrides{{"http.admin_token", "\"s3cret\""}});
    const std::map<std::string, std::string> auth = {{"Authorization", "Bearer s3cret"}};
    const auto port = s.server().port();
    auto post = [&](const std::string& body, const std::map<std::string, std::string>& h) {
        return http_request(port, "POST", "/api/v1/hunterpie/servermsg", body, h);
    };
    EXPECT_EQ(post(R"({"text":"x","level":"info"})", {{"Authorization", "Bearer wrong"}}).status,
              401);
    EXPECT_EQ(post(R"({"text":"x","level":"info"})", {}).status, 401);
    EXPECT_EQ(post(R"({"text":"x","level":"loud"})", auth).status, 400);
    EXPECT_EQ(post(R"({"level":"info"})", auth).status, 400);
    EXPECT_EQ(post("{nope", auth).status, 400);

    Client a(s.port());
    Client b(s.port());
    EXPECT_EQ(a.call(kMemberJoin), state(false, 1));
    b.expect_nothing_pending();  // both are open
    auto r = post(R"({"text":"Maintenance in 5 \"min\"","level":"warn"})", auth);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"delivered":2})");
    const std::string all =
        R"({"type":"servermsg","level":"warn","text":"Maintenance in 5 \"min\""})";
    EXPECT_EQ(a.next(), all);
    EXPECT_EQ(b.next(), all);
    r = post(R"({"text":"hi","level":"info","sessionId":"host-abc"})", auth);
    EXPECT_EQ(r.body, R"({"delivered":1})");
    EXPECT_EQ(a.next(), R"({"type":"servermsg","level":"info","text":"hi"})");
    b.expect_nothing_pending();
}

TEST(HunterPie, TheLoadGeneratorPlaysBothRoles) {
    // A short run of each role (at the plugin's pace, then as fast as the window allows): the
    // tool works and its figures add up. The deadline is `timeout`'s.
    Sync s(Overrides{{"websocket.max_messages_per_s", "0"}});
    const std::vector<std::vector<std::string>> roles{
        {"hunterpie-member", "--interval-ms", "150"},
        {"hunterpie-member", "--interval-ms", "150", "--stagger"},
        {"hunterpie-leader", "--interval-ms", "0", "--window", "8"}};
    for (auto args : roles) {
        const std::string role = args.front();
        args.insert(args.end(), {"--url", "ws://127.0.0.1:" + std::to_string(s.port()) + "/connect",
                                 "--sessions", "3", "--members", "2", "--duration", "1", "--json"});
        const auto run = run_bench(args);
        ASSERT_EQ(run.exit_code, 0) << role << ": " << run.out;
        const auto report = report_of(run);
        const auto& out = run.out;
        EXPECT_GE(report.at("pushes_sent").as_int64(), 9) << out;  // 3 leaders, 1 s, 150 ms
        EXPECT_EQ(report.at("pushes_delivered"), report.at("pushes_expected")) << out;
        EXPECT_EQ(report.at("errors").as_int64(), 0) << out;
        EXPECT_EQ(report.at("stagger").as_bool(),
                  std::find(args.begin(), args.end(), "--stagger") != args.end())
            << out;
    }
}

/// Reads /logs/listen frames until one holds a server line containing `needle`; false on close or
/// past the deadline.
bool server_line_seen(WsClient& logs, const std::string& needle) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
        auto m = logs.read(std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now()));
        if (!m) {
            return false;
        }
        if (m->data.find(needle) != std::string::npos) {
            return true;
        }
    }
    return false;
}

TEST(HunterPie, PlayerNameNamesTheConnectionInTheServerLog) {
    // The CLI applies server.log_level at startup; an in-process server leaves it to the test.
    ASSERT_TRUE(util::set_log_level("debug"));
    // The server's own lines are an operator's ([logs] public_server_lines is off by default).
    Sync s(Overrides{{"http.admin_token", "\"operator\""}});
    WsClient logs(s.server().port(), WsOptions{.path = "/logs/listen",
                                               .headers = {{"Authorization", "Bearer operator"}}});
    Client named(s.port(), false, "/connect?playerName=Zed-42");
    EXPECT_EQ(named.call("ping"), "pong");
    EXPECT_TRUE(server_line_seen(logs, "connected as Zed-42"));
    Client anonymous(s.port(), false, "/connect");
    EXPECT_EQ(anonymous.call("ping"), "pong");
    EXPECT_TRUE(server_line_seen(logs, "connected as player-"));
}

TEST(HunterPie, ReloadAppliesTheAdminTokenAndTheTimeout) {
    Sync s(Overrides{{"http.admin_token", "\"old\""}});
    Client c(s.port());
    EXPECT_EQ(c.call("ping"), "pong");
    auto schema = app::make_schema();
    TempDir dir;
    auto next = schema.load_string(
        test_config_toml(
            with_hunterpie({{"http.admin_token", "\"new\""}, {"hunterpie.socket_timeout_s", "1"}}),
            dir.path()),
        "reload.toml", {});
    ASSERT_TRUE(next.config) << (next.errors.empty() ? "" : next.errors[0]);
    s.server().app().apply(next.config);
    const auto port = s.server().port();
    const std::string body = R"({"text":"x","level":"info"})";
    EXPECT_EQ(http_request(port, "POST", "/api/v1/hunterpie/servermsg", body,
                           {{"Authorization", "Bearer old"}})
                  .status,
              401);
    EXPECT_EQ(http_request(port, "POST", "/api/v1/hunterpie/servermsg", body,
                           {{"Authorization", "Bearer new"}})
                  .status,
              200);
    EXPECT_EQ(c.next(), R"({"type":"servermsg","level":"info","text":"x"})");
    // A new connection gets the new timeout.
    Client later(s.port());
    EXPECT_EQ(later.call("ping"), "pong");
    EXPECT_EQ(later.ws().wait_closed().code, 1001);
}

// ---- a compressed push is forwarded as the leader compressed it -------------------------------

/// A masked client frame with RSV1 (a permessage-deflate message).
std::string compressed_client_frame(const std::string& deflated) {
    return net::ws::encode_client_frame(net::ws::Opcode::kText, deflated, {0x11, 0x22, 0x33, 0x44},
                                        true, true);
}

/// A raw client that negotiated permessage-deflate on /connect.
struct RawDeflateClient {
    explicit RawDeflateClient(std::uint16_t port) : raw(port) {
        const auto head = raw.upgrade("/connect?playerName=raw", std::string(kDeflateOffer));
        EXPECT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
        EXPECT_NE(head.find("client_no_context_takeover"), std::string::npos) << head;
    }
    RawFrame next() { return next_frame(raw, buffered); }
    /// The next message's text, inflated when it came compressed.
    std::string next_text() {
        const RawFrame f = next();
        if (!f.rsv1) {
            return f.payload;
        }
        std::string out;
        EXPECT_EQ(inflater.inflate(f.payload, 1 << 20, out), net::ws::Inflater::Status::kOk);
        return out;
    }

    RawClient raw;
    std::string buffered;
    net::ws::Inflater inflater;
};

/// A push of about `n` bytes shaped like the plugin's.
std::string plugin_push(std::size_t n) {
    std::string push = R"({"sessionId":"host-abc","type":"Push","data":[)";
    for (int i = 0; push.size() + 60 < n; ++i) {
        push += (i ? "," : "") + std::string(R"(["m)") + std::to_string(i) + R"(",[[0,)" +
                std::to_string(1000 + i * 37 % 911) + R"(.25],[1,)" + std::to_string(i * 53 % 97) +
                R"(]],[[1,)" + std::to_string(i % 7) + "]]]";
    }
    return push + "]}";
}

/// A raw deflate of `m` that is not the server's own (two self-contained halves, each ending with
/// a sync flush): a member receiving these exact bytes got the leader's frame, not a re-deflate.
std::string leaders_deflate(std::string_view m) {
    const std::size_t half = m.size() / 2;
    return net::ws::deflate_message(m.substr(0, half)) + std::string("\x00\x00\xFF\xFF", 4) +
           net::ws::deflate_message(m.substr(half));
}

TEST(HunterPie, ACompressedPushReachesCompressingMembersAsTheLeaderCompressedIt) {
    Sync s;
    RawDeflateClient leader(s.port());
    RawDeflateClient zipped(s.port());
    RawDeflateClient zipped2(s.port());
    Client plain(s.port(), false);
    leader.raw.write(client_frame(0x1, std::string(kLeaderJoin)));
    EXPECT_EQ(leader.next_text(), state(true, 1));
    zipped.raw.write(client_frame(0x1, std::string(kMemberJoin)));
    EXPECT_EQ(zipped.next_text(), state(true, 2));
    EXPECT_EQ(leader.next_text(), state(true, 2));
    zipped2.raw.write(client_frame(0x1, std::string(kMemberJoin)));
    EXPECT_EQ(zipped2.next_text(), state(true, 3));
    EXPECT_EQ(zipped.next_text(), state(true, 3));
    EXPECT_EQ(leader.next_text(), state(true, 3));
    EXPECT_EQ(plain.call(kMemberJoin), state(true, 4));
    for (RawDeflateClient* c : {&leader, &zipped, &zipped2}) {
        EXPECT_EQ(c->next_text(), state(true, 4));
    }

    const std::string push = plugin_push(2048);
    const std::string deflated = leaders_deflate(push);
    ASSERT_NE(deflated, net::ws::deflate_message(push));
    ASSERT_LT(deflated.size(), push.size());
    leader.raw.write(compressed_client_frame(deflated));
    for (RawDeflateClient* c : {&zipped, &zipped2}) {
        const RawFrame f = c->next();
        EXPECT_TRUE(f.rsv1);
        EXPECT_EQ(f.opcode, 0x1);
        EXPECT_EQ(f.payload, deflated);  // the leader's bytes, not a new deflate
        std::string inflated;
        ASSERT_EQ(c->inflater.inflate(f.payload, 1 << 20, inflated),
                  net::ws::Inflater::Status::kOk);
        EXPECT_EQ(inflated, push);
    }
    EXPECT_EQ(plain.next(), push);  // the same bytes, uncompressed
    EXPECT_EQ(s.server().metric("hearth_hunterpie_push_deliveries_total"), 3);
    EXPECT_EQ(s.server().metric("hearth_hunterpie_pushed_bytes_total"),
              static_cast<double>(push.size()));

    // The leader's uncompressed push still reaches compressing members compressed (the server's
    // own deflate), and the plain member as it was.
    leader.raw.write(client_frame(0x1, push));
    for (RawDeflateClient* c : {&zipped, &zipped2}) {
        const RawFrame f = c->next();
        EXPECT_TRUE(f.rsv1);
        EXPECT_EQ(f.payload, net::ws::deflate_message(push));
    }
    EXPECT_EQ(plain.next(), push);
    plain.expect_nothing_pending();
    leader.raw.write(client_frame(0x1, "ping"));
    EXPECT_EQ(leader.next_text(), "pong");  // the sender got nothing else back
}

TEST(HunterPie, ACompressedPushUnderTheThresholdGoesOutUncompressed) {
    Sync s;
    RawDeflateClient leader(s.port());
    RawDeflateClient zipped(s.port());
    leader.raw.write(client_frame(0x1, std::string(kLeaderJoin)));
    EXPECT_EQ(leader.next_text(), state(true, 1));
    zipped.raw.write(client_frame(0x1, std::string(kMemberJoin)));
    EXPECT_EQ(zipped.next_text(), state(true, 2));
    EXPECT_EQ(leader.next_text(), state(true, 2));
    // The threshold is about what the server sends: a short push goes out uncompressed, however
    // it arrived.
    const std::string tiny = R"({"sessionId":"host-abc","type":"push"})";
    ASSERT_LT(tiny.size(), 50u);
    leader.raw.write(compressed_client_frame(net::ws::deflate_message(tiny)));
    RawFrame f = zipped.next();
    EXPECT_FALSE(f.rsv1);
    EXPECT_EQ(f.payload, tiny);
    // Repetitive enough to deflate smaller than itself, and under a threshold of 100.
    const std::string tiny2 =
        R"({"sessionId":"host-abc","type":"push","data":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})";
    ASSERT_LT(tiny2.size(), 100u);
    ASSERT_LT(net::ws::deflate_message(tiny2).size(), tiny2.size());
    Sync t(Overrides{{"hunterpie.compression_threshold_bytes", "100"}});
    RawDeflateClient leader2(t.port());
    RawDeflateClient zipped3(t.port());
    leader2.raw.write(client_frame(0x1, std::string(kLeaderJoin)));
    EXPECT_EQ(leader2.next_text(), state(true, 1));
    zipped3.raw.write(client_frame(0x1, std::string(kMemberJoin)));
    EXPECT_EQ(zipped3.next_text(), state(true, 2));
    EXPECT_EQ(leader2.next_text(), state(true, 2));
    leader2.raw.write(compressed_client_frame(net::ws::deflate_message(tiny2)));
    f = zipped3.next();
    EXPECT_FALSE(f.rsv1);
    EXPECT_EQ(f.payload, tiny2);
}

TEST(HunterPie, ACompressedPushBiggerThanItsTextIsDeflatedByTheServer) {
    Sync s;
    RawDeflateClient leader(s.port());
    RawDeflateClient zipped(s.port());
    leader.raw.write(client_frame(0x1, std::string(kLeaderJoin)));
    EXPECT_EQ(leader.next_text(), state(true, 1));
    zipped.raw.write(client_frame(0x1, std::string(kMemberJoin)));
    EXPECT_EQ(zipped.next_text(), state(true, 2));
    EXPECT_EQ(leader.next_text(), state(true, 2));
    // Stored (uncompressed) deflate blocks: valid, but forwarding them would send more bytes
    // than the text.
    const std::string push = plugin_push(600);
    std::string stored(1, '\x00');
    const auto n = static_cast<std::uint16_t>(push.size());
    stored += static_cast<char>(n & 0xFF);
    stored += static_cast<char>(n >> 8);
    stored += static_cast<char>(~n & 0xFF);
    stored += static_cast<char>((~n >> 8) & 0xFF);
    stored += push;
    stored += '\x00';
    leader.raw.write(compressed_client_frame(stored));
    const RawFrame f = zipped.next();
    EXPECT_TRUE(f.rsv1);
    EXPECT_EQ(f.payload, net::ws::deflate_message(push));
}

TEST(HunterPie, EveryAcceptedOfferIsAnsweredWithClientNoContextTakeover) {
    Sync s;
    for (const std::string offer : {
             "permessage-deflate",
             "permessage-deflate; client_max_window_bits",
             "permessage-deflate; client_max_window_bits=10",
             "permessage-deflate; server_max_window_bits=15",
             "permessage-deflate; server_no_context_takeover",
             "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; server_max_window_bits=10, permessage-deflate",
         }) {
        RawClient raw(s.port());
        const auto head = raw.upgrade("/connect", "Sec-WebSocket-Extensions: " + offer + "\r\n");
        ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
        EXPECT_NE(head.find("Sec-WebSocket-Extensions: permessage-deflate; "
                            "server_no_context_takeover; client_no_context_takeover\r\n"),
                  std::string::npos)
            << offer << "\n"
            << head;
    }
    // A server window under 15 bits alone is declined: no compression at all.
    RawClient raw(s.port());
    const auto head = raw.upgrade(
        "/connect", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n");
    ASSERT_EQ(head.rfind("HTTP/1.1 101", 0), 0u) << head;
    EXPECT_EQ(head.find("permessage-deflate"), std::string::npos) << head;
}

// The fields are read by a validating parse that keeps only the top level: the same answers as a
// full json::parse of the message.
// What JavaScript's JSON.parse (the original's parser) accepts is forwarded, including numbers no
// double or 64-bit integer holds and nesting at the depth limit; only invalid JSON is refused.
TEST(HunterPie, EveryValidPushIsForwardedWhateverItsNumbersAndNesting) {
    Sync s;
    Client leader(s.port());
    Client member(s.port());
    join_party(leader, {&member});
    std::string nested_objects;  // 32 levels: the document's own object and 31 more
    for (int i = 0; i < 31; ++i) {
        nested_objects += R"({"a":)";
    }
    nested_objects += "1" + std::string(31, '}');
    for (const std::string& push : {
             std::string(R"({"sessionId":"host-abc","type":"Push","data":[1e400,-1e400,1e-400]})"),
             std::string(R"({"sessionId":"host-abc","type":"Push","data":[18446744073709551616,)"
                         R"(-9223372036854775809,123456789012345678901234567890]})"),
             R"({"sessionId":"host-abc","type":"Push","data":)" + nested_objects + "}",
             R"({"sessionId":"host-abc","type":"Push","data":)" + std::string(31, '[') +
                 std::string(31, ']') + "}",
             std::string(
                 R"({"sessionId":"host-abc","type":"Push","text":"\ud83d\ude00 \u0000 \/"})"),
         }) {
        leader.send(push);
        EXPECT_EQ(member.next(), push);
    }
    const std::string invalid = R"({"type":"servermsg","level":"warn","text":"invalid message"})";
    for (const std::string& bad : {
             std::string(R"({"sessionId":"host-abc","type":"Push","data":[01]})"),
             std::string(R"({"sessionId":"host-abc","type":"Push","data":[1.]})"),
             std::string(R"({"sessionId":"host-abc","type":"Push","text":"\ud800"})"),
             std::string("{\"sessionId\":\"host-abc\",\"type\":\"Push\",\"text\":\"\x01\"}"),
             R"({"sessionId":"host-abc","type":"Push","data":)" + std::string(33, '[') +
                 std::string(33, ']') + "}",
         }) {
        EXPECT_EQ(leader.call(bad), invalid) << bad;
    }
    member.expect_nothing_pending();
}

TEST(HunterPie, OnlyTopLevelFieldsCountAndTheLastDuplicateWins) {
    Sync s;
    Client leader(s.port());
    Client member(s.port());
    // Escapes in keys and values; a nested "isLeader" does not count; the last duplicate does.
    EXPECT_EQ(leader.call(R"({"ty\u0070e":"Set\u0053ession","sessionId":"x","isLeader":false,)"
                          R"("data":{"isLeader":false},"isLeader":true})"),
              state(true, 1));
    EXPECT_EQ(member.call(R"({"type":"setsession","sessionId":"nope","sessionId":"x",)"
                          R"("more":[{"type":"push","sessionId":"y"}]})"),
              state(true, 2));
    EXPECT_EQ(leader.next(), state(true, 2));
    // A push whose type is escaped and whose data holds other "type" and "sessionId" keys.
    const std::string push =
        R"({"sessionId":"x","data":{"type":"setname","sessionId":"y"},"type":"P\u0075sh"})";
    leader.send(push);
    EXPECT_EQ(member.next(), push);
    const std::string invalid = R"({"type":"servermsg","level":"warn","text":"invalid message"})";
    for (const std::string& bad : {
             std::string(R"({"data":{"type":"push"}})"),
             std::string(R"({"type":"push","type":1})"),
             std::string(R"({"type":"push"} x)"),
             // Invalid after every field the server reads: a push is validated whole.
             std::string(R"({"sessionId":"x","type":"Push","data":[1,2)"),
             std::string(R"({"sessionId":"x","type":"Push","data":[1,2,]})"),
             // Deeper than json::parse's default limit of 32.
             R"({"sessionId":"x","type":"Push","data":)" + std::string(40, '[') +
                 std::string(40, ']') + "}",
         }) {
        EXPECT_EQ(leader.call(bad), invalid) << bad;
    }
    member.expect_nothing_pending();
    EXPECT_EQ(s.server().metric("hearth_hunterpie_invalid_messages_total"), 6);
}

}  // namespace
}  // namespace hearth::test
