#include "frontends/homestead/codec.hpp"
#include <array>
#include <cstdint>
#include <vector>

#include "util/strings.hpp"

namespace hearth::frontends::homestead {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Go's encoding/json refuses input nested deeper than this; so does Hearth, with the same number,
// so that a mod's deeply nested `meta` is accepted or refused by both alike.
constexpr std::size_t kMaxDepth = 10'000;

// ---- UTF-8 ----------------------------------------------------------------------------------

/// Length of the well-formed UTF-8 sequence at the start of `s` (1..4), or 0 when its first byte
/// does not start one: Go's utf8.DecodeRune rules (no overlongs, no surrogates, nothing above
/// U+10FFFF), under which an invalid sequence is replaced one byte at a time.
std::size_t utf8_sequence(std::string_view s) noexcept {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char c = b(0);
    if (c < 0x80) {
        return 1;
    }
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c == 0xE0) {
        n = 3;
        lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        n = 3;
    } else if (c == 0xED) {
        n = 3;
        hi = 0x9F;
    } else if (c == 0xF0) {
        n = 4;
        lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        n = 4;
    } else if (c == 0xF4) {
        n = 4;
        hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() < n || b(1) < lo || b(1) > hi) {
        return 0;
    }
    for (std::size_t i = 2; i < n; ++i) {
        if (b(i) < 0x80 || b(i) > 0xBF) {
            return 0;
        }
    }
    return n;
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

constexpr std::uint32_t kReplacement = 0xFFFD;

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// The code unit of `\uXXXX` at the start of `s`, or -1.
int read_u4(std::string_view s) noexcept {
    if (s.size() < 6 || s[0] != '\\' || s[1] != 'u') {
        return -1;
    }
    int v = 0;
    for (std::size_t i = 2; i < 6; ++i) {
        const int h = hex_value(s[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

// ---- reading ----------------------------------------------------------------------------------

enum class Type : std::uint8_t { kNull, kFalse, kTrue, kNumber, kString, kArray, kObject };

/// One value of a parsed document. Only what the protocol looks at is recorded: the root and the
/// members of objects down to depth 2 (message.author.id, handshake.data.server_id); deeper values
/// and array elements are validated and skipped, so memory stays proportional to those members.
struct Node {
    Type type = Type::kNull;
    std::uint32_t begin = 0;      // first byte of the value
    std::uint32_t end = 0;        // one past its last byte
    std::uint32_t key_begin = 0;  // an object member's key, between its quotes
    std::uint32_t key_end = 0;
    std::int32_t next = -1;  // next recorded member of the same object
    std::int32_t first = -1;
    std::int32_t last = -1;
};

/// A JSON text parsed the way Go's decoder reads it. Runs on: the caller's thread.
class Document {
public:
    /// False unless `text` is exactly one JSON value, with optional whitespace around it.
    bool parse(std::string_view text);

    const Node& node(int i) const { return nodes_[static_cast<std::size_t>(i)]; }
    std::string_view raw(int i) const {
        return text_.substr(node(i).begin, node(i).end - node(i).begin);
    }
    /// The member of object `object` that Go would decode into the struct field `name`: keys
    /// match ignoring ASCII case, and the last match wins. -1 when there is none.
    int member(int object, std::string_view name) const;
    /// A string value, unescaped as Go does (invalid UTF-8 and lone surrogates become U+FFFD).
    std::string string_value(int i) const;

private:
    struct Frame {
        std::int32_t node;  // the container's recorded node, or -1
        bool object;
    };

    bool scan_string();  // at '"'; leaves pos_ after the closing quote
    bool scan_number();
    bool scan_literal(std::string_view word);
    void skip_space() noexcept;
    std::int32_t record(const std::vector<Frame>& stack, Type type, std::uint32_t key_begin,
                        std::uint32_t key_end);

    std::string_view text_;
    std::size_t pos_ = 0;
    std::vector<Node> nodes_;
};

void Document::skip_space() noexcept {
    while (pos_ < text_.size()) {
        const char c = text_[pos_];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return;
        }
        ++pos_;
    }
}

bool Document::scan_string() {
    ++pos_;  // the opening quote
    while (pos_ < text_.size()) {
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c == '"') {
            ++pos_;
            return true;
        }
        if (c < 0x20) {
            return false;  // control characters must be escaped
        }
        if (c != '\\') {
            ++pos_;
            continue;
        }
        if (pos_ + 1 >= text_.size()) {
            return false;
        }
        const char e = text_[pos_ + 1];
        if (e == 'u') {
            if (read_u4(text_.substr(pos_)) < 0) {
                return false;
            }
            pos_ += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
            pos_ += 2;
        } else {
            return false;
        }
    }
    return false;
}

bool Document::scan_number() {
    const auto digit = [&] {
        return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9';
    };
    if (text_[pos_] == '-') {
        ++pos_;
    }
    if (!digit()) {
        return false;
    }
    if (text_[pos_] == '0') {
        ++pos_;
    } else {
        while (digit()) {
            ++pos_;
        }
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        if (!digit()) {
            return false;
        }
        while (digit()) {
            ++pos_;
        }
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
        ++pos_;
        if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
            ++pos_;
        }
        if (!digit()) {
            return false;
        }
        while (digit()) {
            ++pos_;
        }
    }
    return true;
}

bool Document::scan_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) {
        return false;
    }
    pos_ += word.size();
    return true;
}

