#include "frontends/moonshare/player.hpp"
#include <algorithm>
#include <chrono>
#include <deque>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "auth/account_service.hpp"
#include "auth/secrets.hpp"
#include "core/post.hpp"
#include "core/runtime.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/relay.hpp"
#include "frontends/moonshare/shared.hpp"

namespace hearth::frontends::moonshare {

using SysClock = std::chrono::system_clock;

namespace {

// Messages held while a session_auth or a file completion is in progress; more are dropped.
constexpr std::size_t kMaxHeldMessages = 64;
// Upload chunk handed to one disk write; at most one being written and one filling per upload.
constexpr std::size_t kWriteChunk = 256 * 1024;

class PlayerHandler final : public WsHandler {
public:
    PlayerHandler(std::shared_ptr<Shared> shared, std::size_t instance)
        : shared_(std::move(shared)), instance_(instance) {}

    void on_open(const ConnectionPtr& connection) override {
        connection_ = connection;
        id_ = connection->id();
        address_ = address_key_of(connection->peer_address());
        log()->debug("[conn {}] player connected to {}", to_string(id_), instance_name(instance_));
    }

    void on_message(MessageKind kind, std::string_view data) override {
        if (kind == MessageKind::kBinary) {
            on_binary_part(data, true, true);
            return;
        }
        if (busy()) {
            hold(data);
            return;
        }
        handle_text(data);
    }

    void on_binary_part(std::string_view data, bool first, bool last) {
        if (closed_) {
            return;
        }
        if (first) {
            discarding_ = !upload_ || upload_->binary_started;
            if (discarding_) {
                shared_->stats.ignored.inc();
                log()->debug("[conn {}] binary data with no transfer in progress: dropped",
                             to_string(id_));
            } else {
                upload_->binary_started = true;
            }
        }
        if (discarding_ || !upload_) {
            return;
        }
        Upload& u = *upload_;
        u.received += data.size();
        const auto limit = static_cast<std::uint64_t>(shared_->config.max_file_size_bytes);
        if (u.received > u.announced || u.received > limit) {
            if (!u.overflow) {
                u.overflow = true;
                shared_->stats.unhold(u.filling.size());
                u.filling.clear();
                u.filling.shrink_to_fit();
            }
        } else {
            shared_->stats.hold(data.size());
            u.filling.append(data);
        }
        if (last) {
            u.binary_done = true;
        }
        pump_writes();
    }

    void on_close(const CloseInfo&) override {
        closed_ = true;
        if (authenticated_ && shared_->players.remove(id_)) {
            // The user's last connection: the binding's ttl counts from the last leave.
            shared_->bindings.touch(user_, std::chrono::system_clock::now());
        }
        if (upload_ && upload_->complete_requested && upload_->binary_done && upload_->whole()) {
            detach_upload();
        } else {
            abandon_upload();
        }
        held_.clear();
        connection_.reset();
        log()->debug("[conn {}] player left", to_string(id_));
    }

private:
    bool busy() const { return authenticating_ || finishing_; }

    void hold(std::string_view data) {
        if (held_.size() >= kMaxHeldMessages) {
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] message dropped: {} already held", to_string(id_),
                         kMaxHeldMessages);
            return;
        }
        held_.emplace_back(data);
        update_reading();
    }

    void replay_held() {
        while (!held_.empty() && !busy() && !closed_) {
            std::string m = std::move(held_.front());
            held_.pop_front();
            handle_text(m);
        }
        update_reading();
    }

    void reply(std::string_view text) {
        if (connection_) {
            (void)connection_->send(make_text(std::string(text)));
        }
    }

