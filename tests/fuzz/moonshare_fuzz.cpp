// Fuzz target: Moonshare player messages (docs/protocol/moonshare.md) and the .NET-compatible
// writing of the strings they carry (src/frontends/moonshare/codec.hpp). A player's text message
// is read as the player handler reads it (parse_player_message, over boost::json::parse);
// every string a client sends that the server writes back to clients (user ids, file names) goes
// through append_json_string, and user ids through stable_hash.
//
// Input: the text of one message. Its string fields are taken when it is a JSON object; otherwise
// the whole input is used as one string (invalid UTF-8 included: the writer must cope with any
// bytes).
//
// Checked on every input: no crash or sanitizer report; the JSON string written is ASCII, parses
// back, and is the text sent when that is valid UTF-8; the UTF-16 decoding pairs every surrogate;
// stable_hash picks an instance in range; and parse_player_message reads a protocol message exactly
// when json::parse finds an object with a string "type", keeping no field over its bound.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "frontends/moonshare/codec.hpp"
#include "fuzz_check.hpp"
#include "util/utf8.hpp"

namespace {

namespace json = boost::json;
namespace ms = hearth::frontends::moonshare;
using hearth::fuzz::check;

void check_string(std::string_view s, bool valid_utf8) {
    const std::string written = ms::json_string(s);
    for (const char c : written) {
        check(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F,
              "a written string that is not printable ASCII");
    }
    boost::system::error_code ec;
    const json::value back = json::parse(written, ec);
    check(!ec && back.is_string(), "a written string that is not a JSON string");
    if (valid_utf8) {
        check(back.get_string() == s, "a written string that reads back differently");
    }

    bool high = false;  // a high surrogate waits for its low one
    std::size_t units = 0;
    ms::for_each_utf16(s, [&](char16_t u) {
        ++units;
        if (u >= 0xD800 && u <= 0xDBFF) {
            check(!high, "two high surrogates");
            high = true;
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            check(high, "a low surrogate alone");
            high = false;
        } else {
            check(!high, "a high surrogate alone");
        }
    });
    check(!high && units <= s.size(), "UTF-16 decoding");

    check(ms::stable_hash(s) <= 2'147'483'648u, "stable_hash out of range");
    check(ms::instance_of(s, 3) < 3 && ms::instance_of(s, 0) == 0, "instance out of range");
}

// parse_player_message: a protocol message exactly when the input is a JSON object with a string
// "type"; the fields it keeps within their bounds, and none kept with an error that excludes them.
void check_message(std::string_view text, const json::value& v, bool parsed) {
    const auto r = ms::parse_player_message(text);
    const auto* m = std::get_if<ms::PlayerMessage>(&r);
    const bool protocol = parsed && v.is_object() &&
                          v.get_object().if_contains("type") != nullptr &&
                          v.get_object().at("type").is_string();
    check((m != nullptr) == protocol, "a protocol message read differently");
    if (m == nullptr) {
        return;
    }
    check(m->type_name == std::string_view(v.get_object().at("type").get_string()), "type name");
    if (m->error == ms::PlayerMessageError::kNone) {
        check(m->target.size() <= ms::kMaxUserIdBytes, "a target over the bound kept");
        check(m->file_name.size() <= ms::kMaxFileNameBytes, "a file name over the bound kept");
        if (m->type == ms::PlayerMessageType::kSessionAuth) {
            check(!m->token.empty() && !m->user_id.empty() &&
                      m->user_id.size() <= ms::kMaxUserIdBytes,
                  "a session_auth accepted without its fields");
        }
    } else {
        check(m->target.empty() && m->file_name.empty(), "fields kept with an error");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    check_message(text, v, !ec);
    if (ec || !v.is_object()) {
        check_string(text, hearth::util::valid_utf8(text));
        return 0;
    }
    for (const auto& field : v.get_object()) {
        if (field.value().is_string()) {
            check_string(field.value().get_string(), true);  // JSON strings are valid UTF-8
        }
    }
    return 0;
}
