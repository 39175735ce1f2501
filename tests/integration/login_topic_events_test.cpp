// Logins and topics as the operator sees them, over real sockets: a password login at the API, a
// native hello with the session it gave, a wrong password, and a native topic joined and left,
// read back from GET /api/v1/events and the live stream.

#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdmin = "login-events-admin";

std::map<std::string, std::string> admin_headers() {
    return {{"Authorization", std::string("Bearer ") + kAdmin},
            {"Content-Type", "application/json"}};
}

json::array events_of(std::uint16_t port, const std::string& query) {
    auto r = http_request(port, "GET", "/api/v1/events?" + query, "", admin_headers());
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).at("items").as_array();
}

std::string field(const json::value& event, const char* name) {
    return std::string(event.at(name).as_string());
}

TEST(LoginTopicEvents, LoginsAndTopicsReachTheOperatorsEvents) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    auto made = http_request(port, "POST", "/api/v1/accounts",
                             R"({"username":"ivy","password":"ivy-password-1"})", admin_headers());
    ASSERT_EQ(made.status, 201) << made.body;
    const auto account = json::parse(made.body).at("id").to_number<std::uint64_t>();

    auto bad = http_request(port, "POST", "/api/v1/auth/login",
                            R"({"username":"ivy","password":"not-ivys-password"})",
                            {{"Content-Type", "application/json"}});
    ASSERT_EQ(bad.status, 401);
    auto good = http_request(port, "POST", "/api/v1/auth/login",
                             R"({"username":"ivy","password":"ivy-password-1"})",
                             {{"Content-Type", "application/json"}});
    ASSERT_EQ(good.status, 200) << good.body;
    const std::string token(json::parse(good.body).at("token").as_string());

    // The session opens a native connection, which joins a topic and leaves it.
    {
        WsClient ws(port, WsOptions{.path = "/ws"});
        ws.send_text(R"({"type":"hello","id":1,"token":")" + token + R"("})");
        auto hello = ws.read();
        ASSERT_TRUE(hello);
        ASSERT_EQ(json::parse(hello->data).at("type").as_string(), "welcome") << hello->data;
        ws.send_text(R"({"type":"subscribe","id":2,"topic":"room"})");
        auto ok = ws.read();
        ASSERT_TRUE(ok);
        ASSERT_EQ(json::parse(ok->data).at("type").as_string(), "ok") << ok->data;
        ws.close();
        ws.wait_closed();
    }

    const auto ok = events_of(port, "type=login.ok");
    ASSERT_EQ(ok.size(), 2u);
    EXPECT_EQ(field(ok[0], "module"), "operator");
    EXPECT_EQ(field(ok[0], "principal"), "account:" + std::to_string(account));
    EXPECT_EQ(field(ok[1], "module"), "native");
    EXPECT_EQ(field(ok[1], "principal").rfind("token:", 0), 0u) << field(ok[1], "principal");
    const auto failed = events_of(port, "type=login.failed");
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(field(failed[0], "principal"), "ivy");
    EXPECT_EQ(field(failed[0], "detail"), "bad_password");
    EXPECT_EQ(field(failed[0], "subject"), "127.0.0.1");
    const auto created = events_of(port, "type=topic.created&module=native");
    ASSERT_EQ(created.size(), 1u);
    EXPECT_EQ(field(created[0], "subject"), "native:room");

    // The leave follows the close on the topic's shard: the stream replays the history after
    // the creation and waits for it.
    const auto after = std::to_string(created[0].at("seq").to_number<std::uint64_t>());
    WsClient stream(port,
                    WsOptions{.path = "/api/v1/events/stream?type=topic.emptied&cursor=" + after,
                              .headers = {{"Authorization", std::string("Bearer ") + kAdmin}}});
    auto emptied = stream.read();
    ASSERT_TRUE(emptied);
    auto e = json::parse(emptied->data);
    EXPECT_EQ(field(e, "subject"), "native:room");
    EXPECT_EQ(field(e, "module"), "native");

    // No secret anywhere in the history.
    auto all = http_request(port, "GET", "/api/v1/events?limit=1000", "", admin_headers());
    for (const auto& secret :
         {std::string("ivy-password-1"), std::string("not-ivys-password"), token}) {
        EXPECT_EQ(all.body.find(secret), std::string::npos);
    }
}

}  // namespace
}  // namespace hearth::test
