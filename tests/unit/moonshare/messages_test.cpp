// Moonshare's message codec (src/frontends/moonshare/codec.hpp): a player's text messages parsed
// into typed ones, the error of each malformed one, every message the server sends byte for byte,
// and strings that round trip from the server's writer through the parser.

#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "frontends/moonshare/codec.hpp"

namespace hearth::frontends::moonshare {
namespace {

using Type = PlayerMessageType;
using Error = PlayerMessageError;

PlayerMessage parsed(std::string_view text) {
    auto r = parse_player_message(text);
    EXPECT_TRUE(std::holds_alternative<PlayerMessage>(r)) << text;
    return std::holds_alternative<PlayerMessage>(r) ? std::get<PlayerMessage>(r) : PlayerMessage{};
}

bool not_protocol(std::string_view text) {
    const auto r = parse_player_message(text);
    return std::holds_alternative<PlayerParseError>(r) &&
           std::get<PlayerParseError>(r) == PlayerParseError::kNotProtocol;
}

// ---- parsing ------------------------------------------------------------------------------------

TEST(MoonshareMessages, SessionAuth) {
    const auto m = parsed(R"({"type":"session_auth","userId":"u-1","token":"00ff"})");
    EXPECT_EQ(m.type, Type::kSessionAuth);
    EXPECT_EQ(m.type_name, "session_auth");
    EXPECT_EQ(m.error, Error::kNone);
    EXPECT_EQ(m.user_id, "u-1");
    EXPECT_EQ(m.token, "00ff");
}

TEST(MoonshareMessages, SessionAuthErrors) {
    // The token is checked first: a message without either is "Missing token".
    for (const auto* text :
         {R"({"type":"session_auth"})", R"({"type":"session_auth","userId":"u","token":""})",
          R"({"type":"session_auth","userId":"u","token":7})",
          R"({"type":"session_auth","userId":"u","token":null})"}) {
        EXPECT_EQ(parsed(text).error, Error::kTokenMissing) << text;
    }
    for (const auto* text : {R"({"type":"session_auth","token":"t"})",
                             R"({"type":"session_auth","token":"t","userId":""})",
                             R"({"type":"session_auth","token":"t","userId":["u"]})"}) {
        EXPECT_EQ(parsed(text).error, Error::kUserIdInvalid) << text;
    }
    const std::string at(kMaxUserIdBytes, 'u');
    EXPECT_EQ(parsed(R"({"type":"session_auth","token":"t","userId":")" + at + "\"}").error,
              Error::kNone);
    const auto over = parsed(R"({"type":"session_auth","token":"t","userId":")" + at + "u\"}");
    EXPECT_EQ(over.error, Error::kUserIdInvalid);
    EXPECT_EQ(over.user_id, at + "u");  // kept for the log, which cuts it
    // The claimed user id is read even when the token is missing (the refusal's log names it).
    EXPECT_EQ(parsed(R"({"type":"session_auth","userId":"who"})").user_id, "who");
}

TEST(MoonshareMessages, TypesWithoutFields) {
    EXPECT_EQ(parsed(R"({"type":"list_online"})").type, Type::kListOnline);
    EXPECT_EQ(parsed(R"({"type":"file_send_complete","fileName":"x"})").type,
              Type::kFileSendComplete);
    EXPECT_EQ(parsed(R"({"type":"disconnect"})").type, Type::kDisconnect);
    // Types match exactly, as the original's.
    const auto other = parsed(R"({"type":"List_Online"})");
    EXPECT_EQ(other.type, Type::kUnknown);
    EXPECT_EQ(other.type_name, "List_Online");
    EXPECT_EQ(parsed(R"({"type":""})").type, Type::kUnknown);
}

TEST(MoonshareMessages, ConnectAndItsAnswers) {
    const auto c = parsed(R"({"type":"connect","targetUserId":"peer"})");
    EXPECT_EQ(c.type, Type::kConnect);
    EXPECT_EQ(c.error, Error::kNone);
    EXPECT_EQ(c.target, "peer");
    EXPECT_EQ(parsed(R"({"type":"connect_accept","targetUserId":"p"})").type, Type::kConnectAccept);
    EXPECT_EQ(parsed(R"({"type":"connect_reject","targetUserId":"p"})").type, Type::kConnectReject);
    // An empty target is a target (no such user: the request is rejected with it).
    EXPECT_EQ(parsed(R"({"type":"connect","targetUserId":""})").error, Error::kNone);
}

TEST(MoonshareMessages, ConnectErrors) {
    for (const auto* type : {"connect", "connect_accept", "connect_reject"}) {
        const std::string head = std::string(R"({"type":")") + type + "\"";
        EXPECT_EQ(parsed(head + "}").error, Error::kTargetMissing) << type;
        EXPECT_EQ(parsed(head + R"(,"targetUserId":5})").error, Error::kTargetMissing) << type;
        const auto long_target =
            parsed(head + R"(,"targetUserId":")" + std::string(kMaxUserIdBytes + 1, 'x') + "\"}");
        EXPECT_EQ(long_target.error, Error::kTargetTooLong) << type;
        EXPECT_TRUE(long_target.target.empty());
    }
}

