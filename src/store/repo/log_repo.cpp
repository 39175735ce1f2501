// Stored logs (include/hearth/store.hpp, docs/logs.md) on the SQL dialect layer. The row count
// and the bodies' bytes are kept by the migrations' triggers (log_count).

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "store/repo/repo.hpp"
#include "store/repo/repositories.hpp"

namespace hearth::store::repo {
namespace {

using sql::Type;

constexpr sql::Statement kInsert{
    "INSERT INTO log_entry (server_time, room, \"user\", level, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    {Type::kInt64, Type::kText, Type::kText, Type::kText, Type::kText}};

// A query has one of three shapes, picked by its most selective filter so that an index serves
// it newest first: by room (room, id), by user ("user", id), or by id alone; the other filters
// are "?N IS NULL OR ..." conditions on the rows it walks. ?1 room, ?2 user, ?3 since, ?4 before
// id, ?5 levels, ?6 limit.
#define HEARTH_LOG_QUERY(where)                                                                 \
    sql::Statement {                                                                            \
        [](const sql::Dialect& d) {                                                             \
            return "SELECT id, server_time, room, \"user\", level, body FROM log_entry "        \
                   "WHERE " where                                                               \
                   "(?3 IS NULL OR server_time >= ?3) AND id < ?4 AND (?5 IS NULL OR " +        \
                   d.in_list("level", "?5") + ") ORDER BY id DESC LIMIT ?6";                    \
        },                                                                                      \
        {                                                                                       \
            Type::kText, Type::kText, Type::kInt64, Type::kInt64, Type::kTextList, Type::kInt64 \
        }                                                                                       \
    }
constexpr sql::Statement kQueryByRoom =
    HEARTH_LOG_QUERY("room = ?1 AND (?2 IS NULL OR \"user\" = ?2) AND ");
constexpr sql::Statement kQueryByUser = HEARTH_LOG_QUERY("\"user\" = ?2 AND ");
constexpr sql::Statement kQuery = HEARTH_LOG_QUERY("");
#undef HEARTH_LOG_QUERY

constexpr sql::Statement kPruneOld{
    "DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry WHERE server_time < ?1 "
    "ORDER BY server_time LIMIT ?2)",
    {Type::kInt64, Type::kInt64}};
constexpr sql::Statement kCount{"SELECT rows, bytes FROM log_count WHERE one = 1"};
constexpr sql::Statement kPruneOldest{
    "DELETE FROM log_entry WHERE id IN (SELECT id FROM log_entry ORDER BY id LIMIT ?1)",
    {Type::kInt64}};
// The oldest entries (at most ?2 of them) up to the first whose body brings the bytes deleted to
// ?1 or more: the fewest that bring the stored bytes down by ?1.
constexpr sql::Statement kPruneBytes{
    [](const sql::Dialect& d) {
        return "DELETE FROM log_entry WHERE id <= (SELECT max(id) FROM (SELECT id, sum(size) "
               "OVER (ORDER BY id) - size AS prior FROM (SELECT id, CAST(" +
               d.octets("body") +
               " AS BIGINT) AS size FROM log_entry ORDER BY id LIMIT ?2) AS s) AS w WHERE "
               "prior < ?1)";
    },
    {Type::kInt64, Type::kInt64}};

/// The row count and body bytes kept by the log_count triggers.
bool log_count(sql::Conn& c, std::int64_t& rows, std::int64_t& bytes) {
    sql::Query q(c, kCount);
    if (!q.next()) {
        // The migration inserts the one row.
        return q.failed() ? false : c.fail(detail::ErrorKind::kCorrupt, "log_count has no row");
    }
    rows = q.int64_at(0);
    bytes = q.int64_at(1);
    return true;
}

class LogRepo final : public Logs {
public:
    explicit LogRepo(detail::StoreExecutor& executor) : run_(executor) {}

    void append(std::vector<LogRow> rows, Completion<void> done) override {
        std::size_t bytes = 0;
        for (const auto& r : rows) {
            bytes += r.room.size() + r.user.size() + r.level.size() + r.body.size();
        }
        run_.write<void>(
            std::move(done),
            [rows = std::move(rows)](sql::Conn& c, BatchStats&, Result<void>& out) {
                for (const auto& r : rows) {
                    if (r.body.size() > c.max_field_bytes()) {
                        out = make_error_code(Errc::kTooLarge);
                        return true;  // nothing of this call was inserted yet
                    }
                    // The batch must not fail for one row the database cannot store.
                    if (!c.storable_text(r.room) || !c.storable_text(r.user) ||
                        !c.storable_text(r.level) || !c.storable_text(r.body)) {
                        out = make_error_code(Errc::kInvalidArgument);
                        return true;
                    }
                }
                for (const auto& r : rows) {
                    sql::Query q(c, kInsert);
                    q.int64(r.server_time_ms).text(r.room).text(r.user).text(r.level).text(r.body);
                    if (!q.run()) {
                        return false;
                    }
                }
                return true;
            },
            bytes);
    }

    void query(LogQuery query, Completion<std::vector<LogRow>> done) override {
        run_.read<std::vector<LogRow>>(
            std::move(done), [query = std::move(query)](sql::Conn& c, BatchStats&,
                                                        Result<std::vector<LogRow>>& out) {
                // A filter that no stored text can equal matches nothing.
                if (!c.storable(query.room) || !c.storable(query.user)) {
                    out = std::vector<LogRow>{};
                    return true;
                }
                // Level names are validated words; what could break a list literal is dropped.
                std::vector<std::string> levels;
                for (const auto& l : query.levels) {
                    if (!c.storable_text(l)) {
                        continue;
                    }
                    std::string level;
                    for (char ch : l) {
                        if (ch != '"' && ch != '\\' && static_cast<unsigned char>(ch) >= 0x20) {
                            level += ch;
                        }
                    }
                    levels.push_back(std::move(level));
                }
                if (!query.levels.empty() && levels.empty()) {
                    out = std::vector<LogRow>{};
                    return true;
                }
                sql::Query q(c, query.room ? kQueryByRoom : query.user ? kQueryByUser : kQuery);
                q.text(query.room).text(query.user).int64(query.since_ms);
                q.int64(query.before_id ? clamp_to_int64(*query.before_id)
                                        : std::numeric_limits<std::int64_t>::max());
                levels.empty() ? q.null() : q.list(levels);
                q.int64(clamp_to_int64(query.limit));
                std::vector<LogRow> rows;
                while (q.next()) {
                    LogRow r;
                    r.id = static_cast<std::uint64_t>(q.int64_at(0));
                    r.server_time_ms = q.int64_at(1);
                    r.room = q.text_at(2);
                    r.user = q.text_at(3);
                    r.level = q.text_at(4);
                    r.body = q.text_at(5);
                    rows.push_back(std::move(r));
                }
                if (q.failed()) {
                    return false;
                }
                out = std::move(rows);
                return true;
            });
    }

    void prune(std::int64_t older_than_ms, std::uint64_t max_rows, std::uint64_t max_bytes,
               std::uint64_t max_delete, Completion<std::uint64_t> done) override {
        run_.write<std::uint64_t>(
            std::move(done), [older_than_ms, max_rows, max_bytes, max_delete](
                                 sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                std::int64_t budget = clamp_to_int64(max_delete);
                // Each step deletes at most what is left of the budget, then reports how many.
                auto delete_some = [&](const sql::Statement& s, std::int64_t first,
                                       std::int64_t* second, std::int64_t& deleted) {
                    sql::Query q(c, s);
                    q.int64(first);
                    if (second != nullptr) {
                        q.int64(*second);
                    }
                    if (!q.run()) {
                        return false;
                    }
                    deleted = static_cast<std::int64_t>(q.changes());
                    budget -= deleted;
                    return true;
                };
                std::int64_t by_age = 0;
                std::int64_t limit = budget;
                if (!delete_some(kPruneOld, older_than_ms, &limit, by_age)) {
                    return false;
                }
                std::int64_t rows = 0;
                std::int64_t bytes = 0;
                if (!log_count(c, rows, bytes)) {
                    return false;
                }
                const std::int64_t excess = rows - clamp_to_int64(max_rows);
                std::int64_t by_count = 0;
                if (excess > 0 && budget > 0 &&
                    !delete_some(kPruneOldest, std::min(excess, budget), nullptr, by_count)) {
                    return false;
                }
                if (!log_count(c, rows, bytes)) {
                    return false;
                }
                const std::int64_t excess_bytes = bytes - clamp_to_int64(max_bytes);
                std::int64_t by_bytes = 0;
                limit = budget;
                if (excess_bytes > 0 && budget > 0 &&
                    !delete_some(kPruneBytes, excess_bytes, &limit, by_bytes)) {
                    return false;
                }
                out = static_cast<std::uint64_t>(by_age + by_count + by_bytes);
                return true;
            });
    }

    void count(Completion<std::uint64_t> done) override {
        run_.read<std::uint64_t>(
            std::move(done), [](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                std::int64_t rows = 0;
                std::int64_t bytes = 0;
                if (!log_count(c, rows, bytes)) {
                    return false;
                }
                out = static_cast<std::uint64_t>(std::max<std::int64_t>(0, rows));
                return true;
            });
    }

private:
    Runner run_;
};

}  // namespace

std::unique_ptr<Logs> make_logs(detail::StoreExecutor& executor) {
    return std::make_unique<LogRepo>(executor);
}

}  // namespace hearth::store::repo
