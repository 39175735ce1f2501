#include "core/config.hpp"
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace hearth::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Stand-ins for module sections: a nested name, an array key, and strings that need escaping.
struct BetterAuthTestConfig {
    static constexpr std::string_view kName = "auth.better_auth";
    static constexpr std::string_view kDescription = "Test section with a dotted name.";

    bool enabled = false;
    std::string postgres_url;

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Whether the bridge runs."});
        v("postgres_url", postgres_url, {.help = "Where the accounts live.", .restart = true});
    }
    bool operator==(const BetterAuthTestConfig&) const = default;
};

inline constexpr std::string_view kModes[] = {"a\"b", "plain"};

struct MoonshareTestConfig {
    static constexpr std::string_view kName = "moonshare";
    static constexpr std::string_view kDescription = "Test section with arrays and odd strings.";

    std::vector<std::string> player_listen = {"0.0.0.0:5000", "0.0.0.0:5001"};
    std::vector<std::string> empty_list;
    std::string motd = "quote \" backslash \\ tab \t newline \n bell \x07 unicode \xC3\xA9";
    std::string mode = "a\"b";
    double ratio = 0.1;
    double big = 1e300;
    std::int64_t negative = -5;

    template <class V>
    void visit(V& v) {
        v("player_listen", player_listen, {.help = "Player listeners.", .restart = true});
        v("empty_list", empty_list, {.help = "Nothing by default."});
        v("motd", motd, {.help = "Message of the day."});
        v("mode", mode, {.help = "A choice.", .choices = kModes});
        v("ratio", ratio, {.help = "A fraction."});
        v("big", big, {.help = "A large number."});
        v("negative", negative, {.help = "Below zero.", .min = -10, .max = 10});
    }
    bool operator==(const MoonshareTestConfig&) const = default;
};

struct OtherHttp {
    static constexpr std::string_view kName = "http";
};

ConfigSchema core_schema() {
    ConfigSchema schema;
    schema.add<ServerConfig>();
    schema.add<HttpConfig>();
    schema.add<WebSocketConfig>();
    return schema;
}

ConfigSchema full_schema() {
    ConfigSchema schema = core_schema();
    schema.add<BetterAuthTestConfig>();
    schema.add<MoonshareTestConfig>();
    return schema;
}

class ConfigTest : public ::testing::Test {
protected:
    ConfigSchema::LoadResult load(std::string_view text, const Environment& env = {}) const {
        return schema_.load_string(text, "test.toml", env);
    }

    /// The errors of a load that must fail.
    ConfigErrors errors_of(std::string_view text, const Environment& env = {}) const {
        auto result = load(text, env);
        EXPECT_EQ(result.config, nullptr);
        return result.errors;
    }

    /// The config of a load that must succeed.
    std::shared_ptr<const Config> config_of(std::string_view text,
                                            const Environment& env = {}) const {
        auto result = load(text, env);
        EXPECT_THAT(result.errors, IsEmpty());
        return result.config;
    }

    ConfigSchema schema_ = full_schema();
};

// ---------------------------------------------------------------------------------------------
// Defaults and files.

TEST_F(ConfigTest, DefaultsWithNoFile) {
    auto result = schema_.load({}, {});
    ASSERT_THAT(result.errors, IsEmpty());
    ASSERT_NE(result.config, nullptr);
    EXPECT_TRUE(result.config->source().empty());
    EXPECT_EQ(result.config->get<ServerConfig>(), ServerConfig{});
    EXPECT_EQ(result.config->get<HttpConfig>(), HttpConfig{});
    EXPECT_EQ(result.config->get<WebSocketConfig>(), WebSocketConfig{});
    EXPECT_EQ(result.config->get<BetterAuthTestConfig>(), BetterAuthTestConfig{});
    EXPECT_EQ(result.config->get<MoonshareTestConfig>(), MoonshareTestConfig{});
}

