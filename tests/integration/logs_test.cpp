// The live logs stream with real clients: POST /logs/add and WS /logs/listen on the HTTP API
// listener and on the HunterPie listener, batches, the client's key order, room rules, the body
// limit, the server's own log lines, and who may receive them (LogsAccess: refusals first).

#include <cctype>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
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
#include "support/log_capture.hpp"
#include "support/server.hpp"
#include "support/store_backend.hpp"
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
    Listener(std::uint16_t port, const std::string& path,
             std::map<std::string, std::string> headers = {})
        : ws_(port, WsOptions{.path = path, .headers = std::move(headers)}) {}

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

    const std::map<std::string, std::string>& upgrade_headers() const {
        return ws_.upgrade_headers();
    }

private:
    WsClient ws_;
};

/// Whether any entry of `frames` is one of the server's own lines.
bool has_server_line(const std::vector<Frame>& frames) {
    for (const auto& f : frames) {
        for (const auto& e : f.entries) {
            if (const auto* u = e.if_contains("user");
                u && u->is_string() && u->get_string() == "server") {
                return true;
            }
        }
    }
    return false;
}

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

// Every test runs on SQLite and on PostgreSQL (support/store_backend.hpp).
class Logs : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(Logs);

class LogsAccess : public StoreBackendTest {};
HEARTH_INSTANTIATE_STORE_BACKENDS(LogsAccess);

