#include "auth/better_auth.hpp"
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <poll.h>

#include "core/metrics.hpp"
#include "pg/pg.hpp"
#include "util/log.hpp"

namespace hearth::auth {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxUsernameAttempts = 50;
constexpr std::size_t kMaxUsername = 64;
constexpr const char* kStatement = "hearth_better_auth_validate";

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("auth");
    return l;
}

boost::system::error_code err(Errc e) {
    return make_error_code(e);
}

std::string quoted(const std::string& identifier) {
    // Valid identifiers hold no '"': quoting keeps their case and makes keywords ("user") usable.
    return "\"" + identifier + "\"";
}

bool username_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/// `text` kept to username characters (whitespace becomes '_'), at most kMaxUsername; "" when
/// nothing but punctuation is left.
std::string sanitize_username(std::string_view text) {
    std::string out;
    bool alnum = false;
    for (char c : text) {
        if (out.size() == kMaxUsername) {
            break;
        }
        if (username_char(c)) {
            alnum = alnum || (c != '_' && c != '-' && c != '.');
            out += c;
        } else if (c == ' ' || c == '\t') {
            out += '_';
        }
    }
    return alnum ? out : std::string();
}

enum class Outcome : std::uint8_t {
    kRow,       // a session row (valid or not)
    kNoRow,     // no such token
    kBadInput,  // the token cannot be a value of the column (SQLSTATE class 22)
    kBroken,    // the connection broke
    kTimeout,   // no answer within query_timeout_ms
    kError,     // any other error
};

/// What a validation query found.
struct SessionRow {
    std::string user_id;
    std::int64_t expires_ms = 0;
    bool valid = false;
    std::string name;
    std::string email;
};

/// One blocking connection, used by one bridge thread.
class Connection {
public:
    explicit Connection(pg::ConnPtr conn) : conn_(std::move(conn)) {}

    /// Sends with `send` (PQsendQuery, PQsendPrepare, ...) and waits until `deadline` for the
    /// result; `result` holds the first result on kRow/kNoRow/kBadInput/kError.
    template <class Send>
    Outcome run(Send&& send, Clock::time_point deadline, pg::ResultPtr& result,
                std::string& error) {
        PGconn* c = conn_.get();
        if (send(c) == 0) {
            error = pg::error_message(c);
            return PQstatus(c) == CONNECTION_BAD ? Outcome::kBroken : Outcome::kError;
        }
        // Blocking mode: the send above wrote the whole (small) query; only the answers are
        // waited for here, so that a silent server costs no more than the deadline. Every result
        // is read (up to the null that ends them) so that the connection is idle again.
        result.reset();
        while (true) {
            if (const auto outcome = wait_readable(deadline, error); outcome != Outcome::kRow) {
                return outcome;
            }
            pg::ResultPtr next(PQgetResult(c));
            if (next == nullptr) {
                break;
            }
            if (result == nullptr) {
                result = std::move(next);
            }
        }
        if (result == nullptr || PQstatus(c) == CONNECTION_BAD) {
            error = pg::error_message(c);
            return Outcome::kBroken;
        }
        if (!pg::ok(result.get())) {
            error = pg::result_message(result.get(), c);
            if (PQstatus(c) == CONNECTION_BAD) {
                return Outcome::kBroken;
            }
            return pg::sqlstate(result.get()).starts_with("22") ? Outcome::kBadInput
                                                                : Outcome::kError;
        }
        return PQntuples(result.get()) > 0 ? Outcome::kRow : Outcome::kNoRow;
    }

private:
    /// Waits until a result can be read without blocking: kRow when it can, kTimeout, kBroken.
    Outcome wait_readable(Clock::time_point deadline, std::string& error) {
        PGconn* c = conn_.get();
        while (PQisBusy(c) != 0) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) {
                error = "no answer within query_timeout_ms";
                return Outcome::kTimeout;
            }
            pollfd fd{};
            fd.fd = PQsocket(c);
            fd.events = POLLIN;
            const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno != EINTR) {
                error = "poll failed";
                return Outcome::kBroken;
            }
            if (ready > 0 && PQconsumeInput(c) == 0) {
                error = pg::error_message(c);
                return Outcome::kBroken;
            }
        }
        return Outcome::kRow;
    }

    pg::ConnPtr conn_;
};

}  // namespace

