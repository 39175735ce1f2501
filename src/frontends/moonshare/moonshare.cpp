#include "frontends/moonshare/moonshare.hpp"
#include <array>
#include <utility>

#include <boost/asio/post.hpp>

#include "auth/account_service.hpp"
#include "auth/operator_auth.hpp"
#include "core/runtime.hpp"
#include "core/ws_settings.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/player.hpp"
#include "frontends/moonshare/shared.hpp"

namespace hearth::frontends::moonshare {

namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;

namespace {

constexpr std::array<std::string_view, 24> kInstanceNames = {
    "Alpha", "Beta",  "Gamma",  "Delta",   "Epsilon", "Zeta", "Eta",     "Theta",
    "Iota",  "Kappa", "Lambda", "Mu",      "Nu",      "Xi",   "Omicron", "Pi",
    "Rho",   "Sigma", "Tau",    "Upsilon", "Phi",     "Chi",  "Psi",     "Omega"};

}  // namespace

// ---------------------------------------------------------------------------------------------

void MoonshareConfig::validate(core::ConfigErrors& errors) const {
    auto check = [&errors](std::string_view key, const std::string& value) {
        std::string host;
        std::uint16_t port = 0;
        if (!core::parse_host_port(value, host, port)) {
            errors.push_back("moonshare." + std::string(key) + ": \"" + value +
                             "\" is not host:port");
        }
    };
    check("token_listen", token_listen);
    check("auth_listen", auth_listen);
    check("gateway_listen", gateway_listen);
    if (player_listen.empty() || player_listen.size() > kInstanceNames.size()) {
        errors.push_back("moonshare.player_listen: give 1 to " +
                         std::to_string(kInstanceNames.size()) + " addresses");
    }
    for (const auto& p : player_listen) {
        check("player_listen", p);
    }
}

std::string_view instance_name(std::size_t index) {
    return index < kInstanceNames.size() ? kInstanceNames[index] : "Instance";
}

WsRouteSettings player_route_settings(const MoonshareConfig& c, const core::WebSocketConfig& ws) {
    WsRouteSettings s = core::ws_route_settings(ws);
    s.compression = false;  // the plugin's ClientWebSocket never negotiates permessage-deflate
    // Text messages are small and come whole; binary ones (files) come in parts as they arrive
    // (on_binary_part), never whole in memory, and no message may be larger than a file may be.
    s.max_message_bytes = kMaxTextBytes;
    s.stream_binary = true;
    s.max_streamed_message_bytes = static_cast<std::uint64_t>(c.max_file_size_bytes);
    // No byte rate: a file goes to disk at the disk's pace and then to one recipient, and a
    // player may send several of up to max_file_size_bytes in a row at the speed of its link.
    // Uploads are bounded by the file size, upload slots, storage quotas and the upload timeout;
    // text messages by their size and the message rate.
    s.max_bytes_per_s = 0;
    return s;
}
// ---------------------------------------------------------------------------------------------

MoonshareFrontend::Shared::Shared(core::Runtime& r, auth::AccountService& a,
                                  core::MetricsRegistry& m, core::EventBus& e,
                                  const MoonshareConfig& c, const std::string& data_dir)
    : runtime(r),
      shards(r),
      accounts(a),
      events(e),
      config(c),
      started_steady(std::chrono::steady_clock::now()),
      started_wall(SysClock::now()),
      stats(m, c.player_listen.size()),
      files(fs::path(data_dir) / "moonshare",
            FileStore::Limits{static_cast<std::uint64_t>(c.max_stored_bytes_per_user),
                              static_cast<std::uint64_t>(c.max_stored_bytes_total),
                              std::chrono::seconds(c.file_ttl_s),
                              static_cast<std::uint64_t>(c.max_stored_files_per_user),
                              static_cast<std::uint64_t>(c.max_stored_bytes_per_sender),
                              static_cast<std::uint64_t>(c.max_stored_files_per_sender)}),
      bindings(Bindings::Limits{static_cast<std::size_t>(c.max_bindings),
                                std::chrono::seconds(c.binding_ttl_s), c.renew_from_same_ip,
                                static_cast<std::size_t>(c.max_bindings_per_address)}),
      binding_file(bindings, fs::path(data_dir) / "moonshare" / "bindings.json",
                   stats.bindings_count, stats.bindings_bytes),
      players(PlayerRegistry::Limits{static_cast<std::size_t>(c.player_limit),
                                     static_cast<std::size_t>(c.max_players_per_address)},
              stats.online),
      upload_slots(UploadSlots::Limits{static_cast<std::size_t>(c.max_concurrent_uploads),
                                       static_cast<std::size_t>(c.max_uploads_per_address)},
                   stats.uploads),
      pace(TokenPace::Limits{static_cast<std::uint64_t>(c.token_requests_per_ip_per_min),
                             static_cast<std::size_t>(c.max_paced_addresses)}) {
    binding_file.load(files, c.max_bindings);
    stats.stored_bytes.set(static_cast<std::int64_t>(files.stored_bytes()));
}

void housekeeping_tick(const std::shared_ptr<MoonshareFrontend::Shared>& shared, std::uint64_t n) {
    auto& s = *shared;
    if (s.players.take_changed()) {
        push_status(s);
    }
    if (n % 60 == 1) {
        s.sessions.prune(SysClock::now());
        s.pace.prune(TokenPace::Clock::now());
        boost::asio::post(s.runtime.blocking_pool(), [shared] {
            const auto expired = shared->files.expire(SysClock::now());
            if (expired > 0) {
                shared->stats.files_expired.inc(expired);
                log()->info("{} stored file(s) expired", expired);
            }
            shared->stats.stored_bytes.set(static_cast<std::int64_t>(shared->files.stored_bytes()));
        });
    }
    s.binding_file.sweep([&s](const std::string& user) {
        return s.players.is_online(user) || s.files.has_waiting(user);
    });
    // Saved on the pool; one that failed is tried again at the next tick.
    const bool touches_due = s.binding_file.touches_due();
    if (s.binding_file.behind(touches_due) && s.binding_file.begin_save()) {
        boost::asio::post(s.runtime.blocking_pool(), [shared, touches_due] {
            shared->binding_file.save(touches_due);
            shared->binding_file.saved();
        });
    }
}

// ---------------------------------------------------------------------------------------------

const auth::AccessPolicy& access_policy() {
    static const auth::AccessPolicy policy{.door = "moonshare", .guest_realm = std::string(kRealm)};
    return policy;
}

MoonshareFrontend::MoonshareFrontend(core::Runtime& runtime, auth::AccountService& accounts,
                                     core::MetricsRegistry& metrics, core::EventBus& events,
                                     const MoonshareConfig& config, const std::string& data_dir)
    : shared_(std::make_shared<Shared>(runtime, accounts, metrics, events, config, data_dir)),
      config_(config) {}

MoonshareFrontend::~MoonshareFrontend() {
    stop();
    shared_->binding_file.save(
        true);  // what changed since the ticker's last save, times of use too
}

void MoonshareFrontend::add_routes(Router& router, std::shared_ptr<const WsRouteSettings> player,
                                   std::shared_ptr<const WsRouteSettings> ws,
                                   const auth::OperatorAuth& operators) {
    const auto& c = config_;
    shared_->operators = &operators;
    token_listener_ = router.listener({"moonshare-token", c.token_listen, "", ""});
    for (const std::string path : {"/sessions", "/sessions/"}) {
        router.add_http_route(token_listener_, "", path,
                              [shared = shared_](const HttpRequest& req, HttpResponder res) {
                                  token_endpoint(shared, req, std::move(res));
                              });
    }

    auth_listener_ = router.listener({"moonshare-auth", c.auth_listen, "", ""});
    WsRoute auth;
    auth.settings = ws;
    auth.frontend = "moonshare";
    auth.listen_only = true;  // the plugin holds /auth open and sends nothing
    auth.accept = [shared = shared_](const HttpRequest& req) -> WsRoute::Decision {
        return make_auth_handler(shared, req.query_param("userId"),
                                 std::string(auth::bearer_token(req)));
    };
    router.add_ws_route(auth_listener_, "/auth", std::move(auth));
    WsRoute sessions;
    sessions.settings = ws;
    sessions.frontend = "moonshare";
    // The original's own gateway reads the sessions here; Hearth's gateway needs no such link,
    // and the list holds user ids: operators only.
    sessions.accept_async = [shared = shared_](const HttpRequest& req,
                                               std::function<void(WsRoute::Decision)> decide) {
        shared->operators->authorize(
            req, [shared, showed = !auth::bearer_token(req).empty(),
                  decide = std::move(decide)](auth::OperatorAuth::Outcome outcome) {
                if (const auto* refusal = std::get_if<HttpResponse>(&outcome)) {
                    decide(operator_refusal(*shared, *refusal, "auth /sessions", showed));
                    return;
                }
                decide(make_sessions_handler(shared));
            });
    };
    router.add_ws_route(auth_listener_, "/sessions", std::move(sessions));

    for (std::size_t i = 0; i < c.player_listen.size(); ++i) {
        const auto key = router.listener(
            {"moonshare-" + lowercase(instance_name(i)), c.player_listen[i], "", ""});
        player_listeners_.push_back(key);
        WsRoute route;
        route.settings = player;
        route.frontend = "moonshare";
        route.accept = [shared = shared_, i](const HttpRequest&) -> WsRoute::Decision {
            return make_player_handler(shared, i);
        };
        router.add_ws_route(key, "/player", std::move(route));
    }

    gateway_listener_ = router.listener({"moonshare-gateway", c.gateway_listen, "", ""});
    router.add_http_route(
        gateway_listener_, "", "/",
        [shared = shared_](const HttpRequest& req, HttpResponder res) {
            gateway(shared, req, std::move(res));
        },
        PathMatch::kPrefix);
    WsRoute push;
    push.settings = ws;
    push.frontend = "moonshare";
    push.listen_only = true;  // dashboards only receive
    push.accept = [shared = shared_](const HttpRequest&) -> WsRoute::Decision {
        return make_gateway_ws_handler(shared);
    };
    router.add_ws_route(gateway_listener_, "/ws", std::move(push));

    std::string players;
    for (const auto& p : c.player_listen) {
        players += (players.empty() ? "" : ", ") + p;
    }
    log()->info("Moonshare: tokens on {}, auth on {}, players on {}, gateway on {}", c.token_listen,
                c.auth_listen, players, c.gateway_listen);
}

void MoonshareFrontend::set_disk_hook(std::function<void(DiskStep)> hook) {
    shared_->disk_hook = std::move(hook);
}

void MoonshareFrontend::start() {
    if (ticker_) {
        return;
    }
    // The housekeeping, once a second on shard 0; `n` is touched only there.
    ticker_ = shared_->shards.every(
        0, std::chrono::seconds(1),
        [weak = std::weak_ptr<Shared>(shared_), n = std::uint64_t{0}]() mutable {
            if (auto s = weak.lock()) {
                housekeeping_tick(s, ++n);
            }
        });
}

void MoonshareFrontend::stop() {
    // Waits for a tick under way: the destructor's last save of the bindings comes after it.
    ticker_.cancel();
}

}  // namespace hearth::frontends::moonshare
