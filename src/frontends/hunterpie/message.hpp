#pragma once

// Reading a HunterPie client's message (docs/protocol/hunterpie.md), with no I/O: the whole text
// validated as JSON exactly as the original's JSON.parse-compatible reader does, and only the
// top-level fields the protocol uses kept. Split out of hunterpie.cpp so that the fuzz target
// tests/fuzz/hunterpie_fuzz.cpp can drive it. Thread-safety: free functions; `read_fields` keeps
// one simdjson parser per thread.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hearth::frontends::hunterpie {

/// The longest session id accepted. The plugin sends the game's session id (Monster Hunter
/// World's lobby ids are 12 characters); 256 bytes leaves a wide margin. Longer ids are refused
/// while the message is parsed, before anything is copied: each id is kept in the registry, in
/// the connection and in the hub, so unbounded ids cost memory several times over.
inline constexpr std::size_t kMaxSessionIdBytes = 256;

/// What the protocol reads from a client's message: the top-level `type`, `sessionId`,
/// `isLeader` and `name`. Filled by `read_fields`.
struct Fields {
    /// One top-level field: absent, a string (its decoded text), `true`, or anything else.
    struct Field {
        /// kTooLong: a string longer than `max_bytes`, whose text was not kept.
        enum class Kind : std::uint8_t { kAbsent, kString, kTrue, kOther, kTooLong };
        Kind kind = Kind::kAbsent;
        std::string text;
        std::size_t max_bytes = std::string::npos;

        bool is_string() const noexcept { return kind == Kind::kString; }
        /// Sets a string value, or kTooLong (copying nothing) when it is over the bound.
        void assign(std::string_view value) {
            if (value.size() > max_bytes) {
                kind = Kind::kTooLong;
                text.clear();
            } else {
                kind = Kind::kString;
                text.assign(value);
            }
        }
        /// Adds a part of a string value that `take` started as kString.
        void append(std::string_view part) {
            if (kind != Kind::kString) {
                return;  // already too long
            }
            if (part.size() > max_bytes - text.size()) {
                kind = Kind::kTooLong;
                text.clear();
                text.shrink_to_fit();
                return;
            }
            text.append(part);
        }
    };

    bool object = false;  // the document is a JSON object
    Field type;
    Field session_id{Field::Kind::kAbsent, {}, kMaxSessionIdBytes};
    Field is_leader;
    Field name;

    /// The field a top-level key fills; null for the keys the protocol does not read.
    Field* named(std::string_view key) {
        if (key == "type") {
            return &type;
        }
        if (key == "sessionId") {
            return &session_id;
        }
        if (key == "isLeader") {
            return &is_leader;
        }
        if (key == "name") {
            return &name;
        }
        return nullptr;
    }
};

/// Validates `text` as json::parse would and reads its top-level fields; false when it is not
/// valid JSON.
bool read_fields_exactly(std::string_view text, Fields& out);

/// Like `read_fields_exactly`, faster. Every push is validated (the page answers invalid JSON),
/// and boost.json's parser took a tenth of a HunterPie server's CPU at the plugin's pace;
/// simdjson validates the same document several times faster. simdjson refuses some documents
/// that boost.json (and JavaScript's JSON.parse, the original's parser) accept: numbers out of
/// double or 64-bit range (1e400, 2^64) and objects nested exactly 32 deep. Whatever simdjson
/// refuses is decided by boost.json, so no valid push is refused.
bool read_fields(std::string_view text, Fields& out);

}  // namespace hearth::frontends::hunterpie