std::string better_auth_query(const BetterAuthConfig& c) {
    const std::string uid = "s." + quoted(c.user_id_column);
    const std::string expires = "s." + quoted(c.expires_at_column) + "::timestamptz";
    return "SELECT " + uid + "::text, (EXTRACT(EPOCH FROM " + expires + ") * 1000)::bigint, " +
           expires + " > now(), u." + quoted(c.user_name_column) + "::text, u." +
           quoted(c.user_email_column) + "::text FROM " + quoted(c.session_table) + " s JOIN " +
           quoted(c.user_table) + " u ON u." + quoted(c.user_key_column) + " = " + uid +
           " WHERE s." + quoted(c.token_column) + " = $1 LIMIT 1";
}

std::string better_auth_username(std::string_view name, std::string_view email,
                                 std::string_view user_id, int attempt) {
    std::string base = sanitize_username(name);
    if (base.empty()) {
        base = sanitize_username(email.substr(0, email.find('@')));
    }
    if (base.empty() && !user_id.empty()) {
        base = sanitize_username("user-" + std::string(user_id));
    }
    if (base.empty()) {
        base = "user";
    }
    if (attempt <= 1) {
        return base;
    }
    const std::string suffix = "-" + std::to_string(attempt);
    base.resize(std::min(base.size(), kMaxUsername - suffix.size()));
    return base + suffix;
}

/// The bridge's shared state: kept alive by its threads and by the validations in flight.
struct BetterAuthBridge::Core : std::enable_shared_from_this<Core> {
    struct Task {
        std::string token;
        Done<Principal> done;
    };

    Core(const BetterAuthConfig& c, store::AccountStore& a, core::MetricsRegistry& metrics)
        : config(c),
          accounts(a),
          sql(better_auth_query(c)),
          masked_url(pg::mask_url(c.postgres_url)),
          ok(metrics.counter("hearth_auth_better_auth_validations_total",
                             "better-auth token validations, by result.", {{"result", "ok"}})),
          refused(metrics.counter("hearth_auth_better_auth_validations_total",
                                  "better-auth token validations, by result.",
                                  {{"result", "refused"}})),
          busy(metrics.counter("hearth_auth_better_auth_validations_total",
                               "better-auth token validations, by result.", {{"result", "busy"}})),
          unavailable(metrics.counter("hearth_auth_better_auth_validations_total",
                                      "better-auth token validations, by result.",
                                      {{"result", "unavailable"}})),
          failed(metrics.counter("hearth_auth_better_auth_validations_total",
                                 "better-auth token validations, by result.",
                                 {{"result", "error"}})),
          created(metrics.counter("hearth_auth_better_auth_accounts_created_total",
                                  "Hearth accounts created for better-auth users on first sight.")),
          pending_gauge(metrics.gauge("hearth_auth_better_auth_pending",
                                      "better-auth validations waiting for a connection.")) {}

    // ---- the queue (any thread) ----

    void submit(Task task) {
        {
            std::lock_guard lock(mutex);
            if (!stopping && queue.size() < static_cast<std::size_t>(config.max_pending)) {
                queue.push_back(std::move(task));
                pending_gauge.add(1);
                cv.notify_one();
                return;
            }
        }
        busy.inc();
        task.done(err(Errc::kUnavailable));
    }

    /// The next task, or nothing once stopping.
    std::optional<Task> next() {
        std::unique_lock lock(mutex);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (stopping) {
            return std::nullopt;
        }
        Task t = std::move(queue.front());
        queue.pop_front();
        pending_gauge.sub(1);
        return t;
    }

    void stop() {
        std::deque<Task> left;
        {
            std::lock_guard lock(mutex);
            stopping = true;
            left.swap(queue);
            pending_gauge.sub(static_cast<std::int64_t>(left.size()));
        }
        cv.notify_all();
        for (auto& t : left) {
            t.done(err(Errc::kShuttingDown));
        }
    }

    // ---- failures, logged once per run ----

