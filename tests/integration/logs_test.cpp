// The live logs stream with real clients: POST /logs/add and WS /logs/listen on the HTTP API
// listener and on the HunterPie listener, batches, the client's key order, room rules, the body
// limit, and the server's own log lines.

#include <cctype>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "core/metrics.hpp"
#include "logs/log_stream.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"
#include "util/log.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

/// One received frame: its entries, parsed (key order preserved), and the raw text.
struct Frame {
    std::string raw;
    std::vector<json::object> entries;
};

std::string msg_of(const json::object& e) {
    const auto* m = e.if_contains("msg");
    return m && m->is_string() ? std::string(m->get_string()) : std::string();
}

/// A /logs/listen client.
class Listener {
public:
    Listener(std::uint16_t port, const std::string& path) : ws_(port, WsOptions{.path = path}) {}

    /// Reads frames until every message in `needed` has been seen; returns every frame read. Fails
    /// the test on close; throws past the deadline.
    std::vector<Frame> until(std::set<std::string> needed) {
        std::vector<Frame> frames;
        const auto deadline = std::chrono::steady_clock::now() + kDeadline;
        while (!needed.empty()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                throw std::runtime_error("deadline passed waiting for log entries");
            }
            auto m = ws_.read(left);
            if (!m) {
                ADD_FAILURE() << "listener closed";
                return frames;
            }
            EXPECT_TRUE(m->text);
            Frame f{m->data, {}};
            auto v = json::parse(m->data);
            EXPECT_TRUE(v.is_array()) << m->data;
            for (auto& e : v.as_array()) {
                f.entries.push_back(e.as_object());
                needed.erase(msg_of(e.as_object()));
            }
            frames.push_back(std::move(f));
        }
        return frames;
    }

private:
    WsClient ws_;
};

/// Every client entry (user not "server") in `frames`, in arrival order.
std::vector<json::object> client_entries(const std::vector<Frame>& frames) {
    std::vector<json::object> out;
    for (const auto& f : frames) {
        for (const auto& e : f.entries) {
            const auto* u = e.if_contains("user");
            if (!(u && u->is_string() && u->get_string() == "server")) {
                out.push_back(e);
            }
        }
    }
    return out;
}

std::vector<std::string> keys(const json::object& o) {
    std::vector<std::string> k;
    for (const auto& kv : o) {
        k.emplace_back(kv.key());
    }
    return k;
}

