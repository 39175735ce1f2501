#include "frontends/moonshare/relay.hpp"
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include <boost/asio/post.hpp>
#include <fcntl.h>
#include <unistd.h>

#include "core/runtime.hpp"
#include "frontends/moonshare/codec.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/shared.hpp"

namespace hearth::frontends::moonshare {

namespace fs = std::filesystem;

// ---- upload slots -------------------------------------------------------------------------------

UploadSlots::Slot UploadSlots::take(const std::string& address) {
    {
        std::lock_guard lock(mutex_);
        if (active_ >= limits_.total) {
            return Slot::kBusy;
        }
        auto& from_address = per_address_[address];
        if (limits_.per_address > 0 && from_address >= limits_.per_address) {
            return Slot::kAddressBusy;
        }
        ++from_address;
        ++active_;
    }
    gauge_.add(1);
    return Slot::kTaken;
}

void UploadSlots::give(const std::string& address) {
    {
        std::lock_guard lock(mutex_);
        active_ -= std::min<std::size_t>(active_, 1);
        if (auto a = per_address_.find(address); a != per_address_.end() && --a->second == 0) {
            per_address_.erase(a);
        }
    }
    gauge_.sub(1);
}

// ---- the disk -----------------------------------------------------------------------------------

bool write_to_upload(Upload& u, std::string_view data) {
    std::lock_guard lock(u.disk_mutex);
    if (u.closed) {
        return true;
    }
    if (u.fd < 0) {
        u.fd = ::open(u.path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (u.fd < 0) {
        return false;
    }
    while (!data.empty()) {
        const auto w = ::write(u.fd, data.data(), data.size());
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(w));
    }
    return true;
}

namespace {

/// A file on disk as the parts of one outgoing binary message (Connection::send_stream). Every
/// read runs on the blocking pool; the connection asks for the next part only once its outbox has
/// room, so a relay holds a few parts in memory whatever the file's size. Parts count in the
/// front-end's buffered bytes until the connection is done with them.
///
/// The receiving client must read at min_transfer_bytes_per_s, averaged over
/// transfer_rate_window_s of its own time: the time from a part's delivery to the connection to
/// the connection asking for the next one (the disk's time is the server's). A slower reader is
/// closed (1008 "transfer too slow"), so that it cannot hold a relay's reserved space, or a stored
/// file's claim, for hours; a relay cut so is stored for the target's next session, a stored
/// file stays for it.
class FileSource final : public MessageSource, public std::enable_shared_from_this<FileSource> {
public:
    FileSource(std::shared_ptr<Shared> shared, ConnectionHandle target, fs::path path,
               std::uint64_t size)
        : shared_(std::move(shared)),
          target_(std::move(target)),
          path_(std::move(path)),
          size_(size) {}

    ~FileSource() override {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    // The connection's thread; never again before `deliver` ran (MessageSource).
    void next(std::size_t max_bytes, std::function<void(StreamPart)> deliver) override {
        if (too_slow()) {
            if (auto c = target_.lock()) {
                c->close(close_code::kPolicyViolation, kTransferTooSlow);
            }
            deliver({});  // the connection is closing: nothing more is sent
            return;
        }
        boost::asio::post(shared_->runtime.blocking_pool(),
                          [self = shared_from_this(), max_bytes, deliver = std::move(deliver)] {
                              auto part = self->read(max_bytes);
                              self->delivered_at_ = std::chrono::steady_clock::now();
                              self->window_bytes_ += part.bytes ? part.bytes->size() : 0;
                              deliver(std::move(part));
                          });
    }

private:
    /// Counts the client's time since the last part was delivered; true when a whole window of
    /// it went by below the minimum rate.
    bool too_slow() {
        const auto& c = shared_->config;
        if (c.min_transfer_bytes_per_s <= 0 || offset_ == 0) {
            return false;  // nothing asked of the client yet
        }
        window_client_time_ += std::chrono::steady_clock::now() - delivered_at_;
        const std::chrono::duration<double> window = window_client_time_;
        if (window < std::chrono::seconds(c.transfer_rate_window_s)) {
            return false;
        }
        const double wanted = static_cast<double>(c.min_transfer_bytes_per_s) * window.count();
        if (static_cast<double>(window_bytes_) < wanted) {
            shared_->stats.downloads_too_slow.inc();
            log()->info(
                "a player read a file too slowly: {} bytes in {:.0f} s, after {} of {} "
                "bytes; closed",
                window_bytes_, window.count(), offset_, size_);
            return true;
        }
        window_client_time_ = {};
        window_bytes_ = 0;
        return false;
    }

    // Blocking: the pool only. One at a time (the connection waits for each part).
    StreamPart read(std::size_t max_bytes) {
        if (fd_ < 0) {
            fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd_ < 0) {
                log()->warn("cannot open {} to relay it: {}", path_.string(), std::strerror(errno));
                return {};
            }
        }
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, size_ - offset_));
        std::string bytes(want, '\0');
        std::size_t got = 0;
        while (got < want) {
            const auto n = ::read(fd_, bytes.data() + got, want - got);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                log()->warn("cannot read {} to relay it: {}", path_.string(),
                            n == 0 ? "the file is shorter than announced" : std::strerror(errno));
                return {};
            }
            got += static_cast<std::size_t>(n);
        }
        offset_ += want;
        shared_->stats.hold(want);
        // The part leaves the front-end's accounting when the connection drops its last
        // reference (written or discarded).
        auto* payload = new Payload(MessageKind::kBinary, std::move(bytes));
        SharedPayload part(payload, [shared = shared_, want](const Payload* p) {
            shared->stats.unhold(want);
            delete p;
        });
        return StreamPart{std::move(part), offset_ == size_};
    }

