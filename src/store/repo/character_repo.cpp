// Game characters (include/hearth/character_store.hpp, migration 6) on the SQL dialect layer.
// Names are unique by name_key (the ASCII-folded name while the character holds it); stats and
// looks are JSON objects and the inventory a JSON array of [slot, item, count]; times are Unix
// milliseconds.

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <hearth/character_store.hpp>

#include "store/repo/repo.hpp"
#include "store/repo/repositories.hpp"

namespace hearth::store::repo {
namespace {

namespace json = boost::json;
using sql::Type;

// The columns character_of reads, in their order.
#define HEARTH_CHARACTER_COLUMNS                                                               \
    "id, account_id, name, level, experience, money, stats, looks, inventory, zone, x, y, z, " \
    "heading, created_at, updated_at, last_login_at, deleted_at"

// The account row is locked first (where other nodes write too), so that two creates or restores
// for one account count its live characters one after the other: the limit is exact.
constexpr sql::Statement kLockAccount{[](const sql::Dialect& d) {
                                          return "SELECT id FROM account WHERE id = ?1" +
                                                 std::string(d.for_update());
                                      },
                                      {Type::kInt64}};
constexpr sql::Statement kCountLive{
    "SELECT count(*) FROM game_character WHERE account_id = ?1 AND deleted_at IS NULL",
    {Type::kInt64}};
// A name held by a character deleted before the grace period's start is free: it is released
// here, by whoever wants it next (?3: a character that keeps its own name).
constexpr sql::Statement kReleaseName{
    "UPDATE game_character SET name_key = NULL WHERE name_key = ?1 AND deleted_at IS NOT NULL "
    "AND deleted_at < ?2 AND id <> ?3",
    {Type::kText, Type::kInt64, Type::kInt64}};
// A name taken (name_key) inserts nothing and returns no row.
constexpr sql::Statement kInsert{
    "INSERT INTO game_character (account_id, name, name_fold, name_key, level, experience, money, "
    "stats, looks, inventory, zone, x, y, z, heading, created_at, updated_at) "
    "VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15) "
    "ON CONFLICT DO NOTHING RETURNING " HEARTH_CHARACTER_COLUMNS,
    {Type::kInt64, Type::kText, Type::kText, Type::kInt64, Type::kInt64, Type::kInt64, Type::kText,
     Type::kText, Type::kText, Type::kInt64, Type::kDouble, Type::kDouble, Type::kDouble,
     Type::kDouble, Type::kInt64}};
constexpr sql::Statement kById{
    "SELECT " HEARTH_CHARACTER_COLUMNS " FROM game_character WHERE id = ?1", {Type::kInt64}};
constexpr sql::Statement kByIdForUpdate{[](const sql::Dialect& d) {
                                            return "SELECT " HEARTH_CHARACTER_COLUMNS
                                                   " FROM game_character WHERE id = ?1" +
                                                   std::string(d.for_update());
                                        },
                                        {Type::kInt64}};
// ?3: 0 live only, 1 live and deleted, 2 deleted only. Two shapes, so that the (account_id, id)
// index serves an account's characters (the other one leaves ?1 unused).
#define HEARTH_CHARACTER_FILTERS(d)                                                            \
    "id > ?2 AND (?3 = 1 OR (?3 = 0 AND deleted_at IS NULL) OR (?3 = 2 AND deleted_at IS NOT " \
    "NULL)) AND (?4 IS NULL OR " +                                                             \
        d.starts_with("name_fold", "?4", "?5") + ") ORDER BY id LIMIT ?6"
constexpr sql::Statement kListByAccount{
    [](const sql::Dialect& d) {
        return "SELECT " HEARTH_CHARACTER_COLUMNS
               " FROM game_character WHERE account_id = ?1 AND " HEARTH_CHARACTER_FILTERS(d);
    },
    {Type::kInt64, Type::kInt64, Type::kInt64, Type::kText, Type::kBytes, Type::kInt64}};
constexpr sql::Statement kList{
    [](const sql::Dialect& d) {
        return "SELECT " HEARTH_CHARACTER_COLUMNS
               " FROM game_character WHERE " HEARTH_CHARACTER_FILTERS(d);
    },
    {Type::kInt64, Type::kInt64, Type::kInt64, Type::kText, Type::kBytes, Type::kInt64}};
#undef HEARTH_CHARACTER_FILTERS
constexpr sql::Statement kDelete{
    "UPDATE game_character SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at IS "
    "NULL AND (?3 IS NULL OR account_id = ?3) RETURNING " HEARTH_CHARACTER_COLUMNS,
    {Type::kInt64, Type::kInt64, Type::kInt64}};
// The account's deleted characters past the ?2 most recently deleted, at most ?3 at a time (a
// lowered bound catches up over later deletes).
constexpr sql::Statement kPurgeDeleted{
    "DELETE FROM game_character WHERE id IN (SELECT id FROM game_character WHERE account_id = ?1 "
    "AND deleted_at IS NOT NULL ORDER BY deleted_at DESC, id DESC LIMIT ?3 OFFSET ?2) "
    // Checked again on the row itself: under READ COMMITTED (PostgreSQL) a row the subquery
    // chose may have been restored meanwhile by a transaction this one waited for.
    "AND deleted_at IS NOT NULL",
    {Type::kInt64, Type::kInt64, Type::kInt64}};
constexpr std::int64_t kMaxPurge = 100;
// The character takes its name back (a no-op when it still holds it); run with report_conflict.
constexpr sql::Statement kRestore{
    "UPDATE game_character SET name_key = name_fold, deleted_at = NULL, updated_at = ?2 "
    "WHERE id = ?1 RETURNING " HEARTH_CHARACTER_COLUMNS,
    {Type::kInt64, Type::kInt64}};
// A deleted character keeps its deleted state and reserves the new name; run with
// report_conflict.
constexpr sql::Statement kRename{
    "UPDATE game_character SET name = ?2, name_fold = ?3, name_key = ?3, updated_at = ?4 "
    "WHERE id = ?1 RETURNING " HEARTH_CHARACTER_COLUMNS,
    {Type::kInt64, Type::kText, Type::kText, Type::kInt64}};
constexpr sql::Statement kLogin{
    "UPDATE game_character SET last_login_at = ?3 WHERE id = ?1 AND account_id = ?2 AND "
    "deleted_at IS NULL RETURNING " HEARTH_CHARACTER_COLUMNS,
    {Type::kInt64, Type::kInt64, Type::kInt64}};
// NULL: unchanged. The position's five columns are set together (?7 .. ?11).
constexpr sql::Statement kSave{
    "UPDATE game_character SET level = COALESCE(?2, level), experience = COALESCE(?3, "
    "experience), money = COALESCE(?4, money), stats = COALESCE(?5, stats), inventory = "
    "COALESCE(?6, inventory), zone = COALESCE(?7, zone), x = COALESCE(?8, x), y = COALESCE(?9, "
    "y), z = COALESCE(?10, z), heading = COALESCE(?11, heading), updated_at = ?12 WHERE id = ?1 "
    "AND deleted_at IS NULL",
    {Type::kInt64, Type::kInt64, Type::kInt64, Type::kInt64, Type::kText, Type::kText, Type::kInt64,
     Type::kDouble, Type::kDouble, Type::kDouble, Type::kDouble, Type::kInt64}};
#undef HEARTH_CHARACTER_COLUMNS

// ---------------------------------------------------------------------------------------------
// Values as stored.

std::string stats_text(const CharacterStats& s) {
    return json::serialize(json::object{{"str", s.str},
                                        {"dex", s.dex},
                                        {"int", s.intelligence},
                                        {"con", s.con},
                                        {"hp", s.hp},
                                        {"max_hp", s.max_hp},
                                        {"mp", s.mp},
                                        {"max_mp", s.max_mp}});
}
std::string looks_text(const CharacterLooks& l) {
    return json::serialize(json::object{
        {"body", l.body}, {"face", l.face}, {"hair", l.hair}, {"hair_color", l.hair_color}});
}
std::string inventory_text(const std::vector<InventorySlot>& items) {
    json::array a;
    a.reserve(items.size());
    for (const auto& i : items) {
        a.push_back(json::array{i.slot, i.item_id, i.count});
    }
    return json::serialize(a);
}

/// A stored JSON value; null when the text is not JSON (a hand edit gone wrong): its fields then
/// read as 0, rather than the character becoming unreadable.
json::value parse(const std::string& text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    return ec ? json::value(nullptr) : v;
}

/// `field` of `o` as an integer in [lo, hi]; 0 when missing or out of range.
template <class T>
T int_field(const json::value& v, std::string_view field) {
    const auto* o = v.if_object();
    const auto* f = o != nullptr ? o->if_contains(field) : nullptr;
    if (f == nullptr || !f->is_int64()) {
        return 0;
    }
    const auto n = f->get_int64();
    if (n < std::numeric_limits<T>::min() || n > std::numeric_limits<T>::max()) {
        return 0;
    }
    return static_cast<T>(n);
}

CharacterStats stats_of(const std::string& text) {
    const auto v = parse(text);
    return CharacterStats{.str = int_field<std::int32_t>(v, "str"),
                          .dex = int_field<std::int32_t>(v, "dex"),
                          .intelligence = int_field<std::int32_t>(v, "int"),
                          .con = int_field<std::int32_t>(v, "con"),
                          .hp = int_field<std::int32_t>(v, "hp"),
                          .max_hp = int_field<std::int32_t>(v, "max_hp"),
                          .mp = int_field<std::int32_t>(v, "mp"),
                          .max_mp = int_field<std::int32_t>(v, "max_mp")};
}
CharacterLooks looks_of(const std::string& text) {
    const auto v = parse(text);
    return CharacterLooks{.body = int_field<std::uint8_t>(v, "body"),
                          .face = int_field<std::uint8_t>(v, "face"),
                          .hair = int_field<std::uint8_t>(v, "hair"),
                          .hair_color = int_field<std::uint8_t>(v, "hair_color")};
}
/// The slots that read back as valid ones; others (a hand edit) are left out.
std::vector<InventorySlot> inventory_of(const std::string& text) {
    const auto v = parse(text);
    std::vector<InventorySlot> out;
    const auto* a = v.if_array();
    if (a == nullptr) {
        return out;
    }
    for (const auto& item : *a) {
        const auto* t = item.if_array();
        if (t == nullptr || t->size() != 3 || !(*t)[0].is_int64() || !(*t)[1].is_int64() ||
            !(*t)[2].is_int64()) {
            continue;
        }
        const auto slot = (*t)[0].get_int64();
        const auto id = (*t)[1].get_int64();
        const auto count = (*t)[2].get_int64();
        if (slot < 0 || slot >= kInventorySlots || id <= 0 ||
            id > std::numeric_limits<std::uint32_t>::max() || count <= 0 || count > kMaxStack) {
            continue;
        }
        out.push_back(InventorySlot{.slot = static_cast<std::uint16_t>(slot),
                                    .item_id = static_cast<std::uint32_t>(id),
                                    .count = static_cast<std::uint32_t>(count)});
    }
    if (out.size() > kInventorySlots || !valid_inventory(out)) {
        out.clear();  // duplicate slots: which one is right cannot be told
    }
    return out;
}

CharacterRecord character_of(const sql::Query& q) {
    CharacterRecord c;
    c.id = static_cast<std::uint64_t>(q.int64_at(0));
    c.account_id = static_cast<std::uint64_t>(q.int64_at(1));
    c.name = q.text_at(2);
    c.level = static_cast<std::int32_t>(q.int64_at(3));
    c.experience = q.int64_at(4);
    c.money = q.int64_at(5);
    c.stats = stats_of(q.text_at(6));
    c.looks = looks_of(q.text_at(7));
    c.inventory = inventory_of(q.text_at(8));
    c.position = CharacterPosition{.zone = static_cast<std::uint32_t>(q.int64_at(9)),
                                   .x = static_cast<float>(q.real_at(10)),
                                   .y = static_cast<float>(q.real_at(11)),
                                   .z = static_cast<float>(q.real_at(12)),
                                   .heading = static_cast<float>(q.real_at(13))};
    c.created_at = time_of(q.int64_at(14));
    c.updated_at = time_of(q.int64_at(15));
    c.last_login_at = opt_time_at(q, 16);
    c.deleted_at = opt_time_at(q, 17);
    return c;
}

/// Whether the account exists (locking its row where other nodes write); false: the statement
/// failed.
bool lock_account(sql::Conn& c, std::int64_t account, bool& found) {
    sql::Query q(c, kLockAccount);
    q.int64(account);
    found = q.next();
    return q.run();
}

bool count_live(sql::Conn& c, std::int64_t account, std::uint64_t& n) {
    sql::Query q(c, kCountLive);
    q.int64(account);
    n = q.next() ? static_cast<std::uint64_t>(q.int64_at(0)) : 0;
    return q.run();
}

bool release_name(sql::Conn& c, const std::string& key, CharacterTime reserved_since,
                  std::int64_t keeper) {
    sql::Query q(c, kReleaseName);
    q.text(key).int64(ms(reserved_since)).int64(keeper);
    return q.run();
}

bool storable(const sql::Conn& c, const CharacterRecord& r) {
    return c.storable_text(r.name) && valid_inventory(r.inventory) && valid_position(r.position) &&
           valid_progress(r.level, r.experience, r.money);
}

class CharacterRepo final : public CharacterStore {
public:
    explicit CharacterRepo(detail::StoreExecutor& executor) : run_(executor) {}

