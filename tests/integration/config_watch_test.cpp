// The config file is reloaded when it changes, however it changes: written in place, replaced by
// a rename (editors), or swapped through symlinks (a Kubernetes ConfigMap). Each test runs the
// real server on a real file and watches the effect through HTTP.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <unistd.h>

#include "app/server_app.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

void write_file(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << path;
}

std::string config_with_body_limit(const TempDir& dir, int limit) {
    return test_config_toml({{"http.max_body_bytes", std::to_string(limit)}}, dir.path());
}

// A server started from `file`, stopped when destroyed.
class FileServer {
public:
    explicit FileServer(const fs::path& file) : schema_(app::make_schema()) {
        auto loaded = schema_.load(file, {});
        if (!loaded.config) {
            throw std::runtime_error("config invalid: " + loaded.errors.front());
        }
        app_ = std::make_unique<app::ServerApp>(schema_, loaded.config);
        app_->start();
    }
    ~FileServer() { app_->shutdown(); }
    std::uint16_t port() const { return app_->http_port(); }
    app::ServerApp& app() { return *app_; }
    double reloads(const std::string& result) const {
        return metric_value(http_request(port(), "GET", "/metrics").body,
                            "hearth_config_reloads_total", {{"result", result}});
    }
    // Whether a body of `size` bytes is accepted.
    bool accepts_body(std::size_t size) const {
        return http_request(port(), "POST", "/health", std::string(size, 'x')).status != 413;
    }

private:
    core::ConfigSchema schema_;
    std::unique_ptr<app::ServerApp> app_;
};

TEST(ConfigWatch, AFileWrittenInPlaceIsApplied) {
    TempDir dir;
    const fs::path file = dir.file("hearth.toml");
    write_file(file, config_with_body_limit(dir, 1000));
    FileServer server(file);
    ASSERT_TRUE(server.accepts_body(500));

    write_file(file, config_with_body_limit(dir, 100));
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 1; }));
    EXPECT_FALSE(server.accepts_body(500));
    EXPECT_TRUE(server.accepts_body(50));
}

TEST(ConfigWatch, AFileReplacedByARenameIsApplied) {
    TempDir dir;
    const fs::path file = dir.file("hearth.toml");
    write_file(file, config_with_body_limit(dir, 1000));
    FileServer server(file);

    // What most editors do: write a new file beside it, then rename it over the old one.
    const fs::path temp = dir.file(".hearth.toml.swp");
    write_file(temp, config_with_body_limit(dir, 100));
    fs::rename(temp, file);
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 1; }));
    EXPECT_FALSE(server.accepts_body(500));

    // And again: the watch follows the new file, not the inode it replaced.
    write_file(temp, config_with_body_limit(dir, 1000));
    fs::rename(temp, file);
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 2; }));
    EXPECT_TRUE(server.accepts_body(500));
}

// A ConfigMap volume: hearth.toml -> ..data/hearth.toml, ..data -> ..2026_v1; an update writes
// ..2026_v2, points ..data_tmp at it, renames ..data_tmp over ..data and removes ..2026_v1.
TEST(ConfigWatch, ASwappedSymlinkLikeAConfigMapIsApplied) {
    TempDir dir;
    const fs::path mount = dir.file("config");
    fs::create_directories(mount / "..v1");
    write_file(mount / "..v1" / "hearth.toml", config_with_body_limit(dir, 1000));
    fs::create_directory_symlink("..v1", mount / "..data");
    fs::create_symlink("..data/hearth.toml", mount / "hearth.toml");
    FileServer server(mount / "hearth.toml");
    ASSERT_TRUE(server.accepts_body(500));

    auto swap_to = [&](const std::string& version, int limit) {
        fs::create_directories(mount / version);
        write_file(mount / version / "hearth.toml", config_with_body_limit(dir, limit));
        fs::create_directory_symlink(version, mount / "..data_tmp");
        fs::rename(mount / "..data_tmp", mount / "..data");
    };
    swap_to("..v2", 100);
    fs::remove_all(mount / "..v1");
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 1; }));
    EXPECT_FALSE(server.accepts_body(500));

    swap_to("..v3", 1000);
    fs::remove_all(mount / "..v2");
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 2; }));
    EXPECT_TRUE(server.accepts_body(500));
}

TEST(ConfigWatch, AnInvalidFileIsRejectedWholeAndTheRunningConfigStays) {
    TempDir dir;
    const fs::path file = dir.file("hearth.toml");
    write_file(file, config_with_body_limit(dir, 1000));
    FileServer server(file);

    // One good change and one bad key: nothing of it applies.
    write_file(file, config_with_body_limit(dir, 100) + "\n[server]\nno_such_key = 1\n");
    ASSERT_TRUE(eventually([&] { return server.reloads("rejected") >= 1; }));
    EXPECT_EQ(server.reloads("ok"), 0);
    EXPECT_TRUE(server.accepts_body(500));

    // Fixed: applies.
    write_file(file, config_with_body_limit(dir, 100));
    ASSERT_TRUE(eventually([&] { return server.reloads("ok") >= 1; }));
    EXPECT_FALSE(server.accepts_body(500));
}

TEST(ConfigWatch, WatchingCanBeTurnedOff) {
    TempDir dir;
    const fs::path on = dir.file("on.toml");
    write_file(on, test_config_toml({}, dir.path()));
    const fs::path off = dir.file("off.toml");
    write_file(off, test_config_toml({{"server.watch_config", "false"}}, dir.path()));
    {
        FileServer server(on);
        EXPECT_TRUE(server.app().watching_config());
    }
    FileServer server(off);
    EXPECT_FALSE(server.app().watching_config());
}

}  // namespace
}  // namespace hearth::test