TEST_F(ConfigTest, DefaultsAreTheDocumentedValues) {
    auto config = config_of("");
    ASSERT_NE(config, nullptr);
    const auto& server = config->get<ServerConfig>();
    EXPECT_EQ(server.data_dir, "./data");
    EXPECT_EQ(server.io_threads, 0);
    EXPECT_EQ(server.blocking_threads, 4);
    EXPECT_EQ(server.log_level, "info");
    EXPECT_EQ(server.log_format, "text");
    const auto& http = config->get<HttpConfig>();
    EXPECT_EQ(http.listen, "127.0.0.1:8080");
    EXPECT_TRUE(http.tls_cert_file.empty());
    EXPECT_EQ(http.max_body_bytes, 1024 * 1024);
    EXPECT_FALSE(http.echo_route);
    const auto& ws = config->get<WebSocketConfig>();
    EXPECT_EQ(ws.overflow_policy, "close");
    EXPECT_TRUE(ws.compression);
    EXPECT_DOUBLE_EQ(ws.max_messages_per_s, 1000);
    EXPECT_DOUBLE_EQ(ws.message_burst, 2000);
    EXPECT_EQ(ws.max_bytes_per_s, 8 * 1024 * 1024);
    EXPECT_EQ(ws.bytes_burst, 16 * 1024 * 1024);
}

TEST_F(ConfigTest, GetOfAnUnregisteredSectionThrows) {
    auto config = core_schema().load_string("", "", {}).config;
    ASSERT_NE(config, nullptr);
    EXPECT_THROW((void)config->get<MoonshareTestConfig>(), std::logic_error);
    // Same name, another type: refused rather than cast.
    EXPECT_THROW((void)config->get<OtherHttp>(), std::logic_error);
}

