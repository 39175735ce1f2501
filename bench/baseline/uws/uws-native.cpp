// uws-native: the uWebSockets baseline for the part of Hearth's native protocol
// (docs/protocol/native.md) that hearth-bench's `fanout` and `connections` scenarios use, on
// uWebSockets' own pub/sub. Built by run.sh from pinned uWebSockets and uSockets sources kept
// outside the repository; see docs/benchmarks.md, "uWebSockets side by side".
//
// What it does, with Hearth's bytes:
//   {"type":"hello","token":T}          -> {"type":"welcome","connection":"N","account":"bench"}
//   {"type":"subscribe","topic":S,...}  -> {"type":"ok","id":...}, then the topic's messages
//   {"type":"publish","topic":S,"data":D,...}
//                                       -> {"type":"ok","id":...} to the publisher, and once per
//                                          publish {"type":"message","topic":S,"from":"N","data":D}
//                                          to every other subscriber, D re-serialised compactly
// Anything else is answered {"type":"error","code":...}; every message but hello waits for one.
// Left out, as the benchmarks do not use them: the token check (any hello is welcomed: Hearth's
// check is a cache lookup per hello), unsubscribe, send, presence, echo, topic namespaces and the
// per-connection limits Hearth enforces on top of the transport's.
//
// It does the same JSON work per message as Hearth (Boost.JSON: a full parse of each message,
// replies built as objects and serialised, the delivery encoded once per publish), and the
// transport limits are Hearth's defaults where uWebSockets has the knob: 1 MiB messages, 4 MiB
// queued per connection and then a close, 120 s idle timeout.
//
// Usage: uws-native PORT [HOST]   (HOST defaults to 127.0.0.1)

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "App.h"

namespace {

namespace json = boost::json;

struct PerSocket {
    std::uint64_t id = 0;
    bool hello = false;
    bool subscriber = false;  // ws->publish() needs the sender to be a subscriber of something
};

uWS::App* g_app = nullptr;
std::uint64_t g_next_id = 1;

template <class Ws>
void reply(Ws* ws, json::object r, const json::value* id) {
    if (id != nullptr) {
        r["id"] = *id;
    }
    ws->send(json::serialize(r), uWS::OpCode::TEXT, false);
}

template <class Ws>
void reply_error(Ws* ws, const json::value* id, std::string_view code, std::string_view message) {
    json::object r;
    r["type"] = "error";
    r["code"] = code;
    r["message"] = message;
    reply(ws, std::move(r), id);
}

template <class Ws>
void on_message(Ws* ws, std::string_view text, uWS::OpCode opcode) {
    PerSocket& self = *ws->getUserData();
    if (opcode != uWS::OpCode::TEXT) {
        reply_error(ws, nullptr, "invalid_json", "Binary messages are not accepted.");
        return;
    }
    boost::system::error_code ec;
    const json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec || !v.is_object()) {
        reply_error(ws, nullptr, "invalid_json", "The message is not a JSON object.");
        return;
    }
    const json::object& o = v.get_object();
    const json::value* id = o.if_contains("id");
    const json::value* type = o.if_contains("type");
    if (type == nullptr || !type->is_string()) {
        reply_error(ws, id, "invalid_field", "Field \"type\" is missing or not a string.");
        return;
    }
    const json::string_view t = type->get_string();
    if (t == "hello") {
        self.hello = true;
        json::object r;
        r["type"] = "welcome";
        r["connection"] = std::to_string(self.id);
        if (const auto* token = o.if_contains("token"); token != nullptr) {
            r["account"] = "bench";
        }
        reply(ws, std::move(r), id);
        return;
    }
    if (!self.hello) {
        reply_error(ws, id, "not_allowed", "Send a hello first.");
        return;
    }
    const json::value* topic = o.if_contains("topic");
    if (topic == nullptr || !topic->is_string() || topic->get_string().empty() ||
        topic->get_string().size() > 256) {
        reply_error(ws, id, "invalid_field",
                    "Field \"topic\" is missing or not a non-empty string.");
        return;
    }
    const std::string_view name(topic->get_string().data(), topic->get_string().size());
    if (t == "subscribe") {
        ws->subscribe(name);
        self.subscriber = true;
        json::object r;
        r["type"] = "ok";
        reply(ws, std::move(r), id);
        return;
    }
    if (t == "publish") {
        const json::value* data = o.if_contains("data");
        if (data == nullptr) {
            reply_error(ws, id, "invalid_field", "Field \"data\" is missing.");
            return;
        }
        std::string out;
        out.reserve(64 + name.size() + text.size());
        out += R"({"type":"message","topic":)";
        out += json::serialize(*topic);
        out += R"(,"from":")";
        out += std::to_string(self.id);
        out += R"(","data":)";
        out += json::serialize(*data);
        out += '}';
        json::object r;
        r["type"] = "ok";
        reply(ws, std::move(r), id);
        if (self.subscriber) {
            ws->publish(name, out, uWS::OpCode::TEXT, false);  // not to the sender itself
        } else {
            g_app->publish(name, out, uWS::OpCode::TEXT, false);
        }
        return;
    }
    reply_error(ws, id, "unknown_type", "Unknown message type.");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    const int port = std::atoi(argv[1]);
    const std::string host = argc > 2 ? argv[2] : "127.0.0.1";

    uWS::App app;
    g_app = &app;
    app.ws<PerSocket>("/*",
                      {
                          .compression = uWS::DISABLED,
                          .maxPayloadLength = 1024 * 1024,
                          .idleTimeout = 120,
                          .maxBackpressure = 4 * 1024 * 1024,
                          .closeOnBackpressureLimit = true,
                          .open = [](auto* ws) { ws->getUserData()->id = g_next_id++; },
                          .message = [](auto* ws, std::string_view message,
                                        uWS::OpCode opcode) { on_message(ws, message, opcode); },
                      })
        .listen(host, port, [&](auto* socket) {
            if (socket == nullptr) {
                std::fprintf(stderr, "uws-native: cannot listen on %s:%d\n", host.c_str(), port);
                std::exit(1);
            }
            std::fprintf(stderr, "uws-native: listening on %s:%d\n", host.c_str(), port);
        });
    app.run();
    return 0;
}
