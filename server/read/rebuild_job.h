// RebuildJob: one rebuild of one projection, a job on the server that replays the log into a
// build and reports its progress, in one of two modes.
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
//               live build is never touched. The shadow is made durable every
//               durable_interval, so a job interrupted by a crash or a shutdown resumes from
//               there at the next start (RebuildManager::ResumeInterrupted).
//
// Both replay every event of the projector's categories in global order, through the
// upcasters and the unknown-event and handler-error policies; running one again gives the
// same data. The job holds its target build's lease (BuildWriter) while it writes, so nothing
// else writes it. Rebuild threads run at a lower priority, optionally rate-limited, and pause
// between batches while commands wait for the log writer: live traffic comes first.
//
// Progress (Progress(), PhaseChanges()) carries events done and total, a rate and an ETA from
// wall-clock progress (rate_meter.h), and the phase. Watchers subscribe (Listener) and are told
// of every phase change, so no thread waits per watcher; they read the progress within a phase
// on their own timers. The job's thread runs at idle priority and never calls into gRPC for
// a batch: a thread that can be preempted for long must not hold gRPC's locks.
//
// Taxonomy:
//   RebuildJob      - runs on its own thread, owned by the RebuildManager; shared
//                     (shared_ptr) with every RPC that watches it.
//   Listener        - told of each change of a job's progress, on the job's thread.
//   RebuildObserver - told of each phase a job enters, on the job's thread, before the job goes
//                     on; tests inject one to hold a job at a phase. The server has none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "fidelis/v1/admin.pb.h"
#include "server/read/projection_engine.h"
#include "server/read/rate_meter.h"
#include "server/read/replay.h"
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
};

class RebuildJob;

class RebuildObserver {
 public:
  virtual ~RebuildObserver() = default;
  // `job` enters `phase` (PREPARING excepted). Called on the job's thread, which waits for it;
  // it may block, for example in job.AwaitCancel().
  virtual void OnPhase(RebuildJob& job, v1::RebuildPhase phase) = 0;
};

// Validates a request's fields (not the projection name). INVALID_ARGUMENT naming the field.
absl::Status ValidateRebuildRequest(const v1::RebuildProjectionRequest& request);

class RebuildJob {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // The job changed phase or ended. Called on the job's thread (a low-priority one), with
    // the job's listener lock held: it must be quick, must not block, and must not call
    // Subscribe or Unsubscribe. Progress within a phase is not announced (it changes with
    // every batch): a listener reads it when it wants to, through Progress().
    virtual void OnJobUpdate() = 0;
  };

  // `target` is the live build (IN_PLACE) or the shadow (BLUE_GREEN); `mode` is resolved.
  // `resumed` marks a blue-green job started again after a restart. None of the pointers is
  // owned; `observer` may be null.
  RebuildJob(std::string id, ProjectionEngine* engine, std::shared_ptr<ProjectionRunner> target,
             v1::RebuildMode mode, bool resumed, const storage::EventStore* events,
             const EventRegistry* registry, const Clock* clock,
             v1::RebuildProjectionRequest request, const RebuildTuning& tuning,
             RebuildObserver* observer);

  const std::string& id() const { return id_; }
  const std::string& projection() const { return projection_; }
  v1::RebuildMode mode() const { return mode_; }

  // Runs the rebuild to its end. Called once, on the job's own thread.
  void Run();
  // Asks the job to stop after its current batch. A blue-green job then drops its shadow,
  // unless `for_shutdown`: the shadow stays recorded and the job resumes at the next start.
  // Thread-safe.
  void Cancel(bool for_shutdown = false);
  // Blocks until Cancel() was called (for observers that hold a job at a phase).
  void AwaitCancel() const;

  bool finished() const;
  // The latest progress; carries the result once finished.
  v1::RebuildProgress Progress() const;
  v1::RebuildInfo Info() const;
  // A number that grows with every change of the progress.
  uint64_t update_seq() const;
  // The progress recorded at each phase change, from index `from` on.
  std::vector<v1::RebuildProgress> PhaseChanges(size_t from) const;
  // Blocks until the job has finished or `timeout` passes; true when finished.
  bool AwaitFinished(absl::Duration timeout) const;

  // `listener` is told of every change until Unsubscribe, which waits for a call in progress.
  // Not owned. Thread-safe.
  void Subscribe(Listener* listener);
  void Unsubscribe(Listener* listener);

  // Why queries get UNAVAILABLE while this job owns the projection.
  std::string UnavailableReason() const;

 private:
  // Moves to `phase` and records the change. Requires mu_ not held.
  void SetPhase(v1::RebuildPhase phase);
  v1::RebuildProgress ProgressLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(v1::RebuildPhase phase, std::string failure);
  // Adds one applied batch's counts to the progress.
  void Absorb(const ReplayStats& batch);
  // Tells the listeners of a phase change or the end. Requires mu_ not held.
  void Notify();
  // Commits the batch up to `checkpoint`, publishes it, and paces the job: sleeps to honour
  // the rate limit and yields while commands wait. Job thread only.
  absl::Status CommitAndPace(BuildWriter& writer, storage::ProjectionBatch& rows,
                             uint64_t checkpoint);
  bool cancel_requested() const;
  void RunInPlace();
  void RunBlueGreen();
  // Replays the shadow under its lease up to within a batch of the head; OK when it is ready
  // to follow the log on its own.
  absl::Status BuildShadow();
  // Replays (checkpoint, head] into the target through `batch`, pipelined up to the head at
  // the start, then batch by batch until within `gap` events of the head. Advances
  // `checkpoint`. CANCELLED when cancelled; FAILED_PRECONDITION by a FAIL policy.
  absl::Status ReplayInto(BuildWriter& writer, storage::ProjectionBatch& batch,
                          uint64_t& checkpoint, uint64_t gap,
                          const std::function<absl::Status()>& durable_point);
  // Tells the observer, if any, that the job enters `phase`.
  void Observe(v1::RebuildPhase phase);

  const std::string id_;
  ProjectionEngine* const engine_;
  std::shared_ptr<ProjectionRunner> target_;
  const v1::RebuildMode mode_;
  const bool resumed_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const Clock* const clock_;
  const v1::RebuildProjectionRequest request_;
  const std::string projection_;
  const std::string build_;
  const size_t categories_;
  const size_t batch_size_;
  const ReplayPolicy policy_;
  const RebuildTuning tuning_;
  RebuildObserver* const observer_;
  const absl::Time started_;

  mutable absl::Mutex mu_;
  mutable storage::SteadyCondVar cv_;
  v1::RebuildPhase phase_ ABSL_GUARDED_BY(mu_) = v1::PREPARING;
  ReplayStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t events_total_ ABSL_GUARDED_BY(mu_) = 0;
  RateMeter rate_ ABSL_GUARDED_BY(mu_);
  absl::Duration elapsed_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool for_shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::string failure_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::RebuildProgress> phase_changes_ ABSL_GUARDED_BY(mu_);

  // Taken after mu_ is released, never with it.
  absl::Mutex listeners_mu_;
  std::vector<Listener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);
};

}  // namespace fidelis::server
