#pragma once

// Hearth's configuration: one TOML file, a typed struct per section, strict parsing.
//
// A section is a struct with `static constexpr std::string_view kName` (its TOML table, dots for
// nesting, e.g. "auth.better_auth"), `kDescription`, default member values, and
//     template <class V> void visit(V& v) { v("key", member, {.help = "..."}); ... }
// which lists every key once; parsing, `hearth config default`, unknown-key rejection and
// environment overrides all derive from it. An optional `void validate(ConfigErrors&) const`
// checks what types alone cannot (an address, a pair of TLS files).

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace hearth::core {

/// What a visitor knows about one key beyond its type and default.
struct FieldInfo {
    std::string_view help;  // one line: meaning and unit
    bool restart = false;   // cannot change at runtime: a reload keeps the running value
    std::int64_t min = std::numeric_limits<std::int64_t>::min();  // integers only
    std::int64_t max = std::numeric_limits<std::int64_t>::max();
    std::span<const std::string_view> choices = {};  // strings only: the allowed values
};

/// Errors found while loading, each "key.path: message" (with "file:line:col: " when known).
using ConfigErrors = std::vector<std::string>;

/// The loaded configuration: immutable, shared; a reload builds a new one. Thread-safe to read.
class Config {
public:
    /// The section registered as `Section`; throws std::logic_error when it was not (a wiring
    /// mistake, found the first time the code runs).
    template <class Section>
    const Section& get() const {
        auto it = sections_.find(Section::kName);
        if (it == sections_.end()) {
            throw std::logic_error("config section not registered: " + std::string(Section::kName));
        }
        // Two structs with the same kName would otherwise be a silent bad cast.
        if (*it->second.type != typeid(Section)) {
            throw std::logic_error("config section \"" + std::string(Section::kName) +
                                   "\" was registered with another type");
        }
        return *static_cast<const Section*>(it->second.value.get());
    }

    /// The file it was loaded from (empty: defaults and environment only).
    const std::filesystem::path& source() const noexcept { return source_; }

private:
    friend class ConfigSchema;
    struct Entry {
        std::shared_ptr<const void> value;
        const std::type_info* type;
    };
    std::map<std::string, Entry, std::less<>> sections_;
    std::filesystem::path source_;
};

using Environment = std::vector<std::pair<std::string, std::string>>;

/// The set of known sections. The app registers the core's sections and each module's at startup;
/// after that it is only read, and its const members are safe to call from any thread.
class ConfigSchema {
public:
    ConfigSchema();
    ~ConfigSchema();
    ConfigSchema(ConfigSchema&&) noexcept;
    ConfigSchema& operator=(ConfigSchema&&) noexcept;

    template <class Section>
    void add();

    struct LoadResult {
        std::shared_ptr<const Config> config;  // null when errors is non-empty
        ConfigErrors errors;
    };

    /// Reads `file` (an empty path: none), then applies `HEARTH_<SECTION>__<KEY>` overrides from
    /// `env`. Every error is reported, not only the first.
    LoadResult load(const std::filesystem::path& file, const Environment& env) const;
    /// Same, from TOML text (tests, and `config check -`).
    LoadResult load_string(std::string_view toml, std::string_view source_name,
                           const Environment& env) const;

    /// The complete default configuration as TOML, every key commented.
    std::string default_toml() const;

    /// Keys marked `restart` whose values differ between two configs, as "section.key".
    std::vector<std::string> restart_required(const Config& running, const Config& next) const;

    /// The process environment, filtered to HEARTH_* variables.
    static Environment process_environment();

    /// Every key as "section.key", in registration order (docs checks, completion).
    std::vector<std::string> keys() const;

    struct SectionOps;  // one section with its type erased (config_impl.hpp)

private:
    void add_section(std::unique_ptr<SectionOps> ops);
    std::vector<std::unique_ptr<SectionOps>> sections_;
};

/// Parses a listen address "host:port": a host name, an IPv4 address or a bracketed IPv6 address
/// ("[::1]:8080"), and a port 0..65535 (0: any free port). On success `host` is set without
/// brackets and `port` to the port; on failure both are left unchanged. Shared by every section
/// that has a listener, so that all of them accept the same spellings.
[[nodiscard]] bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port);

