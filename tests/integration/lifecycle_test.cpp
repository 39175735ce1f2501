// The `hearth` binary as a user runs it: commands, config checking, signals, graceful shutdown,
// TLS. Each test starts the real binary as a child process.

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>

#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::trunc);
    out << text;
}

// Starts `hearth serve` on port 0 and returns the HTTP port it logged.
std::uint16_t wait_listening(ChildProcess& p) {
    auto line = p.wait_for_line("for http");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(line, m, std::regex(R"(listening on [^ ]+:(\d+) for http)")))
        << line;
    return static_cast<std::uint16_t>(std::stoi(m[1]));
}

TEST(Cli, VersionPrintsNameAndVersion) {
    ChildProcess p({"--version"});
    EXPECT_EQ(p.wait_exit(), 0);
    EXPECT_EQ(p.output().rfind("hearth 0.", 0), 0u) << p.output();
}

TEST(Cli, DefaultConfigRoundTripsThroughCheck) {
    ChildProcess print({"config", "default"});
    ASSERT_EQ(print.wait_exit(), 0);
    const std::string defaults = print.output();
    EXPECT_NE(defaults.find("[server]"), std::string::npos);
    EXPECT_NE(defaults.find("listen = \"127.0.0.1:8080\""), std::string::npos);
    ChildProcess check({"config", "check", "-"}, {}, defaults);
    EXPECT_EQ(check.wait_exit(), 0) << check.output();
}

TEST(Cli, CheckNamesEveryBadKey) {
    TempDir dir;
    write_file(dir.file("bad.toml"),
               "[http]\nlisten = \"nowhere\"\nbogus = 1\n[server]\nio_threads = -3\n");
    ChildProcess check({"config", "check", dir.file("bad.toml")});
    EXPECT_EQ(check.wait_exit(), 1);
    EXPECT_NE(check.output().find("http.bogus"), std::string::npos) << check.output();
    EXPECT_NE(check.output().find("http.listen"), std::string::npos) << check.output();
    EXPECT_NE(check.output().find("server.io_threads"), std::string::npos) << check.output();
}

TEST(Cli, ServeRejectsAnInvalidConfig) {
    TempDir dir;
    write_file(dir.file("bad.toml"), "[nope]\nx = 1\n");
    ChildProcess p({"serve", "-c", dir.file("bad.toml")});
    EXPECT_EQ(p.wait_exit(), 1);
    EXPECT_NE(p.output().find("nope"), std::string::npos) << p.output();
}

TEST(Cli, MigrateAppliesTheSchemaOnceAndReports) {
    TempDir dir;
    const std::map<std::string, std::string> env{{"HEARTH_SERVER__DATA_DIR", dir.path()}};
    ChildProcess first({"migrate"}, env);
    EXPECT_EQ(first.wait_exit(), 0) << first.output();
    EXPECT_NE(first.output().find("1 mailboxes"), std::string::npos) << first.output();
    EXPECT_TRUE(std::filesystem::exists(dir.file("hearth.db")));
    ChildProcess again({"migrate"}, env);
    EXPECT_EQ(again.wait_exit(), 0) << again.output();
    EXPECT_EQ(again.output().find("1 mailboxes"), std::string::npos) << again.output();
}

TEST(Lifecycle, SigtermClosesWebSocketsWith1001AndExitsZero) {
    TempDir dir;
    ChildProcess p({"serve", "--log-level", "info"}, {{"HEARTH_HTTP__LISTEN", "127.0.0.1:0"},
                                                      {"HEARTH_HTTP__ECHO_ROUTE", "true"},
                                                      {"HEARTH_SERVER__DATA_DIR", dir.path()}});
    const auto port = wait_listening(p);
    WsClient a(port);
    WsClient b(port);
    a.send_text("x");
    ASSERT_EQ(a.read()->data, "x");
    p.signal(SIGTERM);
    EXPECT_EQ(a.wait_closed().code, 1001);
    EXPECT_EQ(b.wait_closed().code, 1001);
    EXPECT_EQ(p.wait_exit(), 0) << p.output();
}