class TempFile {
public:
    explicit TempFile(std::string_view contents)
        : path_(std::filesystem::temp_directory_path() /
                ("hearth-config-test-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter_++) + ".toml")) {
        std::ofstream(path_) << contents;
    }
    ~TempFile() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

TEST_F(ConfigTest, LoadsARealFile) {
    TempFile file(
        "[server]\n"
        "io_threads = 2\n"
        "log_level = \"debug\"\n"
        "\n"
        "[http]\n"
        "listen = \"[::1]:0\"\n"
        "echo_route = true\n"
        "\n"
        "[websocket]\n"
        "max_messages_per_s = 12.5\n");
    auto result = schema_.load(file.path(), {});
    ASSERT_THAT(result.errors, IsEmpty());
    ASSERT_NE(result.config, nullptr);
    EXPECT_EQ(result.config->source(), file.path());
    EXPECT_EQ(result.config->get<ServerConfig>().io_threads, 2);
    EXPECT_EQ(result.config->get<ServerConfig>().log_level, "debug");
    EXPECT_EQ(result.config->get<HttpConfig>().listen, "[::1]:0");
    EXPECT_TRUE(result.config->get<HttpConfig>().echo_route);
    EXPECT_DOUBLE_EQ(result.config->get<WebSocketConfig>().max_messages_per_s, 12.5);
    // Keys left out keep their defaults.
    EXPECT_EQ(result.config->get<ServerConfig>().data_dir, "./data");
}

TEST_F(ConfigTest, ErrorsInAFileNameTheFile) {
    TempFile file("[http]\nnope = 1\n");
    auto result = schema_.load(file.path(), {});
    EXPECT_EQ(result.config, nullptr);
    EXPECT_THAT(result.errors, ElementsAre(file.path().string() + ":2:1: http.nope: unknown key"));
}

TEST_F(ConfigTest, MissingFileIsAnError) {
    auto result = schema_.load("/nonexistent/hearth.toml", {});
    EXPECT_EQ(result.config, nullptr);
    EXPECT_THAT(result.errors,
                ElementsAre("/nonexistent/hearth.toml: cannot read: No such file or directory"));
}

TEST_F(ConfigTest, SyntaxErrorIsOneErrorWithItsPosition) {
    auto errors = errors_of("[http]\nlisten = \"127.0.0.1:8080\n");
    ASSERT_THAT(errors, SizeIs(1));
    EXPECT_THAT(errors[0], ::testing::StartsWith("test.toml:2:"));
}

// ---------------------------------------------------------------------------------------------
// Strictness.

TEST_F(ConfigTest, UnknownKeyIsNamedWithPathAndLine) {
    EXPECT_THAT(errors_of("[server]\nio_threads = 1\n\n[http]\nfoo = 1\n"),
                ElementsAre("test.toml:5:1: http.foo: unknown key"));
}

TEST_F(ConfigTest, UnknownSectionIsNamedWithLine) {
    EXPECT_THAT(errors_of("\n[foo]\nx = 1\n"), ElementsAre("test.toml:2:2: foo: unknown section"));
}

TEST_F(ConfigTest, UnknownTopLevelKeyAndDottedKeys) {
    EXPECT_THAT(errors_of("x = 1\nhttp.bar = 2\n\"http.listen\" = \"a:1\"\n"),
                ElementsAre("test.toml:1:1: x: unknown key", "test.toml:2:6: http.bar: unknown key",
                            "test.toml:3:1: http.listen: unknown key"));
}

TEST_F(ConfigTest, WrongTypeIsNamed) {
    EXPECT_THAT(
        errors_of("[http]\nmax_body_bytes = \"big\"\n"),
        ElementsAre("test.toml:2:18: http.max_body_bytes: expected an integer, got a string"));
    EXPECT_THAT(errors_of("[http]\necho_route = 1\n"),
                ElementsAre("test.toml:2:14: http.echo_route: expected a boolean, got an integer"));
    EXPECT_THAT(errors_of("[server]\nio_threads = 1.5\n"),
                ElementsAre("test.toml:2:14: server.io_threads: expected an integer, got a float"));
    EXPECT_THAT(errors_of("[moonshare]\nplayer_listen = \"a:1\"\n"),
                ElementsAre("test.toml:2:17: moonshare.player_listen: expected an array of "
                            "strings, got a string"));
    EXPECT_THAT(errors_of("[moonshare]\nplayer_listen = [\"a:1\", 2]\n"),
                ElementsAre("test.toml:2:25: moonshare.player_listen[1]: expected a string, got "
                            "an integer"));
    EXPECT_THAT(errors_of("http = 1\n"),
                ElementsAre("test.toml:1:1: http: expected a table, got an integer"));
}

TEST_F(ConfigTest, DoubleAcceptsIntegers) {
    auto config = config_of("[websocket]\nmax_messages_per_s = 10\nmessage_burst = 20\n");
    ASSERT_NE(config, nullptr);
    EXPECT_DOUBLE_EQ(config->get<WebSocketConfig>().max_messages_per_s, 10.0);
    EXPECT_DOUBLE_EQ(config->get<WebSocketConfig>().message_burst, 20.0);
    EXPECT_THAT(errors_of("[websocket]\nmessage_burst = nan\n"),
                ElementsAre("test.toml:2:17: websocket.message_burst: must be a finite number, "
                            "got nan"));
}

TEST_F(ConfigTest, IntegerOutOfRange) {
    EXPECT_THAT(
        errors_of("[server]\nio_threads = 1000\n"),
        ElementsAre("test.toml:2:14: server.io_threads: must be between 0 and 256, got 1000"));
    EXPECT_THAT(
        errors_of("[server]\nio_threads = -1\n"),
        ElementsAre("test.toml:2:14: server.io_threads: must be between 0 and 256, got -1"));
    auto config = config_of("[server]\nio_threads = 256\n");
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<ServerConfig>().io_threads, 256);
}

TEST_F(ConfigTest, StringChoices) {
    EXPECT_THAT(errors_of("[server]\nlog_level = \"loud\"\n"),
                ElementsAre("test.toml:2:13: server.log_level: must be one of trace, debug, info, "
                            "warn, error, critical, off; got \"loud\""));
    auto config = config_of("[server]\nlog_level = \"warn\"\n");
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<ServerConfig>().log_level, "warn");
}

TEST_F(ConfigTest, NestedSectionNames) {
    auto config =
        config_of("[auth.better_auth]\nenabled = true\npostgres_url = \"postgres://db\"\n");
    ASSERT_NE(config, nullptr);
    EXPECT_TRUE(config->get<BetterAuthTestConfig>().enabled);
    EXPECT_EQ(config->get<BetterAuthTestConfig>().postgres_url, "postgres://db");

    // The same table written as a parent table with a subtable, or inline.
    config = config_of("[auth]\nbetter_auth = { enabled = true }\n");
    ASSERT_NE(config, nullptr);
    EXPECT_TRUE(config->get<BetterAuthTestConfig>().enabled);

    // `auth` itself is no section, so its other keys are unknown.
    EXPECT_THAT(errors_of("[auth]\nfoo = 1\n[auth.other]\nx = 1\n"),
                ElementsAre("test.toml:2:1: auth.foo: unknown key",
                            "test.toml:3:7: auth.other: unknown section"));
    EXPECT_THAT(errors_of("[auth.better_auth.extra]\nx = 1\n"),
                ElementsAre("test.toml:1:19: auth.better_auth.extra: unknown key"));
    EXPECT_THAT(errors_of("auth = \"x\"\n"),
                ElementsAre("test.toml:1:1: auth: expected a table, got a string"));
}

