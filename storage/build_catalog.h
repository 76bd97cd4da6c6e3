// BuildCatalog: which builds of each projection exist, which one queries read, and every switch
// between them (record a shadow, promote, roll back, retire the previous build, drop the
// shadow).
//
// A projection's catalog (fidelis.v1.ProjectionCatalog) names its live build, at most one
// shadow (being built, or waiting to be promoted, with the rebuild job that builds it) and at
// most one previous build (kept for a rollback until its retire time). It lives in the meta
// family under "projection/<name>" (key_format.h). Each switch writes the new catalog, with
// the state of the build it changes, in one synced batch: after a crash a projection has its
// builds from before the switch or from after it, never a mix. The catalog is written here and
// nowhere else.
//
// Thread-safety: stateless over the Database; every method is thread-safe. The switches of one
// projection must be serialized by the caller (ProjectionEngine does), each given the catalog
// the previous one returned. The Database must outlive the BuildCatalog.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fidelis/v1/events.pb.h"
#include "storage/database.h"
#include "storage/projection_store.h"

namespace fidelis::storage {

class BuildCatalog {
 public:
  explicit BuildCatalog(Database* database) : database_(database) {}

  // The catalog of projection `name`; an empty one when none was ever written. DATA_LOSS when
  // it does not parse.
  absl::StatusOr<v1::ProjectionCatalog> Read(std::string_view name) const;

  // True when a family of `build` of projection `name` exists.
  bool HasFamily(std::string_view name, BuildId build) const;
  // The families of projection `name` that `catalog` names no build of: left by a drop that a
  // crash interrupted.
  std::vector<std::string> StaleFamilies(std::string_view name,
                                         const v1::ProjectionCatalog& catalog) const;

  // Each switch below writes the new catalog (and the build state it names) synced and returns
  // it; on any error nothing was written. FAILED_PRECONDITION when `catalog` lacks the build
  // the switch needs.

  // Records `live` as the only build of a projection that has no catalog yet.
  absl::StatusOr<v1::ProjectionCatalog> Initialize(std::string_view name, BuildId live);
  // The build id a new shadow of `version` gets: generation 0 when no family of that version's
  // generation 0 exists, else the catalog's next generation. A family that exists is never
  // reused.
  BuildId NextShadow(std::string_view name, const v1::ProjectionCatalog& catalog,
                     uint32_t version) const;
  // Records `shadow` (whose family exists) as the shadow that rebuild `rebuild_id` builds from
  // `request` (a serialized RebuildProjectionRequest, kept for resuming it), in state
  // "building". FAILED_PRECONDITION when the projection has a shadow already.
  absl::StatusOr<v1::ProjectionCatalog> AddShadow(std::string_view name,
                                                  const v1::ProjectionCatalog& catalog,
                                                  ProjectionStore& shadow,
                                                  std::string_view rebuild_id, std::string request,
                                                  absl::Time now);
  // The shadow becomes live (its state "live"), the live build the previous one until
  // `retire_at`; an older previous build leaves the catalog.
  absl::StatusOr<v1::ProjectionCatalog> Promote(std::string_view name,
                                                const v1::ProjectionCatalog& catalog,
                                                ProjectionStore& shadow, absl::Time retire_at);
  // The previous build becomes live, the live build the previous one until `retire_at`.
  absl::StatusOr<v1::ProjectionCatalog> Rollback(std::string_view name,
                                                 const v1::ProjectionCatalog& catalog,
                                                 absl::Time retire_at);
  // The previous build leaves the catalog.
  absl::StatusOr<v1::ProjectionCatalog> RetirePrevious(std::string_view name,
                                                       const v1::ProjectionCatalog& catalog);
  // The shadow, and the rebuild that builds it, leave the catalog.
  absl::StatusOr<v1::ProjectionCatalog> DropShadow(std::string_view name,
                                                   const v1::ProjectionCatalog& catalog);

 private:
  // Writes `catalog` for `name` with the writes already in `batch`, synced.
  absl::Status Commit(std::string_view name, const v1::ProjectionCatalog& catalog,
                      rocksdb::WriteBatch& batch, std::string_view what);

  Database* const database_;
};

}  // namespace fidelis::storage
