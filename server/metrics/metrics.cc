#include "server/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "domain/strings.h"

namespace fidelis::server::metrics {
namespace {

// A sample value: integers without a fraction, +Inf, -Inf and NaN as Prometheus spells them.
void AppendValue(double value, std::string* out) {
  if (std::isnan(value)) {
    out->append("NaN");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "+Inf" : "-Inf");
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.0f", value);
    out->append(buffer);
  } else {
    // The shortest form that reads back as the same double.
    char buffer[32];
    for (int precision = 15; precision <= 17; ++precision) {
      std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
      if (std::strtod(buffer, nullptr) == value) break;
    }
    out->append(buffer);
  }
}

// Escapes a label value (backslash, double quote, line feed) or, with `help`, help text
// (backslash and line feed only).
void AppendEscaped(const std::string& text, bool help, std::string* out) {
  for (char c : text) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && !help) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

// name{a="x",b="y",extra="v"} value
void AppendSample(const std::string& name, const Labels& labels, const char* extra_name,
                  const std::string& extra_value, double value, std::string* out) {
  out->append(name);
  if (!labels.empty() || extra_name != nullptr) {
    out->push_back('{');
    bool first = true;
    auto label = [&](const std::string& key, const std::string& v) {
      if (!first) out->push_back(',');
      first = false;
      out->append(key);
      out->append("=\"");
      AppendEscaped(v, /*help=*/false, out);
      out->push_back('"');
    };
    for (const auto& [key, v] : labels) label(key, v);
    if (extra_name != nullptr) label(extra_name, extra_value);
    out->push_back('}');
  }
  out->push_back(' ');
  AppendValue(value, out);
  out->push_back('\n');
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string WriteExposition(const std::vector<MetricFamily>& families) {
  std::string out;
  for (const MetricFamily& family : families) {
    out.append("# HELP ");
    out.append(family.name);
    out.push_back(' ');
    AppendEscaped(family.help, /*help=*/true, &out);
    out.append("\n# TYPE ");
    out.append(family.name);
    out.push_back(' ');
    out.append(TypeName(family.type));
    out.push_back('\n');
    for (const Sample& sample : family.samples) {
      AppendSample(family.name, sample.labels, nullptr, "", sample.value, &out);
    }
    for (const HistogramSample& h : family.histograms) {
      const std::string bucket = family.name + "_bucket";
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h.bounds.size(); ++i) {
        cumulative += i < h.bucket_counts.size() ? h.bucket_counts[i] : 0;
        std::string le;
        AppendValue(h.bounds[i], &le);
        AppendSample(bucket, h.labels, "le", le, static_cast<double>(cumulative), &out);
      }
      AppendSample(bucket, h.labels, "le", "+Inf", static_cast<double>(h.count), &out);
      AppendSample(family.name + "_sum", h.labels, nullptr, "", h.sum, &out);
      AppendSample(family.name + "_count", h.labels, nullptr, "", static_cast<double>(h.count),
                   &out);
    }
  }
  return out;
}

absl::Status CheckName(const std::string& name, bool label) {
  auto valid = [&](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':') ||
           (!first && c >= '0' && c <= '9');
  };
  bool ok = !name.empty() && !(label && name.rfind("__", 0) == 0);
  for (size_t i = 0; ok && i < name.size(); ++i) ok = valid(name[i], i == 0);
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      StrCat("'", name, "' is not a valid ", label ? "label" : "metric", " name"));
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

HistogramSample Histogram::Snapshot() const {
  HistogramSample sample;
  sample.bounds = bounds_;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    const uint64_t n = buckets_[i].load(std::memory_order_relaxed);
    if (i < bounds_.size()) sample.bucket_counts.push_back(n);
    sample.count += n;
  }
  sample.sum = sum_.load(std::memory_order_relaxed);
  return sample;
}

HistogramSample Difference(const HistogramSample& later, const HistogramSample& earlier) {
  HistogramSample delta = later;
  for (size_t i = 0; i < delta.bucket_counts.size() && i < earlier.bucket_counts.size(); ++i) {
    delta.bucket_counts[i] -= std::min(delta.bucket_counts[i], earlier.bucket_counts[i]);
  }
  delta.count -= std::min(delta.count, earlier.count);
  delta.sum -= earlier.sum;
  return delta;
}

