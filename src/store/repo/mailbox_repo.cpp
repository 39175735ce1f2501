// Mailboxes (include/hearth/store.hpp) on the SQL dialect layer: the same statements and rules on
// SQLite and PostgreSQL. The depth and the namespace usage are kept by the migrations' triggers
// (mailbox_depth, mailbox_usage), so that no operation counts messages.

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/repo/repo.hpp"
#include "store/repo/repositories.hpp"

namespace hearth::store::repo {
namespace {

using sql::Type;

// A key range [?1, ?2) rather than LIKE or GLOB serves a prefix: no escaping, and the index on
// key serves it. Keys compare as bytes on both backends (BYTEA; SQLite's BINARY collation).
constexpr sql::Statement kInsert{
    [](const sql::Dialect& d) {
        return "INSERT INTO mailbox (key, body, stored_at, expires_at) VALUES (?1, ?2, ?3, ?4)" +
               d.returning_id("seq");
    },
    {Type::kBytes, Type::kBlob, Type::kInt64, Type::kInt64}};
constexpr sql::Statement kDepth{"SELECT depth FROM mailbox_depth WHERE key = ?1", {Type::kBytes}};
// mailbox_depth holds one row per non-empty mailbox, so summing it never touches the messages.
constexpr sql::Statement kDepthAll{
    "SELECT CAST(COALESCE(SUM(depth), 0) AS BIGINT) FROM mailbox_depth"};
constexpr sql::Statement kDepthFrom{
    "SELECT CAST(COALESCE(SUM(depth), 0) AS BIGINT) FROM mailbox_depth WHERE key >= ?1",
    {Type::kBytes}};
constexpr sql::Statement kDepthRange{
    "SELECT CAST(COALESCE(SUM(depth), 0) AS BIGINT) FROM mailbox_depth WHERE key >= ?1 AND "
    "key < ?2",
    {Type::kBytes, Type::kBytes}};
// Locked until the commit where several nodes share the database, so that their appends check
// the quota one after the other (the insert's trigger updates the row anyway).
constexpr sql::Statement kUsage{
    [](const sql::Dialect& d) {
        return "SELECT mailboxes, bytes FROM mailbox_usage WHERE prefix = ?1" +
               std::string(d.for_update());
    },
    {Type::kBytes}};
// The bytes, as mailbox_usage counts them, of the ?2 oldest entries of a mailbox.
constexpr sql::Statement kOldestBytes{
    [](const sql::Dialect& d) {
        return "SELECT CAST(COALESCE(SUM(" + d.octets("key") + " + " + d.octets("body") +
               "), 0) AS BIGINT) FROM (SELECT key, body FROM mailbox WHERE key = ?1 ORDER BY seq "
               "LIMIT ?2) AS oldest";
    },
    {Type::kBytes, Type::kInt64}};
constexpr sql::Statement kDropOldest{
    "DELETE FROM mailbox WHERE seq IN "
    "(SELECT seq FROM mailbox WHERE key = ?1 ORDER BY seq LIMIT ?2)",
    {Type::kBytes, Type::kInt64}};
// Reads skip the entries expired at ?now.
constexpr sql::Statement kRead{
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key = ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY seq LIMIT ?2",
    {Type::kBytes, Type::kInt64, Type::kInt64}};
constexpr sql::Statement kReadAll{
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE "
    "(expires_at IS NULL OR expires_at > ?2) ORDER BY seq LIMIT ?1",
    {Type::kInt64, Type::kInt64}};
constexpr sql::Statement kReadFrom{
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= ?1 AND "
    "(expires_at IS NULL OR expires_at > ?3) ORDER BY seq LIMIT ?2",
    {Type::kBytes, Type::kInt64, Type::kInt64}};
constexpr sql::Statement kReadRange{
    "SELECT seq, key, body, stored_at, expires_at FROM mailbox WHERE key >= ?1 AND key < ?2 "
    "AND (expires_at IS NULL OR expires_at > ?4) ORDER BY seq LIMIT ?3",
    {Type::kBytes, Type::kBytes, Type::kInt64, Type::kInt64}};
// Entries expired at ?1 within the prefix range [?2, ?3) (?3 NULL: no upper bound), at most ?4:
// the partial index on expires_at walks only entries that can expire, soonest first.
constexpr sql::Statement kExpire{
    "DELETE FROM mailbox WHERE seq IN (SELECT seq FROM mailbox WHERE expires_at <= ?1 AND "
    "key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY expires_at LIMIT ?4)",
    {Type::kInt64, Type::kBytes, Type::kBytes, Type::kInt64}};
// Non-empty mailboxes by key: after ?1 (NULL: from the start), within the prefix range [?2, ?3).
constexpr sql::Statement kDepthList{
    "SELECT key, depth FROM mailbox_depth WHERE (?1 IS NULL OR key > ?1) AND key >= ?2 AND "
    "(?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4",
    {Type::kBytes, Type::kBytes, Type::kBytes, Type::kInt64}};
constexpr sql::Statement kRemove{"DELETE FROM mailbox WHERE key = ?1 AND seq = ?2",
                                 {Type::kBytes, Type::kInt64}};
constexpr sql::Statement kRemoveUpTo{"DELETE FROM mailbox WHERE key = ?1 AND seq <= ?2",
                                     {Type::kBytes, Type::kInt64}};

/// The store's clock for stored_at and expires_at: Unix time in milliseconds.
std::int64_t unix_ms_now() noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// What `append` decides before it inserts, from the mailbox's depth and its namespace's usage.
struct AppendPlan {
    Errc refused = Errc::kOk;  // kLimitReached or kTooLarge: store nothing
    std::int64_t drop = 0;     // the oldest entries of the mailbox to delete after the insert
};

/// The quota and depth rules of `Mailboxes::append`. `depth`: the mailbox's entries now;
/// `mailboxes`, `bytes`: its namespace's usage now (read only when a quota is set);
/// `oldest_bytes(n)`: the bytes of the mailbox's n oldest entries, asked only when the byte quota
/// needs them (they leave with the insert), nullopt when that read failed.
template <class OldestBytes>
std::optional<AppendPlan> plan_append(const MailboxLimits& limits, std::int64_t entry_bytes,
                                      std::int64_t depth, std::int64_t mailboxes,
                                      std::int64_t bytes, OldestBytes&& oldest_bytes) {
    AppendPlan plan;
    const auto max_depth = static_cast<std::int64_t>(
        std::min<std::size_t>(limits.max_depth, std::numeric_limits<std::int64_t>::max()));
    plan.drop = std::max<std::int64_t>(0, depth + 1 - max_depth);
    if (depth == 0 && limits.max_mailboxes > 0 &&
        static_cast<std::uint64_t>(std::max<std::int64_t>(0, mailboxes)) >= limits.max_mailboxes) {
        plan.refused = Errc::kLimitReached;
        return plan;
    }
    if (limits.max_bytes > 0) {
        std::int64_t leaving = 0;
        if (plan.drop > 0) {
            const std::optional<std::int64_t> n = oldest_bytes(plan.drop);
            if (!n) {
                return std::nullopt;
            }
            leaving = *n;
        }
        const std::int64_t after = std::max<std::int64_t>(0, bytes - leaving) + entry_bytes;
        if (after > 0 && static_cast<std::uint64_t>(after) > limits.max_bytes) {
            plan.refused = Errc::kTooLarge;
        }
    }
    return plan;
}

/// The first column of a one-row query as an integer, 0 without a row; false when it failed.
bool one_int64(sql::Query& q, std::int64_t& out) {
    out = q.next() ? q.int64_at(0) : 0;
    return !q.failed();
}

/// Reads rows of (seq, key, body, stored_at, expires_at) into `out`.
bool entries_of(sql::Query& q, Result<std::vector<MailboxEntry>>& out) {
    std::vector<MailboxEntry> entries;
    while (q.next()) {
        MailboxEntry e;
        e.seq = static_cast<std::uint64_t>(q.int64_at(0));
        e.key = q.text_at(1);
        e.body = q.text_at(2);
        e.stored_at =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(q.int64_at(3)));
        if (!q.is_null(4)) {
            e.expires_at =
                std::chrono::system_clock::time_point(std::chrono::milliseconds(q.int64_at(4)));
        }
        entries.push_back(std::move(e));
    }
    if (q.failed()) {
        return false;
    }
    out = std::move(entries);
    return true;
}

class MailboxRepo final : public Mailboxes {
public:
    explicit MailboxRepo(detail::StoreExecutor& executor) : run_(executor) {}