TEST(MoonshareMessages, FileSendBegin) {
    const auto m = parsed(
        R"({"type":"file_send_begin","targetUserId":"t","fileName":"a.png","fileSize":1048576})");
    EXPECT_EQ(m.type, Type::kFileSendBegin);
    EXPECT_EQ(m.error, Error::kNone);
    EXPECT_EQ(m.target, "t");
    EXPECT_EQ(m.file_name, "a.png");
    EXPECT_EQ(m.file_size, 1048576U);
    EXPECT_EQ(parsed(R"({"type":"file_send_begin","targetUserId":"t","fileName":"e","fileSize":0})")
                  .file_size,
              0U);
    EXPECT_EQ(parsed(R"({"type":"file_send_begin","targetUserId":"t","fileName":"b",)"
                     R"("fileSize":18446744073709551615})")
                  .file_size,
              18446744073709551615ULL);
}

TEST(MoonshareMessages, FileSendBeginErrors) {
    const auto begin = [](std::string_view fields) {
        return parsed(std::string(R"({"type":"file_send_begin",)") + std::string(fields) + "}")
            .error;
    };
    const std::string ok_target = R"("targetUserId":"t")";
    for (const std::string& fields : std::vector<std::string>{
             std::string(R"("fileName":"f","fileSize":1)"),       // no target
             R"("targetUserId":"","fileName":"f","fileSize":1)",  // empty target
             R"("targetUserId":")" + std::string(kMaxUserIdBytes + 1, 't') +
                 R"(","fileName":"f","fileSize":1)",                            // long target
             ok_target + R"(,"fileSize":1)",                                    // no name
             ok_target + R"(,"fileName":"","fileSize":1)",                      // empty name
             ok_target + R"(,"fileName":1,"fileSize":1)",                       // not a string
             ok_target + R"(,"fileName":"f")",                                  // no size
             ok_target + R"(,"fileName":"f","fileSize":-1)",                    // negative
             ok_target + R"(,"fileName":"f","fileSize":1.5)",                   // not whole
             ok_target + R"(,"fileName":"f","fileSize":"1")",                   // a string
             ok_target + R"(,"fileName":"f","fileSize":18446744073709551616)",  // over 2^64-1
         }) {
        EXPECT_EQ(begin(fields), Error::kFileParametersMissing) << fields;
    }
    const std::string at(kMaxFileNameBytes, 'n');
    EXPECT_EQ(begin(ok_target + R"(,"fileName":")" + at + R"(","fileSize":1)"), Error::kNone);
    EXPECT_EQ(begin(ok_target + R"(,"fileName":")" + at + R"(n","fileSize":1)"),
              Error::kFileNameTooLong);
}

TEST(MoonshareMessages, WhatIsNotAProtocolMessage) {
    for (const auto* text :
         {"", "hello", "{", "[]", R"(["type"])", R"("session_auth")", "null", R"({"type":1})",
          R"({"type":null})", R"({"userId":"u"})", R"({"type":"list_online"} trailing)"}) {
        EXPECT_TRUE(not_protocol(text)) << text;
    }
}

TEST(MoonshareMessages, DuplicateKeysTakeTheLast) {
    EXPECT_EQ(parsed(R"({"type":"connect","type":"list_online"})").type, Type::kListOnline);
    EXPECT_EQ(parsed(R"({"type":"connect","targetUserId":"a","targetUserId":"b"})").target, "b");
}

// ---- encoding, byte for byte --------------------------------------------------------------------

TEST(MoonshareMessages, AuthResultAndConnectionInfo) {
    EXPECT_EQ(encode_auth_result(true, kAuthOk, "u-1"),
              R"({"type":"session_auth_result","success":true,)"
              R"("message":"Authentication successful","userId":"u-1"})");
    EXPECT_EQ(encode_auth_result(false, kMissingToken),
              R"({"type":"session_auth_result","success":false,"message":"Missing token"})");
    EXPECT_EQ(encode_auth_result(false, kInvalidToken),
              R"({"type":"session_auth_result","success":false,)"
              R"("message":"Invalid session token"})");
    EXPECT_EQ(encode_connection_info("Beta"),
              R"({"type":"connection_info","message":"You are connected through instance Beta"})");
}

TEST(MoonshareMessages, OnlineList) {
    EXPECT_EQ(encode_online({}), "ONLINE:[]");
    EXPECT_EQ(encode_online({"a", "b<"}), R"(ONLINE:["a","b\u003C"])");
    // Whole entries only, within the client's 8 KiB buffer.
    std::vector<std::string> many(1000, std::string(20, 'x'));
    const auto cut = encode_online(many);
    // "ONLINE:[" + 355 entries of 22 bytes and their commas + "]": one more would not fit.
    EXPECT_EQ(cut.size(), 8173U);
    EXPECT_EQ(cut.substr(cut.size() - 24), ",\"" + std::string(20, 'x') + "\"]");
}