    std::shared_ptr<Shared> shared_;
    ConnectionHandle target_;
    fs::path path_;
    std::uint64_t size_;
    std::uint64_t offset_ = 0;
    int fd_ = -1;
    // The rate window (too_slow): written on the pool after a read and read on the connection's
    // thread at the next `next`, one after the other (the post between them orders them).
    std::chrono::steady_clock::time_point delivered_at_{};
    std::chrono::steady_clock::duration window_client_time_{};
    std::uint64_t window_bytes_ = 0;
};

/// Sends one file to `target` as file_send_begin, the bytes (streamed from disk), then
/// file_send_complete; `done(true)` once all three were written, on some thread; `done(false)`
/// when the connection ended first.
void relay_file(const std::shared_ptr<Shared>& shared, const ConnectionPtr& target,
                const fs::path& path, const std::string& from, const std::string& name,
                std::uint64_t size, std::function<void(bool)> done) {
    (void)target->send(make_text(encode_file_send_begin(name, from, size)));
    const auto streamed = target->send_stream(
        MessageKind::kBinary,
        std::make_shared<FileSource>(shared, ConnectionHandle(target), path, size), {});
    if (streamed != SendResult::kQueued) {
        done(false);
        return;
    }
    const auto completed = target->send(make_text(encode_file_send_complete(name, from)), done);
    if (completed != SendResult::kQueued) {
        done(false);
    }
}

/// Deletes a relayed upload or a delivered stored file, on the blocking pool.
void delete_later(const std::shared_ptr<Shared>& shared, fs::path path) {
    boost::asio::post(shared->runtime.blocking_pool(), [path = std::move(path)] {
        std::error_code ec;
        fs::remove(path, ec);
    });
}

/// Gives claimed files back for the next session.
void unclaim_all(Shared& shared, const std::deque<StoredFile>& files) {
    for (const auto& f : files) {
        shared.files.unclaim(f.id);
    }
}

/// Any thread. Sends `queue`'s files (claimed) to `handle` one after the other, each deleted once
/// written; a file that is not delivered (the connection ended) and those behind it are given
/// back for the next session.
void deliver_next(std::shared_ptr<Shared> shared, ConnectionHandle handle,
                  std::shared_ptr<std::deque<StoredFile>> queue) {
    auto c = handle.lock();
    if (!c) {
        unclaim_all(*shared, *queue);
        return;
    }
    if (queue->empty()) {
        return;
    }
    StoredFile f = std::move(queue->front());
    queue->pop_front();
    relay_file(shared, c, shared->files.data_path(f.id), f.from, f.name, f.size,
               [shared, handle, queue, id = f.id](bool ok) {
                   if (!ok) {
                       shared->files.unclaim(id);
                       unclaim_all(*shared, *queue);
                       return;
                   }
                   shared->stats.files_delivered.inc();
                   boost::asio::post(shared->runtime.blocking_pool(), [shared, id] {
                       shared->files.remove(id);
                       shared->stats.stored_bytes.set(
                           static_cast<std::int64_t>(shared->files.stored_bytes()));
                   });
                   deliver_next(shared, handle, queue);
               });
}

void answer(const ConnectionHandle& sender, std::string_view text) {
    if (auto c = sender.lock()) {
        (void)c->send(make_text(std::string(text)));
    }
}