std::int32_t Document::record(const std::vector<Frame>& stack, Type type, std::uint32_t key_begin,
                              std::uint32_t key_end) {
    // Recorded: the root (depth 0) and object members at depth 1 and 2 whose object is recorded.
    std::int32_t parent = -1;
    if (!stack.empty()) {
        const Frame& top = stack.back();
        if (!top.object || top.node < 0 || stack.size() > 2) {
            return -1;
        }
        parent = top.node;
    }
    Node n;
    n.type = type;
    n.begin = static_cast<std::uint32_t>(pos_);
    n.key_begin = key_begin;
    n.key_end = key_end;
    const auto index = static_cast<std::int32_t>(nodes_.size());
    nodes_.push_back(n);
    if (parent >= 0) {
        Node& p = nodes_[static_cast<std::size_t>(parent)];
        if (p.last < 0) {
            p.first = index;
        } else {
            nodes_[static_cast<std::size_t>(p.last)].next = index;
        }
        p.last = index;
    }
    return index;
}

bool Document::parse(std::string_view text) {
    if (text.size() >= UINT32_MAX) {
        return false;
    }
    text_ = text;
    pos_ = 0;
    nodes_.clear();
    std::vector<Frame> stack;
    std::uint32_t key_begin = 0;
    std::uint32_t key_end = 0;
    skip_space();
    for (;;) {
        // A value starts here (after a key when the container is an object).
        if (pos_ >= text_.size()) {
            return false;
        }
        const char c = text_[pos_];
        Type type = Type::kNull;
        switch (c) {
            case '{':
                type = Type::kObject;
                break;
            case '[':
                type = Type::kArray;
                break;
            case '"':
                type = Type::kString;
                break;
            case 't':
                type = Type::kTrue;
                break;
            case 'f':
                type = Type::kFalse;
                break;
            case 'n':
                type = Type::kNull;
                break;
            default:
                if (c != '-' && (c < '0' || c > '9')) {
                    return false;
                }
                type = Type::kNumber;
        }
        const std::int32_t index = record(stack, type, key_begin, key_end);
        bool complete = true;  // a scalar, or an empty container
        if (type == Type::kObject || type == Type::kArray) {
            if (stack.size() >= kMaxDepth) {
                return false;
            }
            ++pos_;
            skip_space();
            const char close = type == Type::kObject ? '}' : ']';
            if (pos_ < text_.size() && text_[pos_] == close) {
                ++pos_;
            } else {
                stack.push_back(Frame{index, type == Type::kObject});
                complete = false;
            }
        } else {
            bool ok = false;
            switch (type) {
                case Type::kString:
                    ok = scan_string();
                    break;
                case Type::kTrue:
                    ok = scan_literal("true");
                    break;
                case Type::kFalse:
                    ok = scan_literal("false");
                    break;
                case Type::kNull:
                    ok = scan_literal("null");
                    break;
                default:
                    ok = scan_number();
            }
            if (!ok) {
                return false;
            }
        }
        if (complete && index >= 0) {
            nodes_[static_cast<std::size_t>(index)].end = static_cast<std::uint32_t>(pos_);
        }
        // After a value: close containers that end here, then expect the next member or element.
        bool need_value = !complete;
        while (!need_value) {
            skip_space();
            if (stack.empty()) {
                return pos_ == text_.size();
            }
            if (pos_ >= text_.size()) {
                return false;
            }
            Frame& top = stack.back();
            const char d = text_[pos_];
            if (d == ',') {
                ++pos_;
                skip_space();
                need_value = true;
            } else if (d == (top.object ? '}' : ']')) {
                ++pos_;
                if (top.node >= 0) {
                    nodes_[static_cast<std::size_t>(top.node)].end =
                        static_cast<std::uint32_t>(pos_);
                }
                stack.pop_back();
            } else {
                return false;
            }
        }
        if (!stack.empty() && stack.back().object) {
            // A member: "key" : value.
            if (pos_ >= text_.size() || text_[pos_] != '"') {
                return false;
            }
            key_begin = static_cast<std::uint32_t>(pos_ + 1);
            if (!scan_string()) {
                return false;
            }
            key_end = static_cast<std::uint32_t>(pos_ - 1);
            skip_space();
            if (pos_ >= text_.size() || text_[pos_] != ':') {
                return false;
            }
            ++pos_;
            skip_space();
        }
    }
}

