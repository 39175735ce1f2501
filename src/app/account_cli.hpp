#pragma once

// `hearth account ...` and `hearth token ...` (docs/security.md): account and API-key management
// from the command line, against the configured store (a running server may have it open).

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace hearth::app {

/// The parsed options and subcommands of the account and token commands.
struct AccountCommands {
    CLI::App* account = nullptr;
    CLI::App* account_add = nullptr;
    CLI::App* account_list = nullptr;
    CLI::App* account_disable = nullptr;
    CLI::App* account_enable = nullptr;
    CLI::App* token = nullptr;
    CLI::App* token_issue = nullptr;
    CLI::App* token_list = nullptr;
    CLI::App* token_revoke = nullptr;

    std::string config_file;
    std::string name;
    std::vector<std::string> roles;
    std::string email;
    std::string kind = "api";
    std::vector<std::string> scopes;
    std::string token_name;
    std::int64_t ttl_s = 0;
    bool include_revoked = false;
    std::uint64_t token_id = 0;
};

void add_account_commands(CLI::App& cli, AccountCommands& commands);
/// Runs the parsed command; the process exit code (0 ok, 1 failed, with a message on stderr).
int run_account_command(AccountCommands& commands);

}  // namespace hearth::app
