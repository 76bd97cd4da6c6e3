// The time source every layer is given. Nothing in domain/ or server/ reads a clock itself:
// the server injects the system clock (server/system_clock.h) and tests inject a fixed or
// stepping one.
//
// Wall-clock time only: timestamps of events, deadlines of calls, rates and ETAs of rebuilds,
// retire times. Waits that threads poll with run on the steady clock (storage/steady_wait.h).
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace fidelis {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowMicros() const = 0;
  // The same instant as an absl::Time. Thread-safe.
  absl::Time Now() const { return absl::FromUnixMicros(NowMicros()); }
};

}  // namespace fidelis