void post(std::uint16_t port, const std::string& body, const std::string& prefix = "") {
    auto r = http_request(port, "POST", prefix + "/logs/add", body,
                          {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "");
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
}

int probe_counter = 0;

/// Posts a probe entry in the "" room and waits until every listener has it: once that returns, the
/// listeners are registered and everything posted earlier has been delivered to them.
void sync(std::uint16_t port, std::vector<Listener*> listeners) {
    const std::string probe = "probe-" + std::to_string(++probe_counter);
    post(port, R"({"msg":")" + probe + R"("})");
    for (auto* l : listeners) {
        l->until({probe});
    }
}

TEST(Logs, PostedEntriesArriveInOneBatchWithServerFieldsAndKeyOrder) {
    TestServer server;
    const auto port = server.port();
    const double before = server.metric("hearth_logs_entries_total");
    Listener all(port, "/logs/listen");
    sync(port, {&all});

    post(port, R"({"timestamp":1,"level":"info","msg":"one","text":"t1","user":"u","room":"r"})");
    auto frames = all.until({"one"});
    auto entries = client_entries(frames);
    ASSERT_EQ(entries.size(), 1U);
    EXPECT_EQ(keys(entries[0]),
              (std::vector<std::string>{"timestamp", "level", "msg", "text", "user", "room",
                                        "serverTime", "seqNumber"}));
    EXPECT_EQ(entries[0].at("room").as_string(), "r");
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    EXPECT_LE(entries[0].at("serverTime").to_number<std::int64_t>(), now_ms);
    EXPECT_GT(entries[0].at("serverTime").to_number<std::int64_t>(), now_ms - 10'000);

    // An array, in a room of its own: one frame holds all of it, in order, seqNumbers increasing.
    post(port,
         R"([{"user":"a","msg":"a1","room":"batch"},{"msg":"a2","level":"warn","room":"batch"},)"
         R"({"room":"batch","msg":"a3"}])");
    frames = all.until({"a3"});
    const Frame* batch = nullptr;
    for (const auto& f : frames) {
        if (!f.entries.empty() && f.entries.front().at("room").as_string() == "batch") {
            batch = &f;
        }
    }
    ASSERT_NE(batch, nullptr);
    ASSERT_EQ(batch->entries.size(), 3U) << batch->raw;
    EXPECT_EQ(msg_of(batch->entries[0]), "a1");
    EXPECT_EQ(msg_of(batch->entries[2]), "a3");
    EXPECT_EQ(keys(batch->entries[1]),
              (std::vector<std::string>{"msg", "level", "room", "serverTime", "seqNumber"}));
    auto seq = [](const json::object& e) { return e.at("seqNumber").to_number<std::uint64_t>(); };
    EXPECT_GT(seq(batch->entries[0]), seq(entries[0]));
    EXPECT_LT(seq(batch->entries[0]), seq(batch->entries[1]));
    EXPECT_LT(seq(batch->entries[1]), seq(batch->entries[2]));
    // The raw frame keeps the client's key order too.
    EXPECT_NE(batch->raw.find(R"({"user":"a","msg":"a1","room":"batch","serverTime":)"),
              std::string::npos)
        << batch->raw;

    // No room: room "" is appended after the client's keys.
    post(port, R"({"msg":"noroom","user":"z"})");
    entries = client_entries(all.until({"noroom"}));
    ASSERT_FALSE(entries.empty());
    EXPECT_EQ(keys(entries.back()),
              (std::vector<std::string>{"msg", "user", "room", "serverTime", "seqNumber"}));
    EXPECT_EQ(entries.back().at("room").as_string(), "");

    EXPECT_GE(server.metric("hearth_logs_entries_total") - before, 6);
    EXPECT_EQ(server.metric("hearth_logs_dropped_total"), 0);
}

TEST(Logs, RoomRules) {
    TestServer server;
    const auto port = server.port();
    Listener all(port, "/logs/listen");
    Listener a(port, "/logs/listen?room=A");
    Listener b(port, "/logs/listen?roomId=B");
    sync(port, {&all, &a, &b});

    post(port, R"([{"msg":"e0"},{"room":"A","msg":"a1"},{"room":"B","msg":"b1"}])");
    // Markers in every room, in a later request: once a listener has its rooms' markers, it has
    // every earlier entry of those rooms.
    post(port, R"([{"room":"A","msg":"endA"},{"room":"B","msg":"endB"},{"msg":"end"}])");
    auto seen_all = client_entries(all.until({"end", "endA", "endB"}));
    auto seen_a = client_entries(a.until({"end", "endA"}));
    auto seen_b = client_entries(b.until({"end", "endB"}));
    // A later probe flushes out anything still on its way from those batches.
    const std::string probe = "probe-" + std::to_string(++probe_counter);
    post(port, R"({"msg":")" + probe + R"("})");
    for (auto [l, seen] : {std::pair{&a, &seen_a}, std::pair{&b, &seen_b}}) {
        for (auto& e : client_entries(l->until({probe}))) {
            seen->push_back(e);
        }
    }
    auto msgs = [](const std::vector<json::object>& entries) {
        std::set<std::string> s;
        for (const auto& e : entries) {
            if (msg_of(e).rfind("probe-", 0) != 0) {
                s.insert(msg_of(e));
            }
        }
        return s;
    };
    EXPECT_EQ(msgs(seen_all), (std::set<std::string>{"e0", "a1", "b1", "end", "endA", "endB"}));
    EXPECT_EQ(msgs(seen_a), (std::set<std::string>{"e0", "a1", "end", "endA"}));
    EXPECT_EQ(msgs(seen_b), (std::set<std::string>{"e0", "b1", "end", "endB"}));
}

TEST(Logs, BodyLimitAndBadRequests) {
    TestServer server;
    const auto port = server.port();
    // Exactly at the limit: accepted.
    const std::string head = R"({"msg":")";
    const std::string tail = R"("})";
    std::string at_limit = head + std::string(102'400 - head.size() - tail.size(), 'x') + tail;
    ASSERT_EQ(at_limit.size(), 102'400U);
    EXPECT_EQ(http_request(port, "POST", "/logs/add", at_limit).status, 200);
    std::string over = head + std::string(102'401 - head.size() - tail.size(), 'x') + tail;
    auto r = http_request(port, "POST", "/logs/add", over);
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");

    r = http_request(port, "POST", "/logs/add", "{not json");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("not valid JSON"), std::string::npos) << r.body;
    r = http_request(port, "POST", "/logs/add", "[1,2]");
    EXPECT_EQ(r.status, 400);
    r = http_request(port, "POST", "/logs/add", R"({"room":5})");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("room"), std::string::npos) << r.body;
}

