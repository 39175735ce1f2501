// `hearth account ...` and `hearth token ...` run as the real binary against a data directory that
// a running server shares, and the check that no password or token is ever written in clear to
// the data directory or the logs.

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

constexpr const char* kPassword = "cli-secret-password-81";

/// The CLI's environment: the shared data directory and cheap password hashing.
std::map<std::string, std::string> cli_env(const TempDir& data) {
    return {{"HEARTH_SERVER__DATA_DIR", data.path()},
            {"HEARTH_AUTH__PASSWORD_OPS_LIMIT", "1"},
            {"HEARTH_AUTH__PASSWORD_MEM_LIMIT_KIB", "8"}};
}

Overrides server_overrides(const TempDir& data) {
    return {{"server.data_dir", "\"" + data.path() + "\""},
            {"auth.password_ops_limit", "1"},
            {"auth.password_mem_limit_kib", "8"}};
}

struct Run {
    int code;
    std::string output;
};

Run cli(const TempDir& data, const std::vector<std::string>& args,
        const std::string& stdin_text = "") {
    ChildProcess p(args, cli_env(data), stdin_text);
    const int code = p.wait_exit();
    return {code, p.output()};
}

int login_status(std::uint16_t port, const std::string& user, const std::string& password) {
    return http_request(port, "POST", "/api/v1/auth/login",
                        R"({"username":")" + user + R"(","password":")" + password + R"("})",
                        {{"Content-Type", "application/json"}})
        .status;
}

int accounts_status(std::uint16_t port, const std::string& token) {
    return http_request(port, "GET", "/api/v1/accounts", "", {{"Authorization", "Bearer " + token}})
        .status;
}

/// Every byte of every file under `dir`.
std::string all_bytes(const std::string& dir) {
    std::string out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        if (e.is_regular_file()) {
            std::ifstream in(e.path(), std::ios::binary);
            std::stringstream ss;
            ss << in.rdbuf();
            out += ss.str();
        }
    }
    return out;
}

TEST(CliAccounts, AddListDisableEnable) {
    TempDir data;
    auto added =
        cli(data, {"account", "add", "alice", "--role", "admin", "--email", "a@example.org"},
            std::string(kPassword) + "\n");
    ASSERT_EQ(added.code, 0) << added.output;
    EXPECT_NE(added.output.find("created account alice"), std::string::npos) << added.output;

    auto again = cli(data, {"account", "add", "ALICE"}, std::string(kPassword) + "\n");
    EXPECT_EQ(again.code, 1);
    EXPECT_NE(again.output.find("taken"), std::string::npos) << again.output;
    EXPECT_EQ(cli(data, {"account", "add", "bad name"}, "whatever-long\n").code, 1);
    auto short_pw = cli(data, {"account", "add", "bob"}, "short\n");
    EXPECT_EQ(short_pw.code, 1);
    EXPECT_NE(short_pw.output.find("at least 8"), std::string::npos) << short_pw.output;
    EXPECT_EQ(cli(data, {"account", "add", "bob"}, "").code, 1);  // no password at all
    EXPECT_EQ(cli(data, {"account", "add", "bob", "--role", "king"}, "long-enough\n").code, 1);

    auto listed = cli(data, {"account", "list"});
    ASSERT_EQ(listed.code, 0) << listed.output;
    EXPECT_TRUE(std::regex_search(listed.output, std::regex(R"(\n1\s+alice\s+active\s+admin\s)")))
        << listed.output;

    TestServer server(server_overrides(data));
    EXPECT_EQ(login_status(server.port(), "alice", kPassword), 200);
    ASSERT_EQ(cli(data, {"account", "disable", "alice"}).code, 0);
    EXPECT_EQ(login_status(server.port(), "alice", kPassword), 403);
    ASSERT_EQ(cli(data, {"account", "enable", "alice"}).code, 0);
    EXPECT_EQ(login_status(server.port(), "alice", kPassword), 200);
    EXPECT_EQ(cli(data, {"account", "disable", "nobody"}).code, 1);
}

