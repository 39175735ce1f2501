#include "core/config.hpp"
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>

#include <arpa/inet.h>
#include <toml++/toml.h>
#include <unistd.h>

namespace hearth::core {
namespace {

using config_detail::Field;
using config_detail::FieldValue;
using SectionList = std::vector<std::unique_ptr<ConfigSchema::SectionOps>>;

constexpr std::string_view kEnvPrefix = "HEARTH_";
constexpr std::string_view kEnvSeparator = "__";
constexpr std::size_t kCommentWidth = 100;

// ---------------------------------------------------------------------------------------------
// Text helpers.

std::string to_upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    });
    return out;
}

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

std::string join_path(std::string_view parent, std::string_view key) {
    std::string out(parent);
    if (!out.empty()) {
        out += '.';
    }
    out += key;
    return out;
}

/// The part of a variable name that stands for a section: "auth.better_auth" -> "AUTH_BETTER_AUTH".
std::string env_section_name(std::string_view section) {
    std::string out = to_upper(section);
    std::replace(out.begin(), out.end(), '.', '_');
    return out;
}

bool is_bare_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

/// A TOML basic string, so that any text (quotes, control characters) prints as valid TOML.
std::string quote_toml(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\r':
                out += "\\r";
                break;
            default: {
                const auto u = static_cast<unsigned char>(c);
                if (u < 0x20 || u == 0x7F) {
                    constexpr std::string_view kHex = "0123456789ABCDEF";
                    out += "\\u00";
                    out += kHex[u >> 4];
                    out += kHex[u & 0xF];
                } else {
                    out += c;
                }
            }
        }
    }
    out += '"';
    return out;
}

/// Shortest text that reads back as the same double, and as a TOML float rather than an integer.
std::string format_double(double v) {
    if (std::isnan(v)) {
        return "nan";
    }
    if (std::isinf(v)) {
        return v < 0 ? "-inf" : "inf";
    }
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    std::string out(buf, res.ptr);
    if (out.find_first_of(".e") == std::string::npos) {
        out += ".0";
    }
    return out;
}

std::string format_value(const FieldValue& value) {
    struct Printer {
        std::string operator()(const bool* v) const { return *v ? "true" : "false"; }
        std::string operator()(const std::int64_t* v) const { return std::to_string(*v); }
        std::string operator()(const double* v) const { return format_double(*v); }
        std::string operator()(const std::string* v) const { return quote_toml(*v); }
        std::string operator()(const std::vector<std::string>* v) const {
            std::string out = "[";
            for (std::size_t i = 0; i < v->size(); ++i) {
                if (i > 0) {
                    out += ", ";
                }
                out += quote_toml((*v)[i]);
            }
            return out + "]";
        }
    };
    return std::visit(Printer{}, value);
}

bool values_equal(const FieldValue& a, const FieldValue& b) {
    if (a.index() != b.index()) {
        return false;
    }
    return std::visit([&b](auto pa) { return *pa == *std::get<decltype(pa)>(b); }, a);
}

std::string_view describe(toml::node_type type) {
    switch (type) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

/// "file:line:col: " for a region toml++ knows, else "".
std::string position(const toml::source_region& region, std::string_view fallback_name) {
    if (!region.begin) {
        return {};
    }
    std::string name = region.path ? *region.path : std::string(fallback_name);
    return name + ":" + std::to_string(region.begin.line) + ":" +
           std::to_string(region.begin.column) + ": ";
}

std::string range_text(const FieldInfo& info) {
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    if (info.min != kMin && info.max != kMax) {
        return "between " + std::to_string(info.min) + " and " + std::to_string(info.max);
    }
    if (info.min != kMin) {
        return "at least " + std::to_string(info.min);
    }
    if (info.max != kMax) {
        return "at most " + std::to_string(info.max);
    }
    return {};
}

std::string choices_text(const FieldInfo& info) {
    std::string out;
    for (std::size_t i = 0; i < info.choices.size(); ++i) {
        if (i > 0) {
            out += ", ";
        }
        out += info.choices[i];
    }
    return out;
}

void append_comment(std::string& out, std::string_view text) {
    // Greedy word wrap, so that `hearth config default` stays readable in a terminal.
    std::string line = "#";
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t end = std::min(text.find(' ', pos), text.size());
        const std::string_view word = text.substr(pos, end - pos);
        pos = end + 1;
        if (word.empty()) {
            continue;
        }
        if (line.size() > 1 && line.size() + 1 + word.size() > kCommentWidth) {
            out += line;
            out += '\n';
            line = "#";
        }
        line += ' ';
        line += word;
    }
    out += line;
    out += '\n';
}

