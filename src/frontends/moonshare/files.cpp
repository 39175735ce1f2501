#include "frontends/moonshare/files.hpp"
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fcntl.h>
#include <unistd.h>

#include "util/log.hpp"

namespace hearth::frontends::moonshare {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = util::logger("moonshare");
    return l;
}

std::int64_t ms_of(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::optional<StoredFile> read_meta(const fs::path& path, const std::string& id) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return std::nullopt;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
        return std::nullopt;
    }
    const auto& o = v.get_object();
    const auto* from = o.if_contains("from");
    const auto* to = o.if_contains("to");
    const auto* name = o.if_contains("name");
    const auto* size = o.if_contains("size");
    const auto* created = o.if_contains("created_ms");
    if (!from || !from->is_string() || !to || !to->is_string() || !name || !name->is_string() ||
        !size || !size->is_int64() || size->get_int64() < 0 || !created || !created->is_int64()) {
        return std::nullopt;
    }
    StoredFile f;
    f.id = id;
    f.from = std::string(from->get_string());
    // Files stored before senders were counted by address: each counts under its user id.
    const auto* sender = o.if_contains("sender");
    f.sender = sender != nullptr && sender->is_string() ? std::string(sender->get_string())
                                                        : "user:" + f.from;
    f.to = std::string(to->get_string());
    f.name = std::string(name->get_string());
    f.size = static_cast<std::uint64_t>(size->get_int64());
    f.created =
        std::chrono::system_clock::time_point(std::chrono::milliseconds(created->get_int64()));
    return f;
}

bool sync_fd_path(const fs::path& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    int r = 0;
    do {
        r = ::fsync(fd);
    } while (r != 0 && errno == EINTR);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return r == 0;
}

}  // namespace

bool sync_file(const fs::path& path) {
    return sync_fd_path(path, O_RDONLY);
}

bool sync_directory(const fs::path& path) {
    return sync_fd_path(path, O_RDONLY | O_DIRECTORY);
}

bool write_durably(const fs::path& path, std::string_view text, std::string& error) {
    const auto tmp = fs::path(path).concat(".tmp");
    const int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = "cannot create " + tmp.string() + ": " + std::strerror(errno);
        return false;
    }
    bool ok = true;
    while (ok && !text.empty()) {
        const auto w = ::write(fd, text.data(), text.size());
        if (w < 0 && errno == EINTR) {
            continue;
        }
        ok = w > 0;
        if (ok) {
            text.remove_prefix(static_cast<std::size_t>(w));
        }
    }
    int r = -1;
    if (ok) {
        do {
            r = ::fsync(fd);
        } while (r != 0 && errno == EINTR);
        ok = r == 0;
    }
    if (!ok) {
        error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
    }
    if (::close(fd) != 0 && ok) {
        error = "cannot write " + tmp.string() + ": " + std::strerror(errno);
        ok = false;
    }
    std::error_code ec;
    if (ok) {
        fs::rename(tmp, path, ec);
        if (ec) {
            error = "cannot replace " + path.string() + ": " + ec.message();
            ok = false;
        }
    }
    if (!ok) {
        fs::remove(tmp, ec);
        return false;
    }
    if (!sync_directory(path.parent_path())) {
        error = "cannot sync " + path.parent_path().string() + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

FileStore::FileStore(fs::path root, Limits limits)
    : incoming_(root / "incoming"), stored_(root / "stored"), limits_(limits) {
    std::error_code ec;
    fs::create_directories(incoming_, ec);
    if (!ec) {
        fs::create_directories(stored_, ec);
    }
    if (ec) {
        throw std::runtime_error("moonshare: cannot create " + root.string() + ": " + ec.message());
    }
    // Uploads that were in progress when the process ended are incomplete: gone.
    std::size_t dropped = 0;
    for (const auto& e : fs::directory_iterator(incoming_, ec)) {
        fs::remove(e.path(), ec);
        ++dropped;
    }
    const auto now = std::chrono::system_clock::now();
    std::map<std::string, bool> has_bin;
    std::map<std::string, fs::path> metas;
    for (const auto& e : fs::directory_iterator(stored_, ec)) {
        const auto stem = e.path().stem().string();
        const auto ext = e.path().extension().string();
        if (ext == ".bin") {
            has_bin[stem] = true;
        } else if (ext == ".meta") {
            metas[stem] = e.path();
        } else {
            fs::remove(e.path(), ec);  // a half-written .meta.tmp, or a stranger
            ++dropped;
        }
    }
    for (const auto& [id, path] : metas) {
        auto f = has_bin.count(id) ? read_meta(path, id) : std::nullopt;
        const bool size_ok = f && fs::file_size(data_path(id), ec) == f->size && !ec;
        if (!f || !size_ok || f->created + limits_.ttl <= now) {
            fs::remove(path, ec);
            fs::remove(data_path(id), ec);
            ++dropped;
            continue;
        }
        has_bin.erase(id);
        count_locked(*f);
        files_.emplace(id, std::move(*f));
    }
    for (const auto& [id, unused] : has_bin) {
        fs::remove(data_path(id), ec);  // bytes whose metadata never got written
        ++dropped;
    }
    log()->info("moonshare files: {} stored ({} bytes) in {}, {} leftover(s) removed",
                files_.size(), stored_bytes_, stored_.string(), dropped);
}

fs::path FileStore::new_upload_path() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::lock_guard lock(mutex_);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu-%016llx.part", static_cast<unsigned long long>(++next_id_),
                  static_cast<unsigned long long>(rng()));
    return incoming_ / buf;
}

