// The native protocol at /ws with several real clients: fan-out, order, presence, direct sends,
// every error code, limits and a slow subscriber.

#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

/// A native-protocol client: JSON in, JSON out, over Beast's WebSocket client.
class Native {
public:
    explicit Native(std::uint16_t port) : ws_(port, WsOptions{.path = "/ws"}) {}

    void send(const std::string& text) { ws_.send_text(text); }
    /// The next message as JSON; fails the test on close or deadline.
    json::object next() {
        auto m = ws_.read();
        if (!m) {
            ADD_FAILURE() << "connection closed: " << ws_.close_info()->code << " "
                          << ws_.close_info()->reason;
            return {};
        }
        raw_ = m->data;
        return json::parse(m->data).as_object();
    }
    /// Sends a request and returns the reply.
    json::object call(const std::string& text) {
        send(text);
        return next();
    }
    std::string hello() {
        return std::string(call(R"({"type":"hello"})").at("connection").as_string());
    }
    void subscribe(const std::string& topic, bool presence = false) {
        auto r = call(R"({"type":"subscribe","topic":")" + topic + R"(","presence":)" +
                      (presence ? "true" : "false") + "}");
        ASSERT_EQ(r.at("type").as_string(), "ok") << json::serialize(r);
    }
    const std::string& raw() const { return raw_; }
    WsClient& ws() { return ws_; }

private:
    WsClient ws_;
    std::string raw_;
};

std::string code_of(const json::object& reply) {
    EXPECT_EQ(reply.at("type").as_string(), "error") << json::serialize(reply);
    if (!reply.contains("code")) {
        return "";
    }
    EXPECT_FALSE(reply.at("message").as_string().empty());
    return std::string(reply.at("code").as_string());
}

// A topic name whose hub shard is the same as `topic`'s (two io threads in tests), so that
// messages to both from one publisher keep their order.
std::string same_shard_topic(const std::string& topic) {
    const auto want = std::hash<std::string>{}("native:" + topic) % 2;
    for (int i = 0;; ++i) {
        std::string candidate = "other" + std::to_string(i);
        if (std::hash<std::string>{}("native:" + candidate) % 2 == want) {
            return candidate;
        }
    }
}

TEST(Native, HelloIsAnsweredWithTheConnectionId) {
    TestServer server;
    Native c(server.port());
    auto r = c.call(R"({"type":"hello","id":1})");
    EXPECT_EQ(r.at("type").as_string(), "welcome");
    EXPECT_FALSE(r.at("connection").as_string().empty());
    EXPECT_EQ(r.at("id").as_int64(), 1);
}

TEST(Native, RepliesCarryTheRequestIdWhateverItsType) {
    TestServer server;
    Native c(server.port());
    for (std::string id : {"7", R"("abc")", R"({"k":[1,2]})", "null", "2.5"}) {
        auto r = c.call(R"({"type":"subscribe","topic":"t","id":)" + id + "}");
        EXPECT_EQ(r.at("type").as_string(), "ok");
        EXPECT_EQ(json::serialize(r.at("id")), json::serialize(json::parse(id)));
    }
}

TEST(Native, PublishFansOutToEverySubscriberWithTheExactShape) {
    TestServer server;
    Native pub(server.port());
    const auto pub_id = pub.hello();
    std::vector<std::unique_ptr<Native>> subs;
    for (int i = 0; i < 5; ++i) {
        subs.push_back(std::make_unique<Native>(server.port()));
        subs.back()->subscribe("room");
    }
    auto r = pub.call(
        R"({"type":"publish","topic":"room","data":{"hp":12,"name":"Rathalos <3"},"id":4})");
    EXPECT_EQ(json::serialize(r), R"({"type":"ok","id":4})");
    for (auto& s : subs) {
        auto m = s->next();
        EXPECT_EQ(s->raw(), R"({"type":"message","topic":"room","from":")" + pub_id +
                                R"(","data":{"hp":12,"name":"Rathalos <3"}})");
    }
}

