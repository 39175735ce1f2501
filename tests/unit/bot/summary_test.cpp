// hearth-bot's summary (tools/bot/summary.hpp): counts over the run, rates over the window, the
// server's figures only when they were read, and the zones or why not.

#include "bot/summary.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "common/run_support.hpp"

namespace hearth::bot {
namespace {

namespace json = boost::json;

RunRecord a_run() {
    RunRecord run;
    run.options.bots = 10;
    run.options.port = 29000;
    run.options.zone = 3;
    run.prefix = "bxyz12";
    run.settled_s = 2.0;
    run.begin.at_s = 2.0;
    run.begin.counters.packets_sent = 100;
    run.begin.counters.bytes_received = 1000;
    run.begin.counters.world_updates = 10;
    run.begin.server_cpu_s = 5.0;
    run.begin.client_cpu_s = 1.0;
    run.end.at_s = 6.0;
    run.end.counters.connect_ok = 10;
    run.end.counters.connect_failed = 1;
    run.end.counters.logged_in = 10;
    run.end.counters.entered_world = 9;
    run.end.counters.packets_sent = 500;
    run.end.counters.bytes_received = 9000;
    run.end.counters.world_updates = 90;
    run.end.counters.corrections = 3;
    run.end.counters.corrections_by_reason[1] = 2;
    run.end.counters.corrections_by_reason[4] = 1;
    run.end.counters.errors["no_such_target"] = 4;
    run.end.server_cpu_s = 7.0;
    run.end.server_rss_bytes = 123456;
    run.server_rss_before = 100000;
    run.end.client_cpu_s = 3.0;
    run.population_at_end.in_world = 8;
    run.population_at_end.gone = 2;
    run.zones = json::array{json::object{{"id", 1}, {"population", 8}}};
    return run;
}

TEST(BotSummary, RatesAreOverTheWindowAndCountsOverTheRun) {
    const auto s = make_summary(a_run());
    EXPECT_EQ(s.at("window").as_string(), "settled");
    EXPECT_DOUBLE_EQ(s.at("window_s").to_number<double>(), 4.0);
    EXPECT_DOUBLE_EQ(s.at("packets_sent_per_s").to_number<double>(), 100.0);          // 400 / 4 s
    EXPECT_DOUBLE_EQ(s.at("bytes_received_per_s").to_number<double>(), 2000);         // 8000 / 4 s
    EXPECT_DOUBLE_EQ(s.at("bytes_received_per_s_per_bot").to_number<double>(), 250);  // 8 in world
    EXPECT_DOUBLE_EQ(s.at("world_updates_per_s").to_number<double>(), 20.0);
    EXPECT_EQ(s.at("packets_sent").to_number<std::uint64_t>(), 500U);
    const auto& c = s.at("connections").as_object();
    EXPECT_EQ(c.at("ok").to_number<int>(), 10);
    EXPECT_EQ(c.at("failed").to_number<int>(), 1);
    EXPECT_EQ(c.at("open_at_end").to_number<int>(), 8);
    EXPECT_EQ(s.at("logged_in").to_number<int>(), 10);
    EXPECT_EQ(s.at("entered_world").to_number<int>(), 9);
    EXPECT_EQ(s.at("in_world_at_end").to_number<int>(), 8);
    const auto& corr = s.at("corrections").as_object();
    EXPECT_EQ(corr.at("total").to_number<int>(), 3);
    EXPECT_EQ(corr.at("too_fast").to_number<int>(), 2);
    EXPECT_EQ(corr.at("dead").to_number<int>(), 1);
    EXPECT_FALSE(corr.contains("blocked"));
    EXPECT_EQ(s.at("errors").as_object().at("no_such_target").to_number<int>(), 4);
    EXPECT_EQ(s.at("zone").to_number<int>(), 3);
}

TEST(BotSummary, ServerFiguresPerSecondOfTheWindow) {
    const auto s = make_summary(a_run());
    EXPECT_DOUBLE_EQ(s.at("server_cpu_s").to_number<double>(), 2.0);
    EXPECT_DOUBLE_EQ(s.at("server_cpu_per_s").to_number<double>(), 0.5);
    EXPECT_EQ(s.at("server_rss_bytes").to_number<std::uint64_t>(), 123456U);
    EXPECT_EQ(s.at("server_rss_bytes_before").to_number<std::uint64_t>(), 100000U);
    EXPECT_DOUBLE_EQ(s.at("server_rss_bytes_per_bot").to_number<double>(), 2932);  // 23456 / 8
    EXPECT_EQ(s.at("moving").to_number<int>(), 10);  // all, without --moving
    EXPECT_DOUBLE_EQ(s.at("client_cpu_per_s").to_number<double>(), 0.5);
    EXPECT_EQ(s.at("zones").as_array().size(), 1U);
    EXPECT_FALSE(s.contains("zones_error"));
}

TEST(BotSummary, WithoutServerPidOrZonesTheFieldsSaySo) {
    auto run = a_run();
    run.begin.server_cpu_s.reset();
    run.end.server_cpu_s.reset();
    run.end.server_rss_bytes.reset();
    run.server_rss_before.reset();
    run.zones.reset();
    run.zones_error = "GET /api/v1/world/zones answered 404";
    const auto s = make_summary(run);
    EXPECT_TRUE(s.at("server_cpu_s").is_null());
    EXPECT_TRUE(s.at("server_cpu_per_s").is_null());
    EXPECT_TRUE(s.at("server_rss_bytes").is_null());
    EXPECT_TRUE(s.at("server_rss_bytes_per_bot").is_null());
    EXPECT_TRUE(s.at("zones").is_null());
    EXPECT_EQ(s.at("zones_error").as_string(), "GET /api/v1/world/zones answered 404");
}

TEST(BotSummary, AnUnsettledRunIsMeasuredWhole) {
    auto run = a_run();
    run.settled_s.reset();
    run.begin = Sample{};
    const auto s = make_summary(run);
    EXPECT_EQ(s.at("window").as_string(), "whole_run");
    EXPECT_TRUE(s.at("settled_s").is_null());
    EXPECT_NEAR(s.at("packets_sent_per_s").to_number<double>(), 500.0 / 6.0, 0.05);  // 0.1 steps
}

TEST(BotSummary, TheJsonTextParsesBack) {
    const auto s = make_summary(a_run());
    const auto text = tools::json_text(s);
    EXPECT_EQ(text.find('\n'), std::string::npos);
    const auto back = json::parse(text);
    EXPECT_EQ(back.as_object().at("prefix").as_string(), "bxyz12");
    EXPECT_NE(text.find("\"window_s\":4"), std::string::npos) << text;  // no "4E0"
}

TEST(BotSummary, TheProgressLineCountsThisSecond) {
    Counters before;
    Counters now;
    now.packets_sent = 300;
    now.bytes_received = 2048;
    now.errors["closed"] = 2;
    now.corrections = 1;
    Population p;
    p.in_world = 7;
    p.waiting = 3;
    const auto line = progress_line(1.0, p, now, before, 1.0);
    EXPECT_NE(line.find("in_world 7"), std::string::npos) << line;
    EXPECT_NE(line.find("waiting 3"), std::string::npos) << line;
    EXPECT_NE(line.find("out 300/s"), std::string::npos) << line;
    EXPECT_NE(line.find("in 2.0/s"), std::string::npos) << line;
    EXPECT_NE(line.find("errors 2"), std::string::npos) << line;
}

}  // namespace
}  // namespace hearth::bot