TEST_P(Logs, PostedEntriesArriveInOneBatchWithServerFieldsAndKeyOrder) {
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

TEST_P(Logs, RoomRules) {
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

TEST_P(Logs, BodyLimitAndBadRequests) {
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
    // Every refusal is counted by its reason.
    EXPECT_EQ(
        server.metric("hearth_logs_refused_total",
                      {{"listener", "http"}, {"route", "/logs/add"}, {"reason", "too_large"}}),
        1);
    EXPECT_EQ(
        server.metric("hearth_logs_refused_total",
                      {{"listener", "http"}, {"route", "/logs/add"}, {"reason", "invalid_json"}}),
        1);
    EXPECT_EQ(
        server.metric("hearth_logs_refused_total",
                      {{"listener", "http"}, {"route", "/logs/add"}, {"reason", "invalid_entry"}}),
        2);
}

constexpr const char* kAdminToken = "logs-listen-admin-token";

Overrides with_admin_token(Overrides o = {}) {
    o["http.admin_token"] = std::string("\"") + kAdminToken + "\"";
    return o;
}

std::map<std::string, std::string> bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
}

TEST_P(Logs, ServerLogLinesAreEntries) {
    TestServer server(with_admin_token());
    const auto port = server.port();
    Listener all(port, "/logs/listen", bearer(kAdminToken));
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

TEST_P(Logs, BothListenersServeTheRoutes) {
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

TEST(LogStream, PendingBoundsDropOldestAndCount) {
    core::MetricsRegistry metrics;
    auto stream = std::make_shared<logs::LogStream>(
        metrics, logs::LogStreamLimits{.max_pending_per_room = 2, .max_pending_rooms = 2});
    auto connection = std::make_shared<RecordingConnection>();
    (void)stream->add_listener(ConnectionHandle(connection), std::nullopt, logs::Audience::kPublic);
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
    (void)small->add_listener(ConnectionHandle(c2), std::string("a"), logs::Audience::kPublic);
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

// ---- who may listen to the server's own lines ---------------------------------------------------

/// The subprotocols a browser offers to pass `token` (docs/logs.md).
std::map<std::string, std::string> subprotocol(const std::string& token) {
    return {{"Sec-WebSocket-Protocol", "hearth.logs, hearth.bearer." + base64url(token)}};
}

std::string error_code_of(const UpgradeRefusal& r) {
    if (!r.body.is_object()) {
        return {};
    }
    return std::string(r.body.at("error").at("code").as_string());
}

double refused(const TestServer& server, const std::string& reason,
               const std::string& route = "/logs/listen", const std::string& listener = "http") {
    return server.metric("hearth_logs_refused_total",
                         {{"listener", listener}, {"route", route}, {"reason", reason}});
}

/// A session token of a new account with `role`, created through the operator API.
std::string account_token(std::uint16_t port, const std::string& user, const std::string& role) {
    const std::string password = "a long enough password";
    auto created = http_request(port, "POST", "/api/v1/accounts",
                                R"({"username":")" + user + R"(","password":")" + password +
                                    R"(","roles":[")" + role + R"("]})",
                                {{"Authorization", std::string("Bearer ") + kAdminToken},
                                 {"Content-Type", "application/json"}});
    EXPECT_EQ(created.status, 201) << created.body;
    auto login = http_request(port, "POST", "/api/v1/auth/login",
                              R"({"username":")" + user + R"(","password":")" + password + R"("})",
                              {{"Content-Type", "application/json"}});
    EXPECT_EQ(login.status, 200) << login.body;
    return std::string(json::parse(login.body).at("token").as_string());
}

int marker_counter = 0;

/// Logs a server line and waits until `witness` (a listener that gets the server's lines) has it;
/// then a posted probe reaches every one of `others`. Once this returns, the server line was sent
/// to whoever was to get it before the probe, on the same connections: returns what `others`
/// read, one vector each.
std::vector<std::vector<Frame>> log_server_line(std::uint16_t port, Listener& witness,
                                                std::vector<Listener*> others) {
    const std::string marker = "server-line-marker-" + std::to_string(++marker_counter);
    util::logger("test")->info("{}", marker);
    witness.until({marker});
    const std::string probe = "probe-" + std::to_string(++probe_counter);
    post(port, R"({"msg":")" + probe + R"("})");
    std::vector<std::vector<Frame>> seen;
    for (auto* l : others) {
        seen.push_back(l->until({probe}));
    }
    return seen;
}

TEST_P(LogsAccess, AnonymousListenersGetPostedEntriesButNotTheServerLines) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdminToken + "\""},
                       {"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""},
                       {"hunterpie.path_prefix", "\"/hp\""}});
    const auto port = server.port();
    const auto hp = server.app().server().bound_port("hunterpie");
    Listener anonymous(port, "/logs/listen");
    Listener anonymous_room(port, "/logs/listen?room=r");
    Listener anonymous_hp(hp, "/hp/logs/listen");
    Listener operator_(port, "/logs/listen", bearer(kAdminToken));
    sync(port, {&anonymous, &anonymous_room, &anonymous_hp, &operator_});

    // Posted entries stay public, in every room; the server's lines do not.
    post(port, R"([{"msg":"public-room","room":"r"},{"msg":"public-common"}])");
    const auto seen =
        log_server_line(port, operator_, {&anonymous, &anonymous_room, &anonymous_hp});
    for (const auto& frames : seen) {
        EXPECT_FALSE(has_server_line(frames));
    }
    auto msgs = [](const std::vector<Frame>& frames) {
        std::set<std::string> out;
        for (const auto& e : client_entries(frames)) {
            out.insert(msg_of(e));
        }
        return out;
    };
    EXPECT_TRUE(msgs(seen[0]).contains("public-room"));
    EXPECT_TRUE(msgs(seen[0]).contains("public-common"));
    EXPECT_TRUE(msgs(seen[1]).contains("public-room"));
    EXPECT_TRUE(msgs(seen[2]).contains("public-common"));
    // No refusal: an anonymous listener is not refused, only given less.
    EXPECT_EQ(refused(server, "invalid_token"), 0);
}

