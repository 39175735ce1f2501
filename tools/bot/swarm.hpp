#pragma once

// The bots: N clients of the game protocol (clients/cpp) driven by one epoll loop on one thread.
// Each bot is a small state machine: its setup requests are sent back to back (the server answers
// them in order), the answers move it on, and once in the world a timer makes it move, chat and
// attack. Memory per bot is bounded: the client keeps at most one partial packet and a bounded
// send queue, the bot at most kTrackedNpcs NPCs.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bot/options.hpp"
#include "bot/summary.hpp"

namespace hearth::bot {

struct Bot;

class Swarm {
public:
    using Clock = std::chrono::steady_clock;

    /// Bot i logs in with tokens[i / bots_per_account] when there is one token per account
    /// (--api), else with tokens[0] (--token); an empty token is a bot that cannot play (counted
    /// as a failed setup). Its character is PREFIX followed by i.
    Swarm(const Options& options, std::string prefix, std::vector<std::string> tokens);
    ~Swarm();
    Swarm(const Swarm&) = delete;
    Swarm& operator=(const Swarm&) = delete;

    /// Runs until `until` (or `stop()` returns true, checked every loop): connects the bots at
    /// --connect-rate, sets them up and plays. `every_second` is called about once a second.
    void run(Clock::time_point until, const std::function<bool()>& stop,
             const std::function<void()>& every_second);
    /// Sends a logout from every bot in the world and waits for the server to close them, at
    /// most `seconds`; then closes what is left.
    void finish(double seconds);

    /// The counters, with the clients' traffic summed in.
    Counters counters() const;
    Population population() const;
    /// True once every bot is in the world or gone.
    bool settled() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::bot
