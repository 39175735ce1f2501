#pragma once

// Moonshare's file relay (docs/protocol/moonshare.md, "File transfer"): upload slots, an upload's
// file being written on the blocking pool, and the way a complete upload goes to its target:
// relayed, streamed from disk, to the target's latest connection when it is online, else stored
// (FileStore) and delivered at its next session. Files are never held whole in memory.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <hearth/http.hpp>

#include "frontends/moonshare/moonshare.hpp"

namespace hearth::core {
class Gauge;
}  // namespace hearth::core

namespace hearth::frontends::moonshare {

using Shared = MoonshareFrontend::Shared;

/// Upload slots: max_concurrent_uploads in all, max_uploads_per_address per client address.
/// Thread-safe: its own mutex, never held with another.
class UploadSlots {
public:
    struct Limits {
        std::size_t total = 64;
        std::size_t per_address = 8;  // 0: unlimited
    };
    UploadSlots(Limits limits, core::Gauge& in_progress) : limits_(limits), gauge_(in_progress) {}

    enum class Slot : std::uint8_t { kTaken, kBusy, kAddressBusy };
    /// Takes a slot for a client at `address` (its key): kBusy past the total, kAddressBusy past
    /// the address's share.
    Slot take(const std::string& address);
    void give(const std::string& address);

private:
    const Limits limits_;
    core::Gauge& gauge_;
    std::mutex mutex_;
    std::size_t active_ = 0;
    std::unordered_map<std::string, std::size_t> per_address_;  // by address key, non-zero
};

/// An upload in progress: the file being written under incoming/. The io thread (the sender's
/// connection) owns the bookkeeping; `fd` is touched only by disk jobs on the blocking pool, one
/// at a time per upload (a write is submitted only after the previous one came back), and
/// `disk_mutex` makes the final cleanup safe against a write still running.
struct Upload {
    std::string from;     // the sender's user id
    std::string address;  // the sender's address key: its upload slot's and its quota's
    std::string target;
    std::string name;
    std::uint64_t announced = 0;
    std::filesystem::path path;
    std::uint64_t received = 0;
    bool overflow = false;  // more bytes than announced (or than the limit): discarded
    bool failed = false;    // a disk write failed
    bool binary_started = false;
    bool binary_done = false;
    bool writing = false;  // a write job is out
    bool complete_requested = false;
    // The sender left after file_send_complete while a write was out: that write's completion
    // finishes the upload without the handler (finish_detached).
    bool finish_when_written = false;
    std::string filling;  // the next chunk (io thread)

    /// Every announced byte arrived, and none too many, and no write failed so far.
    bool whole() const noexcept { return received == announced && !overflow && !failed; }

    std::mutex disk_mutex;
    int fd = -1;
    bool closed = false;  // under disk_mutex: no more writes
};

/// Blocking (the pool). Appends `data` to the upload's file, opening it first if needed; false
/// when the file cannot be opened or written. Takes disk_mutex; nothing once the file is closed.
bool write_to_upload(Upload& u, std::string_view data);

/// Io thread, with no write of the upload out. Closes a complete upload's file on the pool, then
/// delivers it (deliver_upload).
void close_and_deliver(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                       ConnectionHandle sender);

/// Closes and deletes a dropped upload's file on the pool, once no write of it runs.
void discard_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u);

/// Any thread. Sends the files stored for `user` that no other delivery has claimed to
/// `connection` (the user's connection that just authenticated, or their latest).
void deliver_stored_files(const std::shared_ptr<Shared>& shared, const ConnectionPtr& connection,
                          const std::string& user);

/// Any thread. A complete upload, on disk and closed, goes to its target: relayed to the target's
/// latest connection when online, else stored. A relay that does not reach the target (its
/// connection ended) stores the file instead, so that it is delivered at the next session. The
/// sender is answered when still connected, but nothing depends on it: a sender that leaves right
/// after file_send_complete loses nothing.
void deliver_upload(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u,
                    const ConnectionHandle& sender);

/// The sender's connection is gone but its upload is complete (every byte received, completion
/// asked): write what is left, close the file and deliver it, without the handler. Io thread,
/// with no write of the upload out.
void finish_detached(const std::shared_ptr<Shared>& shared, const std::shared_ptr<Upload>& u);

}  // namespace hearth::frontends::moonshare
