// HunterPie's sans-I/O codec (src/frontends/hunterpie/codec.hpp): each client frame parsed into
// its message or its error, the operator notice's body, and every server message byte for byte
// (docs/protocol/hunterpie.md).

#include "frontends/hunterpie/codec.hpp"
#include <chrono>
#include <string>
#include <variant>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "frontends/hunterpie/message.hpp"

namespace hearth::frontends::hunterpie {
namespace {

namespace json = boost::json;

ClientMessage text(std::string_view s) {
    return parse_client_message(false, s);
}

template <class T>
T as(const ClientMessage& m) {
    EXPECT_TRUE(std::holds_alternative<T>(m)) << "alternative " << m.index();
    return std::holds_alternative<T>(m) ? std::get<T>(m) : T{};
}

ClientError error_of(const ClientMessage& m) {
    EXPECT_TRUE(std::holds_alternative<ClientError>(m)) << "alternative " << m.index();
    return std::holds_alternative<ClientError>(m) ? std::get<ClientError>(m) : ClientError::kBinary;
}

// ---- client frames ------------------------------------------------------------------------------

TEST(HunterpieCodec, PingIsTheExactTextOnly) {
    EXPECT_TRUE(std::holds_alternative<Ping>(text("ping")));
    EXPECT_EQ(error_of(text("ping ")), ClientError::kInvalid);
    EXPECT_EQ(error_of(text("PING")), ClientError::kInvalid);
    // A binary "ping" is a binary frame.
    EXPECT_EQ(error_of(parse_client_message(true, "ping")), ClientError::kBinary);
}

TEST(HunterpieCodec, BinaryFramesAreUnknownMessages) {
    EXPECT_EQ(error_of(parse_client_message(true, R"({"type":"push","sessionId":"a"})")),
              ClientError::kBinary);
    EXPECT_EQ(error_of(parse_client_message(true, "")), ClientError::kBinary);
}

TEST(HunterpieCodec, SetSession) {
    const auto m =
        as<SetSession>(text(R"({"type":"setsession","sessionId":"abc","isLeader":true})"));
    EXPECT_EQ(m.state, SessionIdState::kValid);
    EXPECT_EQ(m.session_id, "abc");
    EXPECT_TRUE(m.leader);
    // isLeader is true for JSON true only.
    for (const auto* leader : {"false", "1", R"("true")", "null", "{}"}) {
        const auto n = as<SetSession>(text(
            std::string(R"({"type":"setsession","sessionId":"abc","isLeader":)") + leader + "}"));
        EXPECT_FALSE(n.leader) << leader;
    }
    EXPECT_FALSE(as<SetSession>(text(R"({"type":"setsession","sessionId":"abc"})")).leader);
}

TEST(HunterpieCodec, TypesAreCaseInsensitive) {
    EXPECT_EQ(as<SetSession>(text(R"({"type":"SetSession","sessionId":"x"})")).session_id, "x");
    EXPECT_TRUE(std::holds_alternative<LeaveSession>(text(R"({"type":"LEAVESESSION"})")));
    EXPECT_EQ(as<Push>(text(R"({"type":"Push","sessionId":"x"})")).session_id, "x");
}

TEST(HunterpieCodec, SetSessionWithoutAUsableId) {
    for (const auto* body :
         {R"({"type":"setsession"})", R"({"type":"setsession","sessionId":""})",
          R"({"type":"setsession","sessionId":5})", R"({"type":"setsession","sessionId":null})"}) {
        const auto m = as<SetSession>(text(body));
        EXPECT_EQ(m.state, SessionIdState::kMissing) << body;
        EXPECT_TRUE(m.session_id.empty()) << body;
    }
}

TEST(HunterpieCodec, SessionIdsOverTheBoundAreNotKept) {
    const std::string at(kMaxSessionIdBytes, 'a');
    const std::string over(kMaxSessionIdBytes + 1, 'a');
    EXPECT_EQ(as<SetSession>(text(R"({"type":"setsession","sessionId":")" + at + "\"}")).state,
              SessionIdState::kValid);
    const auto set = as<SetSession>(text(R"({"type":"setsession","sessionId":")" + over + "\"}"));
    EXPECT_EQ(set.state, SessionIdState::kTooLong);
    EXPECT_TRUE(set.session_id.empty());
    const auto push = as<Push>(text(R"({"type":"push","sessionId":")" + over + "\"}"));
    EXPECT_EQ(push.state, SessionIdState::kTooLong);
    EXPECT_TRUE(push.session_id.empty());
}

