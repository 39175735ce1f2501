#include "logs/logs_page.hpp"
#include <array>
#include <stdexcept>

#include <openssl/evp.h>

namespace hearth::logs {

namespace {

/// "'sha256-<base64>'" of `text`, the CSP source expression that allows an inline element whose
/// content is exactly `text`.
std::string csp_hash(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("logs page: SHA-256 failed");
    }
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> b64{};
    const int n = EVP_EncodeBlock(b64.data(), digest.data(), static_cast<int>(size));
    return "'sha256-" +
           std::string(reinterpret_cast<const char*>(b64.data()), static_cast<std::size_t>(n)) +
           "'";
}

/// The hash sources of every inline `<tag>...</tag>` element of `html`, outside comments.
std::string inline_hashes(std::string_view html, std::string_view tag) {
    std::string out;
    const std::string open = "<" + std::string(tag);
    const std::string close = "</" + std::string(tag) + ">";
    std::size_t pos = 0;
    while (true) {
        const auto comment = html.find("<!--", pos);
        const auto at = html.find(open, pos);
        if (at == std::string_view::npos) {
            break;
        }
        if (comment < at) {
            const auto comment_end = html.find("-->", comment + 4);
            if (comment_end == std::string_view::npos) {
                break;
            }
            pos = comment_end + 3;
            continue;
        }
        const char after = at + open.size() < html.size() ? html[at + open.size()] : '\0';
        if (after != '>' && after != ' ' && after != '\n' && after != '\t') {
            pos = at + open.size();  // a longer tag name, e.g. <scripts>
            continue;
        }
        const auto start = html.find('>', at);
        const auto end = start == std::string_view::npos ? start : html.find(close, start);
        if (end == std::string_view::npos) {
            break;
        }
        out += " " + csp_hash(html.substr(start + 1, end - start - 1));
        pos = end + close.size();
    }
    return out;
}

}  // namespace

const std::string& logs_page_csp() {
    static const std::string csp = [] {
        const auto html = logs_page_html();
        return "default-src 'none'; script-src" + inline_hashes(html, "script") + "; style-src" +
               inline_hashes(html, "style") +
               "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'";
    }();
    return csp;
}

HttpResponse logs_page_response() {
    auto r = HttpResponse::text(200, std::string(logs_page_html()), "text/html; charset=utf-8");
    r.headers.push_back({"Cache-Control", "no-cache"});
    r.headers.push_back({"Content-Security-Policy", logs_page_csp()});
    r.headers.push_back({"X-Content-Type-Options", "nosniff"});
    r.headers.push_back({"Referrer-Policy", "no-referrer"});
    return r;
}

}  // namespace hearth::logs
