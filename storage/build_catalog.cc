#include "storage/build_catalog.h"

#include <algorithm>

#include "domain/status_macros.h"
#include "domain/strings.h"
#include "storage/key_format.h"

namespace fidelis::storage {
namespace {

void ClearShadow(v1::ProjectionCatalog& catalog) {
  catalog.clear_shadow();
  catalog.clear_shadow_rebuild_id();
  catalog.clear_shadow_request();
  catalog.clear_shadow_started_micros();
}

absl::Status Lacks(std::string_view name, std::string_view role) {
  return absl::FailedPreconditionError(StrCat("projection ", name, " has no ", role, " build"));
}

}  // namespace

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::Read(std::string_view name) const {
  std::string value;
  rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(), database_->Family(kMetaFamily),
                                           CatalogKey(name), &value);
  v1::ProjectionCatalog catalog;
  if (s.IsNotFound()) return catalog;
  RETURN_IF_ERROR(FromRocks(s, StrCat("reading the catalog of projection ", name)));
  if (!catalog.ParseFromString(value)) {
    return absl::DataLossError(StrCat("the catalog of projection ", name, " does not parse"));
  }
  return catalog;
}

bool BuildCatalog::HasFamily(std::string_view name, BuildId build) const {
  return database_->Family(ProjectionFamily(name, build.version, build.generation)) != nullptr;
}

std::vector<std::string> BuildCatalog::StaleFamilies(std::string_view name,
                                                     const v1::ProjectionCatalog& catalog) const {
  std::vector<std::string> named;
  for (const std::string* role : {&catalog.live(), &catalog.previous(), &catalog.shadow()}) {
    if (std::optional<BuildId> id = BuildId::Parse(*role)) {
      named.push_back(ProjectionFamily(name, id->version, id->generation));
    }
  }
  const std::string prefix = ProjectionFamilyPrefix(name);
  std::vector<std::string> stale;
  for (const std::string& family : database_->FamilyNames()) {
    if (family.rfind(prefix, 0) == 0 &&
        std::find(named.begin(), named.end(), family) == named.end()) {
      stale.push_back(family);
    }
  }
  return stale;
}

absl::Status BuildCatalog::Commit(std::string_view name, const v1::ProjectionCatalog& catalog,
                                  rocksdb::WriteBatch& batch, std::string_view what) {
  batch.Put(database_->Family(kMetaFamily), CatalogKey(name), catalog.SerializeAsString());
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(database_->db()->Write(options, &batch), StrCat(what, " of projection ", name));
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::Initialize(std::string_view name,
                                                               BuildId live) {
  v1::ProjectionCatalog catalog;
  catalog.set_live(live.ToString());
  catalog.set_next_generation(1);
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(Commit(name, catalog, batch, "recording the first build"));
  return catalog;
}

BuildId BuildCatalog::NextShadow(std::string_view name, const v1::ProjectionCatalog& catalog,
                                 uint32_t version) const {
  BuildId build{version, 0};
  if (HasFamily(name, build)) build.generation = std::max<uint32_t>(catalog.next_generation(), 1);
  return build;
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::AddShadow(std::string_view name,
                                                              const v1::ProjectionCatalog& catalog,
                                                              ProjectionStore& shadow,
                                                              std::string_view rebuild_id,
                                                              std::string request, absl::Time now) {
  if (!catalog.shadow().empty()) {
    return absl::FailedPreconditionError(
        StrCat("projection ", name, " already has a shadow build ", catalog.shadow(), " (rebuild ",
               catalog.shadow_rebuild_id(), "); promote or abort it first"));
  }
  v1::ProjectionCatalog next = catalog;
  if (shadow.build().generation > 0) {
    next.set_next_generation(std::max(next.next_generation(), shadow.build().generation + 1));
  }
  next.set_shadow(shadow.build().ToString());
  next.set_shadow_rebuild_id(std::string(rebuild_id));
  next.set_shadow_request(std::move(request));
  next.set_shadow_started_micros(absl::ToUnixMicros(now));
  rocksdb::WriteBatch batch;
  shadow.PutState(kStateBuilding, &batch);
  RETURN_IF_ERROR(Commit(name, next, batch, "recording a shadow build"));
  return next;
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::Promote(std::string_view name,
                                                            const v1::ProjectionCatalog& catalog,
                                                            ProjectionStore& shadow,
                                                            absl::Time retire_at) {
  if (catalog.shadow().empty()) return Lacks(name, "shadow");
  v1::ProjectionCatalog next = catalog;
  next.set_previous(catalog.live());
  next.set_live(catalog.shadow());
  next.set_retire_at_micros(absl::ToUnixMicros(retire_at));
  ClearShadow(next);
  rocksdb::WriteBatch batch;
  shadow.PutState(kStateLive, &batch);
  RETURN_IF_ERROR(Commit(name, next, batch, "promoting the shadow build"));
  return next;
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::Rollback(std::string_view name,
                                                             const v1::ProjectionCatalog& catalog,
                                                             absl::Time retire_at) {
  if (catalog.previous().empty()) return Lacks(name, "previous");
  v1::ProjectionCatalog next = catalog;
  next.set_live(catalog.previous());
  next.set_previous(catalog.live());
  next.set_retire_at_micros(absl::ToUnixMicros(retire_at));
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(Commit(name, next, batch, "rolling back"));
  return next;
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::RetirePrevious(
    std::string_view name, const v1::ProjectionCatalog& catalog) {
  if (catalog.previous().empty()) return Lacks(name, "previous");
  v1::ProjectionCatalog next = catalog;
  next.clear_previous();
  next.clear_retire_at_micros();
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(Commit(name, next, batch, "retiring the previous build"));
  return next;
}

absl::StatusOr<v1::ProjectionCatalog> BuildCatalog::DropShadow(
    std::string_view name, const v1::ProjectionCatalog& catalog) {
  if (catalog.shadow().empty()) return Lacks(name, "shadow");
  v1::ProjectionCatalog next = catalog;
  ClearShadow(next);
  rocksdb::WriteBatch batch;
  RETURN_IF_ERROR(Commit(name, next, batch, "dropping the shadow build"));
  return next;
}

}  // namespace fidelis::storage
