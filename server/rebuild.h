// Projection rebuilds: jobs on the server that replay the log into a projection build,
// reporting progress, in one of two modes.
//
//   IN_PLACE    truncate the live build, replay, catch up, go live. Queries get UNAVAILABLE
//               meanwhile, naming the rebuild and its progress. A cancelled or failed rebuild
//               leaves the projection marked "needs_rebuild" (also on disk), never silently
//               half-built.
//   BLUE_GREEN  create an empty shadow build beside the live one (PREPARING), replay into it
//               while the live build goes on serving (REPLAYING), catch up to within a batch
//               of the head (CATCHING_UP), hand the shadow to its own tailing thread, then
//               switch queries to it atomically (PROMOTING, ProjectionEngine::Promote), or
//               stop at READY with no_promote. Cancelling or failing drops the shadow; the
//               live build is never touched. The shadow's checkpoint is made durable every few
//               seconds, so a job interrupted by a crash or a shutdown resumes from it at the
//               next start (RebuildManager::ResumeInterrupted).
//
// Both replay every event of the projector's categories in global order, through the
// upcasters and the unknown-event and handler-error policies; running one again gives the
// same data. Rebuild threads run at a lower priority (nice), optionally rate-limited, and
// pause between batches while commands wait for the log writer: live traffic comes first.
//
// Taxonomy:
//   RebuildJob     - one rebuild of one projection. Runs on its own thread, owned by the
//                    manager; shared (shared_ptr) with every RPC that watches it. Holds the
//                    target build's writer lock while it writes, so nothing else does.
//   RebuildManager - starts, resumes, aborts and finds jobs, enforces one running rebuild per
//                    projection, and keeps the most recent finished ones for inspection.
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
#include "storage/steady_wait.h"

namespace fidelis::server {

inline constexpr int kDefaultRebuildBatchSize = 1000;
inline constexpr int kMaxRebuildBatchSize = 100000;

// Server-wide defaults of the live-traffic-first knobs; a request may override each.
struct RebuildTuning {
  // Niceness of rebuild threads (0 to 19; 0 leaves them at the server's priority).
  int nice = 10;
  // Rebuild threads run under SCHED_IDLE: only on a core no other thread wants.
  bool idle_priority = true;
  // Events per second; 0 means no limit.
  uint64_t max_events_per_second = 0;
  // Pause between batches, up to yield_max per batch, while commands wait for the log writer.
  // Under a steady load some command nearly always waits, so yield_max sets the rebuild's pace
  // then (about one batch per yield_max); on an idle log it never pauses.
  bool yield = true;
  absl::Duration yield_max = absl::Milliseconds(15);
  // How often a blue-green replay makes its shadow's checkpoint durable (for crash-resume).
  // Each time rewrites every row changed since the last one, which for a projection keyed by
  // account is nearly all of it after a few seconds, as one SST file (and every fourth one
  // sets off a compaction): disk writes the log's syncs queue behind. A crash costs at most
  // this much replay again.
  absl::Duration durable_interval = absl::Seconds(30);
  // Test hook: a phase name ("REPLAYING", "CATCHING_UP", "PROMOTING") at which blue-green jobs
  // stop and wait to be cancelled or killed, logging "paused at <phase>".
  std::string pause_at;
};

// Validates a request's fields (not the projection name). INVALID_ARGUMENT naming the field.
absl::Status ValidateRebuildRequest(const v1::RebuildProjectionRequest& request);

class RebuildJob {
 public:
  // `target` is the live build (IN_PLACE) or the shadow (BLUE_GREEN); `mode` is resolved.
  // `resumed` marks a blue-green job started again after a restart.
  RebuildJob(std::string id, ProjectionEngine* engine, std::shared_ptr<ProjectionRunner> target,
             v1::RebuildMode mode, bool resumed, const storage::EventStore* events,
             const EventRegistry* registry, v1::RebuildProjectionRequest request,
             const RebuildTuning& tuning);

  const std::string& id() const { return id_; }
  const std::string& projection() const { return projection_; }
  v1::RebuildMode mode() const { return mode_; }

  // Runs the rebuild to its end. Called once, on the job's own thread.
  void Run();
  // Asks the job to stop after its current batch. A blue-green job then drops its shadow,
  // unless `for_shutdown`: the shadow stays recorded and the job resumes at the next start.
  // Thread-safe.
  void Cancel(bool for_shutdown = false);

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
  // Commits the batch up to `checkpoint`, publishes it, and paces the job: sleeps to honour
  // the rate limit and yields while commands wait. Job thread only.
  absl::Status CommitAndPace(storage::ProjectionBatch& rows, uint64_t checkpoint);
  bool cancel_requested() const;
  void RunInPlace();
  void RunBlueGreen();
  // Replays (checkpoint, head] into the target through `batch`, pipelined up to the head at
  // the start, then batch by batch until within `gap` events of the head. Advances
  // `checkpoint`. CANCELLED when cancelled; FAILED_PRECONDITION by a FAIL policy.
  absl::Status ReplayInto(storage::ProjectionBatch& batch, uint64_t& checkpoint, uint64_t gap,
                          const std::function<absl::Status()>& durable_point);
  // The test hook: waits while paused at `phase` until cancelled.
  void MaybePause(v1::RebuildPhase phase);

  const std::string id_;
  ProjectionEngine* const engine_;
  std::shared_ptr<ProjectionRunner> target_;
  const v1::RebuildMode mode_;
  const bool resumed_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const v1::RebuildProjectionRequest request_;
  const std::string projection_;
  const std::string build_;
  const size_t categories_;
  const size_t batch_size_;
  const ReplayPolicy policy_;
  const RebuildTuning tuning_;
  const absl::Time started_;

  mutable absl::Mutex mu_;
  mutable storage::SteadyCondVar cv_;
  v1::RebuildPhase phase_ ABSL_GUARDED_BY(mu_) = v1::PREPARING;
  ReplayStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t events_total_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time rate_updated_ ABSL_GUARDED_BY(mu_);
  absl::Duration elapsed_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool for_shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::RebuildProgress> phase_changes_ ABSL_GUARDED_BY(mu_);
};

class RebuildManager {
 public:
  // None of the pointers is owned; all must outlive the manager.
  RebuildManager(ProjectionEngine* engine, const storage::EventStore* events,
                 const EventRegistry* registry, RebuildTuning tuning = {});
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

  // NOT_FOUND when no such rebuild is known.
  absl::StatusOr<std::shared_ptr<RebuildJob>> Get(std::string_view id) const;
  // Running and recent rebuilds, newest first.
  std::vector<std::shared_ptr<RebuildJob>> List() const;

  // Cancels every running job and waits for them. Idempotent.
  void Shutdown();

 private:
  // Registers and starts a job. Requires mu_.
  void Launch(std::shared_ptr<RebuildJob> job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<RebuildJob> RunningFor(std::string_view projection) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ProjectionEngine* const engine_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const RebuildTuning tuning_;

  mutable absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<std::shared_ptr<RebuildJob>> jobs_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  std::vector<std::pair<std::shared_ptr<RebuildJob>, std::thread>> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fidelis::server
