#pragma once

// Hearth's own protocol: JSON text messages over WebSocket at /ws on the HTTP listener, mapping
// one to one onto the hub (subscribe, unsubscribe, publish, send, presence). Documented in
// docs/protocol/native.md.

#include <memory>
#include <string>
#include <vector>

#include <hearth/http.hpp>

#include "auth/access_policy.hpp"
#include "core/config.hpp"
#include "frontends/native/protocol.hpp"

namespace hearth::core {
class MetricsRegistry;
}
namespace hearth::hub {
class Hub;
}

namespace hearth::auth {
class AccountService;
}  // namespace hearth::auth

namespace hearth::frontends::native {

struct NativeConfig {
    static constexpr std::string_view kName = "native";
    static constexpr std::string_view kDescription =
        "Hearth's own JSON protocol over WebSocket, at /ws on the HTTP listener.";

    bool enabled = true;
    bool allow_anonymous = false;  // clients say who they are with a session token or API key
    std::int64_t max_publish_bytes = 64 * 1024;
    std::vector<std::string> topic_rules;
    // Sessions of accounts with one of these roles may say hello; API keys need the scope native.
    std::vector<std::string> session_roles = {"player", "moderator", "admin"};

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the native protocol at /ws."});
        v("allow_anonymous", allow_anonymous,
          {.help = "Let clients use the protocol without a hello carrying a valid token."});
        v("max_publish_bytes", max_publish_bytes,
          {.help = "Largest `data` of a publish or send, in bytes of JSON; larger is refused with "
                   "too_large.",
           .min = 1,
           .max = std::int64_t{1} << 30});
        v("topic_rules", topic_rules,
          {.help = "Grants to other front-ends' topics, each \"ACTION:TOPIC\" where ACTION is "
                   "subscribe, publish, "
                   "presence or * and TOPIC a full topic name, optionally ending in * (e.g. "
                   "\"subscribe:hunterpie:*\")."});
        v("session_roles", session_roles,
          {.help = "Roles (admin, moderator, player) whose accounts' session tokens may say hello; "
                   "empty: sessions are refused and only API keys with scope native are "
                   "accepted."});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const NativeConfig&) const = default;
};

/// The tokens a hello may carry: API keys with scope native, sessions of accounts with one of
/// `session_roles`; no guest token.
auth::AccessPolicy access_policy(const NativeConfig& config);

/// The native front-end: its /ws route and per-connection handlers. Created and reloaded on the
/// control thread; its handlers run on the io threads. Must outlive the server's connections (the
/// app destroys it after the network layer).
class NativeFrontend {
public:
    NativeFrontend(hub::Hub& hub, core::MetricsRegistry& metrics, const NativeConfig& config);
    ~NativeFrontend();

    void add_routes(Router& router, const std::string& listener,
                    std::shared_ptr<const WsRouteSettings> settings);
    /// Applies allow_anonymous, max_publish_bytes and topic_rules to later messages.
    void reload(const NativeConfig& config);
    /// Lets `hello` accept session tokens and API keys (scope "native"); `accounts` must outlive
    /// the connections. Without it every token is refused.
    void set_accounts(auth::AccountService* accounts);

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
};

}  // namespace hearth::frontends::native
