// Accounts, tokens and the audit log (include/hearth/account_store.hpp, migration 3) on the SQL
// dialect layer. Usernames and emails are unique by a folded key; roles and scopes are stored
// comma-separated; times are Unix milliseconds.

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/repo/repo.hpp"
#include "store/repo/repositories.hpp"

namespace hearth::store::repo {
namespace {

using sql::Type;

// The columns account_of, token_of and audit_of read, in their order.
#define HEARTH_ACCOUNT_COLUMNS                                                              \
    "id, username, email, password_hash, disabled, guest, roles, external_id, created_at, " \
    "last_login_at"
#define HEARTH_TOKEN_COLUMNS \
    "id, account_id, kind, name, digest, scopes, created_at, expires_at, revoked_at"
#define HEARTH_AUDIT_COLUMNS "id, at, actor, action, target, peer, detail"

// A conflict on any unique column (username_key, email_key, external_id) inserts nothing and
// returns no row: no error, so the batch goes on (PostgreSQL needs no savepoint for it).
constexpr sql::Statement kAccountInsert{
    "INSERT INTO account (username, username_key, email, email_key, password_hash, disabled, "
    "guest, roles, external_id, created_at, last_login_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) "
    "ON CONFLICT DO NOTHING RETURNING " HEARTH_ACCOUNT_COLUMNS,
    {Type::kText, Type::kText, Type::kText, Type::kText, Type::kText, Type::kBool, Type::kBool,
     Type::kText, Type::kText, Type::kInt64, Type::kInt64}};
constexpr sql::Statement kAccountById{
    "SELECT " HEARTH_ACCOUNT_COLUMNS " FROM account WHERE id = ?1", {Type::kInt64}};
constexpr sql::Statement kAccountByName{
    "SELECT " HEARTH_ACCOUNT_COLUMNS " FROM account WHERE username_key = ?1", {Type::kText}};
constexpr sql::Statement kAccountByExternalId{
    "SELECT " HEARTH_ACCOUNT_COLUMNS " FROM account WHERE external_id = ?1", {Type::kText}};
// Roles match as whole items of the comma-separated list. username_key compares as bytes on both
// (PostgreSQL: COLLATE "C").
constexpr sql::Statement kAccountList{
    [](const sql::Dialect& d) {
        return "SELECT " HEARTH_ACCOUNT_COLUMNS
               " FROM account WHERE id > ?1 AND (?2 IS NULL OR disabled = ?2) AND (?3 IS NULL OR " +
               d.position("',' || ?3 || ','", "',' || roles || ','") + " > 0) AND (?4 IS NULL OR " +
               d.starts_with("username_key", "?4", "?5") + ") ORDER BY id LIMIT ?6";
    },
    {Type::kInt64, Type::kBool, Type::kText, Type::kText, Type::kBytes, Type::kInt64}};
// ?2: whether the patch sets the email (to ?3, possibly NULL); NULL elsewhere: unchanged.
constexpr sql::Statement kAccountUpdate{
    "UPDATE account SET email = CASE WHEN ?2 THEN ?3 ELSE email END, "
    "email_key = CASE WHEN ?2 THEN ?4 ELSE email_key END, "
    "password_hash = COALESCE(?5, password_hash), disabled = COALESCE(?6, disabled), "
    "roles = COALESCE(?7, roles), last_login_at = COALESCE(?8, last_login_at) "
    "WHERE id = ?1 RETURNING " HEARTH_ACCOUNT_COLUMNS,
    {Type::kInt64, Type::kBool, Type::kText, Type::kText, Type::kText, Type::kBool, Type::kText,
     Type::kInt64}};
constexpr sql::Statement kAccountDelete{"DELETE FROM account WHERE id = ?1", {Type::kInt64}};
constexpr sql::Statement kAccountExists{"SELECT 1 FROM account WHERE id = ?1", {Type::kInt64}};

// The account row is read with the insert (and locked where other nodes could delete it
// meanwhile), so that a missing account inserts nothing rather than failing the foreign key (and
// the batch); a digest taken inserts nothing too. No row: insert_token tells which.
constexpr sql::Statement kTokenInsert{
    [](const sql::Dialect& d) {
        return "INSERT INTO token (account_id, kind, name, digest, scopes, created_at, "
               "expires_at, revoked_at) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM account WHERE "
               "id = ?1" +
               std::string(d.for_key_share()) +
               " ON CONFLICT DO NOTHING RETURNING " HEARTH_TOKEN_COLUMNS;
    },
    {Type::kInt64, Type::kInt64, Type::kText, Type::kText, Type::kText, Type::kInt64, Type::kInt64,
     Type::kInt64}};
constexpr sql::Statement kTokenByDigest{
    "SELECT t.id, t.account_id, t.kind, t.name, t.digest, t.scopes, t.created_at, t.expires_at, "
    "t.revoked_at, a.id, a.username, a.email, a.password_hash, a.disabled, a.guest, a.roles, "
    "a.external_id, a.created_at, a.last_login_at "
    "FROM token t JOIN account a ON a.id = t.account_id WHERE t.digest = ?1",
    {Type::kText}};
constexpr sql::Statement kTokenById{"SELECT " HEARTH_TOKEN_COLUMNS " FROM token WHERE id = ?1",
                                    {Type::kInt64}};
// Two shapes, so that the (account_id, id) index serves an account's tokens (the other one
// leaves ?1 unused).
#define HEARTH_TOKEN_FILTERS \
    "id > ?2 AND (?3 IS NULL OR kind = ?3) AND (?4 OR revoked_at IS NULL) ORDER BY id LIMIT ?5"
constexpr sql::Statement kTokenListByAccount{
    "SELECT " HEARTH_TOKEN_COLUMNS " FROM token WHERE account_id = ?1 AND " HEARTH_TOKEN_FILTERS,
    {Type::kInt64, Type::kInt64, Type::kInt64, Type::kBool, Type::kInt64}};
constexpr sql::Statement kTokenList{
    "SELECT " HEARTH_TOKEN_COLUMNS " FROM token WHERE " HEARTH_TOKEN_FILTERS,
    {Type::kInt64, Type::kInt64, Type::kInt64, Type::kBool, Type::kInt64}};
#undef HEARTH_TOKEN_FILTERS
// An earlier revocation stands.
constexpr sql::Statement kTokenRevoke{
    "UPDATE token SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 "
    "RETURNING " HEARTH_TOKEN_COLUMNS,
    {Type::kInt64, Type::kInt64}};
constexpr sql::Statement kTokenPurge{"DELETE FROM token WHERE expires_at < ?1 OR revoked_at < ?1",
                                     {Type::kInt64}};

// The audit log; like the log queries, one shape per index: (actor, id), (action, id), or id
// alone, newest first.
constexpr sql::Statement kAuditInsert{
    "INSERT INTO audit (at, actor, action, target, peer, detail) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING " HEARTH_AUDIT_COLUMNS,
    {Type::kInt64, Type::kText, Type::kText, Type::kText, Type::kText, Type::kText}};
#define HEARTH_AUDIT_LIST(where)                                  \
    sql::Statement {                                              \
        "SELECT " HEARTH_AUDIT_COLUMNS " FROM audit WHERE " where \
        "id < ?3 ORDER BY id DESC LIMIT ?4",                      \
        {                                                         \
            Type::kText, Type::kText, Type::kInt64, Type::kInt64  \
        }                                                         \
    }
constexpr sql::Statement kAuditListByActor =
    HEARTH_AUDIT_LIST("actor = ?1 AND (?2 IS NULL OR action = ?2) AND ");
constexpr sql::Statement kAuditListByAction = HEARTH_AUDIT_LIST("action = ?2 AND ");
constexpr sql::Statement kAuditList = HEARTH_AUDIT_LIST("");
#undef HEARTH_AUDIT_LIST
#undef HEARTH_ACCOUNT_COLUMNS
#undef HEARTH_TOKEN_COLUMNS
#undef HEARTH_AUDIT_COLUMNS

// ---------------------------------------------------------------------------------------------
// Values as stored.

/// Roles and scopes as stored: "a,b,c" ("" for none). Their names never hold a comma.
std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) {
            out += ',';
        }
        out += i;
    }
    return out;
}

