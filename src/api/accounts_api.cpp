#include "api/accounts_api.hpp"
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include <hearth/account_store.hpp>

#include "auth/account_service.hpp"

namespace hearth::api {

namespace json = boost::json;

namespace {

/// `field` of `o` as a string, if present and a string.
std::optional<std::string> string_field(const json::object& o, std::string_view field) {
    if (const auto* v = o.if_contains(field); v && v->is_string()) {
        return std::string(v->get_string());
    }
    return std::nullopt;
}

HttpResponse invalid_field(std::string_view field, std::string_view why) {
    return api_error(400, "invalid_field", std::string(field) + ": " + std::string(why));
}

/// A list of strings, or the 400 to answer.
std::variant<std::vector<std::string>, HttpResponse> string_list(const json::value& v,
                                                                 std::string_view field) {
    if (!v.is_array()) {
        return invalid_field(field, "must be an array of strings");
    }
    std::vector<std::string> out;
    for (const auto& item : v.get_array()) {
        if (!item.is_string()) {
            return invalid_field(field, "must be an array of strings");
        }
        out.emplace_back(item.get_string());
    }
    return out;
}

std::string_view kind_name(store::TokenKindCode k) {
    switch (k) {
        case store::TokenKindCode::kSession:
            return "session";
        case store::TokenKindCode::kApiKey:
            return "api";
        case store::TokenKindCode::kGuest:
            return "guest";
    }
    return "unknown";
}

json::object session_json(const auth::SessionToken& s) {
    json::object o;
    o["token"] = s.token;
    o["expires_at"] = rfc3339(s.expires_at);
    return o;
}

/// Turns an account-service login error into the documented answer.
HttpResponse login_error(const boost::system::error_code& ec, std::chrono::milliseconds wait) {
    if (ec == make_error_code(Errc::kUnauthenticated)) {
        return api_error(401, "invalid_credentials", "Wrong username or password.");
    }
    if (ec == make_error_code(Errc::kNotAllowed)) {
        return api_error(403, "account_disabled", "This account is disabled.");
    }
    if (ec == make_error_code(Errc::kLimitReached)) {
        auto r = api_error(429, "too_many_attempts",
                           "Too many failed logins; try again in " +
                               std::to_string((wait.count() + 999) / 1000) + " s.");
        r.headers.push_back({"Retry-After", std::to_string((wait.count() + 999) / 1000)});
        return r;
    }
    return error_response(ec);
}

/// The caller's address without the port (the throttle's key).
std::string peer_ip(const std::string& peer) {
    if (!peer.empty() && peer.front() == '[') {
        return peer.substr(1, peer.find(']') - 1);
    }
    return peer.substr(0, peer.rfind(':'));
}

/// Finds an account by "id" (a number) or username, then runs `then` with it.
void with_account(auth::AccountService& accounts, const std::string& ref,
                  std::function<void(Result<store::AccountRecord>)> then) {
    if (auto id = parse_id(ref)) {
        accounts.store().account_by_id(*id, std::move(then));
    } else {
        accounts.store().account_by_name(ref, std::move(then));
    }
}

void add_auth_routes(OperatorApi& api, auth::AccountService& accounts) {
    api.add("POST", "/api/v1/auth/login", Access::kPublic,
            [&accounts](ApiCallPtr call, HttpResponder res) {
                auto body = parse_object(call->request);
                if (auto* refused = std::get_if<HttpResponse>(&body)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto& o = std::get<json::object>(body);
                auto username = string_field(o, "username");
                auto password = string_field(o, "password");
                if (!username || !password) {
                    res.respond(
                        api_error(400, "invalid_field", "username and password must be strings."));
                    return;
                }
                const auto ip = peer_ip(call->request.peer_address);
                // A login of the operator API's door (the module of its event).
                accounts.login(
                    *username, std::move(*password), ip, auth::operator_policy().door,
                    [&accounts, res, user = *username, ip](Result<auth::SessionToken> r) mutable {
                        if (!r) {
                            res.respond(login_error(r.error(), accounts.retry_after(user, ip)));
                            return;
                        }
                        res.respond(json_response(200, session_json(*r)));
                    });
            });
    api.add(
        "POST", "/api/v1/auth/refresh", Access::kPublic,
        [&accounts](ApiCallPtr call, HttpResponder res) {
            const auto token = auth::bearer_token(call->request);
            if (token.empty()) {
                res.respond(
                    auth::unauthorized("Refresh needs Authorization: Bearer <session "
                                       "token>."));
                return;
            }
            accounts.refresh(std::string(token), [res](Result<auth::SessionToken> r) mutable {
                if (!r && r.error() == make_error_code(Errc::kNotAllowed)) {
                    res.respond(api_error(400, "not_a_session",
                                          "Only session tokens are refreshed; API keys do not "
                                          "expire unless given a lifetime."));
                    return;
                }
                res.respond(r ? json_response(200, session_json(*r)) : error_response(r.error()));
            });
        });
    api.add("POST", "/api/v1/auth/logout", Access::kPublic,
            [&accounts](ApiCallPtr call, HttpResponder res) {
                const auto token = auth::bearer_token(call->request);
                if (token.empty()) {
                    res.respond(auth::unauthorized("Logout needs Authorization: Bearer <token>."));
                    return;
                }
                accounts.logout(std::string(token), [res](Result<void> r) mutable {
                    if (!r) {
                        res.respond(error_response(r.error()));
                        return;
                    }
                    HttpResponse ok = HttpResponse::text(204, "");
                    ok.content_type.clear();
                    res.respond(std::move(ok));
                });
            });
}

void add_account_resource(OperatorApi& api, auth::AccountService& accounts) {
    api.add(
        "GET", "/api/v1/accounts", Access::kAdmin, [&accounts](ApiCallPtr call, HttpResponder res) {
            const auto& req = call->request;
            store::AccountFilter f;
            auto limit = parse_limit(req, 100, 1000);
            if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                res.respond(std::move(*refused));
                return;
            }
            f.limit = std::get<std::size_t>(limit) + 1;
            if (auto s = req.query_param("status"); s && !s->empty()) {
                if (*s != "active" && *s != "disabled") {
                    res.respond(api_error(400, "invalid_parameter", "status: active or disabled"));
                    return;
                }
                f.disabled = *s == "disabled";
            }
            if (auto r = req.query_param("role"); r && !r->empty()) {
                f.role = *r;
            }
            if (auto q = req.query_param("q"); q && !q->empty()) {
                f.username_prefix = *q;
            }
            auto cursor = parse_id_cursor(req);
            if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
                res.respond(std::move(*refused));
                return;
            }
            f.after_id = std::get<std::optional<std::uint64_t>>(cursor);
            const auto page = f.limit - 1;
            accounts.store().list_accounts(
                f, [res, page](Result<std::vector<store::AccountRecord>> r) mutable {
                    if (!r) {
                        res.respond(error_response(r.error()));
                        return;
                    }
                    res.respond(id_page_response(std::move(*r), page, account_json));
                });
        });
    api.add(
        "POST", "/api/v1/accounts", Access::kAdmin,
        [&api, &accounts](ApiCallPtr call, HttpResponder res) {
            auto body = parse_object(call->request);
            if (auto* refused = std::get_if<HttpResponse>(&body)) {
                res.respond(std::move(*refused));
                return;
            }
            const auto& o = std::get<json::object>(body);
            auth::NewAccount a;
            auto username = string_field(o, "username");
            auto password = string_field(o, "password");
            if (!username) {
                res.respond(invalid_field("username", "must be a string"));
                return;
            }
            if (auto why = auth::check_username(*username)) {
                res.respond(invalid_field("username", *why));
                return;
            }
            if (!password) {
                res.respond(invalid_field("password", "must be a string"));
                return;
            }
            if (auto why = accounts.check_password(*password)) {
                res.respond(invalid_field("password", *why));
                return;
            }
            a.username = *username;
            a.password = std::move(*password);
            if (const auto* roles = o.if_contains("roles")) {
                auto list = string_list(*roles, "roles");
                if (auto* refused = std::get_if<HttpResponse>(&list)) {
                    res.respond(std::move(*refused));
                    return;
                }
                a.roles = std::get<std::vector<std::string>>(std::move(list));
                if (auto why = auth::check_roles(a.roles)) {
                    res.respond(invalid_field("roles", *why));
                    return;
                }
            }
            if (const auto* email = o.if_contains("email"); email && !email->is_null()) {
                if (!email->is_string() || email->get_string().find('@') == json::string::npos) {
                    res.respond(invalid_field("email", "must be an email address"));
                    return;
                }
                a.email = std::string(email->get_string());
            }
            accounts.create_account(
                std::move(a), [&api, call, res](Result<store::AccountRecord> r) mutable {
                    if (!r) {
                        res.respond(error_response(r.error()));
                        return;
                    }
                    api.audit(*call, "account.create", "account:" + r->username, {{"id", r->id}});
                    res.respond(json_response(201, account_json(*r)));
                });
        });
    api.add("GET", "/api/v1/accounts/{account}", Access::kAdmin,
            [&accounts](ApiCallPtr call, HttpResponder res) {
                with_account(accounts, call->params.at("account"),
                             [res](Result<store::AccountRecord> r) mutable {
                                 res.respond(r ? json_response(200, account_json(*r))
                                               : error_response(r.error()));
                             });
            });
    api.add(
        "PATCH", "/api/v1/accounts/{account}", Access::kAdmin,
        [&api, &accounts](ApiCallPtr call, HttpResponder res) {
            auto body = parse_object(call->request);
            if (auto* refused = std::get_if<HttpResponse>(&body)) {
                res.respond(std::move(*refused));
                return;
            }
            const auto& o = std::get<json::object>(body);
            auth::AccountChange change;
            json::object detail;
            for (const auto& [key, value] : o) {
                if (key == "password") {
                    if (!value.is_string()) {
                        res.respond(invalid_field("password", "must be a string"));
                        return;
                    }
                    if (auto why = accounts.check_password(value.get_string())) {
                        res.respond(invalid_field("password", *why));
                        return;
                    }
                    change.password = std::string(value.get_string());
                    detail["password"] = "changed";
                } else if (key == "disabled") {
                    if (!value.is_bool()) {
                        res.respond(invalid_field("disabled", "must be true or false"));
                        return;
                    }
                    change.disabled = value.get_bool();
                    detail["disabled"] = value.get_bool();
                } else if (key == "roles") {
                    auto list = string_list(value, "roles");
                    if (auto* refused = std::get_if<HttpResponse>(&list)) {
                        res.respond(std::move(*refused));
                        return;
                    }
                    auto roles = std::get<std::vector<std::string>>(std::move(list));
                    if (auto why = auth::check_roles(roles)) {
                        res.respond(invalid_field("roles", *why));
                        return;
                    }
                    detail["roles"] = value;
                    change.roles = std::move(roles);
                } else if (key == "email") {
                    if (value.is_null()) {
                        change.email = std::optional<std::string>();
                    } else if (value.is_string() &&
                               value.get_string().find('@') != json::string::npos) {
                        change.email = std::optional<std::string>(std::string(value.get_string()));
                    } else {
                        res.respond(invalid_field("email", "must be an email address or null"));
                        return;
                    }
                    detail["email"] = value;
                } else {
                    res.respond(
                        invalid_field(key, "unknown field (password, disabled, roles, email)"));
                    return;
                }
            }
            with_account(accounts, call->params.at("account"),
                         [&api, &accounts, call, res, change = std::move(change),
                          detail = std::move(detail)](Result<store::AccountRecord> a) mutable {
                             if (!a) {
                                 res.respond(error_response(a.error()));
                                 return;
                             }
                             accounts.change_account(
                                 a->id, std::move(change),
                                 [&api, call, res, detail](Result<store::AccountRecord> r) mutable {
                                     if (!r) {
                                         res.respond(error_response(r.error()));
                                         return;
                                     }
                                     const auto action =
                                         detail.contains("disabled")
                                             ? (detail.at("disabled").as_bool() ? "account.disable"
                                                                                : "account.enable")
                                             : "account.update";
                                     api.audit(*call, action, "account:" + r->username, detail);
                                     res.respond(json_response(200, account_json(*r)));
                                 });
                         });
        });
    api.add("DELETE", "/api/v1/accounts/{account}", Access::kAdmin,
            [&api, &accounts](ApiCallPtr call, HttpResponder res) {
                with_account(accounts, call->params.at("account"),
                             [&api, &accounts, call, res](Result<store::AccountRecord> a) mutable {
                                 if (!a) {
                                     res.respond(error_response(a.error()));
                                     return;
                                 }
                                 accounts.delete_account(
                                     a->id,
                                     [&api, call, res, name = a->username](Result<void> r) mutable {
                                         if (!r) {
                                             res.respond(error_response(r.error()));
                                             return;
                                         }
                                         api.audit(*call, "account.delete", "account:" + name);
                                         HttpResponse ok = HttpResponse::text(204, "");
                                         ok.content_type.clear();
                                         res.respond(std::move(ok));
                                     });
                             });
            });
}

void add_token_resource(OperatorApi& api, auth::AccountService& accounts) {
    api.add(
        "GET", "/api/v1/tokens", Access::kAdmin, [&accounts](ApiCallPtr call, HttpResponder res) {
            const auto& req = call->request;
            store::TokenFilter f;
            auto limit = parse_limit(req, 100, 1000);
            if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                res.respond(std::move(*refused));
                return;
            }
            const auto page = std::get<std::size_t>(limit);
            f.limit = page + 1;
            if (auto k = req.query_param("kind"); k && !k->empty()) {
                if (*k == "session") {
                    f.kind = store::TokenKindCode::kSession;
                } else if (*k == "api") {
                    f.kind = store::TokenKindCode::kApiKey;
                } else if (*k == "guest") {
                    f.kind = store::TokenKindCode::kGuest;
                } else {
                    res.respond(api_error(400, "invalid_parameter", "kind: session, api or guest"));
                    return;
                }
            }
            if (auto r = req.query_param("revoked"); r && *r == "true") {
                f.include_revoked = true;
            }
            auto cursor = parse_id_cursor(req);
            if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
                res.respond(std::move(*refused));
                return;
            }
            f.after_id = std::get<std::optional<std::uint64_t>>(cursor);
            auto list = [&accounts, res, page](store::TokenFilter filter) mutable {
                accounts.store().list_tokens(
                    filter, [res, page](Result<std::vector<store::TokenRecord>> r) mutable {
                        if (!r) {
                            res.respond(error_response(r.error()));
                            return;
                        }
                        res.respond(id_page_response(std::move(*r), page, token_json));
                    });
            };
            auto account = req.query_param("account");
            if (!account || account->empty()) {
                list(f);
                return;
            }
            with_account(accounts, *account,
                         [res, f, list](Result<store::AccountRecord> a) mutable {
                             if (!a) {
                                 res.respond(error_response(a.error()));
                                 return;
                             }
                             f.account_id = a->id;
                             list(f);
                         });
        });
    api.add(
        "POST", "/api/v1/tokens", Access::kAdmin,
        [&api, &accounts](ApiCallPtr call, HttpResponder res) {
            auto body = parse_object(call->request);
            if (auto* refused = std::get_if<HttpResponse>(&body)) {
                res.respond(std::move(*refused));
                return;
            }
            const auto& o = std::get<json::object>(body);
            auto account = string_field(o, "account");
            if (!account) {
                res.respond(invalid_field("account", "must be a username or an id as a string"));
                return;
            }
            if (auto kind = string_field(o, "kind"); kind && *kind != "api") {
                res.respond(invalid_field("kind",
                                          "only \"api\" keys are issued here; "
                                          "sessions come from /api/v1/auth/login"));
                return;
            }
            auth::NewToken t;
            t.kind = store::TokenKindCode::kApiKey;
            t.name = string_field(o, "name").value_or("");
            if (t.name.empty() || t.name.size() > 100) {
                res.respond(invalid_field("name", "a label of 1 to 100 characters"));
                return;
            }
            const auto* scopes = o.if_contains("scopes");
            if (scopes == nullptr) {
                res.respond(invalid_field("scopes", "required"));
                return;
            }
            auto list = string_list(*scopes, "scopes");
            if (auto* refused = std::get_if<HttpResponse>(&list)) {
                res.respond(std::move(*refused));
                return;
            }
            t.scopes = std::get<std::vector<std::string>>(std::move(list));
            if (auto why = auth::check_scopes(t.scopes)) {
                res.respond(invalid_field("scopes", *why));
                return;
            }
            if (const auto* ttl = o.if_contains("ttl_s"); ttl && !ttl->is_null()) {
                if (!ttl->is_int64() || ttl->get_int64() < 1) {
                    res.respond(invalid_field("ttl_s", "a positive number of seconds"));
                    return;
                }
                t.ttl = std::chrono::seconds(ttl->get_int64());
            }
            with_account(
                accounts, *account,
                [&api, &accounts, call, res,
                 t = std::move(t)](Result<store::AccountRecord> a) mutable {
                    if (!a) {
                        res.respond(error_response(a.error()));
                        return;
                    }
                    t.account_id = a->id;
                    accounts.issue_token(std::move(t), [&api, call, res, name = a->username](
                                                           Result<auth::IssuedToken> r) mutable {
                        if (!r) {
                            res.respond(error_response(r.error()));
                            return;
                        }
                        api.audit(*call, "token.issue", "token:" + std::to_string(r->record.id),
                                  {{"account", name}, {"name", r->record.name}});
                        auto out = token_json(r->record);
                        out["token"] = r->token;  // shown once
                        res.respond(json_response(201, out));
                    });
                });
        });
    api.add("DELETE", "/api/v1/tokens/{id}", Access::kAdmin,
            [&api, &accounts](ApiCallPtr call, HttpResponder res) {
                const auto id = parse_id(call->params.at("id"));
                if (!id) {
                    res.respond(api_error(404, "not_found", "No such token."));
                    return;
                }
                accounts.revoke_token(*id, [&api, call, res](Result<store::TokenRecord> r) mutable {
                    if (!r) {
                        res.respond(error_response(r.error()));
                        return;
                    }
                    api.audit(*call, "token.revoke", "token:" + std::to_string(r->id));
                    res.respond(json_response(200, token_json(*r)));
                });
            });
}