TEST_F(ConfigTest, AllErrorsAreCollected) {
    auto errors = errors_of(
        "[server]\n"
        "io_threads = 1000\n"
        "log_level = \"loud\"\n"
        "[http]\n"
        "listen = \"nowhere\"\n"
        "tls_cert_file = \"cert.pem\"\n"
        "foo = 1\n"
        "[bar]\n",
        {{"HEARTH_HTTP__NOPE", "1"}});
    EXPECT_THAT(errors, SizeIs(7));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("server.io_threads")));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("server.log_level")));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("http.foo: unknown key")));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("bar: unknown section")));
    EXPECT_THAT(errors, ::testing::Contains("HEARTH_HTTP__NOPE: unknown key http.nope"));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("http.listen")));
    EXPECT_THAT(errors, ::testing::Contains(HasSubstr("http.tls_key_file")));
}

// ---------------------------------------------------------------------------------------------
// Section checks.

TEST(ConfigHostPort, Accepts) {
    struct Case {
        std::string_view text;
        std::string_view host;
        std::uint16_t port;
    };
    const Case cases[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"0.0.0.0:0", "0.0.0.0", 0},
        {"localhost:65535", "localhost", 65535},
        {"game-01.example.com:443", "game-01.example.com", 443},
        {"[::1]:8080", "::1", 8080},
        {"[::]:1", "::", 1},
        {"[fe80::1:2]:9", "fe80::1:2", 9},
    };
    for (const Case& c : cases) {
        std::string host;
        std::uint16_t port = 1234;
        EXPECT_TRUE(parse_host_port(c.text, host, port)) << c.text;
        EXPECT_EQ(host, c.host) << c.text;
        EXPECT_EQ(port, c.port) << c.text;
    }
}

TEST(ConfigHostPort, Rejects) {
    for (std::string_view text : {"",
                                  "localhost",
                                  ":8080",
                                  "localhost:",
                                  "localhost:65536",
                                  "localhost:-1",
                                  "localhost:+1",
                                  "localhost:80a",
                                  "localhost:123456",
                                  "::1:8080",
                                  "[::1]8080",
                                  "[::1]",
                                  "[::1:80",
                                  "[localhost]:80",
                                  "[1.2.3.4]:80",
                                  "256.0.0.1:80",
                                  "1.2.3:80",
                                  "1.2.3.4.5:80",
                                  "-bad.example:80",
                                  "bad-.example:80",
                                  "a..b:80",
                                  "under_score:80",
                                  "sp ace:80",
                                  "host/path:80"}) {
        std::string host = "unchanged";
        std::uint16_t port = 7;
        EXPECT_FALSE(parse_host_port(text, host, port)) << text;
        EXPECT_EQ(host, "unchanged") << text;
        EXPECT_EQ(port, 7) << text;
    }
}

TEST_F(ConfigTest, BadListenAddressIsRejectedWithItsPosition) {
    EXPECT_THAT(errors_of("[http]\n\nlisten = \"localhost\"\n"),
                ElementsAre("test.toml:3:1: http.listen: expected host:port with a host name, an "
                            "IPv4 address or an [IPv6] address and a port 0..65535; got "
                            "\"localhost\""));
    EXPECT_THAT(errors_of("", {{"HEARTH_HTTP__LISTEN", "0.0.0.0:70000"}}),
                ElementsAre(::testing::StartsWith("HEARTH_HTTP__LISTEN: http.listen: expected")));
}

