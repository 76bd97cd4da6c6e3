// Projection rebuilds: a job on the server that truncates a projection and replays the log
// into it, reporting progress, then catches up with what arrived meanwhile and goes live.
//
// Taxonomy:
//   RebuildJob     - one rebuild of one projection. Runs on its own thread, owned by the
//                    manager; shared (shared_ptr) with every RPC that watches it. Holds the
//                    projection runner's writer lock for its whole run, so the live tailing
//                    thread stands still and nothing else writes the projection meanwhile.
//   RebuildManager - starts jobs, enforces one running rebuild per projection, finds and
//                    cancels them, and keeps the most recent finished ones for inspection.
//
// Semantics: truncate, then replay every event of the projector's categories in global
// order, through the upcasters and the unknown-event and handler-error policies. Idempotent:
// running it again gives the same data. While it runs, queries on the projection get
// UNAVAILABLE naming the rebuild and its progress. A cancelled or failed rebuild leaves the
// projection marked "needs_rebuild" (also on disk), never silently half-built.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fidelis/v1/admin.pb.h"
#include "server/projection_engine.h"
#include "server/replay.h"

namespace fidelis::server {

inline constexpr int kDefaultRebuildBatchSize = 1000;
inline constexpr int kMaxRebuildBatchSize = 100000;

// Validates a request's fields (not the projection name). INVALID_ARGUMENT naming the field.
absl::Status ValidateRebuildRequest(const v1::RebuildProjectionRequest& request);

class RebuildJob {
 public:
  RebuildJob(std::string id, ProjectionRunner* runner, const storage::EventStore* events,
             const EventRegistry* registry, v1::RebuildProjectionRequest request);

  const std::string& id() const { return id_; }
  const std::string& projection() const { return projection_; }

  // Runs the rebuild to its end. Called once, on the job's own thread.
  void Run();
  // Asks the job to stop after its current batch. Thread-safe.
  void Cancel();

  bool finished() const;
  // The latest progress; carries the result once finished.
  v1::RebuildProgress Progress() const;
  v1::RebuildInfo Info() const;

  // Blocks until the job publishes an update newer than `seen` or `deadline` passes; returns
  // the newest update number.
  uint64_t WaitForUpdate(uint64_t seen, absl::Time deadline) const;
  // The progress recorded at each phase change, from index `from` on.
  std::vector<v1::RebuildProgress> PhaseChanges(size_t from) const;

  // Why queries get UNAVAILABLE while this job owns the projection.
  std::string UnavailableReason() const;

 private:
  // Moves to `phase` and records the change. Requires mu_ not held.
  void SetPhase(v1::RebuildPhase phase);
  v1::RebuildProgress ProgressLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(v1::RebuildPhase phase, std::string failure);
  // Adds one applied batch's counts to the progress and updates the smoothed rate.
  void Absorb(const ReplayStats& batch, absl::Duration took);
  // Commits the batch up to `checkpoint`, publishes it, and sleeps to honour
  // max_events_per_second. Job thread only.
  absl::Status CommitAndPace(storage::ProjectionBatch& rows, uint64_t checkpoint);
  bool cancel_requested() const;

  const std::string id_;
  ProjectionRunner* const runner_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const v1::RebuildProjectionRequest request_;
  const std::string projection_;
  const size_t batch_size_;
  const ReplayPolicy policy_;
  const absl::Time started_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar cv_;
  v1::RebuildPhase phase_ ABSL_GUARDED_BY(mu_) = v1::PREPARING;
  ReplayStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t events_total_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time rate_updated_ ABSL_GUARDED_BY(mu_);
  absl::Duration elapsed_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::RebuildProgress> phase_changes_ ABSL_GUARDED_BY(mu_);
};

class RebuildManager {
 public:
  // None of the arguments is owned; all must outlive the manager.
  RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                 const EventRegistry* registry);
  ~RebuildManager();

  // Starts one job per requested projection (every projection when the name is empty).
  //   NOT_FOUND            unknown projection;
  //   INVALID_ARGUMENT     a bad batch_size or policy;
  //   FAILED_PRECONDITION  a rebuild already runs for a requested projection (named);
  //   UNAVAILABLE          the manager is shutting down.
  absl::StatusOr<std::vector<std::shared_ptr<RebuildJob>>> Start(
      const v1::RebuildProjectionRequest& request);

  // NOT_FOUND when no such rebuild is known.
  absl::StatusOr<std::shared_ptr<RebuildJob>> Get(std::string_view id) const;
  // Running and recent rebuilds, newest first.
  std::vector<std::shared_ptr<RebuildJob>> List() const;

  // Cancels every running job and waits for them. Idempotent.
  void Shutdown();

 private:
  ProjectionEngine* const engine_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;

  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<std::shared_ptr<RebuildJob>> jobs_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  std::vector<std::pair<std::shared_ptr<RebuildJob>, std::thread>> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::server
