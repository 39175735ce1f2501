#include "pg/pg.hpp"
#include <cctype>

namespace hearth::pg {

ConnPtr connect(const std::string& url, std::string& error) {
    // Keywords are processed in order and the last one wins: the defaults come first, so that
    // the URL (expanded from "dbname") overrides them.
    const char* const keywords[] = {"connect_timeout", "fallback_application_name", "dbname",
                                    nullptr};
    const char* const values[] = {"10", "hearth", url.c_str(), nullptr};
    ConnPtr conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
    if (conn == nullptr) {
        error = "out of memory";
        return nullptr;
    }
    if (PQstatus(conn.get()) != CONNECTION_OK) {
        error = error_message(conn.get());
        return nullptr;
    }
    // "relation already exists, skipping" and the like would go to standard error.
    PQsetNoticeProcessor(
        conn.get(), [](void*, const char*) {}, nullptr);
    return conn;
}

std::string error_message(const PGconn* conn) {
    std::string text = conn != nullptr ? PQerrorMessage(conn) : "no connection";
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.pop_back();
    }
    // One line: libpq's messages span lines ("...failed: Connection refused\n\tIs the server
    // running...").
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n') {
            while (i + 1 < text.size() && std::isspace(static_cast<unsigned char>(text[i + 1]))) {
                ++i;
            }
            out += "; ";
        } else {
            out += text[i];
        }
    }
    text = std::move(out);
    return text.empty() ? "unknown error" : text;
}

std::string sqlstate(const PGresult* result) {
    const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    return state != nullptr ? state : "";
}

std::string result_message(const PGresult* result, const PGconn* conn) {
    const char* primary =
        result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    return primary != nullptr ? std::string(primary) : error_message(conn);
}

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string mask_uri(std::string_view url, std::size_t scheme_end) {
    std::string out(url.substr(0, scheme_end));
    std::string_view rest = url.substr(scheme_end);
    // The authority ends at the path; the user info at the last '@' before it (libpq takes the
    // first, but masking more than the password is harmless and masking less is not).
    const std::size_t slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
        const std::string_view user_info = authority.substr(0, at);
        const std::size_t colon = user_info.find(':');
        if (colon != std::string_view::npos) {
            out += user_info.substr(0, colon + 1);
            out += "***";
        } else {
            out += user_info;
        }
        out += authority.substr(at);
    } else {
        out += authority;
    }
    if (slash == std::string_view::npos) {
        return out;
    }
    rest = rest.substr(slash);
    const std::size_t question = rest.find('?');
    out += rest.substr(0, question);
    if (question == std::string_view::npos) {
        return out;
    }
    out += '?';
    std::string_view query = rest.substr(question + 1);
    bool first = true;
    while (true) {
        const std::size_t amp = query.find('&');
        const std::string_view param = query.substr(0, amp);
        if (!first) {
            out += '&';
        }
        first = false;
        const std::size_t eq = param.find('=');
        if (param.substr(0, eq) == "password" && eq != std::string_view::npos) {
            out += "password=***";
        } else {
            out += param;
        }
        if (amp == std::string_view::npos) {
            break;
        }
        query = query.substr(amp + 1);
    }
    return out;
}

std::string_view uri_scheme(std::string_view url) {
    for (std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (url.starts_with(scheme)) {
            return scheme;
        }
    }
    return {};
}

/// keyword = value pairs, values bare or in single quotes with backslash escapes (libpq's
/// syntax). The password's value is replaced; a malformed remainder is masked whole.
std::string mask_keyword_value(std::string_view s) {
    std::string out;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        const std::size_t start = i;
        while (i < n && is_space(s[i])) {
            ++i;
        }
        out += s.substr(start, i - start);
        if (i == n) {
            break;
        }
        const std::size_t key_start = i;
        while (i < n && s[i] != '=' && !is_space(s[i])) {
            ++i;
        }
        const std::string_view key = s.substr(key_start, i - key_start);
        std::size_t j = i;
        while (j < n && is_space(s[j])) {
            ++j;
        }
        if (j == n || s[j] != '=') {
            out += "***";  // not the syntax libpq accepts: show nothing of the rest
            return out;
        }
        ++j;
        while (j < n && is_space(s[j])) {
            ++j;
        }
        std::string value;
        if (j < n && s[j] == '\'') {
            ++j;
            bool closed = false;
            while (j < n) {
                if (s[j] == '\\' && j + 1 < n) {
                    value += s[j + 1];
                    j += 2;
                } else if (s[j] == '\'') {
                    ++j;
                    closed = true;
                    break;
                } else {
                    value += s[j++];
                }
            }
            if (!closed) {
                out += std::string(key) + "=***";
                return out;
            }
        } else {
            while (j < n && !is_space(s[j])) {
                if (s[j] == '\\' && j + 1 < n) {
                    value += s[j + 1];
                    j += 2;
                } else {
                    value += s[j++];
                }
            }
        }
        if (key == "password") {
            out += "password=***";
        } else if (key == "dbname" &&
                   (value.find('=') != std::string::npos || !uri_scheme(value).empty())) {
            // libpq expands a connection string given as the database name.
            out += "dbname='" + mask_url(value) + "'";
        } else {
            out += s.substr(key_start, j - key_start);
        }
        i = j;
    }
    return out;
}

}  // namespace

std::string mask_url(std::string_view url) {
    if (const auto scheme = uri_scheme(url); !scheme.empty()) {
        return mask_uri(url, scheme.size());
    }
    return mask_keyword_value(url);
}

}  // namespace hearth::pg