// ---------------------------------------------------------------------------------------------
// Assigning a TOML value to a field.

/// Why a value was refused, and where in the file (an array element, not the whole array).
struct AssignError {
    std::string message;  // "path: message"; empty when the value was taken
    const toml::node* at = nullptr;
};

/// Sets the field from `node`, or says why not; the field is unchanged then.
AssignError assign(const Field& field, const toml::node& node, const std::string& path) {
    const auto mismatch = [&](std::string_view expected) {
        return AssignError{path + ": expected " + std::string(expected) + ", got " +
                               std::string(describe(node.type())),
                           &node};
    };
    const auto refuse = [&node](std::string message) {
        return AssignError{std::move(message), &node};
    };
    struct Assigner {
        const Field& field;
        const toml::node& node;
        const std::string& path;
        const decltype(mismatch)& wrong_type;
        const decltype(refuse)& fail;

        AssignError operator()(bool* target) const {
            const auto* v = node.as_boolean();
            if (v == nullptr) {
                return wrong_type("a boolean");
            }
            *target = v->get();
            return {};
        }
        AssignError operator()(std::int64_t* target) const {
            const auto* v = node.as_integer();
            if (v == nullptr) {
                return wrong_type("an integer");
            }
            const std::int64_t value = v->get();
            if (value < field.info.min || value > field.info.max) {
                return fail(path + ": must be " + range_text(field.info) + ", got " +
                            std::to_string(value));
            }
            *target = value;
            return {};
        }
        AssignError operator()(double* target) const {
            double value = 0;
            if (const auto* i = node.as_integer()) {
                value = static_cast<double>(i->get());
            } else if (const auto* f = node.as_floating_point()) {
                value = f->get();
            } else {
                return wrong_type("a number");
            }
            // nan and inf pass every later "< x" check by accident; no setting means them.
            if (!std::isfinite(value)) {
                return fail(path + ": must be a finite number, got " + format_double(value));
            }
            *target = value;
            return {};
        }
        AssignError operator()(std::string* target) const {
            const auto* v = node.as_string();
            if (v == nullptr) {
                return wrong_type("a string");
            }
            const std::string& value = v->get();
            const auto& choices = field.info.choices;
            if (!choices.empty() &&
                std::find(choices.begin(), choices.end(), value) == choices.end()) {
                return fail(path + ": must be one of " + choices_text(field.info) + "; got " +
                            quote_toml(value));
            }
            *target = value;
            return {};
        }
        AssignError operator()(std::vector<std::string>* target) const {
            const auto* array = node.as_array();
            if (array == nullptr) {
                return wrong_type("an array of strings");
            }
            std::vector<std::string> values;
            values.reserve(array->size());
            for (std::size_t i = 0; i < array->size(); ++i) {
                const toml::node& element = (*array)[i];
                const auto* s = element.as_string();
                if (s == nullptr) {
                    return AssignError{path + "[" + std::to_string(i) +
                                           "]: expected a string, got " +
                                           std::string(describe(element.type())),
                                       &element};
                }
                values.push_back(s->get());
            }
            *target = std::move(values);
            return {};
        }
    };
    return std::visit(Assigner{field, node, path, mismatch, refuse}, field.value);
}

