#include "core/module_registry.hpp"
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <hearth/http.hpp>

#include "core/config.hpp"
#include "core/events.hpp"

namespace hearth::core {
namespace {

// Every call of every fake module, in order: "start:a", "stop:b", "reload:c".
using CallLog = std::vector<std::string>;

class FakeModule final : public Module {
public:
    FakeModule(std::string name, std::vector<std::string> needs, CallLog& calls)
        : info_{.name = std::move(name),
                .version = "1.2.3",
                .needs = std::move(needs),
                .config_section = "",
                .topic_namespace = "",
                .can_disable = true},
          calls_(calls) {}

    const ModuleInfo& info() const override { return info_; }
    bool enabled_in(const Config&) const override { return enabled; }
    void start(const Config&) override {
        calls_.push_back("start:" + info_.name);
        if (!fail_start.empty()) {
            throw std::runtime_error(fail_start);
        }
        if (failing_starts > 0) {
            --failing_starts;
            throw std::runtime_error("cannot listen on 0.0.0.0:1");
        }
    }
    ReloadOutcome reload(const Config&, const Config&) override {
        calls_.push_back("reload:" + info_.name);
        return reload_outcome;
    }
    void stop(std::chrono::steady_clock::time_point, StopCause cause) override {
        last_stop_cause = cause;
        calls_.push_back("stop:" + info_.name);
    }
    std::vector<ModuleCounter> counters() const override { return {{"connections", 7}}; }

    bool enabled = true;
    std::optional<StopCause> last_stop_cause;
    int failing_starts = 0;  // how many of the next starts throw
    std::string fail_start;
    ReloadOutcome reload_outcome;
    ModuleInfo info_;

private:
    CallLog& calls_;
};

class ModuleRegistryTest : public ::testing::Test {
protected:
    FakeModule& add(const std::string& name, std::vector<std::string> needs = {}) {
        auto m = std::make_unique<FakeModule>(name, std::move(needs), calls);
        auto& ref = *m;
        registry.add(std::move(m));
        return ref;
    }
    ModuleState state(const std::string& name) const { return registry.status(name)->state; }
    std::chrono::steady_clock::time_point soon() const {
        return std::chrono::steady_clock::now() + std::chrono::seconds(1);
    }

    // [server] holds shutdown_timeout_ms, the deadline of the stops a config change makes.
    static ConfigSchema server_schema() {
        ConfigSchema schema;
        schema.add<ServerConfig>();
        return schema;
    }
    std::shared_ptr<const Config> config = server_schema().load_string("", "test", {}).config;
    EventBus events{100};
    CallLog calls;
    ModuleRegistry registry{events, OnModuleFailure::kRefuse};
};

TEST_F(ModuleRegistryTest, StartsDependenciesFirstAndStopsInReverse) {
    add("game", {"chat", "store"});
    add("chat", {"store"});
    add("store");
    registry.validate();
    EXPECT_EQ(registry.start_order(), (std::vector<std::string>{"store", "chat", "game"}));
    registry.start_all(*config);
    EXPECT_EQ(calls, (CallLog{"start:store", "start:chat", "start:game"}));
    EXPECT_EQ(state("game"), ModuleState::kRunning);
    calls.clear();
    registry.stop_all(soon());
    EXPECT_EQ(calls, (CallLog{"stop:game", "stop:chat", "stop:store"}));
    EXPECT_EQ(state("store"), ModuleState::kDisabled);
    calls.clear();
    registry.stop_all(soon());  // idempotent
    EXPECT_TRUE(calls.empty());
}

TEST_F(ModuleRegistryTest, MissingAndCircularDependenciesAreNamed) {
    add("a", {"nope"});
    try {
        registry.validate();
        FAIL() << "validate accepted a missing dependency";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "module a needs module nope, which does not exist");
    }

    ModuleRegistry circle{events, OnModuleFailure::kRefuse};
    circle.add(std::make_unique<FakeModule>("x", std::vector<std::string>{"y"}, calls));
    circle.add(std::make_unique<FakeModule>("y", std::vector<std::string>{"x"}, calls));
    try {
        circle.validate();
        FAIL() << "validate accepted a cycle";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "modules need each other in a circle: x -> y -> x");
    }
    EXPECT_THROW(circle.add(std::make_unique<FakeModule>("x", std::vector<std::string>{}, calls)),
                 std::invalid_argument);
}

