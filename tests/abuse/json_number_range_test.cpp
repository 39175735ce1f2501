// Found by fuzzing (tests/fuzz/native_fuzz.cpp): Boost.JSON reads a number beyond a double's range
// (1e400) as infinity and writes it back as `Infinity`, which is not JSON. A native publish with
// such a number in its data reached every subscriber as a message their JSON parser refuses, and a
// /logs/add entry with one reached every log listener (and the store) the same way. Both are now
// refused before anything is relayed or stored (native: invalid_json; /logs/add: 400, counted as
// invalid_json). Each test sends the number over
// real sockets and checks that the recipients get only well-formed JSON.

#include <chrono>
#include <optional>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

json::object parse_object(const std::optional<WsMessage>& m) {
    EXPECT_TRUE(m.has_value());
    if (!m) {
        return {};
    }
    boost::system::error_code ec;
    json::value v = json::parse(m->data, ec);
    EXPECT_FALSE(ec) << "not JSON: " << m->data;
    return v.is_object() ? v.get_object() : json::object{};
}

TEST(NativeAbuse, ANumberBeyondADoubleIsRefusedAndNotRelayed) {
    TestServer server;
    WsClient subscriber(server.port(), WsOptions{.path = "/ws"});
    subscriber.send_text(R"({"type":"subscribe","topic":"room","id":1})");
    EXPECT_EQ(parse_object(subscriber.read()).at("type").as_string(), "ok");

    WsClient publisher(server.port(), WsOptions{.path = "/ws"});
    publisher.send_text(R"({"type":"publish","topic":"room","data":{"hp":1e400},"id":2})");
    const auto refused = parse_object(publisher.read());
    EXPECT_EQ(refused.at("type").as_string(), "error");
    EXPECT_EQ(refused.at("code").as_string(), "invalid_json");
    // Not even the id is echoed: it could be the number itself.
    publisher.send_text(R"({"type":"subscribe","topic":"x","id":-2e400})");
    const auto no_id = parse_object(publisher.read());
    EXPECT_EQ(no_id.at("code").as_string(), "invalid_json");
    EXPECT_FALSE(no_id.contains("id"));

    // A publisher's messages arrive in order: the subscriber's next one is the valid publish.
    publisher.send_text(R"({"type":"publish","topic":"room","data":{"hp":1e300},"id":3})");
    EXPECT_EQ(parse_object(publisher.read()).at("type").as_string(), "ok");
    const auto relayed = parse_object(subscriber.read());
    EXPECT_EQ(relayed.at("type").as_string(), "message");
    EXPECT_EQ(relayed.at("data").at("hp").as_double(), 1e300);
}

TEST(LogsAbuse, AnEntryWithANumberBeyondADoubleIsRefused) {
    TestServer server;
    WsClient listener(server.port(), WsOptions{.path = "/logs/listen?room=r"});
    const auto bad =
        http_request(server.port(), "POST", "/logs/add", R"([{"msg":"bad","room":"r","n":1e400}])");
    EXPECT_EQ(bad.status, 400);
    EXPECT_EQ(json::parse(bad.body).at("error").at("code").as_string(), "bad_request");
    EXPECT_EQ(
        server.metric("hearth_logs_refused_total",
                      {{"listener", "http"}, {"route", "/logs/add"}, {"reason", "invalid_json"}}),
        1);
    ASSERT_EQ(
        http_request(server.port(), "POST", "/logs/add", R"({"msg":"good","room":"r"})").status,
        200);
    // The listener's next frame is JSON and holds the good entry alone.
    const auto m = listener.read();
    ASSERT_TRUE(m.has_value());
    boost::system::error_code ec;
    const json::value frame = json::parse(m->data, ec);
    ASSERT_FALSE(ec) << "not JSON: " << m->data;
    ASSERT_TRUE(frame.is_array());
    ASSERT_EQ(frame.get_array().size(), 1u) << m->data;
    EXPECT_EQ(frame.get_array()[0].at("msg").as_string(), "good");
}

}  // namespace
}  // namespace hearth::test
