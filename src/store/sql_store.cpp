#include "store/sql_store.hpp"
#include <algorithm>
#include <utility>

#include "store/repo/repositories.hpp"

namespace hearth::store {

SqlStore::SqlStore(std::unique_ptr<detail::ExecutorBackend> backend,
                   const detail::ExecutorSettings& settings, core::MetricsRegistry& metrics)
    : backend_(std::move(backend)),
      executor_(settings, *backend_, metrics),
      mailboxes_(repo::make_mailboxes(executor_)),
      logs_(repo::make_logs(executor_)),
      accounts_(repo::make_accounts(executor_)),
      characters_(repo::make_characters(executor_)) {
    executor_.start();
}

SqlStore::~SqlStore() {
    executor_.stop();
}

detail::ExecutorSettings executor_settings(const StorageConfig& config, std::string name,
                                           std::size_t readers, const StoreTestHooks& hooks) {
    auto at_least_one = [](std::int64_t v) {
        return static_cast<std::size_t>(std::max<std::int64_t>(1, v));
    };
    return detail::ExecutorSettings{
        .name = std::move(name),
        .writer_queue_max = at_least_one(config.writer_queue_max),
        .writer_queue_max_bytes = at_least_one(config.writer_queue_max_bytes),
        .reader_queue_max = at_least_one(config.reader_queue_max),
        .max_batch = at_least_one(config.max_batch),
        .readers = std::max<std::size_t>(1, readers),
        .hooks = hooks};
}

}  // namespace hearth::store
