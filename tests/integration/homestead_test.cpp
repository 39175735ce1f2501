// The Homestead gateway with real WebSocket clients against the real server and its store (every
// test on SQLite and on PostgreSQL): every row of the spec's tables and every rule of
// docs/protocol/homestead.md, byte for byte; the durability promise across a SIGKILL of the
// `hearth` binary; and no acknowledged message lost when PostgreSQL is killed under load.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "app/server_app.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"
#include "unit/store/postgres_server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr std::string_view kConnectedMod = "{\"status\":\"connected\",\"type\":\"mod\"}\n";
constexpr std::string_view kConnectedBot = "{\"status\":\"connected\",\"type\":\"bot\"}\n";
constexpr std::string_view kMalformedMessage =
    "{\"code\":400,\"message\":\"Malformed message.\"}\n";

std::string ack(std::string_view status, std::string_view type) {
    return "{\"status\":\"" + std::string(status) + "\",\"type\":\"" + std::string(type) + "\"}\n";
}

std::string mod_handshake(const std::string& server, const std::string& channel) {
    return R"({"type":"mod","data":{"server_id":")" + server + R"(","channel_id":")" + channel +
           R"("}})";
}

std::string bot_handshake(const std::string& bot = "discord-bot") {
    return R"({"type":"bot","data":{"bot_id":")" + bot + R"("}})";
}

std::string mod_message(const std::string& server, const std::string& channel,
                        const std::string& content, const std::string& msg_id = "m-1") {
    return R"({"msg_id":")" + msg_id + R"(","id":")" + server +
           R"(","destination":{"channel_id":")" + channel +
           R"("},"author":{"id":"player-uuid","name":"Steve"},"content":")" + content +
           R"(","meta":{"world":"overworld"},"ts":"2025-12-08T10:30:00Z"})";
}

std::string bot_message(const std::string& channel, const std::string& content,
                        const std::string& msg_id = "d-1") {
    return R"({"msg_id":")" + msg_id + R"(","id":")" + channel +
           R"(","author":{"id":"u-1","name":"Alice"},"content":")" + content + R"(","meta":{}})";
}

Overrides with_homestead(Overrides extra) {
    Overrides all = {{"homestead.enabled", "true"}, {"homestead.listen", "\"127.0.0.1:0\""}};
    for (auto& [k, v] : extra) {
        all[k] = v;
    }
    return all;
}

/// The in-process server with the Homestead front-end on its own port.
class Gateway {
public:
    Gateway() : server_(with_homestead({})) {}
    Gateway(std::initializer_list<Overrides::value_type> extra)
        : server_(with_homestead(Overrides(extra))) {}
    std::uint16_t port() { return server_.app().server().bound_port("homestead"); }
    TestServer& server() { return server_; }
    double metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
        return server_.metric(name, labels);
    }

private:
    TestServer server_;
};

/// A mod or bot: raw frames in and out over Beast's WebSocket client.
class Client {
public:
    explicit Client(std::uint16_t port, std::string path = "/sync?api_key=gateway",
                    WsOptions options = {})
        : ws_(std::make_unique<WsClient>(port, [&] {
              options.path = std::move(path);
              return options;
          }())) {}

    void send(const std::string& text) { ws_->send_text(text); }
    /// The next frame's text; "" (and a test failure) when the connection closed instead.
    std::string next(std::chrono::milliseconds deadline = kDeadline) {
        auto m = ws_->read(deadline);
        if (!m) {
            ADD_FAILURE() << "connection closed: " << ws_->close_info()->code << " "
                          << ws_->close_info()->reason;
            return "";
        }
        EXPECT_TRUE(m->text);
        return m->data;
    }
    json::object next_json() {
        auto text = next();
        return text.empty() ? json::object{} : json::parse(text).as_object();
    }
    /// Sends and returns the reply.
    std::string call(const std::string& text) {
        send(text);
        return next();
    }
    WsClient& ws() { return *ws_; }

private:
    std::unique_ptr<WsClient> ws_;  // movable, so that helpers can return clients
};

Client mod(std::uint16_t port, const std::string& server = "server-1",
           const std::string& channel = "C") {
    Client c(port);
    EXPECT_EQ(c.call(mod_handshake(server, channel)), kConnectedMod);
    return c;
}

Client bot(std::uint16_t port, const std::string& id = "discord-bot") {
    Client c(port);
    EXPECT_EQ(c.call(bot_handshake(id)), kConnectedBot);
    return c;
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time as Hearth writes it.
std::int64_t time_ns(const std::string& t) {
    std::tm tm{};
    std::istringstream in(t.substr(0, 19));
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    std::int64_t ns = static_cast<std::int64_t>(timegm(&tm)) * 1'000'000'000;
    if (t.size() > 20 && t[19] == '.') {
        std::string frac = t.substr(20, t.size() - 21);
        frac.resize(9, '0');
        ns += std::stoll(frac);
    }
    return ns;
}

const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z)");

/// Checks a forwarded frame against the expected text with its two times cut out, and that the
/// times are well-formed and in order. Returns {received_at, forwarded_at}.
std::pair<std::string, std::string> expect_forwarded(const std::string& frame,
                                                     const std::string& before_times) {
    const std::string marker = ",\"received_at\":\"";
    const auto at = frame.find(marker);
    EXPECT_NE(at, std::string::npos) << frame;
    if (at == std::string::npos) {
        return {};
    }
    EXPECT_EQ(frame.substr(0, at), before_times);
    std::smatch m;
    const std::string tail = frame.substr(at);
    EXPECT_TRUE(std::regex_match(
        tail, m, std::regex(R"re(,"received_at":"([^"]+)","forwarded_at":"([^"]+)"\}\n)re")))
        << tail;
    if (m.size() < 3) {
        return {};
    }
    const std::string received = m[1];
    const std::string forwarded = m[2];
    EXPECT_TRUE(std::regex_match(received, kTime)) << received;
    EXPECT_TRUE(std::regex_match(forwarded, kTime)) << forwarded;
    EXPECT_LE(time_ns(received), time_ns(forwarded));
    return {received, forwarded};
}

std::string forwarded_mod_prefix(const std::string& content, const std::string& channel = "C") {
    return R"({"type":"mod","channel_id":")" + channel +
           R"(","author":{"id":"player-uuid","name":"Steve"},"content":")" + content +
           R"(","meta":{"world":"overworld"},"ts":"2025-12-08T10:30:00Z")";
}

std::string forwarded_bot_prefix(const std::string& content, const std::string& channel,
                                 const std::string& ts) {
    return R"({"type":"bot","channel_id":")" + channel +
           R"(","author":{"id":"u-1","name":"Alice"},"content":")" + content +
           R"(","meta":{},"ts":")" + ts + "\"";
}

/// The content of a forwarded frame.
std::string content_of(const std::string& frame) {
    return std::string(json::parse(frame).as_object().at("content").as_string());
}

/// Proves that `bot` has nothing more waiting: a probe sent by `from` (a mod of `server` on
/// `channel`) must be the next thing it receives. (A read that times out cannot be resumed with
/// Beast's client, so silence is shown by what comes next.)
void expect_bot_got_nothing_more(Client& bot, Client& from, const std::string& server,
                                 const std::string& channel) {
    EXPECT_EQ(from.call(mod_message(server, channel, "probe")), ack("completed", "mod"));
    EXPECT_EQ(content_of(bot.next()), "probe");
}

/// The same for a mod, with a probe from the bot.
void expect_mod_got_nothing_more(Client& mod, Client& bot, const std::string& channel) {
    EXPECT_EQ(bot.call(bot_message(channel, "probe")), ack("completed", "bot"));
    EXPECT_EQ(content_of(mod.next()), "probe");
}

