// Fuzz target: the DracoSoft stream (src/frontends/dracosoft/codec.hpp), as a DracoSoft connection
// reads it: length-prefixed frames reassembled from the bytes as they arrive, each payload parsed
// as a JSON message, its fields read, and a chat message re-encoded for every recipient.
//
// Input: byte 0 seeds the split points, the rest is what the client sends.
//
// Checked on every input: no crash or sanitizer report; FrameReader fed in random pieces yields the
// same frames as decode_frame over the whole stream, and stops for good at a bad length; a frame is
// never over kMaxFrameBytes; a parsed message written back with py_dumps parses to the same value;
// and a relayed chat frame is a well-formed frame whose message is the sender's text.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "frontends/dracosoft/codec.hpp"
#include "fuzz_check.hpp"
#include "json_same.hpp"

namespace {

namespace json = boost::json;
namespace ds = hearth::frontends::dracosoft;
using hearth::fuzz::check;

struct Frame {
    ds::DecodeStatus status;
    std::string payload;
    bool operator==(const Frame&) const = default;
};

// Whether every number in `v` is finite (py_dumps writes the others as Python does: not JSON).
bool finite(const json::value& v) {
    if (v.is_double()) {
        return std::isfinite(v.get_double());
    }
    if (v.is_array()) {
        for (const auto& e : v.get_array()) {
            if (!finite(e)) {
                return false;
            }
        }
    }
    if (v.is_object()) {
        for (const auto& e : v.get_object()) {
            if (!finite(e.value())) {
                return false;
            }
        }
    }
    return true;
}

void check_message(std::string_view payload) {
    const ds::Parsed parsed = ds::parse_message(payload);
    if (parsed.error != ds::ParseError::kNone) {
        return;
    }
    const json::object& msg = parsed.object;
    for (const std::string_view key : {"type", "action", "username", "password", "email"}) {
        if (const auto s = ds::string_field(msg, key)) {
            check(!s->empty() && *s == msg.at(key).get_string(), "string_field");
        }
    }

    const json::value value(msg);
    const std::string dumped = ds::py_dumps(value);
    if (finite(value)) {
        json::parse_options options;
        options.max_depth = 1000;
        boost::system::error_code ec;
        const json::value back = json::parse(dumped, ec, {}, options);
        check(!ec && hearth::fuzz::same_json(back, value),
              "py_dumps does not parse back to the message");
    }

    const auto* type = msg.if_contains("type");
    const auto* text = msg.if_contains("message");
    if (type != nullptr && type->is_string() && type->get_string() == "chat" && text != nullptr &&
        text->is_string()) {
        const std::string frame =
            ds::chat_frame("alice", text->get_string(), "2026-01-02T03:04:05.000006");
        if (frame.size() - ds::kHeaderBytes > ds::kMaxFrameBytes) {
            return;  // refused as too large to relay
        }
        const ds::DecodeResult r = ds::decode_frame(frame);
        check(r.status == ds::DecodeStatus::kFrame && r.consumed == frame.size(),
              "a chat frame that is not one frame");
        const ds::Parsed relayed = ds::parse_message(r.payload);
        check(relayed.error == ds::ParseError::kNone, "a chat frame that is not a JSON object");
        const auto* from = relayed.object.if_contains("from");
        const auto* message = relayed.object.if_contains("message");
        check(from != nullptr && from->is_string() && from->get_string() == "alice", "chat sender");
        check(message != nullptr && message->is_string() &&
                  message->get_string() == text->get_string(),
              "chat text changed on the way");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    hearth::fuzz::Input in(data, size);
    const std::uint64_t seed = in.byte() + 1U;
    const std::string_view stream = in.rest();

    // The whole stream, frame by frame.
    std::vector<Frame> whole;
    std::string_view rest = stream;
    for (;;) {
        const ds::DecodeResult r = ds::decode_frame(rest);
        if (r.status == ds::DecodeStatus::kNeedMore) {
            check(r.consumed == 0, "consumed without a frame");
            break;
        }
        if (r.status == ds::DecodeStatus::kBadLength) {
            whole.push_back({r.status, {}});
            break;
        }
        check(r.consumed == ds::kHeaderBytes + r.payload.size() && r.consumed <= rest.size(),
              "frame size");
        check(!r.payload.empty() && r.payload.size() <= ds::kMaxFrameBytes, "frame bound");
        whole.push_back({r.status, std::string(r.payload)});
        check_message(r.payload);
        rest.remove_prefix(r.consumed);
    }

    // The same stream in pieces, through the connection's reader.
    std::vector<Frame> pieces;
    ds::FrameReader reader;
    hearth::fuzz::Splitter split(seed);
    std::size_t fed = 0;
    bool failed = false;
    while (fed < stream.size() && !failed) {
        const std::size_t n = split.next(stream.size() - fed);
        reader.feed(stream.substr(fed, n));
        fed += n;
        for (;;) {
            const ds::DecodeResult r = reader.next();
            if (r.status == ds::DecodeStatus::kNeedMore) {
                break;
            }
            if (r.status == ds::DecodeStatus::kBadLength) {
                pieces.push_back({r.status, {}});
                check(reader.next().status == ds::DecodeStatus::kBadLength,
                      "bad length not sticky");
                failed = true;
                break;
            }
            pieces.push_back({r.status, std::string(r.payload)});
        }
    }
    check(whole == pieces, "frames depend on the split points");
    check(failed || reader.buffered() == rest.size(), "bytes kept after the last frame");
    return 0;
}
