#include "frontends/packet/messages.hpp"
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "unit/packet/samples.hpp"

namespace hearth::packet {
namespace {

// The one packet in `bytes`.
Packet only_packet(const std::string& bytes) {
    const FrameResult r = decode_packet(bytes, kLargestMaxPacketBytes);
    EXPECT_EQ(r.status, FrameStatus::kPacket);
    EXPECT_EQ(r.consumed, bytes.size());
    return r.packet;
}

// Encodes `m`, reads the packet back through the direction's dispatch and compares.
template <class M>
void round_trip(const M& m) {
    const std::string bytes = samples::packet_of(m);
    ASSERT_FALSE(bytes.empty()) << opcode_name(static_cast<std::uint16_t>(M::kOpcode));
    const Packet p = only_packet(bytes);
    EXPECT_EQ(p.type, static_cast<std::uint16_t>(M::kOpcode));
    int calls = 0;
    const auto check = [&](const auto& got) {
        ++calls;
        using Got = std::decay_t<decltype(got)>;
        if constexpr (std::is_same_v<Got, M>) {
            EXPECT_EQ(got, m) << opcode_name(p.type);
        } else {
            ADD_FAILURE() << "dispatched to another message for " << opcode_name(p.type);
        }
    };
    const WireError e = M::kDirection == Direction::kToServer ? dispatch_to_server(p, check)
                                                              : dispatch_to_client(p, check);
    EXPECT_EQ(e, WireError::kNone) << opcode_name(p.type);
    EXPECT_EQ(calls, 1);
}

TEST(PacketMessages, EveryMessageRoundTrips) {
    std::apply([](const auto&... m) { (round_trip(m), ...); }, samples::to_server());
    std::apply([](const auto&... m) { (round_trip(m), ...); }, samples::to_client());
    round_trip(samples::login_token());
}

// Cuts every sample's payload at every length: each shorter payload is an error (never a crash,
// never a message), except where the cut falls after the last field.
template <class M>
void truncations(const M& m) {
    const std::string bytes = samples::packet_of(m);
    const std::string_view payload = std::string_view(bytes).substr(kHeaderBytes);
    for (std::size_t n = 0; n < payload.size(); ++n) {
        const Decoded<M> d = decode<M>(payload.substr(0, n));
        EXPECT_NE(d.error, WireError::kNone)
            << opcode_name(static_cast<std::uint16_t>(M::kOpcode)) << " cut at " << n;
    }
}

TEST(PacketMessages, EveryTruncatedPayloadIsAnError) {
    std::apply([](const auto&... m) { (truncations(m), ...); }, samples::to_server());
    std::apply([](const auto&... m) { (truncations(m), ...); }, samples::to_client());
}

TEST(PacketMessages, TrailingBytesAreIgnored) {
    // A newer peer may append fields: an older reader reads the fields it knows.
    std::string bytes = samples::packet_of(samples::login_password());
    bytes += "new";
    const Packet p{0x0708, std::string_view(bytes).substr(kHeaderBytes)};
    int calls = 0;
    const WireError e = dispatch_to_server(p, [&](const auto& m) {
        if constexpr (std::is_same_v<std::decay_t<decltype(m)>, LoginRequest>) {
            EXPECT_EQ(m, samples::login_password());
            ++calls;
        }
    });
    EXPECT_EQ(e, WireError::kNone);
    EXPECT_EQ(calls, 1);
}

TEST(PacketMessages, OneIdTwoMessagesByDirection) {
    const std::string error = samples::packet_of(samples::error());
    const std::string alive = samples::packet_of(samples::alive());
    bool got_error = false;
    EXPECT_EQ(dispatch_to_client(only_packet(error),
                                 [&](const auto& m) {
                                     got_error = std::is_same_v<std::decay_t<decltype(m)>, Error>;
                                 }),
              WireError::kNone);
    EXPECT_TRUE(got_error);
    bool got_alive = false;
    EXPECT_EQ(dispatch_to_server(only_packet(alive),
                                 [&](const auto& m) {
                                     got_alive = std::is_same_v<std::decay_t<decltype(m)>, Alive>;
                                 }),
              WireError::kNone);
    EXPECT_TRUE(got_alive);
}

TEST(PacketMessages, UnknownOpcodesAreReported) {
    int calls = 0;
    const auto count = [&](const auto&) { ++calls; };
    for (const std::uint16_t type : {0x0000, 0x0701, 0x0711, 0x0FFF, 0x1009, 0x1F02, 0xFFFF}) {
        EXPECT_EQ(dispatch_to_server(Packet{type, ""}, count), WireError::kUnknownOpcode) << type;
        EXPECT_EQ(dispatch_to_client(Packet{type, ""}, count), WireError::kUnknownOpcode) << type;
    }
    // Server-only messages are unknown to the server, and the reverse.
    for (const Opcode op : {Opcode::kCorrection, Opcode::kWorldUpdate, Opcode::kHpUpdate,
                            Opcode::kDeath, Opcode::kNotice, Opcode::kContinueOnNode}) {
        EXPECT_EQ(dispatch_to_server(Packet{static_cast<std::uint16_t>(op), ""}, count),
                  WireError::kUnknownOpcode);
    }
    EXPECT_EQ(dispatch_to_client(Packet{static_cast<std::uint16_t>(Opcode::kMove), ""}, count),
              WireError::kUnknownOpcode);
    EXPECT_EQ(dispatch_to_client(Packet{static_cast<std::uint16_t>(Opcode::kAttack), ""}, count),
              WireError::kUnknownOpcode);
    EXPECT_EQ(calls, 0);
}

TEST(PacketMessages, ClientEnumsAreChecked) {
    const std::string bad_method("\x03\x00\x00\x00\x00", 5);
    EXPECT_EQ(decode<LoginRequest>(bad_method).error, WireError::kBadValue);
    const std::string transfer("\x02\x00\x00\x01\x00x", 6);
    EXPECT_EQ(decode<LoginRequest>(transfer).error, WireError::kNone);
    const std::string bad_channel("\x02\x02\x00hi", 5);
    EXPECT_EQ(decode<ChatSend>(bad_channel).error, WireError::kBadValue);
}

TEST(PacketMessages, ServerEnumsKeepUnknownValues) {
    // A newer server's error code reaches an older client as its number.
    std::string payload("\xE7\x03\x00\x00\x00\x00\x00\x00\x00\x00", 10);  // code 999
    const Decoded<Error> d = decode<Error>(payload);
    ASSERT_EQ(d.error, WireError::kNone);
    EXPECT_EQ(static_cast<std::uint16_t>(d.message.code), 999);
    EXPECT_EQ(error_text(d.message.code), "unknown error");
}

TEST(PacketMessages, MovePathBounds) {
    MoveIntent m = samples::move_intent();
    m.count = 0;
    std::string out;
    EXPECT_EQ(encode(out, m), WireError::kBadValue);
    m.count = 17;
    EXPECT_EQ(encode(out, m), WireError::kTooMany);
    EXPECT_TRUE(out.empty());
    m.count = 16;
    EXPECT_EQ(encode(out, m), WireError::kNone);
    EXPECT_EQ(out.size(), kHeaderBytes + 4 + 1 + 16 * 12);

    const std::string zero("\x01\x00\x00\x00\x00", 5);
    EXPECT_EQ(decode<MoveIntent>(zero).error, WireError::kBadValue);
    const std::string seventeen("\x01\x00\x00\x00\x11", 5);
    EXPECT_EQ(decode<MoveIntent>(seventeen).error, WireError::kTooMany);
    std::string nan_point("\x01\x00\x00\x00\x01", 5);
    nan_point += std::string("\x00\x00\xC0\x7F", 4) + std::string(8, '\0');
    EXPECT_EQ(decode<MoveIntent>(nan_point).error, WireError::kBadValue);
}

TEST(PacketMessages, EncodeErrorsAppendNothing) {
    std::string out = "keep";
    EXPECT_EQ(encode(out, CreateCharacterRequest{std::string_view("a-name-longer-than-thirty-two-b"
                                                                  "ytes"),
                                                 {}}),
              WireError::kStringTooLong);
    EXPECT_EQ(encode(out, ChatSend{ChatChannel::kZone, "\xFF"}), WireError::kBadUtf8);
    EXPECT_EQ(encode(out, Correction{1,
                                     {std::numeric_limits<float>::quiet_NaN(), 0, 0},
                                     0,
                                     CorrectionReason::kTooFast}),
              WireError::kBadValue);
    EXPECT_EQ(encode(out, samples::character_selected(), 50), WireError::kTooLarge);
    EXPECT_EQ(out, "keep");
}

// The largest instance of every message that is not a batch: every string at its bound, every
// list full.
TEST(PacketMessages, EveryNonBatchMessageFitsTheSmallestMaximum) {
    const std::string name(kMaxCharacterNameBytes, 'n');
    const std::string chat(kMaxChatBytes, 'c');
    const auto add = [&](const auto& m) {
        std::string out;
        EXPECT_EQ(encode(out, m, kSmallestMaxPacketBytes), WireError::kNone)
            << opcode_name(static_cast<std::uint16_t>(std::decay_t<decltype(m)>::kOpcode));
    };
    add(LoginRequest{LoginMethod::kPassword, std::string(kMaxUsernameBytes, 'u'),
                     std::string(kMaxSecretBytes, 's')});
    add(CreateCharacterRequest{name, {}});
    MoveIntent move;
    move.count = kMaxPathPoints;
    add(move);
    add(ChatSend{ChatChannel::kZone, chat});
    add(WhisperSend{name, chat});
    add(Error{ErrorCode::kInternalError, 0, 0, std::string(kMaxErrorMessageBytes, 'e')});
    add(LoginReply{1, std::string(kMaxAccountNameBytes, 'a'), 0xFFFF, 0xFFFF});
    add(CharacterCreated{{1, name, 1, {}, 1}});
    CharacterSelected selected = samples::character_selected();
    selected.name = name;
    selected.inventory.assign(kMaxInventorySlots, InventorySlot{1, 2, 3});
    add(selected);
    const std::string zone_name(kMaxZoneNameBytes, 'z');
    ZoneEntry z = samples::zone_entry();
    z.zone_name = zone_name;
    add(WorldEntered{z});
    add(MapChanged{z});
    add(ChatMessage{ChatChannel::kZone, 1, name, chat});
    add(WhisperMessage{WhisperDirection::kSent, name, chat});
    add(Notice{NoticeKind::kInfo, std::string(kMaxNoticeBytes, 'x')});
    add(ContinueOnNode{std::string(kMaxHostBytes, 'h'), 1, std::string(kMaxNodeTokenBytes, 't'),
                       1});
}

// ---- batches ----------------------------------------------------------------------------------

// Reads every packet of `bytes` as a WorldUpdate and checks the continuation flags.
std::vector<WorldUpdate> read_updates(const std::string& bytes, std::size_t max_packet_bytes) {
    std::vector<WorldUpdate> out;
    FrameDecoder d(max_packet_bytes);
    std::string_view in = bytes;
    while (!in.empty()) {
        const FrameResult r = d.next(in);
        EXPECT_EQ(r.status, FrameStatus::kPacket);
        if (r.status != FrameStatus::kPacket) {
            break;
        }
        EXPECT_LE(r.consumed, max_packet_bytes);
        in.remove_prefix(r.consumed);
        const Decoded<WorldUpdate> u = decode<WorldUpdate>(r.packet.payload);
        EXPECT_EQ(u.error, WireError::kNone);
        out.push_back(u.message);
    }
    return out;
}

WorldUpdate big_update(std::vector<std::string>& names) {
    WorldUpdate u;
    u.tick = 99;
    for (std::uint32_t i = 0; i < 300; ++i) {
        u.despawns.push_back(5000 + i);
    }
    names.clear();
    for (std::uint32_t i = 0; i < 120; ++i) {
        names.push_back("npc-" + std::to_string(i));
    }
    for (std::uint32_t i = 0; i < 120; ++i) {
        u.spawns.push_back({i,
                            EntityKind::kNpc,
                            i % 7,
                            names[i],
                            1,
                            {static_cast<float>(i), 2.0F, 0.0F},
                            0.25F,
                            10,
                            10,
                            {}});
    }
    for (std::uint32_t i = 0; i < 700; ++i) {
        u.moves.push_back({1000 + i, {static_cast<float>(i) / 2, 1.0F, 0.0F}, 0.0F});
    }
    return u;
}

TEST(PacketBatches, TickSpansPacketsThatEachReadAlone) {
    std::vector<std::string> names;
    const WorldUpdate all = big_update(names);
    for (const std::size_t max :
         {std::size_t{1024}, kDefaultMaxPacketBytes, std::size_t{4000}, kLargestMaxPacketBytes}) {
        std::string out = "x";
        ASSERT_EQ(encode_batched(out, all, max), WireError::kNone) << max;
        const std::string packets = out.substr(1);  // the decoded names are views into it
        const std::vector<WorldUpdate> parts = read_updates(packets, max);
        ASSERT_FALSE(parts.empty());
        WorldUpdate merged;
        merged.tick = all.tick;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            EXPECT_EQ(parts[i].tick, all.tick);
            EXPECT_EQ(parts[i].more, i + 1 < parts.size()) << "packet " << i << " of " << max;
            merged.despawns.insert(merged.despawns.end(), parts[i].despawns.begin(),
                                   parts[i].despawns.end());
            merged.spawns.insert(merged.spawns.end(), parts[i].spawns.begin(),
                                 parts[i].spawns.end());
            merged.moves.insert(merged.moves.end(), parts[i].moves.begin(), parts[i].moves.end());
        }
        EXPECT_EQ(merged, all) << max;
        if (max == kLargestMaxPacketBytes) {
            EXPECT_EQ(parts.size(), 1U);
        } else {
            // Packets are filled: all but the last are too full for one more entry (48 bytes at
            // most).
            const std::size_t total = out.size() - 1;
            EXPECT_LE(parts.size(), total / (max - 48) + 1) << max;
        }
    }
}

// Moves and despawns are stored by a batch's own code, not the Writer's (fill_fixed): a tick that
// fits one packet has the bytes the message's field list gives.
TEST(PacketBatches, OnePacketBatchHasTheMessagesBytes) {
    std::vector<std::string> names;
    const WorldUpdate all = big_update(names);
    std::string batched;
    ASSERT_EQ(encode_batched(batched, all, kLargestMaxPacketBytes), WireError::kNone);
    std::string single;
    ASSERT_EQ(encode(single, all, kLargestMaxPacketBytes), WireError::kNone);
    EXPECT_EQ(batched, single);
}

TEST(PacketBatches, NonFiniteMoveFailsWithoutOutput) {
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
        for (int field = 0; field < 4; ++field) {
            std::vector<std::string> names;
            WorldUpdate u = big_update(names);
            EntityMove& m = u.moves[650];  // in a later packet than the first
            (field == 0 ? m.at.x : field == 1 ? m.at.y : field == 2 ? m.at.z : m.heading) = bad;
            std::string out = "keep";
            EXPECT_EQ(encode_batched(out, u, 1024), WireError::kBadValue) << field;
            EXPECT_EQ(out, "keep");
        }
    }
}

