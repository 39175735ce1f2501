// docs/protocol/packets.md against the codec: every byte example is what the codec writes for the
// sample it describes, every opcode and error code is in its table, so the document cannot drift
// from the code.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "frontends/packet/messages.hpp"
#include "unit/packet/samples.hpp"

namespace hearth::packet {
namespace {

std::optional<std::string> read_doc() {
    const std::filesystem::path relative = "docs/protocol/packets.md";
    std::filesystem::path path;
    if (const char* dir = std::getenv("HEARTH_SOURCE_DIR"); dir != nullptr && *dir != '\0') {
        path = std::filesystem::path(dir) / relative;
    } else {
        // Run by hand rather than by ctest: look upwards from the test binary.
        std::error_code ec;
        auto up = std::filesystem::canonical("/proc/self/exe", ec).parent_path();
        for (; !ec && up.has_relative_path(); up = up.parent_path()) {
            if (std::filesystem::exists(up / relative)) {
                path = up / relative;
                break;
            }
        }
    }
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

// The bytes as the document writes them: two lower-case hex digits each, 16 to a line.
std::string hex_block(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        if (i > 0) {
            out += i % 16 == 0 ? '\n' : ' ';
        }
        out += kHex[b >> 4];
        out += kHex[b & 0xF];
    }
    return out;
}

// The fenced block after `<!-- example: NAME -->`, or nullopt.
std::optional<std::string> example_in(const std::string& doc, std::string_view name) {
    const std::string marker = "<!-- example: " + std::string(name) + " -->";
    const std::size_t at = doc.find(marker);
    if (at == std::string::npos) {
        return std::nullopt;
    }
    const std::size_t open = doc.find("```", at);
    const std::size_t body = doc.find('\n', open);
    const std::size_t close = doc.find("\n```", body);
    if (open == std::string::npos || body == std::string::npos || close == std::string::npos) {
        return std::nullopt;
    }
    return doc.substr(body + 1, close - body - 1);
}

TEST(PacketDoc, EveryExampleIsTheCodecsBytes) {
    const auto doc = read_doc();
    ASSERT_TRUE(doc.has_value()) << "set HEARTH_SOURCE_DIR to the source tree";
    std::set<std::string> named;
    for (const auto& ex : samples::doc_examples()) {
        named.insert(std::string(ex.name));
        ASSERT_FALSE(ex.bytes.empty()) << ex.name << " does not encode";
        const std::string expected = hex_block(ex.bytes);
        const auto got = example_in(*doc, ex.name);
        if (!got.has_value()) {
            ADD_FAILURE() << "no example " << ex.name << "; it is:\n<!-- example: " << ex.name
                          << " -->\n```\n"
                          << expected << "\n```";
            continue;
        }
        EXPECT_EQ(*got, expected) << ex.name;
    }
    // No example in the document that the test does not check.
    std::size_t at = 0;
    const std::string marker = "<!-- example: ";
    while ((at = doc->find(marker, at)) != std::string::npos) {
        at += marker.size();
        const std::string name = doc->substr(at, doc->find(' ', at) - at);
        EXPECT_TRUE(named.count(name) == 1) << "unchecked example " << name;
    }
}

TEST(PacketDoc, EveryOpcodeIsInTheTable) {
    const auto doc = read_doc();
    ASSERT_TRUE(doc.has_value());
    const auto check = [&](const auto& m) {
        const auto op = static_cast<std::uint16_t>(std::decay_t<decltype(m)>::kOpcode);
        char id[16];
        std::snprintf(id, sizeof id, "0x%04X", op);
        const std::string row =
            "| `" + std::string(id) + "` | `" + std::string(opcode_name(op)) + "` |";
        EXPECT_NE(doc->find(row), std::string::npos) << row;
    };
    std::apply([&](const auto&... m) { (check(m), ...); }, samples::to_server());
    std::apply([&](const auto&... m) { (check(m), ...); }, samples::to_client());
}

TEST(PacketDoc, EveryErrorCodeIsInTheTable) {
    const auto doc = read_doc();
    ASSERT_TRUE(doc.has_value());
    for (int c = 1; c <= static_cast<int>(kLastErrorCode); ++c) {
        // The number, the message and the name (error_name: the metrics' and clients' label).
        const std::string row = "| " + std::to_string(c) + " | `" +
                                std::string(error_text(static_cast<ErrorCode>(c))) + "` | `" +
                                std::string(error_name(static_cast<ErrorCode>(c))) + "` |";
        EXPECT_NE(doc->find(row), std::string::npos) << row;
    }
}

}  // namespace
}  // namespace hearth::packet
