// ProjectionEngine: keeps the projections' builds up to date, tells queries which build to
// read and whether they can, and switches builds atomically for blue-green rebuilds.
//
// Taxonomy:
//   ProjectionEngine  - owns every projection's builds: the live one (queries read it), a
//                       blue-green shadow being built or waiting to be promoted, and the
//                       previous live build kept for a rollback. Created at start-up,
//                       destroyed at shutdown after Stop().
//   ProjectionRunner  - one build: its store, its tailing thread, its checkpoint. The tailing
//                       thread is the only writer of the store, except while a rebuild or a
//                       switch holds the runner's writer lock (server/rebuild.h). Shared
//                       (shared_ptr) with the queries reading it, so a build retired during a
//                       query stays valid until the query ends.
//   ProjectionView    - what the engine holds for one projection at one moment.
//
// Switches (promote, rollback) hold both builds' writer locks, bring the new live build up to
// the old one's checkpoint, record the switch durably in one synced batch, then swap pointers.
// Commands never wait for them; the tailing threads pause for the few milliseconds they take.
// The previous build never advances past the live one, so a client moving from one to the
// other never sees time go backwards.
//
// Thread-safety: every public method is thread-safe. Blue-green operations (CreateShadow,
// Promote, DropShadow, Rollback, RetirePrevious, Diff) are serialized with one another.
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
#include "fidelis/v1/admin.pb.h"
#include "storage/event_store.h"
#include "storage/key_format.h"
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
  const storage::BuildId& build() const { return store_->build(); }
  // "AccountReport v2.1".
  const std::string& label() const { return label_; }
  uint64_t checkpoint() const { return checkpoint_.load(std::memory_order_acquire); }

  // OK when queries may read the store. UNAVAILABLE while a rebuild owns it or when it needs a
  // rebuild, with a message saying which and how far along.
  absl::Status Availability() const;

  // Waits until checkpoint() >= position or `deadline`. DEADLINE_EXCEEDED when it passes.
  // Ends the tailing thread's pause between batches (tail_interval), since the caller waits.
  absl::Status WaitFor(uint64_t position, absl::Time deadline) const;

  // Never advance past `leader`'s checkpoint (null: no limit). Set on a previous build, with
  // the live build as leader.
  void SetLeader(std::shared_ptr<const ProjectionRunner> leader);

  // ---- For rebuilds and switches ----
  // The writer lock: held by the tailing thread for each batch, and by a rebuild or a switch
  // for as long as nothing else may write the store.
  absl::Mutex& writer_mutex() { return writer_mu_; }
  // Applies the events up to `position` now, on the calling thread, and commits them.
  absl::Status AdvanceToLocked(uint64_t position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(writer_mu_);
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
  // WaitFor; `hurry` ends the tailing thread's pause. Another build that merely follows this
  // one does not hurry it.
  absl::Status Await(uint64_t position, absl::Time deadline, bool hurry) const;
  // The pause after a batch that reached the head: tail_interval, or until a WaitFor caller
  // needs a later position, or Stop(). Tailing thread only.
  void PauseAfterBatch();

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
  mutable storage::SteadyCondVar checkpoint_cv_;
  std::function<std::string()> unavailable_ ABSL_GUARDED_BY(state_mu_);  // Null: available.
  std::string rebuild_id_ ABSL_GUARDED_BY(state_mu_);
  std::shared_ptr<const ProjectionRunner> leader_ ABSL_GUARDED_BY(state_mu_);
  // WaitFor callers waiting for a position not yet applied; they end the tailing pause.
  mutable int hurrying_ ABSL_GUARDED_BY(state_mu_) = 0;
  // Signalled when hurrying_ rises or the runner stops.
  mutable storage::SteadyCondVar pause_cv_;
};

struct ProjectionView {
  std::string name;
  uint32_t newest_version = 0;
  std::shared_ptr<ProjectionRunner> live;
  std::shared_ptr<ProjectionRunner> shadow;    // May be null.
  std::shared_ptr<ProjectionRunner> previous;  // May be null.
  absl::Time retire_at;                        // Of `previous`.
  std::string shadow_rebuild_id;
};

// A shadow recorded in the catalog at start-up, whose rebuild job is to be resumed.
struct ResumableShadow {
  std::string projection;
  std::shared_ptr<ProjectionRunner> shadow;
  std::string rebuild_id;
  v1::RebuildProjectionRequest request;
};