TEST_F(ConfigTest, TlsFilesComeInPairs) {
    EXPECT_THAT(errors_of("[http]\ntls_cert_file = \"c.pem\"\n"),
                ElementsAre("http.tls_key_file: must be set when tls_cert_file is"));
    EXPECT_THAT(errors_of("[http]\ntls_key_file = \"k.pem\"\n"),
                ElementsAre("http.tls_cert_file: must be set when tls_key_file is"));
    auto config = config_of("[http]\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n");
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<HttpConfig>().tls_cert_file, "c.pem");
}

TEST_F(ConfigTest, WebSocketRateChecks) {
    EXPECT_THAT(errors_of("[websocket]\nmax_messages_per_s = -1\n"),
                ElementsAre("test.toml:2:1: websocket.max_messages_per_s: must be at least 0 (0 "
                            "means unlimited), got -1.0"));
    EXPECT_THAT(errors_of("[websocket]\nmessage_burst = 0.5\n"),
                ElementsAre("test.toml:2:1: websocket.message_burst: must be at least 1 when "
                            "max_messages_per_s is set, got 0.5"));
    // Unlimited rate: the burst does not matter.
    EXPECT_NE(config_of("[websocket]\nmax_messages_per_s = 0\nmessage_burst = 0\n"), nullptr);
    EXPECT_THAT(errors_of("[websocket]\nping_interval_s = 120\n"),
                ElementsAre("test.toml:2:1: websocket.ping_interval_s: must be less than "
                            "idle_timeout_s (120), got 120"));
    EXPECT_NE(config_of("[websocket]\nping_interval_s = 0\n"), nullptr);
}

TEST_F(ConfigTest, DataDirMustNotBeEmpty) {
    EXPECT_THAT(errors_of("[server]\ndata_dir = \"\"\n"),
                ElementsAre("test.toml:2:1: server.data_dir: must not be empty"));
}

// ---------------------------------------------------------------------------------------------
// Environment overrides.

TEST_F(ConfigTest, EnvironmentOverridesEachType) {
    auto config = config_of("", {
                                    {"HEARTH_HTTP__MAX_BODY_BYTES", "2048"},
                                    {"HEARTH_HTTP__ECHO_ROUTE", "true"},
                                    {"HEARTH_HTTP__LISTEN", "0.0.0.0:9000"},
                                    {"HEARTH_MOONSHARE__PLAYER_LISTEN", "[\"0.0.0.0:6000\"]"},
                                    {"HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S", "50"},
                                    {"HEARTH_SERVER__LOG_LEVEL", "\"debug\""},
                                });
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<HttpConfig>().max_body_bytes, 2048);
    EXPECT_TRUE(config->get<HttpConfig>().echo_route);
    EXPECT_EQ(config->get<HttpConfig>().listen, "0.0.0.0:9000");
    EXPECT_THAT(config->get<MoonshareTestConfig>().player_listen, ElementsAre("0.0.0.0:6000"));
    EXPECT_DOUBLE_EQ(config->get<WebSocketConfig>().max_messages_per_s, 50.0);
    EXPECT_EQ(config->get<ServerConfig>().log_level, "debug");
}

TEST_F(ConfigTest, EnvironmentNestedSection) {
    auto config = config_of("", {{"HEARTH_AUTH_BETTER_AUTH__POSTGRES_URL",
                                  "postgresql://hearth:secret@db:5432/auth?sslmode=require"},
                                 {"HEARTH_AUTH_BETTER_AUTH__ENABLED", "true"}});
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<BetterAuthTestConfig>().postgres_url,
              "postgresql://hearth:secret@db:5432/auth?sslmode=require");
    EXPECT_TRUE(config->get<BetterAuthTestConfig>().enabled);
}

TEST_F(ConfigTest, EnvironmentStringKeysTakeTextThatLooksLikeOtherTypes) {
    auto config = config_of("", {{"HEARTH_HTTP__ADMIN_TOKEN", "12345"},
                                 {"HEARTH_MOONSHARE__MOTD", "true"},
                                 {"HEARTH_SERVER__LOG_FILE", ""}});
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<HttpConfig>().admin_token, "12345");
    EXPECT_EQ(config->get<MoonshareTestConfig>().motd, "true");
    EXPECT_EQ(config->get<ServerConfig>().log_file, "");
}