    void create_character(CharacterRecord character, CharacterLimits limits,
                          Completion<CharacterRecord> done) override {
        run_.write<CharacterRecord>(
            std::move(done), [r = std::move(character), limits](sql::Conn& c, BatchStats&,
                                                                Result<CharacterRecord>& out) {
                if (!storable(c, r)) {
                    return fail_with(out, Errc::kInvalidArgument);
                }
                const auto account = id_param(r.account_id);
                if (!account) {
                    return fail_with(out, Errc::kNotFound);
                }
                bool found = false;
                if (!lock_account(c, *account, found)) {
                    return false;
                }
                if (!found) {
                    return fail_with(out, Errc::kNotFound);
                }
                std::uint64_t live = 0;
                if (!count_live(c, *account, live)) {
                    return false;
                }
                if (live >= limits.max_live) {
                    return fail_with(out, Errc::kLimitReached);
                }
                const std::string key = fold(r.name);
                if (!release_name(c, key, limits.reserved_since, 0)) {
                    return false;
                }
                const std::string stats = stats_text(r.stats);
                const std::string looks = looks_text(r.looks);
                const std::string inventory = inventory_text(r.inventory);
                sql::Query q(c, kInsert);
                q.int64(*account).text(r.name).text(key).int64(r.level).int64(r.experience);
                q.int64(r.money).text(stats).text(looks).text(inventory);
                q.int64(static_cast<std::int64_t>(r.position.zone)).real(r.position.x);
                q.real(r.position.y).real(r.position.z).real(r.position.heading);
                q.int64(ms(r.created_at));
                if (!one(q, out, character_of)) {
                    return false;
                }
                if (!out) {
                    out = make_error_code(Errc::kAlreadyExists);  // ON CONFLICT DO NOTHING
                }
                return true;
            });
    }