TEST(Lifecycle, SigintExitsZero) {
    TempDir dir;
    ChildProcess p({"serve"}, {{"HEARTH_HTTP__LISTEN", "127.0.0.1:0"},
                               {"HEARTH_SERVER__DATA_DIR", dir.path()}});
    const auto port = wait_listening(p);
    EXPECT_EQ(http_request(port, "GET", "/health").status, 200);
    p.signal(SIGINT);
    EXPECT_EQ(p.wait_exit(), 0) << p.output();
}

TEST(Lifecycle, SighupWithABadFileKeepsServingAndAGoodFileApplies) {
    TempDir dir;
    const std::string config = dir.file("hearth.toml");
    write_file(config, test_config_toml({{"server.log_level", "\"info\""}}, dir.path()));
    ChildProcess p({"serve", "-c", config});
    const auto port = wait_listening(p);

    write_file(config, "[http]\nlisten = 12\n");
    p.signal(SIGHUP);
    p.wait_for_line("config reload rejected");
    EXPECT_EQ(http_request(port, "GET", "/health").status, 200);

    // A valid file with a changed limit and a changed listen address: the limit applies, the
    // address needs a restart and says so.
    write_file(config,
               test_config_toml({{"http.max_body_bytes", "10"}, {"http.listen", "\"127.0.0.1:1\""}},
                                dir.path()));
    p.signal(SIGHUP);
    p.wait_for_line("configuration reloaded");
    EXPECT_NE(p.output().find("http.listen changed but needs a restart"), std::string::npos)
        << p.output();
    EXPECT_EQ(http_request(port, "POST", "/health", std::string(100, 'x')).status, 413);
    EXPECT_EQ(http_request(port, "GET", "/health").status, 200);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait_exit(), 0);
}

TEST(Lifecycle, PortInUseFailsWithAMessageNamingIt) {
    TestServer first;
    const std::string taken = "127.0.0.1:" + std::to_string(first.port());
    ChildProcess p({"serve"}, {{"HEARTH_HTTP__LISTEN", taken}});
    EXPECT_EQ(p.wait_exit(), 1);
    EXPECT_NE(p.output().find(taken), std::string::npos) << p.output();
}

TEST(Lifecycle, JsonLogFormat) {
    TempDir dir;
    ChildProcess p({"serve", "--log-format", "json"}, {{"HEARTH_HTTP__LISTEN", "127.0.0.1:0"},
                                                       {"HEARTH_SERVER__DATA_DIR", dir.path()}});
    auto line = p.wait_for_line("for http");
    EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
    EXPECT_NE(line.find("\"level\":\"info\""), std::string::npos) << line;
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait_exit(), 0);
}

TEST(Tls, HttpsAndWssOnATlsListener) {
    TempDir dir;
    auto cert = make_test_certificate(dir.path());
    TestServer server({{"http.tls_cert_file", "\"" + cert.cert_file + "\""},
                       {"http.tls_key_file", "\"" + cert.key_file + "\""}});
    auto r = http_request(server.port(), "GET", "/health", "", {}, true);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, R"({"status":"ok"})");

    WsClient client(server.port(), WsOptions{.compression = true, .tls = true});
    for (std::size_t size : {5u, 100000u}) {
        std::string payload(size, 't');
        client.send_text(payload);
        auto m = client.read();
        ASSERT_TRUE(m);
        EXPECT_EQ(m->data, payload);
    }
    // The server reloads its certificate on demand (SIGHUP) without dropping connections.
    server.app().server().reload_tls();
    client.send_text("after reload");
    EXPECT_EQ(client.read()->data, "after reload");
    EXPECT_EQ(http_request(server.port(), "GET", "/health", "", {}, true).status, 200);
}

TEST(Lifecycle, InProcessShutdownClosesConnectionsWithin1001) {
    auto server = std::make_unique<TestServer>();
    WsClient client(server->port());
    client.send_text("x");
    ASSERT_EQ(client.read()->data, "x");
    std::thread stopper([&] { EXPECT_TRUE(server->app().shutdown()); });
    EXPECT_EQ(client.wait_closed().code, 1001);
    stopper.join();
}

}  // namespace
}  // namespace hearth::test