    /// Wraps a completion so that it runs on this connection's thread while it is open.
    template <class... Args, class F>
    std::function<void(Args...)> back_here(F f) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<Args...>(
            shared_->runtime, [this, alive, f = std::move(f)](Args... args) mutable {
                if (alive.expired() || closed_) {
                    return;
                }
                f(std::move(args)...);
            });
    }

    /// Like back_here, but when the connection is gone by then, `gone` runs instead (on the same
    /// thread; it must not touch the handler): the cleanup a completion would have done.
    template <class... Args, class F, class G>
    std::function<void(Args...)> back_here_or(F f, G gone) {
        std::weak_ptr<int> alive = alive_;
        return core::post_to_current_thread<Args...>(
            shared_->runtime,
            [this, alive, f = std::move(f), gone = std::move(gone)](Args... args) mutable {
                if (alive.expired() || closed_) {
                    gone();
                    return;
                }
                f(std::move(args)...);
            });
    }

    void handle_text(std::string_view data) {
        auto parsed = parse_player_message(data);
        auto* m = std::get_if<PlayerMessage>(&parsed);
        if (m == nullptr) {
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] not a protocol message: ignored", to_string(id_));
            return;
        }
        if (authenticated_) {
            shared_->players.touch(id_);
        }
        using Type = PlayerMessageType;
        if (m->type == Type::kSessionAuth) {
            remember_presented_token(*m);
            on_session_auth(*m);
        } else if (m->type == Type::kListOnline && !authenticated_) {
            // User ids are for authenticated players only: the plugin never asks before.
            shared_->stats.refused("list_before_auth");
            log()->debug("[conn {}] list_online before authentication: an empty list",
                         to_string(id_));
            reply(encode_online({}));
        } else if (m->type == Type::kListOnline) {
            reply(shared_->players.online_text());
        } else if (!authenticated_) {
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] {} before authentication: ignored", to_string(id_),
                         m->type_name);
        } else if (m->type == Type::kConnect) {
            on_connect(*m);
        } else if (m->type == Type::kConnectAccept || m->type == Type::kConnectReject) {
            if (m->error != PlayerMessageError::kNone ||
                !shared_->players.answer(user_, m->target, m->type == Type::kConnectAccept)) {
                shared_->stats.ignored.inc();
                log()->debug("[conn {}] {} without a request: ignored", to_string(id_),
                             m->type_name);
            }
        } else if (m->type == Type::kFileSendBegin) {
            on_file_begin(*m);
        } else if (m->type == Type::kFileSendComplete) {
            on_file_complete();
        } else if (m->type == Type::kDisconnect) {
            connection_->close(close_code::kNormal, "");
        } else {
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] unknown type {}: ignored", to_string(id_), m->type_name);
        }
    }

    // ---- session_auth ---------------------------------------------------------------------------

    void on_session_auth(const PlayerMessage& m) {
        if (authenticated_) {
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] session_auth again: ignored", to_string(id_));
            return;
        }
        if (m.error == PlayerMessageError::kTokenMissing) {
            refuse(kMissingToken, close_code::kNoStatus, "");
            return;
        }
        if (m.error == PlayerMessageError::kUserIdInvalid) {
            refuse(kInvalidToken, close_code::kNoStatus, "");
            return;
        }
        authenticating_ = true;
        shared_->accounts.authorize(
            m.token, access_policy(), "connection " + to_string(id_),
            back_here<auth::AccessDecision>([this, user = m.user_id](auth::AccessDecision d) {
                authenticating_ = false;
                // A guest token of this realm, issued for this very user id.
                if (!d.accepted() || d.principal.subject != user) {
                    if (d.refusal == auth::Refusal::kUnavailable) {
                        log()->warn(
                            "[conn {}] token validation failed: the store cannot "
                            "answer",
                            to_string(id_));
                    } else if (d.accepted()) {
                        shared_->stats.wrong_subject.inc();
                        if (auto more = shared_->stats.refusal_line()) {
                            log()->info("[conn {}] refused a token issued for another user id{}",
                                        to_string(id_), *more);
                        }
                    }
                    // The plugin hears "invalid token" whatever the reason; the operator's
                    // login.failed event says which.
                    std::string detail = d.accepted() ? "a guest token issued for another user id"
                                         : d.refusal == auth::Refusal::kInvalidToken
                                             ? d.why
                                             : std::string(auth::to_string(d.refusal)) +
                                                   (d.why.empty() ? "" : ", " + d.why);
                    refuse(kInvalidToken, close_code::kNoStatus, "", {}, detail);
                    return;
                }
                admitted(user);
                if (authenticated_) {
                    shared_->accounts.publish_login_ok(access_policy().door,
                                                       connection_->peer_address(), d.principal);
                }
                replay_held();
            }));
    }

    /// The digest of the token a session_auth shows, for the binding check in `admitted` (the
    /// token itself is not kept), and the user id it claims, for the refusal's log line.
    void remember_presented_token(const PlayerMessage& m) {
        presented_digest_ = m.token.empty() ? std::string() : auth::token_digest(m.token);
        claimed_user_ = m.user_id.substr(0, kMaxUserIdBytes);
    }

    /// A refused session_auth: counted by `why` (derived from the message unless given), logged
    /// (never the token), answered, closed.
    void refuse(std::string_view message, std::uint16_t code, std::string_view reason,
                std::string_view why = {}, std::string_view detail = {}) {
        if (why.empty()) {
            why = message == kMissingToken ? "missing_token"
                  : message == kServerFull ? "server_full"
                                           : "invalid_token";
        }
        shared_->stats.refused(why);
        shared_->accounts.publish_login_failed(
            access_policy().door, connection_->peer_address(), claimed_user_,
            detail.empty() ? std::string(why) : std::string(why) + ": " + std::string(detail));
        if (auto more = shared_->stats.refusal_line()) {
            log()->info("[conn {}] session_auth as {} refused on {}: {}{}", to_string(id_),
                        claimed_user_, instance_name(instance_), why, *more);
        }
        held_.clear();
        reply(encode_auth_result(false, message));
        connection_->close(code, reason);
    }

    void admitted(const std::string& user) {
        // The token is valid for this user id; it must also be one its holder was issued (a
        // token minted by someone else for a held user id never is: the token endpoint refuses
        // it, and a token from before a binding ended is no longer the holder's).
        if (!shared_->bindings.holds(user, presented_digest_, SysClock::now())) {
            refuse(kInvalidToken, close_code::kNoStatus, "", "not_token_holder");
            return;
        }
        switch (
            shared_->players.admit(id_, user, address_, instance_, ConnectionHandle(connection_))) {
            case PlayerRegistry::Admit::kFull:
                refuse(kServerFull, close_code::kPolicyViolation, kServerFullReason);
                return;
            case PlayerRegistry::Admit::kAddressFull:
                // The plugin knows no other answer; the server is full for this address.
                refuse(kServerFull, close_code::kPolicyViolation, kServerFullReason,
                       "players_per_address");
                return;
            case PlayerRegistry::Admit::kAdmitted:
                break;
        }
        shared_->pace.authenticated(address_);
        authenticated_ = true;
        user_ = user;
        connection_->set_principal(user_);
        reply(encode_auth_result(true, kAuthOk, user_));
        reply(encode_connection_info(instance_name(instance_)));
        // After the result, so that the new player's first messages are the two above.
        shared_->players.broadcast_user_list();
        log()->debug("[conn {}] authenticated as {} on {}", to_string(id_), user_,
                     instance_name(instance_));
        deliver_stored_files(shared_, connection_, user_);
    }

    // ---- connect --------------------------------------------------------------------------------

    void on_connect(const PlayerMessage& m) {
        if (m.error == PlayerMessageError::kTargetTooLong) {
            // No such user can exist, and echoing it could exceed the client's 8 KiB buffer.
            shared_->stats.ignored.inc();
            log()->debug("[conn {}] connect to an over-long user id: ignored", to_string(id_));
            return;
        }
        // No target: rejected with "" (as the original answers).
        if (m.error != PlayerMessageError::kNone || !shared_->players.request(user_, m.target)) {
            reply(encode_connect_answer(false, m.target));
        }
    }

    // ---- files ----------------------------------------------------------------------------------

    void on_file_begin(const PlayerMessage& m) {
        if (m.error == PlayerMessageError::kFileParametersMissing) {
            reply(kMissingBegin);
            return;
        }
        if (m.error == PlayerMessageError::kFileNameTooLong) {
            reply(kNameTooLong);
            return;
        }
        const std::string& target = m.target;
        const std::uint64_t size = m.file_size;
        if (size > static_cast<std::uint64_t>(shared_->config.max_file_size_bytes)) {
            reply(kTooLarge);
            return;
        }
        if (!shared_->bindings.bound(target)) {
            // Nobody holds the user id: a stored file would go to whoever takes it first.
            shared_->stats.refused("unknown_recipient");
            if (auto more = shared_->stats.refusal_line()) {
                log()->info("[conn {}] file for user id {}, which nobody holds: refused{}",
                            to_string(id_), target, *more);
            }
            reply(kUnknownRecipient);
            return;
        }
        abandon_upload();  // a new announcement replaces one whose bytes never came
        if (!shared_->players.is_online(target) && !quota_allows(target, size)) {
            return;  // a file for an offline target would be refused once sent: say so now
        }
        switch (shared_->upload_slots.take(address_)) {
            case UploadSlots::Slot::kBusy:
                reply(kUploadBusy);
                return;
            case UploadSlots::Slot::kAddressBusy:
                shared_->stats.refused("uploads_per_address");
                if (auto more = shared_->stats.refusal_line()) {
                    log()->info(
                        "[conn {}] upload refused: {} in progress from its address "
                        "(max_uploads_per_address){}",
                        to_string(id_), shared_->config.max_uploads_per_address, *more);
                }
                reply(kUploadBusy);
                return;
            case UploadSlots::Slot::kTaken:
                break;
        }
        if (!shared_->files.reserve(size)) {
            shared_->upload_slots.give(address_);
            reply(kStorageFull);
            return;
        }
        upload_ = std::make_shared<Upload>();
        upload_->from = user_;
        upload_->address = address_;
        upload_->target = target;
        upload_->name = m.file_name;
        upload_->announced = size;
        upload_->path = shared_->files.new_upload_path();
        reply(kReceiveReady);
        arm_upload_timer();
    }

    /// Whether a file of `size` bytes from this client for `target` fits in the recipient's and
    /// the sender's quotas now; answers and counts the refusal when not.
    bool quota_allows(const std::string& target, std::uint64_t size) {
        const auto r = shared_->files.fits(address_, target, size);
        if (r == FileStore::StoreResult::kStored) {
            return true;
        }
        const bool recipient = r == FileStore::StoreResult::kUserQuota;
        shared_->stats.refused(recipient ? "recipient_quota" : "sender_quota");
        if (auto more = shared_->stats.refusal_line()) {
            log()->info("[conn {}] file for {} refused: {} quota{}", to_string(id_), target,
                        recipient ? "the recipient's" : "the sender's", *more);
        }
        reply(kQuota);
        return false;
    }

    /// Hands the filled chunk to the disk when no write is out (and it is full, or the message
    /// ended); keeps reading paused while a full chunk waits.
    void pump_writes() {
        Upload& u = *upload_;
        const bool ready = !u.filling.empty() && (u.filling.size() >= kWriteChunk || u.binary_done);
        if (!u.writing && ready) {
            u.writing = true;
            auto chunk = std::make_shared<std::string>(std::move(u.filling));
            u.filling.clear();
            boost::asio::post(
                shared_->runtime.blocking_pool(),
                [upload = upload_, chunk,
                 done = back_here_or<bool>([this, upload = upload_,
                                            n = chunk->size()](bool ok) { written(upload, n, ok); },
                                           [shared = shared_, upload = upload_, n = chunk->size()] {
                                               shared->stats.unhold(n);
                                               if (upload->finish_when_written) {
                                                   finish_detached(shared, upload);
                                               }
                                           }),
                 shared = shared_] {
                    shared->before_disk(MoonshareFrontend::DiskStep::kWriteChunk);
                    done(write_to_upload(*upload, *chunk));
                });
        }
        set_paused(u.writing && u.filling.size() >= kWriteChunk);
        if (!u.writing && u.filling.empty() && u.complete_requested) {
            finish_upload();
        }
    }

    void written(const std::shared_ptr<Upload>& upload, std::size_t n, bool ok) {
        shared_->stats.unhold(n);
        if (upload != upload_) {
            return;  // abandoned meanwhile (its cleanup owns the file)
        }
        upload_->writing = false;
        if (!ok && !upload_->failed) {
            upload_->failed = true;
            log()->warn("[conn {}] cannot write an upload to {}", to_string(id_),
                        upload_->path.string());
        }
        pump_writes();
    }

    void set_paused(bool pause) {
        chunk_waiting_ = pause;
        update_reading();
    }

    /// Reading pauses while a full upload chunk waits for the disk, or while half the bound of
    /// held messages is reached (what is already read still arrives: the bound drops past it).
    void update_reading() {
        const bool pause = chunk_waiting_ || held_.size() >= kMaxHeldMessages / 2;
        if (pause == paused_ || !connection_ || closed_) {
            return;
        }
        paused_ = pause;
        if (pause) {
            window_excused_ = true;  // the server keeps the client waiting: not its slowness
            connection_->pause_reading();
        } else {
            connection_->resume_reading();
        }
    }

    void on_file_complete() {
        if (!upload_) {
            reply(kMissingState);
            return;
        }
        upload_->complete_requested = true;
        finishing_ = true;
        pump_writes();
    }

    /// Every byte is on disk (or the upload failed): answer, then relay or store.
    void finish_upload() {
        auto u = std::exchange(upload_, nullptr);
        shared_->upload_slots.give(u->address);
        set_paused(false);
        if (!u->whole()) {
            shared_->stats.files_failed.inc();
            shared_->files.release(u->announced);
            discard_upload(shared_, u);
            reply(u->failed ? kStorageError : kSizeMismatch);
            finished();
            return;
        }
        // Close the file, then relay to an online target or store: from there on the sender's
        // connection may go without the file being lost.
        close_and_deliver(shared_, u, ConnectionHandle(connection_));
        // The upload slot is free again: later messages need not wait for the relay or the
        // store (their replies may come before this file's).
        finished();
    }

    void finished() {
        finishing_ = false;
        replay_held();
    }

    /// Starts watching the upload just announced.
    void arm_upload_timer() {
        const auto now = std::chrono::steady_clock::now();
        progress_mark_ = 0;
        last_progress_ = now;
        window_start_ = now;
        window_mark_ = 0;
        window_excused_ = paused_;
        schedule_upload_check();
    }

    /// The announced upload is checked every upload_timeout_s, or every transfer_rate_window_s
    /// if shorter. It is dropped when no byte came (nor the completion) for upload_timeout_s, or
    /// when over a whole window its bytes came slower than min_transfer_bytes_per_s: a client
    /// announcing files it never sends, or sending one byte now and then, cannot keep an upload
    /// slot and its reserved space. A window in which the server paused reading (the disk is
    /// behind) is not held against the client.
    void schedule_upload_check() {
        if (!upload_timer_) {
            upload_timer_ = std::make_unique<boost::asio::steady_timer>(shared_->runtime.io_context(
                static_cast<std::size_t>(core::Runtime::current_io_thread())));
        }
        const auto& c = shared_->config;
        auto every = std::chrono::seconds(c.upload_timeout_s);
        if (c.min_transfer_bytes_per_s > 0) {
            every = std::min(every, std::chrono::seconds(c.transfer_rate_window_s));
        }
        upload_timer_->expires_after(every);
        std::weak_ptr<int> alive = alive_;
        upload_timer_->async_wait([this, alive, upload = std::weak_ptr<Upload>(upload_)](
                                      const boost::system::error_code& ec) {
            if (ec || alive.expired() || closed_) {
                return;
            }
            auto u = upload.lock();
            if (!u || u != upload_ || u->complete_requested) {
                return;  // replaced, finished or being finished
            }
            check_upload(*u);
        });
    }

    void check_upload(Upload& u) {
        const auto& c = shared_->config;
        const auto now = std::chrono::steady_clock::now();
        if (u.received != progress_mark_ || u.writing) {
            progress_mark_ = u.received;
            last_progress_ = now;
        } else if (now - last_progress_ >= std::chrono::seconds(c.upload_timeout_s)) {
            log()->info("[conn {}] upload of {} timed out after {} of {} bytes", to_string(id_),
                        u.name, u.received, u.announced);
            shared_->stats.files_failed.inc();
            abandon_upload();
            reply(kUploadTimedOut);
            return;
        }
        const std::chrono::duration<double> window = now - window_start_;
        if (c.min_transfer_bytes_per_s > 0 && !u.binary_done &&
            window >= std::chrono::seconds(c.transfer_rate_window_s)) {
            const auto got = static_cast<double>(u.received - window_mark_);
            const double wanted = static_cast<double>(c.min_transfer_bytes_per_s) * window.count();
            // A window with no byte at all is idleness, the timeout's to judge.
            if (!window_excused_ && !paused_ && got > 0 && got < wanted) {
                log()->info(
                    "[conn {}] upload of {} too slow: {} bytes in {:.0f} s, after {} of "
                    "{} bytes",
                    to_string(id_), u.name, u.received - window_mark_, window.count(), u.received,
                    u.announced);
                shared_->stats.files_failed.inc();
                shared_->stats.uploads_too_slow.inc();
                abandon_upload();
                reply(kUploadTooSlow);
                return;
            }
            window_start_ = now;
            window_mark_ = u.received;
            window_excused_ = paused_;
        }
        schedule_upload_check();
    }

    /// The connection is gone after a complete upload: it is finished without the handler, once
    /// the write that is out (if any) comes back.
    void detach_upload() {
        auto u = std::exchange(upload_, nullptr);
        shared_->upload_slots.give(u->address);
        if (u->writing) {
            u->finish_when_written = true;  // the write's completion calls finish_detached
        } else {
            finish_detached(shared_, u);
        }
    }

    /// Drops an upload in progress (connection gone, replaced, or failed): its file is closed and
    /// deleted on the pool once no write runs, and its reservation released.
    void abandon_upload() {
        if (!upload_) {
            return;
        }
        auto u = std::exchange(upload_, nullptr);
        shared_->upload_slots.give(u->address);
        shared_->stats.unhold(u->filling.size());
        shared_->files.release(u->announced);
        discard_upload(shared_, u);
        if (finishing_) {
            finishing_ = false;
        }
        // The rest of a binary message in progress belongs to no transfer now: dropped, and
        // reading goes on (a write of the upload that is out no longer resumes it).
        if (u->binary_started && !u->binary_done) {
            discarding_ = true;
        }
        if (chunk_waiting_) {
            set_paused(false);
        }
    }

    std::shared_ptr<Shared> shared_;
    std::size_t instance_;
    ConnectionPtr connection_;
    ConnectionId id_{};
    bool authenticating_ = false;
    bool authenticated_ = false;
    bool finishing_ = false;  // a file_send_complete is in progress: later messages wait
    bool closed_ = false;
    bool paused_ = false;         // reading is paused (update_reading)
    bool chunk_waiting_ = false;  // a full upload chunk waits for the disk
    bool discarding_ = false;     // the binary message in progress is dropped
    std::string user_;
    std::string address_;  // the client's address key (IPv6 by /64), for the per-address limits
    std::string presented_digest_;  // the SHA-256 of the token of the session_auth in progress
    std::string claimed_user_;      // and the user id it claims (for the log)
    std::deque<std::string> held_;
    std::shared_ptr<Upload> upload_;
    std::unique_ptr<boost::asio::steady_timer> upload_timer_;  // while an upload is announced
    // The upload's watch (check_upload): its bytes at the last check and when they last grew,
    // and the rate window: when it started, the bytes then, and whether reading was paused
    // during it.
    std::uint64_t progress_mark_ = 0;
    std::chrono::steady_clock::time_point last_progress_{};
    std::chrono::steady_clock::time_point window_start_{};
    std::uint64_t window_mark_ = 0;
    bool window_excused_ = false;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions check it
};

}  // namespace

std::unique_ptr<WsHandler> make_player_handler(std::shared_ptr<Shared> shared,
                                               std::size_t instance) {
    return std::make_unique<PlayerHandler>(std::move(shared), instance);
}

}  // namespace hearth::frontends::moonshare