    void character_by_id(std::uint64_t id, Completion<CharacterRecord> done) override {
        run_.read<CharacterRecord>(std::move(done),
                                   [id](sql::Conn& c, BatchStats&, Result<CharacterRecord>& out) {
                                       const auto param = id_param(id);
                                       if (!param) {
                                           return fail_with(out, Errc::kNotFound);
                                       }
                                       sql::Query q(c, kById);
                                       q.int64(*param);
                                       return one(q, out, character_of);
                                   });
    }

    void list_characters(CharacterFilter filter,
                         Completion<std::vector<CharacterRecord>> done) override {
        run_.read<std::vector<CharacterRecord>>(
            std::move(done), [f = std::move(filter)](sql::Conn& c, BatchStats&,
                                                     Result<std::vector<CharacterRecord>>& out) {
                if (!c.storable(f.name_prefix)) {
                    out = std::vector<CharacterRecord>{};  // matches nothing stored
                    return true;
                }
                std::optional<std::string> lower;
                std::optional<std::string> upper;
                if (f.name_prefix && !f.name_prefix->empty()) {
                    lower = fold(*f.name_prefix);
                    upper = detail::prefix_upper_bound(*lower);
                }
                sql::Query q(c, f.account_id ? kListByAccount : kList);
                q.int64(f.account_id ? std::optional(clamp_to_int64(*f.account_id)) : std::nullopt);
                q.int64(f.after_id ? clamp_to_int64(*f.after_id) : 0);
                q.int64(static_cast<std::int64_t>(f.deleted));
                q.text(lower).text(upper).int64(clamp_to_int64(f.limit));
                return all(q, out, character_of);
            });
    }

