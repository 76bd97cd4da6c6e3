// PauseAtPhase: a RebuildObserver for tests that holds every rebuild job at one phase until the
// job is cancelled (or the process is killed), so that a test can abort, inspect or SIGKILL it
// there. The in-process tests inject it through ServerOptions; the e2e harness
// (tests/e2e/fidelisd_harness_main.cc) through fidelisd's daemon.
#pragma once

#include <cstdio>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "server/read/rebuild_job.h"

namespace fidelis::testing {

class PauseAtPhase : public server::RebuildObserver {
 public:
  // Jobs entering `phase` from now on wait there. Thread-safe.
  void Set(v1::RebuildPhase phase) {
    absl::MutexLock lock(&mu_);
    phase_ = phase;
  }

  void OnPhase(server::RebuildJob& job, v1::RebuildPhase phase) override {
    {
      absl::MutexLock lock(&mu_);
      if (phase_ != phase) return;
    }
    // Scripts and tests wait for this line.
    std::fprintf(stderr, "rebuild %s of %s paused at %s\n", job.id().c_str(),
                 job.projection().c_str(), v1::RebuildPhase_Name(phase).c_str());
    job.AwaitCancel();
  }

 private:
  absl::Mutex mu_;
  std::optional<v1::RebuildPhase> phase_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::testing
