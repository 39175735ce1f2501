#include "frontends/moonshare/codec.hpp"
#include <cstdio>
#include <ctime>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace hearth::frontends::moonshare {

namespace json = boost::json;

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

void append_u(std::string& out, char16_t u) {
    out += "\\u";
    out += kHex[(u >> 12) & 0xF];
    out += kHex[(u >> 8) & 0xF];
    out += kHex[(u >> 4) & 0xF];
    out += kHex[u & 0xF];
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for_each_utf16(s, [&out](char16_t u) {
        switch (u) {
            case u'\\':
                out += "\\\\";
                return;
            case u'\b':
                out += "\\b";
                return;
            case u'\t':
                out += "\\t";
                return;
            case u'\n':
                out += "\\n";
                return;
            case u'\f':
                out += "\\f";
                return;
            case u'\r':
                out += "\\r";
                return;
            case u'"':
            case u'&':
            case u'\'':
            case u'+':
            case u'<':
            case u'>':
            case u'`':
                append_u(out, u);
                return;
            default:
                break;
        }
        if (u < 0x20 || u >= 0x7F) {
            append_u(out, u);
        } else {
            out += static_cast<char>(u);
        }
    });
    out += '"';
}

std::string json_string(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    append_json_string(out, s);
    return out;
}

std::string timespan(std::chrono::seconds value) {
    std::string out;
    long long total = value.count();
    if (total < 0) {
        out += '-';
        total = -total;
    }
    const long long days = total / 86'400;
    const long long h = (total / 3600) % 24;
    const long long m = (total / 60) % 60;
    const long long sec = total % 60;
    char buf[64];
    if (days > 0) {
        std::snprintf(buf, sizeof buf, "%lld.%02lld:%02lld:%02lld", days, h, m, sec);
    } else {
        std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", h, m, sec);
    }
    return out + buf;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ticks =
        duration_cast<duration<long long, std::ratio<1, 10'000'000>>>(t.time_since_epoch());
    long long secs = ticks.count() / 10'000'000;
    long long frac = ticks.count() % 10'000'000;
    if (frac < 0) {
        frac += 10'000'000;
        --secs;
    }
    const auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%07lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return buf;
}

std::uint32_t stable_hash(std::string_view utf8) {
    std::uint32_t h = 23;  // unsigned: the same bits as .NET's unchecked int arithmetic
    for_each_utf16(utf8, [&h](char16_t u) { h = h * 31u + static_cast<std::uint32_t>(u); });
    const auto signed_h = static_cast<std::int32_t>(h);
    if (signed_h == INT32_MIN) {
        return 2'147'483'648u;
    }
    return static_cast<std::uint32_t>(signed_h < 0 ? -signed_h : signed_h);
}

// ---- parsing ------------------------------------------------------------------------------------

namespace {

std::optional<std::string_view> string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) {
        return std::nullopt;
    }
    return std::string_view(v->get_string());
}

PlayerMessageType type_of(std::string_view type) {
    static constexpr std::pair<std::string_view, PlayerMessageType> kTypes[] = {
        {"session_auth", PlayerMessageType::kSessionAuth},
        {"list_online", PlayerMessageType::kListOnline},
        {"connect", PlayerMessageType::kConnect},
        {"connect_accept", PlayerMessageType::kConnectAccept},
        {"connect_reject", PlayerMessageType::kConnectReject},
        {"file_send_begin", PlayerMessageType::kFileSendBegin},
        {"file_send_complete", PlayerMessageType::kFileSendComplete},
        {"disconnect", PlayerMessageType::kDisconnect},
    };
    for (const auto& [name, t] : kTypes) {
        if (name == type) {
            return t;
        }
    }
    return PlayerMessageType::kUnknown;
}

void read_session_auth(const json::object& o, PlayerMessage& m) {
    const auto token = string_field(o, "token");
    const auto user = string_field(o, "userId");
    m.token = token.value_or("");
    m.user_id = user.value_or("");
    if (m.token.empty()) {
        m.error = PlayerMessageError::kTokenMissing;
    } else if (m.user_id.empty() || m.user_id.size() > kMaxUserIdBytes) {
        m.error = PlayerMessageError::kUserIdInvalid;
    }
}

void read_target(const json::object& o, PlayerMessage& m) {
    const auto target = string_field(o, "targetUserId");
    if (!target) {
        m.error = PlayerMessageError::kTargetMissing;
    } else if (target->size() > kMaxUserIdBytes) {
        m.error = PlayerMessageError::kTargetTooLong;
    } else {
        m.target = *target;
    }
}

