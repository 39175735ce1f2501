// Abuse of the account system over real sockets (security part 2, items 2 and 14): a burst of
// password guesses sent at once, a stolen session kept after its password changed, and a flood of
// refused tokens that would fill the logs.

#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"
#include "util/log.hpp"

namespace hearth::test {
namespace {

namespace json = boost::json;

constexpr const char* kAdmin = "abuse-auth-admin";

HttpResult login(std::uint16_t port, const std::string& user, const std::string& password) {
    return http_request(port, "POST", "/api/v1/auth/login",
                        R"({"username":")" + user + R"(","password":")" + password + R"("})",
                        {{"Content-Type", "application/json"}});
}

HttpResult as_admin(std::uint16_t port, const std::string& method, const std::string& target,
                    const std::string& body) {
    return http_request(
        port, method, target, body,
        {{"Authorization", std::string("Bearer ") + kAdmin}, {"Content-Type", "application/json"}});
}

TEST(AbuseAuth, GuessesSentAtOnceAreNotAllChecked) {
    // Hashes slow enough (the production cost) that a burst arrives while the first are still
    // being checked; a delay long enough that no attempt after the free ones is due in the test.
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""},
                       {"auth.password_ops_limit", "2"},
                       {"auth.password_mem_limit_kib", "65536"},
                       {"auth.throttle_free_failures", "5"},
                       {"auth.throttle_base_delay_ms", "600000"}});
    const auto port = server.port();
    ASSERT_EQ(as_admin(port, "POST", "/api/v1/accounts",
                       R"({"username":"target","password":"the-real-password"})")
                  .status,
              201);
    constexpr int kGuesses = 24;
    std::vector<std::future<int>> answers;
    for (int i = 0; i < kGuesses; ++i) {
        answers.push_back(std::async(std::launch::async, [port, i] {
            return login(port, "target", "guess-" + std::to_string(i)).status;
        }));
    }
    int checked = 0;
    int throttled = 0;
    for (auto& a : answers) {
        const int status = a.get();
        checked += status == 401 ? 1 : 0;
        throttled += status == 429 ? 1 : 0;
    }
    // The five free failures and the one after them are checked; every other guess is refused
    // without a hash, however many arrive at once.
    EXPECT_LE(checked, 6) << throttled << " throttled";
    EXPECT_EQ(checked + throttled, kGuesses);
    EXPECT_GE(checked, 1);
    EXPECT_EQ(server.metric("hearth_auth_logins_total", {{"result", "invalid_credentials"}}),
              checked);
}

TEST(AbuseAuth, ANewPasswordEndsTheSessionsOfTheOldOne) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    ASSERT_EQ(as_admin(port, "POST", "/api/v1/accounts",
                       R"({"username":"ursula","password":"old-password-1"})")
                  .status,
              201);
    auto stolen = login(port, "ursula", "old-password-1");
    ASSERT_EQ(stolen.status, 200) << stolen.body;
    const std::string token(json::parse(stolen.body).at("token").as_string());
    auto refresh = [&](const std::string& t) {
        return http_request(port, "POST", "/api/v1/auth/refresh", "",
                            {{"Authorization", "Bearer " + t}});
    };

    ASSERT_EQ(as_admin(port, "PATCH", "/api/v1/accounts/ursula", R"({"password":"new-password-2"})")
                  .status,
              200);
    EXPECT_EQ(refresh(token).status, 401);  // the old password's session is over
    EXPECT_EQ(login(port, "ursula", "old-password-1").status, 401);
    auto fresh = login(port, "ursula", "new-password-2");
    ASSERT_EQ(fresh.status, 200) << fresh.body;
    EXPECT_EQ(refresh(std::string(json::parse(fresh.body).at("token").as_string())).status, 200);
}

// Each refused token is counted, but its log line is rate-limited: a client refused as fast as it
// can send cannot fill the log ring (and the operator's screen) with its own lines.
TEST(AbuseAuth, RefusedTokenLinesAreRateLimitedButAllCounted) {
    TestServer server({{"http.admin_token", std::string("\"") + kAdmin + "\""}});
    const auto port = server.port();
    const auto before = util::log_ring().recent(1);
    const std::uint64_t start_seq = before.empty() ? 0 : before.back().seq;
    constexpr int kRefused = 400;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRefused; ++i) {
        ASSERT_EQ(http_request(port, "GET", "/api/v1/accounts", "",
                               {{"Authorization", "Bearer not-a-token-" + std::to_string(i)}})
                      .status,
                  401);
    }
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Lines reach the ring on the logging thread: a marker logged after them says when all have.
    util::logger("test")->info("refusal flood over");
    std::vector<util::LogRecord> lines;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool marker = false;
    while (!marker && std::chrono::steady_clock::now() < until) {
        lines = util::log_ring().recent(100000, start_seq);
        for (const auto& l : lines) {
            marker = marker || l.message == "refusal flood over";
        }
        std::this_thread::yield();
    }
    ASSERT_TRUE(marker);
    int refusal_lines = 0;
    for (const auto& l : lines) {
        refusal_lines += l.message.find("refused a token") != std::string::npos ? 1 : 0;
    }
    EXPECT_EQ(server.metric("hearth_auth_refusals_total",
                            {{"door", "operator"}, {"reason", "invalid_token"}}),
              kRefused);
    // The burst (100), plus 20 a second for as long as the flood lasted.
    EXPECT_GE(refusal_lines, 100);
    EXPECT_LE(refusal_lines, 100 + static_cast<int>(20 * elapsed_s) + 1)
        << "over " << elapsed_s << " s";
}

}  // namespace
}  // namespace hearth::test
