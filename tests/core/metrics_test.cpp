#include "core/metrics.hpp"

#include <limits>
#include <stdexcept>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/counters.hpp"

namespace pullthrough::core {
namespace {

using ::testing::HasSubstr;

#define TEST_METRICS_COUNTERS(COUNTER)    \
  COUNTER(hits, "answers from the cache") \
  COUNTER(bytes_sent, "bytes sent, \\ and\nmore")

struct TestCounters {
  TEST_METRICS_COUNTERS(PULLTHROUGH_COUNTER_FIELD)
  PULLTHROUGH_COUNTER_VISITOR(TEST_METRICS_COUNTERS)
};

TEST(MetricsWriterTest, WritesHelpTypeAndSample) {
  MetricsWriter w;
  w.gauge("pullthrough_dns_rewriting", "1 while rewriting", 1.0);
  w.counter("pullthrough_checks_total", "checks made", 42);
  EXPECT_EQ(w.text(),
            "# HELP pullthrough_dns_rewriting 1 while rewriting\n"
            "# TYPE pullthrough_dns_rewriting gauge\n"
            "pullthrough_dns_rewriting 1\n"
            "# HELP pullthrough_checks_total checks made\n"
            "# TYPE pullthrough_checks_total counter\n"
            "pullthrough_checks_total 42\n");
}

TEST(MetricsWriterTest, LabelValuesAreEscaped) {
  MetricsWriter w;
  w.family("pullthrough_up", "up", MetricType::gauge);
  w.sample(0.5, {{"host", "a\"b\\c\nd"}, {"port", "443"}});
  EXPECT_THAT(w.text(), HasSubstr("pullthrough_up{host=\"a\\\"b\\\\c\\nd\",port=\"443\"} 0.5\n"));
}

TEST(MetricsWriterTest, HelpTextEscapesBackslashAndNewlineOnly) {
  MetricsWriter w;
  TestCounters counters;
  w.counters("pullthrough_test", counters);
  EXPECT_THAT(w.text(),
              HasSubstr("# HELP pullthrough_test_bytes_sent_total bytes sent, \\\\ and\\nmore\n"));
}

TEST(MetricsWriterTest, CountersOfAListGetPrefixAndTotalSuffix) {
  TestCounters counters;
  counters.hits.add(3);
  counters.bytes_sent.add(1024);
  MetricsWriter w;
  w.counters("pullthrough_proxy", counters);
  EXPECT_THAT(w.text(), HasSubstr("# TYPE pullthrough_proxy_hits_total counter\n"
                                  "pullthrough_proxy_hits_total 3\n"));
  EXPECT_THAT(w.text(), HasSubstr("pullthrough_proxy_bytes_sent_total 1024\n"));
}

TEST(MetricsWriterTest, LabelledCountersShareOneFamilyPerCounter) {
  TestCounters quay;
  TestCounters ghcr;
  quay.hits.add(1);
  ghcr.hits.add(2);
  MetricsWriter w;
  w.labelled_counters<TestCounters>("pullthrough_upstream", "registry",
                                    {{"quay.io", &quay}, {"ghcr.io", &ghcr}});
  EXPECT_THAT(w.text(), HasSubstr("# TYPE pullthrough_upstream_hits_total counter\n"
                                  "pullthrough_upstream_hits_total{registry=\"quay.io\"} 1\n"
                                  "pullthrough_upstream_hits_total{registry=\"ghcr.io\"} 2\n"));
  // One HELP line per family, not per list.
  auto text = w.text();
  std::size_t helps = 0;
  for (auto at = text.find("# HELP"); at != std::string::npos; at = text.find("# HELP", at + 1)) {
    ++helps;
  }
  EXPECT_EQ(helps, 2U);
}

TEST(MetricsWriterTest, SpecialFloatValuesUseTheFormatsSpelling) {
  MetricsWriter w;
  w.family("pullthrough_x", "x", MetricType::gauge);
  w.sample(std::numeric_limits<double>::infinity());
  w.sample(-std::numeric_limits<double>::infinity());
  w.sample(std::numeric_limits<double>::quiet_NaN());
  w.sample(1.5e12);
  EXPECT_THAT(w.text(), HasSubstr("pullthrough_x +Inf\npullthrough_x -Inf\npullthrough_x NaN\n"));
  EXPECT_THAT(w.text(), HasSubstr("pullthrough_x 1500000000000\n"));
}

TEST(MetricsWriterTest, RejectsNamesOutsideTheGrammarAndMisplacedTotal) {
  MetricsWriter w;
  EXPECT_THROW(w.family("pullthrough-dash", "h", MetricType::gauge), std::invalid_argument);
  EXPECT_THROW(w.family("9lives", "h", MetricType::gauge), std::invalid_argument);
  EXPECT_THROW(w.family("", "h", MetricType::gauge), std::invalid_argument);
  EXPECT_THROW(w.family("pullthrough_hits", "h", MetricType::counter), std::invalid_argument);
  EXPECT_THROW(w.family("pullthrough_hits_total", "h", MetricType::gauge), std::invalid_argument);
  w.family("pullthrough_ok", "h", MetricType::gauge);
  EXPECT_THROW(w.sample(1.0, {{"bad-label", "v"}}), std::invalid_argument);
}

TEST(MetricsWriterTest, SampleBeforeFamilyIsRefused) {
  MetricsWriter w;
  EXPECT_THROW(w.sample(1.0), std::invalid_argument);
}

TEST(MetricsRegistryTest, RendersCollectorsInOrderAndReadsValuesAtRenderTime) {
  MetricsRegistry registry;
  TestCounters counters;
  registry.add([](MetricsWriter& w) { w.gauge("pullthrough_first", "first", 1.0); });
  registry.add([&counters](MetricsWriter& w) { w.counters("pullthrough_second", counters); });
  counters.hits.add(7);
  auto text = registry.render();
  EXPECT_LT(text.find("pullthrough_first"), text.find("pullthrough_second_hits_total"));
  EXPECT_THAT(text, HasSubstr("pullthrough_second_hits_total 7\n"));
  counters.hits.add(1);
  EXPECT_THAT(registry.render(), HasSubstr("pullthrough_second_hits_total 8\n"));
}

TEST(MetricsRegistryTest, RendersFromSeveralThreadsAtOnce) {
  MetricsRegistry registry;
  TestCounters counters;
  registry.add([&counters](MetricsWriter& w) { w.counters("pullthrough_t", counters); });
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        counters.hits.add();
        if (registry.render().find("pullthrough_t_hits_total ") != std::string::npos) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 800);
  EXPECT_THAT(registry.render(), HasSubstr("pullthrough_t_hits_total 800\n"));
}

}  // namespace
}  // namespace pullthrough::core