    void delete_character(std::uint64_t id, std::optional<std::uint64_t> account_id,
                          CharacterTime at, std::size_t keep_deleted,
                          Completion<CharacterRecord> done) override {
        run_.write<CharacterRecord>(
            std::move(done), [id, account_id, at, keep_deleted](sql::Conn& c, BatchStats&,
                                                                Result<CharacterRecord>& out) {
                const auto param = id_param(id);
                const auto account = account_id ? id_param(*account_id) : std::nullopt;
                if (!param || (account_id && !account)) {
                    return fail_with(out, Errc::kNotFound);
                }
                {
                    sql::Query q(c, kDelete);
                    q.int64(*param).int64(ms(at)).int64(account);
                    if (!one(q, out, character_of)) {
                        return false;
                    }
                }
                if (!out) {
                    return true;
                }
                sql::Query purge(c, kPurgeDeleted);
                purge.int64(static_cast<std::int64_t>(out->account_id));
                purge.int64(clamp_to_int64(keep_deleted)).int64(kMaxPurge);
                return purge.run();
            });
    }

    void restore_character(std::uint64_t id, CharacterLimits limits, CharacterTime at,
                           Completion<CharacterRecord> done) override {
        run_.write<CharacterRecord>(
            std::move(done),
            [id, limits, at](sql::Conn& c, BatchStats&, Result<CharacterRecord>& out) {
                const auto param = id_param(id);
                if (!param) {
                    return fail_with(out, Errc::kNotFound);
                }
                Result<CharacterRecord> current = make_error_code(Errc::kNotFound);
                {
                    sql::Query q(c, kByIdForUpdate);
                    q.int64(*param);
                    if (!one(q, current, character_of)) {
                        return false;
                    }
                }
                if (!current) {
                    return fail_with(out, Errc::kNotFound);
                }
                if (!current->deleted_at) {
                    return fail_with(out, Errc::kNotAllowed);
                }
                const auto account = static_cast<std::int64_t>(current->account_id);
                bool found = false;  // it is: deleting an account deletes its characters
                std::uint64_t live = 0;
                if (!lock_account(c, account, found) || !count_live(c, account, live)) {
                    return false;
                }
                if (live >= limits.max_live) {
                    return fail_with(out, Errc::kLimitReached);
                }
                if (!release_name(c, fold(current->name), limits.reserved_since, *param)) {
                    return false;
                }
                sql::Query q(c, kRestore);
                q.int64(*param).int64(ms(at)).report_conflict();
                if (!one(q, out, character_of)) {
                    return false;
                }
                if (q.conflict()) {
                    out = make_error_code(Errc::kAlreadyExists);
                }
                return true;
            });
    }