TEST_F(ConfigTest, EnvironmentWinsOverTheFile) {
    auto config = config_of("[http]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 10\n",
                            {{"HEARTH_HTTP__LISTEN", "127.0.0.1:2"}});
    ASSERT_NE(config, nullptr);
    EXPECT_EQ(config->get<HttpConfig>().listen, "127.0.0.1:2");
    EXPECT_EQ(config->get<HttpConfig>().max_body_bytes, 10);
}

TEST_F(ConfigTest, EnvironmentErrors) {
    EXPECT_THAT(errors_of("", {{"HEARTH_HTTP__NOPE", "1"}}),
                ElementsAre("HEARTH_HTTP__NOPE: unknown key http.nope"));
    EXPECT_THAT(errors_of("", {{"HEARTH_NOPE__LISTEN", "1"}}),
                ElementsAre("HEARTH_NOPE__LISTEN: unknown section nope"));
    EXPECT_THAT(errors_of("", {{"HEARTH_HTTP__MAX_BODY_BYTES", "lots"}}),
                ElementsAre("HEARTH_HTTP__MAX_BODY_BYTES: http.max_body_bytes: expected an "
                            "integer, got a string"));
    EXPECT_THAT(errors_of("", {{"HEARTH_SERVER__IO_THREADS", "999"}}),
                ElementsAre("HEARTH_SERVER__IO_THREADS: server.io_threads: must be between 0 and "
                            "256, got 999"));
    EXPECT_THAT(errors_of("", {{"HEARTH_MOONSHARE__PLAYER_LISTEN", "0.0.0.0:6000"}}),
                ElementsAre("HEARTH_MOONSHARE__PLAYER_LISTEN: moonshare.player_listen: expected "
                            "an array of strings, got a string"));
}

TEST_F(ConfigTest, NonConfigVariablesAreIgnored) {
    auto config = config_of("", {{"HEARTH_SOURCE_DIR", "/src"},
                                 {"HEARTH_TEST_BINARY_DIR", "/build"},
                                 {"PATH", "/usr/bin"},
                                 {"OTHER__THING", "1"}});
    EXPECT_NE(config, nullptr);
}

TEST(ConfigEnvironment, ProcessEnvironmentKeepsOnlyHearthVariables) {
    ASSERT_EQ(::setenv("HEARTH_CONFIGTEST__KEY", "v=1", 1), 0);
    ASSERT_EQ(::setenv("NOT_HEARTH_CONFIGTEST", "x", 1), 0);
    const Environment env = ConfigSchema::process_environment();
    ::unsetenv("HEARTH_CONFIGTEST__KEY");
    ::unsetenv("NOT_HEARTH_CONFIGTEST");
    EXPECT_THAT(env, ::testing::Contains(
                         std::pair<std::string, std::string>("HEARTH_CONFIGTEST__KEY", "v=1")));
    for (const auto& [name, value] : env) {
        EXPECT_TRUE(name.starts_with("HEARTH_")) << name;
    }
}

// ---------------------------------------------------------------------------------------------
// The default file, reloads, schema mistakes.

TEST_F(ConfigTest, DefaultTomlRoundTrips) {
    const std::string text = schema_.default_toml();
    auto result = schema_.load_string(text, "default.toml", {});
    ASSERT_THAT(result.errors, IsEmpty()) << text;
    ASSERT_NE(result.config, nullptr);
    EXPECT_EQ(result.config->get<ServerConfig>(), ServerConfig{});
    EXPECT_EQ(result.config->get<HttpConfig>(), HttpConfig{});
    EXPECT_EQ(result.config->get<WebSocketConfig>(), WebSocketConfig{});
    EXPECT_EQ(result.config->get<BetterAuthTestConfig>(), BetterAuthTestConfig{});
    EXPECT_EQ(result.config->get<MoonshareTestConfig>(), MoonshareTestConfig{});
}

