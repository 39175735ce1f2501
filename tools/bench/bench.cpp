#include "bench/bench.hpp"
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include "common/run_support.hpp"

namespace hearth::bench {

namespace {

// Posted tasks are short; a worker that does not answer in this long is stuck for good.
constexpr auto kWorkerTaskDeadline = std::chrono::seconds(30);

// Connections per source address by default: half the server's default per-address limit
// (websocket.max_connections_per_ip = 1000), far below the ~28,000 ephemeral ports.
constexpr std::size_t kConnectionsPerSource = 500;

}  // namespace

Bench::Bench(std::string scenario, const CommonOptions& options, Target target,
             std::size_t connections)
    : scenario_(std::move(scenario)), options_(options), started_(Clock::now()) {
    last_progress_ = started_;
    shared_.target = std::move(target);
    shared_.handshake_timeout = std::chrono::milliseconds(
        static_cast<std::int64_t>(std::max(0.1, options.handshake_timeout_s) * 1000));
    shared_.compression = options.compression;
    if (!options.token.empty()) {
        shared_.extra_headers = "Authorization: Bearer " + options.token + "\r\n";
    }
    const auto address = shared_.target.endpoint.address();
    if (address.is_v4() && address.to_v4().to_bytes()[0] == 127) {
        std::size_t k = options.source_addresses;
        if (k == 0) {
            k = std::clamp<std::size_t>(
                (connections + kConnectionsPerSource - 1) / kConnectionsPerSource, 1, 254);
            k = k > 1 ? k : 0;  // one address: let the kernel choose, as any client would
        }
        source_count_ = static_cast<unsigned>(k);
    } else if (options.source_addresses > 0) {
        note("--source-addresses applies to 127.x.x.x targets only; ignored");
    }
    if (source_count_ <= 1 && connections > 28000) {
        note(
            fmt::format("{} connections from one source address may exhaust the ephemeral port "
                        "range (about 28,000 ports)",
                        connections));
    }
    for (unsigned i = 0; i < std::max(1U, options.threads); ++i) {
        workers_.push_back(std::make_unique<Worker>(i, shared_));
    }
    for (auto& w : workers_) {
        w->start();
    }
}

Bench::~Bench() {
    for (auto& w : workers_) {
        w->stop();
    }
}

std::string Bench::hello_message() const {
    if (options_.token.empty()) {
        return {};
    }
    return R"({"type":"hello","token":)" +
           boost::json::serialize(boost::json::value(options_.token)) + "}";
}

std::size_t Bench::open(std::size_t count, const Factory& factory) {
    const std::size_t workers = workers_.size();
    const std::size_t per_worker = std::max<std::size_t>(1, options_.concurrency / workers);
    const unsigned sources = source_count_;
    on_workers([&](Worker& w) {
        for (std::size_t i = w.index(); i < count; i += workers) {
            std::optional<asio::ip::address> source;
            if (sources > 0) {
                source =
                    asio::ip::address_v4(0x7F000001U + static_cast<std::uint32_t>(i % sources));
            }
            w.add(factory(w, i), source);
        }
        w.start_connecting(per_worker);
    });
    wait(options_.connect_timeout_s, "connect", [&] {
        const auto t = totals();
        return t.opened + t.failed >= count;
    });
    const auto t = totals();
    if (t.opened + t.failed < count) {
        note(fmt::format("{} of {} connections were not open after --connect-timeout {} s",
                         count - t.opened, count, options_.connect_timeout_s));
    }
    return t.opened;
}

void Bench::set_phase(Phase phase) {
    shared_.phase.store(phase, std::memory_order_relaxed);
    if (phase == Phase::kDrain) {
        // A tick that began in the measured phase may still be sending: once every worker has
        // run this no-op, nothing more is sent, so a drain that compares deliveries with what
        // was sent (and the snapshot after it) sees every send of the window. Without it the
        // drain could end between a last push and its count, and the report miss deliveries.
        (void)on_workers([](Worker&) {});
    }
}

bool Bench::on_workers(const std::function<void(Worker&)>& fn) {
    if (finished_) {
        return false;
    }
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t remaining = workers_.size();
    for (auto& w : workers_) {
        asio::post(w->io(), [&, worker = w.get()] {
            fn(*worker);
            std::lock_guard lock(mutex);
            --remaining;
            cv.notify_one();  // under the lock: the waiter may return and destroy cv right after
        });
    }
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, kWorkerTaskDeadline, [&] { return remaining == 0; })) {
        // The task still refers to this frame: there is no safe way on but out.
        std::fputs("hearth-bench: a worker thread stopped responding; exiting\n", stderr);
        std::_Exit(3);
    }
    return true;
}