TEST(Native, PublisherGetsItsOwnMessageOnlyWithEcho) {
    TestServer server;
    Native c(server.port());
    c.subscribe("t");
    const auto other = same_shard_topic("t");
    c.subscribe(other);
    EXPECT_EQ(c.call(R"({"type":"publish","topic":"t","data":1})").at("type").as_string(), "ok");
    EXPECT_EQ(
        c.call(R"({"type":"publish","topic":"t","data":2,"echo":true})").at("type").as_string(),
        "ok");
    auto m = c.next();
    EXPECT_EQ(m.at("type").as_string(), "message");
    EXPECT_EQ(m.at("data").as_int64(), 2);  // not 1: without echo the sender is skipped
}

TEST(Native, PerPublisherOrderIsKept) {
    TestServer server;
    Native pub(server.port());
    Native a(server.port());
    Native b(server.port());
    a.subscribe("seq");
    b.subscribe("seq");
    constexpr int kCount = 300;
    for (int i = 0; i < kCount; ++i) {
        pub.send(R"({"type":"publish","topic":"seq","data":)" + std::to_string(i) + "}");
    }
    for (Native* s : {&a, &b}) {
        for (int i = 0; i < kCount; ++i) {
            ASSERT_EQ(s->next().at("data").as_int64(), i);
        }
    }
    for (int i = 0; i < kCount; ++i) {
        ASSERT_EQ(pub.next().at("type").as_string(), "ok");
    }
}

TEST(Native, UnsubscribeStopsDelivery) {
    TestServer server;
    Native pub(server.port());
    Native s(server.port());
    const auto other = same_shard_topic("t");
    s.subscribe("t");
    s.subscribe(other);
    EXPECT_EQ(s.call(R"({"type":"unsubscribe","topic":"t","id":3})").at("type").as_string(), "ok");
    ASSERT_EQ(pub.call(R"({"type":"publish","topic":"t","data":"gone"})").at("type").as_string(),
              "ok");
    ASSERT_EQ(pub.call(R"({"type":"publish","topic":")" + other + R"(","data":"kept"})")
                  .at("type")
                  .as_string(),
              "ok");
    // Same publisher, same shard: "gone" would have arrived first.
    EXPECT_EQ(s.next().at("data").as_string(), "kept");
    // Unsubscribing again is not an error.
    EXPECT_EQ(s.call(R"({"type":"unsubscribe","topic":"t"})").at("type").as_string(), "ok");
}

TEST(Native, PublishingToATopicNobodyWatchesIsOk) {
    TestServer server;
    Native c(server.port());
    EXPECT_EQ(
        c.call(R"({"type":"publish","topic":"empty","data":null,"id":9})").at("type").as_string(),
        "ok");
}

TEST(Native, PresenceListsMembersAndAnnouncesJoinAndLeave) {
    TestServer server;
    Native watcher(server.port());
    const auto watcher_id = watcher.hello();
    watcher.subscribe("lobby", true);
    std::string joiner_id;
    {
        Native joiner(server.port());
        joiner_id = joiner.hello();
        joiner.subscribe("lobby");
        auto join = watcher.next();
        EXPECT_EQ(json::serialize(join),
                  R"({"type":"join","topic":"lobby","connection":")" + joiner_id + R"("})");

        auto p = watcher.call(R"({"type":"presence","topic":"lobby","id":5})");
        EXPECT_EQ(p.at("type").as_string(), "presence");
        EXPECT_EQ(p.at("topic").as_string(), "lobby");
        EXPECT_EQ(p.at("id").as_int64(), 5);
        std::set<std::string> members;
        for (const auto& m : p.at("members").as_array()) {
            members.insert(std::string(m.at("connection").as_string()));
            EXPECT_EQ(m.at("principal").as_string(), "anonymous");
        }
        EXPECT_EQ(members, (std::set<std::string>{watcher_id, joiner_id}));
    }  // the joiner disconnects
    auto leave = watcher.next();
    EXPECT_EQ(json::serialize(leave),
              R"({"type":"leave","topic":"lobby","connection":")" + joiner_id + R"("})");
}

TEST(Native, SendReachesOneConnection) {
    TestServer server;
    Native a(server.port());
    Native b(server.port());
    const auto a_id = a.hello();
    const auto b_id = b.hello();
    auto r = a.call(R"({"type":"send","to":")" + b_id + R"(","data":{"x":[1,2]},"id":6})");
    EXPECT_EQ(json::serialize(r), R"({"type":"ok","id":6})");
    b.next();
    EXPECT_EQ(b.raw(), R"({"type":"message","from":")" + a_id + R"(","data":{"x":[1,2]}})");
}

