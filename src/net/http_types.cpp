// HttpRequest/HttpResponse helpers and HttpResponder (declared in include/hearth/http.hpp).
#include <atomic>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse_query.hpp>

#include <hearth/http.hpp>

#include "util/strings.hpp"

namespace hearth {

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
    for (const auto& h : headers) {
        if (util::iequals_ascii(h.name, name)) {
            return std::string_view(h.value);
        }
    }
    return std::nullopt;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
    auto params = boost::urls::parse_query(query);
    if (!params) {
        return std::nullopt;
    }
    // Form semantics, as browsers and Go's url.ParseQuery have them: '+' is a space.
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;
    for (auto param : *params) {
        if (param.key.decode(opts) == name) {
            return param.has_value ? param.value.decode(opts) : std::string();
        }
    }
    return std::nullopt;
}

HttpResponse HttpResponse::json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
    HttpResponse r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
}

HttpResponse HttpResponse::error(int status, std::string_view code, std::string_view message) {
    boost::json::object inner;
    inner["code"] = code;
    inner["message"] = message;
    boost::json::object outer;
    outer["error"] = std::move(inner);
    return json(status, boost::json::serialize(outer));
}

struct HttpResponder::State {
    explicit State(Deliver d) : deliver(std::move(d)) {}
    ~State() {
        if (!done.exchange(true)) {
            deliver(
                HttpResponse::error(500, "internal", "The handler did not produce a response."));
        }
    }
    Deliver deliver;
    std::atomic<bool> done{false};
};

HttpResponder::HttpResponder(Deliver deliver)
    : state_(std::make_shared<State>(std::move(deliver))) {}

void HttpResponder::respond(HttpResponse response) {
    if (state_ && !state_->done.exchange(true)) {
        state_->deliver(std::move(response));
    }
    state_.reset();
}

}  // namespace hearth
