// Uses the library's public API and its codec: exits 0 when the login request it encodes is the
// bytes of docs/protocol/packets.md's example (login_password), and the world's calls and poll()
// compile and, unconnected, fail as local errors.

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
    const wire::Vec3 path[] = {{1, 2, 0}};
    std::size_t messages = 0;
    const auto polled =
        client.poll(std::chrono::milliseconds(0), [&messages](const auto&) { ++messages; });
    if (client.move(1, path).ok() || client.attack(7).ok() ||
        client.chat(wire::ChatChannel::kLocal, "hi").ok() || client.enter_world().ok() ||
        polled.ok() || polled.error().kind != hearth::client::Error::Kind::kClosed ||
        messages != 0) {
        std::puts("unexpected world calls");
        return 1;
    }
    if (e != wire::WireError::kNone || out != expected || status.ok() ||
        status.error().kind != hearth::client::Error::Kind::kClosed) {
        std::puts("unexpected");
        return 1;
    }
    std::puts("ok");
    return 0;
}
