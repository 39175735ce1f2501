#pragma once

// The durable store as every module sees it. Asynchronous: work runs on the store's own threads
// (SQLite and PostgreSQL alike: one writer thread with group commit and reader threads, each
// with its own connection; src/store/executor.hpp), never on an io thread. Each completion runs on
// a store thread: a caller on an io thread wraps it with `core::post_to_current_thread`
// (core/post.hpp) to get it back home.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <hearth/result.hpp>

namespace hearth::store {

template <class T>
using Completion = std::function<void(Result<T>)>;

/// One message in a mailbox.
struct MailboxEntry {
    std::string key;        // the mailbox
    std::uint64_t seq = 0;  // increasing across all mailboxes: insertion order
    std::string body;       // opaque to the store
    std::chrono::system_clock::time_point stored_at;
    /// From then on it is never read again, and the next `expire` deletes it; none: never.
    std::optional<std::chrono::system_clock::time_point> expires_at;
};

/// What one `append` may take. The quotas count every mailbox of the key's namespace: the key up
/// to and including its first ':' ("homestead:to-bot:C" is in "homestead:"; a key without ':' is
/// in ""), so that one module's mailboxes share them whatever keys its clients make it create.
/// The store keeps each namespace's figures exact (by triggers, across nodes sharing a database).
struct MailboxLimits {
    std::size_t max_depth = 0;  // entries per mailbox; the oldest are dropped beyond it; 0 invalid
    std::uint64_t max_mailboxes = 0;        // non-empty mailboxes in the namespace; 0: no quota
    std::uint64_t max_bytes = 0;            // bytes (key + body of every entry) in it; 0: no quota
    std::chrono::milliseconds lifetime{0};  // the entry expires this long after it is stored; 0:
                                            // never
};

/// A non-empty mailbox and the number of entries in it.
struct MailboxDepth {
    std::string key;
    std::uint64_t depth = 0;
};

struct AppendResult {
    std::uint64_t seq = 0;      // the new entry's seq
    std::uint64_t dropped = 0;  // oldest entries removed to stay within max_depth
};

/// Durable, ordered, bounded queues of messages for offline recipients, by key (e.g.
/// "homestead:mod-to-bot:C"). Operations submitted by one thread complete in submission order,
/// and a read sees every write submitted before it. Errors: kStorageFailure (disk full, read-only,
/// corrupt: logged with the cause), kUnavailable (the store is overloaded: its queue is full;
/// nothing was done), kShuttingDown. An operation refused at submission (kUnavailable for a full
/// queue, kShuttingDown) completes at once, on the calling thread, before the call returns.
/// Expired entries are never read; until `expire` deletes them they still count in the depths
/// and the quotas.
class Mailboxes {
public:
    virtual ~Mailboxes() = default;

