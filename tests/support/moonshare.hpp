#pragma once

// Moonshare's server built from its parts, and a plugin-like client's helpers, shared by
// tests/integration/moonshare_test.cpp and tests/abuse/moonshare_limits_test.cpp.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "auth/account_service.hpp"
#include "auth/auth_config.hpp"
#include "auth/operator_auth.hpp"
#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "frontends/moonshare/moonshare.hpp"
#include "net/server.hpp"
#include "store/open_store.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test::moonshare {

using frontends::moonshare::MoonshareConfig;
using frontends::moonshare::MoonshareFrontend;

/// The operator's token of the fixture ([http] admin_token in the app).
inline const std::string kAdminToken = "moonshare-test-admin-token";

/// Password hashing at its cheapest, so that tests spend their time on the protocol.
auth::AuthConfig fast_auth();

/// The network layer, a SQLite store, the account service and the front-end, in the app's order,
/// on loopback ports picked by the kernel; three player instances. `data_dir`: keep files across
/// fixtures (a restart); empty: a temporary directory.
class Fixture {
public:
    using DiskHook = std::function<void(MoonshareFrontend::DiskStep)>;

    explicit Fixture(MoonshareConfig c = {}, std::string data_dir = "", DiskHook disk_hook = {});
    ~Fixture();
    Fixture(const Fixture&) = delete;
    Fixture& operator=(const Fixture&) = delete;

    std::uint16_t token_port() const;
    std::uint16_t auth_port() const;
    std::uint16_t gateway_port() const;
    std::uint16_t player_port(std::size_t i) const;
    double metric(const std::string& name, const std::map<std::string, std::string>& labels = {});
    const std::string& data_dir() const { return data_dir_; }
    std::filesystem::path stored_dir() const;
    auth::AccountService& accounts() { return accounts_; }

    /// The token endpoint's answer to a request for `user` from `address`.
    HttpResult token_request(const std::string& user, const std::string& address = "127.0.0.1");
    /// A token for `user`, asked for from `address` (empty, and a failed expectation, if refused).
    std::string token(const std::string& user, const std::string& address = "127.0.0.1");

private:
    TempDir dir_;
    std::string data_dir_;
    core::MetricsRegistry metrics_;
    core::EventBus events_{1000};
    core::Runtime runtime_{2, 2};
    std::unique_ptr<store::Store> store_;
    auth::AccountService accounts_;
    auth::OperatorAuth operators_;  // before the server: its routes hold it
    std::unique_ptr<MoonshareFrontend> frontend_;
    std::unique_ptr<net::Server> server_;
};

std::string auth_msg(const std::string& user, const std::string& token);
std::string ok_result(const std::string& user);
std::string instance_info(const std::string& name);
std::string begin_msg(const std::string& to, const std::string& name, std::uint64_t size);
std::string complete_msg(const std::string& to, const std::string& name);

bool is_user_list(const WsMessage& m);
/// The next message that is not a user_list_update push.
std::optional<WsMessage> next(WsClient& c, std::chrono::milliseconds deadline = kDeadline);
/// The next text message that is not a user_list_update push; throws if the connection ends.
std::string next_text(WsClient& c, std::chrono::milliseconds deadline = kDeadline);

/// A player on instance `i` from `address`, authenticated with `token` (and its two answers
/// read); nullptr, with the refusal in `refusal`, when it is refused.
std::unique_ptr<WsClient> try_player(Fixture& f, const std::string& user, const std::string& token,
                                     std::size_t i, const std::string& address = "127.0.0.1",
                                     std::string* refusal = nullptr);
/// A player authenticated on instance `i` from `address` (a failed expectation if refused).
std::unique_ptr<WsClient> player(Fixture& f, const std::string& user, std::size_t i = 0,
                                 const std::string& address = "127.0.0.1");

/// Holds blocking-pool threads inside the front-end's disk hook at one step until the test opens
/// it: the moment between a disk operation's start and its end, which no client can hold.
class DiskGate {
public:
    using Step = MoonshareFrontend::DiskStep;
    explicit DiskGate(Step step) : step_(step) {}

    void pass(Step step);
    /// True once a thread waits at the step; false at the deadline.
    bool wait_held();
    void open();
    Fixture::DiskHook hook() {
        return [this](Step step) { pass(step); };
    }

private:
    const Step step_;
    std::mutex mutex_;
    std::condition_variable changed_;
    int held_ = 0;
    bool open_ = false;
};

/// Opens the gate when the test ends, even early, so that the fixture can stop its threads.
struct OpenAtExit {
    DiskGate& gate;
    ~OpenAtExit() { gate.open(); }
};

}  // namespace hearth::test::moonshare
