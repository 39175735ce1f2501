// uws-echo: the uWebSockets baseline for Hearth's /echo route (docs/benchmarks.md, "uWebSockets
// side by side"). Every message goes back to its sender as it came (same opcode), uncompressed.
// Built by run.sh from pinned uWebSockets and uSockets sources kept outside the repository.
//
// The limits are Hearth's defaults where uWebSockets has the same knob, so neither server is
// spared work the other does: 1 MiB messages ([websocket] max_message_bytes), 4 MiB queued per
// connection and then a close (max_outbound_bytes, the slow-consumer close), 120 s idle timeout.
//
// Usage: uws-echo PORT [HOST]   (HOST defaults to 127.0.0.1)

#include <cstdio>
#include <cstdlib>
#include <string>

#include "App.h"

namespace {

struct PerSocket {};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    const int port = std::atoi(argv[1]);
    const std::string host = argc > 2 ? argv[2] : "127.0.0.1";

    uWS::App()
        .ws<PerSocket>("/*",
                       {
                           .compression = uWS::DISABLED,
                           .maxPayloadLength = 1024 * 1024,
                           .idleTimeout = 120,
                           .maxBackpressure = 4 * 1024 * 1024,
                           .closeOnBackpressureLimit = true,
                           .message = [](auto* ws, std::string_view message,
                                         uWS::OpCode opcode) { ws->send(message, opcode, false); },
                       })
        .listen(host, port,
                [&](auto* socket) {
                    if (socket == nullptr) {
                        std::fprintf(stderr, "uws-echo: cannot listen on %s:%d\n", host.c_str(),
                                     port);
                        std::exit(1);
                    }
                    std::fprintf(stderr, "uws-echo: listening on %s:%d\n", host.c_str(), port);
                })
        .run();
    return 0;
}
