#pragma once

// /api/v1/auth/{login,refresh,logout}, /api/v1/accounts, /api/v1/tokens and /api/v1/audit
// (docs/api.md).

#include <hearth/account_store.hpp>

#include "api/operator_api.hpp"

namespace hearth::auth {
class AccountService;
}  // namespace hearth::auth

namespace hearth::api {

/// Adds the account, token, login and audit routes; `accounts` must outlive the routes.
void add_account_routes(OperatorApi& api, auth::AccountService& accounts);

/// The account as the API shows it (never its password hash).
boost::json::object account_json(const store::AccountRecord& a);
/// The token as the API shows it (its id and fingerprint, never the token or its digest).
boost::json::object token_json(const store::TokenRecord& t);

}  // namespace hearth::api
