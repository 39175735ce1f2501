#include "app/account_cli.hpp"
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <boost/json/serialize.hpp>
#include <termios.h>
#include <unistd.h>

#include "api/operator_api.hpp"
#include "app/server_app.hpp"
#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "core/metrics.hpp"
#include "store/open_store.hpp"
#include "store/storage_config.hpp"

namespace hearth::app {

namespace {

/// Waits for an asynchronous call's result (the CLI may block: it is not an io thread).
template <class T, class Call>
Result<T> wait_for(Call&& call) {
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    call([&promise](Result<T> r) { promise.set_value(std::move(r)); });
    return future.get();
}

/// The message for an error of the account service or the store.
std::string describe(const boost::system::error_code& ec) {
    const auto is = [&](Errc e) { return ec == make_error_code(e); };
    if (is(Errc::kAlreadyExists)) {
        return "the username or email is taken";
    }
    if (is(Errc::kNotFound)) {
        return "no such account or token";
    }
    if (is(Errc::kUnavailable)) {
        return "the store is busy; try again";
    }
    if (is(Errc::kStorageFailure)) {
        return "the store failed (see the log lines above)";
    }
    return ec.message();
}

/// Reads the password: one line of standard input; with a terminal, asks without echoing it.
std::optional<std::string> read_password() {
    const bool tty = isatty(STDIN_FILENO) == 1;
    termios saved{};
    if (tty) {
        std::cerr << "Password: " << std::flush;
        tcgetattr(STDIN_FILENO, &saved);
        termios quiet = saved;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string line;
    const bool got = static_cast<bool>(std::getline(std::cin, line));
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        std::cerr << "\n";
    }
    if (!got) {
        return std::nullopt;
    }
    if (!line.empty() && line.back() == '\r') {
        line.pop_back();
    }
    return line;
}

void audit(store::AccountStore& accounts, std::string action, std::string target,
           std::string detail = {}) {
    store::AuditEntry e;
    e.at = std::chrono::system_clock::now();
    e.actor = "cli";
    e.action = std::move(action);
    e.target = std::move(target);
    e.detail = std::move(detail);
    auto r = wait_for<store::AuditEntry>(
        [&](auto done) { accounts.append_audit(std::move(e), std::move(done)); });
    if (!r) {
        std::cerr << "warning: the audit entry was not stored: " << describe(r.error()) << "\n";
    }
}

std::string kind_name(store::TokenKindCode k) {
    switch (k) {
        case store::TokenKindCode::kSession:
            return "session";
        case store::TokenKindCode::kApiKey:
            return "api";
        case store::TokenKindCode::kGuest:
            return "guest";
    }
    return "?";
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        out += (out.empty() ? "" : ",") + i;
    }
    return out.empty() ? "-" : out;
}

/// The opened store and account service of one CLI command.
struct Session {
    core::MetricsRegistry metrics;
    std::unique_ptr<store::Store> store;
    std::unique_ptr<auth::AccountService> accounts;
};

int with_session(const std::string& file, const std::function<int(Session&)>& body) {
    auto schema = make_schema();
    auto loaded = schema.load(file, core::ConfigSchema::process_environment());
    if (!loaded.config) {
        std::cerr << (file.empty() ? "configuration" : file) << ": " << loaded.errors.size()
                  << " error(s)\n";
        for (const auto& e : loaded.errors) {
            std::cerr << "  " << e << "\n";
        }
        return 1;
    }
    try {
        Session s;
        s.store = store::open_store(loaded.config->get<store::StorageConfig>(),
                                    loaded.config->get<core::ServerConfig>().data_dir, s.metrics);
        // Hashing inline: the CLI has no io thread to protect.
        s.accounts = std::make_unique<auth::AccountService>(
            s.store->accounts(), [](std::function<void()> work) { work(); }, s.metrics,
            loaded.config->get<auth::AuthConfig>());
        const int code = body(s);
        s.accounts.reset();
        s.store.reset();
        return code;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

Result<store::AccountRecord> find_account(Session& s, const std::string& name) {
    return wait_for<store::AccountRecord>(
        [&](auto done) { s.store->accounts().account_by_name(name, std::move(done)); });
}

}  // namespace

void add_account_commands(CLI::App& cli, AccountCommands& c) {
    c.account = cli.add_subcommand("account", "Manage accounts.");
    c.account->require_subcommand(1);
    const auto config_option = [&](CLI::App* cmd) {
        cmd->add_option("-c,--config", c.config_file,
                        "TOML config file (default: embedded defaults).")
            ->check(CLI::ExistingFile);
    };
    c.account_add = c.account->add_subcommand(
        "add", "Create an account; the password is read from standard input.");
    c.account_add->add_option("name", c.name, "Username.")->required();
    c.account_add->add_option("--role", c.roles,
                              "A role: admin, moderator or player (repeatable; "
                              "default player).");
    c.account_add->add_option("--email", c.email, "Email address.");
    config_option(c.account_add);
    c.account_list = c.account->add_subcommand("list", "List accounts.");
    config_option(c.account_list);
    c.account_disable = c.account->add_subcommand(
        "disable", "Disable an account: its logins and tokens stop working.");
    c.account_disable->add_option("name", c.name, "Username.")->required();
    config_option(c.account_disable);
    c.account_enable = c.account->add_subcommand("enable", "Enable a disabled account.");
    c.account_enable->add_option("name", c.name, "Username.")->required();
    config_option(c.account_enable);

    c.token = cli.add_subcommand("token", "Manage tokens (API keys).");
    c.token->require_subcommand(1);
    c.token_issue = c.token->add_subcommand(
        "issue", "Issue an API key and print it (shown once: the store keeps only its digest).");
    c.token_issue->add_option("--account", c.name, "The account it acts as.")->required();
    c.token_issue->add_option("--kind", c.kind, "Token kind: api.")
        ->check(CLI::IsMember({"api"}))
        ->default_val("api");
    c.token_issue
        ->add_option("--scope", c.scopes,
                     "A scope: admin, native, homestead, hunterpie, moonshare, dracosoft, packet "
                     "(repeatable).")
        ->required();
    c.token_issue->add_option("--name", c.token_name, "A label (default: cli).");
    c.token_issue->add_option("--ttl-s", c.ttl_s, "Lifetime in seconds (default: until revoked).");
    config_option(c.token_issue);
    c.token_list = c.token->add_subcommand("list", "List tokens (never their values).");
    c.token_list->add_option("--account", c.name, "Only this account's tokens.");
    c.token_list->add_flag("--all", c.include_revoked, "Include revoked tokens.");
    config_option(c.token_list);
    c.token_revoke = c.token->add_subcommand("revoke", "Revoke a token by its id (from the list).");
    c.token_revoke->add_option("id", c.token_id, "The token's id.")->required();
    config_option(c.token_revoke);
}

int run_account_command(AccountCommands& c) {
    if (c.account_add->parsed()) {
        return with_session(c.config_file, [&](Session& s) {
            if (auto why = auth::check_username(c.name)) {
                std::cerr << "account add: " << *why << "\n";
                return 1;
            }
            auto roles = c.roles.empty() ? std::vector<std::string>{"player"} : c.roles;
            if (auto why = auth::check_roles(roles)) {
                std::cerr << "account add: " << *why << "\n";
                return 1;
            }
            auto password = read_password();
            if (!password) {
                std::cerr << "account add: no password on standard input\n";
                return 1;
            }
            if (auto why = s.accounts->check_password(*password)) {
                std::cerr << "account add: " << *why << "\n";
                return 1;
            }
            auth::NewAccount a;
            a.username = c.name;
            a.password = std::move(*password);
            a.roles = roles;
            if (!c.email.empty()) {
                a.email = c.email;
            }
            auto r = wait_for<store::AccountRecord>(
                [&](auto done) { s.accounts->create_account(std::move(a), std::move(done)); });
            if (!r) {
                std::cerr << "account add: " << c.name << ": " << describe(r.error()) << "\n";
                return 1;
            }
            audit(s.store->accounts(), "account.create", "account:" + r->username);
            std::cout << "created account " << r->username << " (id " << r->id << ", roles "
                      << join(r->roles) << ")\n";
            return 0;
        });
    }
    if (c.account_list->parsed()) {
        return with_session(c.config_file, [&](Session& s) {
            std::cout << std::left << std::setw(6) << "ID" << std::setw(24) << "USERNAME"
                      << std::setw(10) << "STATUS" << std::setw(24) << "ROLES" << std::setw(26)
                      << "CREATED"
                      << "LAST LOGIN\n";
            store::AccountFilter f;
            f.limit = 1000;
            for (;;) {
                auto page = wait_for<std::vector<store::AccountRecord>>(
                    [&](auto done) { s.store->accounts().list_accounts(f, std::move(done)); });
                if (!page) {
                    std::cerr << "account list: " << describe(page.error()) << "\n";
                    return 1;
                }
                for (const auto& a : *page) {
                    std::cout << std::setw(6) << a.id << std::setw(24) << a.username
                              << std::setw(10) << (a.disabled ? "disabled" : "active")
                              << std::setw(24) << join(a.roles) << std::setw(26)
                              << api::rfc3339(a.created_at)
                              << (a.last_login_at ? api::rfc3339(*a.last_login_at) : "-") << "\n";
                }
                if (page->size() < f.limit) {
                    return 0;
                }
                f.after_id = page->back().id;
            }
        });
    }
    if (c.account_disable->parsed() || c.account_enable->parsed()) {
        const bool disable = c.account_disable->parsed();
        return with_session(c.config_file, [&](Session& s) {
            auto a = find_account(s, c.name);
            if (!a) {
                std::cerr << "account " << (disable ? "disable" : "enable") << ": " << c.name
                          << ": " << describe(a.error()) << "\n";
                return 1;
            }
            auth::AccountChange change;
            change.disabled = disable;
            auto r = wait_for<store::AccountRecord>([&](auto done) {
                s.accounts->change_account(a->id, std::move(change), std::move(done));
            });
            if (!r) {
                std::cerr << "account: " << describe(r.error()) << "\n";
                return 1;
            }
            audit(s.store->accounts(), disable ? "account.disable" : "account.enable",
                  "account:" + r->username);
            std::cout << r->username << ": " << (disable ? "disabled" : "enabled") << "\n";
            return 0;
        });
    }
    if (c.token_issue->parsed()) {
        return with_session(c.config_file, [&](Session& s) {
            if (auto why = auth::check_scopes(c.scopes)) {
                std::cerr << "token issue: " << *why << "\n";
                return 1;
            }
            auto a = find_account(s, c.name);
            if (!a) {
                std::cerr << "token issue: " << c.name << ": " << describe(a.error()) << "\n";
                return 1;
            }
            auth::NewToken t;
            t.account_id = a->id;
            t.kind = store::TokenKindCode::kApiKey;
            t.name = c.token_name.empty() ? "cli" : c.token_name;
            t.scopes = c.scopes;
            if (c.ttl_s > 0) {
                t.ttl = std::chrono::seconds(c.ttl_s);
            }
            auto r = wait_for<auth::IssuedToken>(
                [&](auto done) { s.accounts->issue_token(std::move(t), std::move(done)); });
            if (!r) {
                std::cerr << "token issue: " << describe(r.error()) << "\n";
                return 1;
            }
            audit(s.store->accounts(), "token.issue", "token:" + std::to_string(r->record.id),
                  R"({"account":")" + a->username + "\"}");
            std::cerr << "token " << r->record.id << " for " << a->username << " (scopes "
                      << join(r->record.scopes) << "); it is shown only this once:\n";
            std::cout << r->token << "\n";
            return 0;
        });
    }
    if (c.token_list->parsed()) {
        return with_session(c.config_file, [&](Session& s) {
            store::TokenFilter f;
            f.include_revoked = c.include_revoked;
            f.limit = 1000;
            if (!c.name.empty()) {
                auto a = find_account(s, c.name);
                if (!a) {
                    std::cerr << "token list: " << c.name << ": " << describe(a.error()) << "\n";
                    return 1;
                }
                f.account_id = a->id;
            }
            std::cout << std::left << std::setw(6) << "ID" << std::setw(10) << "ACCOUNT"
                      << std::setw(9) << "KIND" << std::setw(16) << "NAME" << std::setw(10)
                      << "PRINT" << std::setw(28) << "SCOPES" << std::setw(26) << "EXPIRES"
                      << "REVOKED\n";
            for (;;) {
                auto page = wait_for<std::vector<store::TokenRecord>>(
                    [&](auto done) { s.store->accounts().list_tokens(f, std::move(done)); });
                if (!page) {
                    std::cerr << "token list: " << describe(page.error()) << "\n";
                    return 1;
                }
                for (const auto& t : *page) {
                    std::cout << std::setw(6) << t.id << std::setw(10) << t.account_id
                              << std::setw(9) << kind_name(t.kind) << std::setw(16) << t.name
                              << std::setw(10) << t.digest.substr(0, 8) << std::setw(28)
                              << join(t.scopes) << std::setw(26)
                              << (t.expires_at ? api::rfc3339(*t.expires_at) : "-")
                              << (t.revoked_at ? api::rfc3339(*t.revoked_at) : "-") << "\n";
                }
                if (page->size() < f.limit) {
                    return 0;
                }
                f.after_id = page->back().id;
            }
        });
    }
    if (c.token_revoke->parsed()) {
        return with_session(c.config_file, [&](Session& s) {
            auto r = wait_for<store::TokenRecord>(
                [&](auto done) { s.accounts->revoke_token(c.token_id, std::move(done)); });
            if (!r) {
                std::cerr << "token revoke: " << c.token_id << ": " << describe(r.error()) << "\n";
                return 1;
            }
            audit(s.store->accounts(), "token.revoke", "token:" + std::to_string(r->id));
            std::cout << "token " << r->id << " revoked\n";
            return 0;
        });
    }
    return 2;
}

}  // namespace hearth::app