std::string unescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\\') {
            const char e = s[i + 1];  // the document was validated: an escape is complete
            switch (e) {
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    auto cp = static_cast<std::uint32_t>(read_u4(s.substr(i)));
                    i += 6;
                    if (cp >= 0xD800 && cp < 0xE000) {
                        // Go pairs a high surrogate with a following \u low surrogate; anything
                        // else is U+FFFD (and a following \u is read on its own).
                        const int low = read_u4(s.substr(i));
                        if (cp < 0xDC00 && low >= 0xDC00 && low < 0xE000) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) +
                                 (static_cast<std::uint32_t>(low) - 0xDC00);
                            i += 6;
                        } else {
                            cp = kReplacement;
                        }
                    }
                    append_utf8(out, cp);
                    continue;
                }
                default:
                    out += e;  // " \ /
            }
            i += 2;
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence(s.substr(i));
        if (n == 0) {
            append_utf8(out, kReplacement);
            ++i;
        } else {
            out.append(s.substr(i, n));
            i += n;
        }
    }
    return out;
}

int Document::member(int object, std::string_view name) const {
    int found = -1;
    for (std::int32_t i = node(object).first; i >= 0; i = node(i).next) {
        const Node& n = node(i);
        const std::string_view key = text_.substr(n.key_begin, n.key_end - n.key_begin);
        const bool match = key.find('\\') == std::string_view::npos
                               ? util::iequals_ascii(key, name)
                               : util::iequals_ascii(unescape(key), name);
        if (match) {
            found = i;
        }
    }
    return found;
}

std::string Document::string_value(int i) const {
    const Node& n = node(i);
    return unescape(text_.substr(n.begin + 1, n.end - n.begin - 2));
}

/// Reads a string member into `out` as Go decodes into a string field: absent and null leave it
/// empty; any other type is an error (false).
bool read_string(const Document& d, int object, std::string_view name, std::string& out) {
    out.clear();
    if (object < 0) {
        return true;
    }
    const int m = d.member(object, name);
    if (m < 0 || d.node(m).type == Type::kNull) {
        return true;
    }
    if (d.node(m).type != Type::kString) {
        return false;
    }
    out = d.string_value(m);
    return true;
}