    using Mailboxes::append;
    void append(std::string key, std::string body, const MailboxLimits& limits,
                Completion<AppendResult> done) override {
        const std::size_t bytes = key.size() + body.size();
        run_.write<AppendResult>(
            std::move(done),
            [key = std::move(key), body = std::move(body), limits](sql::Conn& c, BatchStats& stats,
                                                                   Result<AppendResult>& out) {
                return append_in(c, key, body, limits, stats, out);
            },
            bytes);
    }

    void read(std::string key, std::size_t max,
              Completion<std::vector<MailboxEntry>> done) override {
        const std::size_t bytes = key.size();
        run_.read<std::vector<MailboxEntry>>(
            std::move(done),
            [key = std::move(key), max](sql::Conn& c, BatchStats&,
                                        Result<std::vector<MailboxEntry>>& out) {
                sql::Query q(c, kRead);
                q.text(key).int64(clamp_to_int64(max)).int64(unix_ms_now());
                return entries_of(q, out);
            },
            bytes);
    }

    void read_prefix(std::string prefix, std::size_t max,
                     Completion<std::vector<MailboxEntry>> done) override {
        const std::size_t bytes = prefix.size();
        run_.read<std::vector<MailboxEntry>>(
            std::move(done),
            [prefix = std::move(prefix), max](sql::Conn& c, BatchStats&,
                                              Result<std::vector<MailboxEntry>>& out) {
                const std::int64_t limit = clamp_to_int64(max);
                const std::int64_t now_ms = unix_ms_now();
                const auto upper = detail::prefix_upper_bound(prefix);
                if (prefix.empty()) {
                    sql::Query q(c, kReadAll);
                    q.int64(limit).int64(now_ms);
                    return entries_of(q, out);
                }
                if (!upper) {
                    sql::Query q(c, kReadFrom);
                    q.text(prefix).int64(limit).int64(now_ms);
                    return entries_of(q, out);
                }
                sql::Query q(c, kReadRange);
                q.text(prefix).text(*upper).int64(limit).int64(now_ms);
                return entries_of(q, out);
            },
            bytes);
    }

