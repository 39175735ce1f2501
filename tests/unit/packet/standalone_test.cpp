// The packet codec (codec.*, messages.*) is compiled by the C++ client library (clients/cpp) as it
// is, so it may include nothing but the standard library and its own headers. The layers check
// allows every layer the public headers of include/hearth; this test holds the codec to less. (The
// module's files beside it, packet.* and packet_module.*, are the server's and may include more.)

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

namespace {

std::filesystem::path source_root() {
    if (const char* dir = std::getenv("HEARTH_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
        return dir;
    }
    std::error_code ec;
    auto up = std::filesystem::canonical("/proc/self/exe", ec).parent_path();
    for (; !ec && up.has_relative_path(); up = up.parent_path()) {
        if (std::filesystem::exists(up / "src/frontends/packet/codec.hpp")) {
            return up;
        }
    }
    return {};
}

TEST(PacketSources, IncludeOnlyTheStandardLibraryAndThemselves) {
    const auto dir = source_root() / "src/frontends/packet";
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << "set HEARTH_SOURCE_DIR to the source tree";
    // <name> without a directory or an extension is a standard header; "..." must be the codec's.
    const std::regex include(R"(^\s*#\s*include\s*([<"])([^>"]+)[>"])");
    const std::regex standard(R"(^[a-z_0-9]+$)");
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto stem = entry.path().stem().string();
        if (stem != "codec" && stem != "messages") {
            continue;
        }
        ++files;
        std::ifstream in(entry.path());
        std::string line;
        int number = 0;
        while (std::getline(in, line)) {
            ++number;
            std::smatch m;
            if (!std::regex_search(line, m, include)) {
                continue;
            }
            const std::string what = m[2];
            const bool ok = m[1] == "<" ? std::regex_match(what, standard)
                                        : what.rfind("frontends/packet/", 0) == 0;
            EXPECT_TRUE(ok) << entry.path().filename() << ":" << number << ": " << line;
        }
    }
    EXPECT_EQ(files, 4);
}

}  // namespace