void read_file_send_begin(const json::object& o, PlayerMessage& m) {
    const auto target = string_field(o, "targetUserId");
    const auto name = string_field(o, "fileName");
    const auto* size = o.if_contains("fileSize");
    std::optional<std::uint64_t> n;
    if (size != nullptr) {
        if (size->is_int64() && size->get_int64() >= 0) {
            n = static_cast<std::uint64_t>(size->get_int64());
        } else if (size->is_uint64()) {
            n = size->get_uint64();
        }
    }
    if (!target || target->empty() || target->size() > kMaxUserIdBytes || !name || name->empty() ||
        !n) {
        m.error = PlayerMessageError::kFileParametersMissing;
        return;
    }
    if (name->size() > kMaxFileNameBytes) {
        m.error = PlayerMessageError::kFileNameTooLong;
        return;
    }
    m.target = *target;
    m.file_name = *name;
    m.file_size = *n;
}

}  // namespace

std::variant<PlayerMessage, PlayerParseError> parse_player_message(std::string_view text) {
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    const json::object* o = !ec && v.is_object() ? &v.get_object() : nullptr;
    const auto type = o != nullptr ? string_field(*o, "type") : std::nullopt;
    if (!type) {
        return PlayerParseError::kNotProtocol;
    }
    PlayerMessage m;
    m.type = type_of(*type);
    m.type_name = *type;
    switch (m.type) {
        case PlayerMessageType::kSessionAuth:
            read_session_auth(*o, m);
            break;
        case PlayerMessageType::kConnect:
        case PlayerMessageType::kConnectAccept:
        case PlayerMessageType::kConnectReject:
            read_target(*o, m);
            break;
        case PlayerMessageType::kFileSendBegin:
            read_file_send_begin(*o, m);
            break;
        default:
            break;
    }
    return m;
}

// ---- encoding -----------------------------------------------------------------------------------

std::string encode_auth_result(bool success, std::string_view message,
                               std::optional<std::string_view> user) {
    JsonObject o;
    o.str("type", "session_auth_result").boolean("success", success).str("message", message);
    if (user) {
        o.str("userId", *user);
    }
    return o.done();
}

std::string encode_connection_info(std::string_view instance) {
    return JsonObject()
        .str("type", "connection_info")
        .str("message", "You are connected through instance " + std::string(instance))
        .done();
}

std::string encode_online(const std::vector<std::string>& users) {
    std::string out = "ONLINE:[";
    bool first = true;
    for (const auto& user : users) {
        std::string entry = json_string(user);
        if (out.size() + (first ? 0 : 1) + entry.size() + 1 > kClientBuffer) {
            break;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        out += entry;
    }
    out += ']';
    return out;
}

std::string encode_user_list_update(const std::vector<std::string>& users) {
    std::string out = R"({"type":"user_list_update","users":[)";
    bool first = true;
    for (const auto& user : users) {
        std::string entry = JsonObject().str("userId", user).str("userName", user).done();
        if (out.size() + (first ? 0 : 1) + entry.size() + 2 > kClientBuffer) {
            break;
        }
        if (!first) {
            out += ',';
        }
        first = false;
        out += entry;
    }
    out += "]}";
    return out;
}

std::string encode_disconnected(std::string_view user) {
    return JsonObject().str("type", "disconnected").str("userId", user).done();
}

std::string encode_connect_request(std::string_view from) {
    return JsonObject().str("type", "connect_request").str("fromUserId", from).done();
}

std::string encode_connect_answer(bool accepted, std::string_view with) {
    return JsonObject()
        .str("type", accepted ? "connect_accepted" : "connect_rejected")
        .str("withUserId", with)
        .done();
}

std::string encode_file_send_begin(std::string_view name, std::string_view from,
                                   std::uint64_t size) {
    return JsonObject()
        .str("type", "file_send_begin")
        .str("fileName", name)
        .str("fromUserId", from)
        .num("fileSize", static_cast<std::int64_t>(size))
        .done();
}

std::string encode_file_send_complete(std::string_view name, std::string_view from) {
    return JsonObject()
        .str("type", "file_send_complete")
        .str("fileName", name)
        .str("fromUserId", from)
        .done();
}

std::string encode_session_token(std::string_view token) {
    return JsonObject().str("type", "session_token").str("token", token).done();
}

std::string encode_token(std::string_view token) {
    return JsonObject().str("token", token).done();
}

std::string encode_error(std::string_view message) {
    return JsonObject().str("error", message).done();
}

}  // namespace hearth::frontends::moonshare
