#include "storage/snapshot_store.h"

#include "domain/strings.h"
#include "storage/key_format.h"

namespace fidelis::storage {

SnapshotStore::SnapshotStore(Database* database)
    : database_(database), family_(database->Family(kSnapshotsFamily)) {}

absl::StatusOr<std::optional<std::string>> SnapshotStore::Get(std::string_view stream_id) const {
  std::string value;
  rocksdb::Status s = database_->db()->Get(
      rocksdb::ReadOptions(), family_, rocksdb::Slice(stream_id.data(), stream_id.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  absl::Status status = FromRocks(s, "reading a snapshot");
  if (!status.ok()) return status;
  return value;
}

absl::Status SnapshotStore::Put(std::string_view stream_id, std::string_view snapshot) {
  return FromRocks(database_->db()->Put(rocksdb::WriteOptions(), family_,
                                        rocksdb::Slice(stream_id.data(), stream_id.size()),
                                        rocksdb::Slice(snapshot.data(), snapshot.size())),
                   "writing a snapshot");
}

}  // namespace fidelis::storage
