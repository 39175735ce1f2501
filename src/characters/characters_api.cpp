#include "characters/characters_api.hpp"
#include <string>
#include <utility>
#include <variant>

#include <boost/json/array.hpp>

#include <hearth/account_store.hpp>

namespace hearth::characters {

namespace json = boost::json;
using api::Access;
using api::ApiCallPtr;
using store::CharacterRecord;

namespace {

constexpr std::size_t kDefaultLimit = 100;
constexpr std::size_t kMaxLimit = 1'000;

json::value time_or_null(const std::optional<store::CharacterTime>& t) {
    return t ? json::value(api::rfc3339(*t)) : json::value(nullptr);
}

/// The {id} of the route, or the 404 to answer (no character has an id that is not one).
std::optional<std::uint64_t> id_of(const api::ApiCall& call, HttpResponder& res) {
    auto id = api::parse_id(call.params.at("id"));
    if (!id) {
        res.respond(character_error_response(make_error_code(CharacterError::kNotFound)));
    }
    return id;
}

/// Answers a service call on one character: 200 with it, or the error.
store::Completion<CharacterRecord> answer(HttpResponder res) {
    return [res](Result<CharacterRecord> r) mutable {
        res.respond(r ? api::json_response(200, character_json(*r))
                      : character_error_response(r.error()));
    };
}

/// The same, audited when it succeeded: `action` on "character:<id>", with `detail(record)`.
template <class Detail>
store::Completion<CharacterRecord> audited(const api::OperatorApi& api, ApiCallPtr call,
                                           HttpResponder res, std::string action, Detail detail) {
    return [&api, call = std::move(call), res, action = std::move(action),
            detail = std::move(detail)](Result<CharacterRecord> r) mutable {
        if (r) {
            api.audit(*call, action, "character:" + std::to_string(r->id), detail(*r));
        }
        answer(std::move(res))(std::move(r));
    };
}

void list_route(CharacterServiceImpl& service, store::AccountStore& accounts, ApiCallPtr call,
                HttpResponder res) {
    const auto& req = call->request;
    store::CharacterFilter f;
    auto limit = api::parse_limit(req, kDefaultLimit, kMaxLimit);
    if (auto* refused = std::get_if<HttpResponse>(&limit)) {
        res.respond(std::move(*refused));
        return;
    }
    const auto page = std::get<std::size_t>(limit);
    f.limit = page + 1;  // one more tells whether there is a next page
    auto cursor = api::parse_id_cursor(req);
    if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
        res.respond(std::move(*refused));
        return;
    }
    f.after_id = std::get<std::optional<std::uint64_t>>(cursor);
    if (auto name = req.query_param("name"); name && !name->empty()) {
        f.name_prefix = std::move(*name);
    }
    if (auto d = req.query_param("deleted"); d && !d->empty()) {
        if (*d == "include") {
            f.deleted = store::CharacterFilter::Deleted::kInclude;
        } else if (*d == "only") {
            f.deleted = store::CharacterFilter::Deleted::kOnly;
        } else if (*d != "exclude") {
            res.respond(
                api::api_error(400, "invalid_parameter", "deleted: exclude, include or only"));
            return;
        }
    }
    auto run = [&service, res, page](store::CharacterFilter filter) mutable {
        service.list_all(
            std::move(filter), [res, page](Result<std::vector<CharacterRecord>> r) mutable {
                if (!r) {
                    res.respond(character_error_response(r.error()));
                    return;
                }
                res.respond(api::id_page_response(std::move(*r), page, character_json));
            });
    };
    auto account = req.query_param("account");
    if (!account || account->empty()) {
        run(std::move(f));
        return;
    }
    if (auto id = api::parse_id(*account)) {
        f.account_id = *id;
        run(std::move(f));
        return;
    }
    // A username: the characters of that account; none when there is no such account.
    accounts.account_by_name(*account, [run, f, res](Result<store::AccountRecord> a) mutable {
        if (!a && a.error() != make_error_code(Errc::kNotFound)) {
            res.respond(api::error_response(a.error()));
            return;
        }
        if (!a) {
            res.respond(api::page_response({}, std::nullopt));
            return;
        }
        f.account_id = a->id;
        run(std::move(f));
    });
}

}  // namespace