// ---------------------------------------------------------------------------------------------
// One load: the parsed sections, the errors, and where each key's value came from.

struct SectionState {
    const ConfigSchema::SectionOps* ops;
    std::shared_ptr<void> instance;
    std::vector<Field> fields;

    const Field* find(std::string_view key) const {
        for (const Field& f : fields) {
            if (f.key == key) {
                return &f;
            }
        }
        return nullptr;
    }
};

class Loader {
public:
    Loader(const SectionList& sections, std::string_view source_name)
        : source_name_(source_name.empty() ? "<config>" : source_name) {
        for (const auto& ops : sections) {
            SectionState state{ops.get(), ops->make(), {}};
            state.fields = ops->fields(state.instance.get());
            sections_.push_back(std::move(state));
        }
    }

    void apply_text(std::string_view text) {
        toml::table root;
        try {
            root = toml::parse(text, source_name_);
        } catch (const toml::parse_error& e) {
            errors_.push_back(position(e.source(), source_name_) + std::string(e.description()));
            return;
        }
        walk(root, "");
        // toml++ keeps a table's keys sorted by name; report in the order of the file instead.
        std::stable_sort(file_errors_.begin(), file_errors_.end(),
                         [](const FileError& a, const FileError& b) { return a.at < b.at; });
        for (FileError& e : file_errors_) {
            errors_.push_back(std::move(e.text));
        }
        file_errors_.clear();
    }

    void apply_environment(const Environment& env) {
        for (const auto& [name, value] : env) {
            apply_variable(name, value);
        }
    }

    void validate() {
        for (const SectionState& s : sections_) {
            ConfigErrors found;
            s.ops->validate(s.instance.get(), found);
            for (std::string& e : found) {
                // A section's checks know the key, not the file: add where the value came from.
                const auto colon = e.find(": ");
                const auto origin = colon == std::string::npos
                                        ? origins_.end()
                                        : origins_.find(std::string_view(e).substr(0, colon));
                errors_.push_back(origin == origins_.end() ? std::move(e) : origin->second + e);
            }
        }
    }

    ConfigErrors& errors() { return errors_; }
    std::vector<SectionState>& sections() { return sections_; }

private:
    SectionState* find_section(std::string_view name) {
        for (SectionState& s : sections_) {
            if (s.ops->name() == name) {
                return &s;
            }
        }
        return nullptr;
    }

    /// True when `path` is a section or a table on the way to one ("auth" for "auth.better_auth").
    bool leads_to_section(std::string_view path) const {
        return std::any_of(sections_.begin(), sections_.end(), [path](const SectionState& s) {
            const std::string_view name = s.ops->name();
            return name == path || (name.size() > path.size() && name.starts_with(path) &&
                                    name[path.size()] == '.');
        });
    }

    void walk(const toml::table& table, const std::string& path) {
        SectionState* section = find_section(path);
        for (const auto& [key, node] : table) {
            const std::string child = join_path(path, key.str());
            const std::string where = position(key.source(), source_name_);
            if (section != nullptr) {
                if (const Field* field = section->find(key.str())) {
                    AssignError error = assign(*field, node, child);
                    if (error.message.empty()) {
                        origins_[child] = where;
                    } else {
                        file_error(error.at->source(), std::move(error.message));
                    }
                    continue;
                }
            }
            // A quoted key with a dot is one key, never two levels of nesting.
            if (key.str().find('.') == std::string_view::npos && leads_to_section(child)) {
                if (const auto* sub = node.as_table()) {
                    walk(*sub, child);
                } else {
                    file_error(key.source(), child + ": expected a table, got " +
                                                 std::string(describe(node.type())));
                }
                continue;
            }
            const bool is_section_like = section == nullptr && node.is_table();
            file_error(key.source(),
                       child + (is_section_like ? ": unknown section" : ": unknown key"));
        }
    }

