// ProjectionRunner: one build of a projection, kept up to date with the log by its own tailing
// thread; and BuildWriter, the lease without which nothing writes a build.
//
// Taxonomy:
//   ProjectionRunner - one build: its store, its tailing thread, its checkpoint and whether
//                      queries may read it. Owned by the ProjectionEngine; shared (shared_ptr)
//                      with the queries and rebuilds using it, so a build retired during a
//                      query stays valid until the query ends.
//   BuildWriter      - a lease on one build's writer lock. Whoever holds it is the build's only
//                      writer: the tailing thread for one batch, a rebuild for its whole
//                      replay, a switch (promote, rollback) or a diff for the milliseconds they
//                      take. Everything that changes a build (applying events, truncating,
//                      marking it unavailable, publishing a checkpoint) is a method of the
//                      lease. Stack-only, used on the thread that took it.
//
//   BuildWriterPair  - the leases of two builds, for the operations that align one with the
//                      other (promote, rollback, diff).
//
// Lock order, for the whole read side: the engine's ops lock (ProjectionEngine), then build
// leases, then the runner's and the engine's state locks, which are leaves (nothing is taken
// while holding them). A thread holds one lease, or two through a BuildWriterPair, which takes
// them in the order of their runners' addresses: a build's roles change (a promote makes the
// shadow live), its address does not, so every pair is taken in one global order.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "domain/event_registry.h"
#include "domain/projector.h"
#include "storage/event_store.h"
#include "storage/projection_store.h"
#include "storage/steady_wait.h"

namespace fidelis::server {

struct ProjectionEngineOptions {
  // Events read and applied per write batch by the tailing threads.
  size_t batch_size = 1000;
  // A tailing thread that has reached the head of the log waits this long after a batch before
  // the next, so the events of that interval are applied and written as one batch instead of
  // one wake-up, read and write each; queries that ask for a position not yet applied
  // (WaitFor) end the wait at once. Zero: no wait.
  absl::Duration tail_interval = absl::Milliseconds(2);
  // How long a promote keeps the previous live build for RollbackProjection.
  absl::Duration rollback_window = absl::Hours(1);
  // The version a projection starts with when the database has none of it yet; otherwise
  // the newest version in the binary.
  std::map<std::string, uint32_t, std::less<>> initial_versions;
};

class BuildWriter;

class ProjectionRunner {
 public:
  // None of the pointers is owned; all must outlive the runner.
  ProjectionRunner(const Projector* projector, std::unique_ptr<storage::ProjectionStore> store,
                   const storage::EventStore* events, const EventRegistry* registry,
                   const Clock* clock, ProjectionEngineOptions options);
  ~ProjectionRunner();

  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  // Reads the checkpoint and state, then starts the tailing thread.
  absl::Status Start();
  // Stops the thread after its current batch. Idempotent; any thread but the tailing one.
  void Stop();

  const Projector& projector() const { return *projector_; }
  // For reading (queries, diffs). Writing goes through a BuildWriter.
  const storage::ProjectionStore& store() const { return *store_; }
  const storage::BuildId& build() const { return store_->build(); }
  // "AccountReport v2.1".
  const std::string& label() const { return label_; }
  uint64_t checkpoint() const { return checkpoint_.load(std::memory_order_acquire); }
  // Log positions this build has applied since this process opened it (its checkpoint's
  // advances, by the tailing thread or a rebuild).
  uint64_t events_applied() const { return events_applied_.load(std::memory_order_relaxed); }

  // OK when queries may read the store. UNAVAILABLE while a rebuild owns it or when it needs a
  // rebuild, with a message saying which and how far along.
  absl::Status Availability() const;
  // The rebuild that made the build unavailable, or empty.
  std::string rebuild_id() const;

  // Waits until checkpoint() >= position or `deadline` (read on the injected clock).
  // DEADLINE_EXCEEDED when it passes, UNAVAILABLE when the build becomes unreadable. Ends the
  // tailing thread's pause between batches (tail_interval), since the caller waits.
  absl::Status WaitFor(uint64_t position, absl::Time deadline) const;

  // The asynchronous WaitFor, for callers that must not block (callback RPCs): `done` gets OK
  // once checkpoint() >= position, or UNAVAILABLE when the build becomes unreadable first. It
  // runs at once on the calling thread when the position is applied already, otherwise on the
  // thread that applied it or made the build unreadable (the tailing thread, a rebuild, a
  // switch): it must be quick and must not block. Hurries the tailing thread as WaitFor does.
  // Returns an id for CancelWaiter (0 when `done` has run already).
  using AppliedCallback = absl::AnyInvocable<void(absl::Status) &&>;
  uint64_t WhenApplied(uint64_t position, AppliedCallback done) const;
  // Forgets waiter `id`: true when it had not run, and now never will.
  bool CancelWaiter(uint64_t id) const;

  // Never advance past `leader`'s checkpoint (null: no limit). Set on a previous build, with
  // the live build as leader.
  void SetLeader(std::shared_ptr<const ProjectionRunner> leader);