TEST(PacketBatches, EmptyTickIsOnePacket) {
    WorldUpdate u;
    u.tick = 5;
    std::string out;
    ASSERT_EQ(encode_batched(out, u), WireError::kNone);
    EXPECT_EQ(out, std::string("\x11\x00\x03\x10\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                               "\x00",
                               17));
}

TEST(PacketBatches, EntryLargerThanAPacketFailsWithoutOutput) {
    WorldUpdate u = samples::world_update();
    std::string out = "keep";
    EXPECT_EQ(encode_batched(out, u, 40), WireError::kTooLarge);
    EXPECT_EQ(out, "keep");
    u.spawns[0].name = "\xFF";
    EXPECT_EQ(encode_batched(out, u), WireError::kBadUtf8);
    u.spawns[0].name = std::string_view("a name that is longer than 32 bytes");
    EXPECT_EQ(encode_batched(out, u), WireError::kStringTooLong);
    EXPECT_EQ(out, "keep");
}

TEST(PacketBatches, CharacterListSpansPackets) {
    std::vector<std::string> names;
    CharacterList all;
    for (int i = 0; i < 300; ++i) {
        names.push_back("Character" + std::to_string(i));
    }
    for (int i = 0; i < 300; ++i) {
        all.characters.push_back(
            {static_cast<std::uint64_t>(i), names[static_cast<std::size_t>(i)], 1, {}, 1});
    }
    for (const std::size_t max : {std::size_t{1024}, kLargestMaxPacketBytes}) {
        std::string out;
        ASSERT_EQ(encode_batched(out, all, max), WireError::kNone);
        CharacterList merged;
        std::string_view in = out;
        std::size_t packets = 0;
        bool more = true;
        while (!in.empty()) {
            const FrameResult r = decode_packet(in, max);
            ASSERT_EQ(r.status, FrameStatus::kPacket);
            in.remove_prefix(r.consumed);
            const Decoded<CharacterList> d = decode<CharacterList>(r.packet.payload);
            ASSERT_EQ(d.error, WireError::kNone);
            EXPECT_TRUE(more) << "a packet after the last";
            more = d.message.more;
            merged.characters.insert(merged.characters.end(), d.message.characters.begin(),
                                     d.message.characters.end());
            ++packets;
        }
        EXPECT_FALSE(more);
        EXPECT_EQ(merged.characters, all.characters);
        // 255 entries at most per packet, even when more would fit.
        EXPECT_GE(packets, 2U);
    }
}

// ---- names and texts ------------------------------------------------------------------------

TEST(PacketNames, EveryOpcodeAndErrorCodeHasOne) {
    std::set<std::string_view> names;
    const auto add = [&](const auto& m) {
        names.insert(opcode_name(static_cast<std::uint16_t>(std::decay_t<decltype(m)>::kOpcode)));
    };
    std::apply([&](const auto&... m) { (add(m), ...); }, samples::to_server());
    std::apply([&](const auto&... m) { (add(m), ...); }, samples::to_client());
    EXPECT_EQ(names.count("unknown"), 0U);
    EXPECT_EQ(names.size(), 21U);  // the opcodes of Opcode, each named once
    EXPECT_EQ(opcode_name(0x1234), "unknown");

    std::set<std::string_view> texts;
    for (int c = 1; c <= static_cast<int>(kLastErrorCode); ++c) {
        const std::string_view t = error_text(static_cast<ErrorCode>(c));
        EXPECT_NE(t, "unknown error") << c;
        EXPECT_LE(t.size(), kMaxErrorMessageBytes);
        texts.insert(t);
    }
    EXPECT_EQ(texts.size(), static_cast<std::size_t>(kLastErrorCode));
}

}  // namespace
}  // namespace hearth::packet
