// Abuse regressions of the Homestead offline queues (security part 2, item 3). Only each queue's
// depth was bounded, while channel ids are the client's choice and queued messages never expired:
// a bot (or anyone holding the well-known default key) could fill the store with queues for made-up
// channels, and keep them forever. Now the queues together are bounded by number and by bytes
// (a message past either is answered `failed`, the protocol's answer for "neither delivered nor
// queued", and counted) and a queued message expires. Each test drives real WebSocket clients
// against the in-process server and its SQLite store. Also: the warning at start, and on a reload
// that changes the key, when the default key is used on a listener beyond loopback.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "app/server_app.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/log_capture.hpp"
#include "support/server.hpp"
#include "util/log.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

std::string ack(std::string_view status, std::string_view type) {
    return "{\"status\":\"" + std::string(status) + "\",\"type\":\"" + std::string(type) + "\"}\n";
}

std::string bot_message(const std::string& channel, const std::string& content) {
    return R"({"msg_id":"d-1","id":")" + channel +
           R"(","author":{"id":"u-1","name":"Alice"},"content":")" + content + R"(","meta":{}})";
}

Overrides with_homestead(Overrides extra) {
    Overrides all = {{"homestead.enabled", "true"}, {"homestead.listen", "\"127.0.0.1:0\""}};
    for (auto& [k, v] : extra) {
        all[k] = v;
    }
    return all;
}

/// The in-process server with the Homestead gateway on its own port.
class Gateway {
public:
    Gateway(std::initializer_list<Overrides::value_type> extra)
        : server_(with_homestead(Overrides(extra))) {}
    std::uint16_t port() { return server_.app().server().bound_port("homestead"); }
    TestServer& server() { return server_; }
    double metric(const std::string& name, const std::map<std::string, std::string>& labels) {
        return server_.metric(name, labels);
    }

private:
    TestServer server_;
};

/// A mod or the bot, handshaken.
class Client {
public:
    Client(std::uint16_t port, const std::string& handshake, std::string_view kind)
        : ws_(port, WsOptions{.path = "/sync?api_key=gateway"}) {
        EXPECT_EQ(call(handshake),
                  "{\"status\":\"connected\",\"type\":\"" + std::string(kind) + "\"}\n");
    }
    std::string next() {
        auto m = ws_.read();
        if (!m) {
            ADD_FAILURE() << "connection closed: " << ws_.close_info()->code;
            return "";
        }
        return m->data;
    }
    std::string call(const std::string& text) {
        ws_.send_text(text);
        return next();
    }

private:
    WsClient ws_;
};

Client bot(std::uint16_t port) {
    return Client(port, R"({"type":"bot","data":{"bot_id":"B"}})", "bot");
}
std::unique_ptr<Client> mod(std::uint16_t port, const std::string& channel) {
    return std::make_unique<Client>(
        port, R"({"type":"mod","data":{"server_id":"S","channel_id":")" + channel + R"("}})",
        "mod");
}

std::string content_of(const std::string& frame) {
    return std::string(json::parse(frame).as_object().at("content").as_string());
}

/// Waits (with a deadline) until `f` holds.
const std::map<std::string, std::string> kToMod = {{"direction", "bot_to_mod"}};

// A bot queues for channels nobody serves: before the fix every made-up channel got a queue.
// Past queues_total_max a message that would start another queue is answered failed (and
// counted); the queues that exist still take messages, and a queue emptied by its mod frees its
// place.
TEST(HomesteadQueueAbuse, MadeUpChannelsStopAtQueuesTotalMax) {
    Gateway g{{"homestead.queues_total_max", "3"}};
    Client b = bot(g.port());
    for (const std::string channel : {"c0", "c1", "c2"}) {
        EXPECT_EQ(b.call(bot_message(channel, "hi " + channel)), ack("queued", "bot"));
    }
    for (int i = 3; i < 20; ++i) {
        EXPECT_EQ(b.call(bot_message("c" + std::to_string(i), "more")), ack("failed", "bot"));
    }
    EXPECT_EQ(g.metric("hearth_homestead_queue_refused_total",
                       {{"direction", "bot_to_mod"}, {"quota", "queues"}}),
              17);
    EXPECT_EQ(g.metric("hearth_homestead_queue_depth", kToMod), 3);
    EXPECT_EQ(b.call(bot_message("c0", "again")), ack("queued", "bot"));  // an existing queue

    // The mod of c0 collects its queue: its place is free again.
    auto m = mod(g.port(), "c0");
    EXPECT_EQ(content_of(m->next()), "hi c0");
    EXPECT_EQ(content_of(m->next()), "again");
    ASSERT_TRUE(eventually([&] { return g.metric("hearth_homestead_queue_depth", kToMod) == 2; }));
    EXPECT_EQ(b.call(bot_message("c9", "now")), ack("queued", "bot"));
    EXPECT_EQ(b.call(bot_message("c10", "full again")), ack("failed", "bot"));
}