TEST(Native, EveryErrorCodeAndTheConnectionStaysOpen) {
    TestServer server({{"native.max_publish_bytes", "10"}, {"hub.max_topics_per_connection", "2"}});
    Native c(server.port());
    EXPECT_EQ(code_of(c.call("not json")), "invalid_json");
    EXPECT_EQ(code_of(c.call("[1,2]")), "invalid_json");
    c.ws().send_binary("{}");
    EXPECT_EQ(code_of(c.next()), "invalid_json");
    EXPECT_EQ(code_of(c.call(R"({"id":1})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":5})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"dance","id":2})")), "unknown_type");
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe"})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe","topic":""})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe","topic":"t","presence":"yes"})")),
              "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"publish","topic":"t"})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"publish","topic":"t","data":1,"echo":1})")),
              "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"publish","topic":"t","data":"0123456789abc"})")),
              "too_large");
    EXPECT_EQ(code_of(c.call(R"({"type":"send","to":"999999","data":1})")), "unknown_connection");
    EXPECT_EQ(code_of(c.call(R"({"type":"send","to":"nope","data":1})")), "unknown_connection");
    EXPECT_EQ(code_of(c.call(R"({"type":"send","to":7,"data":1})")), "invalid_field");
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe","topic":"hunterpie:session-1"})")),
              "not_allowed");
    EXPECT_EQ(code_of(c.call(R"({"type":"hello","token":"whatever"})")), "unauthenticated");
    c.subscribe("one");
    c.subscribe("two");
    auto r = c.call(R"({"type":"subscribe","topic":"three","id":"x"})");
    EXPECT_EQ(code_of(r), "limit_reached");
    EXPECT_EQ(r.at("id").as_string(), "x");
    // Still open and working.
    EXPECT_EQ(c.call(R"({"type":"publish","topic":"one","data":1,"id":3})").at("type").as_string(),
              "ok");
    EXPECT_GE(server.metric("hearth_native_errors_total", {{"code", "invalid_field"}}), 6);
}

TEST(Native, SubscribersPerTopicAreBounded) {
    TestServer server({{"hub.max_subscribers_per_topic", "1"}});
    Native a(server.port());
    Native b(server.port());
    a.subscribe("solo");
    EXPECT_EQ(code_of(b.call(R"({"type":"subscribe","topic":"solo"})")), "limit_reached");
    EXPECT_EQ(
        server.metric("hearth_hub_limit_rejections_total", {{"limit", "subscribers_per_topic"}}),
        1);
}

TEST(Native, TopicRulesGrantOtherNamespaces) {
    TestServer server({{"native.topic_rules", R"(["subscribe:hunterpie:*"])"}});
    Native c(server.port());
    c.subscribe("hunterpie:session-1");
    EXPECT_EQ(code_of(c.call(R"({"type":"publish","topic":"hunterpie:session-1","data":1})")),
              "not_allowed");
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe","topic":"homestead:c1"})")), "not_allowed");
}

TEST(Native, AnonymousClientsCanBeTurnedOff) {
    TestServer server({{"native.allow_anonymous", "false"}});
    Native c(server.port());
    EXPECT_EQ(code_of(c.call(R"({"type":"subscribe","topic":"t"})")), "not_allowed");
    EXPECT_EQ(code_of(c.call(R"({"type":"hello"})")), "unauthenticated");
}

TEST(Native, OversizeMessageClosesWith1009) {
    TestServer server({{"websocket.max_message_bytes", "1000"}});
    Native c(server.port());
    c.send(R"({"type":"publish","topic":"t","data":")" + std::string(2000, 'x') + R"("})");
    EXPECT_EQ(c.ws().wait_closed().code, 1009);
}

/// Upgrades `raw` to the native protocol and subscribes it to `topic`; returns once its "ok" is
/// read (the subscription is in place), with nothing else read.
void subscribe_raw(RawClient& raw, const std::string& topic) {
    ASSERT_EQ(raw.upgrade("/ws").rfind("HTTP/1.1 101", 0), 0u);
    raw.write(client_frame(0x1, R"({"type":"subscribe","topic":")" + topic + R"("})"));
    std::string bytes;
    for (std::size_t used = 0; !parse_server_frame(bytes, used);) {
        bytes += raw.read_exactly(1);
    }
}

