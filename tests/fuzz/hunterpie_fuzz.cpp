// Fuzz target: HunterPie client messages (src/frontends/hunterpie/message.hpp), as every push,
// setsession and setname is read.
//
// Input: the text of one message. read_fields (simdjson, falling back to boost.json for what
// simdjson refuses) must agree exactly with read_fields_exactly (boost.json's parser with a handler
// that keeps only the protocol's fields), and both with boost::json::parse, whose acceptance they
// claim to reproduce: the same documents accepted (but for one documented difference, exponents
// beyond 32 bits), and the same four fields read (the last of duplicate keys; session ids over
// kMaxSessionIdBytes flagged, not kept). Checked too: no crash or sanitizer report.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "frontends/hunterpie/message.hpp"
#include "fuzz_check.hpp"

namespace {

namespace json = boost::json;
namespace hp = hearth::frontends::hunterpie;
using Field = hp::Fields::Field;
using hearth::fuzz::check;

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
