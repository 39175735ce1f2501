#include "frontends/packet/messages.hpp"
#include <algorithm>

namespace hearth::packet {

std::string_view opcode_name(std::uint16_t opcode) noexcept {
    switch (static_cast<Opcode>(opcode)) {
        case Opcode::kAlive:
            return "alive_or_error";
        case Opcode::kLogout:
            return "logout";
        case Opcode::kLogin:
            return "login";
        case Opcode::kCharacterList:
            return "character_list";
        case Opcode::kCreateCharacter:
            return "create_character";
        case Opcode::kDeleteCharacter:
            return "delete_character";
        case Opcode::kSelectCharacter:
            return "select_character";
        case Opcode::kChangeMap:
            return "change_map";
        case Opcode::kEnterWorld:
            return "enter_world";
        case Opcode::kMove:
            return "move";
        case Opcode::kCorrection:
            return "correction";
        case Opcode::kWorldUpdate:
            return "world_update";
        case Opcode::kTargetHp:
            return "target_hp";
        case Opcode::kAttack:
            return "attack";
        case Opcode::kHpUpdate:
            return "hp_update";
        case Opcode::kDeath:
            return "death";
        case Opcode::kRespawn:
            return "respawn";
        case Opcode::kChat:
            return "chat";
        case Opcode::kWhisper:
            return "whisper";
        case Opcode::kNotice:
            return "notice";
        case Opcode::kContinueOnNode:
            return "continue_on_node";
    }
    return "unknown";
}

std::string_view error_text(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::kMalformedPacket:
            return "Malformed packet";
        case ErrorCode::kUnknownOpcode:
            return "Unknown opcode";
        case ErrorCode::kPacketTooLarge:
            return "Packet too large";
        case ErrorCode::kPacketTooSmall:
            return "Packet size below the header";
        case ErrorCode::kNotLoggedIn:
            return "Not logged in";
        case ErrorCode::kAlreadyLoggedIn:
            return "Already logged in";
        case ErrorCode::kBadCredentials:
            return "Invalid credentials";
        case ErrorCode::kExpiredToken:
            return "Token expired";
        case ErrorCode::kRefusedTokenKind:
            return "This token is not accepted here";
        case ErrorCode::kThrottled:
            return "Too many failed logins, try again later";
        case ErrorCode::kAccountDisabled:
            return "Account disabled";
        case ErrorCode::kUnavailable:
            return "Service unavailable, try again later";
        case ErrorCode::kNameTaken:
            return "Name already taken";
        case ErrorCode::kNameInvalid:
            return "Invalid name";
        case ErrorCode::kTooManyCharacters:
            return "Too many characters";
        case ErrorCode::kNoSuchCharacter:
            return "No such character";
        case ErrorCode::kNoCharacterSelected:
            return "No character selected";
        case ErrorCode::kNotInWorld:
            return "Not in the world";
        case ErrorCode::kAlreadyInWorld:
            return "Already in the world";
        case ErrorCode::kNoSuchZone:
            return "No such zone";
        case ErrorCode::kNoSuchTarget:
            return "No such target";
        case ErrorCode::kTargetOutOfRange:
            return "Target out of range";
        case ErrorCode::kDead:
            return "Character is dead";
        case ErrorCode::kNotDead:
            return "Character is alive";
        case ErrorCode::kRateLimited:
            return "Rate limited";
        case ErrorCode::kTakenOver:
            return "Logged in from another connection";
        case ErrorCode::kShuttingDown:
            return "Server shutting down";
        case ErrorCode::kIdleTimeout:
            return "Idle timeout";
        case ErrorCode::kInternalError:
            return "Internal error";
    }
    return "unknown error";
}

// ---- field groups ---------------------------------------------------------------------------

void Looks::write(Writer& w) const {
    w.u8(body);
    w.u8(face);
    w.u8(hair);
    w.u8(hair_color);
}

void Looks::read(Reader& r) {
    body = r.u8();
    face = r.u8();
    hair = r.u8();
    hair_color = r.u8();
}

void Vec3::write(Writer& w) const {
    w.f32(x);
    w.f32(y);
    w.f32(z);
}

void Vec3::read(Reader& r) {
    x = r.f32();
    y = r.f32();
    z = r.f32();
}

void Position::write(Writer& w) const {
    w.u32(zone);
    at.write(w);
    w.f32(heading);
}

void Position::read(Reader& r) {
    zone = r.u32();
    at.read(r);
    heading = r.f32();
}

