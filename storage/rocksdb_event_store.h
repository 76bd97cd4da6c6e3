// RocksDbEventStore: the embedded EventStore on RocksDB, with group commit.
//
// Appends are group-committed by one writer thread, which owns the log's tail: callers queue
// their batches and return (AppendAsync) or wait (Append); the writer takes everything queued
// (bounded), checks each batch's expected versions against the in-memory stream heads, assigns
// consecutive global positions, writes everything as one rocksdb::WriteBatch with one WAL
// sync, and then hands every batch its result. No append is acknowledged before the sync
// (when sync is on). While the writer syncs, new batches queue for the next group, so a group
// grows with the load.
//
// Pacing (a commit delay): when a synced group held more than one batch, so that batches are
// arriving faster than one per sync, the next group starts no sooner than
// `min_sync_interval` after that one started. The batches arriving meanwhile share one sync
// instead of taking one each. A lone batch after a quiet spell is never delayed.
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
#include "storage/log_batch.h"
#include "storage/steady_wait.h"

namespace fidelis::storage {

struct EventStoreOptions {
  // Appends waiting beyond this many are refused with RESOURCE_EXHAUSTED.
  size_t max_pending_appends = 4096;
  // Upper bound of batches one group commit takes.
  size_t max_group_size = 512;
  // Least time between the starts of two synced group commits while batches arrive faster
  // than one per sync (see the pacing above). Zero: every group starts as soon as the one
  // before it ends. Has no effect when the database does not sync its writes.
  absl::Duration min_sync_interval = absl::ZeroDuration();
  // Told of group commits and refusals; not owned; null means none.
  AppendObserver* observer = nullptr;
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
  uint64_t WaitForHead(uint64_t after_position, absl::Duration timeout) const override;
  size_t PendingAppends() const override { return pending_.load(std::memory_order_relaxed); }
  bool WaitUntilNoPendingAppends(absl::Duration timeout) const override;

  bool healthy() const override;

  // ---- As a cluster node's replica (storage/nats/) ----
  // Writes `batch`, which another writer ordered (its first event must take the position after
  // the head), together with `source_sequence`, its sequence in the log of record, in one
  // RocksDB write (synced when the database syncs writes), then publishes the new head. A
  // replica is never appended to with AppendAsync. DATA_LOSS when the batch does not follow
  // the head; UNAVAILABLE when the write fails. One thread at a time.
  absl::Status ApplyReplicated(const v1::LogBatch& batch, uint64_t source_sequence);
  // The source sequence of the last batch ApplyReplicated wrote (0: none). Thread-safe.
  uint64_t replicated_sequence() const {
    return replicated_sequence_.load(std::memory_order_acquire);
  }

 private:
  struct Writer;

  RocksDbEventStore(Database* database, EventStoreOptions options);

  // The writer thread: takes groups off the queue until the store is destroyed.
  void WriterLoop();
  // Writes one group (log_batch.h) and sets every writer's result. Writer thread only.
  void CommitGroup(std::vector<std::unique_ptr<Writer>>& group);
  // A stream's version, from heads_ or the streams family. Writer thread only.
  absl::StatusOr<int64_t> HeadOf(const std::string& stream_id);
  // Makes `head` the head of the log and tells whoever waits for it.
  void PublishHead(uint64_t head);

  Database* const database_;
  const EventStoreOptions options_;
  rocksdb::ColumnFamilyHandle* const events_;
  rocksdb::ColumnFamilyHandle* const streams_;
  rocksdb::ColumnFamilyHandle* const commands_;
  rocksdb::ColumnFamilyHandle* const meta_;
  const LogFamilies families_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // Signalled when a batch is queued or the store stops.
  std::deque<std::unique_ptr<Writer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status write_error_ ABSL_GUARDED_BY(mu_);

  // Writer thread only: the cache of stream heads (version of the last event); a miss reads
  // the streams family.
  absl::flat_hash_map<std::string, int64_t> heads_;
  // Writer thread only: appends started by callbacks, for the front of the next group.
  std::vector<std::unique_ptr<Writer>> from_callbacks_;
  // Writer thread only: the batch each group is assembled in, kept to reuse its allocations.
  v1::LogBatch scratch_;
  // Writer thread only: the next group does not start before this (pacing).
  SteadyTime next_group_at_{};

  std::atomic<uint64_t> head_position_{0};
  std::atomic<uint64_t> replicated_sequence_{0};
  // Appends queued or being written, readable without mu_.
  std::atomic<size_t> pending_{0};
  mutable absl::Mutex head_mu_;
  mutable SteadyCondVar head_cv_;
  // WaitUntilNoPendingAppends callers; the writer signals drained_cv_ when the queue empties
  // and one waits (and only then, so that an unwatched store pays nothing per group).
  mutable std::atomic<int> drain_waiters_{0};
  mutable absl::Mutex drain_mu_;
  mutable SteadyCondVar drained_cv_;

  std::thread writer_;  // Last: started once everything above is initialised.
};

}  // namespace fidelis::storage