    void expire(std::string prefix, std::uint64_t max_delete,
                Completion<std::uint64_t> done) override {
        const std::size_t bytes = prefix.size();
        run_.write<std::uint64_t>(
            std::move(done),
            [prefix = std::move(prefix), max_delete](sql::Conn& c, BatchStats&,
                                                     Result<std::uint64_t>& out) {
                const auto upper = detail::prefix_upper_bound(prefix);
                sql::Query q(c, kExpire);
                q.int64(unix_ms_now()).text(prefix).text(upper).int64(clamp_to_int64(max_delete));
                if (!q.run()) {
                    return false;
                }
                out = q.changes();
                return true;
            },
            bytes);
    }

    void remove(std::string key, std::uint64_t seq, Completion<void> done) override {
        const std::size_t bytes = key.size();
        run_.write<void>(
            std::move(done),
            [key = std::move(key), seq](sql::Conn& c, BatchStats&, Result<void>&) {
                if (seq > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                    return true;  // no such entry; not an error
                }
                sql::Query q(c, kRemove);
                q.text(key).int64(static_cast<std::int64_t>(seq));
                return q.run();
            },
            bytes);
    }

    void remove_up_to(std::string key, std::uint64_t up_to,
                      Completion<std::uint64_t> done) override {
        const std::size_t bytes = key.size();
        run_.write<std::uint64_t>(
            std::move(done),
            [key = std::move(key), up_to](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                sql::Query q(c, kRemoveUpTo);
                q.text(key).int64(clamp_to_int64(up_to));
                if (!q.run()) {
                    return false;
                }
                out = q.changes();
                return true;
            },
            bytes);
    }

    void depth(std::string key, Completion<std::uint64_t> done) override {
        run_.read<std::uint64_t>(
            std::move(done),
            [key = std::move(key)](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                sql::Query q(c, kDepth);
                q.text(key);
                std::int64_t depth = 0;  // no row: an empty mailbox
                if (!one_int64(q, depth)) {
                    return false;
                }
                out = static_cast<std::uint64_t>(depth);
                return true;
            });
    }

