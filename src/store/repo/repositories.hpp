#pragma once

// The repositories: each interface of include/hearth/store.hpp and account_store.hpp written once
// over the SQL dialect layer (sql/sql.hpp), for every backend. SqlStore (sql_store.hpp) makes one
// of each on its executor.

#include <memory>

#include <hearth/account_store.hpp>
#include <hearth/character_store.hpp>
#include <hearth/store.hpp>

#include "store/executor.hpp"

namespace hearth::store::repo {

std::unique_ptr<Mailboxes> make_mailboxes(detail::StoreExecutor& executor);    // mailbox_repo.cpp
std::unique_ptr<Logs> make_logs(detail::StoreExecutor& executor);              // log_repo.cpp
std::unique_ptr<AccountStore> make_accounts(detail::StoreExecutor& executor);  // account_repo.cpp
std::unique_ptr<CharacterStore> make_characters(
    detail::StoreExecutor& executor);  // character_repo.cpp

}  // namespace hearth::store::repo