bool Bench::wait(double seconds, std::string_view label, const std::function<bool()>& done,
                 bool interruptible) {
    const auto begin = Clock::now();
    const auto until =
        begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    for (;;) {
        if (done && done()) {
            return true;
        }
        if (interruptible && interrupted()) {
            return false;
        }
        const auto now = Clock::now();
        if (now >= until) {
            return false;
        }
        if (!options_.json && now - last_progress_ >= std::chrono::seconds(1)) {
            progress_line(label, std::chrono::duration<double>(now - begin).count(), totals());
        }
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::chrono::milliseconds(10), until - now));
    }
}

void Bench::progress_line(std::string_view label, double elapsed_s, const Totals& t) {
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_progress_).count();
    const double rate =
        since > 0 ? static_cast<double>(t.delivered - last_progress_delivered_) / since : 0;
    last_progress_ = now;
    last_progress_delivered_ = t.delivered;
    fmt::print(stderr,
               "hearth-bench {} [{} {:5.1f}s] open {} failed {} sent {} delivered {} ({:.0f}/s) "
               "errors {}\n",
               scenario_, label, elapsed_s, t.open(), t.failed, t.sent, t.delivered, rate,
               t.errors);
}

Totals Bench::totals() const {
    Totals t;
    for (const auto& w : workers_) {
        const auto& c = w->counters();
        t.sent += c.sent.get();
        t.delivered += c.delivered.get();
        t.errors += c.errors.get();
        t.opened += c.opened.get();
        t.failed += c.failed.get();
        t.closed += c.closed.get();
        t.negotiated += c.negotiated.get();
        t.inflated += c.inflated.get();
        t.deflated += c.deflated.get();
        for (std::size_t i = 0; i < t.custom.size(); ++i) {
            t.custom[i] += c.custom[i].get();
        }
    }
    return t;
}

Snapshot Bench::snapshot() {
    Snapshot s;
    s.server = server();
    s.at = Clock::now();
    s.totals = totals();
    s.client_cpu_s = core::read_process_stats(0).cpu_seconds;
    if (options_.server_pid > 0 && !s.server && !server_gone_noted_) {
        server_gone_noted_ = true;
        note(fmt::format("the server process {} is gone: no server figures", options_.server_pid));
    }
    return s;
}

std::optional<core::ProcessStats> Bench::server() const {
    return tools::sample_process(options_.server_pid);
}

void Bench::fill_window(Report& report, const Snapshot& begin, const Snapshot& end) {
    report.elapsed_s = std::chrono::duration<double>(end.at - begin.at).count();
    if (begin.server && end.server) {
        report.server_cpu_s = end.server->cpu_seconds - begin.server->cpu_seconds;
    }
    report.client_cpu_s = end.client_cpu_s - begin.client_cpu_s;
}

void Bench::finish(double seconds) {
    if (finished_) {
        return;
    }
    set_phase(Phase::kDone);
    on_workers([](Worker& w) {
        w.stop_connecting();
        w.stop_ticker();
        for (auto& c : w.connections()) {
            if (c->state() == Connection::State::kOpen) {
                c->close();
            } else if (c->state() == Connection::State::kConnecting) {
                c->abort({});
            }
        }
    });
    // Not interruptible: after Ctrl-C the connections still close properly, within `seconds`.
    const auto all_closed = [this] { return totals().open() == 0; };
    wait(seconds, "close", all_closed, false);
    for (auto& w : workers_) {
        w->stop();
    }
    finished_ = true;
}

LatencyHistogram Bench::histogram() const {
    LatencyHistogram h;
    for (const auto& w : workers_) {
        h.merge(w->histogram());
    }
    return h;
}

std::map<std::string, std::uint64_t> Bench::reasons() const {
    std::map<std::string, std::uint64_t> all;
    for (const auto& w : workers_) {
        for (const auto& [reason, n] : w->reasons()) {
            all[reason] += n;
        }
    }
    return all;
}

void Bench::note(const std::string& text) {
    if (!options_.json) {
        fmt::print(stderr, "hearth-bench: {}\n", text);
    }
    notes_.push_back(text);
}

bool Bench::interrupted() noexcept {
    return tools::stop_requested();
}

void Bench::install_signal_handlers() {
    tools::install_stop_handlers();
}

}  // namespace hearth::bench
