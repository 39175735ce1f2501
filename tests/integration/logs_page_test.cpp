// GET /logs.html, the live log viewer, over real sockets: on the HTTP API listener and under the
// HunterPie listener's path prefix; its headers (type, caching, a CSP that allows exactly the
// page's inline style and script by hash) and the page's own logic (where it listens, no HTML from
// entries). The page itself runs in a real browser in tests/e2e/logs_page.e2e.mjs.

#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "logs/logs_page.hpp"
#include "net/server.hpp"
#include "support/clients.hpp"
#include "support/server.hpp"

namespace hearth::test {
namespace {

/// The text between the first `<tag>` and its `</tag>` (the page's tags have no attributes).
std::string inline_block(const std::string& html, const std::string& tag) {
    const auto open = html.find("\n<" + tag + ">");
    const auto close = html.find("</" + tag + ">", open);
    EXPECT_NE(open, std::string::npos) << tag;
    EXPECT_NE(close, std::string::npos) << tag;
    const auto start = open + tag.size() + 3;
    return html.substr(start, close - start);
}

/// The CSP source that allows an inline element with exactly this content, computed here
/// independently of the server's code path.
std::string sha256_source(const std::string& text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EXPECT_EQ(EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr), 1);
    unsigned char b64[128] = {};
    const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(size));
    return "'sha256-" +
           std::string(reinterpret_cast<const char*>(b64), static_cast<std::size_t>(n)) + "'";
}

void expect_page(std::uint16_t port, const std::string& path) {
    SCOPED_TRACE(path);
    auto r = http_request(port, "GET", path);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(r.headers["cache-control"], "no-cache");
    EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
    EXPECT_EQ(r.body, std::string(logs::logs_page_html()));

    const std::string& html = r.body;
    EXPECT_EQ(html.rfind("<!doctype html>", 0), 0U);
    EXPECT_NE(html.find("name=\"viewport\""), std::string::npos);
    // It listens relative to its own path (so under any prefix), with ws or wss as the page.
    EXPECT_NE(html.find(R"(new URL("logs/listen", location.href))"), std::string::npos);
    EXPECT_NE(html.find(R"("wss:" : "ws:")"), std::string::npos);
    // The elements the browser test drives.
    for (const char* id :
         {"id=\"status\"", "id=\"entries\"", "id=\"filter-room\"", "id=\"filter-user\"",
          "id=\"filter-level\"", "id=\"pause\"", "id=\"clear\"", "id=\"token\""}) {
        EXPECT_NE(html.find(id), std::string::npos) << id;
    }
    // The operator token goes as the bearer subprotocol next to hearth.logs (docs/logs.md), is
    // kept for the tab only, and never goes into a URL.
    EXPECT_NE(html.find(R"(["hearth.logs", "hearth.bearer." + b64])"), std::string::npos);
    EXPECT_NE(html.find("new WebSocket(listenUrl(room), protocols())"), std::string::npos);
    EXPECT_NE(html.find("sessionStorage"), std::string::npos);
    EXPECT_EQ(html.find("localStorage"), std::string::npos);
    EXPECT_EQ(html.find("searchParams.set(\"token\""), std::string::npos);
    // Self-contained, and entries never become HTML.
    EXPECT_EQ(html.find("src=\"http"), std::string::npos);
    EXPECT_EQ(html.find("href=\"http"), std::string::npos);
    EXPECT_EQ(html.find("rel=\"stylesheet\""), std::string::npos);
    EXPECT_EQ(html.find("innerHTML"), std::string::npos);
    EXPECT_EQ(html.find("insertAdjacentHTML"), std::string::npos);
    EXPECT_EQ(html.find("document.write"), std::string::npos);
    EXPECT_EQ(html.find(" style=\""), std::string::npos);  // the CSP would block it

    // The CSP: nothing by default; the inline style and script by their hashes, no
    // 'unsafe-inline'; connections only to the page's own origin.
    const std::string csp = r.headers["content-security-policy"];
    EXPECT_EQ(csp, logs::logs_page_csp());
    EXPECT_EQ(csp.rfind("default-src 'none';", 0), 0U) << csp;
    EXPECT_NE(csp.find("script-src " + sha256_source(inline_block(html, "script")) + ";"),
              std::string::npos)
        << csp;
    EXPECT_NE(csp.find("style-src " + sha256_source(inline_block(html, "style")) + ";"),
              std::string::npos)
        << csp;
    EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
}

TEST(LogsPage, ServedOnTheHttpListener) {
    TestServer server;
    expect_page(server.port(), "/logs.html");
    // Only GET, and only that path.
    EXPECT_EQ(http_request(server.port(), "POST", "/logs.html", "x").status, 405);
    EXPECT_EQ(http_request(server.port(), "GET", "/logs.htm").status, 404);
}

TEST(LogsPage, ServedUnderTheHunterpiePrefix) {
    TestServer server({{"hunterpie.enabled", "true"},
                       {"hunterpie.listen", "\"127.0.0.1:0\""},
                       {"hunterpie.path_prefix", "\"/hp\""}});
    const auto hp = server.app().server().bound_port("hunterpie");
    expect_page(hp, "/hp/logs.html");
    expect_page(server.port(), "/logs.html");
    EXPECT_EQ(http_request(hp, "GET", "/logs.html").status, 404);
    // The page it serves listens at /hp/logs/listen: that route exists on this listener.
    WsClient listener(hp, WsOptions{.path = "/hp/logs/listen?room=r"});
    listener.close();
}

TEST(LogsPage, ServedAtTheRootOfTheHunterpieListener) {
    TestServer server({{"hunterpie.enabled", "true"}, {"hunterpie.listen", "\"127.0.0.1:0\""}});
    expect_page(server.app().server().bound_port("hunterpie"), "/logs.html");
}

}  // namespace
}  // namespace hearth::test
