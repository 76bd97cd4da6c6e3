#include "server/read/rate_meter.h"

#include <algorithm>

namespace fidelis::server {
namespace {

// Records closer together than this update the total without a sample of their own, so a
// job reporting thousands of batches a second keeps a few hundred samples.
constexpr absl::Duration kSpacing = absl::Milliseconds(50);

}  // namespace

void RateMeter::Record(absl::Time now, uint64_t done) {
  latest_ = std::max(latest_, done);
  if (samples_.empty() || now - samples_.back().time >= kSpacing) {
    samples_.push_back({now, latest_});
  }
  // Keep one sample at or before the window's start: the base of the rate.
  while (samples_.size() > 2 && samples_[1].time <= now - window_) samples_.pop_front();
}

double RateMeter::Rate(absl::Time now) const {
  if (samples_.empty()) return 0;
  // The newest sample at or before the window's start, else the first one.
  const Sample* base = &samples_.front();
  for (const Sample& sample : samples_) {
    if (sample.time > now - window_) break;
    base = &sample;
  }
  const double seconds = absl::ToDoubleSeconds(now - base->time);
  if (seconds <= 0) return 0;
  return static_cast<double>(latest_ - base->done) / seconds;
}

std::optional<double> RateMeter::EtaSeconds(absl::Time now, uint64_t total) const {
  if (latest_ >= total) return 0.0;
  const double rate = Rate(now);
  if (rate <= 0) return std::nullopt;
  return static_cast<double>(total - latest_) / rate;
}

}  // namespace fidelis::server
