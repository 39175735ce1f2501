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

TEST(MoonshareFiles, QuotasPerRecipientAndPerSenderInFilesAndBytes) {
    Dir d;
    FileStore::Limits limits{1'000'000, 1'000'000, 3600s};
    limits.max_files_per_user = 2;
    limits.max_bytes_per_sender = 250;
    limits.max_files_per_sender = 3;
    FileStore s(d.path(), limits);
    auto store = [&s](const std::string& sender, const std::string& to, std::size_t n) {
        EXPECT_TRUE(s.reserve(n));
        return s.store(upload(s, n), "user-" + sender, to, "f", n, sender);
    };
    using R = FileStore::StoreResult;
    EXPECT_EQ(store("1.1.1.1", "bob", 10), R::kStored);
    EXPECT_EQ(store("1.1.1.1", "bob", 10), R::kStored);
    EXPECT_EQ(s.fits("1.1.1.1", "bob", 10), R::kUserQuota);       // two files wait for bob
    EXPECT_EQ(store("2.2.2.2", "bob", 10), R::kUserQuota);        // whoever sends it
    EXPECT_EQ(s.fits("1.1.1.1", "carol", 231), R::kSenderQuota);  // 20 + 231 bytes
    EXPECT_EQ(store("1.1.1.1", "carol", 230), R::kStored);
    EXPECT_EQ(store("1.1.1.1", "dave", 0), R::kSenderQuota);  // a fourth file, even empty
    EXPECT_EQ(store("2.2.2.2", "dave", 10), R::kStored);      // another sender's own quota
    EXPECT_EQ(s.reserved_bytes(), 0u);                        // refusals gave theirs back
    // A delivered file gives its place back to both.
    const auto bobs = s.waiting_for("bob");
    ASSERT_EQ(bobs.size(), 2u);
    EXPECT_TRUE(s.remove(bobs[0].id));
    EXPECT_EQ(s.fits("1.1.1.1", "bob", 10), R::kStored);
    // The sender is kept with the file across a restart.
    FileStore again(d.path(), limits);
    EXPECT_EQ(again.fits("1.1.1.1", "erin", 1), R::kStored);
    EXPECT_EQ(again.fits("1.1.1.1", "erin", 231), R::kSenderQuota);
    EXPECT_EQ(again.waiting_for("carol").at(0).sender, "1.1.1.1");
}

TEST(MoonshareFiles, EmptyFilesCountAsWaiting) {
    Dir d;
    FileStore s(d.path(), kLimits);
    ASSERT_TRUE(s.reserve(10));
    ASSERT_EQ(s.store(upload(s, 0), "a", "bob", "empty", 0), FileStore::StoreResult::kStored);
    ASSERT_EQ(s.store(upload(s, 10), "a", "bob", "full", 10), FileStore::StoreResult::kStored);
    const auto files = s.waiting_for("bob");
    ASSERT_EQ(files.size(), 2u);
    EXPECT_TRUE(s.remove(files[1].id));  // the 10 bytes: bob still has a file waiting
    EXPECT_TRUE(s.has_waiting("bob"));
    EXPECT_EQ(s.claim_waiting_for("bob").size(), 1u);
}

TEST(MoonshareFiles, AStoredFileIsOnDiskWholeWithItsMetadataWhenStoreReturns) {
    Dir d;
    FileStore s(d.path(), kLimits);
    ASSERT_TRUE(s.reserve(700));
    bool synced = false;
    ASSERT_EQ(s.store(upload(s, 700), "a", "bob", "f", 700, "1.1.1.1", [&] { synced = true; }),
              FileStore::StoreResult::kStored);
    EXPECT_TRUE(synced);
    const auto id = s.waiting_for("bob").at(0).id;
    EXPECT_EQ(fs::file_size(s.data_path(id)), 700u);
    EXPECT_TRUE(fs::exists(d.path() / "stored" / (id + ".meta")));
    EXPECT_FALSE(fs::exists(d.path() / "stored" / (id + ".meta.tmp")));
}

TEST(MoonshareFiles, WriteDurablyReplacesAFileWhole) {
    Dir d;
    const auto path = d.path() / "state.json";
    std::string error;
    ASSERT_TRUE(write_durably(path, "first", error)) << error;
    ASSERT_TRUE(write_durably(path, "second", error)) << error;
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    EXPECT_EQ(text, "second");
    EXPECT_FALSE(fs::exists(d.path() / "state.json.tmp"));
    EXPECT_FALSE(write_durably(d.path() / "missing" / "state.json", "x", error));
    EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
}

}  // namespace
}  // namespace hearth::frontends::moonshare
