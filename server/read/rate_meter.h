// RateMeter: how fast a long job (a rebuild) progresses, and when it will be done, from
// wall-clock progress.
//
// The rate is the events done over the time they took, measured over a sliding window of the
// last few seconds of the wall clock: pauses count (a rate limit's sleeps, yields to live
// traffic, a low-priority thread waiting for a core), so the figure is what an operator will
// see happen, and the window lets it follow a change of pace within seconds. A stall lowers
// it, since the window ends at the time asked about, not at the last progress.
//
// Thread-compatible: one owner serializes calls (RebuildJob under its lock).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "absl/time/time.h"

namespace fidelis::server {

class RateMeter {
 public:
  explicit RateMeter(absl::Duration window = absl::Seconds(5)) : window_(window) {}

  // Records that `done` events (a running total) were done by `now`. The first call is the
  // start. Times must not go backwards; totals may only grow.
  void Record(absl::Time now, uint64_t done);

  // Events per second over the window that ends at `now`; 0 until time has passed since the
  // first record.
  double Rate(absl::Time now) const;

  // Seconds until `total` at Rate(now); 0 once done is at total; nullopt while the rate is 0.
  std::optional<double> EtaSeconds(absl::Time now, uint64_t total) const;

 private:
  struct Sample {
    absl::Time time;
    uint64_t done;
  };

  const absl::Duration window_;
  // Samples at least kSpacing apart, oldest first: one at or before the window's start (the
  // base the rate is measured from) and those after it.
  std::deque<Sample> samples_;
  uint64_t latest_ = 0;  // The newest total, however close to the last sample.
};

}  // namespace fidelis::server
