// Metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and
// histograms, each a family of series told apart by label values.
//
// Two kinds of metric feed a scrape:
//   - live ones, which the code that observes something updates as it happens (a Registry's
//     Counter, Gauge and Histogram families): lock-free after the first use of a label set;
//   - collected ones, which a Collector reads from their owner when a scrape asks (a
//     projection's checkpoint, RocksDB's live data size, the process's RSS).
// Registry::Scrape() gathers both into MetricFamily values and WriteExposition() renders them.
//
// Ownership and threads: a Registry owns its families, and a family its series; pointers to
// either stay valid for the Registry's lifetime. Every method is thread-safe. Collectors run
// on the thread that scrapes, outside any lock of the Registry.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace fidelis::server::metrics {

enum class Type { kCounter, kGauge, kHistogram };

using Labels = std::vector<std::pair<std::string, std::string>>;

// One series of a counter or gauge.
struct Sample {
  Labels labels;
  double value = 0;
};

// One series of a histogram. `bucket_counts[i]` counts the observations <= `bounds[i]` and
// above the bound before it (not cumulative); the +Inf bucket is `count`.
struct HistogramSample {
  Labels labels;
  std::vector<double> bounds;
  std::vector<uint64_t> bucket_counts;
  uint64_t count = 0;
  double sum = 0;
};

struct MetricFamily {
  std::string name;
  std::string help;
  Type type = Type::kGauge;
  std::vector<Sample> samples;              // Counters and gauges.
  std::vector<HistogramSample> histograms;  // Histograms.
};

// Renders families in the text format: HELP and TYPE lines, then the samples; label values
// and help text escaped; a histogram as cumulative _bucket series ending with le="+Inf", then
// _sum and _count. Families are written in the order given.
std::string WriteExposition(const std::vector<MetricFamily>& families);

// OK when `name` is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or with `label` a valid
// label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"); INVALID_ARGUMENT otherwise.
absl::Status CheckName(const std::string& name, bool label);

// A monotonically increasing count.
class Counter {
 public:
  void Increment(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets, with their sum.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds, increasing.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  HistogramSample Snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // One per bound, plus +Inf.
  std::atomic<double> sum_{0};
};

// What `later` counted since `earlier` (two snapshots of one histogram).
HistogramSample Difference(const HistogramSample& later, const HistogramSample& earlier);
// An estimate of the `q` quantile (0 < q <= 1) of the observations in `sample`: the upper bound
// of the bucket holding it, interpolated linearly within the bucket; the largest bound when it
// falls in the +Inf bucket; 0 with no observation.
double Quantile(const HistogramSample& sample, double q);

// Latency buckets from 100 µs to 10 s, in seconds.
std::vector<double> LatencyBuckets();
// Count buckets 1, 2, 4, ... up to `max`.
std::vector<double> PowersOfTwo(double max);

// The series of one metric, by label values (given in the order of the family's label names).
template <typename T>
class Family {
 public:
  // The series for `values`, created on first use. The result stays valid for the family's
  // lifetime: callers on a hot path keep it.
  T* With(const std::vector<std::string>& values) {
    absl::MutexLock lock(&mu_);
    auto it = series_.find(values);
    if (it == series_.end()) it = series_.emplace(values, make_()).first;
    return it->second.get();
  }

 private:
  friend class Registry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

  // Calls `visit` with each series' labels and metric, in no particular order.
  void ForEach(const std::function<void(Labels, const T&)>& visit) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, metric] : series_) {
      Labels labels;
      for (size_t i = 0; i < label_names_.size() && i < values.size(); ++i) {
        labels.emplace_back(label_names_[i], values[i]);
      }
      visit(std::move(labels), *metric);
    }
  }

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<T>()> make_;
  mutable absl::Mutex mu_;
  absl::node_hash_map<std::vector<std::string>, std::unique_ptr<T>> series_ ABSL_GUARDED_BY(mu_);
};

class Registry {
 public:
  // Adds `collected` families to a scrape. Runs on the scraping thread; it must not call back
  // into the Registry.
  using Collector = std::function<void(std::vector<MetricFamily>* collected)>;

  // Each adds a family; its name must be new and valid (checked: a bad one aborts, as it is a
  // programming error).
  Family<Counter>* AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names);
  Family<Gauge>* AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names);
  Family<Histogram>* AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names, std::vector<double> bounds);
  void AddCollector(Collector collector);

  // Every live family, then what the collectors add, sorted by name.
  std::vector<MetricFamily> Collect() const;
  // WriteExposition(Collect()).
  std::string Scrape() const;

 private:
  void CheckNew(const std::string& name, const std::vector<std::string>& label_names)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Counter>>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::server::metrics