double Quantile(const HistogramSample& sample, double q) {
  if (sample.count == 0 || sample.bounds.empty()) return 0;
  const double rank = q * static_cast<double>(sample.count);
  double below = 0;
  for (size_t i = 0; i < sample.bounds.size() && i < sample.bucket_counts.size(); ++i) {
    const double in_bucket = static_cast<double>(sample.bucket_counts[i]);
    if (below + in_bucket >= rank && in_bucket > 0) {
      const double lower = i == 0 ? 0 : sample.bounds[i - 1];
      return lower + (sample.bounds[i] - lower) * (rank - below) / in_bucket;
    }
    below += in_bucket;
  }
  return sample.bounds.back();
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::vector<double> PowersOfTwo(double max) {
  std::vector<double> bounds;
  for (double b = 1; b <= max; b *= 2) bounds.push_back(b);
  return bounds;
}

void Registry::CheckNew(const std::string& name, const std::vector<std::string>& label_names) {
  absl::Status valid = CheckName(name, /*label=*/false);
  for (const std::string& label : label_names) {
    if (valid.ok()) valid = CheckName(label, /*label=*/true);
  }
  if (valid.ok() && std::find(names_.begin(), names_.end(), name) != names_.end()) {
    valid = absl::AlreadyExistsError(StrCat("metric ", name, " is registered twice"));
  }
  if (!valid.ok()) {
    std::fprintf(stderr, "metrics: %s\n", valid.ToString().c_str());
    std::abort();
  }
  names_.push_back(name);
}

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, label_names);
  counters_.emplace_back(new Family<Counter>(name, help, std::move(label_names),
                                             [] { return std::make_unique<Counter>(); }));
  return counters_.back().get();
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, label_names);
  gauges_.emplace_back(new Family<Gauge>(name, help, std::move(label_names),
                                         [] { return std::make_unique<Gauge>(); }));
  return gauges_.back().get();
}

Family<Histogram>* Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, label_names);
  histograms_.emplace_back(new Family<Histogram>(name, help, std::move(label_names), [bounds] {
    return std::make_unique<Histogram>(bounds);
  }));
  return histograms_.back().get();
}

void Registry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::vector<MetricFamily> Registry::Collect() const {
  std::vector<MetricFamily> families;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& family : counters_) {
      MetricFamily& f = families.emplace_back();
      f.name = family->name_;
      f.help = family->help_;
      f.type = Type::kCounter;
      family->ForEach([&](Labels labels, const Counter& c) {
        f.samples.push_back({std::move(labels), static_cast<double>(c.value())});
      });
    }
    for (const auto& family : gauges_) {
      MetricFamily& f = families.emplace_back();
      f.name = family->name_;
      f.help = family->help_;
      f.type = Type::kGauge;
      family->ForEach([&](Labels labels, const Gauge& g) {
        f.samples.push_back({std::move(labels), g.value()});
      });
    }
    for (const auto& family : histograms_) {
      MetricFamily& f = families.emplace_back();
      f.name = family->name_;
      f.help = family->help_;
      f.type = Type::kHistogram;
      family->ForEach([&](Labels labels, const Histogram& h) {
        HistogramSample sample = h.Snapshot();
        sample.labels = std::move(labels);
        f.histograms.push_back(std::move(sample));
      });
    }
    collectors = collectors_;
  }
  for (const Collector& collector : collectors) collector(&families);
  std::sort(families.begin(), families.end(),
            [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
  for (MetricFamily& f : families) {
    std::sort(f.samples.begin(), f.samples.end(),
              [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
    std::sort(
        f.histograms.begin(), f.histograms.end(),
        [](const HistogramSample& a, const HistogramSample& b) { return a.labels < b.labels; });
  }
  return families;
}

std::string Registry::Scrape() const { return WriteExposition(Collect()); }

}  // namespace fidelis::server::metrics