TEST(HunterpieCodec, Push) {
    const auto m = as<Push>(text(R"({"type":"push","sessionId":"s1","data":{"hp":[1,2,3]}})"));
    EXPECT_EQ(m.state, SessionIdState::kValid);
    EXPECT_EQ(m.session_id, "s1");
    // An empty id is a valid string that no session has; a non-string is missing.
    EXPECT_EQ(as<Push>(text(R"({"type":"push","sessionId":""})")).state, SessionIdState::kValid);
    EXPECT_EQ(as<Push>(text(R"({"type":"push"})")).state, SessionIdState::kMissing);
    EXPECT_EQ(as<Push>(text(R"({"type":"push","sessionId":[]})")).state, SessionIdState::kMissing);
}

TEST(HunterpieCodec, SetNameAndLeaveSession) {
    EXPECT_EQ(as<SetName>(text(R"({"type":"setname","name":"Hunter \u00e9"})")).name,
              "Hunter \xc3\xa9");
    EXPECT_EQ(as<SetName>(text(R"({"type":"setname","name":""})")).name, "");
    EXPECT_FALSE(as<SetName>(text(R"({"type":"setname","name":3})")).name);
    EXPECT_FALSE(as<SetName>(text(R"({"type":"setname"})")).name);
    EXPECT_TRUE(std::holds_alternative<LeaveSession>(text(R"({"type":"leavesession","x":1})")));
}

TEST(HunterpieCodec, OtherTypesAreLowercased) {
    EXPECT_EQ(as<OtherType>(text(R"({"type":"HeLLo"})")).type, "hello");
    EXPECT_EQ(as<OtherType>(text(R"({"type":""})")).type, "");
}

TEST(HunterpieCodec, MalformedFramesAreInvalid) {
    for (const auto* body :
         {"", "{", "not json", "[]", R"("push")", "42", "null", R"({"type":5})", R"({"type":null})",
          R"({"sessionId":"a"})", R"({"type":"push",})", R"({"type":"push"} x)"}) {
        EXPECT_EQ(error_of(text(body)), ClientError::kInvalid) << body;
    }
}

// ---- the operator notice ------------------------------------------------------------------------

TEST(HunterpieCodec, ServermsgRequest) {
    auto r = parse_servermsg_request(R"({"text":"Restart in 5 min","level":"info"})");
    ASSERT_TRUE(std::holds_alternative<ServermsgRequest>(r));
    EXPECT_EQ(std::get<ServermsgRequest>(r).text, "Restart in 5 min");
    EXPECT_EQ(std::get<ServermsgRequest>(r).level, "info");
    EXPECT_FALSE(std::get<ServermsgRequest>(r).session_id);
    r = parse_servermsg_request(R"({"text":"","level":"error","sessionId":"s"})");
    ASSERT_TRUE(std::holds_alternative<ServermsgRequest>(r));
    EXPECT_EQ(std::get<ServermsgRequest>(r).session_id, "s");
    for (const auto* level : {"trace", "debug", "info", "warn", "error"}) {
        EXPECT_TRUE(std::holds_alternative<ServermsgRequest>(
            parse_servermsg_request(std::string(R"({"text":"t","level":")") + level + "\"}")))
            << level;
    }
}

TEST(HunterpieCodec, ServermsgRequestErrors) {
    const auto error = [](std::string_view body) {
        const auto r = parse_servermsg_request(body);
        EXPECT_TRUE(std::holds_alternative<ServermsgError>(r)) << body;
        return std::holds_alternative<ServermsgError>(r) ? std::get<ServermsgError>(r)
                                                         : ServermsgError::kInvalidJson;
    };
    EXPECT_EQ(error(""), ServermsgError::kInvalidJson);
    EXPECT_EQ(error("[1]"), ServermsgError::kInvalidJson);
    EXPECT_EQ(error(R"({"level":"info"})"), ServermsgError::kInvalidText);
    EXPECT_EQ(error(R"({"text":1,"level":"info"})"), ServermsgError::kInvalidText);
    EXPECT_EQ(error(R"({"text":"t"})"), ServermsgError::kInvalidLevel);
    EXPECT_EQ(error(R"({"text":"t","level":"INFO"})"), ServermsgError::kInvalidLevel);
    EXPECT_EQ(error(R"({"text":"t","level":"fatal"})"), ServermsgError::kInvalidLevel);
    EXPECT_EQ(error(R"({"text":"t","level":"info","sessionId":1})"),
              ServermsgError::kInvalidSessionId);

    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidJson).code, "invalid_json");
    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidJson).message,
              "The body is not a JSON object.");
    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidText).code, "invalid_field");
    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidText).message, "\"text\" must be a string.");
    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidLevel).message,
              "\"level\" must be one of trace, debug, info, warn, error.");
    EXPECT_EQ(servermsg_error(ServermsgError::kInvalidSessionId).message,
              "\"sessionId\" must be a string.");
}

