#include "hub/hub.hpp"
#include <algorithm>
#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

#include "core/event_sink.hpp"
#include "core/metrics.hpp"
#include "core/runtime.hpp"
#include "core/shard_set.hpp"
#include "util/line_throttle.hpp"
#include "util/log.hpp"
#include "util/utf8.hpp"

namespace hearth::hub {

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("hub");
    return l;
}

// The longest topic namespace a topic event names as its module.
constexpr std::size_t kMaxEventNamespaceBytes = 64;

std::mutex formats_mutex;
std::vector<std::string> formats;

}  // namespace

std::size_t register_format(std::string_view name) {
    std::lock_guard lock(formats_mutex);
    for (std::size_t i = 0; i < formats.size(); ++i) {
        if (formats[i] == name) {
            return i;
        }
    }
    if (formats.size() == HubMessage::kMaxFormats) {
        throw std::logic_error("hub: too many message formats");
    }
    formats.emplace_back(name);
    return formats.size() - 1;
}

struct Hub::Impl : std::enable_shared_from_this<Hub::Impl> {
    // A subscription as the subscriber's thread sees it.
    struct LocalSub {
        Subscriber* subscriber;
        bool presence;
    };
    struct LocalConn {
        Subscriber* subscriber;
        // topic -> wants presence events. Made by the first subscribe: a connection that
        // subscribes to nothing (most idle ones) pays a pointer, not an empty map's 56 bytes.
        std::unique_ptr<std::unordered_map<std::string, bool>> topics;
    };
    // A member as the topic's shard sees it.
    struct MemberState {
        Member member;
        std::size_t thread;
        bool presence;
    };
    struct TopicState {
        std::unordered_map<ConnectionId, MemberState> members;
        std::vector<std::uint32_t> subscribers_on;  // per io thread
        std::vector<std::uint32_t> presence_on;     // per io thread
    };
    // Everything one io thread owns; touched only on that thread.
    struct Thread {
        std::unordered_map<ConnectionId, LocalConn> conns;
        std::unordered_map<std::string, std::vector<LocalSub>> local;  // topic -> subscribers here
        std::unordered_map<std::string, TopicState> topics;            // topics whose shard is here
    };

    Impl(core::Runtime& rt, core::MetricsRegistry& m, HubConfig c) : shards(rt) {
        for (std::size_t i = 0; i < shards.size(); ++i) {
            threads.push_back(std::make_unique<Thread>());
        }
        set_config(c);
        topics_gauge = &m.gauge("hearth_hub_topics", "Topics with at least one subscriber.");
        subscriptions_gauge =
            &m.gauge("hearth_hub_subscriptions", "Subscriptions, over all topics.");
        publishes = &m.counter("hearth_hub_publishes_total", "Messages published to topics.");
        deliveries = &m.counter("hearth_hub_deliveries_total",
                                "Messages handed to subscribers (topics and direct sends).");
        drops = &m.counter("hearth_hub_dropped_total",
                           "Deliveries a subscriber could not take (its outbox was full).");
        direct =
            &m.counter("hearth_hub_direct_sends_total", "Messages sent to one connection by id.");
        unknown = &m.counter("hearth_hub_unknown_recipient_total",
                             "Direct sends to a connection that is not attached.");
        limit_topics =
            &m.counter("hearth_hub_limit_rejections_total", "Subscriptions refused by a limit.",
                       {{"limit", "topics_per_connection"}});
        limit_subscribers =
            &m.counter("hearth_hub_limit_rejections_total", "Subscriptions refused by a limit.",
                       {{"limit", "subscribers_per_topic"}});
        limit_topic_bytes =
            &m.counter("hearth_hub_limit_rejections_total", "Subscriptions refused by a limit.",
                       {{"limit", "topic_bytes"}});
        latency = &m.histogram(
            "hearth_hub_fanout_latency_seconds",
            "From publish to delivery on the subscriber's thread, per destination thread.",
            core::Histogram::latency_seconds_bounds());
        topic_events_suppressed =
            &m.counter("hearth_hub_topic_events_suppressed_total",
                       "topic.created/topic.emptied events left out by their rate limit.");
    }

    void set_config(const HubConfig& c) {
        max_topics.store(c.max_topics_per_connection);
        max_subscribers.store(c.max_subscribers_per_topic);
    }

    std::size_t current() const {
        const auto t = core::ShardSet::current();
        if (!t || *t >= threads.size()) {
            throw std::logic_error("hub: called off an io thread");
        }
        return *t;
    }

