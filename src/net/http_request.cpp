#include "net/http_request.hpp"
#include <iterator>

#include <boost/url/pct_string_view.hpp>

#include "util/strings.hpp"

namespace hearth::net {

namespace http = boost::beast::http;

void apply_limits(RequestParser& parser, const HttpLimits& limits) {
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
}

bool head_within_limit(std::size_t head_bytes, const HttpLimits& limits) {
    return head_bytes <= limits.max_header_bytes;
}

bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = list.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
            item.remove_prefix(1);
        }
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
            item.remove_suffix(1);
        }
        if (util::iequals_ascii(item, token)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        list.remove_prefix(comma + 1);
    }
    return false;
}

bool is_websocket_upgrade(const BeastRequest& req) {
    auto upgrade = req[http::field::upgrade];
    return req.method() == http::verb::get && has_token(req[http::field::connection], "upgrade") &&
           has_token(upgrade, "websocket");
}

std::optional<std::string_view> select_subprotocol(const BeastRequest& req,
                                                   const std::vector<std::string>& supported) {
    for (const auto& protocol : supported) {
        const auto [first, last] = req.equal_range(http::field::sec_websocket_protocol);
        for (auto field = first; field != last; ++field) {
            std::string_view list = field->value();
            while (!list.empty()) {
                const auto comma = list.find(',');
                auto item = list.substr(0, comma);
                while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) {
                    item.remove_prefix(1);
                }
                while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) {
                    item.remove_suffix(1);
                }
                if (item == protocol) {
                    return std::string_view(protocol);
                }
                list =
                    comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            }
        }
    }
    return std::nullopt;
}

HttpRequest to_request(const BeastRequest& req, const std::string& peer,
                       const std::string& listener, bool tls) {
    HttpRequest out;
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    std::string_view target = out.target;
    auto q = target.find('?');
    const std::string_view raw_path = target.substr(0, q);
    if (q != std::string_view::npos) {
        out.query = std::string(target.substr(q + 1));
    }
    auto decoded = boost::urls::make_pct_string_view(raw_path);
    out.path = decoded ? decoded->decode() : std::string(raw_path);
    out.headers.reserve(static_cast<std::size_t>(std::distance(req.begin(), req.end())));
    for (const auto& field : req) {
        out.headers.push_back({std::string(field.name_string()), std::string(field.value())});
    }
    out.body = req.body();
    out.peer_address = peer;
    out.listener = listener;
    out.tls = tls;
    return out;
}

}  // namespace hearth::net
