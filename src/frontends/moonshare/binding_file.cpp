#include "frontends/moonshare/binding_file.hpp"
#include <fstream>
#include <iterator>

#include "core/metrics.hpp"
#include "frontends/moonshare/bindings.hpp"
#include "frontends/moonshare/common.hpp"
#include "frontends/moonshare/files.hpp"

namespace hearth::frontends::moonshare {

namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;

namespace {

// A change is saved within a second (the next tick), times of use alone within kLazySave: every
// authentication and leave bumps one, and rewriting the whole file each second for them would
// cost far more than losing a minute of them to a crash (a binding ends that much earlier).
constexpr auto kLazySave = std::chrono::seconds(60);

}  // namespace

BindingFile::BindingFile(Bindings& bindings, fs::path path, core::Gauge& count, core::Gauge& bytes)
    : bindings_(bindings), path_(std::move(path)), count_(count), bytes_(bytes) {}

void BindingFile::load(const FileStore& files, std::int64_t max_bindings) {
    const auto now = SysClock::now();
    std::error_code ec;
    if (fs::exists(path_, ec)) {
        std::ifstream in(path_, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        if (const auto n = bindings_.load(text, now)) {
            log()->info("{} user id binding(s) loaded", n->loaded);
            if (n->dropped > 0) {
                // Their user ids are free again; files waiting for them stay held (below).
                log()->warn("{} user id binding(s) of {} not loaded: past max_bindings ({})",
                            n->dropped, path_.string(), max_bindings);
            }
        } else {
            // Every session must then get a new token (the plugin does at reconnect); a user
            // id with stored files stays held by nobody (below).
            log()->error("{} is not a bindings file: ignored; every user id is free again",
                         path_.string());
        }
    }
    for (const auto& user : files.recipients()) {
        bindings_.hold_unclaimed(user, now);
    }
    saved_version_ = bindings_.version();
    saved_touches_ = bindings_.touches();
    update_gauges();
}

void BindingFile::update_gauges() {
    count_.set(static_cast<std::int64_t>(bindings_.size()));
    bytes_.set(static_cast<std::int64_t>(bindings_.bytes()));
}

bool BindingFile::behind(bool touches_too) const {
    return bindings_.version() != saved_version_ ||
           (touches_too && bindings_.touches() != saved_touches_);
}

bool BindingFile::touches_due() const {
    return std::chrono::steady_clock::now() - last_save_.load() >= kLazySave;
}

void BindingFile::save(bool touches_too) {
    std::lock_guard lock(save_mutex_);
    if (!behind(touches_too)) {
        return;
    }
    auto snap = bindings_.snapshot();
    std::string error;
    if (!write_durably(path_, snap.text, error)) {
        log()->error("cannot save the user id bindings: {}", error);
        return;
    }
    saved_version_ = snap.version;
    saved_touches_ = snap.touches;
    last_save_ = std::chrono::steady_clock::now();
}

void BindingFile::sweep(const std::function<bool(const std::string&)>& in_use) {
    const auto now = SysClock::now();
    std::size_t ended = 0;
    for (const auto& user : bindings_.due(now)) {
        if (in_use(user)) {
            continue;
        }
        ended += bindings_.end_if_due(user, now) ? 1 : 0;
    }
    if (ended > 0) {
        log()->debug("{} user id binding(s) ended", ended);
    }
    update_gauges();
}

}  // namespace hearth::frontends::moonshare