    // true when the name is longer than kMaxTopicBytes: counted and logged (at debug: a client
    // can repeat it; the front-end that passed the name logs its own refusal).
    bool too_long(const std::string& topic, std::string_view operation) const {
        if (topic.size() <= kMaxTopicBytes) {
            return false;
        }
        limit_topic_bytes->inc();
        log()->debug("{}: a topic of {} bytes refused (max {})", operation, topic.size(),
                     kMaxTopicBytes);
        return true;
    }

    // ---- subscriber side -------------------------------------------------------------------

    void add_local(Thread& th, const std::string& topic, Subscriber* s, bool presence) {
        auto& subs = th.local[topic];
        for (auto& ls : subs) {
            if (ls.subscriber == s) {
                ls.presence = presence;
                return;
            }
        }
        subs.push_back({s, presence});
    }

    void remove_local(Thread& th, const std::string& topic, Subscriber* s) {
        auto it = th.local.find(topic);
        if (it == th.local.end()) {
            return;
        }
        auto& subs = it->second;
        for (std::size_t i = 0; i < subs.size(); ++i) {
            if (subs[i].subscriber == s) {
                subs[i] = subs.back();
                subs.pop_back();
                break;
            }
        }
        if (subs.empty()) {
            th.local.erase(it);
        }
    }

    // Runs on a destination thread: hands a message to its local subscribers of the topic.
    void deliver_local(std::size_t thread, const SharedMessage& m, bool echo) {
        auto& th = *threads[thread];
        auto it = th.local.find(m->topic());
        if (it == th.local.end()) {
            return;
        }
        latency->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - m->published_at())
                .count());
        std::uint64_t delivered = 0;
        std::uint64_t dropped = 0;
        // By index: a subscriber's deliver() must not change subscriptions, but if one does, this
        // stays memory-safe.
        auto& subs = it->second;
        for (std::size_t i = 0; i < subs.size(); ++i) {
            Subscriber* s = subs[i].subscriber;
            if (!echo && s->subscriber_id() == m->from()) {
                continue;
            }
            if (s->deliver(m)) {
                ++delivered;
            } else {
                ++dropped;
            }
        }
        deliveries->inc(delivered);
        if (dropped > 0) {
            drops->inc(dropped);
        }
    }

    void presence_local(std::size_t thread, const PresenceEvent& e) {
        auto& th = *threads[thread];
        auto it = th.local.find(e.topic);
        if (it == th.local.end()) {
            return;
        }
        auto& subs = it->second;
        for (std::size_t i = 0; i < subs.size(); ++i) {
            if (subs[i].presence && subs[i].subscriber->subscriber_id() != e.connection) {
                subs[i].subscriber->on_presence(e);
            }
        }
    }

    // ---- shard side ------------------------------------------------------------------------

    // A topic got its first member or lost its last one. Runs on the topic's shard, at the
    // transition only: fan-out never comes here.
    void topic_event(core::EventKind kind, const std::string& topic, const std::string& principal,
                     std::string_view what) {
        if (!events.connected()) {
            return;
        }
        const auto admitted = topic_events.admit();
        if (!admitted) {
            topic_events_suppressed->inc();
            return;
        }
        const auto colon = topic.find(':');
        std::string module = colon == std::string::npos
                                 ? std::string("hub")
                                 : util::bounded_utf8(std::string_view(topic).substr(0, colon),
                                                      kMaxEventNamespaceBytes);
        std::string detail(what);
        if (topic.size() > kMaxEventTopicBytes) {
            detail += " (the name has " + std::to_string(topic.size()) + " bytes; cut to " +
                      std::to_string(kMaxEventTopicBytes) + ")";
        }
        if (*admitted > 0) {
            detail += " (" + std::to_string(*admitted) + " topic events left out before)";
        }
        events.publish(kind, std::move(module), util::bounded_utf8(topic, kMaxEventTopicBytes),
                       std::move(detail), util::bounded_utf8(principal, kMaxEventPrincipalBytes));
    }

    void announce(std::size_t shard, const TopicState& ts, const PresenceEvent& e) {
        for (std::size_t x = 0; x < ts.presence_on.size(); ++x) {
            if (ts.presence_on[x] == 0) {
                continue;
            }
            if (x == shard) {
                presence_local(x, e);
            } else {
                shards.post(x, [self = shared_from_this(), x, e] { self->presence_local(x, e); });
            }
        }
    }

    // Removes a member from a topic on its shard; announces the leave.
    void remove_member(std::size_t shard, const std::string& topic, ConnectionId id) {
        auto& th = *threads[shard];
        auto it = th.topics.find(topic);
        if (it == th.topics.end()) {
            return;
        }
        auto& ts = it->second;
        auto m = ts.members.find(id);
        if (m == ts.members.end()) {
            return;
        }
        const MemberState gone = std::move(m->second);
        ts.members.erase(m);
        --ts.subscribers_on[gone.thread];
        if (gone.presence) {
            --ts.presence_on[gone.thread];
        }
        subscriptions_gauge->sub(1);
        announce(shard, ts,
                 PresenceEvent{PresenceEvent::Kind::kLeave, topic, id, gone.member.principal});
        if (ts.members.empty()) {
            th.topics.erase(it);
            topics_gauge->sub(1);
            topic_event(core::EventKind::kTopicEmptied, topic, gone.member.principal,
                        "its last subscriber left");
        }
    }

    // Topics live on the shard their name hashes to; subscribers on their connection's thread.
    core::ShardSet shards;
    std::vector<std::unique_ptr<Thread>> threads;  // one per shard
    std::atomic<std::int64_t> max_topics{0};
    std::atomic<std::int64_t> max_subscribers{0};

    std::shared_mutex directory_mutex;
    std::unordered_map<ConnectionId, std::size_t> directory;  // attached connection -> its thread

    core::Gauge* topics_gauge;
    core::Gauge* subscriptions_gauge;
    core::Counter* publishes;
    core::Counter* deliveries;
    core::Counter* drops;
    core::Counter* direct;
    core::Counter* unknown;
    core::Counter* limit_topics;
    core::Counter* limit_subscribers;
    core::Counter* limit_topic_bytes;
    core::Histogram* latency;
    core::Counter* topic_events_suppressed;
    core::EventSink events;
    // A client can create and empty topics as fast as it can send (join and leave a fresh name),
    // and each event would push an older one out of the operator's history: as failed logins,
    // they share one rate over every connection.
    util::LineThrottle topic_events{util::TokenRate{.per_s = 20, .depth = 100}};
};