// Large messages for offline channels: before the fix 2 MiB each, without a total. Past
// queues_total_mb a message is answered failed, whatever queue it is for; what was queued is
// delivered intact, byte for byte as before.
TEST(HomesteadQueueAbuse, QueuedBytesStopAtQueuesTotalMb) {
    Gateway g{{"homestead.queues_total_mb", "1"}, {"homestead.queue_max", "100"}};
    Client b = bot(g.port());
    const std::string big(300 * 1024, 'x');
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(b.call(bot_message("C", big)), ack("queued", "bot")) << i;
    }
    // A fourth would make about 1.2 MiB, for this channel or another.
    EXPECT_EQ(b.call(bot_message("C", big)), ack("failed", "bot"));
    EXPECT_EQ(b.call(bot_message("D", big)), ack("failed", "bot"));
    EXPECT_EQ(g.metric("hearth_homestead_queue_refused_total",
                       {{"direction", "bot_to_mod"}, {"quota", "bytes"}}),
              2);
    EXPECT_EQ(b.call(bot_message("D", "small")), ack("queued", "bot"));  // what fits still goes

    auto m = mod(g.port(), "C");
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(content_of(m->next()), big);
    }
    ASSERT_TRUE(eventually([&] { return g.metric("hearth_homestead_queue_depth", kToMod) == 1; }));
    EXPECT_EQ(b.call(bot_message("D", big)), ack("queued", "bot"));
}

// A queued message that nobody collects within queue_lifetime_s is dropped (counted) and never
// delivered: before the fix it waited forever.
TEST(HomesteadQueueAbuse, ExpiredMessagesAreDroppedAndNeverDelivered) {
    Gateway g{{"homestead.queue_lifetime_s", "1"}};
    Client b = bot(g.port());
    EXPECT_EQ(b.call(bot_message("C", "stale")), ack("queued", "bot"));
    EXPECT_EQ(g.metric("hearth_homestead_queue_depth", kToMod), 1);
    // The sweep runs every second with a lifetime of one second.
    ASSERT_TRUE(
        eventually([&] { return g.metric("hearth_homestead_queue_expired_total", kToMod) == 1; }));
    EXPECT_EQ(g.metric("hearth_homestead_queue_depth", kToMod), 0);

    // The mod gets nothing queued: the first frame after its handshake is the live probe.
    auto m = mod(g.port(), "C");
    EXPECT_EQ(b.call(bot_message("C", "probe")), ack("completed", "bot"));
    EXPECT_EQ(content_of(m->next()), "probe");
    EXPECT_EQ(g.metric("hearth_homestead_queue_delivered_total", kToMod), 0);
}

constexpr std::string_view kWarning = "homestead.api_key is the well-known default";

// The original's README publishes the default key "gateway": on a listener others can reach, it
// lets anyone in as a mod or the bot. Hearth keeps the default (existing mods and bots use it) but
// says so at start and on a reload that sets it; on loopback, or with another key, it says nothing.
TEST(HomesteadQueueAbuse, DefaultKeyBeyondLoopbackIsWarnedAboutAtStartAndReload) {
    LogCapture log;
    {
        Gateway loopback{};
        EXPECT_EQ(log.count_after_marker(std::string(kWarning)), 0);
    }
    {
        Gateway own_key{{"homestead.listen", "\"0.0.0.0:0\""}, {"homestead.api_key", "\"k3y\""}};
        EXPECT_EQ(log.count_after_marker(std::string(kWarning)), 0);

        // A reload that sets the default key warns.
        auto schema = app::make_schema();
        TempDir dir;
        auto next = schema.load_string(
            test_config_toml(with_homestead({{"homestead.listen", "\"0.0.0.0:0\""}}), dir.path()),
            "reload.toml", {});
        ASSERT_TRUE(next.config) << (next.errors.empty() ? "" : next.errors[0]);
        own_key.server().app().apply(next.config);
        EXPECT_EQ(log.count_after_marker(std::string(kWarning)), 1);
    }
    Gateway exposed{{"homestead.listen", "\"0.0.0.0:0\""}};
    EXPECT_EQ(log.count_after_marker(std::string(kWarning) +
                                     " \"gateway\" and the gateway listens on 0.0.0.0:0, beyond "
                                     "loopback"),
              2);  // the reload's, and this start's
}

}  // namespace
}  // namespace hearth::test
