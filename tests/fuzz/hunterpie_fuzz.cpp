// Fuzz target: HunterPie client messages (src/frontends/hunterpie/message.hpp), as every push,
// setsession and setname is read.
//
// Input: the text of one message. read_fields (simdjson, falling back to boost.json for what
// simdjson refuses) must agree exactly with read_fields_exactly (boost.json's parser with a handler
// that keeps only the protocol's fields), and both with boost::json::parse, whose acceptance they
// claim to reproduce: the same documents accepted (but for one documented difference, exponents
// beyond 32 bits), and the same four fields read (the last of duplicate keys; session ids over
// kMaxSessionIdBytes flagged, not kept). The codec's parse_client_message (codec.hpp), which the
// handler uses, must then classify the frame as those fields say. Checked too: no crash or
// sanitizer report.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "frontends/hunterpie/codec.hpp"
#include "frontends/hunterpie/message.hpp"
#include "fuzz_check.hpp"

namespace {

namespace json = boost::json;
namespace hp = hearth::frontends::hunterpie;
using Field = hp::Fields::Field;
using hearth::fuzz::check;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

// What parse_client_message makes of a text frame, checked against the exact reader's fields.
void check_classification(std::string_view text, bool exact_ok, const hp::Fields& exact) {
    check(std::holds_alternative<hp::ClientError>(hp::parse_client_message(true, text)) &&
              std::get<hp::ClientError>(hp::parse_client_message(true, text)) ==
                  hp::ClientError::kBinary,
          "a binary frame not refused as binary");
    const hp::ClientMessage m = hp::parse_client_message(false, text);
    if (text == "ping") {
        check(std::holds_alternative<hp::Ping>(m), "ping not recognised");
        return;
    }
    if (!exact_ok || !exact.object || exact.type.kind != Field::Kind::kString) {
        check(std::holds_alternative<hp::ClientError>(m) &&
                  std::get<hp::ClientError>(m) == hp::ClientError::kInvalid,
              "a frame without a string type not refused as invalid");
        return;
    }
    const std::string type = lower(exact.type.text);
    if (type == "setsession") {
        const auto* s = std::get_if<hp::SetSession>(&m);
        check(s != nullptr, "setsession misclassified");
        const bool valid =
            exact.session_id.kind == Field::Kind::kString && !exact.session_id.text.empty();
        check((s->state == hp::SessionIdState::kValid) == valid, "setsession id state");
        check(!valid || s->session_id == exact.session_id.text, "setsession id");
        check(s->leader == (exact.is_leader.kind == Field::Kind::kTrue), "setsession leader");
    } else if (type == "push") {
        const auto* p = std::get_if<hp::Push>(&m);
        check(p != nullptr, "push misclassified");
        check((p->state == hp::SessionIdState::kTooLong) ==
                  (exact.session_id.kind == Field::Kind::kTooLong),
              "push id too long");
        check(p->state != hp::SessionIdState::kValid || p->session_id == exact.session_id.text,
              "push id");
    } else if (type == "leavesession") {
        check(std::holds_alternative<hp::LeaveSession>(m), "leavesession misclassified");
    } else if (type == "setname") {
        const auto* n = std::get_if<hp::SetName>(&m);
        check(n != nullptr, "setname misclassified");
        check(n->name.has_value() == (exact.name.kind == Field::Kind::kString), "setname name");
    } else {
        const auto* o = std::get_if<hp::OtherType>(&m);
        check(o != nullptr && o->type == type, "another type misclassified");
    }
}

bool same(const Field& a, const Field& b) {
    return a.kind == b.kind && a.text == b.text;
}

// The field as json::parse's tree holds it (json::object keeps the last of duplicate keys).
void check_against_tree(const Field& f, const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        check(f.kind == Field::Kind::kAbsent, "a field read that the document does not have");
    } else if (v->is_string()) {
        const std::string_view s = v->get_string();
        if (s.size() > f.max_bytes) {
            check(f.kind == Field::Kind::kTooLong && f.text.empty(), "a long string kept");
        } else {
            check(f.kind == Field::Kind::kString && f.text == s, "a string read differently");
        }
    } else if (v->is_bool() && v->get_bool()) {
        check(f.kind == Field::Kind::kTrue, "true read differently");
    } else {
        check(f.kind == Field::Kind::kOther, "a non-string read as a string or true");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    hp::Fields fast;
    hp::Fields exact;
    const bool fast_ok = hp::read_fields(text, fast);
    const bool exact_ok = hp::read_fields_exactly(text, exact);
    boost::system::error_code ec;
    const json::value tree = json::parse(text, ec);

    check(exact_ok == !ec, "the exact reader and json::parse disagree on validity");
    if (fast_ok && !exact_ok && ec == json::error::exponent_overflow) {
        // The documented difference (docs/protocol/hunterpie.md): Boost.JSON refuses an exponent
        // that does not fit 32 bits, which simdjson (and JSON.parse) read as 0.
        return 0;
    }
    check(fast_ok == exact_ok, "the fast path and the exact reader disagree on validity");
    check_classification(text, exact_ok, exact);
    if (!exact_ok) {
        return 0;
    }
    check(fast.object == exact.object && exact.object == tree.is_object(), "object or not");
    check(same(fast.type, exact.type), "type differs");
    check(same(fast.session_id, exact.session_id), "sessionId differs");
    check(same(fast.is_leader, exact.is_leader), "isLeader differs");
    check(same(fast.name, exact.name), "name differs");
    check(exact.session_id.max_bytes == hp::kMaxSessionIdBytes, "the session id bound");
    if (tree.is_object()) {
        const json::object& o = tree.get_object();
        check_against_tree(exact.type, o, "type");
        check_against_tree(exact.session_id, o, "sessionId");
        check_against_tree(exact.is_leader, o, "isLeader");
        check_against_tree(exact.name, o, "name");
    }
    return 0;
}