Hub::Hub(core::Runtime& runtime, core::MetricsRegistry& metrics, HubConfig config)
    : impl_(std::make_shared<Impl>(runtime, metrics, config)) {}

Hub::~Hub() {
    // Work still posted to the io threads may hold the state; it publishes nothing from now on.
    impl_->events.set(nullptr);
}

void Hub::update_config(HubConfig config) {
    impl_->set_config(config);
}

void Hub::set_events(core::EventBus* events) {
    impl_->events.set(events);
}

void Hub::attach(Subscriber& subscriber) {
    const auto t = impl_->current();
    const auto id = subscriber.subscriber_id();
    impl_->threads[t]->conns.emplace(id, Impl::LocalConn{&subscriber, {}});
    std::unique_lock lock(impl_->directory_mutex);
    impl_->directory[id] = t;
}

void Hub::detach(Subscriber& subscriber) {
    const auto t = impl_->current();
    auto& th = *impl_->threads[t];
    const auto id = subscriber.subscriber_id();
    auto it = th.conns.find(id);
    if (it == th.conns.end()) {
        return;
    }
    const auto no_topics = std::unordered_map<std::string, bool>();
    for (const auto& [topic, presence] : it->second.topics ? *it->second.topics : no_topics) {
        impl_->remove_local(th, topic, &subscriber);
        const auto shard = impl_->shards.shard_of(topic);
        impl_->shards.post(
            shard, [self = impl_, shard, topic, id] { self->remove_member(shard, topic, id); });
    }
    th.conns.erase(it);
    std::unique_lock lock(impl_->directory_mutex);
    impl_->directory.erase(id);
}

Subscriber* Hub::local(ConnectionId id) const {
    const auto& conns = impl_->threads[impl_->current()]->conns;
    const auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.subscriber;
}

