#include "common/run_support.hpp"
#include <cerrno>
#include <cmath>
#include <csignal>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

namespace hearth::tools {

namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int) {
    g_stop = 1;
}

}  // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the process at once
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() noexcept {
    return g_stop != 0;
}

bool raise_file_limit(std::string_view tool, std::size_t connections) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return true;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    // Descriptors besides the connections: standard streams, epoll, eventfds, /proc reads, HTTP.
    constexpr std::size_t kReserve = 64;
    if (rl.rlim_cur != RLIM_INFINITY && connections + kReserve > rl.rlim_cur) {
        fmt::print(stderr,
                   "{}: {} connections need about {} file descriptors, but this process may open "
                   "{} (the hard limit); at most {} connections fit. Raise the limit (ulimit -Hn, "
                   "LimitNOFILE=) or ask for fewer.\n",
                   tool, connections, connections + kReserve, rl.rlim_cur,
                   rl.rlim_cur > kReserve ? rl.rlim_cur - kReserve : 0);
        return false;
    }
    return true;
}

std::optional<core::ProcessStats> sample_process(int pid) {
    if (pid <= 0) {
        return std::nullopt;
    }
    if (::kill(pid, 0) != 0 && errno != EPERM) {
        return std::nullopt;
    }
    auto stats = core::read_process_stats(pid);
    if (stats.resident_bytes == 0) {
        return std::nullopt;  // gone between the check and the read
    }
    return stats;
}

std::string json_text(const boost::json::value& v) {
    namespace json = boost::json;
    switch (v.kind()) {
        case json::kind::double_: {
            const double d = v.get_double();
            return std::isfinite(d) ? fmt::format("{}", d) : std::string("null");
        }
        case json::kind::object: {
            std::string out = "{";
            for (const auto& kv : v.get_object()) {
                if (out.size() > 1) {
                    out += ',';
                }
                out += json::serialize(json::value(kv.key()));
                out += ':';
                out += json_text(kv.value());
            }
            return out + "}";
        }
        case json::kind::array: {
            std::string out = "[";
            for (const auto& item : v.get_array()) {
                if (out.size() > 1) {
                    out += ',';
                }
                out += json_text(item);
            }
            return out + "]";
        }
        default:
            return json::serialize(v);
    }
}

}  // namespace hearth::tools
