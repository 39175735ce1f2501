#include "api/runtime_api.hpp"
#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>
#include <variant>

#include <boost/json/array.hpp>

#include <hearth/store.hpp>

#include "api/event_stream.hpp"
#include "core/events.hpp"
#include "hub/hub.hpp"
#include "util/time.hpp"

namespace hearth::api {

namespace json = boost::json;

namespace {

json::object connection_json(const ConnectionInfo& c) {
    json::object o;
    o["id"] = to_string(c.id);
    o["kind"] = c.kind;
    o["frontend"] = c.frontend;
    o["listener"] = c.listener;
    if (!c.route.empty()) {
        o["route"] = c.route;
    }
    o["peer"] = c.peer;
    if (c.principal.empty()) {
        o["principal"] = nullptr;
    } else {
        o["principal"] = c.principal;
    }
    o["since"] = rfc3339(c.since);
    o["bytes_in"] = c.bytes_in;
    o["bytes_out"] = c.bytes_out;
    return o;
}

void add_connection_routes(OperatorApi& api, ConnectionDirectory& directory) {
    api.add("GET", "/api/v1/connections", Access::kAdmin,
            [&directory](ApiCallPtr call, HttpResponder res) {
                const auto& req = call->request;
                auto limit = parse_limit(req, 100, 1000);
                if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto page = std::get<std::size_t>(limit);
                auto cursor = parse_id_cursor(req);
                if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const std::uint64_t after =
                    std::get<std::optional<std::uint64_t>>(cursor).value_or(0);
                const auto frontend = req.query_param("frontend").value_or("");
                const auto principal = req.query_param("principal").value_or("");
                // The network layer answers with every open connection (bounded by the
                // listeners' limits); the page is cut here, by id.
                directory.list_connections([res, page, after, frontend,
                                            principal](std::vector<ConnectionInfo> all) mutable {
                    json::array items;
                    std::optional<std::string> next;
                    for (const auto& c : all) {
                        if (static_cast<std::uint64_t>(c.id) <= after ||
                            (!frontend.empty() && c.frontend != frontend) ||
                            (!principal.empty() && c.principal != principal)) {
                            continue;
                        }
                        if (items.size() == page) {
                            next = std::string(items.back().at("id").as_string());
                            break;
                        }
                        items.push_back(connection_json(c));
                    }
                    res.respond(page_response(std::move(items), next));
                });
            });
    api.add("DELETE", "/api/v1/connections/{id}", Access::kAdmin,
            [&api, &directory](ApiCallPtr call, HttpResponder res) {
                const auto id = parse_id(call->params.at("id"));
                if (!id) {
                    res.respond(api_error(404, "not_found", "No such connection."));
                    return;
                }
                directory.kick_connection(
                    static_cast<ConnectionId>(*id),
                    [&api, call, res, id = *id](bool found) mutable {
                        if (!found) {
                            res.respond(api_error(404, "not_found", "No such connection."));
                            return;
                        }
                        api.audit(*call, "connection.kick", "connection:" + std::to_string(id));
                        json::object o;
                        o["id"] = std::to_string(id);
                        o["kicked"] = true;
                        res.respond(json_response(200, o));
                    });
            });
}

void add_topic_routes(OperatorApi& api, hub::Hub& hub) {
    api.add("GET", "/api/v1/topics", Access::kAdmin, [&hub](ApiCallPtr call, HttpResponder res) {
        const auto& req = call->request;
        auto limit = parse_limit(req, 100, 1000);
        if (auto* refused = std::get_if<HttpResponse>(&limit)) {
            res.respond(std::move(*refused));
            return;
        }
        const auto page = std::get<std::size_t>(limit);
        const auto prefix = req.query_param("prefix").value_or("");
        const auto after = req.query_param("cursor").value_or("");
        // The hub answers with every topic (its count is bounded by its limits); the page is cut
        // here, by name.
        hub.list_topics(
            std::numeric_limits<std::size_t>::max(),
            [res, page, prefix, after](std::vector<hub::Hub::TopicInfo> all) mutable {
                json::array items;
                std::optional<std::string> next;
                for (const auto& t : all) {
                    if (!t.topic.starts_with(prefix) || (!after.empty() && t.topic <= after)) {
                        continue;
                    }
                    if (items.size() == page) {
                        next = std::string(items.back().at("topic").as_string());
                        break;
                    }
                    json::object o;
                    o["topic"] = t.topic;
                    o["subscribers"] = t.subscribers;
                    items.push_back(std::move(o));
                }
                res.respond(page_response(std::move(items), next));
            });
    });
    api.add("GET", "/api/v1/topics/subscribers", Access::kAdmin,
            [&hub](ApiCallPtr call, HttpResponder res) {
                auto topic = call->request.query_param("topic");
                if (!topic || topic->empty()) {
                    res.respond(api_error(400, "invalid_parameter",
                                          "topic: the full topic name, e.g. native:lobby"));
                    return;
                }
                hub.topic_members(
                    *topic, [res, topic = *topic](std::vector<hub::Member> members) mutable {
                        json::array items;
                        for (const auto& m : members) {
                            json::object o;
                            o["connection"] =
                                std::to_string(static_cast<std::uint64_t>(m.connection));
                            o["principal"] = m.principal;
                            items.push_back(std::move(o));
                        }
                        json::object out;
                        out["topic"] = topic;
                        out["items"] = std::move(items);
                        res.respond(json_response(200, out));
                    });
            });
}

void add_mailbox_routes(OperatorApi& api, store::Mailboxes& mailboxes) {
    api.add("GET", "/api/v1/mailboxes", Access::kAdmin,
            [&mailboxes](ApiCallPtr call, HttpResponder res) {
                const auto& req = call->request;
                auto limit = parse_limit(req, 100, 1000);
                if (auto* refused = std::get_if<HttpResponse>(&limit)) {
                    res.respond(std::move(*refused));
                    return;
                }
                const auto page = std::get<std::size_t>(limit);
                std::optional<std::string> after;
                if (auto c = req.query_param("cursor"); c && !c->empty()) {
                    after = *c;
                }
                mailboxes.list_depths(
                    req.query_param("prefix").value_or(""), after, page + 1,
                    [res, page](Result<std::vector<store::MailboxDepth>> r) mutable {
                        if (!r) {
                            res.respond(error_response(r.error()));
                            return;
                        }
                        std::optional<std::string> next;
                        if (r->size() > page) {
                            r->resize(page);
                            next = r->back().key;
                        }
                        json::array items;
                        for (const auto& d : *r) {
                            json::object o;
                            o["key"] = d.key;
                            o["depth"] = d.depth;
                            items.push_back(std::move(o));
                        }
                        res.respond(page_response(std::move(items), next));
                    });
            });
    api.add("DELETE", "/api/v1/mailboxes", Access::kAdmin,
            [&api, &mailboxes](ApiCallPtr call, HttpResponder res) {
                auto key = call->request.query_param("key");
                if (!key || key->empty()) {
                    res.respond(api_error(400, "invalid_parameter",
                                          "key: the mailbox to purge, e.g. "
                                          "homestead:mod-to-bot:C"));
                    return;
                }
                mailboxes.remove_up_to(
                    *key, std::numeric_limits<std::uint64_t>::max(),
                    [&api, call, res, key = *key](Result<std::uint64_t> r) mutable {
                        if (!r) {
                            res.respond(error_response(r.error()));
                            return;
                        }
                        api.audit(*call, "mailbox.purge", "mailbox:" + key, {{"deleted", *r}});
                        json::object o;
                        o["key"] = key;
                        o["deleted"] = *r;
                        res.respond(json_response(200, o));
                    });
            });
}

void add_event_routes(OperatorApi& api, core::EventBus& events) {
    api.add("GET", "/api/v1/events", Access::kAdmin, [&events](ApiCallPtr call, HttpResponder res) {
        const auto& req = call->request;
        auto limit = parse_limit(req, 100, 1000);
        if (auto* refused = std::get_if<HttpResponse>(&limit)) {
            res.respond(std::move(*refused));
            return;
        }
        auto cursor = parse_id_cursor(req);
        if (auto* refused = std::get_if<HttpResponse>(&cursor)) {
            res.respond(std::move(*refused));
            return;
        }
        auto filter = parse_event_filter(req);
        if (auto* refused = std::get_if<HttpResponse>(&filter)) {
            res.respond(std::move(*refused));
            return;
        }
        const std::uint64_t after = std::get<std::optional<std::uint64_t>>(cursor).value_or(0);
        const auto page = std::get<std::size_t>(limit);
        // A tail, not a history: the bus keeps the most recent events only. The answer is the
        // newest `limit` matching events after the cursor, oldest first, and `next` is the cursor
        // to poll with for later ones (it is never null). With a filter, `next` moves past the
        // events the filter skipped too, so that polling never walks them again.
        const std::uint64_t horizon = events.next_seq() - 1;  // before the read: none missed
        auto list = events.recent(page, after, std::get<core::EventFilter>(filter));
        std::uint64_t next = list.empty() ? after : list.back().seq;
        if (list.size() < page) {
            // Fewer than a page: every event up to the horizon was looked at.
            next = std::max(next, horizon);
        }
        json::array items;
        for (const auto& e : list) {
            items.push_back(event_json(e));
        }
        res.respond(page_response(std::move(items), std::to_string(next)));
    });
}

}  // namespace

void add_runtime_routes(OperatorApi& api, ConnectionDirectory& connections, hub::Hub& hub,
                        store::Mailboxes& mailboxes, core::EventBus& events) {
    add_connection_routes(api, connections);
    add_topic_routes(api, hub);
    add_mailbox_routes(api, mailboxes);
    add_event_routes(api, events);
}

}  // namespace hearth::api