void Hub::subscribe(Subscriber& subscriber, const std::string& topic, bool presence_events,
                    Done done) {
    const auto t = impl_->current();
    auto& th = *impl_->threads[t];
    const auto id = subscriber.subscriber_id();
    auto it = th.conns.find(id);
    if (it == th.conns.end()) {
        done(Errc::kNotAllowed);
        return;
    }
    if (impl_->too_long(topic, "subscribe")) {
        done(Errc::kTooLarge);
        return;
    }
    auto& lc = it->second;
    if (!lc.topics) {
        lc.topics = std::make_unique<std::unordered_map<std::string, bool>>();
    }
    auto& topics = *lc.topics;
    const auto existing = topics.find(topic);
    const bool was_subscribed = existing != topics.end();
    if (was_subscribed && existing->second == presence_events) {
        done(Errc::kOk);
        return;
    }
    if (!was_subscribed && static_cast<std::int64_t>(topics.size()) >= impl_->max_topics.load()) {
        impl_->limit_topics->inc();
        done(Errc::kLimitReached);
        return;
    }
    // Reserved now, so that a burst of subscribes counts against the per-connection bound at once.
    topics[topic] = presence_events;
    const auto shard = impl_->shards.shard_of(topic);
    Member member{id, lc.subscriber->principal()};
    impl_->shards.post(shard, [self = impl_, shard, t, topic, member = std::move(member),
                               presence_events, was_subscribed, done = std::move(done)]() mutable {
        auto& sh = *self->threads[shard];
        auto [ti, created] = sh.topics.try_emplace(topic);
        auto& ts = ti->second;
        if (created) {
            ts.subscribers_on.assign(self->threads.size(), 0);
            ts.presence_on.assign(self->threads.size(), 0);
            self->topics_gauge->add(1);
        }
        const auto member_id = member.connection;
        auto m = ts.members.find(member_id);
        Errc result = Errc::kOk;
        if (m == ts.members.end()) {
            const auto limit = self->max_subscribers.load();
            if (limit > 0 && static_cast<std::int64_t>(ts.members.size()) >= limit) {
                self->limit_subscribers->inc();
                result = Errc::kLimitReached;
                if (ts.members.empty()) {
                    sh.topics.erase(ti);
                    self->topics_gauge->sub(1);
                }
            } else {
                const PresenceEvent join{PresenceEvent::Kind::kJoin, topic, member.connection,
                                         member.principal};
                const bool first = ts.members.empty();
                ts.members.emplace(member_id,
                                   Impl::MemberState{std::move(member), t, presence_events});
                ++ts.subscribers_on[t];
                if (presence_events) {
                    ++ts.presence_on[t];
                }
                self->subscriptions_gauge->add(1);
                self->announce(shard, ts, join);
                if (first) {
                    self->topic_event(core::EventKind::kTopicCreated, topic, join.principal,
                                      "its first subscriber joined");
                }
            }
        } else if (m->second.presence != presence_events) {
            m->second.presence = presence_events;
            presence_events ? ++ts.presence_on[t] : --ts.presence_on[t];
        }
        self->shards.post(t, [self, t, topic, member_id, presence_events, was_subscribed, result,
                              done = std::move(done)] {
            auto& th2 = *self->threads[t];
            auto c = th2.conns.find(member_id);
            if (c == th2.conns.end()) {
                return;  // detached meanwhile; its detach removes the membership on the shard
            }
            if (result != Errc::kOk) {
                if (!was_subscribed) {
                    c->second.topics->erase(topic);
                }
                done(result);
                return;
            }
            self->add_local(th2, topic, c->second.subscriber, presence_events);
            done(Errc::kOk);
        });
    });
}

void Hub::unsubscribe(Subscriber& subscriber, const std::string& topic, Done done) {
    const auto t = impl_->current();
    auto& th = *impl_->threads[t];
    const auto id = subscriber.subscriber_id();
    auto it = th.conns.find(id);
    if (it == th.conns.end() || !it->second.topics || it->second.topics->erase(topic) == 0) {
        done(Errc::kNotFound);
        return;
    }
    impl_->remove_local(th, topic, &subscriber);
    const auto shard = impl_->shards.shard_of(topic);
    impl_->shards.post(shard,
                       [self = impl_, shard, topic, id] { self->remove_member(shard, topic, id); });
    done(Errc::kOk);
}

void Hub::publish(SharedMessage message, bool echo) {
    (void)impl_->current();  // refuses a call off the io threads
    if (impl_->too_long(message->topic(), "publish")) {
        return;
    }
    impl_->publishes->inc();
    const auto shard = impl_->shards.shard_of(message->topic());
    auto fan_out = [self = impl_, shard, message = std::move(message), echo] {
        auto& sh = *self->threads[shard];
        auto it = sh.topics.find(message->topic());
        if (it == sh.topics.end()) {
            return;
        }
        const auto& on = it->second.subscribers_on;
        for (std::size_t x = 0; x < on.size(); ++x) {
            if (on[x] == 0) {
                continue;
            }
            if (x == shard) {
                self->deliver_local(x, message, echo);
            } else {
                self->shards.post(
                    x, [self, x, message, echo] { self->deliver_local(x, message, echo); });
            }
        }
    };
    impl_->shards.dispatch(shard, std::move(fan_out));
}