/// Publishes {"n": n, "p": payload} to `topic`; returns the publisher's reply.
json::object publish(Native& pub, const std::string& topic, int n, const std::string& payload) {
    return pub.call(R"({"type":"publish","topic":")" + topic + R"(","data":{"n":)" +
                    std::to_string(n) + R"(,"p":")" + payload + R"("}})");
}

TEST(Native, SlowSubscriberIsDisconnectedWithoutDelayingTheOthers) {
    TestServer server({{"websocket.max_outbound_bytes", "65536"},
                       {"native.max_publish_bytes", "200000"},
                       {"websocket.max_messages_per_s", "0"}});
    Native pub(server.port());
    Native fast(server.port());
    fast.subscribe("flood");
    // The slow subscriber speaks raw bytes and stops reading after its subscription.
    RawClient slow(server.port());
    subscribe_raw(slow, "flood");
    const std::string payload(100000, 'p');
    int sent = 0;
    while (server.metric("hearth_ws_disconnects_total", {{"reason", "slow_consumer"}}) == 0) {
        ASSERT_LT(sent, 500) << "the slow subscriber was never disconnected";
        ASSERT_EQ(publish(pub, "flood", sent, payload).at("type").as_string(), "ok");
        ASSERT_EQ(fast.next().at("data").at("n").as_int64(),
                  sent);  // the fast one keeps up, in order
        ++sent;
    }
    pub.send(R"({"type":"publish","topic":"flood","data":{"n":-1}})");
    EXPECT_EQ(fast.next().at("data").at("n").as_int64(), -1);
}

TEST(Native, AFanOutToASubscriberThatStopsReadingArrivesWholeAndInOrderOnOneThread) {
    // One io thread: the publisher's handler writes to the subscriber's socket itself while
    // nothing of the subscriber's waits, until a write is cut short by the full socket; what
    // follows is queued behind the rest of that frame.
    TestServer server({{"server.io_threads", "1"},
                       {"websocket.max_outbound_bytes", "16777216"},
                       {"native.max_publish_bytes", "200000"},
                       {"websocket.max_messages_per_s", "0"},
                       {"websocket.max_bytes_per_s", "0"}});
    Native pub(server.port());
    Native fast(server.port());
    fast.subscribe("t");
    RawClient slow(server.port());
    subscribe_raw(slow, "t");
    // 9 MB to a subscriber that reads nothing meanwhile: more than loopback's buffers hold. In
    // messages small enough to be written at once (WsConnection::kMaxFanoutWriteBytes).
    constexpr int kPublishes = 600;
    auto data = [](int n) {
        return std::string(15000 + static_cast<std::size_t>(n), 'a' + n % 26);
    };
    for (int n = 0; n < kPublishes; ++n) {
        ASSERT_EQ(publish(pub, "t", n, data(n)).at("type").as_string(), "ok");
        ASSERT_EQ(fast.next().at("data").at("n").as_int64(), n);
    }
    for (int n = 0; n < kPublishes; ++n) {
        // An unmasked text frame: its header, then its payload read whole.
        std::string head = slow.read_exactly(2);
        ASSERT_EQ(static_cast<std::uint8_t>(head[0]), 0x81) << "frame " << n;
        std::size_t length = static_cast<std::uint8_t>(head[1]) & 0x7F;
        const std::size_t extended = length == 126 ? 2 : length == 127 ? 8 : 0;
        if (extended != 0) {
            length = 0;
            for (const char c : slow.read_exactly(extended)) {
                length = (length << 8) | static_cast<std::uint8_t>(c);
            }
        }
        const auto message = json::parse(slow.read_exactly(length)).as_object();
        ASSERT_EQ(message.at("data").at("n").as_int64(), n) << "out of order";
        ASSERT_EQ(message.at("data").at("p").as_string(), data(n)) << "damaged: " << n;
    }
    EXPECT_EQ(server.metric("hearth_ws_disconnects_total", {{"reason", "slow_consumer"}}), 0);
}

}  // namespace
}  // namespace hearth::test