    void database_failed(const std::string& what) {
        if (!db_failing.exchange(true)) {
            log()->error(
                "better-auth database {} cannot be used: {}; better-auth tokens are refused with "
                "unavailable until it works again",
                masked_url, what);
        }
    }
    void database_ok() {
        if (db_failing.exchange(false)) {
            log()->info("better-auth database {} works again", masked_url);
        }
    }
    void store_failed(const boost::system::error_code& e) {
        if (!store_failing.exchange(true)) {
            log()->error("better-auth: mapping a user to a Hearth account failed: {}", e.message());
        }
    }
    void store_ok() {
        if (store_failing.exchange(false)) {
            log()->info("better-auth: mapping users to Hearth accounts works again");
        }
    }

    // ---- one thread of the pool ----

    /// Runs on its own thread until stop().
    void run_worker() {
        std::unique_ptr<Connection> conn;
        Clock::time_point next_attempt{};
        // Connect at once, so that a wrong URL or schema is in the log at startup.
        connect(conn, next_attempt);
        while (auto task = next()) {
            lookup(conn, next_attempt, std::move(*task));
        }
    }

    /// Opens and prepares a connection; false (logged, next attempt delayed) when that fails.
    bool connect(std::unique_ptr<Connection>& conn, Clock::time_point& next_attempt) {
        conn.reset();
        const auto timeout = std::chrono::milliseconds(config.query_timeout_ms);
        // libpq counts connect_timeout in whole seconds, at least 2.
        const auto connect_s = std::max<std::int64_t>(2, (config.query_timeout_ms + 999) / 1000);
        const std::string connect_timeout = std::to_string(connect_s);
        // Keywords are processed in order and the last one wins: the URL (expanded from
        // "dbname") may override these defaults.
        const char* const keywords[] = {"connect_timeout", "fallback_application_name", "dbname",
                                        nullptr};
        const char* const values[] = {connect_timeout.c_str(), "hearth-better-auth",
                                      config.postgres_url.c_str(), nullptr};
        pg::ConnPtr raw(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
        std::string error;
        if (raw == nullptr || PQstatus(raw.get()) != CONNECTION_OK) {
            error = raw == nullptr ? "out of memory" : pg::error_message(raw.get());
            next_attempt = Clock::now() + std::chrono::milliseconds(config.retry_interval_ms);
            database_failed("cannot connect: " + error);
            return false;
        }
        PQsetNoticeProcessor(
            raw.get(), [](void*, const char*) {}, nullptr);
        auto c = std::make_unique<Connection>(std::move(raw));
        pg::ResultPtr result;
        const std::string set_timeout =
            "SET statement_timeout = " + std::to_string(config.query_timeout_ms);
        auto outcome = c->run([&](PGconn* p) { return PQsendQuery(p, set_timeout.c_str()); },
                              Clock::now() + timeout, result, error);
        if (outcome == Outcome::kNoRow) {
            outcome = c->run(
                [&](PGconn* p) { return PQsendPrepare(p, kStatement, sql.c_str(), 1, nullptr); },
                Clock::now() + timeout, result, error);
            if (outcome != Outcome::kNoRow) {
                error =
                    "cannot prepare the session query (check the table and column names in "
                    "[auth.better_auth]): " +
                    error;
            }
        }
        if (outcome != Outcome::kNoRow) {
            next_attempt = Clock::now() + std::chrono::milliseconds(config.retry_interval_ms);
            database_failed(error);
            return false;
        }
        conn = std::move(c);
        return true;
    }

    /// Looks the token up and hands the row to map_user (or fails the task).
    void lookup(std::unique_ptr<Connection>& conn, Clock::time_point& next_attempt, Task task) {
        pg::ResultPtr result;
        std::string error;
        Outcome outcome = Outcome::kBroken;
        // A connection that broke while idle (the server restarted) is noticed on use: the query
        // then runs once more on a new connection.
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool fresh = false;
            if (conn == nullptr) {
                if (Clock::now() < next_attempt || !connect(conn, next_attempt)) {
                    unavailable.inc();
                    task.done(err(Errc::kUnavailable));
                    return;
                }
                fresh = true;
            }
            const char* const values[] = {task.token.c_str()};
            const int lengths[] = {static_cast<int>(task.token.size())};
            const int formats[] = {0};
            outcome = conn->run(
                [&](PGconn* p) {
                    return PQsendQueryPrepared(p, kStatement, 1, values, lengths, formats, 0);
                },
                Clock::now() + std::chrono::milliseconds(config.query_timeout_ms), result, error);
            if (outcome == Outcome::kBroken || outcome == Outcome::kTimeout ||
                outcome == Outcome::kError) {
                // Opened again on next use (a timed-out query may still be running on it).
                conn.reset();
            }
            if (outcome != Outcome::kBroken || fresh) {
                break;
            }
        }
        switch (outcome) {
            case Outcome::kRow:
                break;
            case Outcome::kNoRow:
            case Outcome::kBadInput:
                database_ok();
                refused.inc();
                task.done(err(Errc::kUnauthenticated));
                return;
            case Outcome::kBroken:
            case Outcome::kTimeout:
            case Outcome::kError:
                database_failed(error);
                unavailable.inc();
                task.done(err(Errc::kUnavailable));
                return;
        }
        database_ok();
        const PGresult* r = result.get();
        SessionRow row;
        row.user_id = PQgetisnull(r, 0, 0) != 0 ? "" : PQgetvalue(r, 0, 0);
        row.valid = PQgetisnull(r, 0, 2) == 0 && std::string_view(PQgetvalue(r, 0, 2)) == "t";
        if (row.user_id.empty() || !row.valid || PQgetisnull(r, 0, 1) != 0) {
            refused.inc();  // expired (or a row without a user or an expiry)
            task.done(err(Errc::kUnauthenticated));
            return;
        }
        row.expires_ms = std::strtoll(PQgetvalue(r, 0, 1), nullptr, 10);
        row.name = PQgetisnull(r, 0, 3) != 0 ? "" : PQgetvalue(r, 0, 3);
        row.email = PQgetisnull(r, 0, 4) != 0 ? "" : PQgetvalue(r, 0, 4);
        map_user(std::move(row), std::move(task.done));
    }

