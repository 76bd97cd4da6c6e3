// The read side of the server: projections, kept up to date from the log, read by queries, and
// rebuilt from the log by rebuild jobs. This folder owns everything that writes projection
// builds; the gRPC adapters (server/api/) only call it.
//
//   projection_engine.h  - the catalog of every projection's builds and the switches between
//                          them (this file).
//   projection_runner.h  - one build, its tailing thread, and BuildWriter, the lease without
//                          which nothing writes a build. The read side's lock order is stated
//                          there.
//   projection_diff.h    - comparing two builds row by row.
//   rebuild_job.h        - one rebuild (in place or blue-green); rebuild_manager.h runs them.
//   replay.h             - folding a range of the log into a projection, shared by all of the
//                          above.
//   rate_meter.h         - a rebuild's rate and ETA, from wall-clock progress.
//
// ProjectionEngine keeps, for each projection, its live build (queries read it), a blue-green
// shadow being built or waiting to be promoted, and the previous live build kept for a
// rollback. Switches (promote, rollback) lease both builds (BuildWriter), bring the new live
// build up to the old one's checkpoint, record the switch durably (storage/build_catalog.h),
// then swap pointers. Commands never wait for them; the tailing threads pause for the few
// milliseconds they take. The previous build never advances past the live one, so a client
// moving from one to the other never sees time go backwards.
//
// Thread-safety: every public method is thread-safe. Blue-green operations (CreateShadow,
// Promote, DropShadow, Rollback, RetirePrevious, Diff) are serialized with one another by the
// ops lock. Created at start-up, destroyed at shutdown after Stop().
#pragma once

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
#include "domain/clock.h"
#include "domain/event_registry.h"
#include "domain/projector.h"
#include "fidelis/v1/admin.pb.h"
#include "server/read/projection_runner.h"
#include "storage/build_catalog.h"
#include "storage/database.h"
#include "storage/event_store.h"

namespace fidelis::server {

// What the engine holds for one projection at one moment.
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
  // `database`, `events`, `registry` and `clock` must outlive the engine; the projectors are
  // not owned either.
  ProjectionEngine(storage::Database* database, const storage::EventStore* events,
                   const EventRegistry* registry, const Clock* clock,
                   ProjectionEngineOptions options);
  ~ProjectionEngine();

  // Takes every version of every projector, reads each projection's catalog, opens and starts
  // its builds (choosing the live version for a projection seen the first time), drops
  // builds no catalog names, and starts the thread that retires expired previous builds.
  absl::Status Start(const std::vector<const Projector*>& projectors);
  void Stop();

  absl::StatusOr<ProjectionView> View(std::string_view name) const;
  std::vector<ProjectionView> Views() const;

  // The build of `name` a query reads: the live one for version 0 or the live version, else a
  // caught-up shadow or the previous build of that version, when it is readable. Does not
  // wait for `min_position` (the caller does, ProjectionRunner::WhenApplied); checks only that
  // the log may hold it. NOT_FOUND (unknown projection), INVALID_ARGUMENT (a version no build
  // serves, or a min_position beyond the head of the log), UNAVAILABLE (rebuilding).
  absl::StatusOr<std::shared_ptr<ProjectionRunner>> ReadableBuild(std::string_view name,
                                                                  uint32_t version,
                                                                  uint64_t min_position) const;
  // ReadableBuild, then waiting (blocking) until the build has applied `min_position`:
  // DEADLINE_EXCEEDED when `deadline` passes first.
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
  // Compares builds `a` and `b` (selectors as in Select) at the same checkpoint
  // (projection_diff.h), showing at most `max_differences` rows.
  absl::StatusOr<v1::DiffProjectionResponse> Diff(std::string_view name, std::string_view a,
                                                  std::string_view b, size_t max_differences);

 private:
  // Which catalog role a switch changes.
  enum class Role { kShadow, kPrevious };

  struct Slot {
    std::map<uint32_t, const Projector*> versions;
    v1::ProjectionCatalog catalog;  // Written under ops_mu_ and mu_; read under either.
    std::shared_ptr<ProjectionRunner> live;
    std::shared_ptr<ProjectionRunner> shadow;
    std::shared_ptr<ProjectionRunner> previous;
  };

  absl::StatusOr<std::shared_ptr<ProjectionRunner>> OpenBuild(const Slot& slot,
                                                              std::string_view name,
                                                              storage::BuildId build);
  absl::Status StartSlot(const std::string& name, Slot& slot);
  // Stops `runner`, waits for queries still reading it, and drops its family.
  void DropBuild(std::shared_ptr<ProjectionRunner> runner);
  // Drops the build in `role` of projection `name` (FAILED_PRECONDITION when there is none).
  absl::Status DropRole(std::string_view name, Role role);
  absl::StatusOr<Slot*> SlotOf(std::string_view name) const;
  void RetireExpired();

  storage::Database* const database_;
  const storage::EventStore* const events_;
  const EventRegistry* const registry_;
  const Clock* const clock_;
  const ProjectionEngineOptions options_;
  storage::BuildCatalog catalog_;

  // The ops lock: serializes blue-green operations. See projection_runner.h for the order.
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