void add_audit_resource(OperatorApi& api, auth::AccountService& accounts) {
    api.add("GET", "/api/v1/audit", Access::kAdmin,
            [&accounts](ApiCallPtr call, HttpResponder res) {
                const auto& req = call->request;
                store::AuditFilter f;
                auto limit = parse_limit(req, 100, 1000);
                if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto page = std::get<std::size_t>(limit);
                f.limit = page + 1;
                if (auto a = req.query_param("actor"); a && !a->empty()) {
                    f.actor = *a;
                }
                if (auto a = req.query_param("action"); a && !a->empty()) {
                    f.action = *a;
                }
                auto cursor = parse_id_cursor(req);
                if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
                    res.respond(std::move(*refused));
                    return;
                }
                f.before_id = std::get<std::optional<std::uint64_t>>(cursor);
                accounts.store().list_audit(
                    f, [res, page](Result<std::vector<store::AuditEntry>> r) mutable {
                        if (!r) {
                            res.respond(error_response(r.error()));
                            return;
                        }
                        res.respond(id_page_response(std::move(*r), page, [](const auto& e) {
                            json::object o;
                            o["id"] = e.id;
                            o["at"] = rfc3339(e.at);
                            o["actor"] = e.actor;
                            o["action"] = e.action;
                            o["target"] = e.target;
                            o["peer"] = e.peer;
                            if (!e.detail.empty()) {
                                boost::system::error_code ec;
                                auto d = json::parse(e.detail, ec);
                                o["detail"] = ec ? json::value(e.detail) : d;
                            } else {
                                o["detail"] = json::object();
                            }
                            return o;
                        }));
                    });
            });
}

}  // namespace

