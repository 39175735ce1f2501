// Security part 2, item 5: a HunterPie setsession that changes nothing (the same session and
// leader flag again) is answered to its sender alone. Before, every repeat sent the session's
// state to every member, so one client could make the server send N messages per message it
// sent, to members that had nothing new to learn.

#include <string>

#include <gtest/gtest.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

constexpr std::string_view kLeaderJoin =
    R"({"sessionId":"host-abc","type":"SetSession","isLeader":true})";
constexpr std::string_view kMemberJoin =
    R"({"sessionId":"host-abc","type":"SetSession","isLeader":false})";

std::string state(bool leader, int players) {
    return std::string(R"({"type":"sessionstate","leaderConnected":)") +
           (leader ? "true" : "false") + R"(,"playersCount":)" + std::to_string(players) + "}";
}

std::string next_text(WsClient& ws) {
    auto m = ws.read();
    if (!m) {
        ADD_FAILURE() << "connection closed: " << ws.close_info()->code;
        return {};
    }
    return m->data;
}

std::string call(WsClient& ws, std::string_view text) {
    ws.send_text(std::string(text));
    return next_text(ws);
}

TEST(HunterPieAbuse, ARepeatedSetsessionReachesNoOtherMember) {
    TestServer server({{"hunterpie.enabled", "true"}, {"hunterpie.listen", "\"127.0.0.1:0\""}});
    const auto port = server.app().server().bound_port("hunterpie");
    WsClient leader(port, WsOptions{.path = "/connect?playerName=leader"});
    WsClient a(port, WsOptions{.path = "/connect?playerName=a"});
    WsClient b(port, WsOptions{.path = "/connect?playerName=b"});
    EXPECT_EQ(call(leader, kLeaderJoin), state(true, 1));
    EXPECT_EQ(call(a, kMemberJoin), state(true, 2));
    EXPECT_EQ(next_text(leader), state(true, 2));
    EXPECT_EQ(call(b, kMemberJoin), state(true, 3));
    EXPECT_EQ(next_text(leader), state(true, 3));
    EXPECT_EQ(next_text(a), state(true, 3));

    // The same setsession again and again: the sender gets the current state each time (the
    // plugin waits for one after each setsession), and nobody else gets anything.
    constexpr int kRepeats = 50;
    for (int i = 0; i < kRepeats; ++i) {
        ASSERT_EQ(call(a, kMemberJoin), state(true, 3)) << i;
    }
    EXPECT_EQ(server.metric("hearth_hunterpie_setsession_unchanged_total"), kRepeats);

    // A real change reaches every member, and for the others it is the next message: the
    // repeats, all handled before it, left nothing in front of it.
    EXPECT_EQ(call(leader, kMemberJoin), state(false, 3));
    EXPECT_EQ(next_text(a), state(false, 3));
    EXPECT_EQ(next_text(b), state(false, 3));
    EXPECT_EQ(server.metric("hearth_hunterpie_setsession_unchanged_total"), kRepeats);
}

}  // namespace
}  // namespace hearth::test