    /// Appends `body`; the completion runs once the entry is committed (durable when
    /// `[storage] synchronous = "full"`). When the mailbox then holds more than
    /// `limits.max_depth` entries the oldest are deleted in the same transaction and counted in
    /// `dropped`. Refused, with nothing stored: kLimitReached when the key's mailbox is empty
    /// and its namespace already holds `max_mailboxes` non-empty ones; kTooLarge when the
    /// namespace would hold more than `max_bytes` (the dropped entries' bytes deducted), or the
    /// body is larger than the database stores in one field; kInvalidArgument for a max_depth
    /// of 0.
    virtual void append(std::string key, std::string body, const MailboxLimits& limits,
                        Completion<AppendResult> done) = 0;
    /// The same without quotas or lifetime.
    void append(std::string key, std::string body, std::size_t max_depth,
                Completion<AppendResult> done) {
        append(std::move(key), std::move(body), MailboxLimits{.max_depth = max_depth},
               std::move(done));
    }
    /// Up to `max` entries of one mailbox that have not expired, oldest first.
    virtual void read(std::string key, std::size_t max,
                      Completion<std::vector<MailboxEntry>> done) = 0;
    /// Up to `max` entries that have not expired of every mailbox whose key starts with
    /// `prefix`, in insertion order.
    virtual void read_prefix(std::string prefix, std::size_t max,
                             Completion<std::vector<MailboxEntry>> done) = 0;
    /// Deletes up to `max_delete` expired entries of the mailboxes whose key starts with
    /// `prefix` (a long delete would hold the writer): completes with the number deleted; a
    /// caller that gets `max_delete` calls again. The index on the expiry time serves it.
    virtual void expire(std::string prefix, std::uint64_t max_delete,
                        Completion<std::uint64_t> done) = 0;
    /// Deletes the entry `seq` of mailbox `key` (a delivered message). Deleting a missing entry is
    /// not an error.
    virtual void remove(std::string key, std::uint64_t seq, Completion<void> done) = 0;
    /// Deletes every entry of `key` with seq <= `up_to`.
    virtual void remove_up_to(std::string key, std::uint64_t up_to,
                              Completion<std::uint64_t> done) = 0;
    /// Entries in `key`.
    virtual void depth(std::string key, Completion<std::uint64_t> done) = 0;
    /// Entries in every mailbox whose key starts with `prefix` (without reading them).
    virtual void depth_prefix(std::string prefix, Completion<std::uint64_t> done) = 0;
    /// The non-empty mailboxes whose key starts with `prefix`, ordered by key (bytes), after
    /// `after` when given, at most `max` (without reading their messages).
    virtual void list_depths(std::string prefix, std::optional<std::string> after, std::size_t max,
                             Completion<std::vector<MailboxDepth>> done) = 0;
};

/// One stored log entry (docs/logs.md). The filter columns are copied out of the entry when it is
/// stored, so that queries need not parse JSON.
struct LogRow {
    std::uint64_t id = 0;             // assigned by the store: increasing, never reused
    std::int64_t server_time_ms = 0;  // the entry's serverTime (ms since the Unix epoch)
    std::string room;                 // "" for the common room
    std::string user;                 // the entry's "user" when a string, else ""
    std::string level;                // the entry's "level" when a string, upper-cased, else ""
    std::string body;                 // the whole entry, serialized JSON
};

/// Which entries `Logs::query` returns: every given filter must match.
struct LogQuery {
    std::optional<std::string> room = {};         // exact match
    std::optional<std::string> user = {};         // exact match
    std::vector<std::string> levels = {};         // any of these (upper-case); empty: every level
    std::optional<std::int64_t> since_ms = {};    // server_time_ms >= since_ms
    std::optional<std::uint64_t> before_id = {};  // id < before_id: the next page's cursor
    std::size_t limit = 100;
};

/// Stored log entries with bounded retention. Same threading, order and error rules as Mailboxes.
class Logs {
public:
    virtual ~Logs() = default;

    /// Stores `rows` (their `id` is ignored and assigned) in one transaction.
    virtual void append(std::vector<LogRow> rows, Completion<void> done) = 0;
    /// Up to `limit` matching entries, newest (highest id) first.
    virtual void query(LogQuery query, Completion<std::vector<LogRow>> done) = 0;
    /// Deletes entries older than `older_than_ms`, then the oldest entries over `max_rows`, then
    /// the oldest entries while their bodies' bytes (UTF-8) are over `max_bytes`, at most
    /// `max_delete` rows in one call (a long delete would hold the writer): completes with the
    /// number deleted; a caller that gets `max_delete` calls again.
    virtual void prune(std::int64_t older_than_ms, std::uint64_t max_rows, std::uint64_t max_bytes,
                       std::uint64_t max_delete, Completion<std::uint64_t> done) = 0;
    /// The number of stored entries.
    virtual void count(Completion<std::uint64_t> done) = 0;
};

class AccountStore;    // include/hearth/account_store.hpp
class CharacterStore;  // include/hearth/character_store.hpp

/// The store: what the app opens once (from `[storage]`) and hands to modules.
class Store {
public:
    virtual ~Store() = default;
    virtual Mailboxes& mailboxes() = 0;
    virtual Logs& logs() = 0;
    virtual AccountStore& accounts() = 0;
    virtual CharacterStore& characters() = 0;
    /// Whether the store answered its last health probe (for /ready). Thread-safe, never blocks.
    virtual bool healthy() const noexcept = 0;
};

}  // namespace hearth::store
