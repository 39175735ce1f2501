#include "support/moonshare.hpp"
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "core/ws_settings.hpp"
#include "store/storage_config.hpp"

namespace hearth::test::moonshare {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

auth::AuthConfig fast_auth() {
    auth::AuthConfig c;
    c.password_ops_limit = 1;
    c.password_mem_limit_kib = 8;
    return c;
}

Fixture::Fixture(MoonshareConfig c, std::string data_dir, DiskHook disk_hook)
    : data_dir_(data_dir.empty() ? dir_.path() : std::move(data_dir)),
      store_(store::open_store(store::StorageConfig{}, data_dir_, metrics_)),
      accounts_(
          store_->accounts(),
          [this](std::function<void()> work) {
              boost::asio::post(runtime_.blocking_pool(), std::move(work));
          },
          metrics_, fast_auth()) {
    c.enabled = true;
    c.token_listen = "127.0.0.1:0";
    c.auth_listen = "127.0.0.1:0";
    c.gateway_listen = "127.0.0.1:0";
    c.player_listen = {"127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"};
    frontend_ =
        std::make_unique<MoonshareFrontend>(runtime_, accounts_, metrics_, events_, c, data_dir_);
    server_ = std::make_unique<net::Server>(runtime_, metrics_, events_, net::HttpLimits{});
    operators_.set_admin_token(kAdminToken);
    operators_.set_accounts(&accounts_);
    core::WebSocketConfig ws;
    frontend_->add_routes(
        *server_,
        std::make_shared<const WsRouteSettings>(frontends::moonshare::player_route_settings(c, ws)),
        std::make_shared<const WsRouteSettings>(core::ws_route_settings(ws)), operators_);
    frontend_->set_disk_hook(std::move(disk_hook));  // before any thread runs
    runtime_.start();
    server_->start();
    frontend_->start();
}

Fixture::~Fixture() {
    frontend_->stop();
    server_->begin_shutdown();
    EXPECT_TRUE(server_->wait_drained(Clock::now() + kDeadline));
    runtime_.stop();
    server_.reset();
    frontend_.reset();
}

std::uint16_t Fixture::token_port() const {
    return server_->bound_port(frontend_->token_listener());
}
std::uint16_t Fixture::auth_port() const {
    return server_->bound_port(frontend_->auth_listener());
}
std::uint16_t Fixture::gateway_port() const {
    return server_->bound_port(frontend_->gateway_listener());
}
std::uint16_t Fixture::player_port(std::size_t i) const {
    return server_->bound_port(frontend_->player_listeners().at(i));
}

double Fixture::metric(const std::string& name, const std::map<std::string, std::string>& labels) {
    return metric_value(metrics_.render(), name, labels);
}

std::filesystem::path Fixture::stored_dir() const {
    return std::filesystem::path(data_dir_) / "moonshare" / "stored";
}

HttpResult Fixture::token_request(const std::string& user, const std::string& address) {
    return http_request_from(address, token_port(), "GET", "/sessions?userId=" + user);
}

std::string Fixture::token(const std::string& user, const std::string& address) {
    const auto r = token_request(user, address);
    EXPECT_EQ(r.status, 200) << user << " from " << address << ": " << r.body;
    if (r.status != 200) {
        return "";
    }
    return std::string(json::parse(r.body).as_object().at("token").as_string());
}

std::string auth_msg(const std::string& user, const std::string& token) {
    return json::serialize(
        json::object{{"type", "session_auth"}, {"userId", user}, {"token", token}});
}

std::string ok_result(const std::string& user) {
    return R"({"type":"session_auth_result","success":true,"message":"Authentication successful","userId":")" +
           user + R"("})";
}

std::string instance_info(const std::string& name) {
    return R"({"type":"connection_info","message":"You are connected through instance )" + name +
           R"("})";
}

std::string begin_msg(const std::string& to, const std::string& name, std::uint64_t size) {
    return R"({"type":"file_send_begin","targetUserId":")" + to + R"(","fileName":")" + name +
           R"(","fileSize":)" + std::to_string(size) + "}";
}

std::string complete_msg(const std::string& to, const std::string& name) {
    return R"({"type":"file_send_complete","fileName":")" + name + R"(","targetUserId":")" + to +
           R"("})";
}

bool is_user_list(const WsMessage& m) {
    return m.text && m.data.starts_with(R"({"type":"user_list_update")");
}

std::optional<WsMessage> next(WsClient& c, std::chrono::milliseconds deadline) {
    for (;;) {
        auto m = c.read(deadline);
        if (!m || !is_user_list(*m)) {
            return m;
        }
    }
}

std::string next_text(WsClient& c, std::chrono::milliseconds deadline) {
    auto m = next(c, deadline);
    if (!m) {
        throw std::runtime_error("closed while a message was expected");
    }
    EXPECT_TRUE(m->text);
    return m->data;
}

std::unique_ptr<WsClient> try_player(Fixture& f, const std::string& user, const std::string& token,
                                     std::size_t i, const std::string& address,
                                     std::string* refusal) {
    auto c = std::make_unique<WsClient>(f.player_port(i),
                                        WsOptions{.path = "/player", .local_address = address});
    c->send_text(auth_msg(user, token));
    const auto result = next_text(*c);
    if (result != ok_result(user)) {
        if (refusal != nullptr) {
            *refusal = result;
        }
        return nullptr;
    }
    static const char* kNames[] = {"Alpha", "Beta", "Gamma"};
    EXPECT_EQ(next_text(*c), instance_info(kNames[i]));
    return c;
}

std::unique_ptr<WsClient> player(Fixture& f, const std::string& user, std::size_t i,
                                 const std::string& address) {
    auto c = try_player(f, user, f.token(user, address), i, address);
    EXPECT_TRUE(c) << user << " was refused";
    return c;
}

void DiskGate::pass(Step step) {
    if (step != step_) {
        return;
    }
    std::unique_lock lock(mutex_);
    ++held_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
}

bool DiskGate::wait_held() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kDeadline, [&] { return held_ > 0; });
}

void DiskGate::open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
}

}  // namespace hearth::test::moonshare