    void apply_variable(const std::string& name, const std::string& value) {
        if (!std::string_view(name).starts_with(kEnvPrefix)) {
            return;
        }
        // Only HEARTH_<SECTION>__<KEY> is config; other HEARTH_ variables (HEARTH_SOURCE_DIR,
        // HEARTH_TEST_BINARY_DIR, ...) belong to scripts and tests and have no double underscore.
        const std::string_view rest = std::string_view(name).substr(kEnvPrefix.size());
        const auto sep = rest.find(kEnvSeparator);
        if (sep == std::string_view::npos) {
            return;
        }
        const std::string_view section_part = rest.substr(0, sep);
        const std::string_view key_part = rest.substr(sep + kEnvSeparator.size());
        const std::string where = name + ": ";

        SectionState* section = nullptr;
        for (SectionState& s : sections_) {
            if (env_section_name(s.ops->name()) == section_part) {
                section = &s;
                break;
            }
        }
        if (section == nullptr) {
            errors_.push_back(where + "unknown section " + to_lower(section_part));
            return;
        }
        const Field* field = nullptr;
        for (const Field& f : section->fields) {
            if (to_upper(f.key) == key_part) {
                field = &f;
                break;
            }
        }
        const std::string path = join_path(section->ops->name(), to_lower(key_part));
        if (field == nullptr) {
            errors_.push_back(where + "unknown key " + path);
            return;
        }

        // The value is TOML when it parses as one ("8080", "true", '["a", "b"]'), else a string,
        // so that HEARTH_HTTP__LISTEN=0.0.0.0:9000 needs no quotes.
        std::optional<toml::table> parsed;
        try {
            parsed = toml::parse("v = " + value);
        } catch (const toml::parse_error&) {
            parsed.reset();
        }
        const toml::node* node = nullptr;
        if (parsed && parsed->size() == 1) {
            node = parsed->get("v");
        }
        // A string key takes the text as written when it reads as another TOML type: a token
        // like 12345 or a name like "true" is still the string the operator typed.
        if (node != nullptr && std::holds_alternative<std::string*>(field->value) &&
            !node->is_string()) {
            node = nullptr;
        }
        const toml::value<std::string> verbatim(value);
        if (node == nullptr) {
            node = &verbatim;
        }
        AssignError error = assign(*field, *node, path);
        if (error.message.empty()) {
            origins_[path] = where;
        } else {
            errors_.push_back(where + error.message);
        }
    }

    void file_error(const toml::source_region& region, std::string message) {
        file_errors_.push_back(FileError{{region.begin.line, region.begin.column},
                                         position(region, source_name_) + std::move(message)});
    }

    struct FileError {
        std::pair<toml::source_index, toml::source_index> at;  // line, column
        std::string text;
    };

    std::string source_name_;
    std::vector<SectionState> sections_;
    std::vector<FileError> file_errors_;
    ConfigErrors errors_;
    std::map<std::string, std::string, std::less<>> origins_;  // "section.key" -> "where: "
};

// ---------------------------------------------------------------------------------------------
// Listen addresses.

bool is_ipv4(std::string_view host) {
    const std::string s(host);
    in_addr addr{};
    return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

bool is_ipv6(std::string_view host) {
    const std::string s(host);
    in6_addr addr{};
    return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

/// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
bool is_hostname(std::string_view host) {
    if (host.empty() || host.size() > 253) {
        return false;
    }
    std::size_t pos = 0;
    while (pos <= host.size()) {
        const std::size_t end = std::min(host.find('.', pos), host.size());
        const std::string_view label = host.substr(pos, end - pos);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
            return false;
        }
        for (char c : label) {
            const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-';
            if (!ok) {
                return false;
            }
        }
        pos = end + 1;
    }
    return true;
}

void check_listen(std::string_view path, const std::string& value, ConfigErrors& errors) {
    std::string host;
    std::uint16_t port = 0;
    if (!parse_host_port(value, host, port)) {
        errors.push_back(std::string(path) +
                         ": expected host:port with a host name, an IPv4 address or an [IPv6] "
                         "address and a port 0..65535; got " +
                         quote_toml(value));
    }
}

void check_tls_pair(std::string_view section, const std::string& cert, const std::string& key,
                    ConfigErrors& errors) {
    if (!cert.empty() && key.empty()) {
        errors.push_back(std::string(section) + ".tls_key_file: must be set when tls_cert_file is");
    } else if (cert.empty() && !key.empty()) {
        errors.push_back(std::string(section) + ".tls_cert_file: must be set when tls_key_file is");
    }
}

}  // namespace

bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port) {
    std::string_view host_part;
    std::string_view port_part;
    bool bracketed = false;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return false;
        }
        host_part = text.substr(1, close - 1);
        port_part = text.substr(close + 2);
        bracketed = true;
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return false;
        }
        host_part = text.substr(0, colon);
        port_part = text.substr(colon + 1);
        // An IPv6 address without brackets is ambiguous: which colon starts the port?
        if (host_part.find(':') != std::string_view::npos) {
            return false;
        }
    }

    if (port_part.empty() || port_part.size() > 5 ||
        !std::all_of(port_part.begin(), port_part.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    unsigned value = 0;
    std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
    if (value > 65535) {
        return false;
    }

    bool host_ok = false;
    if (bracketed) {
        host_ok = is_ipv6(host_part);
    } else if (!host_part.empty() &&
               host_part.find_first_not_of("0123456789.") == std::string_view::npos) {
        // All digits and dots can only be an IPv4 address; "300.1.1.1" is not a host name.
        host_ok = is_ipv4(host_part);
    } else {
        host_ok = is_hostname(host_part);
    }
    if (!host_ok) {
        return false;
    }
    host.assign(host_part);
    port = static_cast<std::uint16_t>(value);
    return true;
}

// ---------------------------------------------------------------------------------------------
// ConfigSchema.

ConfigSchema::ConfigSchema() = default;
ConfigSchema::~ConfigSchema() = default;
ConfigSchema::ConfigSchema(ConfigSchema&&) noexcept = default;
ConfigSchema& ConfigSchema::operator=(ConfigSchema&&) noexcept = default;

void ConfigSchema::add_section(std::unique_ptr<SectionOps> ops) {
    // Mistakes here are programming errors found at startup, before any file is read.
    const std::string name(ops->name());
    const auto fail = [&name](const std::string& why) {
        throw std::logic_error("config section \"" + name + "\": " + why);
    };
    std::size_t pos = 0;
    while (pos <= name.size()) {
        const std::size_t end = std::min(name.find('.', pos), name.size());
        if (!is_bare_key(std::string_view(name).substr(pos, end - pos))) {
            fail("each dot-separated part must be a bare TOML key");
        }
        pos = end + 1;
    }
    const auto instance = ops->make();
    const auto fields = ops->fields(instance.get());
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (!is_bare_key(fields[i].key)) {
            fail("key \"" + std::string(fields[i].key) + "\" is not a bare TOML key");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (fields[j].key == fields[i].key) {
                fail("key \"" + std::string(fields[i].key) + "\" is listed twice");
            }
        }
    }
    for (const auto& other : sections_) {
        const std::string_view other_name = other->name();
        if (other_name == name) {
            fail("registered twice");
        }
        if (env_section_name(other_name) == env_section_name(name)) {
            fail("its environment variables would clash with section \"" + std::string(other_name) +
                 "\"");
        }
        // A subsection must not shadow a key of its parent ("http.tls" and http's key "tls").
        const auto shadows = [](const SectionOps& parent, std::string_view child) {
            const std::string_view p = parent.name();
            if (child.size() <= p.size() + 1 || !child.starts_with(p) || child[p.size()] != '.') {
                return false;
            }
            const std::string_view first =
                child.substr(p.size() + 1, child.find('.', p.size() + 1) - (p.size() + 1));
            const auto inst = parent.make();
            for (const Field& f : parent.fields(inst.get())) {
                if (f.key == first) {
                    return true;
                }
            }
            return false;
        };
        if (shadows(*other, name) || shadows(*ops, other_name)) {
            fail("a section name and a key of its parent collide (with \"" +
                 std::string(other_name) + "\")");
        }
    }
    sections_.push_back(std::move(ops));
}