class ProjectionEngine {
 public:
  // `database`, `events` and `registry` must outlive the engine; the projectors are not owned
  // either.
  ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                   const EventRegistry* registry, ProjectionEngineOptions options);
  ~ProjectionEngine();

  // Takes every version of every projector, reads each projection's catalog, opens and starts
  // its builds (choosing the live version for a projection seen the first time), drops
  // builds no catalog names, and starts the thread that retires expired previous builds.
  absl::Status Start(const std::vector<const Projector*>& projectors);
  void Stop();

  // The live runner of `name`, or NOT_FOUND naming the projections that exist.
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> Find(std::string_view name) const;
  absl::StatusOr<ProjectionView> View(std::string_view name) const;
  std::vector<ProjectionView> Views() const;
  std::vector<std::shared_ptr<ProjectionRunner>> runners() const;  // Live ones.

  // The build of `name` a query reads, once it is readable and has applied `min_position`:
  // the live one for version 0 or the live version, else a caught-up shadow or the previous
  // build of that version. NOT_FOUND (unknown projection), INVALID_ARGUMENT (a version no
  // build serves, or a min_position beyond the head of the log), UNAVAILABLE (rebuilding),
  // DEADLINE_EXCEEDED.
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> Readable(std::string_view name,
                                                             uint32_t version,
                                                             uint64_t min_position,
                                                             absl::Time deadline) const;

  // The build `selector` names: "live", "shadow", "previous", a version ("2", "v2") or a
  // build ("v2.1"). INVALID_ARGUMENT naming `field` when it names none.
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> Select(std::string_view name,
                                                           std::string_view selector,
                                                           std::string_view field) const;

  // Shadows whose rebuild jobs were running when the server last stopped. Each is returned
  // once.
  std::vector<ResumableShadow> TakeResumable();

  // ---- Blue-green ----
  // Creates an empty shadow build of `version` beside the live one and records it, with the
  // rebuild job building it, in the catalog (synced). The runner starts unavailable.
  //   INVALID_ARGUMENT     no projector of that version (field target_version);
  //   FAILED_PRECONDITION  the projection already has a shadow.
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> CreateShadow(
      std::string_view name, uint32_t version, const std::string& rebuild_id,
      const v1::RebuildProjectionRequest& request);
  // Makes the shadow live; the live build becomes the previous one (an older previous build
  // is dropped). FAILED_PRECONDITION when there is no shadow or it has not caught up.
  absl::Status Promote(std::string_view name);
  // Drops the shadow. FAILED_PRECONDITION when there is none.
  absl::Status DropShadow(std::string_view name);
  // Swaps the live and previous builds. FAILED_PRECONDITION when there is no readable
  // previous build.
  absl::Status Rollback(std::string_view name);
  // Drops the previous build now. FAILED_PRECONDITION when there is none.
  absl::Status RetirePrevious(std::string_view name);
  // Compares builds `a` and `b` (selectors as in Select) at the same checkpoint.
  absl::StatusOr<v1::DiffProjectionResponse> Diff(std::string_view name, std::string_view a,
                                                  std::string_view b, size_t max_differences);

 private:
  struct Slot {
    std::map<uint32_t, const Projector*> versions;
    v1::ProjectionCatalog catalog;
    std::shared_ptr<ProjectionRunner> live;
    std::shared_ptr<ProjectionRunner> shadow;
    std::shared_ptr<ProjectionRunner> previous;
  };

  absl::StatusOr<std::shared_ptr<ProjectionRunner>> OpenBuild(const Slot& slot,
                                                              std::string_view name,
                                                              storage::BuildId build);
  absl::Status StartSlot(const std::string& name, Slot& slot);
  // Persists `catalog` for `name` (with the extra writes already in `batch`), synced, and
  // makes it the slot's. Requires ops_mu_.
  absl::Status CommitCatalog(std::string_view name, const v1::ProjectionCatalog& catalog,
                             rocksdb::WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ops_mu_);
  // Stops `runner`, waits for queries still reading it, and drops its family.
  void DropBuild(std::shared_ptr<ProjectionRunner> runner);
  // Drops the build in `role` of projection `name` (FAILED_PRECONDITION when there is none):
  // `forget` removes it from the catalog, which is committed before the build is dropped.
  absl::Status DropRole(std::string_view name, std::shared_ptr<ProjectionRunner> Slot::*role,
                        const char* role_name,
                        const std::function<void(v1::ProjectionCatalog&)>& forget);
  absl::StatusOr<Slot*> SlotOf(std::string_view name) const;
  void RetireExpired();

  storage::Database* const database_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const ProjectionEngineOptions options_;

  // Serializes blue-green operations. Order: ops_mu_, then writer locks (live first), then mu_.
  absl::Mutex ops_mu_;
  mutable absl::Mutex mu_;
  // The set of names is fixed at Start; a slot's pointers and catalog change under mu_.
  std::map<std::string, std::unique_ptr<Slot>, std::less<>> slots_;
  std::vector<ResumableShadow> resumable_ ABSL_GUARDED_BY(mu_);

  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread retirer_;
};

}  // namespace fidelis::server
