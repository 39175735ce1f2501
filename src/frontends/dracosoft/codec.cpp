#include "frontends/dracosoft/codec.hpp"
#include <cmath>
#include <ctime>

#include <boost/json/parse.hpp>
#include <fmt/format.h>

namespace hearth::frontends::dracosoft {

namespace json = boost::json;

DecodeResult decode_frame(std::string_view bytes) noexcept {
    if (bytes.size() < kHeaderBytes) {
        return {};
    }
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::uint32_t length = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                                 (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
    if (length == 0 || length > kMaxFrameBytes) {
        return {DecodeStatus::kBadLength, 0, {}};
    }
    if (bytes.size() - kHeaderBytes < length) {
        return {};
    }
    return {DecodeStatus::kFrame, kHeaderBytes + length, bytes.substr(kHeaderBytes, length)};
}

std::string encode_frame(std::string_view payload) {
    const auto n = static_cast<std::uint32_t>(payload.size());
    std::string out;
    out.reserve(kHeaderBytes + payload.size());
    out.push_back(static_cast<char>((n >> 24) & 0xFF));
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    out.push_back(static_cast<char>((n >> 8) & 0xFF));
    out.push_back(static_cast<char>(n & 0xFF));
    out.append(payload);
    return out;
}

void FrameReader::feed(std::string_view bytes) {
    if (failed_) {
        return;
    }
    if (head_ > 0) {
        buffer_.erase(0, head_);
        head_ = 0;
    }
    if (buffer_.empty() && buffer_.capacity() > 64 * 1024) {
        std::string().swap(buffer_);  // give a large frame's memory back
    }
    buffer_.append(bytes);
}

DecodeResult FrameReader::next() noexcept {
    if (failed_) {
        return {DecodeStatus::kBadLength, 0, {}};
    }
    auto r = decode_frame(std::string_view(buffer_).substr(head_));
    if (r.status == DecodeStatus::kBadLength) {
        failed_ = true;
        std::string().swap(buffer_);
        head_ = 0;
    } else if (r.status == DecodeStatus::kFrame) {
        head_ += r.consumed;
    }
    return r;
}

// ---- Python json.dumps ----------------------------------------------------------------------

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_u(std::string& out, std::uint32_t unit) {
    out += "\\u";
    out.push_back(kHex[(unit >> 12) & 0xF]);
    out.push_back(kHex[(unit >> 8) & 0xF]);
    out.push_back(kHex[(unit >> 4) & 0xF]);
    out.push_back(kHex[unit & 0xF]);
}

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i, or U+FFFD for an
// invalid sequence (advancing one byte).
std::uint32_t next_code_point(std::string_view s, std::size_t& i) {
    const auto c0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if (c0 < 0x80) {
        ++i;
        return c0;
    } else if ((c0 & 0xE0) == 0xC0) {
        len = 2;
        cp = c0 & 0x1F;
        min = 0x80;
    } else if ((c0 & 0xF0) == 0xE0) {
        len = 3;
        cp = c0 & 0x0F;
        min = 0x800;
    } else if ((c0 & 0xF8) == 0xF0) {
        len = 4;
        cp = c0 & 0x07;
        min = 0x10000;
    } else {
        ++i;
        return 0xFFFD;
    }
    if (i + len > s.size()) {
        ++i;
        return 0xFFFD;
    }
    for (std::size_t k = 1; k < len; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) {
            ++i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        ++i;
        return 0xFFFD;
    }
    i += len;
    return cp;
}

void dump_double(std::string& out, double d) {
    if (std::isnan(d)) {
        out += "NaN";
        return;
    }
    if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
        return;
    }
    // Python's repr: the shortest round-trip digits, exponent form below 1e-4 and from 1e16
    // ("1e+16", "1e-05"), an integral value with ".0". fmt's shortest form switches at the same
    // exponents and writes the exponent the same way.
    auto s = fmt::format("{}", d);
    if (s.find_first_of(".e") == std::string::npos) {
        s += ".0";
    }
    out += s;
}

void dump(std::string& out, const json::value& v) {
    switch (v.kind()) {
        case json::kind::null:
            out += "null";
            return;
        case json::kind::bool_:
            out += v.get_bool() ? "true" : "false";
            return;
        case json::kind::int64:
            out += std::to_string(v.get_int64());
            return;
        case json::kind::uint64:
            out += std::to_string(v.get_uint64());
            return;
        case json::kind::double_:
            dump_double(out, v.get_double());
            return;
        case json::kind::string:
            py_dumps_string(out, v.get_string());
            return;
        case json::kind::array: {
            out.push_back('[');
            bool first = true;
            for (const auto& e : v.get_array()) {
                if (!first) {
                    out += ", ";
                }
                first = false;
                dump(out, e);
            }
            out.push_back(']');
            return;
        }
        case json::kind::object: {
            out.push_back('{');
            bool first = true;
            for (const auto& kv : v.get_object()) {
                if (!first) {
                    out += ", ";
                }
                first = false;
                py_dumps_string(out, kv.key());
                out += ": ";
                dump(out, kv.value());
            }
            out.push_back('}');
            return;
        }
    }
}

}  // namespace