std::vector<std::string> split(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        const auto comma = s.find(',');
        out.emplace_back(s.substr(0, comma));
        s = comma == std::string_view::npos ? std::string_view{} : s.substr(comma + 1);
    }
    return out;
}

/// Whether every item reads back as itself once joined, and can be stored: not empty, no comma.
bool storable_list(const sql::Conn& c, const std::vector<std::string>& items) {
    return std::all_of(items.begin(), items.end(), [&](const std::string& item) {
        return !item.empty() && item.find(',') == std::string::npos && c.storable_text(item);
    });
}

/// The account columns, from `first` on.
AccountRecord account_of(const sql::Query& q, int first = 0) {
    AccountRecord a;
    a.id = static_cast<std::uint64_t>(q.int64_at(first));
    a.username = q.text_at(first + 1);
    a.email = q.opt_text_at(first + 2);
    a.password_hash = q.text_at(first + 3);
    a.disabled = q.bool_at(first + 4);
    a.guest = q.bool_at(first + 5);
    a.roles = split(q.text_at(first + 6));
    a.external_id = q.opt_text_at(first + 7);
    a.created_at = time_of(q.int64_at(first + 8));
    a.last_login_at = opt_time_at(q, first + 9);
    return a;
}

TokenRecord token_of(const sql::Query& q) {
    TokenRecord t;
    t.id = static_cast<std::uint64_t>(q.int64_at(0));
    t.account_id = static_cast<std::uint64_t>(q.int64_at(1));
    t.kind = static_cast<TokenKindCode>(q.int64_at(2));
    t.name = q.text_at(3);
    t.digest = q.text_at(4);
    t.scopes = split(q.text_at(5));
    t.created_at = time_of(q.int64_at(6));
    t.expires_at = opt_time_at(q, 7);
    t.revoked_at = opt_time_at(q, 8);
    return t;
}