/// Finds an object member as Go decodes into a struct field: absent and null give -1 (the zero
/// struct); any type other than an object is an error (false).
bool read_object(const Document& d, int object, std::string_view name, int& out) {
    out = -1;
    if (object < 0) {
        return true;
    }
    const int m = d.member(object, name);
    if (m < 0 || d.node(m).type == Type::kNull) {
        return true;
    }
    if (d.node(m).type != Type::kObject) {
        return false;
    }
    out = m;
    return true;
}

// ---- time -------------------------------------------------------------------------------------

bool is_leap(int y) noexcept {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in(int month, int year) noexcept {
    constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : kDays[month - 1];
}

void append_digits(std::string& out, long long v, int width) {
    std::array<char, 20> buf{};
    int n = 0;
    do {
        buf[static_cast<std::size_t>(n++)] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (int i = n; i < width; ++i) {
        out += '0';
    }
    while (n > 0) {
        out += buf[static_cast<std::size_t>(--n)];
    }
}

}  // namespace

std::string_view kind_name(Kind kind) noexcept {
    return kind == Kind::kMod ? "mod" : "bot";
}

std::variant<Handshake, HandshakeError> parse_handshake(std::string_view text) {
    Document d;
    if (!d.parse(text) || d.node(0).type != Type::kObject) {
        return HandshakeError::kMalformed;
    }
    std::string type;
    if (!read_string(d, 0, "type", type)) {
        return HandshakeError::kMalformed;
    }
    const int data = d.member(0, "data");
    if (data < 0) {
        return HandshakeError::kMalformed;
    }
    const bool data_ok = d.node(data).type == Type::kObject || d.node(data).type == Type::kNull;
    const int fields = d.node(data).type == Type::kObject ? data : -1;
    Handshake hs;
    if (type == "mod") {
        hs.kind = Kind::kMod;
        if (!data_ok || !read_string(d, fields, "server_id", hs.server_id) ||
            !read_string(d, fields, "channel_id", hs.channel_id) || hs.server_id.empty() ||
            hs.channel_id.empty()) {
            return HandshakeError::kMalformedMod;
        }
        return hs;
    }
    if (type == "bot") {
        hs.kind = Kind::kBot;
        if (!data_ok || !read_string(d, fields, "bot_id", hs.bot_id) || hs.bot_id.empty()) {
            return HandshakeError::kMalformedBot;
        }
        return hs;
    }
    return HandshakeError::kUnknown;
}

std::optional<Message> parse_message(const Handshake& handshake, std::string_view text) {
    Document d;
    if (!d.parse(text) || d.node(0).type != Type::kObject) {
        return std::nullopt;
    }
    Message m;
    std::string id;
    std::string destination_channel;
    int author = -1;
    int destination = -1;
    if (!read_string(d, 0, "msg_id", m.msg_id) || !read_string(d, 0, "id", id) ||
        !read_string(d, 0, "content", m.content) || !read_object(d, 0, "author", author) ||
        !read_string(d, author, "id", m.author_id) ||
        !read_string(d, author, "name", m.author_name) ||
        !read_object(d, 0, "destination", destination) ||
        !read_string(d, destination, "channel_id", destination_channel) ||
        !read_string(d, 0, "ts", m.ts)) {
        return std::nullopt;
    }
    const int meta = d.member(0, "meta");
    if (meta < 0 || d.node(meta).type == Type::kNull) {
        m.meta = "{}";
    } else if (d.node(meta).type == Type::kObject) {
        m.meta = compact_json(d.raw(meta));
    } else {
        return std::nullopt;
    }
    if (!m.ts.empty() && !valid_rfc3339(m.ts)) {
        return std::nullopt;
    }
    if (m.msg_id.empty() || id.empty() || m.author_id.empty() || m.content.empty()) {
        return std::nullopt;
    }
    if (handshake.kind == Kind::kMod) {
        if (destination_channel.empty() || id != handshake.server_id ||
            destination_channel != handshake.channel_id) {
            return std::nullopt;
        }
        m.channel_id = handshake.channel_id;
    } else {
        m.channel_id = std::move(id);
    }
    return m;
}

namespace {

/// Go's url.QueryUnescape; false on a malformed escape.
bool query_unescape(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out += ' ';
        } else if (c == '%') {
            if (i + 2 >= in.size()) {
                return false;
            }
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                return false;
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += c;
        }
    }
    return true;
}

}  // namespace

