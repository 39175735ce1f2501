// The hub with real io threads and in-memory subscribers: routing, order, presence, limits.

#include "hub/hub.hpp"
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "core/events.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"

namespace hearth::hub {
namespace {

using namespace std::chrono_literals;
constexpr auto kDeadline = 10s;

// Runs `f` on io thread `thread` and waits for it.
template <class F>
void on(core::Runtime& rt, std::size_t thread, F&& f) {
    std::promise<void> done;
    boost::asio::post(rt.io_context(thread), [&] {
        f();
        done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(kDeadline), std::future_status::ready);
}

/// Records what the hub hands it. Thread-safe to inspect from the test thread.
class Recorder final : public Subscriber {
public:
    explicit Recorder(std::uint64_t id) : id_(static_cast<ConnectionId>(id)) {}
    ConnectionId subscriber_id() const noexcept override { return id_; }
    std::string principal() const override { return "p" + to_string(id_); }
    bool deliver(const SharedMessage& m) override {
        std::lock_guard lock(mutex_);
        messages_.push_back(m);
        thread_ok_ = thread_ok_ && (thread_ < 0 || core::Runtime::current_io_thread() == thread_);
        cv_.notify_all();
        return accept_;
    }
    void on_presence(const PresenceEvent& e) override {
        std::lock_guard lock(mutex_);
        events_.push_back(e);
        cv_.notify_all();
    }
    void pin(int thread) { thread_ = thread; }
    void refuse() { accept_ = false; }

    std::vector<SharedMessage> wait_messages(std::size_t n) {
        std::unique_lock lock(mutex_);
        EXPECT_TRUE(cv_.wait_for(lock, kDeadline, [&] { return messages_.size() >= n; }))
            << "got " << messages_.size() << " of " << n;
        return messages_;
    }
    std::vector<PresenceEvent> wait_events(std::size_t n) {
        std::unique_lock lock(mutex_);
        EXPECT_TRUE(cv_.wait_for(lock, kDeadline, [&] { return events_.size() >= n; }));
        return events_;
    }
    std::size_t message_count() {
        std::lock_guard lock(mutex_);
        return messages_.size();
    }
    bool ran_on_its_thread() {
        std::lock_guard lock(mutex_);
        return thread_ok_;
    }

private:
    ConnectionId id_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<SharedMessage> messages_;
    std::vector<PresenceEvent> events_;
    int thread_ = -1;
    bool thread_ok_ = true;
    bool accept_ = true;
};

struct Fixture {
    explicit Fixture(std::size_t threads, HubConfig config = {})
        : runtime(threads, 1), hub(runtime, metrics, config) {
        runtime.start();
    }
    ~Fixture() { runtime.stop(); }

    // Attaches `r` on `thread` and subscribes it to `topic`; waits for the ok.
    Errc join(Recorder& r, std::size_t thread, const std::string& topic, bool presence = false) {
        std::promise<Errc> result;
        on(runtime, thread, [&] {
            r.pin(static_cast<int>(thread));
            hub.attach(r);
            hub.subscribe(r, topic, presence, [&](Errc e) { result.set_value(e); });
        });
        auto f = result.get_future();
        EXPECT_EQ(f.wait_for(kDeadline), std::future_status::ready);
        return f.get();
    }
    void publish(std::size_t thread, const std::string& topic, std::string data,
                 ConnectionId from = {}, bool echo = false) {
        on(runtime, thread, [&] {
            hub.publish(std::make_shared<const HubMessage>(topic, from, "someone", std::move(data)),
                        echo);
        });
    }

    core::MetricsRegistry metrics;
    core::Runtime runtime;
    Hub hub;
};

TEST(Hub, PublishReachesEverySubscriberOnce) {
    Fixture f(1);
    Recorder a(1), b(2), c(3);
    ASSERT_EQ(f.join(a, 0, "t"), Errc::kOk);
    ASSERT_EQ(f.join(b, 0, "t"), Errc::kOk);
    ASSERT_EQ(f.join(c, 0, "other"), Errc::kOk);
    f.publish(0, "t", "hello");
    auto got_a = a.wait_messages(1);
    auto got_b = b.wait_messages(1);
    EXPECT_EQ(got_a[0]->data(), "hello");
    EXPECT_EQ(got_a[0].get(), got_b[0].get());  // one shared message, not a copy per recipient
    f.publish(0, "other", "sentinel");
    c.wait_messages(1);
    EXPECT_EQ(a.message_count(), 1u);
}

TEST(Hub, SenderIsSkippedUnlessEcho) {
    Fixture f(1);
    Recorder a(1), b(2);
    ASSERT_EQ(f.join(a, 0, "t"), Errc::kOk);
    ASSERT_EQ(f.join(b, 0, "t"), Errc::kOk);
    f.publish(0, "t", "no echo", a.subscriber_id(), false);
    f.publish(0, "t", "echo", a.subscriber_id(), true);
    auto got = a.wait_messages(1);
    EXPECT_EQ(got[0]->data(), "echo");
    EXPECT_EQ(b.wait_messages(2).size(), 2u);
}

TEST(Hub, MultiThreadedFanOutKeepsPerPublisherOrder) {
    constexpr std::size_t kThreads = 4;
    Fixture f(kThreads);
    std::vector<std::unique_ptr<Recorder>> subs;
    for (std::size_t i = 0; i < 12; ++i) {
        subs.push_back(std::make_unique<Recorder>(100 + i));
        ASSERT_EQ(f.join(*subs.back(), i % kThreads, "room"), Errc::kOk);
    }
    constexpr int kPerPublisher = 200;
    // Four publishers, one per thread, interleaved in real time.
    std::vector<std::thread> publishers;
    for (std::size_t p = 0; p < kThreads; ++p) {
        publishers.emplace_back([&, p] {
            for (int i = 0; i < kPerPublisher; ++i) {
                boost::asio::post(f.runtime.io_context(p), [&f, p, i] {
                    f.hub.publish(std::make_shared<const HubMessage>(
                                      "room", static_cast<ConnectionId>(p + 1), "pub",
                                      std::to_string(p) + ":" + std::to_string(i)),
                                  false);
                });
            }
        });
    }
    for (auto& t : publishers) {
        t.join();
    }
    for (auto& s : subs) {
        auto got = s->wait_messages(kThreads * kPerPublisher);
        ASSERT_EQ(got.size(), kThreads * kPerPublisher);
        std::vector<int> next(kThreads, 0);
        for (const auto& m : got) {
            const auto colon = m->data().find(':');
            const auto p = std::stoul(m->data().substr(0, colon));
            const int i = std::stoi(m->data().substr(colon + 1));
            ASSERT_EQ(i, next[p]) << "publisher " << p << " out of order";
            ++next[p];
        }
        EXPECT_TRUE(s->ran_on_its_thread());
    }
    EXPECT_EQ(f.metrics.counter("hearth_hub_deliveries_total", "").value(),
              12u * kThreads * kPerPublisher);
    EXPECT_EQ(f.metrics.counter("hearth_hub_publishes_total", "").value(),
              kThreads * kPerPublisher);
}

TEST(Hub, UnsubscribeAndDetachStopDelivery) {
    Fixture f(2);
    Recorder a(1), b(2), witness(3);
    ASSERT_EQ(f.join(a, 0, "t"), Errc::kOk);
    ASSERT_EQ(f.join(b, 1, "t"), Errc::kOk);
    ASSERT_EQ(f.join(witness, 0, "t"), Errc::kOk);
    std::promise<Errc> unsubscribed;
    on(f.runtime, 0,
       [&] { f.hub.unsubscribe(a, "t", [&](Errc e) { unsubscribed.set_value(e); }); });
    EXPECT_EQ(unsubscribed.get_future().get(), Errc::kOk);
    on(f.runtime, 1, [&] { f.hub.detach(b); });
    f.publish(0, "t", "after");
    witness.wait_messages(1);  // same thread as `a`, delivered in the same pass
    EXPECT_EQ(a.message_count(), 0u);
    EXPECT_EQ(b.message_count(), 0u);
    on(f.runtime, 0, [&] {
        f.hub.detach(a);
        f.hub.detach(witness);
    });
}

TEST(Hub, PresenceListsMembersAndAnnouncesJoinAndLeave) {
    Fixture f(2);
    Recorder watcher(1), joiner(2);
    ASSERT_EQ(f.join(watcher, 0, "lobby", true), Errc::kOk);
    ASSERT_EQ(f.join(joiner, 1, "lobby"), Errc::kOk);
    auto events = watcher.wait_events(1);
    EXPECT_EQ(events[0].kind, PresenceEvent::Kind::kJoin);
    EXPECT_EQ(events[0].connection, joiner.subscriber_id());
    EXPECT_EQ(events[0].principal, "p2");

    std::promise<std::vector<Member>> members;
    on(f.runtime, 1, [&] {
        f.hub.presence("lobby", [&](std::vector<Member> m) { members.set_value(std::move(m)); });
    });
    auto list = members.get_future().get();
    EXPECT_EQ(list.size(), 2u);

    on(f.runtime, 1, [&] { f.hub.detach(joiner); });
    events = watcher.wait_events(2);
    EXPECT_EQ(events[1].kind, PresenceEvent::Kind::kLeave);
    EXPECT_EQ(events[1].connection, joiner.subscriber_id());
    on(f.runtime, 0, [&] { f.hub.detach(watcher); });
    // A presence query from the same thread reaches the shard after the detach's removal.
    std::promise<std::vector<Member>> after;
    on(f.runtime, 0, [&] {
        f.hub.presence("lobby", [&](std::vector<Member> m) { after.set_value(std::move(m)); });
    });
    EXPECT_TRUE(after.get_future().get().empty());
    EXPECT_EQ(f.metrics.gauge("hearth_hub_topics", "").value(), 0);
    EXPECT_EQ(f.metrics.gauge("hearth_hub_subscriptions", "").value(), 0);
}

TEST(Hub, SendReachesOneConnectionOnAnyThread) {
    Fixture f(2);
    Recorder a(1), b(2);
    on(f.runtime, 0, [&] { f.hub.attach(a); });
    on(f.runtime, 1, [&] {
        b.pin(1);
        f.hub.attach(b);
    });
    std::promise<Errc> sent, unknown;
    on(f.runtime, 0, [&] {
        f.hub.send(b.subscriber_id(),
                   std::make_shared<const HubMessage>("", a.subscriber_id(), "a", "direct"),
                   [&](Errc e) { sent.set_value(e); });
        f.hub.send(static_cast<ConnectionId>(999),
                   std::make_shared<const HubMessage>("", a.subscriber_id(), "a", "x"),
                   [&](Errc e) { unknown.set_value(e); });
    });
    EXPECT_EQ(sent.get_future().get(), Errc::kOk);
    EXPECT_EQ(unknown.get_future().get(), Errc::kNotFound);
    EXPECT_EQ(b.wait_messages(1)[0]->data(), "direct");
    EXPECT_TRUE(b.ran_on_its_thread());
}

// Completions find their connection's handler by id only while it is attached, and only on its
// own thread: what the native front-end relies on instead of a guard per connection.
TEST(Hub, LocalFindsASubscriberOnlyWhileAttachedAndOnItsThread) {
    Fixture f(2);
    Recorder a(1), b(2);
    b.pin(1);
    on(f.runtime, 0, [&] { f.hub.attach(a); });
    on(f.runtime, 1, [&] { f.hub.attach(b); });
    Subscriber* here = nullptr;
    Subscriber* other_thread = reinterpret_cast<Subscriber*>(1);
    Subscriber* never = reinterpret_cast<Subscriber*>(1);
    on(f.runtime, 0, [&] {
        here = f.hub.local(a.subscriber_id());
        other_thread = f.hub.local(b.subscriber_id());
        never = f.hub.local(static_cast<ConnectionId>(999));
    });
    EXPECT_EQ(here, &a);
    EXPECT_EQ(other_thread, nullptr);
    EXPECT_EQ(never, nullptr);
    Subscriber* after_detach = reinterpret_cast<Subscriber*>(1);
    on(f.runtime, 0, [&] {
        f.hub.detach(a);
        after_detach = f.hub.local(a.subscriber_id());
    });
    EXPECT_EQ(after_detach, nullptr);
    on(f.runtime, 1, [&] { f.hub.detach(b); });
}

TEST(Hub, LimitsAreEnforcedAndCounted) {
    HubConfig config;
    config.max_topics_per_connection = 2;
    config.max_subscribers_per_topic = 2;
    Fixture f(2, config);
    Recorder a(1), b(2), c(3);
    ASSERT_EQ(f.join(a, 0, "t1"), Errc::kOk);
    std::promise<Errc> second, third;
    on(f.runtime, 0, [&] {
        f.hub.subscribe(a, "t2", false, [&](Errc e) { second.set_value(e); });
        f.hub.subscribe(a, "t3", false, [&](Errc e) { third.set_value(e); });
    });
    EXPECT_EQ(second.get_future().get(), Errc::kOk);
    EXPECT_EQ(third.get_future().get(), Errc::kLimitReached);
    ASSERT_EQ(f.join(b, 1, "t1"), Errc::kOk);
    EXPECT_EQ(f.join(c, 1, "t1"), Errc::kLimitReached);
    // The refused subscription left nothing behind: c may subscribe elsewhere.
    std::promise<Errc> elsewhere;
    on(f.runtime, 1,
       [&] { f.hub.subscribe(c, "t9", false, [&](Errc e) { elsewhere.set_value(e); }); });
    EXPECT_EQ(elsewhere.get_future().get(), Errc::kOk);
    EXPECT_EQ(
        f.metrics
            .counter("hearth_hub_limit_rejections_total", "", {{"limit", "topics_per_connection"}})
            .value(),
        1u);
    EXPECT_EQ(
        f.metrics
            .counter("hearth_hub_limit_rejections_total", "", {{"limit", "subscribers_per_topic"}})
            .value(),
        1u);
}

TEST(Hub, TopicsLongerThanTheBoundAreRefusedAndCounted) {
    Fixture f(2);
    Recorder a(1), b(2);
    const std::string longest(kMaxTopicBytes, 't');
    const std::string over(kMaxTopicBytes + 1, 't');
    EXPECT_EQ(f.join(a, 0, over), Errc::kTooLarge);
    ASSERT_EQ(f.join(b, 1, longest), Errc::kOk);
    // Nothing of the refused name was kept: no topic, and a's subscriptions stay free.
    std::promise<std::vector<Hub::TopicInfo>> topics;
    f.hub.list_topics(10, [&](std::vector<Hub::TopicInfo> t) { topics.set_value(std::move(t)); });
    const auto listed = topics.get_future().get();
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].topic, longest);
    // A publish or a presence request with such a name finds nothing, and is answered.
    f.publish(0, over, "x");
    std::promise<std::size_t> members;
    on(f.runtime, 0,
       [&] { f.hub.presence(over, [&](std::vector<Member> m) { members.set_value(m.size()); }); });
    EXPECT_EQ(members.get_future().get(), 0u);
    EXPECT_EQ(f.metrics.counter("hearth_hub_limit_rejections_total", "", {{"limit", "topic_bytes"}})
                  .value(),
              2u);
    EXPECT_EQ(f.metrics.counter("hearth_hub_publishes_total", "").value(), 0u);
}

TEST(Hub, RefusedDeliveriesAreCountedAsDrops) {
    Fixture f(1);
    Recorder a(1);
    a.refuse();
    ASSERT_EQ(f.join(a, 0, "t"), Errc::kOk);
    f.publish(0, "t", "x");
    a.wait_messages(1);
    on(f.runtime, 0,
       [] {});  // the counters are updated after the delivery pass, on the same thread
    EXPECT_EQ(f.metrics.counter("hearth_hub_dropped_total", "").value(), 1u);
}

// ---- topic events ------------------------------------------------------------------------------

std::vector<core::Event> topic_events(const core::EventBus& bus, core::EventKind kind) {
    return bus.recent(100, 0, core::EventFilter{.kind = kind});
}

/// Waits until the bus's history holds `n` events of `kind`: a handler wakes the wait.
std::vector<core::Event> wait_topic_events(core::EventBus& bus, core::EventKind kind,
                                           std::size_t n) {
    std::mutex mutex;
    std::condition_variable cv;
    auto sub = bus.subscribe(0, {.kind = kind}, [&](const core::Event&) {
        std::lock_guard lock(mutex);
        cv.notify_all();
        return core::Propagation::kContinue;
    });
    std::unique_lock lock(mutex);
    EXPECT_TRUE(cv.wait_for(lock, kDeadline, [&] { return topic_events(bus, kind).size() >= n; }))
        << "got " << topic_events(bus, kind).size() << " of " << n;
    lock.unlock();
    return topic_events(bus, kind);
}

// Unsubscribes `r` from `topic` on `thread`, then waits until the topic's shard has handled it:
// a presence query posted after it from the same thread reaches the shard after the removal.
std::size_t leave(Fixture& f, Recorder& r, std::size_t thread, const std::string& topic) {
    std::promise<std::size_t> members;
    on(f.runtime, thread, [&] {
        f.hub.unsubscribe(r, topic, [](Errc e) { EXPECT_EQ(e, Errc::kOk); });
        f.hub.presence(topic, [&](std::vector<Member> m) { members.set_value(m.size()); });
    });
    auto left = members.get_future();
    EXPECT_EQ(left.wait_for(kDeadline), std::future_status::ready);
    return left.get();
}

TEST(HubEvents, FirstSubscriberCreatesATopicAndTheLastToLeaveEmptiesIt) {
    core::EventBus bus(100);  // outlives the fixture's hub
    Fixture f(2);
    f.hub.set_events(&bus);
    Recorder a(1), b(2);
    ASSERT_EQ(f.join(a, 0, "native:chat"), Errc::kOk);
    // The event is published on the shard before the subscribe's answer is posted back.
    auto created = topic_events(bus, core::EventKind::kTopicCreated);
    ASSERT_EQ(created.size(), 1u);
    EXPECT_EQ(created[0].module, "native");
    EXPECT_EQ(created[0].subject, "native:chat");
    EXPECT_EQ(created[0].principal, "p1");
    EXPECT_FALSE(created[0].detail.empty());

    // A second subscriber, on another thread, creates nothing; the first leaving empties nothing.
    ASSERT_EQ(f.join(b, 1, "native:chat"), Errc::kOk);
    EXPECT_EQ(topic_events(bus, core::EventKind::kTopicCreated).size(), 1u);
    EXPECT_EQ(leave(f, a, 0, "native:chat"), 1u);
    EXPECT_TRUE(topic_events(bus, core::EventKind::kTopicEmptied).empty());

    // The last one leaving (by detaching) empties it.
    on(f.runtime, 1, [&] { f.hub.detach(b); });
    auto emptied = wait_topic_events(bus, core::EventKind::kTopicEmptied, 1);
    ASSERT_EQ(emptied.size(), 1u);
    EXPECT_EQ(emptied[0].module, "native");
    EXPECT_EQ(emptied[0].subject, "native:chat");
    EXPECT_EQ(emptied[0].principal, "p2");
    EXPECT_GT(emptied[0].seq, created[0].seq);

    // The same name again is a new topic.
    ASSERT_EQ(f.join(a, 0, "native:chat"), Errc::kOk);
    EXPECT_EQ(topic_events(bus, core::EventKind::kTopicCreated).size(), 2u);
    on(f.runtime, 0, [&] { f.hub.detach(a); });
}

TEST(HubEvents, AChurnOfFreshTopicsIsBoundedAndWhatIsLeftOutIsCounted) {
    core::EventBus bus(10'000);
    Fixture f(1);
    f.hub.set_events(&bus);
    Recorder a(1);
    constexpr int kTopics = 200;  // each one created, then emptied
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < kTopics; ++i) {
        const auto topic = "native:churn" + std::to_string(i);
        ASSERT_EQ(f.join(a, 0, topic), Errc::kOk);
        ASSERT_EQ(leave(f, a, 0, topic), 0u);
    }
    const double elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // Both kinds are published on the shard before the answer the loop waited for.
    const auto published = bus.recent(10'000).size();
    const auto suppressed =
        f.metrics.counter("hearth_hub_topic_events_suppressed_total", "").value();
    // Every transition is either an event or counted as left out.
    EXPECT_EQ(published + suppressed, 2u * kTopics);
    // A burst of 100, then 20 a second (the bound grows with the time the test took, so a slow
    // machine cannot make it fail).
    EXPECT_LE(static_cast<double>(published), 100.0 + 20.0 * elapsed_s + 1.0);
    EXPECT_GE(published, 100u);
    on(f.runtime, 0, [&] { f.hub.detach(a); });
}

TEST(HubEvents, LongNamesAreCutAndANameWithoutNamespaceIsTheHubs) {
    core::EventBus bus(100);
    Fixture f(1);
    f.hub.set_events(&bus);
    Recorder a(1), b(2);
    const std::string longest = "hunterpie:" + std::string(kMaxTopicBytes - 10, 's');
    ASSERT_EQ(f.join(a, 0, longest), Errc::kOk);
    ASSERT_EQ(f.join(b, 0, "plain"), Errc::kOk);
    auto created = topic_events(bus, core::EventKind::kTopicCreated);
    ASSERT_EQ(created.size(), 2u);
    EXPECT_EQ(created[0].module, "hunterpie");
    EXPECT_EQ(created[0].subject, longest.substr(0, kMaxEventTopicBytes));
    EXPECT_NE(created[0].detail.find("512 bytes"), std::string::npos) << created[0].detail;
    EXPECT_EQ(created[1].module, "hub");
    EXPECT_EQ(created[1].subject, "plain");
    on(f.runtime, 0, [&] {
        f.hub.detach(a);
        f.hub.detach(b);
    });
}

TEST(HubEvents, WithoutABusOrAfterItIsUnsetNothingIsPublished) {
    core::EventBus bus(100);
    Fixture f(1);
    Recorder a(1), b(2);
    ASSERT_EQ(f.join(a, 0, "native:before"), Errc::kOk);  // no bus yet: nothing, and no harm
    f.hub.set_events(&bus);
    ASSERT_EQ(f.join(b, 0, "native:during"), Errc::kOk);
    f.hub.set_events(nullptr);
    EXPECT_EQ(leave(f, b, 0, "native:during"), 0u);
    const auto all = bus.recent(100);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].subject, "native:during");
    on(f.runtime, 0, [&] { f.hub.detach(a); });
}

}  // namespace
}  // namespace hearth::hub