TEST_P(LogsAccess, WrongTokensAreRefusedAndLoggedWithoutTheToken) {
    TestServer server(with_admin_token());
    const auto port = server.port();
    LogCapture logged;
    const std::string wrong = "not-the-admin-token-1234";

    auto r = refused_upgrade(port, "/logs/listen", bearer(wrong));
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(error_code_of(r), "unauthorized");
    EXPECT_EQ(r.headers["content-type"], "application/json");
    EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
    EXPECT_EQ(refused(server, "invalid_token"), 1);

    r = refused_upgrade(port, "/logs/listen", subprotocol(wrong));
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(error_code_of(r), "unauthorized");
    EXPECT_EQ(refused(server, "invalid_token"), 2);

    // Not base64url, another scheme, and an empty Bearer token: refused the same way.
    r = refused_upgrade(port, "/logs/listen",
                        {{"Sec-WebSocket-Protocol", "hearth.logs, hearth.bearer.not/base64"}});
    EXPECT_EQ(r.status, 401);
    r = refused_upgrade(port, "/logs/listen", {{"Authorization", "Basic " + base64url(wrong)}});
    EXPECT_EQ(r.status, 401);
    r = refused_upgrade(port, "/logs/listen", {{"Authorization", "Bearer "}});
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(refused(server, "invalid_token"), 5);

    // Each refusal is logged, with the peer and the reason, never the token in any form.
    logged.wait_for({"refused /logs/listen on http from 127.0.0.1:", "invalid_token", "HTTP 401"});
    EXPECT_FALSE(logged.contains(wrong));
    EXPECT_FALSE(logged.contains(base64url(wrong)));

    // With no admin token configured, any token is refused by the operator check itself (a
    // well-formed one, so that the subprotocol's parsing is not what refuses it).
    TestServer open_server;
    EXPECT_EQ(refused_upgrade(open_server.port(), "/logs/listen", subprotocol("x")).status, 401);
    EXPECT_EQ(refused(open_server, "invalid_token"), 1);
}

TEST_P(LogsAccess, ANonAdminAccountTokenIsRefused) {
    TestServer server(with_admin_token());
    const auto port = server.port();
    const auto player = account_token(port, "plain-player", "player");
    LogCapture logged;
    auto r = refused_upgrade(port, "/logs/listen", subprotocol(player));
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(error_code_of(r), "forbidden");
    r = refused_upgrade(port, "/logs/listen", bearer(player));
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(refused(server, "not_admin"), 2);
    logged.wait_for({"refused /logs/listen", "not_admin", "HTTP 403"});
    EXPECT_FALSE(logged.contains(player));

    // An admin account's session token is an operator token.
    const auto admin = account_token(port, "log-admin", "admin");
    Listener operator_(port, "/logs/listen?room=x", subprotocol(admin));
    EXPECT_EQ(operator_.upgrade_headers().at("sec-websocket-protocol"), "hearth.logs");
    sync(port, {&operator_});
    log_server_line(port, operator_, {});
    logged.wait_for({"operator listener (account:log-admin)"});
    EXPECT_FALSE(logged.contains(admin));
}

