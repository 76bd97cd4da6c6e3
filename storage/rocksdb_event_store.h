// RocksDbEventStore: the embedded EventStore on RocksDB, with group commit.
//
// Appends are group-committed the way LevelDB's DBImpl::Write works: every caller queues a
// Writer; the one at the front becomes the leader, takes the whole queue (bounded), checks
// each batch's expected versions against the in-memory stream heads, assigns consecutive
// global positions, and writes everything as one rocksdb::WriteBatch with one WAL sync. The
// others sleep until the leader hands them their result. No thread is acknowledged before the
// sync (when sync is on).
//
// Thread-safety: every public method may be called from any thread. The Database must outlive
// the store. After a failed write the store refuses every further append (UNAVAILABLE) until
// it is reopened, because the state of the WAL is then unknown.
#pragma once

#include <atomic>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/database.h"
#include "storage/event_store.h"

namespace fidelis::storage {

struct EventStoreOptions {
  // Appends waiting beyond this many are refused with RESOURCE_EXHAUSTED.
  size_t max_pending_appends = 4096;
  // Upper bound of batches one group commit takes.
  size_t max_group_size = 512;
};

class RocksDbEventStore : public EventStore {
 public:
  // `database` is not owned and must outlive the store.
  static absl::StatusOr<std::unique_ptr<RocksDbEventStore>> Open(Database* database,
                                                                 EventStoreOptions options = {});

  absl::StatusOr<AppendResult> Append(AppendRequest request) override;
  absl::StatusOr<std::optional<v1::CommandRecord>> FindCommand(
      std::string_view command_id) const override;
  absl::StatusOr<std::vector<v1::StoredEvent>> ReadStream(std::string_view stream_id,
                                                          int64_t from_version,
                                                          size_t max_count) const override;
  absl::StatusOr<int64_t> StreamVersion(std::string_view stream_id) const override;
  absl::Status Scan(uint64_t from_position, size_t max_count,
                    const std::function<bool(const v1::StoredEvent&)>& visit) const override;
  absl::Status ScanRaw(uint64_t from_position, size_t max_count,
                       const std::function<bool(uint64_t, std::string_view)>& visit) const override;
  uint64_t HeadPosition() const override { return head_position_.load(std::memory_order_acquire); }
  uint64_t WaitForHead(uint64_t after_position, absl::Time deadline) const override;
  size_t PendingAppends() const override { return pending_.load(std::memory_order_relaxed); }

  // False once a write failed (appends are then refused until the store is reopened).
  bool healthy();

 private:
  struct Writer;

  RocksDbEventStore(Database* database, EventStoreOptions options);

  // Adds `writer`'s batch to `batch` if its expectations hold against `heads` (the stream
  // heads as of the batches already in this group); otherwise sets its result to the error.
  void PrepareLocked(Writer& writer, rocksdb::WriteBatch& batch,
                     absl::flat_hash_map<std::string, int64_t>& heads, uint64_t& next_position)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> HeadOfLocked(const std::string& stream_id,
                                       const absl::flat_hash_map<std::string, int64_t>& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Database* const database_;
  const EventStoreOptions options_;
  rocksdb::ColumnFamilyHandle* const events_;
  rocksdb::ColumnFamilyHandle* const streams_;
  rocksdb::ColumnFamilyHandle* const commands_;

  absl::Mutex mu_;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  // Cache of stream heads (version of the last event); a miss reads the streams family.
  absl::flat_hash_map<std::string, int64_t> heads_ ABSL_GUARDED_BY(mu_);
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> head_position_{0};
  std::atomic<size_t> pending_{0};  // writers_.size(), readable without mu_.
  mutable absl::Mutex head_mu_;
  mutable absl::CondVar head_cv_;
};

}  // namespace fidelis::storage
