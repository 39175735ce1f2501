#include "app/cli.hpp"
#include <csignal>
#include <filesystem>
#include <functional>
#include <iostream>
#include <iterator>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "app/account_cli.hpp"
#include "app/server_app.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"
#include "util/log.hpp"
#include "util/version.hpp"

namespace hearth::app {

namespace {

util::LogSettings log_settings(const core::ServerConfig& s) {
    util::LogSettings l;
    l.level = s.log_level;
    l.format = s.log_format == "json" ? util::LogFormat::kJson : util::LogFormat::kText;
    l.file = s.log_file;
    l.file_max_bytes = static_cast<std::size_t>(s.log_file_max_mb) * 1024 * 1024;
    l.file_count = static_cast<std::size_t>(s.log_file_count);
    l.ring_lines = static_cast<std::size_t>(s.log_ring_lines);
    return l;
}

void print_errors(const std::string& what, const core::ConfigErrors& errors) {
    std::cerr << what << ": " << errors.size() << " error(s)\n";
    for (const auto& e : errors) {
        std::cerr << "  " << e << "\n";
    }
}

// Blocks until SIGINT or SIGTERM (SIGHUP reloads meanwhile), then shuts down. Returns the exit
// code.
int run_until_signal(ServerApp& app, boost::asio::io_context& control,
                     boost::asio::signal_set& signals) {
    auto log = util::logger("core");
    bool stop = false;
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int signo) {
            if (ec) {
                return;
            }
            if (signo == SIGHUP) {
                log->info("SIGHUP: reloading configuration");
                (void)app.reload();
                signals.async_wait(on_signal);
                return;
            }
            log->info("{}: shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
            stop = true;
        };
    signals.async_wait(on_signal);
    while (!stop && control.run_one() > 0) {
    }
    app.shutdown();
    return 0;
}

int serve(const std::string& file, const std::string& log_level, const std::string& log_format) {
    auto schema = make_schema();
    auto env = core::ConfigSchema::process_environment();
    // Command-line flags are the strongest overrides; they go through the same validation.
    if (!log_level.empty()) {
        env.emplace_back("HEARTH_SERVER__LOG_LEVEL", log_level);
    }
    if (!log_format.empty()) {
        env.emplace_back("HEARTH_SERVER__LOG_FORMAT", log_format);
    }
    auto loaded = schema.load(file, env);
    if (!loaded.config) {
        print_errors(file.empty() ? "configuration" : file, loaded.errors);
        return 1;
    }
    util::init_logging(log_settings(loaded.config->get<core::ServerConfig>()));
    auto log = util::logger("core");
    log->info("hearth {} ({}, {}) starting{}", util::kVersion, util::kCommit, util::kBuildType,
              file.empty() ? " on the embedded defaults" : " with " + file);
    int code = 0;
    try {
        // Signals are caught from before the first listener opens, so that a SIGTERM arriving as
        // soon as the port accepts connections still shuts down gracefully.
        boost::asio::io_context control;
        boost::asio::signal_set signals(control, SIGINT, SIGTERM, SIGHUP);
        ServerApp app(schema, loaded.config);
        app.start();
        code = run_until_signal(app, control, signals);
    } catch (const std::exception& e) {
        log->critical("startup failed: {}", e.what());
        code = 1;
    }
    util::shutdown_logging();
    return code;
}

// Applies pending schema migrations to the configured database and reports what it did.
int migrate(const std::string& file) {
    auto schema = make_schema();
    auto loaded = schema.load(file, core::ConfigSchema::process_environment());
    if (!loaded.config) {
        print_errors(file.empty() ? "configuration" : file, loaded.errors);
        return 1;
    }
    const auto& storage = loaded.config->get<store::StorageConfig>();
    const auto& data_dir = loaded.config->get<core::ServerConfig>().data_dir;
    try {
        const auto report = store::migrate_store(storage, data_dir);
        std::cout << report.summary() << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "migrate failed: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace

int run_cli(int argc, char** argv) {
    CLI::App cli{"Hearth: a self-hostable real-time backend for games, game mods and their bots."};
    cli.require_subcommand(0, 1);
    bool version = false;
    cli.add_flag("--version", version, "Print the version and exit.");

    std::string config_file;
    std::string log_level;
    std::string log_format;
    auto* serve_cmd = cli.add_subcommand("serve", "Run the server.");
    serve_cmd
        ->add_option("-c,--config", config_file,
                     "TOML config file (default: none, embedded defaults).")
        ->check(CLI::ExistingFile);
    serve_cmd->add_option("--log-level", log_level, "Override server.log_level.")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    serve_cmd->add_option("--log-format", log_format, "Override server.log_format.")
        ->check(CLI::IsMember({"text", "json"}));

    std::string migrate_file;
    auto* migrate_cmd =
        cli.add_subcommand("migrate", "Apply pending database schema migrations and report them.");
    migrate_cmd
        ->add_option("-c,--config", migrate_file, "TOML config file (default: embedded defaults).")
        ->check(CLI::ExistingFile);

    auto* config_cmd = cli.add_subcommand("config", "Inspect configuration.");
    config_cmd->require_subcommand(1);
    config_cmd->add_subcommand("default",
                               "Print the complete default configuration as commented TOML.");
    std::string check_file;
    auto* check_cmd =
        config_cmd->add_subcommand("check", "Validate a config file (exit 0 when valid).");
    check_cmd->add_option("file", check_file, "The TOML file to check ('-' reads standard input).")
        ->required();

    AccountCommands account_commands;
    add_account_commands(cli, account_commands);

    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = cli.exit(e);
        return code == 0 ? 0 : 2;
    }

    if (version) {
        std::cout << "hearth " << util::kVersion << " (commit " << util::kCommit << ", "
                  << util::kBuildType << ")\n";
        return 0;
    }
    if (serve_cmd->parsed()) {
        return serve(config_file, log_level, log_format);
    }
    if (migrate_cmd->parsed()) {
        return migrate(migrate_file);
    }
    if (account_commands.account->parsed() || account_commands.token->parsed()) {
        return run_account_command(account_commands);
    }
    if (config_cmd->parsed()) {
        auto schema = make_schema();
        if (config_cmd->got_subcommand("default")) {
            std::cout << schema.default_toml();
            return 0;
        }
        core::ConfigSchema::LoadResult loaded;
        if (check_file == "-") {
            std::string text{std::istreambuf_iterator<char>(std::cin),
                             std::istreambuf_iterator<char>()};
            loaded = schema.load_string(text, "<stdin>", core::ConfigSchema::process_environment());
        } else {
            loaded = schema.load(check_file, core::ConfigSchema::process_environment());
        }
        if (!loaded.config) {
            print_errors(check_file, loaded.errors);
            return 1;
        }
        std::cout << check_file << ": valid\n";
        return 0;
    }
    std::cout << cli.help();
    return 0;
}

}  // namespace hearth::app