AuditEntry audit_of(const sql::Query& q) {
    AuditEntry e;
    e.id = static_cast<std::uint64_t>(q.int64_at(0));
    e.at = time_of(q.int64_at(1));
    e.actor = q.text_at(2);
    e.action = q.text_at(3);
    e.target = q.text_at(4);
    e.peer = q.text_at(5);
    e.detail = q.text_at(6);
    return e;
}

AccountRecord account_row(const sql::Query& q) {
    return account_of(q);
}

class AccountRepo final : public AccountStore {
public:
    explicit AccountRepo(detail::StoreExecutor& executor) : run_(executor) {}

    void create_account(AccountRecord account, Completion<AccountRecord> done) override {
        run_.write<AccountRecord>(std::move(done), [a = std::move(account)](
                                                       sql::Conn& c, BatchStats&,
                                                       Result<AccountRecord>& out) {
            if (!c.storable_text(a.username) || !c.storable_text(a.password_hash) ||
                !c.storable(a.email) || !c.storable(a.external_id) || !storable_list(c, a.roles)) {
                return invalid(out);
            }
            const std::string username_key = fold(a.username);
            std::optional<std::string> email_key;
            if (a.email) {
                email_key = fold(*a.email);
            }
            const std::string roles = join(a.roles);
            sql::Query q(c, kAccountInsert);
            q.text(a.username).text(username_key).text(a.email).text(email_key);
            q.text(a.password_hash).boolean(a.disabled).boolean(a.guest).text(roles);
            q.text(a.external_id).int64(ms(a.created_at)).int64(ms(a.last_login_at));
            if (!one(q, out, account_row)) {
                return false;
            }
            if (!out && out.error() == make_error_code(Errc::kNotFound)) {
                out = make_error_code(Errc::kAlreadyExists);  // ON CONFLICT DO NOTHING
            }
            return true;
        });
    }

    void account_by_id(std::uint64_t id, Completion<AccountRecord> done) override {
        run_.read<AccountRecord>(std::move(done),
                                 [id](sql::Conn& c, BatchStats&, Result<AccountRecord>& out) {
                                     const auto param = id_param(id);
                                     if (!param) {
                                         return not_found(out);
                                     }
                                     sql::Query q(c, kAccountById);
                                     q.int64(*param);
                                     return one(q, out, account_row);
                                 });
    }

    void account_by_name(std::string username, Completion<AccountRecord> done) override {
        account_by_key(kAccountByName, fold(username), std::move(done));
    }

    void account_by_external_id(std::string external_id, Completion<AccountRecord> done) override {
        account_by_key(kAccountByExternalId, std::move(external_id), std::move(done));
    }

    void list_accounts(AccountFilter filter, Completion<std::vector<AccountRecord>> done) override {
        run_.read<std::vector<AccountRecord>>(
            std::move(done), [f = std::move(filter)](sql::Conn& c, BatchStats&,
                                                     Result<std::vector<AccountRecord>>& out) {
                // A role or prefix that could not be stored matches nothing.
                if (!c.storable(f.username_prefix) || (f.role && !storable_list(c, {*f.role}))) {
                    out = std::vector<AccountRecord>{};
                    return true;
                }
                std::optional<std::string> lower;
                std::optional<std::string> upper;
                if (f.username_prefix && !f.username_prefix->empty()) {
                    lower = fold(*f.username_prefix);
                    upper = detail::prefix_upper_bound(*lower);
                }
                sql::Query q(c, kAccountList);
                q.int64(f.after_id ? clamp_to_int64(*f.after_id) : 0).boolean(f.disabled);
                q.text(f.role).text(lower).text(upper).int64(clamp_to_int64(f.limit));
                return all(q, out, account_row);
            });
    }