TEST_F(ModuleRegistryTest, RefusePolicyUndoesTheStartedOnesAndSaysWhy) {
    add("store");
    add("chat", {"store"}).fail_start = "port 5001 is in use";
    add("game", {"chat"});
    try {
        registry.start_all(*config);
        FAIL() << "start_all did not refuse";
    } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "module chat failed to start: port 5001 is in use");
    }
    // chat's stop undoes its half-done start; store, started before it, is stopped.
    EXPECT_EQ(calls, (CallLog{"start:store", "start:chat", "stop:chat", "stop:store"}));
    EXPECT_EQ(state("chat"), ModuleState::kDisabled);
    EXPECT_EQ(registry.status("chat")->last_error, "port 5001 is in use");
}

TEST_F(ModuleRegistryTest, ContinuePolicyStartsTheOthersAndReportsTheFailure) {
    ModuleRegistry lenient{events, OnModuleFailure::kContinue};
    auto store = std::make_unique<FakeModule>("store", std::vector<std::string>{}, calls);
    auto chat = std::make_unique<FakeModule>("chat", std::vector<std::string>{"store"}, calls);
    auto game = std::make_unique<FakeModule>("game", std::vector<std::string>{"chat"}, calls);
    auto solo = std::make_unique<FakeModule>("solo", std::vector<std::string>{}, calls);
    store->fail_start = "disk full";
    lenient.add(std::move(store));
    lenient.add(std::move(chat));
    lenient.add(std::move(game));
    lenient.add(std::move(solo));
    lenient.start_all(*config);
    EXPECT_EQ(calls, (CallLog{"start:store", "stop:store", "start:solo"}));
    EXPECT_EQ(lenient.status("store")->state, ModuleState::kFailed);
    EXPECT_EQ(lenient.status("store")->last_error, "disk full");
    EXPECT_EQ(lenient.status("chat")->state, ModuleState::kFailed);
    EXPECT_EQ(lenient.status("chat")->last_error, "needs module store, which is failed");
    EXPECT_EQ(lenient.status("game")->last_error, "needs module chat, which is failed");
    EXPECT_EQ(lenient.status("solo")->state, ModuleState::kRunning);
}

TEST_F(ModuleRegistryTest, DisabledInTheConfigDoesNotStart) {
    add("a").enabled = false;
    add("b");
    registry.start_all(*config);
    EXPECT_EQ(calls, (CallLog{"start:b"}));
    EXPECT_EQ(state("a"), ModuleState::kDisabled);
}

TEST_F(ModuleRegistryTest, ANeededModuleCannotBeDisabledBeforeItsUsers) {
    add("store");
    add("chat", {"store"});
    registry.start_all(*config);
    auto refused = registry.disable("store", soon());
    EXPECT_EQ(refused.error, ModuleActionError::kNeededBy);
    EXPECT_EQ(refused.message, "module chat needs module store: disable chat first");
    EXPECT_EQ(state("store"), ModuleState::kRunning);

    EXPECT_TRUE(registry.disable("chat", soon()).ok());
    EXPECT_TRUE(registry.disable("store", soon()).ok());
    EXPECT_EQ(state("store"), ModuleState::kDisabled);

    // And enabling goes the other way round.
    auto early = registry.enable("chat", *config);
    EXPECT_EQ(early.error, ModuleActionError::kNeedsStopped);
    EXPECT_EQ(early.message, "module chat needs module store, which is disabled: enable it first");
    EXPECT_TRUE(registry.enable("store", *config).ok());
    EXPECT_TRUE(registry.enable("chat", *config).ok());
    EXPECT_EQ(state("chat"), ModuleState::kRunning);
    EXPECT_EQ(registry.enable("nope", *config).error, ModuleActionError::kUnknownModule);
}

TEST_F(ModuleRegistryTest, CoreModulesCannotBeDisabledOrRestarted) {
    add("operator-api").info_.can_disable = false;
    registry.start_all(*config);
    EXPECT_EQ(registry.disable("operator-api", soon()).error, ModuleActionError::kNotDisableable);
    EXPECT_EQ(registry.restart("operator-api", *config, soon()).error,
              ModuleActionError::kNotDisableable);
    EXPECT_EQ(state("operator-api"), ModuleState::kRunning);
}

TEST_F(ModuleRegistryTest, RestartStopsThenStarts) {
    add("a");
    registry.start_all(*config);
    calls.clear();
    EXPECT_TRUE(registry.restart("a", *config, soon()).ok());
    EXPECT_EQ(calls, (CallLog{"stop:a", "start:a"}));
    EXPECT_EQ(state("a"), ModuleState::kRunning);
}

