#include "frontends/hunterpie/message.hpp"
#include <utility>

#include <boost/json/array.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <simdjson.h>

namespace hearth::frontends::hunterpie {

namespace json = boost::json;

namespace {

/// A boost::json::basic_parser handler that validates the whole document exactly as
/// json::parse does (the same parser, grammar and limits: its default options, depth 32, strict
/// UTF-8) but builds no value tree: it keeps only the top-level fields of `Fields`, so a 2 KB push
/// costs no allocation. A duplicate key counts with its last value, as in json::parse and in
/// JavaScript's JSON.parse.
class FieldsHandler {
public:
    static constexpr std::size_t max_object_size = json::object::max_size();
    static constexpr std::size_t max_array_size = json::array::max_size();
    static constexpr std::size_t max_key_size = json::string::max_size();
    static constexpr std::size_t max_string_size = json::string::max_size();

    explicit FieldsHandler(Fields& out) : out_(out) {}

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) {
        if (depth_ == 0) {
            out_.object = true;
        } else {
            take(Kind::kOther);
        }
        ++depth_;
        return true;
    }
    bool on_object_end(std::size_t, json::error_code&) {
        --depth_;
        return true;
    }
    bool on_array_begin(json::error_code&) {
        take(Kind::kOther);
        ++depth_;
        return true;
    }
    bool on_array_end(std::size_t, json::error_code&) {
        --depth_;
        return true;
    }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        if (depth_ == 1) {
            key_.append(s.data(), s.size());
        }
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code&) {
        if (depth_ == 1) {
            key_.append(s.data(), s.size());
            next_ = out_.named(key_);
            key_.clear();
        }
        return true;
    }
    bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
        if (!in_string_) {
            in_string_ = true;
            string_ = take(Kind::kString);
        }
        if (string_ != nullptr) {
            string_->append({s.data(), s.size()});
        }
        return true;
    }
    bool on_string(json::string_view s, std::size_t, json::error_code&) {
        if (!in_string_) {
            string_ = take(Kind::kString);
        }
        if (string_ != nullptr) {
            string_->append({s.data(), s.size()});
        }
        in_string_ = false;
        string_ = nullptr;
        return true;
    }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) {
        take(Kind::kOther);
        return true;
    }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) {
        take(Kind::kOther);
        return true;
    }
    bool on_double(double, json::string_view, json::error_code&) {
        take(Kind::kOther);
        return true;
    }
    bool on_bool(bool b, json::error_code&) {
        take(b ? Kind::kTrue : Kind::kOther);
        return true;
    }
    bool on_null(json::error_code&) {
        take(Kind::kOther);
        return true;
    }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

private:
    using Kind = Fields::Field::Kind;

    // A value starts. When it is the value of a kept top-level key, that field takes it (replacing
    // an earlier duplicate's) and is returned.
    Fields::Field* take(Kind kind) {
        Fields::Field* f = std::exchange(next_, nullptr);
        if (f != nullptr) {
            f->kind = kind;
            f->text.clear();
        }
        return f;
    }

    Fields& out_;
    std::size_t depth_ = 0;
    std::string key_;                  // a top-level key arriving in parts
    Fields::Field* next_ = nullptr;    // the kept field whose value comes next
    bool in_string_ = false;           // between a string's first part and its end
    Fields::Field* string_ = nullptr;  // the field that string goes to, if any
};

}  // namespace

bool read_fields_exactly(std::string_view text, Fields& out) {
    out = Fields{};
    json::basic_parser<FieldsHandler> parser(json::parse_options{}, out);
    json::error_code ec;
    const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
    return !ec && n == text.size();
}

// Documents up to this size take the fast path; a simdjson parser keeps buffers sized for the
// largest document it parsed, so bigger ones (rare) go to boost.json and memory stays bounded.
constexpr std::size_t kFastPathBytes = 64 * 1024;
constexpr std::size_t kMaxDepth = 32;  // boost.json's default, which json::parse applies

bool read_fields(std::string_view text, Fields& out) {
    if (text.size() > kFastPathBytes) {
        return read_fields_exactly(text, out);
    }
    thread_local simdjson::dom::parser parser(kFastPathBytes);
    thread_local const bool allocated =
        parser.allocate(kFastPathBytes, kMaxDepth) == simdjson::SUCCESS;
    simdjson::dom::element root;
    if (!allocated || parser.parse(text.data(), text.size()).get(root) != simdjson::SUCCESS) {
        return read_fields_exactly(text, out);
    }
    out = Fields{};
    simdjson::dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS) {
        return true;  // valid JSON, not an object
    }
    out.object = true;
    using Kind = Fields::Field::Kind;
    for (const auto field : object) {  // a duplicate key counts with its last value
        Fields::Field* f = out.named(field.key);
        if (f == nullptr) {
            continue;
        }
        std::string_view text_value;
        bool bool_value = false;
        if (field.value.get_string().get(text_value) == simdjson::SUCCESS) {
            f->assign(text_value);
        } else {
            f->kind = field.value.get_bool().get(bool_value) == simdjson::SUCCESS && bool_value
                          ? Kind::kTrue
                          : Kind::kOther;
            f->text.clear();
        }
    }
    return true;
}

}  // namespace hearth::frontends::hunterpie