/// Checks a message rate as [websocket] has it (`max_messages_per_s`, `message_burst`; 0 means
/// unlimited), reporting errors under `section`. Shared by every section with a message rate, so
/// that all of them accept the same values.
void check_message_rate(std::string_view section, double max_messages_per_s, double message_burst,
                        ConfigErrors& errors);

// ---------------------------------------------------------------------------------------------
// The core's sections.

inline constexpr std::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                                  "error", "critical", "off"};
inline constexpr std::string_view kLogFormats[] = {"text", "json"};
inline constexpr std::string_view kOverflowPolicies[] = {"close", "drop"};
inline constexpr std::string_view kModuleFailurePolicies[] = {"refuse", "continue"};

/// Adds an error for each entry of `origins` that is not a browser origin (http:// or https://, a
/// host and an optional port, nothing after it): `key` names the setting in the message.
void check_origins(std::string_view key, const std::vector<std::string>& origins,
                   ConfigErrors& errors);

struct ServerConfig {
    static constexpr std::string_view kName = "server";
    static constexpr std::string_view kDescription = "The process: data, threads, shutdown, logs.";

    std::string data_dir = "./data";
    std::int64_t io_threads = 0;
    std::int64_t blocking_threads = 4;
    std::int64_t shutdown_timeout_ms = 10'000;
    std::string log_level = "info";
    std::string log_format = "text";
    std::string log_file;
    std::int64_t log_file_max_mb = 64;
    std::int64_t log_file_count = 5;
    std::int64_t log_ring_lines = 2000;
    std::int64_t event_ring_size = 1000;
    bool watch_config = true;
    std::string on_module_failure = "refuse";

    template <class V>
    void visit(V& v) {
        v("data_dir", data_dir,
          {.help = "Directory for the embedded database and stored files.", .restart = true});
        v("io_threads", io_threads,
          {.help = "Network threads; 0 means one per CPU core.",
           .restart = true,
           .min = 0,
           .max = 256});
        v("blocking_threads", blocking_threads,
          {.help = "Threads for blocking work (storage, password hashing, files).",
           .restart = true,
           .min = 1,
           .max = 256});
        v("shutdown_timeout_ms", shutdown_timeout_ms,
          {.help =
               "On SIGINT/SIGTERM, how long open connections may take to close, in milliseconds.",
           .min = 0,
           .max = 3'600'000});
        v("log_level", log_level, {.help = "Least severe level logged.", .choices = kLogLevels});
        v("log_format", log_format,
          {.help = "Log line format on standard error and in the log file.",
           .restart = true,
           .choices = kLogFormats});
        v("log_file", log_file,
          {.help =
               "Also write logs to this file, rotated by size; empty means standard error only.",
           .restart = true});
        v("log_file_max_mb", log_file_max_mb,
          {.help = "Size of one log file before it rotates, in MiB.",
           .restart = true,
           .min = 1,
           .max = 65536});
        v("log_file_count", log_file_count,
          {.help = "Rotated log files kept.", .restart = true, .min = 1, .max = 1000});
        v("log_ring_lines", log_ring_lines,
          {.help = "Recent log lines kept in memory for the live log viewer.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("event_ring_size", event_ring_size,
          {.help = "Recent notable events kept in memory for operators.",
           .restart = true,
           .min = 0,
           .max = 1'000'000});
        v("watch_config", watch_config,
          {.help = "Reload the config file when it changes (written, replaced by a rename, or a "
                   "symlink swapped), as SIGHUP does.",
           .restart = true});
        v("on_module_failure", on_module_failure,
          {.help = "When a module fails to start: \"refuse\" stops the server from starting; "
                   "\"continue\" starts it without that module (GET /api/v1/modules says why).",
           .restart = true,
           .choices = kModuleFailurePolicies});
    }
    void validate(ConfigErrors& errors) const;
    bool operator==(const ServerConfig&) const = default;
};

struct HttpConfig {
    static constexpr std::string_view kName = "http";
    static constexpr std::string_view kDescription =
        "The HTTP API listener, which also carries the native WebSocket protocol.";