bool FileStore::reserve(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    if (stored_bytes_ + reserved_ + bytes > limits_.max_bytes_total) {
        return false;
    }
    reserved_ += bytes;
    return true;
}

void FileStore::release(std::uint64_t bytes) {
    std::lock_guard lock(mutex_);
    reserved_ -= std::min(reserved_, bytes);
}

void FileStore::count_locked(const StoredFile& f) {
    auto& to = per_user_[f.to];
    to.bytes += f.size;
    ++to.files;
    auto& from = per_sender_[f.sender];
    from.bytes += f.size;
    ++from.files;
    stored_bytes_ += f.size;
}

void FileStore::uncount_locked(const StoredFile& f) {
    auto drop = [&f](std::map<std::string, Usage>& m, const std::string& key) {
        auto it = m.find(key);
        if (it == m.end()) {
            return;
        }
        it->second.bytes -= std::min(it->second.bytes, f.size);
        it->second.files -= std::min<std::uint64_t>(it->second.files, 1);
        if (it->second.files == 0) {  // not by bytes: empty files wait too
            m.erase(it);
        }
    };
    drop(per_user_, f.to);
    drop(per_sender_, f.sender);
    stored_bytes_ -= std::min(stored_bytes_, f.size);
}

FileStore::StoreResult FileStore::over_quota_locked(const std::string& sender,
                                                    const std::string& to,
                                                    std::uint64_t size) const {
    const auto fits = [size](const std::map<std::string, Usage>& m, const std::string& key,
                             std::uint64_t max_bytes, std::uint64_t max_files) {
        const auto it = m.find(key);
        const Usage u = it == m.end() ? Usage{} : it->second;
        return u.bytes + size <= max_bytes && u.files + 1 <= max_files;
    };
    if (!fits(per_user_, to, limits_.max_bytes_per_user, limits_.max_files_per_user)) {
        return StoreResult::kUserQuota;
    }
    if (!fits(per_sender_, sender, limits_.max_bytes_per_sender, limits_.max_files_per_sender)) {
        return StoreResult::kSenderQuota;
    }
    return StoreResult::kStored;
}

FileStore::StoreResult FileStore::fits(const std::string& sender, const std::string& to,
                                       std::uint64_t size) const {
    std::lock_guard lock(mutex_);
    return over_quota_locked(sender, to, size);
}

