// RocksDbEventStore: the embedded EventStore on RocksDB, with group commit.
//
// Appends are group-committed by one writer thread, which owns the log's tail: callers queue
// their batches and return (AppendAsync) or wait (Append); the writer takes everything queued
// (bounded), checks each batch's expected versions against the in-memory stream heads, assigns
// consecutive global positions, writes everything as one rocksdb::WriteBatch with one WAL
// sync, and then hands the group to a completion thread, which gives every batch its result
// while the writer commits the next group. No append is acknowledged before the sync (when
// sync is on). While the writer syncs, new batches queue for the next group, so a group grows
// with the load.
//
// Thread-safety: every public method may be called from any thread. The Database must outlive
// the store; destroying the store finishes the appends already queued. After a failed write
// the store refuses every further append (UNAVAILABLE) until it is reopened, because the
// state of the WAL is then unknown.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

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

  ~RocksDbEventStore() override;

  void AppendAsync(AppendRequest request, AppendCallback done) override;
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

  // The writer thread: takes groups off the queue, commits them and hands them to the
  // completion thread, until the store is destroyed and every callback has run.
  void WriterLoop();
  // The completion thread: runs the callbacks of committed groups in commit order, while the
  // writer commits the next group.
  void CompleterLoop();
  // Writes one group and sets every writer's result. Writer thread only.
  void CommitGroup(std::vector<std::unique_ptr<Writer>>& group);
  // Adds `writer`'s batch to `batch` if its expectations hold against `heads` (the stream
  // heads as of the batches already in this group); otherwise sets its result to the error.
  // Writer thread only.
  void Prepare(Writer& writer, rocksdb::WriteBatch& batch,
               absl::flat_hash_map<std::string, int64_t>& heads, uint64_t& next_position);
  absl::StatusOr<int64_t> HeadOf(const std::string& stream_id,
                                 const absl::flat_hash_map<std::string, int64_t>& group);

  Database* const database_;
  const EventStoreOptions options_;
  rocksdb::ColumnFamilyHandle* const events_;
  rocksdb::ColumnFamilyHandle* const streams_;
  rocksdb::ColumnFamilyHandle* const commands_;

  absl::Mutex mu_;
  // Signalled to the writer thread when an append is queued, a committed group's callbacks
  // have run, or the store stops.
  absl::CondVar work_cv_;
  std::deque<std::unique_ptr<Writer>> queue_ ABSL_GUARDED_BY(mu_);
  // Appends started by callbacks, for the front of the next group.
  std::vector<std::unique_ptr<Writer>> from_callbacks_ ABSL_GUARDED_BY(mu_);
  // Groups the writer committed, in order, waiting for the completion thread to run their
  // callbacks; signalled by committed_cv_.
  std::deque<std::vector<std::unique_ptr<Writer>>> committed_ ABSL_GUARDED_BY(mu_);
  absl::CondVar committed_cv_;
  // Committed groups whose callbacks have not all run yet (they may still start appends); the
  // writer does not take a group while this is above 1.
  size_t completing_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool writer_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);

  // Writer thread only: the cache of stream heads (version of the last event); a miss reads
  // the streams family.
  absl::flat_hash_map<std::string, int64_t> heads_;

  std::atomic<uint64_t> head_position_{0};
  // Appends queued or being written, readable without mu_.
  std::atomic<size_t> pending_{0};
  mutable absl::Mutex head_mu_;
  mutable absl::CondVar head_cv_;

  // Last: started once everything above is initialised.
  std::thread writer_;
  std::thread completer_;  // Runs the callbacks of committed groups (CompleterLoop).
};

}  // namespace fidelis::storage
