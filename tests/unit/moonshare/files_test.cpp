// The Moonshare file store (src/frontends/moonshare/files.hpp) on a real directory: reservations
// against the total bound, the per-recipient quota, the startup index that survives a restart and
// removes leftovers, expiry.

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "frontends/moonshare/files.hpp"

namespace hearth::frontends::moonshare {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class Dir {
public:
    Dir() {
        std::string tmpl = (fs::temp_directory_path() / "hearth-files-XXXXXX").string();
        if (mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = tmpl;
    }
    ~Dir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

fs::path upload(FileStore& store, std::size_t n) {
    auto p = store.new_upload_path();
    std::ofstream(p, std::ios::binary) << std::string(n, 'x');
    return p;
}

constexpr FileStore::Limits kLimits{1000, 1500, 3600s};

TEST(MoonshareFiles, ReservationsBoundTheTotal) {
    Dir d;
    FileStore s(d.path(), kLimits);
    EXPECT_TRUE(s.reserve(1000));
    EXPECT_FALSE(s.reserve(501));
    EXPECT_TRUE(s.reserve(500));
    s.release(500);
    EXPECT_EQ(s.reserved_bytes(), 1000u);
    EXPECT_EQ(s.store(upload(s, 1000), "a", "b", "f", 1000), FileStore::StoreResult::kStored);
    EXPECT_EQ(s.reserved_bytes(), 0u);
    EXPECT_EQ(s.stored_bytes(), 1000u);
    EXPECT_FALSE(s.reserve(501));  // stored bytes count against the total too
}

TEST(MoonshareFiles, PerRecipientQuota) {
    Dir d;
    FileStore s(d.path(), kLimits);
    ASSERT_TRUE(s.reserve(600));
    EXPECT_EQ(s.store(upload(s, 600), "a", "bob", "one", 600), FileStore::StoreResult::kStored);
    ASSERT_TRUE(s.reserve(600));
    auto refused = upload(s, 600);
    EXPECT_EQ(s.store(refused, "a", "bob", "two", 600), FileStore::StoreResult::kUserQuota);
    EXPECT_FALSE(fs::exists(refused));  // deleted, and its reservation released
    EXPECT_EQ(s.reserved_bytes(), 0u);
    ASSERT_TRUE(s.reserve(600));
    EXPECT_EQ(s.store(upload(s, 600), "a", "carol", "three", 600), FileStore::StoreResult::kStored);
    ASSERT_EQ(s.waiting_for("bob").size(), 1u);
    EXPECT_EQ(s.waiting_for("bob")[0].name, "one");
    EXPECT_TRUE(s.waiting_for("nobody").empty());
}

TEST(MoonshareFiles, SurvivesARestartAndCleansLeftovers) {
    Dir d;
    std::string id;
    {
        FileStore s(d.path(), kLimits);
        ASSERT_TRUE(s.reserve(10));
        ASSERT_EQ(s.store(upload(s, 10), "from \"x\"", "to", "name.bin", 10),
                  FileStore::StoreResult::kStored);
        id = s.waiting_for("to").at(0).id;
        (void)upload(s, 5);  // an upload in progress when the process ends
        std::ofstream(d.path() / "stored" / "orphan.bin") << "no metadata";
        std::ofstream(d.path() / "stored" / "x.meta.tmp") << "half written";
    }
    FileStore s(d.path(), kLimits);
    EXPECT_EQ(s.stored_files(), 1u);
    EXPECT_EQ(s.stored_bytes(), 10u);
    const auto w = s.waiting_for("to");
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].id, id);
    EXPECT_EQ(w[0].from, "from \"x\"");
    EXPECT_EQ(w[0].name, "name.bin");
    EXPECT_EQ(w[0].size, 10u);
    EXPECT_TRUE(fs::is_empty(d.path() / "incoming"));
    EXPECT_FALSE(fs::exists(d.path() / "stored" / "orphan.bin"));
    EXPECT_FALSE(fs::exists(d.path() / "stored" / "x.meta.tmp"));
    EXPECT_TRUE(s.remove(id));
    EXPECT_FALSE(s.remove(id));  // only one remover wins
    EXPECT_EQ(s.stored_bytes(), 0u);
    EXPECT_TRUE(fs::is_empty(d.path() / "stored"));
}

TEST(MoonshareFiles, Expiry) {
    Dir d;
    FileStore s(d.path(), kLimits);
    ASSERT_TRUE(s.reserve(10));
    ASSERT_EQ(s.store(upload(s, 10), "a", "b", "f", 10), FileStore::StoreResult::kStored);
    EXPECT_EQ(s.expire(std::chrono::system_clock::now()), 0u);
    EXPECT_EQ(s.expire(std::chrono::system_clock::now() + 3601s), 1u);
    EXPECT_EQ(s.stored_files(), 0u);
    EXPECT_TRUE(fs::is_empty(d.path() / "stored"));
}

}  // namespace
}  // namespace hearth::frontends::moonshare
