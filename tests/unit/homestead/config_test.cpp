// The [homestead] config section: defaults, validation and the route settings it maps to.

#include <gtest/gtest.h>

#include "frontends/homestead/homestead.hpp"

namespace hearth::frontends::homestead {
namespace {

core::ConfigSchema schema() {
    core::ConfigSchema s;
    s.add<core::WebSocketConfig>();
    s.add<HomesteadConfig>();
    return s;
}

core::ConfigErrors errors_of(std::string_view toml) {
    return schema().load_string(toml, "test.toml", {}).errors;
}

TEST(HomesteadConfig, DefaultsAreTheOriginals) {
    auto loaded = schema().load_string("", "test.toml", {});
    ASSERT_TRUE(loaded.config);
    const auto& c = loaded.config->get<HomesteadConfig>();
    EXPECT_FALSE(c.enabled);
    EXPECT_EQ(c.listen, "0.0.0.0:3333");
    EXPECT_EQ(c.api_key, "gateway");
    EXPECT_EQ(c.body_size_mb, 2);
    EXPECT_EQ(c.queue_max, 8);
    EXPECT_EQ(c.handshake_timeout_s, 60);
    EXPECT_EQ(c.ping_interval_s, 30);
    EXPECT_EQ(c.read_timeout_s, 60);
    EXPECT_EQ(c.write_timeout_s, 5);
    EXPECT_FALSE(c.multi_mod);
    // Hearth's own bounds, far above what real gateways queue.
    EXPECT_EQ(c.queues_total_max, 10'000);
    EXPECT_EQ(c.queues_total_mb, 256);
    EXPECT_EQ(c.queue_lifetime_s, 7 * 86'400);
    const auto toml = schema().default_toml();
    for (const char* key :
         {"enabled", "listen", "api_key", "body_size_mb", "queue_max", "queues_total_max",
          "queues_total_mb", "queue_lifetime_s", "handshake_timeout_s", "ping_interval_s",
          "read_timeout_s", "write_timeout_s", "multi_mod", "tls_cert_file", "tls_key_file"}) {
        EXPECT_NE(toml.find(std::string(key) + " = "), std::string::npos) << key;
    }
}

TEST(HomesteadConfig, InvalidValuesAreRejectedWithTheKey) {
    EXPECT_FALSE(errors_of("[homestead]\nlisten = \"nowhere\"\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\napi_key = \"\"\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\ntls_cert_file = \"a.pem\"\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\nqueue_max = 0\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\nbody_size_mb = 0\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\nqueues_total_max = 0\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\nqueues_total_mb = 0\n").empty());
    EXPECT_FALSE(errors_of("[homestead]\nqueue_lifetime_s = -1\n").empty());
    EXPECT_TRUE(errors_of("[homestead]\nqueue_lifetime_s = 0\n").empty());      // never expires
    EXPECT_FALSE(errors_of("[homestead]\nwebsocket = \"gateway\"\n").empty());  // unknown key
    const auto e = errors_of("[homestead]\nping_interval_s = 30\nread_timeout_s = 30\n");
    ASSERT_EQ(e.size(), 1u);
    EXPECT_NE(e[0].find("homestead.read_timeout_s"), std::string::npos) << e[0];
    EXPECT_TRUE(errors_of("[homestead]\nping_interval_s = 0\nread_timeout_s = 5\n").empty());
}

TEST(HomesteadConfig, RouteSettingsMapTheSection) {
    HomesteadConfig c;
    c.body_size_mb = 3;
    c.ping_interval_s = 7;
    c.read_timeout_s = 20;
    c.write_timeout_s = 4;
    c.handshake_timeout_s = 9;
    core::WebSocketConfig ws;
    ws.max_connections_per_ip = 17;
    const auto s = route_settings(c, ws);
    EXPECT_EQ(s.max_message_bytes, 3u * 1024 * 1024);
    EXPECT_EQ(s.ping_interval, std::chrono::seconds(7));
    EXPECT_EQ(s.idle_timeout, std::chrono::seconds(20));
    EXPECT_GE(s.pong_timeout, s.idle_timeout);  // the read timeout alone decides
    EXPECT_EQ(s.write_timeout, std::chrono::seconds(4));
    EXPECT_EQ(s.first_message_timeout, std::chrono::seconds(9));
    EXPECT_FALSE(s.compression);
    EXPECT_EQ(s.max_connections_per_ip, 17u);  // the rest comes from [websocket]
}

// The warning about the default key names the listeners others can reach.
TEST(HomesteadConfig, ListensBeyondLoopbackUnlessTheHostIsALoopbackAddress) {
    EXPECT_TRUE(listens_beyond_loopback("0.0.0.0:3333"));
    EXPECT_TRUE(listens_beyond_loopback("[::]:3333"));
    EXPECT_TRUE(listens_beyond_loopback("192.0.2.7:3333"));
    EXPECT_TRUE(listens_beyond_loopback("gateway.example:3333"));  // a name may resolve anywhere
    EXPECT_FALSE(listens_beyond_loopback("127.0.0.1:3333"));
    EXPECT_FALSE(listens_beyond_loopback("127.1.2.3:0"));
    EXPECT_FALSE(listens_beyond_loopback("[::1]:3333"));
    EXPECT_FALSE(listens_beyond_loopback("localhost:3333"));
}

}  // namespace
}  // namespace hearth::frontends::homestead
