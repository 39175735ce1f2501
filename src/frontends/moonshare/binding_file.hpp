#pragma once

// The user id bindings' life beyond memory (docs/protocol/moonshare.md, "User ids and their
// holders"): loaded from <data_dir>/moonshare/bindings.json at startup, written back durably when
// they change (times of use alone lazily), and ended once their time is up. Thread-safe: one
// writer at a time (its own mutex, never held with another of the front-end's locks but the
// bindings' own, which Bindings::snapshot takes).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

namespace hearth::core {
class Gauge;
}  // namespace hearth::core

namespace hearth::frontends::moonshare {

class Bindings;
class FileStore;

class BindingFile {
public:
    /// `bindings` and the gauges must outlive it.
    BindingFile(Bindings& bindings, std::filesystem::path path, core::Gauge& count,
                core::Gauge& bytes);

    /// Blocking (construction). Loads the bindings saved by the last run, then binds the
    /// recipients of stored files that nobody holds (files stored before bindings existed, or in
    /// the second before a crash) to nobody, so that no one can take them. `max_bindings` only
    /// names the bound in the log.
    void load(const FileStore& files, std::int64_t max_bindings);

    /// Whether the bindings on disk are behind: a change (always), or only times of use and
    /// `touches_too` (they are written lazily).
    bool behind(bool touches_too) const;
    /// Whether times of use alone are due to be written (kLazySave since the last save).
    bool touches_due() const;

    /// Blocking. Writes the bindings when they changed since the last write (`touches_too`: also
    /// when only times of use did), durably (write_durably: a temporary file, synced, renamed,
    /// the directory synced), so that a crash leaves the old file or the new one. One writer at
    /// a time.
    void save(bool touches_too);

    /// Whether a save may be posted now (none posted and not done yet); `saved` ends it.
    bool begin_save() { return !saving_.exchange(true); }
    void saved() { saving_ = false; }

    /// Ends the bindings whose time is up, except those `in_use` (online, files waiting).
    void sweep(const std::function<bool(const std::string&)>& in_use);

private:
    void update_gauges();

    Bindings& bindings_;
    const std::filesystem::path path_;
    core::Gauge& count_;
    core::Gauge& bytes_;
    std::mutex save_mutex_;                        // one save at a time
    std::atomic<std::uint64_t> saved_version_{0};  // the bindings' version on disk
    std::atomic<std::uint64_t> saved_touches_{0};  // and their times of use
    std::atomic<std::chrono::steady_clock::time_point> last_save_{std::chrono::steady_clock::now()};
    std::atomic<bool> saving_{false};  // a save was posted, not done yet
};

}  // namespace hearth::frontends::moonshare