std::optional<std::string> query_value(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        if (pair.empty() || pair.find(';') != std::string_view::npos) {
            continue;
        }
        const auto eq = pair.find('=');
        std::string k;
        std::string v;
        if (!query_unescape(pair.substr(0, eq), k) ||
            !query_unescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1),
                            v)) {
            continue;
        }
        if (k == key) {
            return v;
        }
    }
    return std::nullopt;
}

// ---- writing ----------------------------------------------------------------------------------

void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    std::size_t start = 0;  // bytes [start, i) are copied as they are
    std::size_t i = 0;
    const auto flush = [&] { out.append(s.substr(start, i - start)); };
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                ++i;
                continue;
            }
            flush();
            switch (c) {
                case '"':
                case '\\':
                    out += '\\';
                    out += static_cast<char>(c);
                    break;
                case '\b':
                    out += "\\b";
                    break;
                case '\f':
                    out += "\\f";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                default:
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xF];
            }
            start = ++i;
            continue;
        }
        const std::size_t n = utf8_sequence(s.substr(i));
        if (n == 0) {
            flush();
            out += "\\ufffd";
            start = ++i;
            continue;
        }
        if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
            (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
            flush();
            out += "\\u202";
            out += kHex[static_cast<unsigned char>(s[i + 2]) & 0xF];
            i += 3;
            start = i;
            continue;
        }
        i += n;
    }
    flush();
    out += '"';
}