void py_dumps_string(std::string& out, std::string_view s) {
    out.push_back('"');
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F) {
            if (c == '"') {
                out += "\\\"";
            } else if (c == '\\') {
                out += "\\\\";
            } else {
                out.push_back(static_cast<char>(c));
            }
            ++i;
            continue;
        }
        const std::uint32_t cp = next_code_point(s, i);
        switch (cp) {
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (cp >= 0x10000) {
                    const std::uint32_t v = cp - 0x10000;
                    append_u(out, 0xD800 | (v >> 10));
                    append_u(out, 0xDC00 | (v & 0x3FF));
                } else {
                    append_u(out, cp);
                }
        }
    }
    out.push_back('"');
}

std::string py_dumps(const json::value& value) {
    std::string out;
    dump(out, value);
    return out;
}

std::string iso_timestamp(std::chrono::system_clock::time_point t) {
    const auto since_epoch = t.time_since_epoch();
    const auto secs = std::chrono::floor<std::chrono::seconds>(since_epoch);
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs).count();
    const std::time_t tt = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    localtime_r(&tt, &tm);
    // Python's isoformat(), as the original sends it: no fraction when the microseconds are 0.
    if (micros == 0) {
        return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

// ---- server messages ------------------------------------------------------------------------

namespace {

// The messages are built by hand in the original's key order: cheaper than a json::object and
// identical to py_dumps of one.
void field(std::string& out, std::string_view key, std::string_view value, bool first = false) {
    if (!first) {
        out += ", ";
    }
    py_dumps_string(out, key);
    out += ": ";
    py_dumps_string(out, value);
}

}  // namespace

std::string pong_frame(std::string_view timestamp) {
    std::string out = "{";
    field(out, "type", "pong", true);
    field(out, "timestamp", timestamp);
    out += "}";
    return encode_frame(out);
}

std::string auth_response_frame(bool success, std::string_view message, std::string_view timestamp,
                                const std::optional<std::string>& token) {
    std::string out = "{";
    field(out, "type", "auth_response", true);
    out += success ? ", \"success\": true" : ", \"success\": false";
    field(out, "message", message);
    field(out, "timestamp", timestamp);
    if (token) {
        field(out, "token", *token);
    }
    out += "}";
    return encode_frame(out);
}

std::string error_frame(std::string_view message, std::string_view timestamp) {
    std::string out = "{";
    field(out, "type", "error", true);
    field(out, "message", message);
    field(out, "timestamp", timestamp);
    out += "}";
    return encode_frame(out);
}

std::string chat_frame(std::string_view from, std::string_view message,
                       std::string_view timestamp) {
    std::string out = "{";
    field(out, "type", "chat", true);
    field(out, "from", from);
    field(out, "message", message);
    field(out, "timestamp", timestamp);
    out += "}";
    return encode_frame(out);
}

// ---- client messages ------------------------------------------------------------------------

Parsed parse_message(std::string_view payload) {
    Parsed out;
    json::parse_options options;
    options.max_depth = 1000;  // Python's default recursion limit bounds the original about here
    boost::system::error_code ec;
    auto v = json::parse(payload, ec, {}, options);
    if (ec) {
        out.error = ParseError::kInvalidJson;
        return out;
    }
    if (!v.is_object()) {
        out.error = ParseError::kNotObject;
        return out;
    }
    out.object = std::move(v.get_object());
    return out;
}

std::optional<std::string> string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string() || v->get_string().empty()) {
        return std::nullopt;
    }
    return std::string(v->get_string());
}

}  // namespace hearth::frontends::dracosoft
