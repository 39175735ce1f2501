// The HTTP listener through real sockets: built-in routes, errors, limits, keep-alive.

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

TEST(Http, HealthIsOk) {
    TestServer server;
    auto r = http_request(server.port(), "GET", "/health");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"status":"ok"})");
    EXPECT_EQ(r.headers["content-type"], "application/json");
}

TEST(Http, ReadyReportsTheStore) {
    TestServer server;
    auto r = http_request(server.port(), "GET", "/ready");
    EXPECT_EQ(r.status, 200);
    auto body = boost::json::parse(r.body).as_object();
    EXPECT_EQ(body.at("status").as_string(), "ready");
    EXPECT_EQ(body.at("checks").at("store").as_string(), "ok");
}

TEST(Http, VersionNamesTheBuild) {
    TestServer server;
    auto r = http_request(server.port(), "GET", "/version");
    ASSERT_EQ(r.status, 200);
    auto body = boost::json::parse(r.body).as_object();
    EXPECT_EQ(body.at("name").as_string(), "hearth");
    EXPECT_FALSE(body.at("version").as_string().empty());
    EXPECT_FALSE(body.at("commit").as_string().empty());
    EXPECT_FALSE(body.at("build").as_string().empty());
}

TEST(Http, MetricsInPrometheusFormat) {
    TestServer server;
    (void)http_request(server.port(), "GET", "/health");
    (void)http_request(server.port(), "GET", "/nope");
    auto r = http_request(server.port(), "GET", "/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(r.body.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
    EXPECT_GT(metric_value(r.body, "process_resident_memory_bytes", {}), 0);
    EXPECT_GT(metric_value(r.body, "process_open_fds", {}), 0);
    EXPECT_GT(metric_value(r.body, "process_start_time_seconds", {}), 1.6e9);
    EXPECT_EQ(metric_value(r.body, "hearth_http_requests_total",
                           {{"route", "/health"}, {"status", "200"}}),
              1);
    EXPECT_EQ(metric_value(r.body, "hearth_http_requests_total",
                           {{"route", "unmatched"}, {"status", "404"}}),
              1);
    EXPECT_GE(metric_value(r.body, "hearth_net_connections_total", {{"listener", "http"}}), 3);
    // The scrape itself is open (earlier connections may still be closing).
    EXPECT_GE(metric_value(r.body, "hearth_net_connections_open",
                           {{"listener", "http"}, {"kind", "http"}}),
              1);
}

TEST(Http, UnknownRouteIs404WithErrorBody) {
    TestServer server;
    auto r = http_request(server.port(), "GET", "/no/such/thing");
    EXPECT_EQ(r.status, 404);
    auto body = boost::json::parse(r.body).as_object();
    EXPECT_EQ(body.at("error").as_object().at("code").as_string(), "not_found");
    EXPECT_FALSE(body.at("error").as_object().at("message").as_string().empty());
}

TEST(Http, WrongMethodIs405) {
    TestServer server;
    auto r = http_request(server.port(), "POST", "/health", "x");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(boost::json::parse(r.body).at("error").at("code").as_string(), "method_not_allowed");
}

TEST(Http, OversizeBodyIs413AndServerKeepsServing) {
    TestServer server({{"http.max_body_bytes", "1000"}});
    auto r = http_request(server.port(), "POST", "/health", std::string(5000, 'x'));
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(boost::json::parse(r.body).at("error").at("code").as_string(), "body_too_large");
    EXPECT_EQ(http_request(server.port(), "GET", "/health").status, 200);
}

TEST(Http, OversizeHeadIs431AndServerKeepsServing) {
    TestServer server({{"http.max_header_bytes", "1024"}});
    auto r = http_request(server.port(), "GET", "/health", "", {{"X-Big", std::string(4000, 'y')}});
    EXPECT_EQ(r.status, 431);
    EXPECT_EQ(http_request(server.port(), "GET", "/health").status, 200);
}

TEST(Http, MalformedRequestIs400) {
    TestServer server;
    RawClient raw(server.port());
    raw.write("THIS IS NOT HTTP\r\n\r\n");
    auto response = raw.read_until_eof();
    EXPECT_EQ(response.rfind("HTTP/1.1 400", 0), 0u) << response;
}

TEST(Http, KeepAliveServesSeveralRequestsOnOneConnection) {
    TestServer server;
    KeepAliveClient client(server.port());
    for (int i = 0; i < 5; ++i) {
        auto r = client.request("GET", "/health");
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.headers["connection"], "");  // HTTP/1.1 keep-alive is the default: no header
    }
    EXPECT_EQ(server.metric("hearth_net_connections_total", {{"listener", "http"}}),
              2);  // + the scrape
}

TEST(Http, PipelinedRequestsAreAnsweredInOrder) {
    TestServer server;
    RawClient raw(server.port());
    raw.write(
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto all = raw.read_until_eof();
    auto first = all.find("HTTP/1.1 200");
    auto second = all.find("HTTP/1.1 404");
    auto third = all.find("HTTP/1.1 200", first + 1);
    ASSERT_NE(first, std::string::npos) << all;
    ASSERT_NE(second, std::string::npos) << all;
    ASSERT_NE(third, std::string::npos) << all;
    EXPECT_LT(first, second);
    EXPECT_LT(second, third);
}

TEST(Http, IdleKeepAliveConnectionIsClosed) {
    TestServer server({{"http.keepalive_timeout_s", "1"}});
    KeepAliveClient client(server.port());
    EXPECT_EQ(client.request("GET", "/health").status, 200);
    EXPECT_TRUE(client.closed_by_server());
}

TEST(Http, PortInUseFailsStartupNamingIt) {
    TestServer first;
    const std::string taken = "\"127.0.0.1:" + std::to_string(first.port()) + "\"";
    try {
        TestServer second({{"http.listen", taken}});
        FAIL() << "a second server bound the same port";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(first.port())), std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("http"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace hearth::test
