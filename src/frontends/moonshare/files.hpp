#pragma once

// Files on disk for Moonshare transfers (docs/protocol/moonshare.md, "File transfer"): uploads in
// progress under <root>/incoming, files stored for offline recipients under <root>/stored (one
// `<id>.bin` with the bytes and one `<id>.meta` with who, what and when). Thread-safe: the index
// is behind a mutex held for bookkeeping only; the methods marked "blocking" touch the disk and
// run on the blocking pool (or at startup on the control thread), never on an io thread.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::frontends::moonshare {

/// Blocking. fsync of a file's data (and its size): false, with errno set, when it fails.
bool sync_file(const std::filesystem::path& path);
/// Blocking. fsync of a directory, so that the names created, renamed or removed in it last.
bool sync_directory(const std::filesystem::path& path);
/// Blocking. Replaces `path` with `text` durably: a temporary file beside it, written and
/// synced, renamed over `path`, then the directory synced. A crash leaves the old file or the
/// new one, and once it returns true the new one stays. On failure `error` says why.
bool write_durably(const std::filesystem::path& path, std::string_view text, std::string& error);

struct StoredFile {
    std::string id;  // names the files on disk; never derived from client input
    std::string from;
    std::string sender;  // the sending client's address key (IPv6 by /64): its quota's key
    std::string to;
    std::string name;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point created{};
};

class FileStore {
public:
    struct Limits {
        std::uint64_t max_bytes_per_user = 0;           // stored bytes per recipient
        std::uint64_t max_bytes_total = 0;              // stored files plus reserved uploads
        std::chrono::seconds ttl{0};                    // stored files older than this are deleted
        std::uint64_t max_files_per_user = UINT64_MAX;  // stored files per recipient
        std::uint64_t max_bytes_per_sender = UINT64_MAX;  // stored bytes per sender address
        std::uint64_t max_files_per_sender = UINT64_MAX;  // stored files per sender address
    };

    /// Blocking (startup). Creates the directories, deletes every leftover upload, every stored
    /// file without its metadata (or the reverse) and every expired one, and indexes the rest.
    /// Throws std::runtime_error when the directories cannot be created.
    FileStore(std::filesystem::path root, Limits limits);

    /// A fresh path for an upload under incoming/.
    std::filesystem::path new_upload_path();

    /// Reserves `bytes` of the total bound for an upload; false when it would exceed it.
    [[nodiscard]] bool reserve(std::uint64_t bytes);
    /// Gives back a reservation (the upload ended without being stored).
    void release(std::uint64_t bytes);

    enum class StoreResult : std::uint8_t { kStored, kUserQuota, kSenderQuota, kFailed };
    /// Whether a file of `size` bytes from `sender` for `to` would fit in their quotas now (kStored
    /// when it would): an early answer, before the bytes are sent; `store` decides.
    StoreResult fits(const std::string& sender, const std::string& to, std::uint64_t size) const;
    /// Blocking. Moves a complete upload of `size` bytes (reserved with `reserve`) into the store
    /// for `to`, durably: the data is synced, then the metadata written, synced and renamed into
    /// place, then the directory synced, before kStored is returned (so that an acknowledgement
    /// that follows it survives a crash). The reservation becomes the stored file's share of the
    /// total. On kUserQuota, kSenderQuota or kFailed the upload is deleted and the reservation
    /// released. `sender`: the sending client's address key, counted against the sender's quotas.
    /// `before_sync` (a test seam) runs before the first sync.
    StoreResult store(const std::filesystem::path& upload, std::string from, std::string to,
                      std::string name, std::uint64_t size, std::string sender = {},
                      const std::function<void()>& before_sync = {});

    /// The files waiting for `to`, oldest first (index only).
    std::vector<StoredFile> waiting_for(const std::string& to) const;
    /// The files waiting for `to` that no delivery has claimed yet, oldest first, now claimed:
    /// two sessions of one user (or a session and a store that just finished) never get the same
    /// file twice. A claim ends with `remove` (delivered) or `unclaim` (not delivered).
    std::vector<StoredFile> claim_waiting_for(const std::string& to);
    /// Whether a file is stored (or being stored) for `to`.
    bool has_waiting(const std::string& to) const;
    /// Every user id that a file is stored for.
    std::vector<std::string> recipients() const;
    /// Gives a claimed file back for a later delivery.
    void unclaim(const std::string& id);
    /// Where a stored file's bytes are.
    std::filesystem::path data_path(const std::string& id) const;
    /// Blocking. Deletes a stored file (delivered or expired) and forgets it; false when it was
    /// already gone (delivered twice at once: only one caller removes it).
    bool remove(const std::string& id);
    /// Blocking. Deletes every stored file older than the ttl; the number deleted.
    std::size_t expire(std::chrono::system_clock::time_point now);

    std::uint64_t stored_bytes() const;
    std::uint64_t reserved_bytes() const;
    std::size_t stored_files() const;

private:
    struct Usage {
        std::uint64_t bytes = 0;
        std::uint64_t files = 0;
    };
    /// Under mutex_: what keeps a file from being stored, kStored when nothing does.
    StoreResult over_quota_locked(const std::string& sender, const std::string& to,
                                  std::uint64_t size) const;
    void count_locked(const StoredFile& f);
    void uncount_locked(const StoredFile& f);

    std::filesystem::path incoming_;
    std::filesystem::path stored_;
    Limits limits_;
    mutable std::mutex mutex_;
    std::map<std::string, StoredFile> files_;  // by id (ids sort by creation)
    std::map<std::string, Usage> per_user_;    // by recipient; an entry while files wait
    std::map<std::string, Usage> per_sender_;  // by sender address key; likewise
    std::set<std::string> claimed_;            // ids being delivered
    std::uint64_t stored_bytes_ = 0;
    std::uint64_t reserved_ = 0;
    std::uint64_t next_id_ = 0;
};

}  // namespace hearth::frontends::moonshare
