#pragma once

// The operator routes of the characters module (docs/api.md, "Characters"): listing and reading
// characters, and the admin's repairs (rename, move to a safe spot, restore), each audited.

#include <boost/json/object.hpp>

#include <hearth/character_store.hpp>
#include <hearth/characters.hpp>
#include <hearth/http.hpp>

#include "api/operator_api.hpp"
#include "characters/character_service.hpp"

namespace hearth::store {
class AccountStore;
}  // namespace hearth::store

namespace hearth::characters {

/// A character as the operator API shows it.
boost::json::object character_json(const store::CharacterRecord& c);

/// The HTTP answer to a service error: 400 for a name that breaks the rules or invalid data,
/// 404 not found, 409 for a taken name or a full account, 503 while the store or the module
/// cannot answer, 500 for a store failure; the error code is character_error_name's.
HttpResponse character_error_response(const boost::system::error_code& ec);

/// Adds GET /api/v1/characters, GET /api/v1/characters/{id} and the POST repairs to `api`.
/// `service` and `accounts` (to find an account by name) must outlive `api`.
void add_character_routes(api::OperatorApi& api, CharacterServiceImpl& service,
                          store::AccountStore& accounts);

}  // namespace hearth::characters