void Stats::write(Writer& w) const {
    w.u32(hp);
    w.u32(max_hp);
    w.u32(mp);
    w.u32(max_mp);
    w.u16(strength);
    w.u16(dexterity);
    w.u16(intelligence);
    w.u16(vitality);
}

void Stats::read(Reader& r) {
    hp = r.u32();
    max_hp = r.u32();
    mp = r.u32();
    max_mp = r.u32();
    strength = r.u16();
    dexterity = r.u16();
    intelligence = r.u16();
    vitality = r.u16();
}

void InventorySlot::write(Writer& w) const {
    w.u16(slot);
    w.u32(item);
    w.u32(count);
}

void InventorySlot::read(Reader& r) {
    slot = r.u16();
    item = r.u32();
    count = r.u32();
}

void CharacterSummary::write(Writer& w) const {
    w.u64(id);
    w.str(name, kMaxCharacterNameBytes);
    w.u16(level);
    looks.write(w);
    w.u32(zone);
}

void CharacterSummary::read(Reader& r) {
    id = r.u64();
    name = r.str(kMaxCharacterNameBytes);
    level = r.u16();
    looks.read(r);
    zone = r.u32();
}

void ZoneEntry::write(Writer& w) const {
    w.u32(zone);
    w.str(zone_name, kMaxZoneNameBytes);
    w.f32(width);
    w.f32(height);
    w.u32(entity);
    at.write(w);
    w.f32(heading);
    w.u16(tick_hz);
    w.f32(view_radius);
    w.f32(max_speed);
}

void ZoneEntry::read(Reader& r) {
    zone = r.u32();
    zone_name = r.str(kMaxZoneNameBytes);
    width = r.f32();
    height = r.f32();
    entity = r.u32();
    at.read(r);
    heading = r.f32();
    tick_hz = r.u16();
    view_radius = r.f32();
    max_speed = r.f32();
}

void EntitySpawn::write(Writer& w) const {
    w.u32(entity);
    w.u8(static_cast<std::uint8_t>(kind));
    w.u32(model);
    w.str(name, kMaxCharacterNameBytes);
    w.u16(level);
    at.write(w);
    w.f32(heading);
    w.u32(hp);
    w.u32(max_hp);
    looks.write(w);
}

void EntitySpawn::read(Reader& r) {
    entity = r.u32();
    kind = static_cast<EntityKind>(r.u8());
    model = r.u32();
    name = r.str(kMaxCharacterNameBytes);
    level = r.u16();
    at.read(r);
    heading = r.f32();
    hp = r.u32();
    max_hp = r.u32();
    looks.read(r);
}

void EntityMove::write(Writer& w) const {
    w.u32(entity);
    at.write(w);
    w.f32(heading);
}

void EntityMove::read(Reader& r) {
    entity = r.u32();
    at.read(r);
    heading = r.f32();
}

namespace {

// Reads `n` entries into `out`, stopping at the first error (a count cannot make it allocate
// beyond what the payload holds).
template <class T>
void read_entries(Reader& r, std::size_t n, std::vector<T>& out) {
    out.clear();
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        T e;
        e.read(r);
        if (r.ok()) {
            out.push_back(e);
        }
    }
}

constexpr std::uint8_t kMoreFlag = 0x01;

}  // namespace

// ---- client to server -----------------------------------------------------------------------

void LoginRequest::write(Writer& w) const {
    w.u8(static_cast<std::uint8_t>(method));
    w.str(username, kMaxUsernameBytes);
    w.str(secret, kMaxSecretBytes);
}

void LoginRequest::read(Reader& r) {
    const std::uint8_t m = r.u8();
    if (m > static_cast<std::uint8_t>(LoginMethod::kTransfer)) {
        r.fail(WireError::kBadValue);
    }
    method = static_cast<LoginMethod>(m);
    username = r.str(kMaxUsernameBytes);
    secret = r.str(kMaxSecretBytes);
}

void CreateCharacterRequest::write(Writer& w) const {
    w.str(name, kMaxCharacterNameBytes);
    looks.write(w);
}

void CreateCharacterRequest::read(Reader& r) {
    name = r.str(kMaxCharacterNameBytes);
    looks.read(r);
}

void DeleteCharacterRequest::write(Writer& w) const {
    w.u64(character_id);
}
void DeleteCharacterRequest::read(Reader& r) {
    character_id = r.u64();
}

void SelectCharacterRequest::write(Writer& w) const {
    w.u64(character_id);
}
void SelectCharacterRequest::read(Reader& r) {
    character_id = r.u64();
}

void ChangeMapRequest::write(Writer& w) const {
    w.u32(zone);
}
void ChangeMapRequest::read(Reader& r) {
    zone = r.u32();
}

