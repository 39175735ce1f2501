#pragma once

// The `[auth.better_auth]` config section: the better-auth bridge (docs/better-auth.md), which
// validates session tokens against the PostgreSQL database of a web application that uses
// better-auth, and maps its users to Hearth accounts. Off by default. Every key is read when the
// bridge starts: each needs a restart to change.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.hpp"

namespace hearth::auth {

/// Whether `name` may be used as a table or column name: 1 to 63 ASCII letters, digits and
/// underscores (PostgreSQL's identifier length), not starting with a digit. Such a name is always
/// quoted in SQL, so its case is kept ("userId").
inline bool valid_sql_identifier(std::string_view name) noexcept {
    if (name.empty() || name.size() > 63 || (name.front() >= '0' && name.front() <= '9')) {
        return false;
    }
    for (char c : name) {
        const bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

struct BetterAuthConfig {
    static constexpr std::string_view kName = "auth.better_auth";
    static constexpr std::string_view kDescription =
        "The better-auth bridge: session tokens of a web application that uses better-auth are "
        "valid here, checked against its PostgreSQL database (read only), and each of its users "
        "gets a Hearth account on first sight.";

    bool enabled = false;
    std::string postgres_url;               // the web application's database; required
    std::string session_table = "session";  // better-auth's default
    std::string user_table = "user";        // better-auth's default
    std::string token_column = "token";     // the seed project's variant: "id"
    std::string user_id_column = "userId";  // session -> user
    std::string expires_at_column = "expiresAt";
    std::string user_key_column = "id";  // the user table's key
    std::string user_name_column = "name";
    std::string user_email_column = "email";
    std::int64_t pool_size = 2;              // connections, each with its own thread
    std::int64_t query_timeout_ms = 2'000;   // per validation query, enforced by Hearth
    std::int64_t max_pending = 1'000;        // queued validations; past it: unavailable
    std::int64_t retry_interval_ms = 1'000;  // between reconnection attempts

    template <class V>
    void visit(V& v) {
        v("enabled", enabled,
          {.help = "Accept better-auth session tokens: a token unknown to Hearth is looked up in "
                   "the web application's database.",
           .restart = true});
        v("postgres_url", postgres_url,
          {.help = "The web application's PostgreSQL database, as a libpq connection string or "
                   "URI (\"postgresql://reader@db:5432/app\"); required when enabled. Only read: "
                   "a role with SELECT on the two tables is enough. Logs show it with the "
                   "password masked.",
           .restart = true});
        v("session_table", session_table,
          {.help = "The sessions table (letters, digits, '_'; case-sensitive, quoted in SQL).",
           .restart = true});
        v("user_table", user_table,
          {.help = "The users table (letters, digits, '_'; case-sensitive, quoted in SQL).",
           .restart = true});
        v("token_column", token_column,
          {.help = "The sessions table's column holding the token clients send (\"id\" when the "
                   "session id is the token).",
           .restart = true});
        v("user_id_column", user_id_column,
          {.help = "The sessions table's column naming the user (text or integer).",
           .restart = true});
        v("expires_at_column", expires_at_column,
          {.help = "The sessions table's expiry column (timestamptz, or timestamp read in the "
                   "connection's time zone); a session is valid while it is in the future.",
           .restart = true});
        v("user_key_column", user_key_column,
          {.help = "The users table's key, which user_id_column refers to.", .restart = true});
        v("user_name_column", user_name_column,
          {.help = "The users table's display name column: the new Hearth account's username is "
                   "made from it.",
           .restart = true});
        v("user_email_column", user_email_column,
          {.help = "The users table's email column: copied to the new Hearth account.",
           .restart = true});
        v("pool_size", pool_size,
          {.help = "Connections to the web application's database, each with its own thread: "
                   "validations that run at once.",
           .restart = true,
           .min = 1,
           .max = 64});
        v("query_timeout_ms", query_timeout_ms,
          {.help = "Longest wait for one validation query, in milliseconds; past it the "
                   "validation fails with unavailable and the connection is opened again.",
           .restart = true,
           .min = 10,
           .max = 600'000});
        v("max_pending", max_pending,
          {.help = "Validations waiting for a connection; past it new ones fail at once with "
                   "unavailable.",
           .restart = true,
           .min = 1,
           .max = 1'000'000});
        v("retry_interval_ms", retry_interval_ms,
          {.help = "After a failed connection attempt, validations fail at once with unavailable "
                   "for this long before the next attempt, in milliseconds.",
           .restart = true,
           .min = 10,
           .max = 600'000});
    }

    void validate(core::ConfigErrors& errors) const {
        if (enabled && postgres_url.empty()) {
            errors.emplace_back(
                "auth.better_auth.postgres_url: required when auth.better_auth.enabled = true");
        }
        const std::pair<std::string_view, const std::string*> names[] = {
            {"session_table", &session_table},         {"user_table", &user_table},
            {"token_column", &token_column},           {"user_id_column", &user_id_column},
            {"expires_at_column", &expires_at_column}, {"user_key_column", &user_key_column},
            {"user_name_column", &user_name_column},   {"user_email_column", &user_email_column},
        };
        for (const auto& [key, value] : names) {
            if (!valid_sql_identifier(*value)) {
                errors.emplace_back("auth.better_auth." + std::string(key) +
                                    ": must be 1 to 63 letters, digits and '_', not starting "
                                    "with a digit, got \"" +
                                    *value + "\"");
            }
        }
    }

    bool operator==(const BetterAuthConfig&) const = default;
};

}  // namespace hearth::auth