/// Waits (with a deadline) until `f` holds.
// Every test runs on SQLite and on PostgreSQL (support/store_backend.hpp).
class Homestead : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(Homestead);

class HomesteadDurability : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(HomesteadDurability);

// ---- endpoints ----------------------------------------------------------------------------------

TEST_P(Homestead, HealthAnswersHealthy) {
    Gateway g;
    auto r = http_request(g.port(), "GET", "/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"status\":\"healthy\"}\n");
    EXPECT_EQ(r.headers["content-type"], "application/json");
}

TEST_P(Homestead, SyncRefusesAMissingOrWrongKeyWith401BeforeTheUpgrade) {
    Gateway g;
    const std::string body = "{\"code\":401,\"message\":\"Invalid API key.\"}\n";
    for (const auto& [path, headers] : std::vector<std::pair<std::string, std::string>>{
             {"/sync", ""},
             {"/sync?api_key=wrong", ""},
             {"/sync?api_key=", ""},
             {"/sync?api_key=gatewa", ""},
             {"/sync?api_key=gateway2", ""},
             {"/sync", "X-API-Key: wrong\r\n"},
             {"/sync?api_key=wrong", "X-API-Key: gateway\r\n"},  // the query wins when present
         }) {
        RawClient raw(g.port());
        const auto head = raw.upgrade(path, headers);
        EXPECT_EQ(head.rfind("HTTP/1.1 401", 0), 0u) << path << " " << head;
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        EXPECT_NE(lower.find("content-type: application/json"), std::string::npos) << head;
        EXPECT_EQ(raw.read_exactly(body.size()), body) << path;
    }
    EXPECT_EQ(g.metric("hearth_homestead_rejected_total", {{"reason", "invalid_api_key"}}), 7);
}

TEST_P(Homestead, SyncAcceptsTheKeyInTheQueryOrTheHeader) {
    Gateway g;
    {
        RawClient raw(g.port());
        EXPECT_EQ(raw.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0u);
    }
    {
        RawClient raw(g.port());
        EXPECT_EQ(raw.upgrade("/sync?api_key=gate%77ay").rfind("HTTP/1.1 101", 0), 0u);
    }
    {
        RawClient raw(g.port());
        EXPECT_EQ(raw.upgrade("/sync", "X-API-Key: gateway\r\n").rfind("HTTP/1.1 101", 0), 0u);
    }
    Client header(g.port(), "/sync", WsOptions{.headers = {{"X-API-Key", "gateway"}}});
    EXPECT_EQ(header.call(mod_handshake("S", "C")), kConnectedMod);
}

TEST_P(Homestead, TheUpgradeNegotiatesNoCompression) {
    Gateway g;
    Client c(g.port(), "/sync?api_key=gateway", WsOptions{.compression = true});
    EXPECT_EQ(c.ws().upgrade_headers().count("sec-websocket-extensions"), 0u);
    EXPECT_EQ(c.call(bot_handshake()), kConnectedBot);
}

// ---- handshake
// --------------------------------------------------------------------------------------

TEST_P(Homestead, ModAndBotHandshakesAreAcknowledged) {
    Gateway g;
    Client m(g.port());
    EXPECT_EQ(m.call(mod_handshake("server-1", "C")), kConnectedMod);
    Client b(g.port());
    EXPECT_EQ(b.call(bot_handshake()), kConnectedBot);
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "mod"}}) == 1 &&
               g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 1;
    }));
}

TEST_P(Homestead, EveryRefusedHandshakeGetsItsErrorThenClose1000Disconnecting) {
    Gateway g;
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"not json", "{\"code\":400,\"message\":\"Malformed handshake.\"}\n"},
        {R"({"type":"mod"})", "{\"code\":400,\"message\":\"Malformed handshake.\"}\n"},
        {R"([1,2])", "{\"code\":400,\"message\":\"Malformed handshake.\"}\n"},
        {R"({"type":"mod","data":{"channel_id":"C"}})",
         "{\"code\":400,\"message\":\"Malformed mod handshake.\"}\n"},
        {R"({"type":"mod","data":{"server_id":"S"}})",
         "{\"code\":400,\"message\":\"Malformed mod handshake.\"}\n"},
        {R"({"type":"bot","data":{}})",
         "{\"code\":400,\"message\":\"Malformed bot handshake.\"}\n"},
        {R"({"type":"bot","data":{"channel_id":"C"}})",
         "{\"code\":400,\"message\":\"Malformed bot handshake.\"}\n"},
        {R"({"type":"admin","data":{}})", "{\"code\":400,\"message\":\"Unknown handshake.\"}\n"},
    };
    for (const auto& [handshake, reply] : rows) {
        Client c(g.port());
        EXPECT_EQ(c.call(handshake), reply) << handshake;
        const auto closed = c.ws().wait_closed();
        EXPECT_EQ(closed.code, 1000) << handshake;
        EXPECT_EQ(closed.reason, "Disconnecting.") << handshake;
    }
    EXPECT_EQ(g.metric("hearth_homestead_rejected_total", {{"reason", "malformed_handshake"}}), 3);
    EXPECT_EQ(g.metric("hearth_homestead_rejected_total", {{"reason", "unknown_handshake"}}), 1);
}

TEST_P(Homestead, TheRefusalIsTheLastDataFrameBeforeTheCloseOnTheWire) {
    Gateway g;
    RawClient raw(g.port());
    ASSERT_EQ(raw.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(client_frame(0x1, "{}"));
    const std::string error = "{\"code\":400,\"message\":\"Malformed handshake.\"}\n";
    const std::string bytes = raw.read_exactly(2 + error.size() + 2 + 2 + 14);
    raw.write(client_frame(0x8, std::string("\x03\xe8", 2)));  // the client's side of the close
    EXPECT_EQ(raw.read_until_eof(), "");
    std::size_t used = 0;
    auto first = parse_server_frame(bytes, used);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->opcode, 0x1);
    EXPECT_EQ(first->payload, error);
    std::size_t used2 = 0;
    auto second = parse_server_frame(bytes.substr(used), used2);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->opcode, 0x8);
    EXPECT_EQ(second->payload, std::string("\x03\xe8", 2) + "Disconnecting.");
}

TEST_P(Homestead, OneBotAtATimeASecondGets409) {
    Gateway g;
    Client first = bot(g.port());
    Client second(g.port());
    EXPECT_EQ(second.call(bot_handshake("other-bot")),
              "{\"code\":409,\"message\":\"Bot already connected.\"}\n");
    const auto closed = second.ws().wait_closed();
    EXPECT_EQ(closed.code, 1000);
    EXPECT_EQ(closed.reason, "Disconnecting.");
    // The first bot is still the one that receives.
    Client m = mod(g.port());
    EXPECT_EQ(m.call(mod_message("server-1", "C", "still you")), ack("completed", "mod"));
    expect_forwarded(first.next(), forwarded_mod_prefix("still you"));
    // Once it leaves, another bot may connect.
    first.ws().close();
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 0;
    }));
    Client third = bot(g.port(), "third");
}