    void depth_prefix(std::string prefix, Completion<std::uint64_t> done) override {
        run_.read<std::uint64_t>(
            std::move(done),
            [prefix = std::move(prefix)](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                // The same key range as read_prefix.
                const auto upper = detail::prefix_upper_bound(prefix);
                sql::Query q(c, prefix.empty() ? kDepthAll : !upper ? kDepthFrom : kDepthRange);
                if (!prefix.empty()) {
                    q.text(prefix);
                }
                if (!prefix.empty() && upper) {
                    q.text(*upper);
                }
                std::int64_t depth = 0;
                if (!one_int64(q, depth)) {
                    return false;
                }
                out = static_cast<std::uint64_t>(depth);
                return true;
            });
    }

    void list_depths(std::string prefix, std::optional<std::string> after, std::size_t max,
                     Completion<std::vector<MailboxDepth>> done) override {
        run_.read<std::vector<MailboxDepth>>(
            std::move(done),
            [prefix = std::move(prefix), after = std::move(after), max](
                sql::Conn& c, BatchStats&, Result<std::vector<MailboxDepth>>& out) {
                const auto upper = detail::prefix_upper_bound(prefix);
                sql::Query q(c, kDepthList);
                q.text(after).text(prefix).text(upper).int64(clamp_to_int64(max));
                std::vector<MailboxDepth> list;
                while (q.next()) {
                    list.push_back({q.text_at(0), static_cast<std::uint64_t>(q.int64_at(1))});
                }
                if (q.failed()) {
                    return false;
                }
                out = std::move(list);
                return true;
            });
    }

private:
    static bool append_in(sql::Conn& c, const std::string& key, const std::string& body,
                          const MailboxLimits& limits, BatchStats& stats,
                          Result<AppendResult>& out) {
        if (limits.max_depth == 0) {
            out = make_error_code(Errc::kInvalidArgument);  // it would drop itself
            return true;
        }
        if (body.size() > c.max_field_bytes() || key.size() > c.max_field_bytes()) {
            out = make_error_code(Errc::kTooLarge);
            return true;
        }
        std::int64_t depth = 0;
        {
            sql::Query q(c, kDepth);
            q.text(key);
            if (!one_int64(q, depth)) {
                return false;
            }
        }
        std::int64_t mailboxes = 0;
        std::int64_t used = 0;
        if (limits.max_mailboxes > 0 || limits.max_bytes > 0) {
            sql::Query q(c, kUsage);
            q.text(detail::mailbox_namespace(key));
            if (q.next()) {
                mailboxes = q.int64_at(0);
                used = q.int64_at(1);
            }
            if (q.failed()) {
                return false;
            }
        }
        const auto plan =
            plan_append(limits, static_cast<std::int64_t>(key.size() + body.size()), depth,
                        mailboxes, used, [&](std::int64_t n) -> std::optional<std::int64_t> {
                            sql::Query q(c, kOldestBytes);
                            q.text(key).int64(n);
                            std::int64_t sum = 0;
                            return one_int64(q, sum) ? std::optional(sum) : std::nullopt;
                        });
        if (!plan) {
            return false;
        }
        if (plan->refused != Errc::kOk) {
            out = make_error_code(plan->refused);
            return true;
        }
        const std::int64_t now_ms = unix_ms_now();
        std::optional<std::int64_t> expires_at;
        if (limits.lifetime.count() > 0) {
            expires_at = now_ms + limits.lifetime.count();
        }
        AppendResult result;
        {
            sql::Query q(c, kInsert);
            q.text(key).text(body).int64(now_ms).int64(expires_at);
            if (!q.run()) {
                return false;
            }
            result.seq = static_cast<std::uint64_t>(q.inserted_id());
        }
        if (plan->drop > 0) {
            sql::Query q(c, kDropOldest);
            q.text(key).int64(plan->drop);
            if (!q.run()) {
                return false;
            }
            result.dropped = q.changes();
            stats.dropped += result.dropped;
        }
        out = result;
        return true;
    }

    Runner run_;
};

}  // namespace

std::unique_ptr<Mailboxes> make_mailboxes(detail::StoreExecutor& executor) {
    return std::make_unique<MailboxRepo>(executor);
}

}  // namespace hearth::store::repo