    // ---- the account mapping (store threads) ----

    void map_user(SessionRow row, Done<Principal> done) {
        auto shared_row = std::make_shared<const SessionRow>(std::move(row));
        accounts.account_by_external_id(
            std::string(kBetterAuthPrefix) + shared_row->user_id,
            [self = shared_from_this(), shared_row,
             done = std::move(done)](Result<store::AccountRecord> found) mutable {
                if (found) {
                    self->answer(*found, *shared_row, done);
                } else if (found.error() == make_error_code(Errc::kNotFound)) {
                    self->create(std::move(shared_row), 1, true, std::move(done));
                } else {
                    self->mapping_failed(found.error(), done);
                }
            });
    }

    /// Creates the account with the attempt's username (and the email while `with_email`).
    void create(std::shared_ptr<const SessionRow> row, int attempt, bool with_email,
                Done<Principal> done) {
        if (attempt > kMaxUsernameAttempts) {
            log()->error("better-auth: no free username for user {} after {} attempts",
                         row->user_id, kMaxUsernameAttempts);
            failed.inc();
            done(err(Errc::kInternal));
            return;
        }
        store::AccountRecord a;
        a.username = better_auth_username(row->name, row->email, row->user_id, attempt);
        if (with_email && !row->email.empty()) {
            a.email = row->email;
        }
        a.roles = {"player"};
        a.external_id = std::string(kBetterAuthPrefix) + row->user_id;
        a.created_at = std::chrono::system_clock::now();
        std::string username = a.username;
        accounts.create_account(
            std::move(a),
            [self = shared_from_this(), row, attempt, with_email, username = std::move(username),
             done = std::move(done)](Result<store::AccountRecord> r) mutable {
                if (r) {
                    self->created.inc();
                    log()->info("better-auth: user {} is now Hearth account {} ({})", row->user_id,
                                r->id, r->username);
                    self->answer(*r, *row, done);
                    return;
                }
                if (r.error() != make_error_code(Errc::kAlreadyExists)) {
                    self->mapping_failed(r.error(), done);
                    return;
                }
                self->resolve_conflict(std::move(row), attempt, with_email, std::move(username),
                                       std::move(done));
            });
    }