TEST_P(LogsAccess, AForeignOriginIsRefusedForOperatorStreams) {
    TestServer server(
        with_admin_token({{"logs.allowed_origins", R"(["https://console.example"])"}}));
    const auto port = server.port();
    LogCapture logged;
    auto headers = bearer(kAdminToken);
    headers["Origin"] = "http://evil.example";
    auto r = refused_upgrade(port, "/logs/listen", headers);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(error_code_of(r), "forbidden_origin");
    EXPECT_NE(r.body.at("error").at("message").as_string().find("Origin"), std::string::npos);
    // The same host on another port is another origin; so is a sandboxed page's "null".
    headers["Origin"] = "http://127.0.0.1:1";
    EXPECT_EQ(refused_upgrade(port, "/logs/listen", headers).status, 403);
    auto via_subprotocol = subprotocol(kAdminToken);
    via_subprotocol["Origin"] = "null";
    EXPECT_EQ(refused_upgrade(port, "/logs/listen", via_subprotocol).status, 403);
    EXPECT_EQ(refused(server, "forbidden_origin"), 3);
    logged.wait_for({"refused /logs/listen", "forbidden_origin", "Origin http://evil.example"});
    EXPECT_FALSE(logged.contains(kAdminToken));

    // The server's own origin (Host is 127.0.0.1 for these clients), an allowed one, and no
    // Origin at all (not a browser) are accepted.
    for (const std::string origin : {"http://127.0.0.1", "https://127.0.0.1",
                                     "https://console.example", "HTTPS://CONSOLE.EXAMPLE", ""}) {
        SCOPED_TRACE(origin);
        auto h = subprotocol(kAdminToken);
        if (!origin.empty()) {
            h["Origin"] = origin;
        }
        Listener ok(port, "/logs/listen", h);
        sync(port, {&ok});
    }
    // Without a token a foreign page gets what the original gives it: the posted entries.
    Listener anonymous(port, "/logs/listen", {{"Origin", "http://evil.example"}});
    sync(port, {&anonymous});
    EXPECT_EQ(refused(server, "forbidden_origin"), 3);
}

TEST_P(LogsAccess, TheAdminTokenGetsTheServerLinesOnEitherListener) {
    TestServer server(with_admin_token({{"hunterpie.enabled", "true"},
                                        {"hunterpie.listen", "\"127.0.0.1:0\""},
                                        {"hunterpie.path_prefix", "\"/hp\""}}));
    const auto port = server.port();
    const auto hp = server.app().server().bound_port("hunterpie");
    Listener header(port, "/logs/listen", bearer(kAdminToken));
    Listener browser(hp, "/hp/logs/listen?room=r", subprotocol(kAdminToken));
    // The subprotocol that names the stream is selected, never the one with the token.
    EXPECT_EQ(browser.upgrade_headers().at("sec-websocket-protocol"), "hearth.logs");
    EXPECT_EQ(header.upgrade_headers().count("sec-websocket-protocol"), 0U);
    sync(port, {&header, &browser});
    const auto seen = log_server_line(port, header, {&browser});
    EXPECT_TRUE(has_server_line(seen[0]));
    for (const auto& reason : {"forbidden_origin", "invalid_token", "not_admin", "unavailable"}) {
        EXPECT_EQ(refused(server, reason), 0) << reason;
    }
}

TEST_P(LogsAccess, PublicServerLinesRestoreThePublicStreamUntilAReloadTurnsThemOff) {
    Overrides overrides = with_admin_token({{"logs.public_server_lines", "true"},
                                            {"hunterpie.enabled", "true"},
                                            {"hunterpie.listen", "\"127.0.0.1:0\""}});
    TestServer server(overrides);
    const auto port = server.port();
    const auto hp = server.app().server().bound_port("hunterpie");
    Listener anonymous(port, "/logs/listen");
    Listener anonymous_hp(hp, "/logs/listen?room=r");
    Listener operator_(port, "/logs/listen", bearer(kAdminToken));
    sync(port, {&anonymous, &anonymous_hp, &operator_});
    auto seen = log_server_line(port, operator_, {&anonymous, &anonymous_hp});
    EXPECT_TRUE(has_server_line(seen[0]));
    EXPECT_TRUE(has_server_line(seen[1]));

    // A reload that turns them off applies to the listeners already connected.
    overrides["logs.public_server_lines"] = "false";
    const auto schema = app::make_schema();
    auto loaded =
        schema.load_string(test_config_toml(overrides, "unused-data-dir"), "test.toml", {});
    ASSERT_TRUE(loaded.config);
    server.app().apply(loaded.config);
    seen = log_server_line(port, operator_, {&anonymous, &anonymous_hp});
    EXPECT_FALSE(has_server_line(seen[0]));
    EXPECT_FALSE(has_server_line(seen[1]));
}

TEST_P(LogsAccess, AllowedOriginsMustBeOrigins) {
    const auto schema = app::make_schema();
    for (const std::string bad :
         {R"(["*"])", R"(["example.com"])", R"(["https://example.com/"])", R"(["https://"])"}) {
        auto loaded = schema.load_string("[logs]\nallowed_origins = " + bad + "\n", "t.toml", {});
        EXPECT_FALSE(loaded.config) << bad;
        ASSERT_FALSE(loaded.errors.empty()) << bad;
        EXPECT_NE(loaded.errors[0].find("logs.allowed_origins"), std::string::npos)
            << loaded.errors[0];
    }
    auto ok = schema.load_string(
        "[logs]\nallowed_origins = [\"https://console.example:8443\", \"http://localhost\"]\n",
        "t.toml", {});
    EXPECT_TRUE(ok.config);
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

TEST_P(Logs, AddAnswersExactlyAsTheOriginal) {
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
