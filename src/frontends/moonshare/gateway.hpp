#pragma once

// Moonshare's API gateway (docs/protocol/moonshare.md, "API gateway"): status endpoints for bots
// and dashboards, the listings and logs for operators only, and the /ws push of the server's
// status. Also the operator check that the auth server's /sessions shares.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <hearth/http.hpp>

#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

using Shared = MoonshareFrontend::Shared;

/// The connections of the gateway's /ws. Thread-safe: its own mutex, never held with another.
class GatewaySubscribers {
public:
    void add(ConnectionId id, ConnectionHandle handle);
    void remove(ConnectionId id);
    /// Sends `payload()` to every subscriber; built only when there is one.
    void send(const std::function<std::string()>& payload);

private:
    std::mutex mutex_;
    std::unordered_map<ConnectionId, ConnectionHandle> subscribers_;
};

/// The gateway's server_info: players per instance and in total.
std::string server_info(const Shared& shared);

/// Pushes the status to the gateway's /ws subscribers.
void push_status(Shared& shared);

/// The gateway's HTTP routes (every path under /).
void gateway(const std::shared_ptr<Shared>& shared, const HttpRequest& req, HttpResponder res);

/// The gateway's /ws.
std::unique_ptr<WsHandler> make_gateway_ws_handler(std::shared_ptr<Shared> shared);

/// The gateway's form of an operator refusal (auth::OperatorAuth's `refusal`); counted and logged
/// with `what`. `showed`: the request carried a bearer token.
HttpResponse operator_refusal(Shared& shared, const HttpResponse& refusal, std::string_view what,
                              bool showed);

}  // namespace hearth::frontends::moonshare
