// SnapshotStore: derived copies of aggregate state, so loading an aggregate reads one snapshot
// and the few events after it instead of its whole stream. The log stays the truth: a missing
// or unreadable snapshot only costs a longer read. Thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/database.h"

namespace fidelis::storage {

class SnapshotStore {
 public:
  // `database` must outlive the store.
  explicit SnapshotStore(Database* database);

  // The snapshot bytes of `stream_id`, or nullopt.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view stream_id) const;
  // Stores a snapshot. Unsynced: snapshots are written after the events they summarise are
  // durable, so one is never ahead of the log.
  absl::Status Put(std::string_view stream_id, std::string_view snapshot);

 private:
  Database* const database_;
  rocksdb::ColumnFamilyHandle* const family_;
};

}  // namespace fidelis::storage
