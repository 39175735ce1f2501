#pragma once

// A PlayerSink that records what a zone tells its character, and checks the contract on the way:
// updates never nest, despawn / spawn / move only inside one, each consistent with what the
// character was shown before (no spawn of what it sees, no move or despawn of what it does not).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <hearth/world.hpp>

namespace hearth::world::test {

class RecordingSink final : public PlayerSink {
public:
    struct Update {
        std::uint32_t tick = 0;
        std::vector<EntityId> despawns;
        std::vector<EntityId> spawns;
        std::vector<EntityId> moves;
    };
    struct Correction {
        std::uint32_t seq = 0;
        Vec3 at;
        CorrectionReason reason{};
    };
    struct Hp {
        EntityId entity = 0;
        std::uint32_t hp = 0;
        std::uint32_t max_hp = 0;
        EntityId source = 0;
    };
    struct Chat {
        ChatChannel channel{};
        EntityId from = 0;
        std::string from_name;
        std::string text;
    };
    struct Refusal {
        Request request{};
        WorldError error{};
    };

    void entered(const ZoneEntry&, bool) override {}
    void begin_update(std::uint32_t tick) override {
        EXPECT_FALSE(open_) << "begin_update inside an update";
        open_ = true;
        updates.push_back({tick, {}, {}, {}});
    }
    void despawn(EntityId entity) override {
        EXPECT_TRUE(open_);
        EXPECT_EQ(visible.erase(entity), 1U) << "despawn of " << entity << ", not in view";
        updates.back().despawns.push_back(entity);
    }
    void spawn(const EntityView& e) override {
        EXPECT_TRUE(open_);
        EXPECT_TRUE(visible.insert(e.id).second) << "spawn of " << e.id << ", already in view";
        EXPECT_FALSE(e.name.empty());
        updates.back().spawns.push_back(e.id);
        spawned[e.id] = e;
        names[e.id] = std::string(e.name);
        spawned[e.id].name = names[e.id];
    }
    void move(EntityId entity, Vec3 at, float) override {
        EXPECT_TRUE(open_);
        EXPECT_TRUE(visible.contains(entity)) << "move of " << entity << ", not in view";
        updates.back().moves.push_back(entity);
        positions[entity] = at;
    }
    void end_update() override {
        EXPECT_TRUE(open_);
        const Update& u = updates.back();
        EXPECT_FALSE(u.despawns.empty() && u.spawns.empty() && u.moves.empty())
            << "an empty update";
        open_ = false;
    }
    void correction(std::uint32_t seq, Vec3 at, float, CorrectionReason reason) override {
        corrections.push_back({seq, at, reason});
    }
    void hp_update(EntityId entity, std::uint32_t hp, std::uint32_t max_hp,
                   EntityId source) override {
        hp_updates.push_back({entity, hp, max_hp, source});
    }
    void death(EntityId entity, EntityId killer) override { deaths.emplace_back(entity, killer); }
    void respawned(EntityId, Vec3, float, std::uint32_t, std::uint32_t) override {}
    void target_hp(EntityId entity, std::uint32_t hp, std::uint32_t max_hp) override {
        target_hps.push_back({entity, hp, max_hp, 0});
    }
    void chat(ChatChannel channel, EntityId from, std::string_view from_name,
              std::string_view text) override {
        chats.push_back({channel, from, std::string(from_name), std::string(text)});
    }
    void whisper(bool, std::string_view, std::string_view) override {}
    void notice(NoticeKind kind, std::string_view text) override {
        notices.emplace_back(kind, std::string(text));
    }
    void refused(Request request, WorldError error, std::uint32_t) override {
        refusals.push_back({request, error});
    }
    void left(LeaveReason) override {}

    /// The last update, if it was sent at `tick`.
    const Update* update_at(std::uint32_t tick) const {
        return !updates.empty() && updates.back().tick == tick ? &updates.back() : nullptr;
    }

    std::set<EntityId> visible;  // what the zone has shown, applied
    std::vector<Update> updates;
    std::map<EntityId, EntityView> spawned;  // the last spawn of each
    std::map<EntityId, std::string> names;
    std::map<EntityId, Vec3> positions;
    std::vector<Correction> corrections;
    std::vector<Hp> hp_updates;
    std::vector<std::pair<EntityId, EntityId>> deaths;
    std::vector<Hp> target_hps;
    std::vector<Chat> chats;
    std::vector<std::pair<NoticeKind, std::string>> notices;
    std::vector<Refusal> refusals;

private:
    bool open_ = false;
};

}  // namespace hearth::world::test