bool MoveIntent::operator==(const MoveIntent& o) const {
    return seq == o.seq && count == o.count &&
           std::equal(points.begin(), points.begin() + std::min<std::size_t>(count, kMaxPathPoints),
                      o.points.begin());
}

void MoveIntent::write(Writer& w) const {
    w.u32(seq);
    if (count == 0) {
        w.fail(WireError::kBadValue);
    }
    w.count_u8(count, kMaxPathPoints);
    for (std::size_t i = 0; i < std::min<std::size_t>(count, kMaxPathPoints); ++i) {
        points[i].write(w);
    }
}

void MoveIntent::read(Reader& r) {
    seq = r.u32();
    const std::size_t n = r.count_u8(kMaxPathPoints);
    if (r.ok() && n == 0) {
        r.fail(WireError::kBadValue);
    }
    count = static_cast<std::uint8_t>(n);
    for (std::size_t i = 0; i < n; ++i) {
        points[i].read(r);
    }
}

void TargetHpRequest::write(Writer& w) const {
    w.u32(entity);
}
void TargetHpRequest::read(Reader& r) {
    entity = r.u32();
}

void AttackRequest::write(Writer& w) const {
    w.u32(target);
}
void AttackRequest::read(Reader& r) {
    target = r.u32();
}

void ChatSend::write(Writer& w) const {
    w.u8(static_cast<std::uint8_t>(channel));
    w.str(text, kMaxChatBytes);
}

void ChatSend::read(Reader& r) {
    const std::uint8_t c = r.u8();
    if (c > static_cast<std::uint8_t>(ChatChannel::kZone)) {
        r.fail(WireError::kBadValue);
    }
    channel = static_cast<ChatChannel>(c);
    text = r.str(kMaxChatBytes);
}

void WhisperSend::write(Writer& w) const {
    w.str(to, kMaxCharacterNameBytes);
    w.str(text, kMaxChatBytes);
}

void WhisperSend::read(Reader& r) {
    to = r.str(kMaxCharacterNameBytes);
    text = r.str(kMaxChatBytes);
}

// ---- server to client -----------------------------------------------------------------------

void Error::write(Writer& w) const {
    w.u16(static_cast<std::uint16_t>(code));
    w.u16(opcode);
    w.u32(detail);
    w.str(message, kMaxErrorMessageBytes);
}

void Error::read(Reader& r) {
    code = static_cast<ErrorCode>(r.u16());
    opcode = r.u16();
    detail = r.u32();
    message = r.str(kMaxErrorMessageBytes);
}

void LoginReply::write(Writer& w) const {
    w.u64(account_id);
    w.str(account_name, kMaxAccountNameBytes);
    w.u16(max_packet_bytes);
    w.u16(idle_timeout_s);
}

void LoginReply::read(Reader& r) {
    account_id = r.u64();
    account_name = r.str(kMaxAccountNameBytes);
    max_packet_bytes = r.u16();
    idle_timeout_s = r.u16();
}

void CharacterList::write(Writer& w) const {
    w.u8(more ? kMoreFlag : 0);
    w.count_u8(characters.size(), kMaxCharactersPerPacket);
    for (const auto& c : characters) {
        c.write(w);
    }
}

void CharacterList::read(Reader& r) {
    more = (r.u8() & kMoreFlag) != 0;
    read_entries(r, r.count_u8(kMaxCharactersPerPacket), characters);
}

void CharacterDeleted::write(Writer& w) const {
    w.u64(character_id);
}
void CharacterDeleted::read(Reader& r) {
    character_id = r.u64();
}

void CharacterSelected::write(Writer& w) const {
    w.u64(id);
    w.str(name, kMaxCharacterNameBytes);
    w.u16(level);
    w.u64(experience);
    w.u64(money);
    stats.write(w);
    looks.write(w);
    position.write(w);
    w.count_u8(inventory.size(), kMaxInventorySlots);
    for (const auto& s : inventory) {
        s.write(w);
    }
}

void CharacterSelected::read(Reader& r) {
    id = r.u64();
    name = r.str(kMaxCharacterNameBytes);
    level = r.u16();
    experience = r.u64();
    money = r.u64();
    stats.read(r);
    looks.read(r);
    position.read(r);
    read_entries(r, r.count_u8(kMaxInventorySlots), inventory);
}

void Correction::write(Writer& w) const {
    w.u32(seq);
    at.write(w);
    w.f32(heading);
    w.u8(static_cast<std::uint8_t>(reason));
}