TEST(Logs, ServerLogLinesAreEntries) {
    TestServer server;
    const auto port = server.port();
    Listener all(port, "/logs/listen");
    sync(port, {&all});
    const std::string marker = "logs-test-marker-" + std::to_string(port);
    util::logger("test")->info("{}", marker);
    auto frames = all.until({marker});
    const json::object* line = nullptr;
    for (const auto& f : frames) {
        for (const auto& e : f.entries) {
            if (msg_of(e) == marker) {
                line = &e;
            }
        }
    }
    ASSERT_NE(line, nullptr);
    EXPECT_EQ(line->at("user").as_string(), "server");
    EXPECT_EQ(line->at("room").as_string(), "");
    EXPECT_EQ(line->at("level").as_string(), "INFO");
    EXPECT_TRUE(line->at("timestamp").is_int64());
    const std::string text(line->at("text").as_string());
    EXPECT_TRUE(std::regex_match(text, std::regex(R"(\d\d:\d\d:\d\d:\d\d\d \[INFO\] )" + marker)))
        << text;
    EXPECT_EQ(keys(*line), (std::vector<std::string>{"timestamp", "level", "msg", "text", "user",
                                                     "room", "serverTime", "seqNumber"}));
}

TEST(Logs, BothListenersServeTheRoutes) {
    TestServer server({{"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""},
                       {"hunterpie.path_prefix", "\"/hp\""}});
    const auto http = server.port();
    const auto hp = server.app().server().bound_port("hunterpie");
    ASSERT_NE(hp, http);
    Listener on_http(http, "/logs/listen");
    Listener on_hp(hp, "/hp/logs/listen?room=X");
    sync(http, {&on_http, &on_hp});
    post(hp, R"({"room":"X","msg":"via-hunterpie"})", "/hp");
    post(http, R"({"room":"X","msg":"via-http"})");
    on_http.until({"via-hunterpie", "via-http"});
    on_hp.until({"via-hunterpie", "via-http"});
    auto r =
        http_request(hp, "OPTIONS", "/hp/logs/add", "",
                     {{"Access-Control-Request-Method", "POST"}, {"Origin", "http://example.com"}});
    EXPECT_EQ(r.status, 204);
    EXPECT_EQ(r.headers["access-control-allow-origin"], "*");
    // Not compressed even when the client offers it.
    WsClient compressed(hp, WsOptions{.path = "/hp/logs/listen", .compression = true});
    EXPECT_EQ(compressed.upgrade_headers().count("sec-websocket-extensions"), 0U);
    EXPECT_EQ(compressed.upgrade_headers().count("Sec-WebSocket-Extensions"), 0U);
}

/// Records what the stream sends; no socket (the bounds are pure logic).
class RecordingConnection final : public Connection {
public:
    ConnectionId id() const noexcept override { return ConnectionId{1}; }
    const std::string& peer_address() const noexcept override { return address_; }
    const std::string& route() const noexcept override { return address_; }
    SendResult send(SharedPayload message) override {
        sent.push_back(std::string(message->bytes()));
        return SendResult::kQueued;
    }
    SendResult send(SharedPayload message, std::function<void(bool)>) override {
        return send(std::move(message));
    }
    void close(std::uint16_t, std::string_view) override {}
    bool compressed() const noexcept override { return false; }
    std::size_t outbound_bytes() const noexcept override { return 0; }

    std::vector<std::string> sent;

private:
    std::string address_ = "test";
};

TEST(Logs, PendingBoundsDropOldestAndCount) {
    core::MetricsRegistry metrics;
    auto stream = std::make_shared<logs::LogStream>(
        metrics, logs::LogStreamLimits{.max_pending_per_room = 2, .max_pending_rooms = 2});
    auto connection = std::make_shared<RecordingConnection>();
    (void)stream->add_listener(ConnectionHandle(connection), std::nullopt);
    auto entry = [](const std::string& room, const std::string& msg) {
        json::object o;
        o["room"] = room;
        o["msg"] = msg;
        return o;
    };
    ASSERT_TRUE(stream->ingest(entry("a", "1")).has_value());
    ASSERT_TRUE(stream->ingest(entry("a", "2")).has_value());
    ASSERT_TRUE(stream->ingest(entry("a", "3")).has_value());  // drops "1"
    ASSERT_TRUE(stream->ingest(entry("b", "4")).has_value());
    ASSERT_TRUE(stream->ingest(entry("c", "5")).has_value());  // a third room: dropped
    EXPECT_FALSE(stream->ingest(json::parse(R"({"room":7})").as_object()).has_value());
    stream->flush();
    ASSERT_EQ(connection->sent.size(), 2U);
    auto a = json::parse(connection->sent[0]).as_array();
    ASSERT_EQ(a.size(), 2U);
    EXPECT_EQ(msg_of(a[0].as_object()), "2");
    EXPECT_EQ(msg_of(a[1].as_object()), "3");
    EXPECT_EQ(msg_of(json::parse(connection->sent[1]).as_array()[0].as_object()), "4");
    const auto text = metrics.render();
    EXPECT_EQ(metric_value(text, "hearth_logs_dropped_total", {}), 2);
    EXPECT_EQ(metric_value(text, "hearth_logs_entries_total", {}), 5);

    // The byte bound: the oldest of the room go first; with nothing left there, the new entry.
    core::MetricsRegistry metrics2;
    auto small = std::make_shared<logs::LogStream>(metrics2,
                                                   logs::LogStreamLimits{.max_pending_bytes = 200});
    auto c2 = std::make_shared<RecordingConnection>();
    (void)small->add_listener(ConnectionHandle(c2), std::string("a"));
    ASSERT_TRUE(small->ingest(entry("a", std::string(100, 'x'))).has_value());
    ASSERT_TRUE(small->ingest(entry("a", std::string(100, 'y'))).has_value());  // drops the x entry
    // Room a holds the bytes and room b has nothing to drop: the new entry goes.
    ASSERT_TRUE(small->ingest(entry("b", std::string(100, 'z'))).has_value());
    small->flush();
    ASSERT_EQ(c2->sent.size(), 1U);
    auto only = json::parse(c2->sent[0]).as_array();
    ASSERT_EQ(only.size(), 1U);
    EXPECT_EQ(msg_of(only[0].as_object()), std::string(100, 'y'));
    EXPECT_EQ(metric_value(metrics2.render(), "hearth_logs_dropped_total", {}), 2);
}

/// The response head's lines after the status line, with lower-case names.
std::map<std::string, std::string> head_fields(const std::string& head) {
    std::map<std::string, std::string> out;
    std::size_t pos = head.find("\r\n") + 2;
    while (pos + 2 <= head.size()) {
        const auto end = head.find("\r\n", pos);
        if (end == pos) {
            break;
        }
        const auto line = head.substr(pos, end - pos);
        const auto colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (char& c : name) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        EXPECT_EQ(out.count(name), 0U) << "twice: " << name;
        const auto value_at = line.find_first_not_of(' ', colon + 1);
        out[name] = value_at == std::string::npos ? std::string() : line.substr(value_at);
        pos = end + 2;
    }
    return out;
}

TEST(Logs, AddAnswersExactlyAsTheOriginal) {
    TestServer server;
    const auto port = server.port();
    RawClient raw(port);
    const std::string body = R"({"msg":"raw"})";
    raw.write(
        "POST /logs/add HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    const std::string bytes = raw.read_until_eof();
    const auto end = bytes.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << bytes;
    const std::string head = bytes.substr(0, end + 4);
    EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0U) << head;
    const auto fields = head_fields(head);
    // 200 with no Content-Type at all (not even an empty one) and an empty body, like Express's
    // res.end(); CORS as everywhere.
    EXPECT_EQ(fields.count("content-type"), 0U) << head;
    EXPECT_EQ(fields.at("content-length"), "0") << head;
    EXPECT_EQ(fields.at("access-control-allow-origin"), "*") << head;
    EXPECT_EQ(bytes.size(), head.size()) << bytes;

    // The preflight has no Content-Type either (the cors middleware's 204).
    RawClient preflight(port);
    preflight.write(
        "OPTIONS /logs/add HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://example.com\r\n"
        "Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
    const std::string pre = preflight.read_until_eof();
    EXPECT_EQ(pre.rfind("HTTP/1.1 204 No Content\r\n", 0), 0U) << pre;
    EXPECT_EQ(head_fields(pre.substr(0, pre.find("\r\n\r\n") + 4)).count("content-type"), 0U)
        << pre;
}

}  // namespace
}  // namespace hearth::test
