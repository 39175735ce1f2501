// Fuzz target: Moonshare player messages (docs/protocol/moonshare.md) and the .NET-compatible
// writing of the strings they carry (src/frontends/moonshare/codec.hpp). A player's text message
// is read as the player handler reads it (boost::json::parse, then the string fields by name);
// every string a client sends that the server writes back to clients (user ids, file names) goes
// through append_json_string, and user ids through stable_hash.
//
// Input: the text of one message. Its string fields are taken when it is a JSON object; otherwise
// the whole input is used as one string (invalid UTF-8 included: the writer must cope with any
// bytes).
//
// Checked on every input: no crash or sanitizer report; the JSON string written is ASCII, parses
// back, and is the text sent when that is valid UTF-8; the UTF-16 decoding pairs every surrogate;
// and stable_hash picks an instance in range.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
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
