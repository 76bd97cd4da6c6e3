// ServingState: whether the server still serves, for calls that outlive a request (streams).
// FidelisServer stops it first thing at shutdown; every subscribed stream is then woken and
// ends with UNAVAILABLE, instead of being cut off when the grace period ends.
//
// Thread-safety: every method is thread-safe. Listeners are not owned; one must stay valid
// until Unsubscribe returns, which waits for a notification in progress.
#pragma once

#include <algorithm>
#include <atomic>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fidelis::server {

class ShutdownListener {
 public:
  virtual ~ShutdownListener() = default;
  // The server is stopping. Called once, with the ServingState's lock held: quick, and no
  // call back into the ServingState.
  virtual void OnShutdown() = 0;
};

class ServingState {
 public:
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }

  // False, without subscribing, when the server is already stopping.
  bool Subscribe(ShutdownListener* listener) {
    absl::MutexLock lock(&mu_);
    if (stopping()) return false;
    listeners_.push_back(listener);
    return true;
  }

  void Unsubscribe(ShutdownListener* listener) {
    absl::MutexLock lock(&mu_);
    listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
  }

  // Marks the server as stopping and tells every listener. Idempotent.
  void Stop() {
    absl::MutexLock lock(&mu_);
    if (stopping_.exchange(true)) return;
    for (ShutdownListener* listener : listeners_) listener->OnShutdown();
  }

 private:
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::vector<ShutdownListener*> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::server