TEST(MoonshareMessages, UserListUpdate) {
    EXPECT_EQ(encode_user_list_update({}), R"({"type":"user_list_update","users":[]})");
    EXPECT_EQ(encode_user_list_update({"a", "\xc3\xa9"}),
              R"({"type":"user_list_update","users":[{"userId":"a","userName":"a"},)"
              R"({"userId":"\u00E9","userName":"\u00E9"}]})");
    std::vector<std::string> many(1000, std::string(40, 'y'));
    const auto cut = encode_user_list_update(many);
    // The head, 75 entries of 107 bytes and their commas, "]}": one more would not fit.
    EXPECT_EQ(cut.size(), 8137U);
    EXPECT_EQ(cut.substr(cut.size() - 4), "\"}]}");
}

TEST(MoonshareMessages, PeersAndFiles) {
    EXPECT_EQ(encode_disconnected("u"), R"({"type":"disconnected","userId":"u"})");
    EXPECT_EQ(encode_connect_request("u"), R"({"type":"connect_request","fromUserId":"u"})");
    EXPECT_EQ(encode_connect_answer(true, "v"), R"({"type":"connect_accepted","withUserId":"v"})");
    EXPECT_EQ(encode_connect_answer(false, ""), R"({"type":"connect_rejected","withUserId":""})");
    EXPECT_EQ(encode_file_send_begin("a&b.txt", "u", 12),
              R"({"type":"file_send_begin","fileName":"a\u0026b.txt","fromUserId":"u",)"
              R"("fileSize":12})");
    EXPECT_EQ(encode_file_send_complete("a.txt", "u"),
              R"({"type":"file_send_complete","fileName":"a.txt","fromUserId":"u"})");
}

TEST(MoonshareMessages, TokenRoutes) {
    EXPECT_EQ(encode_session_token("0123abcd"), R"({"type":"session_token","token":"0123abcd"})");
    EXPECT_EQ(encode_token("0123abcd"), R"({"token":"0123abcd"})");
    EXPECT_EQ(encode_error("Missing userId parameter"), R"({"error":"Missing userId parameter"})");
    EXPECT_EQ(encode_error(kUserIdHeld), R"({"error":"userId is held by another client"})");
    EXPECT_EQ(encode_error(kTooManyUsers), R"({"error":"Too many users, please try later"})");
}

TEST(MoonshareMessages, FixedTexts) {
    EXPECT_EQ(kReceiveReady, "file_receive_ready");
    EXPECT_EQ(kMissingBegin, "FILE_FAILED: Missing file_send_begin parameters");
    EXPECT_EQ(kTooLarge, "FILE_FAILED: File too large");
    EXPECT_EQ(kMissingState, "FILE_FAILED: Missing state for completion");
    EXPECT_EQ(kSizeMismatch, "FILE_FAILED: Size mismatch");
    EXPECT_EQ(kFileSent, "FILE_SENT");
    EXPECT_EQ(kFileSentServerOnly, "FILE_SENT_SERVER_ONLY");
    EXPECT_EQ(kUploadBusy, "FILE_FAILED: Server busy, please try later");
    EXPECT_EQ(kNameTooLong, "FILE_FAILED: File name too long");
    EXPECT_EQ(kUnknownRecipient, "FILE_FAILED: Unknown recipient");
}

// ---- round trips --------------------------------------------------------------------------------

// Every string the server writes (System.Text.Json's escaping) reads back as it was sent.
TEST(MoonshareMessages, StringsRoundTripThroughTheWriterAndTheParser) {
    const std::vector<std::string> strings = {"plain",
                                              "quotes \" and \\ backslash",
                                              "<html>&'+`",
                                              "\t\n\r\b\f",
                                              std::string("nul\0byte", 8),
                                              "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
                                              ""};
    for (const auto& s : strings) {
        const auto m = parsed(JsonObject()
                                  .str("type", "file_send_begin")
                                  .str("targetUserId", "t")
                                  .str("fileName", s.empty() ? "x" : s)
                                  .num("fileSize", 5)
                                  .done());
        EXPECT_EQ(m.error, Error::kNone) << s;
        EXPECT_EQ(m.file_name, s.empty() ? "x" : s);
        const auto c = parsed(JsonObject().str("type", "connect").str("targetUserId", s).done());
        EXPECT_EQ(c.target, s);
        const auto a = parsed(
            JsonObject().str("type", "session_auth").str("userId", s).str("token", "t").done());
        EXPECT_EQ(a.user_id, s);
    }
}

// What the server relays is what the sender announced: file_send_begin's name and size.
TEST(MoonshareMessages, AnnouncedFileRoundTripsIntoTheRelayedBegin) {
    const auto m = parsed(JsonObject()
                              .str("type", "file_send_begin")
                              .str("targetUserId", "bob")
                              .str("fileName", "r\xc3\xa9sum\xc3\xa9 <1>.pdf")
                              .num("fileSize", 4096)
                              .done());
    ASSERT_EQ(m.error, Error::kNone);
    EXPECT_EQ(encode_file_send_begin(m.file_name, "alice", m.file_size),
              R"({"type":"file_send_begin","fileName":"r\u00E9sum\u00E9 \u003C1\u003E.pdf",)"
              R"("fromUserId":"alice","fileSize":4096})");
}

}  // namespace
}  // namespace hearth::frontends::moonshare