TEST_P(Homestead, ANewModForAChannelReplacesTheOldOne) {
    Gateway g;
    Client old_mod = mod(g.port(), "server-old", "C");
    Client new_mod = mod(g.port(), "server-new", "C");
    const auto closed = old_mod.ws().wait_closed();
    EXPECT_EQ(closed.code, 1000);
    EXPECT_EQ(closed.reason, "Disconnecting.");
    Client b = bot(g.port());
    EXPECT_EQ(b.call(bot_message("C", "to the new one")), ack("completed", "bot"));
    EXPECT_EQ(content_of(new_mod.next()), "to the new one");
    // The replaced mod's leaving does not unregister the new one.
    EXPECT_EQ(b.call(bot_message("C", "again")), ack("completed", "bot"));
    EXPECT_EQ(content_of(new_mod.next()), "again");
    EXPECT_EQ(g.metric("hearth_homestead_connections", {{"kind", "mod"}}), 1);
}

TEST_P(Homestead, WithMultiModEveryModOfTheChannelGetsTheBotsMessages) {
    Gateway g({{"homestead.multi_mod", "true"}});
    Client a = mod(g.port(), "server-a", "C");
    Client b = mod(g.port(), "server-b", "C");
    Client other = mod(g.port(), "server-x", "D");
    Client bt = bot(g.port());
    EXPECT_EQ(bt.call(bot_message("C", "to both")), ack("completed", "bot"));
    EXPECT_EQ(content_of(a.next()), "to both");
    EXPECT_EQ(content_of(b.next()), "to both");
    expect_mod_got_nothing_more(other, bt, "D");
    // Both mods still talk to the bot.
    EXPECT_EQ(a.call(mod_message("server-a", "C", "from a")), ack("completed", "mod"));
    EXPECT_EQ(b.call(mod_message("server-b", "C", "from b")), ack("completed", "mod"));
    EXPECT_EQ(content_of(bt.next()), "from a");
    EXPECT_EQ(content_of(bt.next()), "from b");
}

TEST_P(Homestead, TheHandshakeMayArriveAsABinaryFrame) {
    Gateway g;
    Client c(g.port());
    c.ws().send_binary(bot_handshake());
    EXPECT_EQ(c.next(), kConnectedBot);
}

TEST_P(Homestead, WithoutAHandshakeInTimeTheConnectionIsClosed) {
    Gateway g({{"homestead.handshake_timeout_s", "1"}});
    Client c(g.port());
    const auto start = std::chrono::steady_clock::now();
    const auto closed = c.ws().wait_closed();
    EXPECT_EQ(closed.code, 1008);
    EXPECT_EQ(closed.reason, "handshake timeout");
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
    // A client that shakes hands in time is not affected.
    Client ok(g.port());
    EXPECT_EQ(ok.call(bot_handshake()), kConnectedBot);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(ok.call(bot_message("C", "still open")), ack("queued", "bot"));
}

// ---- messages -----------------------------------------------------------------------------------

TEST_P(Homestead, ModToBotIsForwardedWithTheExactShapeAndAcknowledgedCompleted) {
    Gateway g;
    Client b = bot(g.port());
    Client m = mod(g.port(), "server-1", "C");
    EXPECT_EQ(m.call(mod_message("server-1", "C", "hello")), ack("completed", "mod"));
    expect_forwarded(b.next(), forwarded_mod_prefix("hello"));
    EXPECT_EQ(g.metric("hearth_homestead_messages_total",
                       {{"direction", "mod_to_bot"}, {"ack", "completed"}}),
              1);
}

TEST_P(Homestead, BotToModGoesToTheModOfThatChannelOnly) {
    Gateway g;
    Client c1 = mod(g.port(), "server-1", "C1");
    Client c2 = mod(g.port(), "server-2", "C2");
    Client b = bot(g.port());
    EXPECT_EQ(b.call(bot_message("C2", "hi two")), ack("completed", "bot"));
    const auto frame = c2.next();
    const auto ts = json::parse(frame).as_object().at("received_at").as_string();
    // Without ts the receive time stands in for it.
    expect_forwarded(frame, forwarded_bot_prefix("hi two", "C2", std::string(ts)));
    EXPECT_EQ(g.metric("hearth_homestead_messages_total",
                       {{"direction", "bot_to_mod"}, {"ack", "completed"}}),
              1);
    expect_mod_got_nothing_more(c1, b, "C1");
}

TEST_P(Homestead, OptionalFieldsAreFilledAndStringsEscapedLikeGo) {
    Gateway g;
    Client b = bot(g.port());
    Client m = mod(g.port(), "S", "C");
    const std::string sent =
        "{\"msg_id\":\"x\",\"id\":\"S\",\"destination\":{\"channel_id\":\"C\"},"
        "\"author\":{\"id\":\"p\"},\"content\":\"<b>&amp; \\u2028 \xe2\x80\xa9 caf\xc3\xa9\","
        "\"meta\":{ \"html\" : \"<i>\" , \"n\" : 1.0 }}";
    EXPECT_EQ(m.call(sent), ack("completed", "mod"));
    const auto frame = b.next();
    const auto ts = std::string(json::parse(frame).as_object().at("received_at").as_string());
    expect_forwarded(frame,
                     "{\"type\":\"mod\",\"channel_id\":\"C\",\"author\":{\"id\":\"p\","
                     "\"name\":\"\"},\"content\":\"\\u003cb\\u003e\\u0026amp; \\u2028 "
                     "\\u2029 caf\xc3\xa9\",\"meta\":{\"html\":\"\\u003ci\\u003e\",\"n\":"
                     "1.0},\"ts\":\"" +
                         ts + "\"");
}

TEST_P(Homestead, AMalformedMessageIsAnsweredAndTheConnectionStays) {
    Gateway g;
    Client b = bot(g.port());
    Client m = mod(g.port(), "server-1", "C");
    for (const std::string& bad : {
             std::string("not json"),
             std::string(R"({"msg_id":"m","id":"server-1","destination":{"channel_id":"C"}})"),
             mod_message("server-2", "C", "wrong server id"),
             mod_message("server-1", "D", "wrong channel"),
             mod_message("server-1", "C", ""),
             std::string(R"({"msg_id":"m","id":"server-1","destination":{"channel_id":"C"},)"
                         R"("author":{"id":"p"},"content":"x","ts":"yesterday"})"),
         }) {
        EXPECT_EQ(m.call(bad), kMalformedMessage) << bad;
    }
    EXPECT_EQ(m.call(mod_message("server-1", "C", "still here")), ack("completed", "mod"));
    EXPECT_EQ(content_of(b.next()), "still here");
    EXPECT_EQ(b.call(R"({"msg_id":"d","id":"","author":{"id":"u"},"content":"x"})"),
              kMalformedMessage);
    EXPECT_EQ(g.metric("hearth_homestead_rejected_total", {{"reason", "malformed_message"}}), 7);
}

TEST_P(Homestead, EveryMessageGetsOneAnswerInOrder) {
    Gateway g;
    Client b = bot(g.port());
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 200;
    std::vector<std::string> expected;
    for (int i = 0; i < kCount; ++i) {
        if (i % 7 == 3) {
            m.send("{broken");
            expected.emplace_back(kMalformedMessage);
        } else {
            m.send(mod_message("server-1", "C", "n" + std::to_string(i)));
            expected.push_back(ack("completed", "mod"));
        }
    }
    for (int i = 0; i < kCount; ++i) {
        ASSERT_EQ(m.next(), expected[static_cast<std::size_t>(i)]) << i;
    }
    for (int i = 0; i < kCount; ++i) {
        if (i % 7 != 3) {
            ASSERT_EQ(content_of(b.next()), "n" + std::to_string(i));
        }
    }
}

