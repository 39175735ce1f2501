// Fuzz target: native protocol requests (src/frontends/native/protocol.hpp), as NativeConnection
// reads every message it receives.
//
// Input: byte 0 picks the settings (bit 0: a binary frame rather than text; bits 1-2: the
// max_publish_bytes in force, the default among them), the rest is the message.
//
// Per message: Request::read, then every field reader, whatever the type (each type reads a subset
// of them), with a fixed set of topic rules. Checked on every input: no crash or sanitizer report;
// a refusal has one of the documented codes; an accepted topic is non-empty, within the bound and
// in the native namespace unless a rule allows it; an accepted `data` is within max_publish_bytes
// and parses back to the value sent (numbers to within a few units in the last place: Boost.JSON
// 1.81 does not read every number correctly rounded); an accepted `to` is decimal digits; and every
// reply (error or ok, with the request's id) is valid JSON.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "frontends/native/native.hpp"
#include "frontends/native/protocol.hpp"
#include "fuzz_check.hpp"
#include "json_same.hpp"

namespace {

namespace json = boost::json;
namespace native = hearth::frontends::native;
using hearth::fuzz::check;

const native::TopicRules& rules() {
    static const native::TopicRules r({"subscribe:hunterpie:*", "publish:world:chat",
                                       "*:homestead:x*", "presence:moonshare:", "no colon",
                                       "publish:a*b"});
    return r;
}

// The reply as NativeConnection writes it; it must be valid JSON whatever the client sent.
void check_reply(std::string_view type, const native::Refusal* refusal, const json::value* id) {
    json::object r;
    r["type"] = type;
    if (refusal != nullptr) {
        r["code"] = refusal->code;
        r["message"] = refusal->message;
    }
    if (id != nullptr) {
        r["id"] = *id;
    }
    boost::system::error_code ec;
    const json::value back = json::parse(json::serialize(r), ec);
    check(!ec && hearth::fuzz::same_json(back, json::value(r)),
          "a reply that is not the JSON it was built from");
}

template <class T>
const native::Refusal* refusal_of(const native::Read<T>& read, const json::value* id) {
    const auto* refusal = std::get_if<native::Refusal>(&read);
    check_reply(refusal != nullptr ? "error" : "ok", refusal, id);
    return refusal;
}

bool is_code(const native::Refusal& r, std::string_view a, std::string_view b = {}) {
    return r.code == a || (!b.empty() && r.code == b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hearth::fuzz::Input in(data, size);
    const std::uint8_t settings = in.byte();
    const auto kind =
        (settings & 1) != 0 ? hearth::MessageKind::kBinary : hearth::MessageKind::kText;
    const std::array<std::size_t, 4> max_publish = {
        0, 1, 16, static_cast<std::size_t>(native::NativeConfig{}.max_publish_bytes)};
    const std::size_t max_bytes = max_publish[(settings >> 1) & 3];
    const std::string_view text = in.rest();

    const native::Request request = native::Request::read(kind, text);
    const json::value* id = request.id();
    if (const auto& refusal = request.refusal()) {
        check(is_code(*refusal, "invalid_json", "invalid_field"), "envelope refusal code");
        check(kind == hearth::MessageKind::kText || refusal->code == "invalid_json",
              "a binary frame read as a request");
        check_reply("error", &*refusal, id);
        return 0;
    }
    check(kind == hearth::MessageKind::kText, "a binary frame accepted");
    const json::object& msg = request.fields();
    check(request.type() == msg.at("type").get_string(), "type");
    check(id == msg.if_contains("id"), "id");

    const auto token = native::read_token(msg);
    if (const auto* r = refusal_of(token, id)) {
        check(is_code(*r, "invalid_field"), "token refusal code");
    }

    for (const auto action :
         {native::Action::kSubscribe, native::Action::kPublish, native::Action::kPresence}) {
        const auto topic = native::read_topic(msg, rules(), action);
        if (const auto* r = refusal_of(topic, id)) {
            check(is_code(*r, "invalid_field", "not_allowed"), "topic refusal code");
            continue;
        }
        const std::string_view client = msg.at("topic").get_string();
        const std::string& hub = std::get<std::string>(topic);
        check(!client.empty() && client.size() <= native::kMaxTopicBytes, "topic bound");
        check(hub.ends_with(client), "hub topic does not end with the client's");
        check(!native::is_foreign(hub) || rules().allows(action, hub),
              "another front-end's topic without a rule");
        (void)native::valid_topic_rule(client);
    }
    const auto leave = native::read_unsubscribe_topic(msg);
    if (const auto* r = refusal_of(leave, id)) {
        check(is_code(*r, "invalid_field"), "unsubscribe refusal code");
    }

    for (const std::string_view field : {"presence", "echo"}) {
        const auto flag = native::read_flag(msg, field);
        if (const auto* r = refusal_of(flag, id)) {
            check(is_code(*r, "invalid_field"), "flag refusal code");
        } else {
            const auto* v = msg.if_contains(field);
            check(std::get<bool>(flag) == (v != nullptr && v->as_bool()), "flag value");
        }
    }

    const auto payload = native::read_data(msg, max_bytes);
    if (const auto* r = refusal_of(payload, id)) {
        check(is_code(*r, "invalid_field", "too_large"), "data refusal code");
    } else {
        const std::string& serialized = std::get<std::string>(payload);
        check(serialized.size() <= max_bytes, "data over max_publish_bytes");
        boost::system::error_code ec;
        const json::value back = json::parse(serialized, ec);
        check(!ec && hearth::fuzz::same_json(back, msg.at("data")),
              "data does not parse back to what was sent");
    }

    const auto target = native::read_target(msg);
    if (const auto* r = refusal_of(target, id)) {
        check(is_code(*r, "invalid_field", "unknown_connection"), "target refusal code");
    } else {
        const std::string_view to = msg.at("to").get_string();
        check(!to.empty() && to.find_first_not_of("0123456789") == std::string_view::npos,
              "a target that is not decimal digits");
    }
    return 0;
}
