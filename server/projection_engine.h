// ProjectionEngine: keeps the live projections up to date and tells queries whether and when
// a projection can be read.
//
// Taxonomy:
//   ProjectionEngine  - owns one ProjectionRunner per live projection. Created at start-up,
//                       destroyed at shutdown after Stop().
//   ProjectionRunner  - one projection version: its store, its tailing thread, its checkpoint.
//                       The tailing thread is the only writer of the store, except while a
//                       rebuild holds the runner's writer lock (server/rebuild.h).
//
// Thread-safety: every public method is thread-safe. Query threads call Readable() and read
// the store it returns; only the runner's thread (or a rebuild holding the writer lock) writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/event_registry.h"
#include "domain/projector.h"
#include "storage/event_store.h"
#include "storage/projection_store.h"

namespace fidelis::server {

struct ProjectionEngineOptions {
  // Events read and applied per write batch by the live runners.
  size_t batch_size = 1000;
};

class ProjectionRunner {
 public:
  ProjectionRunner(const Projector* projector, std::unique_ptr<storage::ProjectionStore> store,
                   const storage::EventStore* events, const EventRegistry* registry,
                   ProjectionEngineOptions options);
  ~ProjectionRunner();

  // Reads the checkpoint and state, then starts the tailing thread.
  absl::Status Start();
  // Stops the thread after its current batch. Idempotent.
  void Stop();

  const Projector& projector() const { return *projector_; }
  storage::ProjectionStore* store() const { return store_.get(); }
  uint64_t checkpoint() const { return checkpoint_.load(std::memory_order_acquire); }

  // OK when queries may read the store. UNAVAILABLE while a rebuild owns it or when it needs a
  // rebuild, with a message saying which and how far along.
  absl::Status Availability() const;

  // Waits until checkpoint() >= position or `deadline`. DEADLINE_EXCEEDED when it passes.
  absl::Status WaitFor(uint64_t position, absl::Time deadline) const;

  // ---- For rebuilds (server/rebuild.h) ----
  // The writer lock: held by the tailing thread for each batch, and by a rebuild for its
  // whole run so that nothing else writes the store meanwhile.
  absl::Mutex& writer_mutex() { return writer_mu_; }
  // Marks the projection as unreadable: queries get UNAVAILABLE with the message `reason`
  // returns at the time of the query. `rebuild_id` names the rebuild responsible, if any.
  // `reason` is called with the runner's state lock held and must not call back into it.
  void SetUnavailable(std::string rebuild_id, std::function<std::string()> reason);
  void SetAvailable();
  // The rebuild that made the projection unavailable, or empty.
  std::string rebuild_id() const;
  // Records the checkpoint a rebuild wrote (possibly lower than before) and wakes waiters.
  void PublishCheckpoint(uint64_t position);
  // Drops the rows the tailing thread caches, after a rebuild rewrote the store. Requires the
  // writer lock.
  void ResetCache() ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_) { live_batch_.Discard(); }

 private:
  void Run();

  const Projector* const projector_;
  const std::unique_ptr<storage::ProjectionStore> store_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const ProjectionEngineOptions options_;
  const std::string label_;

  absl::Mutex writer_mu_;
  // The tailing thread's decoder and row cache; used only with writer_mu_ held.
  EventDecoder decoder_ ABSL_GUARDED_BY(writer_mu_);
  storage::ProjectionBatch live_batch_ ABSL_GUARDED_BY(writer_mu_);
  std::atomic<uint64_t> checkpoint_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  mutable absl::Mutex state_mu_;
  mutable absl::CondVar checkpoint_cv_;
  std::function<std::string()> unavailable_ ABSL_GUARDED_BY(state_mu_);  // Null: available.
  std::string rebuild_id_ ABSL_GUARDED_BY(state_mu_);
};

class ProjectionEngine {
 public:
  // `events` and `registry` must outlive the engine; the projectors are not owned either.
  ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                   const EventRegistry* registry, ProjectionEngineOptions options);
  ~ProjectionEngine();

  // Opens each projector's store and starts its runner.
  absl::Status Start(const std::vector<const Projector*>& projectors);
  void Stop();

  // The runner of `name`, or NOT_FOUND naming the projections that exist.
  absl::StatusOr<ProjectionRunner*> Find(std::string_view name) const;

  // The runner of `name`, once it is readable and has applied `min_position`.
  // NOT_FOUND (unknown projection), INVALID_ARGUMENT (version other than the live one, or a
  // min_position beyond the head of the log), UNAVAILABLE (rebuilding), DEADLINE_EXCEEDED.
  absl::StatusOr<ProjectionRunner*> Readable(std::string_view name, uint32_t version,
                                             uint64_t min_position, absl::Time deadline) const;

  std::vector<ProjectionRunner*> runners() const;

 private:
  storage::Database* const database_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const ProjectionEngineOptions options_;
  std::map<std::string, std::unique_ptr<ProjectionRunner>, std::less<>> runners_;
};

}  // namespace fidelis::server