json::object character_json(const CharacterRecord& c) {
    json::object o;
    o["id"] = c.id;
    o["account_id"] = c.account_id;
    o["name"] = c.name;
    o["level"] = c.level;
    o["experience"] = c.experience;
    o["money"] = c.money;
    o["stats"] = {{"str", c.stats.str}, {"dex", c.stats.dex},      {"int", c.stats.intelligence},
                  {"con", c.stats.con}, {"hp", c.stats.hp},        {"max_hp", c.stats.max_hp},
                  {"mp", c.stats.mp},   {"max_mp", c.stats.max_mp}};
    o["looks"] = {{"body", c.looks.body},
                  {"face", c.looks.face},
                  {"hair", c.looks.hair},
                  {"hair_color", c.looks.hair_color}};
    json::array inventory;
    for (const auto& i : c.inventory) {
        inventory.push_back({{"slot", i.slot}, {"item_id", i.item_id}, {"count", i.count}});
    }
    o["inventory"] = std::move(inventory);
    o["position"] = {{"zone", c.position.zone},
                     {"x", c.position.x},
                     {"y", c.position.y},
                     {"z", c.position.z},
                     {"heading", c.position.heading}};
    o["created_at"] = api::rfc3339(c.created_at);
    o["updated_at"] = api::rfc3339(c.updated_at);
    o["last_login_at"] = time_or_null(c.last_login_at);
    o["deleted_at"] = time_or_null(c.deleted_at);
    return o;
}

HttpResponse character_error_response(const boost::system::error_code& ec) {
    const CharacterError e = character_error_of(ec);
    const auto code = character_error_name(e);
    switch (e) {
        case CharacterError::kNameTooShort:
        case CharacterError::kNameTooLong:
        case CharacterError::kNameInvalid:
        case CharacterError::kNameReserved:
            return api::api_error(400, code,
                                  "name: breaks the naming rules of [characters] "
                                  "(length, allowed characters, reserved words).");
        case CharacterError::kInvalidData:
        case CharacterError::kBatchTooLarge:
            return api::api_error(400, code, "A value is out of range.");
        case CharacterError::kNameTaken:
            return api::api_error(409, code,
                                  "The name is another character's, or reserved after a delete "
                                  "([characters] delete_grace_days); rename the character first.");
        case CharacterError::kTooManyCharacters:
            return api::api_error(409, code,
                                  "The account has [characters] max_per_account live characters.");
        case CharacterError::kNotDeleted:
            return api::api_error(409, code, "The character is not deleted.");
        case CharacterError::kNotFound:
            return api::api_error(404, code, "No such character.");
        case CharacterError::kNoSuchAccount:
            return api::api_error(404, code, "No such account.");
        case CharacterError::kDisabled:
        case CharacterError::kUnavailable:
            return api::api_error(503, code, "The store is busy or stopping; try again shortly.");
        case CharacterError::kOk:
        case CharacterError::kStorageFailure:
            break;
    }
    return api::api_error(500, "storage_failure", "The store failed; the server log says why.");
}

void add_character_routes(api::OperatorApi& api, CharacterServiceImpl& service,
                          store::AccountStore& accounts) {
    api.add("GET", "/api/v1/characters", Access::kAdmin,
            [&service, &accounts](ApiCallPtr call, HttpResponder res) {
                list_route(service, accounts, std::move(call), std::move(res));
            });
    api.add("GET", "/api/v1/characters/{id}", Access::kAdmin,
            [&service](ApiCallPtr call, HttpResponder res) {
                if (auto id = id_of(*call, res)) {
                    service.get(*id, answer(std::move(res)));
                }
            });
    api.add("POST", "/api/v1/characters/{id}/rename", Access::kAdmin,
            [&api, &service](ApiCallPtr call, HttpResponder res) {
                auto id = id_of(*call, res);
                if (!id) {
                    return;
                }
                auto body = api::parse_object(call->request);
                if (auto* refused = std::get_if<HttpResponse>(&body)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto& o = std::get<json::object>(body);
                const auto* name = o.if_contains("name");
                if (name == nullptr || !name->is_string()) {
                    res.respond(api::api_error(400, "invalid_field", "name: must be a string"));
                    return;
                }
                service.rename(*id, std::string(name->get_string()),
                               audited(api, call, std::move(res), "character.rename",
                                       [](const CharacterRecord& c) {
                                           return json::object{{"name", c.name}};
                                       }));
            });
    api.add("POST", "/api/v1/characters/{id}/move-to-safe-spot", Access::kAdmin,
            [&api, &service](ApiCallPtr call, HttpResponder res) {
                if (auto id = id_of(*call, res)) {
                    service.move_to_safe_spot(
                        *id, audited(api, call, std::move(res), "character.move_to_safe_spot",
                                     [](const CharacterRecord& c) {
                                         return json::object{{"zone", c.position.zone},
                                                             {"x", c.position.x},
                                                             {"y", c.position.y},
                                                             {"z", c.position.z}};
                                     }));
                }
            });
    api.add("POST", "/api/v1/characters/{id}/restore", Access::kAdmin,
            [&api, &service](ApiCallPtr call, HttpResponder res) {
                if (auto id = id_of(*call, res)) {
                    service.restore(*id, audited(api, call, std::move(res), "character.restore",
                                                 [](const CharacterRecord& c) {
                                                     return json::object{{"name", c.name}};
                                                 }));
                }
            });
}

}  // namespace hearth::characters