    std::string listen = "127.0.0.1:8080";
    std::string tls_cert_file;
    std::string tls_key_file;
    std::int64_t max_header_bytes = 16 * 1024;
    std::int64_t max_body_bytes = 1024 * 1024;
    std::int64_t request_timeout_ms = 15'000;
    std::int64_t write_timeout_ms = 30'000;
    std::int64_t keepalive_timeout_s = 60;
    std::int64_t header_timeout_ms = 10'000;
    std::int64_t max_connections = 10'000;
    // As [websocket]'s: a game LAN, a carrier NAT or a load generator opens hundreds at once.
    std::int64_t max_connections_per_ip = 1000;
    bool echo_route = false;
    std::string admin_token;
    std::vector<std::string> operator_origins;  // besides the request's own Host

    template <class V>
    void visit(V& v) {
        v("listen", listen,
          {.help = "Address of the HTTP listener, host:port (port 0 picks a free port).",
           .restart = true});
        v("tls_cert_file", tls_cert_file,
          {.help = "PEM certificate chain; with tls_key_file, serve https and wss. Reloaded on "
                   "SIGHUP."});
        v("tls_key_file", tls_key_file, {.help = "PEM private key for tls_cert_file."});
        v("max_header_bytes", max_header_bytes,
          {.help = "Largest request head (request line and headers), in bytes; over it: 431.",
           .min = 256,
           .max = 1 << 20});
        v("max_body_bytes", max_body_bytes,
          {.help = "Largest request body, in bytes; over it: 413.",
           .min = 0,
           .max = std::int64_t{1} << 32});
        v("request_timeout_ms", request_timeout_ms,
          {.help = "Time allowed to receive a request's body once its head is in, in milliseconds "
                   "(the whole body, not reset as bytes arrive); then the connection is closed.",
           .min = 100,
           .max = 3'600'000});
        v("write_timeout_ms", write_timeout_ms,
          {.help = "Time allowed to write one response, in milliseconds.",
           .min = 100,
           .max = 3'600'000});
        v("keepalive_timeout_s", keepalive_timeout_s,
          {.help = "An idle keep-alive connection is closed after this many seconds.",
           .min = 1,
           .max = 86'400});
        v("header_timeout_ms", header_timeout_ms,
          {.help = "Time allowed to receive a whole request head, from the connection (or the "
                   "first byte of the next request on a kept-alive one), in milliseconds; not "
                   "reset as bytes arrive. Then the connection is closed.",
           .min = 100,
           .max = 3'600'000});
        v("max_connections", max_connections,
          {.help = "Open HTTP connections on all HTTP listeners (before a WebSocket upgrade); 0 "
                   "means unlimited. Over it a new connection is closed at once.",
           .min = 0,
           .max = 10'000'000});
        v("max_connections_per_ip", max_connections_per_ip,
          {.help = "Open HTTP connections per client address (IPv6: per /64) and listener; 0 "
                   "means unlimited. Over it a new connection is closed at once.",
           .min = 0,
           .max = 10'000'000});
        v("echo_route", echo_route,
          {.help = "Serve the WebSocket echo route /echo (for tests and benchmarks).",
           .restart = true});
        v("admin_token", admin_token,
          {.help = "Bearer token for operator endpoints; empty means only admin accounts' tokens "
                   "work."});
        v("operator_origins", operator_origins,
          {.help = "Browser origins (\"https://host[:port]\") that may open operator streams "
                   "(/api/v1/events/stream) with a token besides the server's own (the "
                   "request's Host), e.g. an admin console served from another host."});
    }
    void validate(ConfigErrors& errors) const;
    bool operator==(const HttpConfig&) const = default;
};

struct WebSocketConfig {
    static constexpr std::string_view kName = "websocket";
    static constexpr std::string_view kDescription =
        "Defaults for every WebSocket route; a front-end's own section may override them.";

    std::int64_t max_message_bytes = 1024 * 1024;
    std::int64_t max_outbound_bytes = 4 * 1024 * 1024;
    std::string overflow_policy = "close";
    std::int64_t idle_timeout_s = 120;
    std::int64_t ping_interval_s = 30;
    std::int64_t pong_timeout_s = 10;
    std::int64_t close_timeout_ms = 5'000;
    std::int64_t write_timeout_ms = 30'000;
    std::int64_t first_message_timeout_ms = 10'000;
    bool compression = true;
    std::int64_t compression_threshold_bytes = 64;
    std::int64_t max_connections_per_ip = 1000;
    double max_messages_per_s = 1000;
    double message_burst = 2000;
    std::int64_t max_inflated_bytes_per_s = 8 * 1024 * 1024;
    std::int64_t inflated_burst_bytes = 16 * 1024 * 1024;
    // Far above what any front-end's clients send (HunterPie and native messages are small, a
    // Homestead mod is a few MiB and always passes a full bucket); Moonshare's /player, whose
    // binary messages are files, has no byte bound (see player_route_settings).
    std::int64_t max_bytes_per_s = 8 * 1024 * 1024;
    std::int64_t bytes_burst = 16 * 1024 * 1024;

    template <class V>
    void visit(V& v) {
        v("max_message_bytes", max_message_bytes,
          {.help =
               "Largest incoming message, in bytes; over it the connection is closed with 1009.",
           .min = 125,
           .max = std::int64_t{1} << 32});
        v("max_outbound_bytes", max_outbound_bytes,
          {.help = "Bytes queued for one slow client before the overflow policy applies.",
           .min = 1024,
           .max = std::int64_t{1} << 34});
        v("overflow_policy", overflow_policy,
          {.help = "At the outbound bound: close (1008 \"slow consumer\") or drop the message.",
           .choices = kOverflowPolicies});
        v("idle_timeout_s", idle_timeout_s,
          {.help = "Close a connection that sends nothing (not even a pong) for this many seconds.",
           .min = 1,
           .max = 86'400});
        v("ping_interval_s", ping_interval_s,
          {.help = "Send a ping after this many seconds without traffic from the client; 0 "
                   "disables pings.",
           .min = 0,
           .max = 86'400});
        v("pong_timeout_s", pong_timeout_s,
          {.help = "Close when nothing arrives this many seconds after a ping.",
           .min = 1,
           .max = 86'400});
        v("close_timeout_ms", close_timeout_ms,
          {.help =
               "How long to wait for the client's close frame after sending ours, in milliseconds.",
           .min = 0,
           .max = 600'000});
        v("write_timeout_ms", write_timeout_ms,
          {.help = "A write to a client that does not complete in this many milliseconds drops the "
                   "connection.",
           .min = 100,
           .max = 3'600'000});
        v("first_message_timeout_ms", first_message_timeout_ms,
          {.help = "Close with 1008 a connection that sends no data message this many milliseconds "
                   "after the upgrade, on routes whose clients speak first; 0 disables.",
           .min = 0,
           .max = 3'600'000});
        v("compression", compression,
          {.help = "Accept permessage-deflate (no context takeover) when a client offers it."});
        v("compression_threshold_bytes", compression_threshold_bytes,
          {.help = "Messages smaller than this are sent uncompressed, in bytes.",
           .min = 0,
           .max = std::int64_t{1} << 32});
        v("max_connections_per_ip", max_connections_per_ip,
          {.help = "Open WebSocket connections per client address and route; 0 means unlimited. "
                   "Over it: close 1008.",
           .min = 0,
           .max = 10'000'000});
        v("max_messages_per_s", max_messages_per_s,
          {.help = "Sustained incoming messages per second per connection; 0 means unlimited. Over "
                   "it: close 1008."});
        v("message_burst", message_burst,
          {.help = "Messages a connection may send at once above the sustained rate."});
        v("max_inflated_bytes_per_s", max_inflated_bytes_per_s,
          {.help = "Sustained bytes per second that one connection's compressed messages may "
                   "inflate to; 0 means unlimited. Over it: close 1008.",
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("inflated_burst_bytes", inflated_burst_bytes,
          {.help = "Inflated bytes a connection may use at once above the sustained rate (never "
                   "less than max_message_bytes).",
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("max_bytes_per_s", max_bytes_per_s,
          {.help = "Sustained bytes of incoming messages per second per connection (what the "
                   "front-end receives and may relay); 0 means unlimited. Over it: close 1008.",
           .min = 0,
           .max = std::int64_t{1} << 40});
        v("bytes_burst", bytes_burst,
          {.help = "Message bytes a connection may send at once above the sustained rate (never "
                   "less than max_message_bytes).",
           .min = 0,
           .max = std::int64_t{1} << 40});
    }
    void validate(ConfigErrors& errors) const;
    bool operator==(const WebSocketConfig&) const = default;
};

}  // namespace hearth::core

#include "core/config_impl.hpp"  // ConfigSchema::add<Section>