// ---- server messages, byte for byte -------------------------------------------------------------

TEST(HunterpieCodec, Servermsg) {
    EXPECT_EQ(encode_servermsg("warn", "invalid message"), kInvalidMessage);
    EXPECT_EQ(encode_servermsg("warn", "uknown message"), kUnknownMessage);
    EXPECT_EQ(encode_servermsg("warn", "Session id cannot be empty!"), kEmptySessionId);
    EXPECT_EQ(encode_servermsg("info", "a \"quoted\" \\ line\nnext\x01 \xc3\xa9 </tag>"),
              R"({"type":"servermsg","level":"info","text":"a \"quoted\" \\ line\nnext\u0001 )"
              "\xc3\xa9"
              R"( </tag>"})");
}

TEST(HunterpieCodec, FixedReplies) {
    EXPECT_EQ(kPong, "pong");
    EXPECT_EQ(kUnknownMessage, R"({"type":"servermsg","level":"warn","text":"uknown message"})");
    EXPECT_EQ(kEmptySessionId,
              R"({"type":"servermsg","level":"warn","text":"Session id cannot be empty!"})");
    EXPECT_EQ(kLongSessionId, R"({"type":"servermsg","level":"warn","text":"Session id cannot )"
                              R"(be longer than 256 bytes!"})");
    EXPECT_EQ(kInvalidMessage, R"({"type":"servermsg","level":"warn","text":"invalid message"})");
    EXPECT_EQ(kVersion, "0.1");
}

TEST(HunterpieCodec, SessionState) {
    EXPECT_EQ(encode_sessionstate(true, 3),
              R"({"type":"sessionstate","leaderConnected":true,"playersCount":3})");
    EXPECT_EQ(encode_sessionstate(false, 0),
              R"({"type":"sessionstate","leaderConnected":false,"playersCount":0})");
}

TEST(HunterpieCodec, UnexpectedTypeDeliveredAndStatusPage) {
    EXPECT_EQ(encode_unexpected_type("hello"),
              R"({"type":"servermsg","level":"warn","text":"unexpected message type hello!"})");
    EXPECT_EQ(encode_delivered(0), R"({"delivered":0})");
    EXPECT_EQ(encode_delivered(12), R"({"delivered":12})");
    EXPECT_EQ(encode_status_page(2, 5, 1024, std::chrono::milliseconds(61'234)),
              "Sever is OK!<br>Active sessions: 2<br>Active sockets: 5<br>Data pushed total: "
              "1024 Bytes<br>Uptime: 61.23 sec");
}

// ---- round trips --------------------------------------------------------------------------------

// What the server writes, a client (or the server's own parser) reads back as it was.
TEST(HunterpieCodec, ServermsgRoundTrips) {
    for (const std::string s : {"", "plain", "quote \" backslash \\ slash /", "\t\r\n\x1f",
                                "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", "</script>"}) {
        const auto written = encode_servermsg("info", s);
        const auto v = json::parse(written);
        EXPECT_EQ(v.at("type").as_string(), "servermsg");
        EXPECT_EQ(v.at("level").as_string(), "info");
        EXPECT_EQ(std::string_view(v.at("text").as_string()), s);
        // The same notice, as the operator API receives it, parses to the same text.
        const auto request = parse_servermsg_request(
            R"({"level":"info","text":)" + written.substr(written.find(",\"text\":") + 8));
        ASSERT_TRUE(std::holds_alternative<ServermsgRequest>(request)) << written;
        EXPECT_EQ(std::get<ServermsgRequest>(request).text, s);
    }
}

TEST(HunterpieCodec, SessionIdsRoundTripThroughSetSession) {
    for (const std::string& id :
         std::vector<std::string>{"abc", "with \"quotes\"", "\xc3\xa9t\xc3\xa9", "a\\b",
                                  std::string(kMaxSessionIdBytes, 'z')}) {
        const auto frame = encode_servermsg("x", id);  // any writer of JSON strings will do
        const auto quoted = frame.substr(frame.find(",\"text\":") + 8);
        const auto m = as<SetSession>(text(R"({"type":"setsession","sessionId":)" +
                                           quoted.substr(0, quoted.size() - 1) + "}"));
        EXPECT_EQ(m.state, SessionIdState::kValid);
        EXPECT_EQ(m.session_id, id);
    }
}

}  // namespace
}  // namespace hearth::frontends::hunterpie
