// SteadyCondVar: a condition variable for an absl::Mutex whose timed waits run on the steady
// clock.
//
// Abseil 20220623's timed waits (CondVar::WaitWithDeadline and WaitWithTimeout alike) end at an
// absolute wall-clock time, so a step of the system clock backwards, by NTP or by hand, stretches
// a wait by the size of the step: a 200 ms poll that a thread uses to notice a cancelled call or
// a shutdown becomes an hour-long one. Waits here take an absl::Time deadline as callers have
// it, turn it into a point on the steady clock once, on entry (SteadyDeadline), and wait for
// that point however often they wake up.
//
// Thread-safety: as std::condition_variable_any. Callers hold the mutex they pass while they
// test and change what they wait for, and signal after changing it.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fidelis::storage {

using SteadyTime = std::chrono::steady_clock::time_point;

// `timeout` from now, as a point on the steady clock. A negative timeout is now; one longer
// than a year (an infinite one included) is a year from now, so a caller waiting without a
// deadline simply waits again.
inline SteadyTime SteadyAfter(absl::Duration timeout) {
  const absl::Duration left = std::clamp(timeout, absl::ZeroDuration(), absl::Hours(24 * 365));
  return std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(left);
}

// As above, with `now` read from the caller's clock (domain/clock.h), so that a deadline taken
// from an injected clock is measured against the same clock.
inline SteadyTime SteadyDeadline(absl::Time deadline, absl::Time now) {
  return SteadyAfter(deadline - now);
}

inline SteadyTime SteadyDeadline(absl::Time deadline) {
  return SteadyDeadline(deadline, absl::Now());
}

class SteadyCondVar {
 public:
  // Releases `mu`, waits until signalled or `until`, and takes `mu` again. True while `until`
  // is still ahead (a signal, or a spurious wake-up: callers test their condition again).
  bool WaitUntil(absl::Mutex* mu, SteadyTime until) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Relock relock{mu};
    cv_.wait_until(relock, until);
    return std::chrono::steady_clock::now() < until;
  }
  // Releases `mu`, waits until signalled, and takes `mu` again. May wake spuriously.
  void Wait(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Relock relock{mu};
    cv_.wait(relock);
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  // The held absl::Mutex as the BasicLockable that condition_variable_any releases for its wait.
  struct Relock {
    absl::Mutex* mu;
    void lock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Lock(); }
    void unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu->Unlock(); }
  };

  std::condition_variable_any cv_;
};

}  // namespace fidelis::storage
