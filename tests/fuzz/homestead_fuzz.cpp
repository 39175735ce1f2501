// Fuzz target: the Homestead gateway's client input (src/frontends/homestead/codec.hpp): the
// handshake, chat messages (read by Homestead's own Go-compatible JSON reader), the query string
// of the upgrade request, and the frames built from what a message carried.
//
// Input: the text of a message. When it holds a NUL byte, the part before it is also tried as the
// handshake that the message follows; the message is always tried after a fixed mod handshake and
// a fixed bot handshake as well.
//
// Checked on every input: no crash or sanitizer report; a handshake accepted has its ids, a refused
// one its error frame; a message accepted has every required field, a valid `ts` (or none) and a
// `meta` that is a compact JSON object; the frame forwarded to its recipient is one line of valid
// JSON carrying the message's fields, and the mailbox accepts its prefix as one it wrote.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "frontends/homestead/codec.hpp"
#include "fuzz_check.hpp"
#include "util/utf8.hpp"

namespace {

namespace json = boost::json;
namespace hs = hearth::frontends::homestead;
using hearth::fuzz::check;

// `json` with every \uXXXX escape of a surrogate (paired or not) replaced by \ufffd.
std::string without_surrogates(std::string_view json) {
    std::string out(json);
    for (std::size_t i = 0; i + 1 < out.size(); ++i) {
        if (out[i] != '\\') {
            continue;
        }
        if (out[i + 1] == 'u' && i + 5 < out.size() && (out[i + 2] == 'd' || out[i + 2] == 'D') &&
            std::string_view("89abcdefABCDEF").find(out[i + 3]) != std::string_view::npos) {
            out.replace(i + 2, 4, "fffd");
        }
        ++i;  // the escaped character is not the start of an escape
    }
    return out;
}

// A string field of the forwarded frame: what was sent, or U+FFFD for its invalid UTF-8.
void check_string(const json::object& frame, std::string_view key, std::string_view sent) {
    const auto* v = frame.if_contains(key);
    check(v != nullptr && v->is_string(), "a forwarded field missing");
    if (hearth::util::valid_utf8(sent)) {
        check(v->get_string() == sent, "a forwarded field changed");
    }
}

void check_message(const hs::Handshake& handshake, std::string_view text) {
    const auto m = hs::parse_message(handshake, text);
    if (!m) {
        return;
    }
    check(!m->msg_id.empty() && !m->author_id.empty() && !m->content.empty() &&
              !m->channel_id.empty(),
          "a message accepted without a required field");
    check(handshake.kind == hs::Kind::kBot || m->channel_id == handshake.channel_id,
          "a mod's message to another channel");
    check(m->ts.empty() || hs::valid_rfc3339(m->ts), "an invalid ts accepted");
    check(hs::compact_json(m->meta) == m->meta, "meta not compact");
    const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'765'000'000));
    const std::string prefix = hs::encode_forward_prefix(handshake.kind, *m, now);
    check(hs::valid_forward_prefix(prefix), "the mailbox would drop a prefix this version wrote");
    const std::string frame = hs::finish_forward(prefix, now);
    check(frame.ends_with("}\n") && frame.find('\n') == frame.size() - 1,
          "a forwarded frame that is not one line");

    // Checked with boost.json, which is stricter than Go's reader that Homestead follows: it nests
    // 32 deep (Go 10,000; deeper is left to the reader's own tests) and refuses surrogate escapes
    // that do not pair, such as "\ud800" (Go reads U+FFFD; meta is forwarded with its escapes as
    // sent), so those are made U+FFFD escapes first, in the meta and in the frame alike.
    boost::system::error_code ec;
    const json::value meta = json::parse(without_surrogates(m->meta), ec);
    if (ec == json::error::too_deep) {
        return;
    }
    check(!ec && meta.is_object(), "meta is not a JSON object");
    const json::value v =
        json::parse(without_surrogates(std::string_view(frame).substr(0, frame.size() - 1)), ec);
    if (ec == json::error::too_deep) {
        return;
    }
    check(!ec && v.is_object(), "a forwarded frame that is not a JSON object");
    const json::object& o = v.get_object();
    check_string(o, "channel_id", m->channel_id);
    check_string(o, "content", m->content);
    const auto* author = o.if_contains("author");
    check(author != nullptr && author->is_object(), "author");
    check_string(author->get_object(), "id", m->author_id);
    check_string(author->get_object(), "name", m->author_name);
    check(o.at("meta") == meta, "meta changed on the way");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    const auto handshake = hs::parse_handshake(text);
    if (const auto* ok = std::get_if<hs::Handshake>(&handshake)) {
        check(ok->kind == hs::Kind::kMod ? !ok->server_id.empty() && !ok->channel_id.empty()
                                         : !ok->bot_id.empty(),
              "a handshake accepted without its ids");
    } else {
        const std::string_view frame =
            hs::handshake_error_frame(std::get<hs::HandshakeError>(handshake));
        check(frame.ends_with("}\n"), "handshake error frame");
    }

    hs::Handshake mod{hs::Kind::kMod, "server-1", "channel-1", {}};
    hs::Handshake bot{hs::Kind::kBot, {}, {}, "bot-1"};
    check_message(mod, text);
    check_message(bot, text);
    if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        const auto own = hs::parse_handshake(text.substr(0, nul));
        if (const auto* ok = std::get_if<hs::Handshake>(&own)) {
            check_message(*ok, text.substr(nul + 1));
        }
    }

    // The upgrade request's query string (api_key, and what else a client puts there).
    for (const std::string_view key : {"api_key", "", "type"}) {
        if (const auto v = hs::query_value(text, key)) {
            check(v->size() <= text.size(), "a query value longer than the query");
        }
    }
    (void)hs::valid_rfc3339(text);
    return 0;
}
