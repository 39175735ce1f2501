#include "core/config_watcher.hpp"
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "util/log.hpp"

namespace hearth::core {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("core");
    return l;
}

// What a directory watch reports: entries created, written, renamed in or out, removed, or
// changed in their attributes (a symlink re-pointed by `ln -sfn` is an unlink and a create), and
// the directory itself going away (a ConfigMap's old timestamped directory is deleted).
constexpr std::uint32_t kDirectoryEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                           IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF |
                                           IN_MOVE_SELF;

// At most this many symlinks are followed; a loop ends here instead of spinning.
constexpr int kMaxSymlinks = 40;

// A config file larger than this is not a config file; the watcher stops reading there and lets
// the loader report it.
constexpr std::streamsize kMaxConfigBytes = 16 * 1024 * 1024;

}  // namespace

ConfigWatcher::ConfigWatcher(fs::path file, std::chrono::milliseconds settle,
                             std::function<void()> on_change)
    : file_(fs::absolute(std::move(file))), settle_(settle), on_change_(std::move(on_change)) {}

ConfigWatcher::~ConfigWatcher() {
    stop();
}

void ConfigWatcher::start() {
    if (thread_.joinable()) {
        return;
    }
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
        throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
    }
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd_ < 0) {
        const int err = errno;
        ::close(inotify_fd_);
        inotify_fd_ = -1;
        throw std::runtime_error(std::string("eventfd: ") + std::strerror(err));
    }
    (void)content_changed();  // the bytes the running config was loaded from
    rewatch();
    thread_ = std::thread([this] { run(); });
}

void ConfigWatcher::stop() {
    if (thread_.joinable()) {
        const std::uint64_t one = 1;
        // Cannot fail short of a closed descriptor: the counter is far from its maximum.
        (void)!::write(stop_fd_, &one, sizeof one);
        thread_.join();
    }
    for (int fd : {inotify_fd_, stop_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    inotify_fd_ = -1;
    stop_fd_ = -1;
}

std::vector<fs::path> ConfigWatcher::watched_directories() const {
    std::lock_guard lock(directories_mutex_);
    return directories_;
}

void ConfigWatcher::rewatch() {
    // The path as given, then each symlink on the way to the real file, relative targets resolved
    // against the link's directory. A symlinked directory on the way (`..data`) is caught by its
    // parent's watch when it is re-pointed, and its target directory by the real file's.
    std::vector<fs::path> wanted;
    auto want = [&](const fs::path& dir) {
        if (std::find(wanted.begin(), wanted.end(), dir) == wanted.end()) {
            wanted.push_back(dir);
        }
    };
    fs::path current = file_;
    for (int hops = 0; hops <= kMaxSymlinks; ++hops) {
        want(current.parent_path());
        std::error_code ec;
        if (!fs::is_symlink(fs::symlink_status(current, ec))) {
            break;
        }
        fs::path target = fs::read_symlink(current, ec);
        if (ec) {
            break;
        }
        current =
            (target.is_absolute() ? target : current.parent_path() / target).lexically_normal();
    }
    std::error_code ec;
    if (auto real = fs::canonical(file_, ec); !ec) {
        want(real.parent_path());
    }
    std::lock_guard lock(directories_mutex_);
    // Unchanged: keep the watches. Replacing them would queue IN_IGNORED events, which would
    // wake this thread for another look, forever.
    if (wanted == directories_) {
        return;
    }
    for (int wd : watches_) {
        inotify_rm_watch(inotify_fd_, wd);  // fails harmlessly for a directory already gone
    }
    watches_.clear();
    directories_.clear();
    for (const auto& dir : wanted) {
        const int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kDirectoryEvents | IN_ONLYDIR);
        if (wd < 0) {
            // Not there (yet): the events of the directories that are watched lead back here.
            log()->debug("config watch: cannot watch {}: {}", dir.string(), std::strerror(errno));
            continue;
        }
        watches_.push_back(wd);
    }
    // Kept as wanted, even those that could not be watched, so that the comparison above holds.
    directories_ = std::move(wanted);
}

bool ConfigWatcher::content_changed() {
    std::ifstream in(file_, std::ios::binary);
    if (!in) {
        // Gone for a moment (between an editor's unlink and its rename): wait for the next event.
        last_readable_ = false;
        return false;
    }
    std::string content;
    std::array<char, 64 * 1024> chunk{};
    while (in && static_cast<std::streamsize>(content.size()) < kMaxConfigBytes) {
        in.read(chunk.data(), chunk.size());
        content.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
    }
    const bool changed = !last_readable_ || content != last_content_;
    last_content_ = std::move(content);
    last_readable_ = true;
    return changed;
}

void ConfigWatcher::run() {
    std::array<pollfd, 2> fds{pollfd{inotify_fd_, POLLIN, 0}, pollfd{stop_fd_, POLLIN, 0}};
    // Aligned for inotify_event, big enough for many events per read.
    alignas(inotify_event) std::array<char, 16 * 1024> buffer{};
    // The settle timer restarts with each event, but a directory that never goes quiet (an
    // unrelated file written all the time) still gets a look every few settle periods.
    const auto max_wait = settle_ * 5;
    bool armed = false;
    std::chrono::steady_clock::time_point first_event;
    for (;;) {
        int timeout = -1;
        if (armed) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                first_event + max_wait - std::chrono::steady_clock::now());
            timeout = static_cast<int>(std::max<std::chrono::milliseconds::rep>(
                0, std::min(settle_.count(), left.count())));
        }
        const int n = ::poll(fds.data(), fds.size(), timeout);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log()->error("config watch stopped: poll: {}", std::strerror(errno));
            return;
        }
        if (fds[1].revents != 0) {
            return;
        }
        if (n > 0) {
            // Drain what is there; which entry changed does not matter, the content check decides.
            while (::read(inotify_fd_, buffer.data(), buffer.size()) > 0) {
            }
            if (!armed) {
                armed = true;
                first_event = std::chrono::steady_clock::now();
            }
            if (std::chrono::steady_clock::now() < first_event + max_wait) {
                continue;
            }
        }
        if (!armed) {
            continue;
        }
        // Quiet for the settle time after a burst of events (or waited long enough): look once.
        armed = false;
        const bool changed = content_changed();
        rewatch();
        if (changed) {
            log()->info("config file {} changed: reloading", file_.string());
            try {
                on_change_();
            } catch (const std::exception& e) {
                log()->error("config reload after a file change failed: {}", e.what());
            }
        }
    }
}

}  // namespace hearth::core