/// Blocking (the pool). Stores a complete upload for its target's next session and answers the
/// sender, if still connected.
void store_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                  const ConnectionHandle& sender) {
    shared->before_disk(MoonshareFrontend::DiskStep::kStoreUpload);
    // The binding may have ended since file_send_begin (its holder gone for binding_ttl_s): a
    // file is stored only for a held user id, and the pin keeps it held until the file is there.
    if (!shared->bindings.pin(u->target)) {
        shared->stats.files_failed.inc();
        shared->files.release(u->announced);
        std::error_code ec;
        fs::remove(u->path, ec);
        shared->stats.refused("unknown_recipient");
        if (auto more = shared->stats.refusal_line()) {
            log()->info("file {} for user id {}, which nobody holds any more: dropped{}", u->name,
                        u->target, *more);
        }
        answer(sender, kUnknownRecipient);
        return;
    }
    // FILE_SENT_SERVER_ONLY promises the file: store() returns once it is on disk durably.
    const auto r =
        shared->files.store(u->path, u->from, u->target, u->name, u->announced, u->address,
                            [&shared] { shared->before_disk(MoonshareFrontend::DiskStep::kSync); });
    shared->bindings.unpin(u->target);
    shared->stats.stored_bytes.set(static_cast<std::int64_t>(shared->files.stored_bytes()));
    if (r == FileStore::StoreResult::kStored) {
        shared->stats.files_stored.inc();
        answer(sender, kFileSentServerOnly);
        // The target may have authenticated while the file was being stored (its session's
        // delivery ran before the file was there): then it gets the file now.
        deliver_stored_files(shared, shared->players.latest_connection(u->target), u->target);
    } else {
        shared->stats.files_failed.inc();
        if (r == FileStore::StoreResult::kFailed) {
            answer(sender, kStorageError);
            return;
        }
        const bool recipient = r == FileStore::StoreResult::kUserQuota;
        shared->stats.refused(recipient ? "recipient_quota" : "sender_quota");
        if (auto more = shared->stats.refusal_line()) {
            log()->info("file {} for {} refused: {} quota{}", u->name, u->target,
                        recipient ? "the recipient's" : "the sender's", *more);
        }
        answer(sender, kQuota);
    }
}

}  // namespace

void deliver_stored_files(const std::shared_ptr<Shared>& shared, const ConnectionPtr& connection,
                          const std::string& user) {
    if (!connection) {
        return;
    }
    auto waiting = shared->files.claim_waiting_for(user);
    if (waiting.empty()) {
        return;
    }
    auto queue = std::make_shared<std::deque<StoredFile>>(waiting.begin(), waiting.end());
    deliver_next(shared, ConnectionHandle(connection), queue);
}

void deliver_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                    const ConnectionHandle& sender) {
    if (auto target = shared->players.latest_connection(u->target)) {
        relay_file(shared, target, u->path, u->from, u->name, u->announced,
                   [shared, u, sender](bool ok) {
                       if (ok) {
                           shared->files.release(u->announced);
                           delete_later(shared, u->path);
                           shared->stats.files_relayed.inc();
                           answer(sender, kFileSent);
                           return;
                       }
                       log()->info("relay of {} to {} did not complete; stored for later", u->name,
                                   u->target);
                       boost::asio::post(shared->runtime.blocking_pool(),
                                         [shared, u, sender] { store_upload(shared, u, sender); });
                   });
        return;
    }
    boost::asio::post(shared->runtime.blocking_pool(),
                      [shared, u, sender] { store_upload(shared, u, sender); });
}

void finish_detached(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u) {
    auto tail = std::make_shared<std::string>(std::move(u->filling));
    u->filling.clear();
    boost::asio::post(shared->runtime.blocking_pool(), [shared, u, tail] {
        // Also when the tail is empty: an empty file is opened (created) here.
        bool ok = !u->failed && write_to_upload(*u, *tail);
        {
            std::lock_guard lock(u->disk_mutex);
            if (u->fd >= 0) {
                ::close(u->fd);
                u->fd = -1;
            }
            u->closed = true;
        }
        shared->stats.unhold(tail->size());
        // A write that failed after the handler left is only seen here: by the file's size.
        std::error_code size_ec;
        ok = ok && fs::file_size(u->path, size_ec) == u->announced && !size_ec;
        if (!ok) {
            shared->stats.files_failed.inc();
            shared->files.release(u->announced);
            std::error_code ec;
            fs::remove(u->path, ec);
            log()->warn("cannot finish the upload of {} for {} (its sender left)", u->name,
                        u->target);
            return;
        }
        deliver_upload(shared, u, {});
    });
}

void close_and_deliver(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                       ConnectionHandle sender) {
    boost::asio::post(shared->runtime.blocking_pool(), [shared, u, sender = std::move(sender)] {
        {
            std::lock_guard lock(u->disk_mutex);
            if (u->fd < 0 && u->announced == 0) {  // an empty file: nothing was written
                u->fd = ::open(u->path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
            }
            if (u->fd >= 0) {
                ::close(u->fd);
                u->fd = -1;
            }
            u->closed = true;
        }
        deliver_upload(shared, u, sender);
    });
}

void discard_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u) {
    boost::asio::post(shared->runtime.blocking_pool(), [u] {
        std::lock_guard lock(u->disk_mutex);
        if (u->fd >= 0) {
            ::close(u->fd);
            u->fd = -1;
        }
        u->closed = true;
        std::error_code ec;
        fs::remove(u->path, ec);
    });
}

}  // namespace hearth::frontends::moonshare
