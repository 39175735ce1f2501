#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hearth::core {

/// Calls `on_change` when the content of a config file changes, however it changed: written in
/// place, replaced by a rename (how most editors save), or reached through symlinks that were
/// swapped (how Kubernetes updates a mounted ConfigMap: `config.toml -> ..data/config.toml`, with
/// `..data` re-pointed by a rename).
///
/// inotify watches the directory of the path as given and the directory of every symlink target
/// on the way to the real file (a watch on the file itself would follow the old inode after a
/// rename). Any event there arms a short settle timer, so that a burst (truncate, write, write,
/// close) becomes one check; the check reads the file and calls `on_change` only when its bytes
/// differ from the last ones seen, so events from unrelated files in the same directory cost one
/// read and nothing else. The watches are re-established after every check, which follows a
/// swapped symlink to its new target.
///
/// Runs on: its own thread; `on_change` is called there, one call at a time.
class ConfigWatcher {
public:
    ConfigWatcher(std::filesystem::path file, std::chrono::milliseconds settle,
                  std::function<void()> on_change);
    ~ConfigWatcher();
    ConfigWatcher(const ConfigWatcher&) = delete;
    ConfigWatcher& operator=(const ConfigWatcher&) = delete;

    /// Starts watching. Throws std::runtime_error when inotify is not available (the caller logs
    /// it; SIGHUP still reloads).
    void start();
    /// Stops and joins the thread; idempotent.
    void stop();

    /// The directories being watched (for logs and tests).
    std::vector<std::filesystem::path> watched_directories() const;

private:
    void run();
    void rewatch();
    bool content_changed();

    std::filesystem::path file_;
    std::chrono::milliseconds settle_;
    std::function<void()> on_change_;
    int inotify_fd_ = -1;
    int stop_fd_ = -1;  // an eventfd that wakes the thread to stop
    std::vector<int> watches_;
    std::vector<std::filesystem::path> directories_;
    mutable std::mutex directories_mutex_;
    std::string last_content_;
    bool last_readable_ = false;
    std::thread thread_;
};

}  // namespace hearth::core
