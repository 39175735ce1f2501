// Logs in to a Hearth game server, lists the account's characters, and logs out.
//
//   hearth_client_login HOST PORT USERNAME PASSWORD
//   hearth_client_login HOST PORT --token TOKEN
//
// Exit status: 0 logged in and out; 1 the server refused (its error code is printed); 2 usage.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "hearth_client/client.hpp"

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s HOST PORT (USERNAME PASSWORD | --token TOKEN)\n", argv[0]);
        return 2;
    }
    const std::string host = argv[1];
    const auto port = static_cast<std::uint16_t>(std::strtoul(argv[2], nullptr, 10));
    const std::string first = argv[3];
    const std::string second = argv[4];

    hearth::client::Client client;
    if (auto connected = client.connect(host, port); !connected) {
        std::fprintf(stderr, "connect: %s\n", connected.error().message.c_str());
        return 1;
    }
    auto session =
        first == "--token" ? client.login_token(second) : client.login_password(first, second);
    if (!session) {
        const auto& e = session.error();
        std::fprintf(stderr, "login refused: %s (%s, detail %u)\n", e.message.c_str(),
                     std::string(e.name()).c_str(), static_cast<unsigned>(e.detail));
        return 1;
    }
    std::printf("logged in as %s (account %llu); send alive() every %u s\n",
                session->account_name.c_str(), static_cast<unsigned long long>(session->account_id),
                static_cast<unsigned>(session->idle_timeout_s / 3));

    if (auto characters = client.list_characters(); characters) {
        for (const auto& c : *characters) {
            std::printf("  %llu %s (level %u)\n", static_cast<unsigned long long>(c.id),
                        c.name.c_str(), static_cast<unsigned>(c.level));
        }
    } else {
        std::printf("characters: %s (%s)\n", characters.error().message.c_str(),
                    std::string(characters.error().name()).c_str());
    }

    if (auto out = client.logout(); !out) {
        std::fprintf(stderr, "logout: %s\n", out.error().message.c_str());
        return 1;
    }
    std::printf("logged out\n");
    return 0;
}
