#include "frontends/native/protocol.hpp"
#include <charconv>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/json_numbers.hpp"

namespace hearth::frontends::native {

namespace json = boost::json;

namespace {

// Namespaces of the other front-ends (ARCHITECTURE.md, "Topics and who may use them").
constexpr std::string_view kForeignNamespaces[] = {
    "hunterpie:", "homestead:", "moonshare:", "dracosoft:", "world:"};

// Parses "ACTION:TOPIC"; returns false when malformed.
bool parse_rule(std::string_view text, bool& any, Action& action, std::string& pattern,
                bool& prefix) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon + 1 == text.size()) {
        return false;
    }
    const auto verb = text.substr(0, colon);
    any = verb == "*";
    if (verb == "subscribe") {
        action = Action::kSubscribe;
    } else if (verb == "publish") {
        action = Action::kPublish;
    } else if (verb == "presence") {
        action = Action::kPresence;
    } else if (!any) {
        return false;
    }
    auto topic = text.substr(colon + 1);
    prefix = topic.ends_with('*');
    if (prefix) {
        topic.remove_suffix(1);
    }
    if (topic.find('*') != std::string_view::npos) {
        return false;
    }
    pattern = std::string(topic);
    return true;
}

Refusal invalid_field(std::string message) {
    return {"invalid_field", std::move(message)};
}

}  // namespace

TopicRules::TopicRules(const std::vector<std::string>& rules) {
    for (const auto& r : rules) {
        Rule rule{};
        if (parse_rule(r, rule.any_action, rule.action, rule.pattern, rule.prefix)) {
            rules_.push_back(std::move(rule));
        }
    }
}

bool TopicRules::allows(Action action, std::string_view topic) const {
    for (const auto& r : rules_) {
        if (!r.any_action && r.action != action) {
            continue;
        }
        if (r.prefix ? topic.starts_with(r.pattern) : topic == r.pattern) {
            return true;
        }
    }
    return false;
}

bool valid_topic_rule(std::string_view rule) {
    bool any = false;
    Action action{};
    std::string pattern;
    bool prefix = false;
    return parse_rule(rule, any, action, pattern, prefix);
}

std::string hub_topic(std::string_view client_topic) {
    for (auto ns : kForeignNamespaces) {
        if (client_topic.starts_with(ns)) {
            return std::string(client_topic);
        }
    }
    return std::string(kNativePrefix) + std::string(client_topic);
}

bool is_foreign(std::string_view topic) {
    return !topic.starts_with(kNativePrefix);
}

Request Request::read(MessageKind kind, std::string_view data) {
    Request r;
    if (kind != MessageKind::kText) {
        r.refusal_ =
            Refusal{"invalid_json", "Messages are JSON text; binary frames are not accepted."};
        return r;
    }
    boost::system::error_code ec;
    r.document_ = json::parse(json::string_view(data.data(), data.size()), ec);
    if (ec || !r.document_.is_object()) {
        r.refusal_ = Refusal{"invalid_json", ec ? "The message is not valid JSON."
                                                : "The message is not a JSON object."};
        return r;
    }
    if (!core::finite_numbers(r.document_)) {
        // Written back out (a publish's data, the id in the reply) it would be `Infinity`, which
        // no recipient can parse. Not even the id is echoed.
        r.document_ = nullptr;
        r.refusal_ =
            Refusal{"invalid_json", "The message holds a number out of range (beyond a double's)."};
        return r;
    }
    const json::value* type = r.document_.get_object().if_contains("type");
    if (type == nullptr || !type->is_string()) {
        r.refusal_ = invalid_field("Field \"type\" is missing or not a string.");
    }
    return r;
}

const json::value* Request::id() const {
    return document_.is_object() ? document_.get_object().if_contains("id") : nullptr;
}

std::string_view Request::type() const {
    return document_.get_object().at("type").get_string();
}

Read<std::optional<std::string>> read_token(const json::object& request) {
    const auto* token = request.if_contains("token");
    if (token == nullptr || token->is_null()) {
        return std::nullopt;
    }
    if (!token->is_string()) {
        return invalid_field("Field \"token\" must be a string.");
    }
    return std::optional<std::string>(std::string(token->get_string()));
}

Read<std::string> read_topic(const json::object& request, const TopicRules& rules, Action action) {
    const auto* topic = request.if_contains("topic");
    if (topic == nullptr || !topic->is_string() || topic->get_string().empty()) {
        return invalid_field("Field \"topic\" is missing or not a non-empty string.");
    }
    const std::string_view t = topic->get_string();
    if (t.size() > kMaxTopicBytes) {
        return invalid_field("Field \"topic\" is longer than 256 bytes.");
    }
    auto hub = hub_topic(t);
    if (is_foreign(hub) && !rules.allows(action, hub)) {
        return Refusal{"not_allowed",
                       "Topic \"" + std::string(t) + "\" belongs to another front-end."};
    }
    return hub;
}

Read<std::string> read_unsubscribe_topic(const json::object& request) {
    const auto* topic = request.if_contains("topic");
    if (topic == nullptr || !topic->is_string() || topic->get_string().empty()) {
        return invalid_field("Field \"topic\" is missing or not a non-empty string.");
    }
    return hub_topic(topic->get_string());
}

Read<bool> read_flag(const json::object& request, std::string_view field) {
    const auto* v = request.if_contains(field);
    if (v == nullptr) {
        return false;
    }
    if (!v->is_bool()) {
        return invalid_field("Field \"" + std::string(field) + "\" must be a boolean.");
    }
    return v->get_bool();
}

Read<std::string> read_data(const json::object& request, std::size_t max_bytes) {
    const auto* data = request.if_contains("data");
    if (data == nullptr) {
        return invalid_field("Field \"data\" is missing.");
    }
    std::string serialized = json::serialize(*data);
    if (serialized.size() > max_bytes) {
        return Refusal{"too_large",
                       "Field \"data\" is larger than " + std::to_string(max_bytes) + " bytes."};
    }
    return serialized;
}

Read<std::uint64_t> read_target(const json::object& request) {
    const auto* to = request.if_contains("to");
    if (to == nullptr || !to->is_string()) {
        return invalid_field("Field \"to\" is missing or not a string.");
    }
    const std::string_view text = to->get_string();
    std::uint64_t target = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), target);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return Refusal{"unknown_connection", "No connection \"" + std::string(text) + "\"."};
    }
    return target;
}

}  // namespace hearth::frontends::native
