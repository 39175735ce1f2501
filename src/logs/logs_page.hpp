#pragma once

// The live log viewer, GET {prefix}/logs.html (docs/logs-page.md): one self-contained page,
// src/logs/logs_page.html, embedded in the binary at build time (src/CMakeLists.txt).

#include <string>
#include <string_view>

#include <hearth/http.hpp>

namespace hearth::logs {

/// The page's HTML, byte for byte as in src/logs/logs_page.html. Static storage; thread-safe.
std::string_view logs_page_html();

/// The Content-Security-Policy the page is served with: nothing is allowed but the page's own
/// inline <style> and <script> elements, by their SHA-256 hashes (so the policy follows any edit of
/// the HTML), and connections to its own origin (the WebSocket to /logs/listen). Computed once;
/// thread-safe.
const std::string& logs_page_csp();

/// The response to GET {prefix}/logs.html: 200, text/html, no-cache, the CSP above.
HttpResponse logs_page_response();

}  // namespace hearth::logs
