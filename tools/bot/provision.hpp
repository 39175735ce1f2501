#pragma once

// The operator API as hearth-bot uses it (docs/api.md): accounts and API keys for the bots, the
// zones' figures, and the accounts' removal. A small HTTP/1.1 client on Boost.Beast, blocking:
// it runs before and after the bots' loop, never inside it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

namespace hearth::bot {

/// One keep-alive connection to the operator API with a bearer token.
class ApiClient {
public:
    /// `url`: http://HOST[:PORT] (a path is ignored). Throws std::invalid_argument otherwise.
    ApiClient(const std::string& url, std::string token);
    ~ApiClient();
    ApiClient(const ApiClient&) = delete;
    ApiClient& operator=(const ApiClient&) = delete;

    struct Response {
        int status = 0;  // 0: no answer (`body` says why)
        std::string body;
    };
    /// Sends one request (reconnecting once if the kept connection was closed); waits at most
    /// 30 s for the answer.
    Response request(const std::string& method, const std::string& target,
                     const std::string& body = {});

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

struct Identity {
    std::string account;  // username
    std::string token;    // an API key with scope `packet`; empty when it could not be made
    std::string error;    // why not
};

/// Makes (or, when it exists, reuses) the accounts `prefix-0` .. `prefix-(count-1)` and issues
/// an API key with scope `packet` to each, `threads` requests at once. A busy server (503, 429)
/// is asked again, with growing pauses, for up to a minute per account. `progress(done)` is called
/// now and then on the calling thread.
std::vector<Identity> provision(const std::string& url, const std::string& admin_token,
                                const std::string& prefix, std::size_t count, unsigned threads,
                                double key_ttl_s, const std::function<void(std::size_t)>& progress);

/// Deletes the accounts (their keys go with them); how many were deleted.
std::size_t remove_accounts(const std::string& url, const std::string& admin_token,
                            const std::vector<Identity>& identities, unsigned threads);

/// GET /api/v1/world/zones: its `items` (or the whole answer when it has none), or why not.
std::optional<boost::json::value> read_zones(const std::string& url, const std::string& admin_token,
                                             std::string& error);

}  // namespace hearth::bot