TEST_P(Homestead, AcksStayInOrderWhenQueuedAndDeliveredMessagesMix) {
    // The bot comes and goes while a mod sends: each message is acknowledged completed or queued,
    // in order, and the bot ends up with every message exactly once, in order.
    Gateway g({{"homestead.queue_max", "1000"}});
    Client m = mod(g.port(), "server-1", "C");
    std::vector<std::string> received;
    constexpr int kRounds = 6;
    constexpr int kPerRound = 20;
    int sent = 0;
    for (int r = 0; r < kRounds; ++r) {
        std::optional<Client> b;
        if (r % 2 == 1) {
            b.emplace(g.port());
            b->send(bot_handshake());
        }
        for (int i = 0; i < kPerRound; ++i) {
            m.send(mod_message("server-1", "C", "n" + std::to_string(sent++)));
        }
        for (int i = 0; i < kPerRound; ++i) {
            const auto a = m.next();
            EXPECT_TRUE(a == ack("completed", "mod") || a == ack("queued", "mod")) << a;
        }
        if (b) {
            EXPECT_EQ(b->next(), kConnectedBot);
            // Everything queued before, then this round's messages.
            while (static_cast<int>(received.size()) < sent) {
                received.push_back(content_of(b->next()));
            }
            b->ws().close();
            b->ws().wait_closed();
            EXPECT_TRUE(eventually([&] {
                return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 0;
            }));
        }
    }
    Client last = bot(g.port());
    while (static_cast<int>(received.size()) < sent) {
        received.push_back(content_of(last.next()));
    }
    for (int i = 0; i < sent; ++i) {
        EXPECT_EQ(received[static_cast<std::size_t>(i)], "n" + std::to_string(i));
    }
    expect_bot_got_nothing_more(last, m, "server-1", "C");
}

TEST_P(Homestead, AMessageTheStoreRefusesIsAcknowledgedFailedInItsPlace) {
    // A store whose write queue holds one operation refuses most of a burst (unavailable). The
    // server's own log lines are not stored: their writes would compete for that one place with
    // the bot's queue read below, which would then be refused too.
    Gateway g({{"storage.writer_queue_max", "1"},
               {"homestead.queue_max", "1000"},
               {"logs.store", "false"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 200;
    for (int i = 0; i < kCount; ++i) {
        m.send(mod_message("server-1", "C", "n" + std::to_string(i)));
    }
    std::vector<int> queued;
    int failed = 0;
    for (int i = 0; i < kCount; ++i) {
        const auto a = m.next();
        if (a == ack("queued", "mod")) {
            queued.push_back(i);
        } else {
            ASSERT_EQ(a, ack("failed", "mod")) << i;
            ++failed;
        }
    }
    EXPECT_GT(failed, 0);
    EXPECT_EQ(g.metric("hearth_homestead_messages_total",
                       {{"direction", "mod_to_bot"}, {"ack", "failed"}}),
              failed);
    // Exactly the messages acknowledged queued reach the bot, in order.
    Client b = bot(g.port());
    for (int i : queued) {
        ASSERT_EQ(content_of(b.next()), "n" + std::to_string(i));
    }
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

// ---- offline queue ------------------------------------------------------------------------------

TEST_P(Homestead, MessagesForAnOfflineBotAreQueuedAndFlushedOnItsHandshake) {
    Gateway g;
    Client m = mod(g.port(), "server-1", "C");
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(m.call(mod_message("server-1", "C", "q" + std::to_string(i))),
                  ack("queued", "mod"));
    }
    EXPECT_EQ(g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}), 5);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // forwarded_at is the flush time
    Client b(g.port());
    EXPECT_EQ(b.call(bot_handshake()), kConnectedBot);
    for (int i = 0; i < 5; ++i) {
        const auto [received, forwarded] =
            expect_forwarded(b.next(), forwarded_mod_prefix("q" + std::to_string(i)));
        EXPECT_GE(time_ns(forwarded) - time_ns(received), 10'000'000);
    }
    // Delivered messages leave the store: a later bot gets nothing.
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
    EXPECT_EQ(g.metric("hearth_homestead_queue_delivered_total", {{"direction", "mod_to_bot"}}), 5);
    b.ws().close();
    b.ws().wait_closed();
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 0;
    }));
    Client again = bot(g.port());
    expect_bot_got_nothing_more(again, m, "server-1", "C");
    EXPECT_EQ(g.metric("hearth_homestead_messages_total",
                       {{"direction", "mod_to_bot"}, {"ack", "queued"}}),
              5);
}

TEST_P(Homestead, MessagesForAnOfflineModAreQueuedPerChannel) {
    Gateway g;
    Client b = bot(g.port());
    EXPECT_EQ(b.call(bot_message("C1", "for one")), ack("queued", "bot"));
    EXPECT_EQ(b.call(bot_message("C2", "for two")), ack("queued", "bot"));
    EXPECT_EQ(b.call(bot_message("C1", "for one again")), ack("queued", "bot"));
    Client m1(g.port());
    EXPECT_EQ(m1.call(mod_handshake("server-1", "C1")), kConnectedMod);
    EXPECT_EQ(content_of(m1.next()), "for one");
    EXPECT_EQ(content_of(m1.next()), "for one again");
    expect_mod_got_nothing_more(m1, b, "C1");
    Client m2(g.port());
    EXPECT_EQ(m2.call(mod_handshake("server-2", "C2")), kConnectedMod);
    EXPECT_EQ(content_of(m2.next()), "for two");
    EXPECT_EQ(g.metric("hearth_homestead_queue_delivered_total", {{"direction", "bot_to_mod"}}), 3);
}

TEST_P(Homestead, TheBotGetsEveryChannelsQueueMergedOldestFirst) {
    Gateway g;
    Client a = mod(g.port(), "server-a", "A");
    Client b = mod(g.port(), "server-b", "B");
    Client c = mod(g.port(), "server-c", "C");
    std::vector<std::string> order;
    for (int i = 0; i < 6; ++i) {
        Client* m = i % 3 == 0 ? &a : i % 3 == 1 ? &b : &c;
        const std::string server = i % 3 == 0 ? "server-a" : i % 3 == 1 ? "server-b" : "server-c";
        const std::string channel = i % 3 == 0 ? "A" : i % 3 == 1 ? "B" : "C";
        EXPECT_EQ(m->call(mod_message(server, channel, "n" + std::to_string(i))),
                  ack("queued", "mod"));
    }
    Client bt = bot(g.port());
    std::vector<std::int64_t> times;
    for (int i = 0; i < 6; ++i) {
        const auto frame = bt.next();
        EXPECT_EQ(content_of(frame), "n" + std::to_string(i));
        times.push_back(
            time_ns(std::string(json::parse(frame).as_object().at("received_at").as_string())));
    }
    EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
}

TEST_P(Homestead, EachQueueKeepsTheNewestQueueMaxMessages) {
    Gateway g({{"homestead.queue_max", "3"}});
    Client m = mod(g.port(), "server-1", "C");
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(m.call(mod_message("server-1", "C", "n" + std::to_string(i))),
                  ack("queued", "mod"));
    }
    EXPECT_EQ(g.metric("hearth_homestead_queue_dropped_total", {{"direction", "mod_to_bot"}}), 2);
    EXPECT_EQ(g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}), 3);
    // Another channel's queue is separate.
    Client other = mod(g.port(), "server-2", "D");
    EXPECT_EQ(other.call(mod_message("server-2", "D", "d0")), ack("queued", "mod"));
    Client b = bot(g.port());
    for (const char* expected : {"n2", "n3", "n4", "d0"}) {
        EXPECT_EQ(content_of(b.next()), expected);
    }
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