FileStore::StoreResult FileStore::store(const fs::path& upload, std::string from, std::string to,
                                        std::string name, std::uint64_t size, std::string sender,
                                        const std::function<void()>& before_sync) {
    std::error_code ec;
    StoredFile f;
    f.from = std::move(from);
    f.sender = std::move(sender);
    f.to = std::move(to);
    f.name = std::move(name);
    f.size = size;
    StoreResult refused = StoreResult::kStored;
    {
        std::lock_guard lock(mutex_);
        refused = over_quota_locked(f.sender, f.to, size);
        // The reservation becomes the file's share of the total (or is given back) at once.
        reserved_ -= std::min(reserved_, size);
        if (refused == StoreResult::kStored) {
            // Counted now, so that two stores at once cannot both pass.
            count_locked(f);
            const auto now = std::chrono::system_clock::now();
            char buf[64];
            std::snprintf(buf, sizeof buf, "%013lld-%06llu", static_cast<long long>(ms_of(now)),
                          static_cast<unsigned long long>(++next_id_));
            f.id = buf;
            f.created = now;
        }
    }
    if (refused != StoreResult::kStored) {
        fs::remove(upload, ec);  // outside the lock: io threads take it for bookkeeping
        return refused;
    }
    const auto bin = data_path(f.id);
    const auto meta = stored_ / (f.id + ".meta");
    const auto tmp = stored_ / (f.id + ".meta.tmp");
    if (before_sync) {
        before_sync();
    }
    // The bytes reach the disk before a metadata file can name them, and the names (the data's,
    // then the metadata's) before the caller acknowledges the file: after a crash the file is
    // whole or, with its metadata missing or its size short, removed at startup.
    std::string error;
    bool ok = sync_file(upload);
    if (!ok) {
        error = std::string("cannot sync the upload: ") + std::strerror(errno);
    } else {
        fs::rename(upload, bin, ec);
        if (ec) {
            ok = false;
            error = "cannot move the upload: " + ec.message();
        }
    }
    if (ok) {
        json::object o{{"from", f.from},
                       {"sender", f.sender},
                       {"to", f.to},
                       {"name", f.name},
                       {"size", static_cast<std::int64_t>(f.size)},
                       {"created_ms", ms_of(f.created)}};
        // write_durably syncs the directory last, which also makes the data's new name last.
        ok = write_durably(meta, json::serialize(o), error);
    }
    std::lock_guard lock(mutex_);
    if (!ok) {
        log()->warn("moonshare: cannot store a file for {}: {}", f.to, error);
        std::error_code ignored;
        fs::remove(upload, ignored);
        fs::remove(bin, ignored);
        fs::remove(tmp, ignored);
        fs::remove(meta, ignored);
        uncount_locked(f);
        return StoreResult::kFailed;
    }
    files_.emplace(f.id, f);
    return StoreResult::kStored;
}

std::vector<StoredFile> FileStore::waiting_for(const std::string& to) const {
    std::lock_guard lock(mutex_);
    std::vector<StoredFile> out;
    if (!per_user_.count(to)) {
        return out;
    }
    for (const auto& [id, f] : files_) {
        if (f.to == to) {
            out.push_back(f);
        }
    }
    return out;
}

std::vector<StoredFile> FileStore::claim_waiting_for(const std::string& to) {
    std::lock_guard lock(mutex_);
    std::vector<StoredFile> out;
    if (!per_user_.count(to)) {
        return out;
    }
    for (const auto& [id, f] : files_) {
        if (f.to == to && claimed_.insert(id).second) {
            out.push_back(f);
        }
    }
    return out;
}

bool FileStore::has_waiting(const std::string& to) const {
    std::lock_guard lock(mutex_);
    return per_user_.count(to) > 0;
}

std::vector<std::string> FileStore::recipients() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    out.reserve(per_user_.size());
    for (const auto& [user, bytes] : per_user_) {
        out.push_back(user);
    }
    return out;
}

void FileStore::unclaim(const std::string& id) {
    std::lock_guard lock(mutex_);
    claimed_.erase(id);
}

fs::path FileStore::data_path(const std::string& id) const {
    return stored_ / (id + ".bin");
}

bool FileStore::remove(const std::string& id) {
    {
        std::lock_guard lock(mutex_);
        auto it = files_.find(id);
        if (it == files_.end()) {
            return false;
        }
        uncount_locked(it->second);
        files_.erase(it);
        claimed_.erase(id);
    }
    std::error_code ec;
    fs::remove(stored_ / (id + ".meta"), ec);
    fs::remove(data_path(id), ec);
    return true;
}

std::size_t FileStore::expire(std::chrono::system_clock::time_point now) {
    std::vector<std::string> old;
    {
        std::lock_guard lock(mutex_);
        for (const auto& [id, f] : files_) {
            if (f.created + limits_.ttl <= now) {
                old.push_back(id);
            }
        }
    }
    std::size_t n = 0;
    for (const auto& id : old) {
        n += remove(id) ? 1 : 0;
    }
    return n;
}

std::uint64_t FileStore::stored_bytes() const {
    std::lock_guard lock(mutex_);
    return stored_bytes_;
}

std::uint64_t FileStore::reserved_bytes() const {
    std::lock_guard lock(mutex_);
    return reserved_;
}

std::size_t FileStore::stored_files() const {
    std::lock_guard lock(mutex_);
    return files_.size();
}

}  // namespace hearth::frontends::moonshare