TEST_F(ConfigTest, DefaultTomlDocumentsEveryKey) {
    const std::string text = schema_.default_toml();
    EXPECT_THAT(text, HasSubstr("HEARTH_<SECTION>__<KEY>"));
    EXPECT_THAT(text, HasSubstr("# The process: data, threads, shutdown, logs.\n[server]\n"));
    EXPECT_THAT(text, HasSubstr("[auth.better_auth]\n"));
    // Comments wrap at 100 columns.
    EXPECT_THAT(text, HasSubstr("# Network threads; 0 means one per CPU core. Must be between 0 "
                                "and 256. Default: 0. Changing it\n# needs a restart.\n"
                                "io_threads = 0\n"));
    EXPECT_THAT(text, HasSubstr("listen = \"127.0.0.1:8080\"\n"));
    EXPECT_THAT(text, HasSubstr("max_messages_per_s = 1000.0\n"));
    EXPECT_THAT(text, HasSubstr("player_listen = [\"0.0.0.0:5000\", \"0.0.0.0:5001\"]\n"));
    EXPECT_THAT(text, HasSubstr("empty_list = []\n"));
    for (const std::string& key : schema_.keys()) {
        const std::string bare = key.substr(key.rfind('.') + 1);
        EXPECT_THAT(text, HasSubstr("\n" + bare + " = ")) << key;
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        EXPECT_LE(line.size(), 100U) << line;
    }
}

TEST_F(ConfigTest, RestartRequiredListsChangedRestartKeys) {
    auto running = config_of("");
    auto next = config_of(
        "[server]\nlog_level = \"debug\"\nio_threads = 2\n"
        "[http]\nlisten = \"0.0.0.0:8080\"\nmax_body_bytes = 10\n"
        "[moonshare]\nplayer_listen = [\"0.0.0.0:6000\"]\n");
    ASSERT_NE(running, nullptr);
    ASSERT_NE(next, nullptr);
    EXPECT_THAT(schema_.restart_required(*running, *next),
                ElementsAre("server.io_threads", "http.listen", "moonshare.player_listen"));
    EXPECT_THAT(schema_.restart_required(*running, *running), IsEmpty());
}

TEST(ConfigSchemaTest, RejectsConflictingSections) {
    ConfigSchema schema = core_schema();
    EXPECT_THROW(schema.add<HttpConfig>(), std::logic_error);
}

TEST(ConfigSchemaTest, KeysInRegistrationOrder) {
    const auto keys = core_schema().keys();
    ASSERT_FALSE(keys.empty());
    EXPECT_EQ(keys.front(), "server.data_dir");
    EXPECT_THAT(keys, ::testing::Contains("http.listen"));
    EXPECT_EQ(keys.back(), "websocket.bytes_burst");
}

// ---------------------------------------------------------------------------------------------
// docs/configuration.md must describe every key, so that it cannot drift from the code.

std::optional<std::filesystem::path> find_docs() {
    const std::filesystem::path relative = "docs/configuration.md";
    if (const char* dir = std::getenv("HEARTH_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
        return std::filesystem::path(dir) / relative;
    }
    // Run by hand rather than by ctest: look upwards from the test binary for the source tree.
    std::error_code ec;
    auto dir = std::filesystem::canonical("/proc/self/exe", ec).parent_path();
    for (; !ec && dir.has_relative_path(); dir = dir.parent_path()) {
        if (std::filesystem::exists(dir / relative) &&
            std::filesystem::exists(dir / "src/core/config.hpp")) {
            return dir / relative;
        }
    }
    return std::nullopt;
}

TEST(ConfigDocs, EveryCoreKeyIsDocumented) {
    const auto path = find_docs();
    ASSERT_TRUE(path.has_value()) << "set HEARTH_SOURCE_DIR to the source tree";
    std::ifstream in(*path);
    ASSERT_TRUE(in) << *path;
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string docs = buffer.str();

    for (const std::string& key : core_schema().keys()) {
        const std::string section = key.substr(0, key.rfind('.'));
        const std::string bare = key.substr(key.rfind('.') + 1);
        // Each section has a "## `[name]`" heading; its keys must appear under it as `key`.
        const std::string heading = "## `[" + section + "]`";
        const auto start = docs.find(heading);
        ASSERT_NE(start, std::string::npos) << "no heading " << heading << " in " << *path;
        const auto end = docs.find("\n## ", start + heading.size());
        const std::string body = docs.substr(start, end == std::string::npos ? end : end - start);
        EXPECT_THAT(body, HasSubstr("`" + bare + "`")) << key << " is not documented in " << *path;
    }
}

}  // namespace
}  // namespace hearth::core
