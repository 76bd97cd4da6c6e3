// The real clock, for production wiring. Tests inject their own fidelis::Clock.
#pragma once

#include "absl/time/clock.h"
#include "domain/clock.h"

namespace fidelis::server {

class SystemClock : public Clock {
 public:
  int64_t NowMicros() const override { return absl::ToUnixMicros(absl::Now()); }
};

}  // namespace fidelis::server