    void update_account(std::uint64_t id, AccountPatch patch,
                        Completion<AccountRecord> done) override {
        run_.write<AccountRecord>(
            std::move(done),
            [id, p = std::move(patch)](sql::Conn& c, BatchStats&, Result<AccountRecord>& out) {
                if ((p.email && !c.storable(*p.email)) || !c.storable(p.password_hash) ||
                    (p.roles && !storable_list(c, *p.roles))) {
                    return invalid(out);
                }
                const auto param = id_param(id);
                if (!param) {
                    return not_found(out);
                }
                std::optional<std::string> email;
                std::optional<std::string> email_key;
                if (p.email && *p.email) {
                    email = **p.email;
                    email_key = fold(**p.email);
                }
                std::optional<std::string> roles;
                if (p.roles) {
                    roles = join(*p.roles);
                }
                sql::Query q(c, kAccountUpdate);
                q.int64(*param).boolean(p.email.has_value()).text(email).text(email_key);
                q.text(p.password_hash).boolean(p.disabled).text(roles).int64(ms(p.last_login_at));
                if (email_key) {
                    q.report_conflict();  // only a new email can take another account's
                }
                if (!one(q, out, account_row)) {
                    return false;
                }
                if (q.conflict()) {
                    out = make_error_code(Errc::kAlreadyExists);
                }
                return true;
            });
    }

    void delete_account(std::uint64_t id, Completion<void> done) override {
        run_.write<void>(std::move(done), [id](sql::Conn& c, BatchStats&, Result<void>& out) {
            const auto param = id_param(id);
            if (!param) {
                return not_found(out);
            }
            // Its tokens go with it (ON DELETE CASCADE).
            sql::Query q(c, kAccountDelete);
            q.int64(*param);
            if (!q.run()) {
                return false;
            }
            if (q.changes() == 0) {
                out = make_error_code(Errc::kNotFound);
            }
            return true;
        });
    }

    void insert_token(TokenRecord token, Completion<TokenRecord> done) override {
        run_.write<TokenRecord>(std::move(done), [t = std::move(token)](sql::Conn& c, BatchStats&,
                                                                        Result<TokenRecord>& out) {
            if (!c.storable_text(t.name) || !c.storable_text(t.digest) ||
                !storable_list(c, t.scopes)) {
                return invalid(out);
            }
            const auto account = id_param(t.account_id);
            if (!account) {
                return not_found(out);
            }
            const std::string scopes = join(t.scopes);
            {
                sql::Query q(c, kTokenInsert);
                q.int64(*account).int64(static_cast<std::int64_t>(t.kind)).text(t.name);
                q.text(t.digest).text(scopes).int64(ms(t.created_at)).int64(ms(t.expires_at));
                q.int64(ms(t.revoked_at));
                if (!one(q, out, token_of)) {
                    return false;
                }
                if (out) {
                    return true;
                }
            }
            // Nothing inserted: no such account, or the digest is taken.
            sql::Query exists(c, kAccountExists);
            exists.int64(*account);
            const bool found = exists.next();
            if (!exists.run()) {
                return false;
            }
            out = make_error_code(found ? Errc::kAlreadyExists : Errc::kNotFound);
            return true;
        });
    }

    void token_by_digest(std::string digest, Completion<TokenLookup> done) override {
        run_.read<TokenLookup>(
            std::move(done),
            [digest = std::move(digest)](sql::Conn& c, BatchStats&, Result<TokenLookup>& out) {
                if (!c.storable_text(digest)) {
                    return not_found(out);
                }
                sql::Query q(c, kTokenByDigest);
                q.text(digest);
                return one(q, out, [](const sql::Query& row) {
                    return TokenLookup{.token = token_of(row), .account = account_of(row, 9)};
                });
            });
    }