TEST_P(Homestead, LiveMessagesWaitForTheFlushOfOlderQueuedOnes) {
    Gateway g({{"homestead.queue_max", "1000"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kQueued = 300;
    for (int i = 0; i < kQueued; ++i) {
        m.send(mod_message("server-1", "C", "n" + std::to_string(i)));
    }
    for (int i = 0; i < kQueued; ++i) {
        ASSERT_EQ(m.next(), ack("queued", "mod"));
    }
    // The bot connects while the mod keeps sending: the queued ones (more than a flush page)
    // come first, then the live ones, in order.
    Client b(g.port());
    b.send(bot_handshake());
    constexpr int kLive = 50;
    for (int i = kQueued; i < kQueued + kLive; ++i) {
        m.send(mod_message("server-1", "C", "n" + std::to_string(i)));
    }
    EXPECT_EQ(b.next(), kConnectedBot);
    for (int i = 0; i < kQueued + kLive; ++i) {
        ASSERT_EQ(content_of(b.next()), "n" + std::to_string(i));
    }
    for (int i = 0; i < kLive; ++i) {
        const auto a = m.next();
        EXPECT_TRUE(a == ack("completed", "mod") || a == ack("queued", "mod")) << a;
    }
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

// ---- the flush's pacing -------------------------------------------------------------------------

/// A message content that starts with its index, padded with 'x' to `size` bytes: the order of
/// frames shows in their contents.
std::string numbered(int i, std::size_t size) {
    std::string content = "n" + std::to_string(i) + "-";
    content.resize(std::max(size, content.size()), 'x');
    return content;
}

/// Sends `contents` from `m` (server-1 on channel C) while no bot is connected: every one must be
/// acknowledged queued.
void queue_for_bot(Client& m, const std::vector<std::string>& contents) {
    for (const auto& content : contents) {
        m.send(mod_message("server-1", "C", content));
    }
    for (std::size_t i = 0; i < contents.size(); ++i) {
        ASSERT_EQ(m.next(std::chrono::seconds(30)), ack("queued", "mod")) << i;
    }
}

double slow_consumer_closes(Gateway& g) {
    return g.metric("hearth_ws_disconnects_total",
                    {{"route", "/sync"}, {"reason", "slow_consumer"}});
}

/// Waits until the bot that was connected has left and every message written to it has been
/// removed from the store; returns how many were written (hearth_homestead_queue_delivered_total).
/// `count` is how many were queued.
double settled_after_bot_left(Gateway& g, int count) {
    double delivered = -1;
    EXPECT_TRUE(eventually(
        [&] {
            // In this order: once the bot is unregistered nothing more is written to it, so the
            // delivered count read next is final, and the depth catches up when the removals of
            // the delivered messages are committed.
            if (g.metric("hearth_homestead_connections", {{"kind", "bot"}}) != 0) {
                return false;
            }
            delivered =
                g.metric("hearth_homestead_queue_delivered_total", {{"direction", "mod_to_bot"}});
            return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) ==
                   count - delivered;
        },
        std::chrono::seconds(30)));
    return delivered;
}

TEST_P(Homestead, AQueueLargerThanTheOutboundBoundIsFlushedWholeInOrder) {
    // A 64 KiB outbound bound and 300 queued messages (more than a flush page) of 1 to 40 KiB,
    // 6 MiB in all. Sent at once, the flush would overflow the bot's outbox and close it as a slow
    // consumer on every connection, the queue never draining; paced by its completed writes it
    // never overflows, whatever the sizes.
    Gateway g({{"homestead.queue_max", "1000"}, {"websocket.max_outbound_bytes", "65536"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 300;
    std::vector<std::string> contents;
    for (int i = 0; i < kCount; ++i) {
        contents.push_back(numbered(i, static_cast<std::size_t>(1 + (i * 7) % 40) * 1024));
    }
    ASSERT_NO_FATAL_FAILURE(queue_for_bot(m, contents));
    Client b = bot(g.port());
    for (int i = 0; i < kCount; ++i) {
        ASSERT_EQ(content_of(b.next()), contents[static_cast<std::size_t>(i)]) << i;
    }
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
    EXPECT_EQ(g.metric("hearth_homestead_queue_delivered_total", {{"direction", "mod_to_bot"}}),
              kCount);
    EXPECT_EQ(slow_consumer_closes(g), 0);
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

TEST_P(Homestead, QueuedMessagesOfTheLargestSizeReachTheBotWithTheDefaultBounds) {
    // The reported case: three or more messages of body_size_mb (2 MiB) are more than the default
    // 4 MiB outbound bound together.
    Gateway g;
    constexpr std::size_t kLimit = 2 * 1024 * 1024;
    const std::size_t envelope = mod_message("server-1", "C", "").size();
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 4;
    std::vector<std::string> contents;
    for (int i = 0; i < kCount; ++i) {
        contents.push_back(numbered(i, kLimit - envelope));
    }
    ASSERT_EQ(mod_message("server-1", "C", contents[0]).size(), kLimit);
    ASSERT_NO_FATAL_FAILURE(queue_for_bot(m, contents));
    Client b = bot(g.port());
    for (int i = 0; i < kCount; ++i) {
        ASSERT_EQ(content_of(b.next()), contents[static_cast<std::size_t>(i)]) << i;
    }
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
    EXPECT_EQ(slow_consumer_closes(g), 0);
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

TEST_P(Homestead, LiveMessagesHeldDuringAPacedFlushFollowTheQueuedOnesPacedToo) {
    // The bot reads nothing at first, so its flush stalls (16 MiB queued: more than the socket
    // buffers hold) and every live message for it is held; held, they are more than the 4 MiB
    // outbound bound, so they too must go out paced once it reads. A long write timeout: the stall
    // is not what this test is about.
    Gateway g({{"homestead.queue_max", "1000"}, {"homestead.write_timeout_s", "60"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kQueued = 16;
    constexpr int kLive = 10;
    const auto content = [&](int i) { return numbered(i, i < kQueued ? 1024 * 1024 : 512 * 1024); };
    std::vector<std::string> queued;
    for (int i = 0; i < kQueued; ++i) {
        queued.push_back(content(i));
    }
    ASSERT_NO_FATAL_FAILURE(queue_for_bot(m, queued));
    Client b(g.port());
    b.send(bot_handshake());
    // Registered: the live messages are delivered to it, not queued.
    ASSERT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 1;
    }));
    for (int i = kQueued; i < kQueued + kLive; ++i) {
        m.send(mod_message("server-1", "C", content(i)));
    }
    // Every message has been read by the server, and so handed to the bot's thread, where the
    // flush cannot end before the bot reads: they are all held.
    ASSERT_TRUE(eventually([&] {
        return g.metric("hearth_ws_messages_in_total", {{"route", "/sync"}}) ==
               2 + kQueued + kLive;  // with the two handshakes
    }));
    EXPECT_EQ(b.next(), kConnectedBot);
    for (int i = 0; i < kQueued + kLive; ++i) {
        ASSERT_EQ(content_of(b.next()), content(i)) << i;
    }
    for (int i = 0; i < kLive; ++i) {
        EXPECT_EQ(m.next(), ack("completed", "mod")) << i;
    }
    EXPECT_EQ(slow_consumer_closes(g), 0);
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

TEST_P(Homestead, ABotThatLeavesMidFlushFindsTheRestOnItsNextConnection) {
    // 24 MiB queued: more than the socket buffers hold, so the bot leaves before the flush ends.
    Gateway g({{"homestead.queue_max", "1000"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 24;
    std::vector<std::string> contents;
    for (int i = 0; i < kCount; ++i) {
        contents.push_back(numbered(i, 1024 * 1024));
    }
    ASSERT_NO_FATAL_FAILURE(queue_for_bot(m, contents));
    {
        Client first = bot(g.port());
        ASSERT_EQ(content_of(first.next()), contents[0]);
        first.ws().close();
    }
    // What was written to the first bot's socket is delivered (and removed); the rest stays.
    const double delivered = settled_after_bot_left(g, kCount);
    ASSERT_GE(delivered, 1);
    ASSERT_LT(delivered, kCount) << "the flush ended before the bot left: nothing was tested";
    Client second = bot(g.port());
    for (int i = static_cast<int>(delivered); i < kCount; ++i) {
        ASSERT_EQ(content_of(second.next()), contents[static_cast<std::size_t>(i)]) << i;
    }
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
    EXPECT_EQ(g.metric("hearth_homestead_queue_delivered_total", {{"direction", "mod_to_bot"}}),
              kCount);
    EXPECT_EQ(slow_consumer_closes(g), 0);
    expect_bot_got_nothing_more(second, m, "server-1", "C");
}

TEST_P(Homestead, ABotThatStopsReadingDuringTheFlushIsDroppedByTheWriteTimeoutAndKeepsTheRest) {
    Gateway g({{"homestead.write_timeout_s", "1"}, {"homestead.queue_max", "1000"}});
    Client m = mod(g.port(), "server-1", "C");
    constexpr int kCount = 16;
    std::vector<std::string> contents;
    for (int i = 0; i < kCount; ++i) {
        contents.push_back(numbered(i, 1024 * 1024));
    }
    ASSERT_NO_FATAL_FAILURE(queue_for_bot(m, contents));
    // A bot that never reads: once the socket buffers are full the flush's write stalls.
    RawClient stalled(g.port());
    ASSERT_EQ(stalled.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0u);
    stalled.write(client_frame(0x1, bot_handshake()));
    ASSERT_TRUE(eventually(
        [&] {
            return g.metric("hearth_ws_disconnects_total",
                            {{"route", "/sync"}, {"reason", "write_timeout"}}) >= 1;
        },
        std::chrono::seconds(30)));
    const double delivered = settled_after_bot_left(g, kCount);
    ASSERT_LT(delivered, kCount);
    EXPECT_EQ(slow_consumer_closes(g), 0);
    // The next bot gets every message that was not written to the stalled one, in order.
    Client b = bot(g.port());
    for (int i = static_cast<int>(delivered); i < kCount; ++i) {
        ASSERT_EQ(content_of(b.next()), contents[static_cast<std::size_t>(i)]) << i;
    }
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

// ---- keep-alive and limits ----------------------------------------------------------------------

TEST_P(Homestead, PingsKeepAnAnsweringClientConnected) {
    Gateway g({{"homestead.ping_interval_s", "1"}, {"homestead.read_timeout_s", "2"}});
    Client b = bot(g.port());
    // The bot reads (so Beast answers the pings) while nothing comes for longer than the read
    // timeout; then a message from a mod that connects later still reaches it.
    std::jthread later([port = g.port()] {
        std::this_thread::sleep_for(std::chrono::milliseconds(3500));
        Client m = mod(port);
        EXPECT_EQ(m.call(mod_message("server-1", "C", "alive")), ack("completed", "mod"));
    });
    EXPECT_EQ(content_of(b.next()), "alive");
    EXPECT_GE(b.ws().pings_seen(), 2);
}

TEST_P(Homestead, AClientThatSendsNothingIsClosedAfterTheReadTimeout) {
    // A short closing handshake: this client does not answer the close frame either.
    Gateway g({{"homestead.ping_interval_s", "1"},
               {"homestead.read_timeout_s", "2"},
               {"websocket.close_timeout_ms", "300"}});
    // A raw client: it never answers the pings.
    RawClient b(g.port());
    ASSERT_EQ(b.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0u);
    b.write(client_frame(0x1, bot_handshake()));
    const auto start = std::chrono::steady_clock::now();
    const auto bytes = b.read_until_eof();
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
    std::vector<RawFrame> frames;
    for (std::size_t at = 0, used = 0; at < bytes.size(); at += used) {
        auto f = parse_server_frame(bytes.substr(at), used);
        if (!f) {
            break;
        }
        frames.push_back(*f);
    }
    ASSERT_GE(frames.size(), 3u);
    EXPECT_EQ(frames.front().payload, kConnectedBot);
    EXPECT_EQ(frames[1].opcode, 0x9);  // ping
    EXPECT_EQ(frames.back().opcode, 0x8);
    EXPECT_EQ(frames.back().payload.substr(0, 2), std::string("\x03\xe9", 2));  // 1001
    // The bot is unregistered: messages for it are queued.
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 0;
    }));
    Client m = mod(g.port());
    EXPECT_EQ(m.call(mod_message("server-1", "C", "later")), ack("queued", "mod"));
}

TEST_P(Homestead, AMessageOverBodySizeClosesWith1009) {
    Gateway g({{"homestead.body_size_mb", "1"}});
    constexpr std::size_t kLimit = 1024 * 1024;
    Client b = bot(g.port());
    Client m = mod(g.port());
    // Exactly the limit is accepted.
    std::string at_limit = mod_message("server-1", "C", "big");
    at_limit.insert(at_limit.size() - 1, std::string(kLimit - at_limit.size(), ' '));
    ASSERT_EQ(at_limit.size(), kLimit);
    EXPECT_EQ(m.call(at_limit), ack("completed", "mod"));
    EXPECT_EQ(content_of(b.next()), "big");
    m.send(at_limit + " ");
    const auto closed = m.ws().wait_closed();
    EXPECT_EQ(closed.code, 1009);
}

TEST_P(Homestead, AStalledRecipientIsDroppedAfterTheWriteTimeoutAndLaterMessagesAreQueued) {
    // A big outbound bound, so that the write timeout (not the slow-consumer bound) ends it.
    Gateway g({{"homestead.write_timeout_s", "1"},
               {"homestead.queue_max", "1000"},
               {"websocket.max_outbound_bytes", "1073741824"}});
    RawClient stalled(g.port());
    ASSERT_EQ(stalled.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 101", 0), 0u);
    stalled.write(client_frame(0x1, bot_handshake()));
    EXPECT_TRUE(eventually([&] {
        return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 1;
    }));
    // It never reads: once the socket buffers are full the server's write stalls.
    Client m = mod(g.port());
    const std::string big(512 * 1024, 'x');
    constexpr int kCount = 64;
    for (int i = 0; i < kCount; ++i) {
        m.send(mod_message("server-1", "C", big + std::to_string(i)));
    }
    int completed = 0;
    int queued = 0;
    for (int i = 0; i < kCount; ++i) {
        const auto a = m.next(std::chrono::seconds(30));
        if (a == ack("completed", "mod")) {
            EXPECT_EQ(queued, 0) << "completed after queued at " << i;
            ++completed;
        } else {
            ASSERT_EQ(a, ack("queued", "mod"));
            ++queued;
        }
    }
    EXPECT_GT(queued, 0);
    EXPECT_GE(g.metric("hearth_ws_disconnects_total", {{"reason", "write_timeout"}}), 1);
    EXPECT_EQ(g.metric("hearth_homestead_connections", {{"kind", "bot"}}), 0);
    // The next bot gets every message that was not written to the stalled one.
    Client b = bot(g.port());
    for (int i = completed; i < kCount; ++i) {
        ASSERT_EQ(content_of(b.next(std::chrono::seconds(30))), big + std::to_string(i));
    }
}

TEST_P(Homestead, TheLoadGeneratorPlaysBothRoles) {
    // A short run of each role at a low rate: the tool works and its figures add up. The
    // deadline is `timeout`'s (the tool also has its own watchdog).
    Gateway g;
    for (const std::string role : {"homestead-mod", "homestead-bot"}) {
        const auto run = run_bench_drained(
            {role, "--url", "ws://127.0.0.1:" + std::to_string(g.port()) + "/sync?api_key=gateway",
             "--mods", "3", "--duration", "1", "--rate", "100", "--json"});
        ASSERT_EQ(run.exit_code, 0) << role << ": " << run.out;
        const auto report = report_of(run);
        const auto& out = run.out;
        EXPECT_EQ(report.at("connected").as_int64(), 4) << out;
        EXPECT_GT(report.at("sent").as_int64(), 0) << out;  // how many: no test of speed
        EXPECT_EQ(report.at("delivered"), report.at("sent")) << out;
        EXPECT_EQ(report.at("acks_completed"), report.at("sent")) << out;
        EXPECT_EQ(report.at("errors").as_int64(), 0) << out;
        EXPECT_EQ(report.at("latency_us").as_object().at("count"), report.at("sent")) << out;
        // The bot leaves before the next role's run needs it.
        EXPECT_TRUE(eventually([&] {
            return g.metric("hearth_homestead_connections", {{"kind", "bot"}}) == 0;
        }));
    }
}

// ---- config -------------------------------------------------------------------------------------

TEST_P(Homestead, ReloadChangesTheKeyAndQueueMax) {
    Gateway g;
    Client m = mod(g.port());
    auto schema = app::make_schema();
    TempDir dir;
    auto next = schema.load_string(
        test_config_toml(
            with_homestead({{"homestead.api_key", "\"s3cret\""}, {"homestead.queue_max", "1"}}),
            dir.path()),
        "reload.toml", {});
    ASSERT_TRUE(next.config) << (next.errors.empty() ? "" : next.errors[0]);
    g.server().app().apply(next.config);
    {
        RawClient raw(g.port());
        EXPECT_EQ(raw.upgrade("/sync?api_key=gateway").rfind("HTTP/1.1 401", 0), 0u);
    }
    // Connections already open stay; queue_max applies to later messages.
    EXPECT_EQ(m.call(mod_message("server-1", "C", "a")), ack("queued", "mod"));
    EXPECT_EQ(m.call(mod_message("server-1", "C", "b")), ack("queued", "mod"));
    Client b(g.port(), "/sync?api_key=s3cret");
    EXPECT_EQ(b.call(bot_handshake()), kConnectedBot);
    EXPECT_EQ(content_of(b.next()), "b");
    expect_bot_got_nothing_more(b, m, "server-1", "C");
}

TEST_P(Homestead, TlsListenerServesWss) {
    TempDir dir;
    const auto cert = make_test_certificate(dir.path());
    Gateway g({{"homestead.tls_cert_file", "\"" + cert.cert_file + "\""},
               {"homestead.tls_key_file", "\"" + cert.key_file + "\""}});
    Client b(g.port(), "/sync?api_key=gateway", WsOptions{.tls = true});
    EXPECT_EQ(b.call(bot_handshake()), kConnectedBot);
}

// ---- durability ---------------------------------------------------------------------------------

TEST_P(HomesteadDurability, QueuedMessagesSurviveSigkillAndArriveOnceInOrder) {
    TempDir dir;
    const std::string config = dir.file("hearth.toml");
    {
        // The test's store: a file in data_dir, or the same PostgreSQL database for every start.
        std::ofstream out(config);
        out << test_config_toml(with_homestead({{"homestead.queue_max", "100"}}), dir.file("data"));
    }
    constexpr int kCount = 60;
    const auto bots_connected = [](std::uint16_t http) {
        return metric_value(http_request(http, "GET", "/metrics").body,
                            "hearth_homestead_connections", {{"kind", "bot"}});
    };
    {
        ChildProcess server({"serve", "-c", config});
        const auto http = logged_port(server, "http");
        const auto port = logged_port(server, "homestead");
        {
            // A bot message for a channel whose mod is away.
            Client b = bot(port);
            EXPECT_EQ(b.call(bot_message("Z", "to an absent mod")), ack("queued", "bot"));
            b.ws().close();
            b.ws().wait_closed();
        }
        ASSERT_TRUE(eventually([&] { return bots_connected(http) == 0; }));
        Client m = mod(port, "server-1", "C");
        for (int i = 0; i < kCount; ++i) {
            m.send(mod_message("server-1", "C", "n" + std::to_string(i), "m" + std::to_string(i)));
        }
        for (int i = 0; i < kCount; ++i) {
            ASSERT_EQ(m.next(), ack("queued", "mod")) << i;
        }
        // Acknowledged as queued means committed: kill the process without any shutdown.
        server.signal(SIGKILL);
        EXPECT_EQ(server.wait_exit(), 128 + SIGKILL);
    }
    {
        ChildProcess server({"serve", "-c", config});
        const auto http = logged_port(server, "http");
        const auto port = logged_port(server, "homestead");
        Client mz(port);
        EXPECT_EQ(mz.call(mod_handshake("server-z", "Z")), kConnectedMod);
        EXPECT_EQ(content_of(mz.next()), "to an absent mod");
        Client b = bot(port);
        for (int i = 0; i < kCount; ++i) {
            ASSERT_EQ(content_of(b.next()), "n" + std::to_string(i));
        }
        Client m = mod(port, "server-1", "C");
        expect_bot_got_nothing_more(b, m, "server-1", "C");
        expect_mod_got_nothing_more(mz, b, "Z");
        // Delivered messages are removed from the store once written.
        EXPECT_TRUE(eventually([&] {
            const auto text = http_request(http, "GET", "/metrics").body;
            return metric_value(text, "hearth_homestead_queue_depth",
                                {{"direction", "mod_to_bot"}}) == 0 &&
                   metric_value(text, "hearth_homestead_queue_depth",
                                {{"direction", "bot_to_mod"}}) == 0;
        }));
        server.signal(SIGKILL);
        EXPECT_EQ(server.wait_exit(), 128 + SIGKILL);
    }
    // Nothing delivered comes back after another SIGKILL and restart.
    ChildProcess server({"serve", "-c", config});
    logged_port(server, "http");
    const auto port = logged_port(server, "homestead");
    Client mz(port);
    EXPECT_EQ(mz.call(mod_handshake("server-z", "Z")), kConnectedMod);
    Client b = bot(port);
    Client m = mod(port, "server-1", "C");
    expect_bot_got_nothing_more(b, m, "server-1", "C");
    expect_mod_got_nothing_more(mz, b, "Z");
}

// ---- a database crash under load
// -----------------------------------------------------------------

/// One mod sending to the offline bot as fast as its answers come back (kWindow unanswered at
/// most), recording each message's answer in order. Runs on its own thread with its own client.
class ModLoad {
public:
    static constexpr std::size_t kWindow = 32;

    ModLoad(std::uint16_t port, std::string channel)
        : channel_(std::move(channel)), client_(mod(port, "server-1", channel_)) {
        thread_ = std::thread([this] { run(); });
    }
    ~ModLoad() { finish(); }
    ModLoad(const ModLoad&) = delete;
    ModLoad& operator=(const ModLoad&) = delete;

    static std::string content(const std::string& channel, std::size_t i) {
        return channel + "-" + std::to_string(i);
    }

    /// Sends nothing more, waits for the answers to what was sent.
    void finish() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    std::size_t queued() const { return queued_.load(); }
    std::size_t failed() const { return failed_.load(); }
    /// Whether its thread is done: before finish(), only when the connection failed (error()).
    bool ended() const { return ended_.load(); }
    const std::string& channel() const { return channel_; }
    /// After finish(): each message's answer, by number ("queued" or "failed"), and what went
    /// wrong on the connection ("" when nothing).
    const std::vector<std::string>& answers() const { return answers_; }
    const std::string& error() const { return error_; }

private:
    void run() {
        struct MarkEnded {
            std::atomic<bool>& ended;
            ~MarkEnded() { ended = true; }
        } mark_ended{ended_};
        const std::string queued = ack("queued", "mod");
        const std::string failed = ack("failed", "mod");
        std::size_t sent = 0;
        try {
            for (;;) {
                while (!stop_ && sent - answers_.size() < kWindow) {
                    client_.send(mod_message("server-1", channel_, content(channel_, sent),
                                             "m" + std::to_string(sent)));
                    ++sent;
                }
                if (answers_.size() == sent) {
                    return;  // stopped, and everything sent is answered
                }
                const auto m = client_.ws().read();
                if (!m) {
                    error_ = "the connection closed";
                    return;
                }
                if (m->data == queued) {
                    answers_.push_back("queued");
                    ++queued_;
                } else if (m->data == failed) {
                    answers_.push_back("failed");
                    ++failed_;
                } else {
                    error_ = "unexpected answer: " + m->data;
                    return;
                }
            }
        } catch (const std::exception& e) {
            error_ = e.what();
        }
    }

    const std::string channel_;
    Client client_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> queued_{0};
    std::atomic<std::size_t> failed_{0};
    std::atomic<bool> ended_{false};
    std::vector<std::string> answers_;  // the thread's until it is joined
    std::string error_;                 // the thread's until ended()
    std::thread thread_;
};

TEST(HomesteadPostgres, NoAcknowledgedMessageIsLostWhenTheDatabaseIsKilledUnderLoad) {
    // PostgreSQL with its durable settings (fsync, synchronous_commit and full_page_writes on),
    // killed with SIGKILL (server and backends: a crash, no checkpoint, no flush) while mods keep
    // sending to the offline bot, then started again (crash recovery). The promise: a message
    // answered "queued" was committed, so it is delivered after the restart, once, in order.
    // Messages answered "failed" (the database was gone, or a COMMIT was cut off so its outcome
    // is unknown) may or may not arrive, at most once.
    store::test::PostgresServer database({.durable = true});
    TempDir dir;
    const std::string config = dir.file("hearth.toml");
    {
        std::ofstream out(config);
        out << test_config_toml(
            with_homestead({{"homestead.queue_max", "1000000"},
                            // While the database is gone, "failed" answers come back at once and
                            // each mod sends thousands a second: past the default rate limit the
                            // gateway closes it (1008) when the restart takes a few seconds.
                            {"websocket.max_messages_per_s", "0"},
                            {"storage.driver", "\"postgres\""},
                            {"storage.postgres_url", "\"" + database.create_database() + "\""}}),
            dir.file("data"));
    }
    ChildProcess server({"serve", "-c", config});
    const auto http = logged_port(server, "http");
    const auto port = logged_port(server, "homestead");

    std::vector<std::unique_ptr<ModLoad>> mods;
    for (int i = 0; i < 4; ++i) {
        mods.push_back(std::make_unique<ModLoad>(port, "C" + std::to_string(i)));
    }
    const auto total = [&](auto count) {
        std::size_t n = 0;
        for (const auto& m : mods) {
            n += ((*m).*count)();
        }
        return n;
    };
    // A phase ends when `reached`, or early when a mod's connection failed; the failure says
    // where each mod stands.
    const auto phase = [&](auto reached) {
        const auto any_ended = [&] {
            return std::any_of(mods.begin(), mods.end(), [](const auto& m) { return m->ended(); });
        };
        if (eventually([&] { return reached() || any_ended(); }, std::chrono::seconds(60)) &&
            !any_ended()) {
            return testing::AssertionSuccess();
        }
        auto failure = testing::AssertionFailure();
        for (const auto& m : mods) {
            failure << m->channel() << ": " << m->queued() << " queued, " << m->failed()
                    << " failed" << (m->ended() ? ", ended: " + m->error() : "") << "; ";
        }
        return failure;
    };
    // Under way: every mod's messages are being committed.
    ASSERT_TRUE(phase([&] {
        return std::all_of(mods.begin(), mods.end(),
                           [](const auto& m) { return m->queued() >= 50; });
    }));
    database.kill();
    // While it is gone, messages are answered "failed" (none is answered "queued" by mistake:
    // checked below, since every one of them must then arrive).
    ASSERT_TRUE(phase([&] { return total(&ModLoad::failed) >= 20; }));
    database.start();
    // The store reconnects by itself and commits again.
    const std::size_t queued_before_restart = total(&ModLoad::queued);
    ASSERT_TRUE(phase([&] { return total(&ModLoad::queued) >= queued_before_restart + 200; }));
    for (auto& m : mods) {
        m->finish();
        ASSERT_EQ(m->error(), "") << m->channel();
    }

    // The bot gets every queued message, then the probe sent once it is online.
    Client b = bot(port);
    Client prober = mod(port, "server-1", "P");
    EXPECT_EQ(prober.call(mod_message("server-1", "P", "probe")), ack("completed", "mod"));
    std::map<std::string, std::vector<std::size_t>> delivered;  // channel -> numbers, as received
    std::size_t frames = 0;
    const std::size_t most = total(&ModLoad::queued) + total(&ModLoad::failed) + 1;
    for (;;) {
        const std::string frame = b.next();
        ASSERT_FALSE(frame.empty());
        const std::string content = content_of(frame);
        if (content == "probe") {
            break;
        }
        ASSERT_LT(++frames, most) << "more messages than were sent";
        const auto dash = content.rfind('-');
        ASSERT_NE(dash, std::string::npos) << content;
        delivered[content.substr(0, dash)].push_back(std::stoul(content.substr(dash + 1)));
    }

    std::size_t queued_total = 0;
    std::size_t failed_total = 0;
    std::size_t failed_delivered = 0;
    for (const auto& m : mods) {
        SCOPED_TRACE(m->channel());
        const auto& answers = m->answers();
        const auto& got = delivered[m->channel()];
        // In order, each at most once.
        EXPECT_TRUE(std::is_sorted(got.begin(), got.end()) &&
                    std::adjacent_find(got.begin(), got.end()) == got.end());
        std::vector<bool> arrived(answers.size(), false);
        for (const auto n : got) {
            ASSERT_LT(n, answers.size()) << "a message that was never sent";
            arrived[n] = true;
        }
        for (std::size_t n = 0; n < answers.size(); ++n) {
            if (answers[n] == "queued") {
                ++queued_total;
                EXPECT_TRUE(arrived[n])
                    << ModLoad::content(m->channel(), n) << " was answered \"queued\" and is lost";
            } else {
                ++failed_total;
                failed_delivered += arrived[n] ? 1 : 0;
            }
        }
    }
    // The database died mid-load: some messages failed, and some were queued on either side of
    // the crash.
    EXPECT_GT(failed_total, 0U);
    EXPECT_GE(queued_total, queued_before_restart + 200);
    std::cout << "[ crash    ] " << queued_total << " messages answered queued (all delivered), "
              << failed_total << " failed (" << failed_delivered << " of them delivered)\n";

    // Delivered messages are removed from the store once written.
    EXPECT_TRUE(eventually([&] {
        return metric_value(http_request(http, "GET", "/metrics").body,
                            "hearth_homestead_queue_depth", {{"direction", "mod_to_bot"}}) == 0;
    }));
}

}  // namespace
}  // namespace hearth::test