ConfigSchema::LoadResult ConfigSchema::load(const std::filesystem::path& file,
                                            const Environment& env) const {
    try {
        if (file.empty()) {
            return load_string("", "", env);
        }
        const std::string name = file.string();
        std::error_code ec;
        if (std::filesystem::is_directory(file, ec)) {
            return {nullptr, {name + ": cannot read: is a directory"}};
        }
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            const int err = errno;
            return {nullptr, {name + ": cannot read: " + std::generic_category().message(err)}};
        }
        std::ostringstream text;
        text << in.rdbuf();
        if (in.bad()) {
            return {nullptr, {name + ": cannot read"}};
        }
        LoadResult result = load_string(text.str(), name, env);
        if (result.config) {
            // load_string made the only reference; it is safe to fill in before anyone shares it.
            auto config = std::const_pointer_cast<Config>(result.config);
            config->source_ = file;
        }
        return result;
    } catch (const std::exception& e) {
        return {nullptr, {file.string() + ": " + e.what()}};
    }
}

ConfigSchema::LoadResult ConfigSchema::load_string(std::string_view toml,
                                                   std::string_view source_name,
                                                   const Environment& env) const {
    try {
        Loader loader(sections_, source_name);
        loader.apply_text(toml);
        loader.apply_environment(env);
        loader.validate();
        if (!loader.errors().empty()) {
            return {nullptr, std::move(loader.errors())};
        }
        auto config = std::make_shared<Config>();
        for (SectionState& s : loader.sections()) {
            config->sections_.emplace(std::string(s.ops->name()),
                                      Config::Entry{std::move(s.instance), &s.ops->type()});
        }
        return {std::move(config), {}};
    } catch (const std::exception& e) {
        // Only allocation failures can get here; still, load() promises not to throw.
        return {nullptr, {std::string(source_name) + ": " + e.what()}};
    }
}

std::string ConfigSchema::default_toml() const {
    std::string out;
    append_comment(out, "Hearth configuration (TOML), as printed by `hearth config default`.");
    out += "#\n";
    append_comment(out,
                   "Every key and every section is optional: what is left out keeps the default "
                   "shown here, so an empty file (or no file) is a working configuration. "
                   "Unknown keys and sections are errors. `hearth config check FILE` checks a "
                   "file without starting the server.");
    out += "#\n";
    append_comment(out,
                   "Environment variables override the file: HEARTH_<SECTION>__<KEY>, the section "
                   "name upper-cased with dots as underscores, two underscores, then the key "
                   "upper-cased. The value is read as a TOML value, or as a plain string when it "
                   "is not one. Examples: HEARTH_HTTP__LISTEN=0.0.0.0:8080, "
                   "HEARTH_SERVER__IO_THREADS=4.");
    for (const auto& ops : sections_) {
        const auto instance = ops->make();
        out += "\n";
        append_comment(out, ops->description());
        out += "[";
        out += ops->name();
        out += "]\n";
        bool first = true;
        for (const Field& f : ops->fields(instance.get())) {
            if (!first) {
                out += "\n";
            }
            first = false;
            const std::string value = format_value(f.value);
            std::string comment(f.info.help);
            if (const std::string range = range_text(f.info); !range.empty()) {
                comment += " Must be " + range + ".";
            }
            if (!f.info.choices.empty()) {
                comment += " One of: " + choices_text(f.info) + ".";
            }
            comment += " Default: " + value + ".";
            if (f.info.restart) {
                comment += " Changing it needs a restart.";
            }
            append_comment(out, comment);
            out += f.key;
            out += " = ";
            out += value;
            out += "\n";
        }
    }
    return out;
}

