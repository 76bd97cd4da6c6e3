// The time source the domain is given. The domain never reads a clock itself: the server
// injects a real one and tests inject a fixed or stepping one.
#pragma once

#include <cstdint>

namespace fidelis {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch. Thread-safe.
  virtual int64_t NowMicros() const = 0;
};

}  // namespace fidelis