void Correction::read(Reader& r) {
    seq = r.u32();
    at.read(r);
    heading = r.f32();
    reason = static_cast<CorrectionReason>(r.u8());
}

void WorldUpdate::write(Writer& w) const {
    w.u32(tick);
    w.u8(more ? kMoreFlag : 0);
    w.count_u16(despawns.size(), 0xFFFF);
    for (const std::uint32_t e : despawns) {
        w.u32(e);
    }
    w.count_u16(spawns.size(), 0xFFFF);
    for (const auto& s : spawns) {
        s.write(w);
    }
    w.count_u16(moves.size(), 0xFFFF);
    for (const auto& m : moves) {
        m.write(w);
    }
}

void WorldUpdate::read(Reader& r) {
    tick = r.u32();
    more = (r.u8() & kMoreFlag) != 0;
    const std::size_t n = r.count_u16(0xFFFF);
    despawns.clear();
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        const std::uint32_t e = r.u32();
        if (r.ok()) {
            despawns.push_back(e);
        }
    }
    read_entries(r, r.count_u16(0xFFFF), spawns);
    read_entries(r, r.count_u16(0xFFFF), moves);
}

void TargetHp::write(Writer& w) const {
    w.u32(entity);
    w.u32(hp);
    w.u32(max_hp);
}

void TargetHp::read(Reader& r) {
    entity = r.u32();
    hp = r.u32();
    max_hp = r.u32();
}

void HpUpdate::write(Writer& w) const {
    w.u32(entity);
    w.u32(hp);
    w.u32(max_hp);
    w.u32(source);
}

void HpUpdate::read(Reader& r) {
    entity = r.u32();
    hp = r.u32();
    max_hp = r.u32();
    source = r.u32();
}

void Death::write(Writer& w) const {
    w.u32(entity);
    w.u32(killer);
}

void Death::read(Reader& r) {
    entity = r.u32();
    killer = r.u32();
}

void Respawned::write(Writer& w) const {
    w.u32(entity);
    at.write(w);
    w.f32(heading);
    w.u32(hp);
    w.u32(max_hp);
}

void Respawned::read(Reader& r) {
    entity = r.u32();
    at.read(r);
    heading = r.f32();
    hp = r.u32();
    max_hp = r.u32();
}

void ChatMessage::write(Writer& w) const {
    w.u8(static_cast<std::uint8_t>(channel));
    w.u32(from_entity);
    w.str(from, kMaxCharacterNameBytes);
    w.str(text, kMaxChatBytes);
}

void ChatMessage::read(Reader& r) {
    channel = static_cast<ChatChannel>(r.u8());
    from_entity = r.u32();
    from = r.str(kMaxCharacterNameBytes);
    text = r.str(kMaxChatBytes);
}

void WhisperMessage::write(Writer& w) const {
    w.u8(static_cast<std::uint8_t>(direction));
    w.str(peer, kMaxCharacterNameBytes);
    w.str(text, kMaxChatBytes);
}

void WhisperMessage::read(Reader& r) {
    direction = static_cast<WhisperDirection>(r.u8());
    peer = r.str(kMaxCharacterNameBytes);
    text = r.str(kMaxChatBytes);
}

void Notice::write(Writer& w) const {
    w.u8(static_cast<std::uint8_t>(kind));
    w.str(text, kMaxNoticeBytes);
}

void Notice::read(Reader& r) {
    kind = static_cast<NoticeKind>(r.u8());
    text = r.str(kMaxNoticeBytes);
}

void ContinueOnNode::write(Writer& w) const {
    w.str(host, kMaxHostBytes);
    w.u16(port);
    w.str(token, kMaxNodeTokenBytes);
    w.u32(expires_in_s);
}

void ContinueOnNode::read(Reader& r) {
    host = r.str(kMaxHostBytes);
    port = r.u16();
    token = r.str(kMaxNodeTokenBytes);
    expires_in_s = r.u32();
}

// ---- batches --------------------------------------------------------------------------------

namespace {

// Fills packets with entries from several lists in turn. `fits(bytes)` says whether an entry of
// that many bytes still fits in the current packet.
class PacketBudget {
public:
    PacketBudget(std::size_t max_packet_bytes, std::size_t fixed_bytes)
        : budget_(max_packet_bytes > fixed_bytes ? max_packet_bytes - fixed_bytes : 0) {}
    void start() noexcept { used_ = 0; }
    bool fits(std::size_t bytes) const noexcept { return used_ + bytes <= budget_; }
    void take(std::size_t bytes) noexcept { used_ += bytes; }
    bool empty() const noexcept { return used_ == 0; }

private:
    std::size_t budget_;
    std::size_t used_ = 0;
};

}  // namespace

