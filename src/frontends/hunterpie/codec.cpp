#include "frontends/hunterpie/codec.hpp"
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "frontends/hunterpie/message.hpp"

namespace hearth::frontends::hunterpie {

namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 5> kLevels = {"trace", "debug", "info", "warn", "error"};

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string quoted(std::string_view s) {
    return json::serialize(json::string_view(s.data(), s.size()));
}

SessionIdState state_of(const Fields::Field& f) {
    switch (f.kind) {
        case Fields::Field::Kind::kString:
            return SessionIdState::kValid;
        case Fields::Field::Kind::kTooLong:
            return SessionIdState::kTooLong;
        default:
            return SessionIdState::kMissing;
    }
}

}  // namespace

ClientMessage parse_client_message(bool binary, std::string_view text) {
    if (!binary && text == "ping") {
        return Ping{};
    }
    if (binary) {
        return ClientError::kBinary;
    }
    Fields msg;
    if (!read_fields(text, msg) || !msg.object || !msg.type.is_string()) {
        return ClientError::kInvalid;
    }
    std::string type = lowercase(msg.type.text);
    if (type == "setsession") {
        SetSession m;
        m.state = state_of(msg.session_id);
        if (m.state == SessionIdState::kValid && msg.session_id.text.empty()) {
            m.state = SessionIdState::kMissing;
        }
        if (m.state == SessionIdState::kValid) {
            m.session_id = std::move(msg.session_id.text);
        }
        m.leader = msg.is_leader.kind == Fields::Field::Kind::kTrue;
        return m;
    }
    if (type == "push") {
        Push m;
        m.state = state_of(msg.session_id);
        if (m.state == SessionIdState::kValid) {
            m.session_id = std::move(msg.session_id.text);
        }
        return m;
    }
    if (type == "leavesession") {
        return LeaveSession{};
    }
    if (type == "setname") {
        SetName m;
        if (msg.name.is_string()) {
            m.name = std::move(msg.name.text);
        }
        return m;
    }
    return OtherType{std::move(type)};
}

std::variant<ServermsgRequest, ServermsgError> parse_servermsg_request(std::string_view body) {
    boost::system::error_code ec;
    const json::value parsed = json::parse(body, ec);
    if (ec || !parsed.is_object()) {
        return ServermsgError::kInvalidJson;
    }
    const auto& o = parsed.get_object();
    const auto* text = o.if_contains("text");
    const auto* level = o.if_contains("level");
    const auto* session = o.if_contains("sessionId");
    if (text == nullptr || !text->is_string()) {
        return ServermsgError::kInvalidText;
    }
    if (level == nullptr || !level->is_string() ||
        std::find(kLevels.begin(), kLevels.end(), std::string_view(level->get_string())) ==
            kLevels.end()) {
        return ServermsgError::kInvalidLevel;
    }
    if (session != nullptr && !session->is_string()) {
        return ServermsgError::kInvalidSessionId;
    }
    ServermsgRequest r;
    r.text = std::string(text->get_string());
    r.level = std::string(level->get_string());
    if (session != nullptr) {
        r.session_id = std::string(session->get_string());
    }
    return r;
}

ApiError servermsg_error(ServermsgError error) noexcept {
    switch (error) {
        case ServermsgError::kInvalidJson:
            return {"invalid_json", "The body is not a JSON object."};
        case ServermsgError::kInvalidText:
            return {"invalid_field", "\"text\" must be a string."};
        case ServermsgError::kInvalidLevel:
            return {"invalid_field", "\"level\" must be one of trace, debug, info, warn, error."};
        case ServermsgError::kInvalidSessionId:
            return {"invalid_field", "\"sessionId\" must be a string."};
    }
    return {"invalid_json", "The body is not a JSON object."};
}

std::string encode_servermsg(std::string_view level, std::string_view text) {
    return R"({"type":"servermsg","level":)" + quoted(level) + R"(,"text":)" + quoted(text) + "}";
}

std::string encode_sessionstate(bool leader_connected, std::size_t players) {
    return std::string(R"({"type":"sessionstate","leaderConnected":)") +
           (leader_connected ? "true" : "false") + R"(,"playersCount":)" + std::to_string(players) +
           "}";
}

std::string encode_unexpected_type(std::string_view type) {
    return encode_servermsg("warn", "unexpected message type " + std::string(type) + "!");
}

std::string encode_delivered(std::size_t delivered) {
    return R"({"delivered":)" + std::to_string(delivered) + "}";
}

std::string encode_status_page(std::size_t sessions, std::int64_t sockets,
                               std::uint64_t pushed_bytes, std::chrono::duration<double> uptime) {
    char up[64];
    std::snprintf(up, sizeof up, "%.2f", uptime.count());
    return "Sever is OK!<br>Active sessions: " + std::to_string(sessions) +
           "<br>Active sockets: " + std::to_string(sockets) +
           "<br>Data pushed total: " + std::to_string(pushed_bytes) + " Bytes<br>Uptime: " + up +
           " sec";
}

}  // namespace hearth::frontends::hunterpie