TEST(CliAccounts, TokenIssueListRevokeAgainstARunningServer) {
    TempDir data;
    ASSERT_EQ(
        cli(data, {"account", "add", "ops", "--role", "admin"}, std::string(kPassword) + "\n").code,
        0);
    TestServer server(server_overrides(data));

    ChildProcess issue({"token", "issue", "--account", "ops", "--kind", "api", "--scope", "admin",
                        "--name", "deploy"},
                       cli_env(data), "", ChildOptions{.program = "", .capture_stderr = false});
    ASSERT_EQ(issue.wait_exit(), 0) << issue.output();
    const std::string token = issue.output().substr(0, issue.output().find('\n'));
    ASSERT_TRUE(std::regex_match(token, std::regex("[A-Za-z0-9_-]{43}"))) << issue.output();
    EXPECT_EQ(accounts_status(server.port(), token), 200);

    auto listed = cli(data, {"token", "list", "--account", "ops"});
    ASSERT_EQ(listed.code, 0) << listed.output;
    EXPECT_EQ(listed.output.find(token), std::string::npos) << "the list must not show tokens";
    std::smatch m;
    ASSERT_TRUE(std::regex_search(listed.output, m, std::regex(R"(\n(\d+)\s+\d+\s+api\s+deploy)")))
        << listed.output;
    const std::string id = m[1];

    EXPECT_EQ(cli(data, {"token", "issue", "--account", "ops", "--scope", "everything"}).code, 1);
    EXPECT_EQ(cli(data, {"token", "issue", "--account", "nobody", "--scope", "native"}).code, 1);

    ASSERT_EQ(cli(data, {"token", "revoke", id}).code, 0);
    // Revoked from another process: the server notices within its token cache's lifetime (1 s).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 200;
    while (status == 200 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval
        status = accounts_status(server.port(), token);
    }
    EXPECT_EQ(status, 401);
    EXPECT_EQ(cli(data, {"token", "revoke", "99999"}).code, 1);
    auto all = cli(data, {"token", "list", "--all"});
    EXPECT_NE(all.output.find("deploy"), std::string::npos) << all.output;
    EXPECT_EQ(cli(data, {"token", "list"}).output.find("deploy"), std::string::npos);
}

TEST(CliAccounts, NoSecretIsWrittenInClear) {
    TempDir data;
    auto added =
        cli(data, {"account", "add", "root", "--role", "admin"}, std::string(kPassword) + "\n");
    ASSERT_EQ(added.code, 0) << added.output;
    ChildProcess issue({"token", "issue", "--account", "root", "--scope", "admin"}, cli_env(data),
                       "", ChildOptions{.program = "", .capture_stderr = false});
    ASSERT_EQ(issue.wait_exit(), 0);
    const std::string api_key = issue.output().substr(0, issue.output().find('\n'));

    // The real server, logging at debug level to its output and to a log file in the data
    // directory, through which a login, a use of each token, a failed login and a logout pass.
    auto overrides = server_overrides(data);
    overrides["server.log_file"] = "\"" + data.file("hearth.log") + "\"";
    overrides["server.log_level"] = "\"debug\"";
    const std::string config = data.file("hearth.toml");
    {
        std::ofstream out(config);
        out << test_config_toml(overrides, data.path());
    }
    std::string session;
    std::string server_output;
    {
        ChildProcess server({"serve", "-c", config});
        const auto line = server.wait_for_line("for http");
        std::smatch m;
        ASSERT_TRUE(std::regex_search(line, m, std::regex(R"(listening on [^ ]+:(\d+) for http)")))
            << line;
        const auto port = static_cast<std::uint16_t>(std::stoi(m[1]));
        auto r =
            http_request(port, "POST", "/api/v1/auth/login",
                         R"({"username":"root","password":")" + std::string(kPassword) + R"("})",
                         {{"Content-Type", "application/json"}});
        ASSERT_EQ(r.status, 200) << r.body;
        session = r.body.substr(r.body.find(R"("token":")") + 9, 43);
        EXPECT_EQ(accounts_status(port, session), 200);
        EXPECT_EQ(accounts_status(port, api_key), 200);
        EXPECT_EQ(login_status(port, "root", "wrong-password-here"), 401);
        EXPECT_EQ(http_request(port, "POST", "/api/v1/auth/logout", "",
                               {{"Authorization", "Bearer " + session}})
                      .status,
                  204);
        server.signal(SIGTERM);
        EXPECT_EQ(server.wait_exit(), 0);
        server_output = server.output();
    }
    EXPECT_NE(server_output.find("/api/v1/auth/login"), std::string::npos)
        << "the debug log should show the requests it was exposed to";
    const std::string bytes = all_bytes(data.path());
    EXPECT_FALSE(bytes.empty());
    for (const std::string& secret :
         {std::string(kPassword), api_key, session, std::string("wrong-password-here")}) {
        EXPECT_EQ(bytes.find(secret), std::string::npos)
            << "a secret was found in clear in the data directory or the log file";
        EXPECT_EQ(added.output.find(secret), std::string::npos);
        EXPECT_EQ(server_output.find(secret), std::string::npos);
    }
}

}  // namespace
}  // namespace hearth::test
