#pragma once

// The operator API as the app-level suites call it: requests as the admin (or another token),
// accounts made and logged in, and audit entries looked up.

#include <cstdint>
#include <optional>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {

struct OperatorClient {
    std::uint16_t port = 0;
    std::string admin_token;

    /// As the admin, or as `token` ("" for none).
    HttpResult call(const std::string& method, const std::string& target,
                    const std::string& body = "",
                    const std::optional<std::string>& token = std::nullopt) const {
        return api_request(port, method, target, body, token.value_or(admin_token));
    }
    /// The body of a call as the admin, after checking its status.
    boost::json::value ok(const std::string& method, const std::string& target,
                          const std::string& body = "", int status = 200) const {
        auto r = call(method, target, body);
        EXPECT_EQ(r.status, status) << method << " " << target << ": " << r.body;
        return r.body.empty() ? boost::json::value() : boost::json::parse(r.body);
    }
    /// The error code of a refused call, after checking its status.
    std::string refused(const std::string& method, const std::string& target, int status,
                        const std::string& body = "") const {
        auto r = call(method, target, body);
        EXPECT_EQ(r.status, status) << method << " " << target << ": " << r.body;
        return r.body.empty()
                   ? std::string()
                   : std::string(boost::json::parse(r.body).at("error").at("code").as_string());
    }
    /// A new account with the password "long enough password"; its id.
    std::uint64_t account(const std::string& name,
                          const std::string& roles = R"(["player"])") const {
        auto v = ok("POST", "/api/v1/accounts",
                    R"({"username":")" + name + R"(","password":"long enough password","roles":)" +
                        roles + "}",
                    201);
        return v.at("id").to_number<std::uint64_t>();
    }
    /// A session token of an account made by `account`.
    std::string token_of(const std::string& name) const {
        auto r = call("POST", "/api/v1/auth/login",
                      R"({"username":")" + name + R"(","password":"long enough password"})", "");
        EXPECT_EQ(r.status, 200) << r.body;
        return std::string(boost::json::parse(r.body).at("token").as_string());
    }
    /// Whether the audit log got `action` on `target` (its write may land just after the answer).
    bool audited(const std::string& action, const std::string& target) const {
        return eventually([&] {
            auto v = ok("GET", "/api/v1/audit?action=" + action);
            for (const auto& e : v.at("items").as_array()) {
                if (e.at("target").as_string() == target) {
                    return true;
                }
            }
            return false;
        });
    }
};

}  // namespace hearth::test
