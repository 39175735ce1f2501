#pragma once

// The DracoSoft front-end (docs/protocol/dracosoft.md): the original Python server's clients
// speak length-prefixed JSON over raw TCP (port 8889): ping, register and login against Hearth's
// accounts, then chat relayed to every logged-in connection. The codec is in codec.hpp; this file
// maps it onto stream connections and the account service.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <hearth/http.hpp>

#include "core/config.hpp"

namespace hearth::core {
class MetricsRegistry;
class Runtime;
}  // namespace hearth::core
namespace hearth::auth {
class AccountService;
}  // namespace hearth::auth

namespace hearth::frontends::dracosoft {

struct DracosoftConfig {
    static constexpr std::string_view kName = "dracosoft";
    static constexpr std::string_view kDescription =
        "The DracoSoft protocol (length-prefixed JSON over raw TCP: login and chat) on its own "
        "listener.";

    bool enabled = false;
    std::string listen = "0.0.0.0:8889";  // the original's port
    std::int64_t client_timeout_s = 300;  // the original's client_timeout
    // Each connection may hold a partial frame of up to 1 MiB: this bounds one address's share.
    std::int64_t max_connections_per_ip = 256;
    // As [websocket]'s message rate. The byte rate is lower than [websocket]'s: every chat is
    // relayed to every logged-in connection, so what one client sends is multiplied by the
    // audience, and people type far less than 1 MiB a second.
    double max_messages_per_s = 1000;
    double message_burst = 2000;
    std::int64_t max_bytes_per_s = 1024 * 1024;
    std::int64_t bytes_burst = 2 * 1024 * 1024;

    template <class V>
    void visit(V& v) {
        v("enabled", enabled, {.help = "Serve the DracoSoft protocol."});
        v("listen", listen,
          {.help = "Address of the DracoSoft TCP listener, host:port (port 0 picks a free port).",
           .restart = true});
        v("client_timeout_s", client_timeout_s,
          {.help = "Close a connection that sends no complete message for this many seconds.",
           .restart = true,
           .min = 1,
           .max = 86'400});
        v("max_connections_per_ip", max_connections_per_ip,
          {.help = "Open connections from one IP address; one more is closed at once (each may "
                   "hold a partial frame of up to 1 MiB). 0 means unlimited.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("max_messages_per_s", max_messages_per_s,
          {.help = "Sustained incoming messages per second per connection; 0 means unlimited. Over "
                   "it: a \"Rate limit exceeded\" error, then the connection is closed.",
           .restart = true});
        v("message_burst", message_burst,
          {.help = "Messages a connection may send at once above the sustained rate.",
           .restart = true});
        v("max_bytes_per_s", max_bytes_per_s,
          {.help = "Sustained bytes of message payload per second per connection; 0 means "
                   "unlimited. Over it: a \"Rate limit exceeded\" error, then the connection is "
                   "closed.",
           .restart = true,
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("bytes_burst", bytes_burst,
          {.help = "Payload bytes a connection may send at once above the sustained rate (never "
                   "less than one largest frame, 1 MiB).",
           .restart = true,
           .min = 0,
           .max = std::int64_t{1} << 40});
    }
    void validate(core::ConfigErrors& errors) const;
    bool operator==(const DracosoftConfig&) const = default;
};

/// The DracoSoft front-end: its listener and the registry of logged-in connections. Created and
/// wired on the control thread; its connections run on the io threads, and the account service's
/// completions are posted back to them. `runtime` and `accounts` must outlive every connection
/// (the app destroys the network layer first).
class DracosoftFrontend {
public:
    DracosoftFrontend(core::Runtime& runtime, auth::AccountService& accounts,
                      core::MetricsRegistry& metrics, const DracosoftConfig& config);
    ~DracosoftFrontend();
    DracosoftFrontend(const DracosoftFrontend&) = delete;
    DracosoftFrontend& operator=(const DracosoftFrontend&) = delete;

    /// Declares the raw TCP listener (`listen`).
    void add_routes(Router& router);
    /// The listener's key (after add_routes), for bound_port.
    const std::string& listener() const noexcept { return listener_; }

    struct Shared;

private:
    std::shared_ptr<Shared> shared_;
    DracosoftConfig config_;
    std::string listener_;
};

}  // namespace hearth::frontends::dracosoft