 private:
  friend class BuildWriter;

  void Run();
  // WaitFor; `hurry` ends the tailing thread's pause. Another build that merely follows this
  // one does not hurry it.
  absl::Status Await(uint64_t position, absl::Time deadline, bool hurry) const;
  // The pause after a batch that reached the head: tail_interval, or until a WaitFor caller
  // needs a later position, or Stop(). Tailing thread only.
  void PauseAfterBatch();
  // The state behind Availability: null reason means available.
  void SetUnavailable(std::string rebuild_id, std::function<std::string()> reason);
  void SetAvailable();
  // Unreadable until rebuilt: `checkpoint` is beyond the log's `head`.
  void SetBeyondLog(uint64_t checkpoint, uint64_t head);
  void PublishCheckpoint(uint64_t position);

  const Projector* const projector_;
  const std::unique_ptr<storage::ProjectionStore> store_;
  const storage::EventStore* const events_;
  const Clock* const clock_;
  const ProjectionEngineOptions options_;
  const std::string label_;

  // The writer lock, held through BuildWriter only.
  absl::Mutex writer_mu_;
  // The tailing thread's decoder and row cache.
  EventDecoder decoder_ ABSL_GUARDED_BY(writer_mu_);
  storage::ProjectionBatch live_batch_ ABSL_GUARDED_BY(writer_mu_);
  std::atomic<uint64_t> checkpoint_{0};
  std::atomic<uint64_t> events_applied_{0};
  std::atomic<bool> stopping_{false};
  // Set by Start when the checkpoint is beyond a cluster node's replica; then the tailing
  // thread's until the replica has caught up.
  bool awaiting_replica_ = false;
  std::thread thread_;

  mutable absl::Mutex state_mu_;
  mutable storage::SteadyCondVar checkpoint_cv_;
  std::function<std::string()> unavailable_ ABSL_GUARDED_BY(state_mu_);  // Null: available.
  std::string rebuild_id_ ABSL_GUARDED_BY(state_mu_);
  std::shared_ptr<const ProjectionRunner> leader_ ABSL_GUARDED_BY(state_mu_);
  // WaitFor callers waiting for a position not yet applied; they end the tailing pause.
  mutable int hurrying_ ABSL_GUARDED_BY(state_mu_) = 0;
  // WhenApplied callers, by the position they wait for; they hurry the tailing thread too.
  struct Waiter {
    uint64_t id;
    AppliedCallback done;
  };
  mutable std::multimap<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(state_mu_);
  mutable uint64_t next_waiter_ ABSL_GUARDED_BY(state_mu_) = 1;
  // Signalled when hurrying_ rises or the runner stops.
  mutable storage::SteadyCondVar pause_cv_;
};

// The methods check that the lease holds its lock (Mutex::AssertHeld), which is also what tells
// the thread-safety analysis so; only the lease's constructor and destructor, which take and
// release the lock, are outside the analysis.
class BuildWriter {
 public:
  // Takes `runner`'s writer lock, waiting for the current holder; released on destruction.
  // `runner` must outlive the lease.
  explicit BuildWriter(ProjectionRunner& runner);
  ~BuildWriter();

  BuildWriter(const BuildWriter&) = delete;
  BuildWriter& operator=(const BuildWriter&) = delete;

  ProjectionRunner& runner() const { return runner_; }
  // The build's store, to rewrite it (a rebuild's truncation and replay).
  storage::ProjectionStore& store() const { return *runner_.store_; }

  // Applies the events after the checkpoint up to `position` (at most the head of the log) on
  // this thread, commits them batch by batch and publishes each checkpoint. Errors from the
  // log or the store; the rows of a failed batch are not written.
  absl::Status AdvanceTo(uint64_t position);

  // Makes the build unreadable: queries get UNAVAILABLE with the message `reason` returns at
  // the time of the query. `reason` runs with the runner's state lock held and must not call
  // back into the runner. `rebuild_id` names the rebuild responsible, if any.
  void MarkUnavailable(std::string rebuild_id, std::function<std::string()> reason);
  void MarkAvailable();
  // Records the checkpoint the holder wrote (possibly lower than before) and wakes waiters.
  void PublishCheckpoint(uint64_t position);
  // Forgets the rows the tailing thread caches, after the store was rewritten under them.
  void ResetCache();

 private:
  ProjectionRunner& runner_;
};

class BuildWriterPair {
 public:
  // Leases `a` and `b` (distinct builds), in the global order. Both must outlive the pair.
  BuildWriterPair(ProjectionRunner& a, ProjectionRunner& b);

  BuildWriter& a() { return &a_runner_ == &first_->runner() ? *first_ : *second_; }
  BuildWriter& b() { return &a_runner_ == &first_->runner() ? *second_ : *first_; }

 private:
  ProjectionRunner& a_runner_;
  // Destroyed in reverse: the second lease is released first.
  std::unique_ptr<BuildWriter> first_;
  std::unique_ptr<BuildWriter> second_;
};

}  // namespace fidelis::server
