#include <set>

#include <gtest/gtest.h>

#include <hearth/result.hpp>

namespace hearth {
namespace {

constexpr Errc kAll[] = {
    Errc::kOk,          Errc::kInvalidArgument, Errc::kNotFound,     Errc::kAlreadyExists,
    Errc::kNotAllowed,  Errc::kUnauthenticated, Errc::kLimitReached, Errc::kTooLarge,
    Errc::kUnavailable, Errc::kStorageFailure,  Errc::kTimeout,      Errc::kShuttingDown,
    Errc::kInternal,
};

TEST(Result, WireNamesAreStableSnakeCase) {
    std::vector<std::string_view> names;
    for (auto e : kAll) {
        names.push_back(error_code_name(e));
    }
    EXPECT_EQ(names, (std::vector<std::string_view>{
                         "ok", "invalid_argument", "not_found", "already_exists", "not_allowed",
                         "unauthenticated", "limit_reached", "too_large", "unavailable",
                         "storage_failure", "timeout", "shutting_down", "internal"}));
}

TEST(Result, CategoryGivesDistinctSentences) {
    EXPECT_STREQ(hearth_category().name(), "hearth");
    std::set<std::string> messages;
    for (auto e : kAll) {
        const auto message = make_error_code(e).message();
        EXPECT_FALSE(message.empty());
        EXPECT_EQ(message.back(), '.') << message;
        messages.insert(message);
    }
    EXPECT_EQ(messages.size(), std::size(kAll));
    EXPECT_NE(hearth_category().message(999).find("999"), std::string::npos);
}

TEST(Result, ErrorCodesAndResultsCarryTheEnum) {
    boost::system::error_code ok = Errc::kOk;
    boost::system::error_code ec = Errc::kLimitReached;
    EXPECT_FALSE(ok.failed());
    EXPECT_TRUE(ec.failed());
    EXPECT_EQ(ec, Errc::kLimitReached);
    EXPECT_EQ(&ec.category(), &hearth_category());
    EXPECT_EQ(ec.value(), static_cast<int>(Errc::kLimitReached));

    Result<int> failed = make_error_code(Errc::kNotFound);
    ASSERT_FALSE(failed.has_value());
    EXPECT_EQ(failed.error(), Errc::kNotFound);
    Result<int> value = 42;
    EXPECT_EQ(value.value(), 42);
}

}  // namespace
}  // namespace hearth