WireError encode_batched(std::string& out, const WorldUpdate& update,
                         std::size_t max_packet_bytes) {
    max_packet_bytes = std::min(max_packet_bytes, kLargestMaxPacketBytes);
    // header, tick, flags and the three counts
    constexpr std::size_t kFixed = kHeaderBytes + 4 + 1 + 3 * 2;
    const std::size_t batch_start = out.size();
    PacketBudget budget(max_packet_bytes, kFixed);
    std::size_t d = 0;
    std::size_t s = 0;
    std::size_t m = 0;
    for (;;) {
        Writer w(out);
        const std::size_t start =
            begin_packet(out, static_cast<std::uint16_t>(Opcode::kWorldUpdate));
        budget.start();
        w.u32(update.tick);
        const std::size_t flags_at = w.position();
        w.u8(0);

        std::size_t count_at = w.position();
        std::size_t n = 0;
        w.u16(0);
        for (; d < update.despawns.size() && budget.fits(4) && n < 0xFFFF; ++d, ++n) {
            w.u32(update.despawns[d]);
            budget.take(4);
        }
        w.patch_u16(count_at, static_cast<std::uint16_t>(n));

        count_at = w.position();
        n = 0;
        w.u16(0);
        for (; s < update.spawns.size() && n < 0xFFFF; ++s, ++n) {
            const EntitySpawn& e = update.spawns[s];
            if (e.name.size() > kMaxCharacterNameBytes) {
                out.resize(batch_start);
                return WireError::kStringTooLong;
            }
            if (!budget.fits(e.wire_bytes())) {
                break;
            }
            e.write(w);
            budget.take(e.wire_bytes());
        }
        w.patch_u16(count_at, static_cast<std::uint16_t>(n));

        count_at = w.position();
        n = 0;
        w.u16(0);
        for (; m < update.moves.size() && budget.fits(EntityMove::kWireBytes) && n < 0xFFFF;
             ++m, ++n) {
            update.moves[m].write(w);
            budget.take(EntityMove::kWireBytes);
        }
        w.patch_u16(count_at, static_cast<std::uint16_t>(n));

        const bool more =
            d < update.despawns.size() || s < update.spawns.size() || m < update.moves.size();
        if (more && budget.empty()) {
            // An entry too large for an empty packet can never be sent: fail rather than loop.
            out.resize(batch_start);
            return WireError::kTooLarge;
        }
        w.patch_u8(flags_at, more ? kMoreFlag : 0);
        if (const WireError e = finish_packet(w, start, max_packet_bytes); e != WireError::kNone) {
            out.resize(batch_start);
            return e;
        }
        if (!more) {
            return WireError::kNone;
        }
    }
}

WireError encode_batched(std::string& out, const CharacterList& list,
                         std::size_t max_packet_bytes) {
    max_packet_bytes = std::min(max_packet_bytes, kLargestMaxPacketBytes);
    constexpr std::size_t kFixed = kHeaderBytes + 1 + 1;  // header, flags, count
    const std::size_t batch_start = out.size();
    PacketBudget budget(max_packet_bytes, kFixed);
    std::size_t i = 0;
    for (;;) {
        Writer w(out);
        const std::size_t start =
            begin_packet(out, static_cast<std::uint16_t>(Opcode::kCharacterList));
        budget.start();
        const std::size_t flags_at = w.position();
        w.u8(0);
        const std::size_t count_at = w.position();
        w.u8(0);
        std::size_t n = 0;
        for (; i < list.characters.size() && n < kMaxCharactersPerPacket; ++i, ++n) {
            const CharacterSummary& c = list.characters[i];
            if (c.name.size() > kMaxCharacterNameBytes) {
                out.resize(batch_start);
                return WireError::kStringTooLong;
            }
            const std::size_t bytes = 20 + c.name.size();
            if (!budget.fits(bytes)) {
                break;
            }
            c.write(w);
            budget.take(bytes);
        }
        w.patch_u8(count_at, static_cast<std::uint8_t>(n));
        const bool more = i < list.characters.size();
        if (more && n == 0) {
            out.resize(batch_start);
            return WireError::kTooLarge;
        }
        w.patch_u8(flags_at, more ? kMoreFlag : 0);
        if (const WireError e = finish_packet(w, start, max_packet_bytes); e != WireError::kNone) {
            out.resize(batch_start);
            return e;
        }
        if (!more) {
            return WireError::kNone;
        }
    }
}

}  // namespace hearth::packet