    /// A create refused with kAlreadyExists: the user was mapped meanwhile (another node, another
    /// validation), the username is taken, or the email is.
    void resolve_conflict(std::shared_ptr<const SessionRow> row, int attempt, bool with_email,
                          std::string username, Done<Principal> done) {
        accounts.account_by_external_id(
            std::string(kBetterAuthPrefix) + row->user_id,
            [self = shared_from_this(), row, attempt, with_email, username = std::move(username),
             done = std::move(done)](Result<store::AccountRecord> found) mutable {
                if (found) {
                    self->answer(*found, *row, done);
                    return;
                }
                if (found.error() != make_error_code(Errc::kNotFound)) {
                    self->mapping_failed(found.error(), done);
                    return;
                }
                self->accounts.account_by_name(
                    std::move(username), [self, row, attempt, with_email, done = std::move(done)](
                                             Result<store::AccountRecord> named) mutable {
                        if (named) {
                            self->create(std::move(row), attempt + 1, with_email, std::move(done));
                        } else if (named.error() == make_error_code(Errc::kNotFound) &&
                                   with_email && !row->email.empty()) {
                            // The email belongs to another Hearth account: the new one goes
                            // without it.
                            self->create(std::move(row), attempt, false, std::move(done));
                        } else if (named.error() == make_error_code(Errc::kNotFound)) {
                            self->create(std::move(row), attempt + 1, with_email, std::move(done));
                        } else {
                            self->mapping_failed(named.error(), done);
                        }
                    });
            });
    }

    void answer(const store::AccountRecord& account, const SessionRow& row, Done<Principal>& done) {
        store_ok();
        if (account.disabled) {
            refused.inc();
            done(err(Errc::kUnauthenticated));
            return;
        }
        Principal p;
        p.account_id = account.id;
        p.username = account.username;
        p.roles = account.roles;
        p.kind = TokenKind::kSession;
        p.token_id = 0;
        p.external = true;
        p.expires_at =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(row.expires_ms));
        ok.inc();
        done(std::move(p));
    }

    void mapping_failed(const boost::system::error_code& e, Done<Principal>& done) {
        store_failed(e);
        failed.inc();
        done(e);
    }

    const BetterAuthConfig config;
    store::AccountStore& accounts;
    const std::string sql;
    const std::string masked_url;
    core::Counter& ok;
    core::Counter& refused;
    core::Counter& busy;
    core::Counter& unavailable;
    core::Counter& failed;
    core::Counter& created;
    core::Gauge& pending_gauge;
    std::atomic<bool> db_failing{false};
    std::atomic<bool> store_failing{false};
    std::mutex mutex;  // guards queue and stopping
    std::condition_variable cv;
    std::deque<Task> queue;
    bool stopping = false;
    std::vector<std::thread> threads;  // touched only by the constructor and destructor
};

BetterAuthBridge::BetterAuthBridge(const BetterAuthConfig& config, store::AccountStore& accounts,
                                   core::MetricsRegistry& metrics) {
    core::ConfigErrors errors;
    config.validate(errors);
    if (!errors.empty()) {
        throw std::invalid_argument(errors.front());
    }
    core_ = std::make_shared<Core>(config, accounts, metrics);
    log()->info("better-auth bridge: validating tokens against {} (tables \"{}\", \"{}\")",
                core_->masked_url, config.session_table, config.user_table);
    for (std::int64_t i = 0; i < config.pool_size; ++i) {
        core_->threads.emplace_back([core = core_] { core->run_worker(); });
    }
}

BetterAuthBridge::~BetterAuthBridge() {
    core_->stop();
    for (auto& t : core_->threads) {
        // The last reference may be dropped by a completion running on one of the threads.
        if (t.get_id() == std::this_thread::get_id()) {
            t.detach();
        } else {
            t.join();
        }
    }
}

bool BetterAuthBridge::healthy() const noexcept {
    return !core_->db_failing.load();
}

void BetterAuthBridge::validate(std::string token, Done<Principal> done) {
    if (token.empty() || token.size() > 512 || token.find('\0') != std::string::npos) {
        core_->refused.inc();
        done(err(Errc::kUnauthenticated));
        return;
    }
    core_->submit({std::move(token), std::move(done)});
}

}  // namespace hearth::auth