std::string compact_json(std::string_view json) {
    std::string out;
    out.reserve(json.size());
    bool in_string = false;
    std::size_t i = 0;
    while (i < json.size()) {
        const auto c = static_cast<unsigned char>(json[i]);
        if (!in_string) {
            if (c == '"') {
                in_string = true;
            }
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        if (c == '\\') {
            out.append(json.substr(i, 2));  // an escape is kept as sent (\u... digits follow)
            i += 2;
            continue;
        }
        if (c == '"') {
            in_string = false;
            out += '"';
            ++i;
            continue;
        }
        if (c == '<' || c == '>' || c == '&') {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence(json.substr(i));
        if (n == 0) {
            out += "\\ufffd";
            ++i;
        } else if (n == 3 && c == 0xE2 && static_cast<unsigned char>(json[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(json[i + 2]) & 0xFE) == 0xA8) {
            out += "\\u202";
            out += kHex[static_cast<unsigned char>(json[i + 2]) & 0xF];
            i += 3;
        } else {
            out.append(json.substr(i, n));
            i += n;
        }
    }
    return out;
}

std::string format_time(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ns = time_point_cast<nanoseconds>(t);
    const auto day = floor<days>(ns);
    const year_month_day ymd{day};
    const auto in_day = ns - day;
    const auto h = duration_cast<hours>(in_day);
    const auto mi = duration_cast<minutes>(in_day - h);
    const auto s = duration_cast<seconds>(in_day - h - mi);
    long long frac = (in_day - h - mi - s).count();

    std::string out;
    out.reserve(32);
    append_digits(out, static_cast<int>(ymd.year()), 4);
    out += '-';
    append_digits(out, static_cast<unsigned>(ymd.month()), 2);
    out += '-';
    append_digits(out, static_cast<unsigned>(ymd.day()), 2);
    out += 'T';
    append_digits(out, h.count(), 2);
    out += ':';
    append_digits(out, mi.count(), 2);
    out += ':';
    append_digits(out, s.count(), 2);
    if (frac > 0) {
        int width = 9;
        while (frac % 10 == 0) {
            frac /= 10;
            --width;
        }
        out += '.';
        append_digits(out, frac, width);
    }
    out += 'Z';
    return out;
}

bool valid_rfc3339(std::string_view s) noexcept {
    bool ok = true;
    const auto number = [&](std::size_t at, std::size_t len, int min, int max) {
        if (at + len > s.size()) {
            ok = false;
            return min;
        }
        int v = 0;
        for (std::size_t i = at; i < at + len; ++i) {
            if (s[i] < '0' || s[i] > '9') {
                ok = false;
                return min;
            }
            v = v * 10 + (s[i] - '0');
        }
        if (v < min || v > max) {
            ok = false;
        }
        return v;
    };
    constexpr std::size_t kDateTime = 19;  // 2006-01-02T15:04:05
    if (s.size() < kDateTime) {
        return false;
    }
    const int year = number(0, 4, 0, 9999);
    const int month = number(5, 2, 1, 12);
    if (!ok) {
        return false;
    }
    number(8, 2, 1, days_in(month, year));
    number(11, 2, 0, 23);
    number(14, 2, 0, 59);
    number(17, 2, 0, 59);
    if (!ok || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
        return false;
    }
    std::size_t i = kDateTime;
    if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        std::size_t j = i + 1;
        while (j < s.size() && s[j] >= '0' && s[j] <= '9') {
            ++j;
        }
        if (j == i + 1) {
            return false;
        }
        i = j;
    }
    const std::string_view zone = s.substr(i);
    if (zone == "Z") {
        return true;
    }
    if (zone.size() != 6 || (zone[0] != '+' && zone[0] != '-') || zone[3] != ':') {
        return false;
    }
    number(i + 1, 2, 0, 23);
    number(i + 4, 2, 0, 59);
    return ok;
}

std::string encode_error(int code, std::string_view message) {
    std::string out = "{\"code\":";
    out += std::to_string(code);
    out += ",\"message\":";
    append_json_string(out, message);
    out += "}\n";
    return out;
}

std::string encode_status(std::string_view status, Kind kind) {
    std::string out = "{\"status\":";
    append_json_string(out, status);
    out += ",\"type\":\"";
    out += kind_name(kind);
    out += "\"}\n";
    return out;
}

std::string encode_forward_prefix(Kind sender, const Message& m,
                                  std::chrono::system_clock::time_point received_at) {
    const std::string received = format_time(received_at);
    std::string out;
    out.reserve(128 + m.channel_id.size() + m.author_id.size() + m.author_name.size() +
                m.content.size() + m.meta.size() + m.ts.size());
    out += "{\"type\":\"";
    out += kind_name(sender);
    out += "\",\"channel_id\":";
    append_json_string(out, m.channel_id);
    out += ",\"author\":{\"id\":";
    append_json_string(out, m.author_id);
    out += ",\"name\":";
    append_json_string(out, m.author_name);
    out += "},\"content\":";
    append_json_string(out, m.content);
    out += ",\"meta\":";
    out += m.meta;
    out += ",\"ts\":";
    append_json_string(out, m.ts.empty() ? received : m.ts);
    out += ",\"received_at\":\"";
    out += received;
    out += '"';
    return out;
}

std::string finish_forward(std::string_view prefix, std::chrono::system_clock::time_point now) {
    std::string out;
    out.reserve(prefix.size() + 50);
    out += prefix;
    out += ",\"forwarded_at\":\"";
    out += format_time(now);
    out += "\"}\n";
    return out;
}

bool valid_forward_prefix(std::string_view body) noexcept {
    return (body.starts_with("{\"type\":\"mod\",\"channel_id\":") ||
            body.starts_with("{\"type\":\"bot\",\"channel_id\":")) &&
           body.ends_with("Z\"") && body.find(",\"received_at\":\"") != std::string_view::npos;
}

std::string_view handshake_error_frame(HandshakeError error) noexcept {
    switch (error) {
        case HandshakeError::kMalformedMod:
            return kMalformedModHandshake;
        case HandshakeError::kMalformedBot:
            return kMalformedBotHandshake;
        case HandshakeError::kUnknown:
            return kUnknownHandshake;
        case HandshakeError::kMalformed:
            break;
    }
    return kMalformedHandshake;
}

}  // namespace hearth::frontends::homestead
