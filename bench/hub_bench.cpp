// In-process fan-out through the hub: the cost of delivering one published message to N local
// subscribers, without sockets (the subscribers only count).

#include <future>

#include <benchmark/benchmark.h>
#include <boost/asio/post.hpp>

#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "hub/hub.hpp"

namespace {

using namespace hearth;

class CountingSubscriber final : public hub::Subscriber {
public:
    explicit CountingSubscriber(std::uint64_t id) : id_(static_cast<ConnectionId>(id)) {}
    ConnectionId subscriber_id() const noexcept override { return id_; }
    std::string principal() const override { return "bench"; }
    bool deliver(const hub::SharedMessage& m) override {
        benchmark::DoNotOptimize(m.get());
        ++count;
        return true;
    }
    void on_presence(const hub::PresenceEvent&) override {}
    std::uint64_t count = 0;

private:
    ConnectionId id_;
};

template <class F>
void on_io(core::Runtime& rt, std::size_t thread, F&& f) {
    std::promise<void> done;
    boost::asio::post(rt.io_context(thread), [&] {
        f();
        done.set_value();
    });
    done.get_future().wait();
}

// Args: subscribers, io threads. Each iteration publishes a batch of 100 messages from thread 0
// and waits until every thread has delivered them.
void BM_HubFanOut(benchmark::State& state) {
    const auto subscribers = static_cast<std::size_t>(state.range(0));
    const auto threads = static_cast<std::size_t>(state.range(1));
    core::MetricsRegistry metrics;
    core::Runtime runtime(threads, 1);
    hub::HubConfig config;
    hub::Hub hub(runtime, metrics, config);
    runtime.start();
    std::vector<std::unique_ptr<CountingSubscriber>> subs;
    for (std::size_t i = 0; i < subscribers; ++i) {
        subs.push_back(std::make_unique<CountingSubscriber>(i + 1));
        on_io(runtime, i % threads, [&] {
            hub.attach(*subs.back());
            hub.subscribe(*subs.back(), "native:bench", false, [](Errc) {});
        });
    }
    for (std::size_t t = 0; t < threads; ++t) {
        on_io(runtime, t, [] {});  // subscriptions acknowledged
    }
    for (std::size_t t = 0; t < threads; ++t) {
        on_io(runtime, t, [] {});
    }
    constexpr int kBatch = 100;
    const std::string data(100, 'x');
    for (auto _ : state) {
        on_io(runtime, 0, [&] {
            for (int i = 0; i < kBatch; ++i) {
                hub.publish(std::make_shared<const hub::HubMessage>("native:bench", ConnectionId{},
                                                                    "b", data),
                            false);
            }
        });
        // Everything posted before these markers has run on every thread.
        for (int round = 0; round < 2; ++round) {
            for (std::size_t t = 0; t < threads; ++t) {
                on_io(runtime, t, [] {});
            }
        }
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kBatch *
                            static_cast<std::int64_t>(subscribers));
    state.counters["deliveries"] =
        static_cast<double>(metrics.counter("hearth_hub_deliveries_total", "").value());
    runtime.stop();
}
BENCHMARK(BM_HubFanOut)->Args({1000, 1})->Args({1000, 2})->Args({10, 1})->UseRealTime();

}  // namespace