TEST_F(ModuleRegistryTest, ApplyStopsStartsAndReloadsByTheConfig) {
    auto& store = add("store");
    auto& chat = add("chat", {"store"});
    auto& game = add("game");
    game.enabled = false;
    registry.start_all(*config);
    calls.clear();

    // chat off, game on, store reloads (and cannot apply its section).
    chat.enabled = false;
    game.enabled = true;
    store.reload_outcome = {
        .applied = false, .reason = "cannot bind 0.0.0.0:1", .restart_keys = {}};
    const auto problems = registry.apply(*config);
    EXPECT_EQ(calls, (CallLog{"stop:chat", "reload:store", "start:game"}));
    EXPECT_EQ(problems,
              (std::vector<std::string>{
                  "module store keeps its running configuration: cannot bind 0.0.0.0:1"}));
    EXPECT_EQ(state("chat"), ModuleState::kDisabled);
    EXPECT_EQ(state("game"), ModuleState::kRunning);

    // store off while chat comes back on: store stays, and says why.
    calls.clear();
    store.enabled = false;
    store.reload_outcome = {};
    chat.enabled = true;
    registry.apply(*config);
    EXPECT_EQ(state("store"), ModuleState::kDisabled);
    EXPECT_EQ(state("chat"), ModuleState::kFailed);
}

TEST_F(ModuleRegistryTest, EveryStateChangeIsAnEvent) {
    add("a");
    registry.start_all(*config);
    registry.disable("a", soon());
    std::vector<std::string> details;
    for (const auto& e : events.recent(100, 0, {.kind = EventKind::kModuleStateChanged})) {
        EXPECT_EQ(e.module, "a");
        details.push_back(e.detail);
    }
    EXPECT_EQ(details, (std::vector<std::string>{"starting", "running", "stopping", "disabled"}));
    const auto status = registry.status("a");
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status->version, "1.2.3");
    ASSERT_EQ(status->counters.size(), 1u);
    EXPECT_EQ(status->counters[0].name, "connections");
}

}  // namespace
}  // namespace hearth::core

namespace hearth::core {
namespace {

// The cause decides what a module's clients are told (close_notice): 1012 for a restart, so that
// they come back, 1001 otherwise.
TEST_F(ModuleRegistryTest, TellsEachStopItsCause) {
    auto& chat = add("chat");
    registry.start_all(*config);
    registry.restart("chat", *config, soon());
    EXPECT_EQ(chat.last_stop_cause, StopCause::kRestart);
    registry.disable("chat", soon());
    EXPECT_EQ(chat.last_stop_cause, StopCause::kDisabled);
    registry.enable("chat", *config);
    registry.stop_all(soon());
    EXPECT_EQ(chat.last_stop_cause, StopCause::kShutdown);

    ModuleRegistry lenient{events, OnModuleFailure::kContinue};
    auto broken = std::make_unique<FakeModule>("broken", std::vector<std::string>{}, calls);
    broken->fail_start = "port 5001 is in use";
    auto& broken_ref = *broken;
    lenient.add(std::move(broken));
    lenient.start_all(*config);
    EXPECT_EQ(broken_ref.last_stop_cause, StopCause::kStartFailed);

    EXPECT_EQ(close_notice(StopCause::kRestart, "chat").code, 1012);
    EXPECT_EQ(close_notice(StopCause::kRestart, "chat").reason, "chat restarting");
    EXPECT_EQ(close_notice(StopCause::kDisabled, "chat").code, 1001);
    EXPECT_EQ(close_notice(StopCause::kDisabled, "chat").reason, "chat disabled");
}

// A module whose section changed in keys it applies by starting again (a listen address) is
// restarted on the new config; when that start fails it runs on the old one again.
TEST_F(ModuleRegistryTest, RestartsAModuleOnItsNewSectionAndFallsBack) {
    auto& chat = add("chat");
    registry.start_all(*config);
    chat.reload_outcome = {.applied = true, .reason = {}, .restart_keys = {}, .restart = true};
    calls.clear();
    EXPECT_TRUE(registry.apply(*config).empty());
    EXPECT_EQ(calls, (CallLog{"reload:chat", "stop:chat", "start:chat"}));
    EXPECT_EQ(chat.last_stop_cause, StopCause::kRestart);

    calls.clear();
    chat.failing_starts = 1;
    const auto problems = registry.apply(*config);
    EXPECT_EQ(calls,
              (CallLog{"reload:chat", "stop:chat", "start:chat", "stop:chat", "start:chat"}));
    EXPECT_EQ(problems, (std::vector<std::string>{"module chat keeps its running configuration: "
                                                  "cannot listen on 0.0.0.0:1"}));
    EXPECT_EQ(state("chat"), ModuleState::kRunning);

    chat.failing_starts = 2;
    EXPECT_EQ(registry.apply(*config).size(), 1u);
    EXPECT_EQ(state("chat"), ModuleState::kFailed);
}

}  // namespace
}  // namespace hearth::core