    void rename_character(std::uint64_t id, std::string name, CharacterTime reserved_since,
                          CharacterTime at, Completion<CharacterRecord> done) override {
        run_.write<CharacterRecord>(
            std::move(done), [id, name = std::move(name), reserved_since, at](
                                 sql::Conn& c, BatchStats&, Result<CharacterRecord>& out) {
                if (!c.storable_text(name)) {
                    return fail_with(out, Errc::kInvalidArgument);
                }
                const auto param = id_param(id);
                if (!param) {
                    return fail_with(out, Errc::kNotFound);
                }
                const std::string key = fold(name);
                if (!release_name(c, key, reserved_since, *param)) {
                    return false;
                }
                sql::Query q(c, kRename);
                q.int64(*param).text(name).text(key).int64(ms(at)).report_conflict();
                if (!one(q, out, character_of)) {
                    return false;
                }
                if (q.conflict()) {
                    out = make_error_code(Errc::kAlreadyExists);
                }
                return true;
            });
    }

    void record_login(std::uint64_t id, std::uint64_t account_id, CharacterTime at,
                      Completion<CharacterRecord> done) override {
        run_.write<CharacterRecord>(
            std::move(done),
            [id, account_id, at](sql::Conn& c, BatchStats&, Result<CharacterRecord>& out) {
                const auto param = id_param(id);
                const auto account = id_param(account_id);
                if (!param || !account) {
                    return fail_with(out, Errc::kNotFound);
                }
                sql::Query q(c, kLogin);
                q.int64(*param).int64(*account).int64(ms(at));
                return one(q, out, character_of);
            });
    }

