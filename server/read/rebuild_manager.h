// RebuildManager: starts, resumes, aborts and finds rebuild jobs (rebuild_job.h), enforces one
// running rebuild per projection, and keeps the most recent finished ones for inspection.
//
// Each job runs on a thread of its own, which the manager owns and joins. Thread-safety: every
// public method is thread-safe. Created after the ProjectionEngine has started and shut down
// before it stops.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "domain/clock.h"
#include "fidelis/v1/admin.pb.h"
#include "server/read/projection_engine.h"
#include "server/read/rebuild_job.h"

namespace fidelis::server {

class RebuildManager {
 public:
  // None of the pointers is owned; all must outlive the manager. `observer` may be null.
  RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                 const EventRegistry* registry, const Clock* clock, RebuildTuning tuning = {},
                 RebuildObserver* observer = nullptr);
  ~RebuildManager();

  // Starts one job per requested projection (every projection when the name is empty).
  //   NOT_FOUND            unknown projection;
  //   INVALID_ARGUMENT     a bad batch_size, policy, mode, nice or target_version;
  //   FAILED_PRECONDITION  a rebuild already runs for a requested projection, or a blue-green
  //                        shadow waits for promotion (named);
  //   UNAVAILABLE          the manager is shutting down.
  absl::StatusOr<std::vector<std::shared_ptr<RebuildJob>>> Start(
      const v1::RebuildProjectionRequest& request);

  // Starts again the blue-green jobs that were running when the server last stopped, from
  // their shadows' checkpoints. Called once after the engine started.
  void ResumeInterrupted();

  // Stops a blue-green rebuild of `projection` at any phase and drops its shadow.
  // FAILED_PRECONDITION when there is none, or the running rebuild is in place.
  absl::Status Abort(std::string_view projection);

  // Stops the job `id` after its current batch and waits (up to 10 s) for it to stop.
  // NOT_FOUND when no such rebuild is known; FAILED_PRECONDITION when it has finished.
  absl::StatusOr<std::shared_ptr<RebuildJob>> Cancel(std::string_view id);

  // NOT_FOUND when no such rebuild is known.
  absl::StatusOr<std::shared_ptr<RebuildJob>> Get(std::string_view id) const;
  // Running and recent rebuilds, newest first.
  std::vector<std::shared_ptr<RebuildJob>> List() const;

  // Cancels every running job and waits for them. Idempotent.
  void Shutdown();

 private:
  // Registers and starts a job. Requires mu_.
  void Launch(const std::shared_ptr<RebuildJob>& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<RebuildJob> RunningFor(std::string_view projection) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<RebuildJob> NewJob(std::string id, std::shared_ptr<ProjectionRunner> target,
                                     v1::RebuildMode mode, bool resumed,
                                     v1::RebuildProjectionRequest request) const;

  ProjectionEngine* const engine_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const Clock* const clock_;
  const RebuildTuning tuning_;
  RebuildObserver* const observer_;

  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::shared_ptr<RebuildJob>> jobs_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  std::vector<std::pair<std::shared_ptr<RebuildJob>, std::thread>> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::server
