// Uses the library's public API and its codec: exits 0 when the login request it encodes is the
// bytes of docs/protocol/packets.md's example (login_password).

#include <cstdio>
#include <string>

#include <hearth_client/client.hpp>

int main() {
    namespace wire = hearth::client::wire;
    std::string out;
    const auto e = wire::encode(
        out, wire::LoginRequest{
                 .method = wire::LoginMethod::kPassword, .username = "alice", .secret = "hunter2"});
    const std::string expected(
        "\x17\x00\x08\x07\x00\x00\x00\x05\x00"
        "alice\x07\x00hunter2",
        23);
    hearth::client::Client client;
    const auto status = client.alive();  // not connected: a local error, no crash
    if (e != wire::WireError::kNone || out != expected || status.ok() ||
        status.error().kind != hearth::client::Error::Kind::kClosed) {
        std::puts("unexpected");
        return 1;
    }
    std::puts("ok");
    return 0;
}