    void token_by_id(std::uint64_t id, Completion<TokenRecord> done) override {
        run_.read<TokenRecord>(std::move(done),
                               [id](sql::Conn& c, BatchStats&, Result<TokenRecord>& out) {
                                   const auto param = id_param(id);
                                   if (!param) {
                                       return not_found(out);
                                   }
                                   sql::Query q(c, kTokenById);
                                   q.int64(*param);
                                   return one(q, out, token_of);
                               });
    }

    void list_tokens(TokenFilter filter, Completion<std::vector<TokenRecord>> done) override {
        run_.read<std::vector<TokenRecord>>(
            std::move(done), [f = std::move(filter)](sql::Conn& c, BatchStats&,
                                                     Result<std::vector<TokenRecord>>& out) {
                sql::Query q(c, f.account_id ? kTokenListByAccount : kTokenList);
                q.int64(f.account_id ? std::optional(clamp_to_int64(*f.account_id)) : std::nullopt);
                q.int64(f.after_id ? clamp_to_int64(*f.after_id) : 0);
                q.int64(f.kind ? std::optional(static_cast<std::int64_t>(*f.kind)) : std::nullopt);
                q.boolean(f.include_revoked).int64(clamp_to_int64(f.limit));
                return all(q, out, token_of);
            });
    }

    void revoke_token(std::uint64_t id, TimePoint at, Completion<TokenRecord> done) override {
        run_.write<TokenRecord>(std::move(done),
                                [id, at](sql::Conn& c, BatchStats&, Result<TokenRecord>& out) {
                                    const auto param = id_param(id);
                                    if (!param) {
                                        return not_found(out);
                                    }
                                    sql::Query q(c, kTokenRevoke);
                                    q.int64(*param).int64(ms(at));
                                    return one(q, out, token_of);
                                });
    }

    void purge_tokens(TimePoint before, Completion<std::uint64_t> done) override {
        run_.write<std::uint64_t>(std::move(done),
                                  [before](sql::Conn& c, BatchStats&, Result<std::uint64_t>& out) {
                                      sql::Query q(c, kTokenPurge);
                                      q.int64(ms(before));
                                      if (!q.run()) {
                                          return false;
                                      }
                                      out = q.changes();
                                      return true;
                                  });
    }

    void append_audit(AuditEntry entry, Completion<AuditEntry> done) override {
        run_.write<AuditEntry>(std::move(done), [e = std::move(entry)](sql::Conn& c, BatchStats&,
                                                                       Result<AuditEntry>& out) {
            if (!c.storable_text(e.actor) || !c.storable_text(e.action) ||
                !c.storable_text(e.target) || !c.storable_text(e.peer) ||
                !c.storable_text(e.detail)) {
                return invalid(out);
            }
            sql::Query q(c, kAuditInsert);
            q.int64(ms(e.at)).text(e.actor).text(e.action).text(e.target).text(e.peer);
            q.text(e.detail);
            return one(q, out, audit_of);
        });
    }

    void list_audit(AuditFilter filter, Completion<std::vector<AuditEntry>> done) override {
        run_.read<std::vector<AuditEntry>>(
            std::move(done), [f = std::move(filter)](sql::Conn& c, BatchStats&,
                                                     Result<std::vector<AuditEntry>>& out) {
                if (!c.storable(f.actor) || !c.storable(f.action)) {
                    out = std::vector<AuditEntry>{};  // matches nothing stored
                    return true;
                }
                sql::Query q(c, f.actor    ? kAuditListByActor
                                : f.action ? kAuditListByAction
                                           : kAuditList);
                q.text(f.actor).text(f.action);
                q.int64(f.before_id ? clamp_to_int64(*f.before_id)
                                    : std::numeric_limits<std::int64_t>::max());
                q.int64(clamp_to_int64(f.limit));
                return all(q, out, audit_of);
            });
    }

private:
    /// A read of one account by a statement whose one parameter is the text `key`.
    void account_by_key(const sql::Statement& statement, std::string key,
                        Completion<AccountRecord> done) {
        run_.read<AccountRecord>(std::move(done),
                                 [&statement, key = std::move(key)](sql::Conn& c, BatchStats&,
                                                                    Result<AccountRecord>& out) {
                                     if (!c.storable_text(key)) {
                                         return not_found(out);  // no stored text equals it
                                     }
                                     sql::Query q(c, statement);
                                     q.text(key);
                                     return one(q, out, account_row);
                                 });
    }

    Runner run_;
};

}  // namespace

std::unique_ptr<AccountStore> make_accounts(detail::StoreExecutor& executor) {
    return std::make_unique<AccountRepo>(executor);
}

}  // namespace hearth::store::repo
