#pragma once

// One sample of every message of the packet protocol: the round-trip tests encode and decode
// each, and the byte examples of docs/protocol/packets.md are these samples' bytes (doc_test.cpp
// compares them).

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include "frontends/packet/messages.hpp"

namespace hearth::packet::samples {

inline Alive alive() {
    return {};
}
inline LogoutRequest logout_request() {
    return {};
}
inline LoginRequest login_password() {
    return {LoginMethod::kPassword, "alice", "hunter2"};
}
inline LoginRequest login_token() {
    return {LoginMethod::kToken, "", "hs_9f2c"};
}
inline CharacterListRequest character_list_request() {
    return {};
}
inline CreateCharacterRequest create_character_request() {
    return {"Rowan", Looks{1, 2, 3, 4}};
}
inline DeleteCharacterRequest delete_character_request() {
    return {42};
}
inline SelectCharacterRequest select_character_request() {
    return {42};
}
inline ChangeMapRequest change_map_request() {
    return {2};
}
inline EnterWorldRequest enter_world_request() {
    return {};
}
inline MoveIntent move_intent() {
    MoveIntent m;
    m.seq = 7;
    m.count = 2;
    m.points[0] = {10.5F, 20.0F, 0.0F};
    m.points[1] = {11.0F, 21.0F, 0.0F};
    return m;
}
inline TargetHpRequest target_hp_request() {
    return {1001};
}
inline AttackRequest attack_request() {
    return {1001};
}
inline RespawnRequest respawn_request() {
    return {};
}
inline ChatSend chat_send() {
    return {ChatChannel::kLocal, "hi"};
}
inline WhisperSend whisper_send() {
    return {"Bo", "psst"};
}

inline Error error() {
    return {ErrorCode::kNameInvalid, 0x0713, static_cast<std::uint32_t>(NameProblem::kReserved),
            "Invalid name"};
}
inline LogoutReply logout_reply() {
    return {};
}
inline LoginReply login_reply() {
    return {7, "alice", 0x07FF, 60};
}
inline CharacterSummary rowan() {
    return {42, "Rowan", 3, Looks{1, 2, 3, 4}, 1};
}
inline CharacterList character_list() {
    return {false, {rowan()}};
}
inline CharacterCreated character_created() {
    return {rowan()};
}
inline CharacterDeleted character_deleted() {
    return {42};
}
inline CharacterSelected character_selected() {
    CharacterSelected c;
    c.id = 42;
    c.name = "Rowan";
    c.level = 3;
    c.experience = 1500;
    c.money = 250;
    c.stats = {80, 100, 20, 30, 10, 11, 12, 13};
    c.looks = {1, 2, 3, 4};
    c.position = {1, {520.0F, 480.5F, 0.0F}, 1.5F};
    c.inventory = {{0, 2001, 1}, {1, 3005, 20}};
    return c;
}
inline ZoneEntry zone_entry() {
    return {1, "Meadow", 2000.0F, 2000.0F, 17, {520.0F, 480.5F, 0.0F}, 1.5F, 20, 100.0F, 7.0F};
}
inline WorldEntered world_entered() {
    return {zone_entry()};
}
inline MapChanged map_changed() {
    ZoneEntry z = zone_entry();
    z.zone = 2;
    z.zone_name = "Caves";
    z.at = {100.0F, 100.0F, 0.0F};
    return {z};
}
inline Correction correction() {
    return {7, {10.0F, 20.0F, 0.0F}, 0.0F, CorrectionReason::kTooFast};
}
inline WorldUpdate world_update() {
    WorldUpdate u;
    u.tick = 1200;
    u.despawns = {1003};
    u.spawns = {{1001, EntityKind::kNpc, 5, "Wolf", 2, {530.0F, 470.0F, 0.0F}, 0.0F, 40, 40, {}}};
    u.moves = {{18, {521.0F, 481.0F, 0.0F}, 0.5F}};
    return u;
}
inline TargetHp target_hp() {
    return {1001, 30, 40};
}
inline HpUpdate hp_update() {
    return {1001, 30, 40, 17};
}
inline Death death() {
    return {1001, 17};
}
inline Respawned respawned() {
    return {17, {500.0F, 500.0F, 0.0F}, 0.0F, 100, 100};
}
inline ChatMessage chat_message() {
    return {ChatChannel::kLocal, 17, "Rowan", "hi"};
}
inline WhisperMessage whisper_message() {
    return {WhisperDirection::kReceived, "Rowan", "psst"};
}
inline Notice notice() {
    return {NoticeKind::kShutdown, "Restart in 5 minutes"};
}
inline ContinueOnNode continue_on_node() {
    return {"10.0.0.2", 29000, "t0k3n", 30};
}

/// Every message type, one sample each.
inline auto to_server() {
    return std::make_tuple(alive(), logout_request(), login_password(), character_list_request(),
                           create_character_request(), delete_character_request(),
                           select_character_request(), change_map_request(), enter_world_request(),
                           move_intent(), target_hp_request(), attack_request(), respawn_request(),
                           chat_send(), whisper_send());
}

inline auto to_client() {
    return std::make_tuple(error(), logout_reply(), login_reply(), character_list(),
                           character_created(), character_deleted(), character_selected(),
                           map_changed(), world_entered(), correction(), world_update(),
                           target_hp(), hp_update(), death(), respawned(), chat_message(),
                           whisper_message(), notice(), continue_on_node());
}

/// A message's packet, or "" when it does not encode.
template <class M>
std::string packet_of(const M& m, std::size_t max_packet_bytes = kDefaultMaxPacketBytes) {
    std::string out;
    if (encode(out, m, max_packet_bytes) != WireError::kNone) {
        return {};
    }
    return out;
}

/// The examples of docs/protocol/packets.md by name: what each `<!-- example: NAME -->` block
/// must hold.
struct Example {
    std::string_view name;
    std::string bytes;
};

inline std::vector<Example> doc_examples() {
    std::vector<Example> ex = {
        {"alive", packet_of(alive())},
        {"logout_request", packet_of(logout_request())},
        {"login_password", packet_of(login_password())},
        {"login_token", packet_of(login_token())},
        {"character_list_request", packet_of(character_list_request())},
        {"create_character_request", packet_of(create_character_request())},
        {"delete_character_request", packet_of(delete_character_request())},
        {"select_character_request", packet_of(select_character_request())},
        {"change_map_request", packet_of(change_map_request())},
        {"enter_world_request", packet_of(enter_world_request())},
        {"move_intent", packet_of(move_intent())},
        {"target_hp_request", packet_of(target_hp_request())},
        {"attack_request", packet_of(attack_request())},
        {"respawn_request", packet_of(respawn_request())},
        {"chat_send", packet_of(chat_send())},
        {"whisper_send", packet_of(whisper_send())},
        {"error", packet_of(error())},
        {"logout_reply", packet_of(logout_reply())},
        {"login_reply", packet_of(login_reply())},
        {"character_list", packet_of(character_list())},
        {"character_created", packet_of(character_created())},
        {"character_deleted", packet_of(character_deleted())},
        {"character_selected", packet_of(character_selected())},
        {"map_changed", packet_of(map_changed())},
        {"world_entered", packet_of(world_entered())},
        {"correction", packet_of(correction())},
        {"world_update", packet_of(world_update())},
        {"target_hp", packet_of(target_hp())},
        {"hp_update", packet_of(hp_update())},
        {"death", packet_of(death())},
        {"respawned", packet_of(respawned())},
        {"chat_message", packet_of(chat_message())},
        {"whisper_message", packet_of(whisper_message())},
        {"notice", packet_of(notice())},
        {"continue_on_node", packet_of(continue_on_node())},
    };
    // A tick's batch split over two packets: the sample's update at a maximum of 80 bytes (far
    // below what a server may configure, to keep the example short).
    std::string split;
    (void)encode_batched(split, world_update(), 80);
    ex.push_back({"world_update_split", split});
    return ex;
}

}  // namespace hearth::packet::samples