std::vector<std::string> ConfigSchema::restart_required(const Config& running,
                                                        const Config& next) const {
    std::vector<std::string> out;
    for (const auto& ops : sections_) {
        const auto a = running.sections_.find(ops->name());
        const auto b = next.sections_.find(ops->name());
        if (a == running.sections_.end() || b == next.sections_.end()) {
            continue;
        }
        // Copies, because listing keys needs a mutable instance and the configs are shared.
        if (*a->second.type != ops->type() || *b->second.type != ops->type()) {
            continue;
        }
        const auto copy_a = ops->copy(a->second.value.get());
        const auto copy_b = ops->copy(b->second.value.get());
        const auto fields_a = ops->fields(copy_a.get());
        const auto fields_b = ops->fields(copy_b.get());
        for (std::size_t i = 0; i < fields_a.size() && i < fields_b.size(); ++i) {
            if (fields_a[i].info.restart && !values_equal(fields_a[i].value, fields_b[i].value)) {
                out.push_back(join_path(ops->name(), fields_a[i].key));
            }
        }
    }
    return out;
}

Environment ConfigSchema::process_environment() {
    Environment env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view entry(*e);
        if (!entry.starts_with(kEnvPrefix)) {
            continue;
        }
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos) {
            continue;
        }
        env.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
    }
    return env;
}

std::vector<std::string> ConfigSchema::keys() const {
    std::vector<std::string> out;
    for (const auto& ops : sections_) {
        const auto instance = ops->make();
        for (const Field& f : ops->fields(instance.get())) {
            out.push_back(join_path(ops->name(), f.key));
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// The core's sections.

void ServerConfig::validate(ConfigErrors& errors) const {
    if (data_dir.empty()) {
        errors.emplace_back("server.data_dir: must not be empty");
    }
}

void check_origins(std::string_view key, const std::vector<std::string>& origins,
                   ConfigErrors& errors) {
    for (const auto& o : origins) {
        const auto sep = o.find("://");
        const bool ok = (o.starts_with("http://") || o.starts_with("https://")) &&
                        sep + 3 < o.size() &&
                        o.find_first_of("/?#*@ ", sep + 3) == std::string::npos;
        if (!ok) {
            errors.push_back(std::string(key) + ": \"" + o +
                             "\" is not an origin (http:// or https://, a host and an optional "
                             "port, nothing after it)");
        }
    }
}

void HttpConfig::validate(ConfigErrors& errors) const {
    check_listen("http.listen", listen, errors);
    check_tls_pair("http", tls_cert_file, tls_key_file, errors);
    check_origins("http.operator_origins", operator_origins, errors);
}

void check_message_rate(std::string_view section, double max_messages_per_s, double message_burst,
                        ConfigErrors& errors) {
    const std::string prefix(section);
    if (max_messages_per_s < 0) {
        errors.push_back(prefix +
                         ".max_messages_per_s: must be at least 0 (0 means unlimited), got " +
                         format_double(max_messages_per_s));
    }
    if (message_burst < 0) {
        errors.push_back(prefix + ".message_burst: must be at least 0, got " +
                         format_double(message_burst));
    } else if (max_messages_per_s > 0 && message_burst < 1) {
        // With a rate but a burst under one message, not even the first message would pass.
        errors.push_back(prefix +
                         ".message_burst: must be at least 1 when max_messages_per_s is set, got " +
                         format_double(message_burst));
    }
}

void WebSocketConfig::validate(ConfigErrors& errors) const {
    check_message_rate(kName, max_messages_per_s, message_burst, errors);
    if (ping_interval_s > 0 && ping_interval_s >= idle_timeout_s) {
        // The pong is what keeps a quiet client alive; pinging after the idle limit is too late.
        errors.push_back("websocket.ping_interval_s: must be less than idle_timeout_s (" +
                         std::to_string(idle_timeout_s) + "), got " +
                         std::to_string(ping_interval_s));
    }
}

}  // namespace hearth::core
