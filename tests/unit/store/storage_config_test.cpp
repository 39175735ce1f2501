// The [storage] section: defaults, checks, and how it loads through the config schema.

#include "store/storage_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pg/pg.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace hearth::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

core::ConfigErrors errors_of(const StorageConfig& c) {
    core::ConfigErrors errors;
    c.validate(errors);
    return errors;
}

TEST(StorageConfigTest, DefaultsAreValidAndDurable) {
    const StorageConfig c;
    EXPECT_THAT(errors_of(c), IsEmpty());
    EXPECT_EQ(c.driver, "sqlite");
    EXPECT_EQ(c.sqlite_file, "hearth.db");
    EXPECT_EQ(c.synchronous, "full");
}

TEST(StorageConfigTest, PostgresNeedsAUrl) {
    StorageConfig c;
    c.driver = "postgres";
    EXPECT_THAT(errors_of(c),
                ElementsAre("storage.postgres_url: required when storage.driver = \"postgres\""));
    c.postgres_url = "postgresql://hearth@db/hearth";
    EXPECT_THAT(errors_of(c), IsEmpty());
    EXPECT_EQ(c.postgres_pool_size, 4);
    // A URL without the postgres driver is not an error: switching back and forth is easy.
    c.driver = "sqlite";
    EXPECT_THAT(errors_of(c), IsEmpty());
}

TEST(StorageConfigTest, PasswordsAreMaskedInUrls) {
    EXPECT_EQ(pg::mask_url("postgresql://hearth:s3cret@db:5432/hearth"),
              "postgresql://hearth:***@db:5432/hearth");
    EXPECT_EQ(pg::mask_url("postgres://hearth@db/hearth?password=s3cret&sslmode=require"),
              "postgres://hearth@db/hearth?password=***&sslmode=require");
    EXPECT_EQ(pg::mask_url("postgresql://db/hearth"), "postgresql://db/hearth");
    EXPECT_EQ(pg::mask_url("postgresql://u:p%40ss@db"), "postgresql://u:***@db");
    EXPECT_EQ(pg::mask_url("host=db user=hearth password=s3cret dbname=hearth"),
              "host=db user=hearth password=*** dbname=hearth");
    EXPECT_EQ(pg::mask_url("host=db password = 'it\\'s a secret' port=5432"),
              "host=db password=*** port=5432");
    EXPECT_EQ(pg::mask_url("host=db password"), "host=db ***");
    EXPECT_EQ(pg::mask_url("host=db password='unterminated"), "host=db password=***");
    EXPECT_EQ(pg::mask_url("dbname='postgresql://u:pw@db/x' port=1"),
              "dbname='postgresql://u:***@db/x' port=1");
    for (const char* url : {"postgresql://hearth:s3cret@db:5432/hearth", "host=db password=s3cret",
                            "postgres://x@y/z?password=s3cret"}) {
        EXPECT_EQ(pg::mask_url(url).find("s3cret"), std::string::npos) << url;
    }
}

TEST(StorageConfigTest, SqliteFileMustBeAFile) {
    StorageConfig c;
    c.sqlite_file = "";
    EXPECT_THAT(errors_of(c), ElementsAre("storage.sqlite_file: must not be empty"));
    c.sqlite_file = ":memory:";
    EXPECT_THAT(errors_of(c), ElementsAre(HasSubstr("must be a file path")));
    c.sqlite_file = "db/";
    EXPECT_THAT(errors_of(c), ElementsAre(HasSubstr("not a directory")));
}

TEST(StorageConfigTest, PathIsInsideDataDirUnlessAbsolute) {
    StorageConfig c;
    EXPECT_EQ(sqlite_path(c, "./data"), "./data/hearth.db");
    c.sqlite_file = "/var/lib/hearth/x.db";
    EXPECT_EQ(sqlite_path(c, "./data"), "/var/lib/hearth/x.db");
}

TEST(StorageConfigTest, LoadsThroughTheSchema) {
    core::ConfigSchema schema;
    schema.add<StorageConfig>();
    auto ok = schema.load_string(
        "[storage]\nsynchronous = \"normal\"\nmax_batch = 64\nreader_threads = 3\n", "test",
        {{"HEARTH_STORAGE__WRITER_QUEUE_MAX", "500"}});
    ASSERT_TRUE(ok.config) << (ok.errors.empty() ? "" : ok.errors.front());
    const auto& s = ok.config->get<StorageConfig>();
    EXPECT_EQ(s.synchronous, "normal");
    EXPECT_EQ(s.max_batch, 64);
    EXPECT_EQ(s.reader_threads, 3);
    EXPECT_EQ(s.writer_queue_max, 500);
    EXPECT_EQ(s.writer_queue_max_bytes, std::int64_t{64} << 20);

    auto bad = schema.load_string(
        "[storage]\nsynchronous = \"sometimes\"\nmax_batch = 0\nnope = 1\ndriver = \"postgres\"\n"
        "postgres_pool_size = 0\nwriter_queue_max_bytes = 1024\n",
        "test", {});
    EXPECT_FALSE(bad.config);
    std::string all;
    for (const auto& e : bad.errors) {
        all += e + "\n";
    }
    EXPECT_THAT(all, HasSubstr("storage.synchronous"));
    EXPECT_THAT(all, HasSubstr("storage.max_batch"));
    EXPECT_THAT(all, HasSubstr("storage.nope"));
    EXPECT_THAT(all, HasSubstr("storage.postgres_url: required"));
    EXPECT_THAT(all, HasSubstr("storage.postgres_pool_size"));
    EXPECT_THAT(all, HasSubstr("storage.writer_queue_max_bytes"));

    const std::string toml = schema.default_toml();
    EXPECT_THAT(toml, HasSubstr("[storage]"));
    for (const char* key :
         {"driver", "sqlite_file", "synchronous", "busy_timeout_ms", "writer_queue_max",
          "writer_queue_max_bytes", "max_batch", "reader_threads", "reader_queue_max",
          "postgres_url", "postgres_pool_size"}) {
        EXPECT_THAT(toml, HasSubstr(std::string(key) + " = ")) << key;
    }
}

TEST(StorageConfigTest, EveryKeyNeedsARestart) {
    core::ConfigSchema schema;
    schema.add<StorageConfig>();
    auto a = schema.load_string("", "a", {});
    auto b = schema.load_string(
        "[storage]\ndriver = \"sqlite\"\nsqlite_file = \"x.db\"\nsynchronous = \"off\"\n"
        "busy_timeout_ms = 1\nwriter_queue_max = 1\nwriter_queue_max_bytes = 65536\n"
        "max_batch = 1\nreader_threads = 1\n"
        "reader_queue_max = 1\npostgres_url = \"host=db\"\npostgres_pool_size = 1\n",
        "b", {});
    ASSERT_TRUE(a.config && b.config);
    EXPECT_THAT(
        schema.restart_required(*a.config, *b.config),
        ElementsAre("storage.sqlite_file", "storage.synchronous", "storage.busy_timeout_ms",
                    "storage.writer_queue_max", "storage.writer_queue_max_bytes",
                    "storage.max_batch", "storage.reader_threads", "storage.reader_queue_max",
                    "storage.postgres_url", "storage.postgres_pool_size"));
}

}  // namespace
}  // namespace hearth::store