    void save_characters(std::vector<CharacterSave> saves, CharacterTime at,
                         Completion<std::uint64_t> done) override {
        if (saves.size() > kMaxSaveBatch) {
            done(make_error_code(Errc::kTooLarge));
            return;
        }
        std::size_t bytes = 0;
        for (const auto& s : saves) {
            bytes += sizeof s + (s.inventory ? s.inventory->size() * sizeof(InventorySlot) : 0);
        }
        run_.write<std::uint64_t>(
            std::move(done),
            [saves = std::move(saves), at](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                for (const auto& s : saves) {
                    if (!valid_save(s)) {
                        return fail_with(out, Errc::kInvalidArgument);
                    }
                }
                std::uint64_t saved = 0;
                for (const auto& s : saves) {
                    const auto param = id_param(s.id);
                    if (!param) {
                        continue;
                    }
                    std::optional<std::string> stats;
                    std::optional<std::string> inventory;
                    if (s.stats) {
                        stats = stats_text(*s.stats);
                    }
                    if (s.inventory) {
                        inventory = inventory_text(*s.inventory);
                    }
                    const auto& p = s.position;
                    auto coordinate = [&p](float CharacterPosition::*member) {
                        return p ? std::optional<double>((*p).*member) : std::nullopt;
                    };
                    sql::Query q(c, kSave);
                    q.int64(*param).int64(s.level ? std::optional<std::int64_t>(*s.level)
                                                  : std::nullopt);
                    q.int64(s.experience).int64(s.money).text(stats).text(inventory);
                    q.int64(p ? std::optional<std::int64_t>(p->zone) : std::nullopt);
                    q.real(coordinate(&CharacterPosition::x));
                    q.real(coordinate(&CharacterPosition::y));
                    q.real(coordinate(&CharacterPosition::z));
                    q.real(coordinate(&CharacterPosition::heading));
                    q.int64(ms(at));
                    if (!q.run()) {
                        return false;
                    }
                    saved += q.changes();
                }
                out = saved;
                return true;
            },
            bytes);
    }

private:
    Runner run_;
};

}  // namespace

std::unique_ptr<CharacterStore> make_characters(detail::StoreExecutor& executor) {
    return std::make_unique<CharacterRepo>(executor);
}

}  // namespace hearth::store::repo
