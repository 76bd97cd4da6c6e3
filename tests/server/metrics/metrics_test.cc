#include "server/metrics/metrics.h"

#include <thread>

#include "gtest/gtest.h"
#include "tests/server/metrics/exposition_parser.h"

namespace fidelis::server::metrics {
namespace {

using fidelis::testing::ParseExposition;

TEST(MetricsTest, CountersGaugesAndHistogramsRoundTripThroughTheStrictParser) {
  Registry registry;
  Family<Counter>* calls = registry.AddCounter("calls_total", "Calls.", {"method", "code"});
  Family<Gauge>* depth = registry.AddGauge("queue_depth", "Waiting.", {});
  Family<Histogram>* latency =
      registry.AddHistogram("latency_seconds", "Latency.", {"method"}, {0.01, 0.1, 1});
  calls->With({"Open", "OK"})->Increment(3);
  calls->With({"Open", "ABORTED"})->Increment();
  depth->With({})->Set(7);
  Histogram* h = latency->With({"Open"});
  for (double v : {0.005, 0.05, 0.05, 0.5, 5.0}) h->Observe(v);

  const std::string text = registry.Scrape();
  auto parsed = ParseExposition(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  EXPECT_EQ(parsed->types.at("calls_total"), "counter");
  EXPECT_EQ(parsed->types.at("latency_seconds"), "histogram");
  EXPECT_EQ(parsed->Get("calls_total", {{"method", "Open"}, {"code", "OK"}}), 3);
  EXPECT_EQ(parsed->Get("calls_total", {{"code", "ABORTED"}, {"method", "Open"}}), 1);
  EXPECT_EQ(parsed->Get("queue_depth"), 7);
  EXPECT_EQ(parsed->Get("latency_seconds_bucket", {{"method", "Open"}, {"le", "0.01"}}), 1);
  EXPECT_EQ(parsed->Get("latency_seconds_bucket", {{"method", "Open"}, {"le", "0.1"}}), 3);
  EXPECT_EQ(parsed->Get("latency_seconds_bucket", {{"method", "Open"}, {"le", "1"}}), 4);
  EXPECT_EQ(parsed->Get("latency_seconds_bucket", {{"method", "Open"}, {"le", "+Inf"}}), 5);
  EXPECT_EQ(parsed->Get("latency_seconds_count", {{"method", "Open"}}), 5);
  EXPECT_NEAR(parsed->Get("latency_seconds_sum", {{"method", "Open"}}), 5.605, 1e-9);
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  Registry registry;
  Family<Gauge>* g = registry.AddGauge("odd", "Back\\slash and\nnewline.", {"v"});
  g->With({"a \"quoted\" \\ value\nwith a newline"})->Set(1.5);
  const std::string text = registry.Scrape();
  EXPECT_NE(text.find("# HELP odd Back\\\\slash and\\nnewline.\n"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(odd{v="a \"quoted\" \\ value\nwith a newline"} 1.5)"), std::string::npos)
      << text;
  auto parsed = ParseExposition(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("odd", {{"v", "a \"quoted\" \\ value\nwith a newline"}}), 1.5);
}

TEST(MetricsTest, SpecialValuesAreSpelledAsPrometheusReadsThem) {
  MetricFamily f{"special", "Special values.", Type::kGauge, {}, {}};
  f.samples.push_back({{{"k", "inf"}}, INFINITY});
  f.samples.push_back({{{"k", "ninf"}}, -INFINITY});
  f.samples.push_back({{{"k", "nan"}}, std::nan("")});
  f.samples.push_back({{{"k", "big"}}, 12345678901234.0});
  const std::string text = WriteExposition({f});
  EXPECT_NE(text.find("special{k=\"inf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("special{k=\"ninf\"} -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("special{k=\"nan\"} NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("special{k=\"big\"} 12345678901234\n"), std::string::npos) << text;
  EXPECT_TRUE(ParseExposition(text).ok());
}

TEST(MetricsTest, CollectorsAddFamiliesAtScrapeTimeInNameOrder) {
  Registry registry;
  registry.AddCounter("b_total", "B.", {})->With({})->Increment();
  int scrapes = 0;
  registry.AddCollector([&](std::vector<MetricFamily>* out) {
    ++scrapes;
    out->push_back({"a_gauge", "A.", Type::kGauge, {{{}, static_cast<double>(scrapes)}}, {}});
  });
  auto first = ParseExposition(registry.Scrape());
  auto second = ParseExposition(registry.Scrape());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->Get("a_gauge"), 1);
  EXPECT_EQ(second->Get("a_gauge"), 2);
  const std::string text = registry.Scrape();
  EXPECT_LT(text.find("a_gauge"), text.find("b_total"));
}

TEST(MetricsTest, ConcurrentObservationsAreAllCounted) {
  Registry registry;
  Family<Counter>* counter = registry.AddCounter("n_total", "N.", {"t"});
  Family<Histogram>* hist = registry.AddHistogram("h", "H.", {}, LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        counter->With({t % 2 ? "odd" : "even"})->Increment();
        hist->With({})->Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto parsed = ParseExposition(registry.Scrape());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->Get("n_total", {{"t", "odd"}}), 20000);
  EXPECT_EQ(parsed->Get("n_total", {{"t", "even"}}), 20000);
  EXPECT_EQ(parsed->Get("h_count"), 40000);
  EXPECT_NEAR(parsed->Get("h_sum"), 40.0, 1e-6);
}

TEST(MetricsTest, QuantilesComeFromTheBucketsOfADifference) {
  Histogram h({1, 2, 4, 8});
  for (int i = 0; i < 100; ++i) h.Observe(0.5);
  const HistogramSample before = h.Snapshot();
  for (int i = 0; i < 98; ++i) h.Observe(1.5);  // (1, 2]
  h.Observe(3);                                 // (2, 4]
  h.Observe(100);                               // +Inf
  const HistogramSample delta = Difference(h.Snapshot(), before);
  EXPECT_EQ(delta.count, 100u);
  EXPECT_EQ(delta.bucket_counts[0], 0u);
  EXPECT_EQ(delta.bucket_counts[1], 98u);
  EXPECT_DOUBLE_EQ(Quantile(delta, 0.5), 1 + 50.0 / 98);
  EXPECT_DOUBLE_EQ(Quantile(delta, 0.99), 4);  // The 99th falls in (2, 4]: its upper bound.
  EXPECT_DOUBLE_EQ(Quantile(delta, 1.0), 8);   // In +Inf: the largest bound.
  EXPECT_EQ(Quantile(Difference(before, before), 0.99), 0);
}

TEST(MetricsTest, NamesAreChecked) {
  EXPECT_TRUE(CheckName("fidelis_commands_total", false).ok());
  EXPECT_TRUE(CheckName("ns:sub_metric", false).ok());
  EXPECT_FALSE(CheckName("9lives", false).ok());
  EXPECT_FALSE(CheckName("has-dash", false).ok());
  EXPECT_FALSE(CheckName("", false).ok());
  EXPECT_TRUE(CheckName("method", true).ok());
  EXPECT_FALSE(CheckName("__reserved", true).ok());
  EXPECT_FALSE(CheckName("a:b", true).ok());
}

// The parser is what the server's scrape test trusts: it must refuse what a scraper would
// misread.
TEST(ExpositionParserTest, RefusesMalformedExpositions) {
  const char* bad[] = {
      "x 1\n",                                                      // No HELP or TYPE.
      "# HELP x X.\nx 1\n",                                         // No TYPE.
      "# HELP x X.\n# TYPE x gauge\nx 1",                           // No final newline.
      "# HELP x X.\n# TYPE x gauge\ny 1\n",                         // Another family's sample.
      "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",  // Repeated series.
      "# HELP x X.\n# TYPE x gauge\nx{a=1} 1\n",                    // Unquoted value.
      "# HELP x X.\n# TYPE x gauge\nx{a=\"\\t\"} 1\n",              // Bad escape.
      "# HELP x X.\n# TYPE x gauge\nx one\n",                       // Not a number.
      "# HELP x X.\n# TYPE x gauge\nx 1 1700000000\n",              // A timestamp.
      "# HELP x X.\n# TYPE x counter\nx -1\n",                      // Negative counter.
      "# HELP x X.\n# TYPE x summary\nx 1\n",                       // Unknown type.
      "# HELP x X.\n# TYPE x gauge\nx{__a=\"1\"} 1\n",              // Reserved label.
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
      "h_sum 1\nh_count 1\n",  // Not cumulative.
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",  // No +Inf.
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
      "# HELP x X.\n# TYPE x gauge\nx 1\n# HELP y Y.\n# TYPE y gauge\ny 1\nx 2\n",  // Split.
  };
  for (const char* text : bad) {
    EXPECT_FALSE(ParseExposition(text).ok()) << text;
  }
  EXPECT_TRUE(ParseExposition("# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                              "h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n")
                  .ok());
}

}  // namespace
}  // namespace fidelis::server::metrics
