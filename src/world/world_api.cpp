#include "world/world_api.hpp"
#include <limits>
#include <string>
#include <utility>
#include <variant>

#include "util/utf8.hpp"

namespace hearth::world {

namespace json = boost::json;
using api::Access;
using api::ApiCallPtr;

namespace {

constexpr std::size_t kDefaultEntities = 500;
constexpr std::size_t kMaxEntities = 5'000;

json::object figures_json(const TickFigures& f) {
    return {{"p50", f.p50}, {"p99", f.p99}, {"max", f.max}};
}

json::object zone_json(const ZoneStatus& z) {
    return {{"id", z.id},
            {"name", z.name},
            {"width", z.width},
            {"height", z.height},
            {"players", z.players},
            {"npcs", z.npcs},
            {"tick",
             {{"window_ticks", z.window_ticks},
              {"cpu_seconds", figures_json(z.cpu)},
              {"lateness_seconds", figures_json(z.lateness)}}}};
}

json::object entity_json(const EntityRow& e) {
    return {{"id", e.id},        {"kind", e.kind == EntityKind::kPlayer ? "player" : "npc"},
            {"model", e.model},  {"name", e.name},
            {"x", e.at.x},       {"y", e.at.y},
            {"z", e.at.z},       {"hp", e.hp},
            {"max_hp", e.max_hp}};
}

HttpResponse no_such_zone() {
    return api::api_error(404, "no_such_zone", "No such zone.");
}

/// The {id} of a zone route, or nothing after answering 404.
std::optional<std::uint32_t> zone_of(const api::ApiCall& call, HttpResponder& res) {
    auto id = api::parse_id(call.params.at("id"));
    if (!id || *id > std::numeric_limits<std::uint32_t>::max()) {
        res.respond(no_such_zone());
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(*id);
}

struct Notice {
    NoticeKind kind = NoticeKind::kInfo;
    std::string kind_name;
    std::string text;
};

/// {"kind": "info"|"warning"|"shutdown" (default info), "text": 1 to 512 bytes of UTF-8}, or the
/// 400 to answer.
std::variant<Notice, HttpResponse> parse_notice(const HttpRequest& req) {
    auto body = api::parse_object(req);
    if (auto* refused = std::get_if<HttpResponse>(&body)) {
        return std::move(*refused);
    }
    const auto& o = std::get<json::object>(body);
    Notice n{.kind = NoticeKind::kInfo, .kind_name = "info", .text = {}};
    if (const auto* kind = o.if_contains("kind")) {
        const auto* s = kind->if_string();
        if (s == nullptr || (*s != "info" && *s != "warning" && *s != "shutdown")) {
            return api::api_error(400, "invalid_field", "kind: info, warning or shutdown");
        }
        n.kind_name = std::string(*s);
        n.kind = *s == "info"      ? NoticeKind::kInfo
                 : *s == "warning" ? NoticeKind::kWarning
                                   : NoticeKind::kShutdown;
    }
    const auto* text = o.if_contains("text");
    if (text == nullptr || !text->is_string() || text->get_string().empty() ||
        text->get_string().size() > kMaxNoticeBytes) {
        return api::api_error(
            400, "invalid_field",
            "text: a string of 1 to " + std::to_string(kMaxNoticeBytes) + " bytes");
    }
    n.text = std::string(text->get_string());
    if (!util::valid_utf8(n.text)) {
        return api::api_error(400, "invalid_field", "text: not valid UTF-8");
    }
    return n;
}

void notice_route(const api::OperatorApi& api, WorldServiceImpl& service,
                  std::optional<std::uint32_t> zone, const ApiCallPtr& call, HttpResponder res) {
    auto parsed = parse_notice(call->request);
    if (auto* refused = std::get_if<HttpResponse>(&parsed)) {
        res.respond(std::move(*refused));
        return;
    }
    auto& n = std::get<Notice>(parsed);
    json::object detail{{"kind", n.kind_name}, {"text", n.text}};
    if (!service.notice(zone, n.kind, std::move(n.text))) {
        res.respond(no_such_zone());
        return;
    }
    api.audit(*call, "world.notice", zone ? "zone:" + std::to_string(*zone) : "zones",
              std::move(detail));
    res.respond(api::json_response(
        202, json::object{{"zone", zone ? json::value(*zone) : json::value(nullptr)}}));
}

}  // namespace

void add_world_routes(api::OperatorApi& api, WorldServiceImpl& service) {
    api.add("GET", "/api/v1/world/zones", Access::kAdmin,
            [&service](const ApiCallPtr&, HttpResponder res) {
                service.zones([res](std::vector<ZoneStatus> zones) mutable {
                    json::array items;
                    for (const auto& z : zones) {
                        items.push_back(zone_json(z));
                    }
                    res.respond(api::json_response(200, json::object{{"items", std::move(items)}}));
                });
            });
    api.add("GET", "/api/v1/world/zones/{id}/entities", Access::kAdmin,
            [&service](const ApiCallPtr& call, HttpResponder res) {
                auto zone = zone_of(*call, res);
                if (!zone) {
                    return;
                }
                auto limit = api::parse_limit(call->request, kDefaultEntities, kMaxEntities);
                if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                    res.respond(std::move(*refused));
                    return;
                }
                auto cursor = api::parse_id_cursor(call->request);
                if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto after = std::get<std::optional<std::uint64_t>>(cursor).value_or(0);
                if (after > std::numeric_limits<EntityId>::max()) {
                    res.respond(api::api_error(400, "invalid_parameter",
                                               "cursor: not a cursor returned as \"next\""));
                    return;
                }
                const auto page = std::get<std::size_t>(limit);
                // One row more than the page: it tells whether a next page exists.
                const bool found = service.entities(
                    *zone, static_cast<EntityId>(after), page + 1,
                    [res, page](std::vector<EntityRow> rows) mutable {
                        res.respond(api::id_page_response(std::move(rows), page, entity_json));
                    });
                if (!found) {
                    res.respond(no_such_zone());
                }
            });
    api.add(
        "POST", "/api/v1/world/characters/{id}/kick", Access::kAdmin,
        [&api, &service](const ApiCallPtr& call, HttpResponder res) {
            const auto id = api::parse_id(call->params.at("id"));
            if (!id || !service.kick(*id)) {
                res.respond(api::api_error(404, "not_in_world", "No such character in the world."));
                return;
            }
            api.audit(*call, "world.kick", "character:" + std::to_string(*id));
            res.respond(api::json_response(202, json::object{{"character_id", *id}}));
        });
    api.add("POST", "/api/v1/world/zones/{id}/notice", Access::kAdmin,
            [&api, &service](const ApiCallPtr& call, HttpResponder res) {
                if (auto zone = zone_of(*call, res)) {
                    notice_route(api, service, zone, call, std::move(res));
                }
            });
    api.add("POST", "/api/v1/world/notice", Access::kAdmin,
            [&api, &service](const ApiCallPtr& call, HttpResponder res) {
                notice_route(api, service, std::nullopt, call, std::move(res));
            });
}

}  // namespace hearth::world