void Hub::send(ConnectionId to, SharedMessage message, Done done) {
    const auto t = impl_->current();
    std::size_t target = 0;
    {
        std::shared_lock lock(impl_->directory_mutex);
        auto it = impl_->directory.find(to);
        if (it == impl_->directory.end()) {
            lock.unlock();
            impl_->unknown->inc();
            done(Errc::kNotFound);
            return;
        }
        target = it->second;
    }
    impl_->direct->inc();
    auto hand_over = [self = impl_, target, t, to, message = std::move(message),
                      done = std::move(done)]() mutable {
        auto& th = *self->threads[target];
        auto c = th.conns.find(to);
        Errc result = Errc::kOk;
        if (c == th.conns.end()) {
            self->unknown->inc();
            result = Errc::kNotFound;
        } else if (c->second.subscriber->deliver(message)) {
            self->deliveries->inc();
        } else {
            self->drops->inc();
        }
        if (target == t) {
            done(result);
        } else {
            self->shards.post(t, [done = std::move(done), result] { done(result); });
        }
    };
    impl_->shards.dispatch(target, std::move(hand_over));
}

void Hub::presence(const std::string& topic, std::function<void(std::vector<Member>)> done) {
    const auto t = impl_->current();
    if (topic.size() > kMaxTopicBytes) {
        // No topic has that name. Posted, as every completion: never re-entered from the call.
        impl_->shards.post(t, [done = std::move(done)] { done({}); });
        return;
    }
    const auto shard = impl_->shards.shard_of(topic);
    impl_->shards.post(shard, [self = impl_, shard, t, topic, done = std::move(done)]() mutable {
        std::vector<Member> members;
        auto& sh = *self->threads[shard];
        if (auto it = sh.topics.find(topic); it != sh.topics.end()) {
            members.reserve(it->second.members.size());
            for (const auto& [id, m] : it->second.members) {
                members.push_back(m.member);
            }
        }
        self->shards.post(t, [done = std::move(done), members = std::move(members)]() mutable {
            done(std::move(members));
        });
    });
}

void Hub::list_topics(std::size_t max, std::function<void(std::vector<TopicInfo>)> done) {
    // Each shard reports its own topics; the last one to answer sorts and completes.
    struct Gather {
        std::mutex mutex;
        std::vector<TopicInfo> topics;
        std::size_t waiting = 0;
        std::function<void(std::vector<TopicInfo>)> done;
    };
    auto gather = std::make_shared<Gather>();
    gather->waiting = impl_->threads.size();
    gather->done = std::move(done);
    for (std::size_t shard = 0; shard < impl_->threads.size(); ++shard) {
        impl_->shards.post(shard, [self = impl_, shard, gather, max] {
            std::vector<TopicInfo> mine;
            for (const auto& [name, state] : self->threads[shard]->topics) {
                mine.push_back({name, state.members.size()});
            }
            std::unique_lock lock(gather->mutex);
            gather->topics.insert(gather->topics.end(), std::make_move_iterator(mine.begin()),
                                  std::make_move_iterator(mine.end()));
            if (--gather->waiting > 0) {
                return;
            }
            auto all = std::move(gather->topics);
            lock.unlock();
            std::sort(all.begin(), all.end(),
                      [](const TopicInfo& a, const TopicInfo& b) { return a.topic < b.topic; });
            if (all.size() > max) {
                all.resize(max);
            }
            gather->done(std::move(all));
        });
    }
}

void Hub::topic_members(const std::string& topic, std::function<void(std::vector<Member>)> done) {
    if (topic.size() > kMaxTopicBytes) {
        // No topic has that name; answered on an io thread, as the contract says.
        impl_->shards.post(0, [done = std::move(done)] { done({}); });
        return;
    }
    const auto shard = impl_->shards.shard_of(topic);
    impl_->shards.post(shard, [self = impl_, shard, topic, done = std::move(done)] {
        std::vector<Member> members;
        auto& sh = *self->threads[shard];
        if (auto it = sh.topics.find(topic); it != sh.topics.end()) {
            members.reserve(it->second.members.size());
            for (const auto& [id, m] : it->second.members) {
                members.push_back(m.member);
            }
        }
        std::sort(members.begin(), members.end(),
                  [](const Member& a, const Member& b) { return a.connection < b.connection; });
        done(std::move(members));
    });
}

core::Runtime& Hub::runtime() const noexcept {
    return impl_->shards.runtime();
}

}  // namespace hearth::hub