json::object account_json(const store::AccountRecord& a) {
    json::object o;
    o["id"] = a.id;
    o["username"] = a.username;
    o["email"] = a.email ? json::value(*a.email) : json::value(nullptr);
    o["status"] = a.disabled ? "disabled" : "active";
    json::array roles;
    for (const auto& r : a.roles) {
        roles.emplace_back(r);
    }
    o["roles"] = std::move(roles);
    o["guest"] = a.guest;
    o["created_at"] = rfc3339(a.created_at);
    o["last_login_at"] = a.last_login_at ? json::value(rfc3339(*a.last_login_at)) : nullptr;
    return o;
}

json::object token_json(const store::TokenRecord& t) {
    json::object o;
    o["id"] = t.id;
    o["account_id"] = t.account_id;
    o["kind"] = kind_name(t.kind);
    o["name"] = t.name;
    o["fingerprint"] = t.digest.substr(0, 8);
    json::array scopes;
    for (const auto& s : t.scopes) {
        scopes.emplace_back(s);
    }
    o["scopes"] = std::move(scopes);
    o["created_at"] = rfc3339(t.created_at);
    o["expires_at"] = t.expires_at ? json::value(rfc3339(*t.expires_at)) : nullptr;
    o["revoked_at"] = t.revoked_at ? json::value(rfc3339(*t.revoked_at)) : nullptr;
    return o;
}

void add_account_routes(OperatorApi& api, auth::AccountService& accounts) {
    add_auth_routes(api, accounts);
    add_account_resource(api, accounts);
    add_token_resource(api, accounts);
    add_audit_resource(api, accounts);
}

}  // namespace hearth::api
