#include "frontends/moonshare/stats.hpp"

#include <fmt/format.h>

#include "frontends/moonshare/moonshare.hpp"

namespace hearth::frontends::moonshare {

namespace {

core::Counter& token_refusal(core::MetricsRegistry& m, std::string_view reason) {
    return m.counter("hearth_moonshare_tokens_refused_total",
                     "Moonshare token requests refused (token endpoint and /auth), by reason: "
                     "rate_limited (token_requests_per_ip_per_min), user_id_held (the user id is "
                     "bound to another client), too_many_user_ids (max_bindings), "
                     "too_many_user_ids_from_address (max_bindings_per_address).",
                     {{"reason", std::string(reason)}});
}

core::Counter& binding_eviction(core::MetricsRegistry& m, std::string_view reason) {
    return m.counter("hearth_moonshare_bindings_evicted_total",
                     "Moonshare user id bindings ended to make room for a new user id, by "
                     "reason: address_cap (max_bindings_per_address: one of the address's own), "
                     "full (max_bindings: one that never authenticated).",
                     {{"reason", std::string(reason)}});
}

core::Counter& too_slow(core::MetricsRegistry& m, std::string_view direction) {
    return m.counter("hearth_moonshare_transfers_too_slow_total",
                     "Moonshare file transfers ended for going slower than "
                     "min_transfer_bytes_per_s, by direction: upload (the sender's bytes), "
                     "download (a player reading a file sent to it).",
                     {{"direction", std::string(direction)}});
}

// The reasons of hearth_moonshare_refused_total (docs/protocol/moonshare.md, "Metrics").
constexpr const char* kRefusalReasons[] = {
    "missing_token",        // session_auth without a token
    "invalid_token",        // session_auth: unknown, expired or revoked, or another user id's
    "not_token_holder",     // session_auth: a valid token that the user id's holder does not hold
    "server_full",          // session_auth: player_limit reached on the instance
    "players_per_address",  // session_auth: max_players_per_address from the client's address
    "uploads_per_address",  // file_send_begin: max_uploads_per_address in progress
    "recipient_quota",      // a file past the recipient's stored files or bytes
    "sender_quota",         // a file past the sender address's stored files or bytes
    "list_before_auth",     // list_online before session_auth: an empty list
    "unknown_recipient",    // a file for a user id that nobody holds
    "operator_token_missing",  // gateway listings and logs, auth /sessions: no bearer token
    "operator_token_invalid",  // ... a token that is not the admin token nor a valid token
    "not_operator",            // ... a valid token without the admin right
    "operator_unavailable",    // ... the account store could not check the token
};

}  // namespace

Stats::Stats(core::MetricsRegistry& m, std::size_t instances)
    : metrics_(m),
      tokens_issued(m.counter("hearth_moonshare_tokens_issued_total",
                              "Moonshare guest tokens issued (token endpoint and /auth).")),
      tokens_rate_limited(token_refusal(m, "rate_limited")),
      tokens_held(token_refusal(m, "user_id_held")),
      tokens_full(token_refusal(m, "too_many_user_ids")),
      tokens_address_full(token_refusal(m, "too_many_user_ids_from_address")),
      bindings_evicted_address(binding_eviction(m, "address_cap")),
      bindings_evicted_full(binding_eviction(m, "full")),
      paced_evicted(m.counter("hearth_moonshare_paced_addresses_evicted_total",
                              "Addresses forgotten by the Moonshare token pace "
                              "(max_paced_addresses) to make room for a new one.")),
      uploads_too_slow(too_slow(m, "upload")),
      downloads_too_slow(too_slow(m, "download")),
      files_relayed(m.counter("hearth_moonshare_files_total",
                              "Moonshare file transfers, by outcome.", {{"outcome", "relayed"}})),
      files_stored(m.counter("hearth_moonshare_files_total",
                             "Moonshare file transfers, by outcome.", {{"outcome", "stored"}})),
      files_delivered(m.counter("hearth_moonshare_files_total",
                                "Moonshare file transfers, by outcome.",
                                {{"outcome", "delivered_later"}})),
      files_failed(m.counter("hearth_moonshare_files_total",
                             "Moonshare file transfers, by outcome.", {{"outcome", "failed"}})),
      files_expired(m.counter("hearth_moonshare_files_total",
                              "Moonshare file transfers, by outcome.", {{"outcome", "expired"}})),
      wrong_subject(m.counter("hearth_auth_refusals_total",
                              "Tokens refused at a door (front-end, operator API, log "
                              "stream), by door and reason.",
                              {{"door", "moonshare"}, {"reason", "wrong_subject"}})),
      ignored(m.counter("hearth_moonshare_ignored_messages_total",
                        "Moonshare player messages ignored (not JSON, unknown, before "
                        "authentication, binary without a transfer, held past the bound).")),
      buffered(m.gauge("hearth_moonshare_buffered_bytes",
                       "File bytes the Moonshare front-end holds in memory now (upload "
                       "chunks waiting for disk, relay chunks read from disk).")),
      buffered_max(m.gauge("hearth_moonshare_buffered_bytes_max",
                           "The most file bytes the Moonshare front-end held in memory at "
                           "once since it started.")),
      uploads(m.gauge("hearth_moonshare_uploads", "Moonshare file uploads in progress.")),
      stored_bytes(m.gauge("hearth_moonshare_stored_bytes",
                           "Bytes of Moonshare files stored for offline players.")),
      bindings_count(m.gauge("hearth_moonshare_bindings",
                             "Moonshare user ids bound to the client that holds them.")),
      bindings_bytes(m.gauge("hearth_moonshare_binding_bytes",
                             "Bytes the Moonshare user id bindings take (user ids, "
                             "addresses, token digests, bookkeeping).")) {
    for (const auto* reason : kRefusalReasons) {
        (void)refusal_counter(reason);  // every reason shows, at 0, from the start
    }
    for (std::size_t i = 0; i < instances; ++i) {
        online.push_back(&m.gauge("hearth_moonshare_players",
                                  "Authenticated Moonshare players, by instance.",
                                  {{"instance", std::string(instance_name(i))}}));
    }
}

void Stats::hold(std::size_t n) {
    buffered.add(static_cast<std::int64_t>(n));
    const auto now = buffered.value();
    if (now > buffered_max.value()) {
        buffered_max.set(now);  // racy by a chunk at most: a high-water mark, not a bound
    }
}

void Stats::unhold(std::size_t n) {
    buffered.sub(static_cast<std::int64_t>(n));
}

core::Counter& Stats::refusal_counter(std::string_view reason) {
    return metrics_.counter("hearth_moonshare_refused_total",
                            "Moonshare requests refused (token requests: "
                            "hearth_moonshare_tokens_refused_total), by reason.",
                            {{"reason", std::string(reason)}});
}

std::optional<std::string> Stats::refusal_line() {
    const auto admitted = refusal_lines_.admit();
    if (!admitted) {
        return std::nullopt;
    }
    return *admitted == 0 ? std::string()
                          : fmt::format(" ({} refusal lines left out before)", *admitted);
}

}  // namespace hearth::frontends::moonshare
