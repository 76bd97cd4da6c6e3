// NatsEventStore: the event log of a cluster node. The log of record is one JetStream stream
// (jetstream.h), replicated by JetStream's Raft; every node keeps a local replica of it in
// RocksDB (RocksDbEventStore), which every read is served from at local speed.
//
// Appending. One writer thread takes the appends queued since its last publish (group
// commit), checks their expected versions and command ids against the replica, and assembles
// one LogBatch with consecutive positions after the replica's head (log_batch.h). It publishes
// the batch with the expected last sequence set to the sequence the replica holds, and a
// message id, so that:
//   - a node that missed another node's append is refused (the stream is past that sequence):
//     it catches up, decides the group again against the new state (a request whose expected
//     version no longer holds gets ABORTED, which the command handler decides again from
//     fresh state; a command id found applied returns its stored result), and publishes again;
//     two nodes never both append on a stale state;
//   - a re-publish after a lost acknowledgement cannot store the batch twice.
// Publishes are pipelined: while up to max_publishes_in_flight batches wait for their
// acknowledgements, the writer decides the next group on the replica plus what those batches
// will have written (positions, stream versions, command ids), and publishes it expecting the
// sequence after them and, as the last message id, the id of the batch before it. JetStream
// therefore stores it only if every batch before it was stored. A refusal refuses the batches
// chained behind it too; the writer then decides each of them again, in order, on the replica
// once it has caught up. Groups are answered in order, so no answer rests on a batch that was
// not stored.
// A request is answered only after JetStream's acknowledgement, which comes once the batch is
// stored on a quorum of the stream's replicas, and after the local replica holds it.
//
// Replicating. A second thread follows the stream with an ordered consumer from the sequence
// after the replica's, and writes each batch into the replica (its own batches included,
// unless the writer got there first), with the batch's sequence in the same RocksDB write, so
// a restart resumes where it stopped. A node with an empty replica rebuilds it from the whole
// stream, logging its progress; caught_up() tells when it holds what the stream held when it
// started.
//
// When NATS is unreachable, appends get UNAVAILABLE (the request may or may not have been
// stored: a retry with the same command id is answered from the log either way), reads go on
// from the replica, and the connection comes back by itself.
//
// Thread-safety: every public method is thread-safe. Callbacks run on the writer thread, as
// with RocksDbEventStore: quick, and an AppendAsync from one goes ahead of the queue.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/database.h"
#include "storage/event_store.h"
#include "storage/nats/jetstream.h"
#include "storage/rocksdb_event_store.h"
#include "storage/steady_wait.h"

namespace fidelis::storage::nats {

struct NatsEventStoreOptions {
  JetStreamOptions jetstream;
  // Appends waiting beyond this many are refused with RESOURCE_EXHAUSTED.
  size_t max_pending_appends = 4096;
  // Upper bound of appends one published batch takes.
  size_t max_group_size = 512;
  // Batches published and not yet acknowledged, at most. Each names the one before it, so
  // JetStream stores it only after that one; 1 publishes one batch at a time.
  size_t max_publishes_in_flight = 4;
  // How long the writer keeps trying to publish a batch while connected (a stream leader is
  // being elected after a server failed) before its appends get UNAVAILABLE. Without a
  // connection it gives up after two seconds.
  absl::Duration publish_deadline = absl::Seconds(10);
  // Names this node in message ids; empty: a random id.
  std::string node_id;
  // Told of published groups and refusals; not owned; null means none.
  AppendObserver* observer = nullptr;
};

class NatsEventStore : public EventStore {
 public:
  // Opens the replica in `database` (not owned; it must outlive the store), connects to NATS
  // and starts the writer and the replicator. Does not wait for NATS: a node starts while the
  // cluster is down, serves its replica and catches up when NATS comes back.
  static absl::StatusOr<std::unique_ptr<NatsEventStore>> Open(Database* database,
                                                              NatsEventStoreOptions options);
  ~NatsEventStore() override;

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
  uint64_t HeadPosition() const override { return replica_->HeadPosition(); }
  uint64_t WaitForHead(uint64_t after_position, absl::Duration timeout) const override;
  size_t PendingAppends() const override { return pending_.load(std::memory_order_relaxed); }
  bool WaitUntilNoPendingAppends(absl::Duration timeout) const override;

  // OK once the replica holds `position`; OUT_OF_RANGE when the stream's newest batch ends
  // before it; DEADLINE_EXCEEDED when the replica did not get there within `timeout`.
  absl::Status AwaitPosition(uint64_t position, absl::Duration timeout) const override;
  // True once the replica holds every batch the stream held when the store first reached it.
  bool WaitUntilReady(absl::Duration timeout) const override;
  // Whether the NATS connection is up right now.
  bool reachable() const override { return log_->connected(); }
  bool shared() const override { return true; }
  absl::Status CatchUp(absl::Duration timeout) const override;

  // The JetStream sequence of the last batch the replica holds.
  uint64_t replicated_sequence() const { return replica_->replicated_sequence(); }
  // Batches published while another was in flight, and publishes refused because the stream
  // had moved (another node appended), since the store opened.
  uint64_t chained_publishes() const { return chained_publishes_.load(); }
  uint64_t refused_publishes() const { return refused_publishes_.load(); }

 private:
  struct Writer;
  class Forwarder;

  NatsEventStore(NatsEventStoreOptions options, std::unique_ptr<RocksDbEventStore> replica,
                 std::unique_ptr<JetStreamLog> log);

  struct InFlight;

  // The writer thread's, all of these.
  void WriterLoop();
  // Decides `f.group` into `f.batch` after `f.next_position`, on the replica and on what the
  // groups in flight write; sets each request's result, and `f.next_position` to the position
  // after the batch. Requires apply_mu_.
  void AssembleLocked(InFlight& f) ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Decides `group` on the replica and what is in flight, and publishes it behind them.
  void StartGroup(std::vector<std::unique_ptr<Writer>> group);
  // Waits for the oldest group's answer and answers it (or decides it again).
  void FinishOldest();
  // After `refused` was refused: decides it and every group after it again, one at a time.
  void DecideAgain(InFlight refused);
  void ForgetInFlight();
  bool RepeatsCommandInFlight(const std::vector<std::unique_ptr<Writer>>& group);
  // Publishes `f` again until it is answered (ABORTED included) or its deadline passes.
  absl::StatusOr<PubAck> PublishUntilAnswered(const InFlight& f, absl::Status failed);
  // Writes a stored group into the replica and sets its results (or `ack`'s error).
  void Stored(const InFlight& f, const absl::StatusOr<PubAck>& ack);
  void ResolveAliases(std::vector<std::unique_ptr<Writer>>& group);
  // Calls back every request of `group` and empties it.
  void Answer(std::vector<std::unique_ptr<Writer>>& group);
  // Decides and publishes `f.group` on its own, catching up after refusals, until it is
  // answered; sets its results. Nothing may be in flight.
  void CommitGroup(InFlight& f);
  void ReplicatorLoop();
  // Writes a batch the stream holds at `sequence` into the replica, unless it holds it
  // already. Requires apply_mu_.
  absl::Status ApplyLocked(const v1::LogBatch& batch, uint64_t sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_);
  // Blocks until the replica holds `sequence` or `timeout` passes.
  bool AwaitSequence(uint64_t sequence, absl::Duration timeout) const;
  // A stream's version in the replica, from heads_ when cached. Requires apply_mu_ (asserted:
  // it runs inside BatchAssembler::Add).
  absl::StatusOr<int64_t> HeadLocked(const std::string& stream_id);

  const NatsEventStoreOptions options_;
  const std::string node_id_;
  const std::unique_ptr<RocksDbEventStore> replica_;
  const std::unique_ptr<JetStreamLog> log_;
  // Tells this store's head listeners when the replica's head moves.
  std::unique_ptr<Forwarder> forwarder_;

  // Serializes writes into the replica (the writer's own batches and the replicator's).
  absl::Mutex apply_mu_;
  // Stream versions in the replica, for assembling; a cache, bounded.
  absl::flat_hash_map<std::string, int64_t> heads_ ABSL_GUARDED_BY(apply_mu_);
  mutable absl::Mutex applied_mu_;
  mutable SteadyCondVar applied_cv_;  // Signalled when the replica's sequence moves.

  absl::Mutex mu_;
  SteadyCondVar work_cv_;
  std::deque<std::unique_ptr<Writer>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t answers_ ABSL_GUARDED_BY(mu_) = 0;            // Publishes answered, ever.
  std::vector<std::unique_ptr<Writer>> from_callbacks_;  // Writer thread only.
  uint64_t published_ = 0;                               // Writer thread only.
  // Writer thread only: the groups in flight, oldest first, and the stream versions and
  // command ids they carry.
  std::deque<InFlight> in_flight_;
  absl::flat_hash_map<std::string, int64_t> heads_in_flight_;
  absl::flat_hash_set<std::string> commands_in_flight_;

  std::atomic<size_t> pending_{0};
  std::atomic<uint64_t> chained_publishes_{0};
  std::atomic<uint64_t> refused_publishes_{0};
  mutable std::atomic<int> drain_waiters_{0};
  mutable absl::Mutex drain_mu_;
  mutable SteadyCondVar drained_cv_;
  std::atomic<bool> caught_up_{false};
  std::atomic<bool> stop_replicator_{false};

  std::thread replicator_;
  std::thread writer_;  // Last: started once everything above is initialised.
};

}  // namespace fidelis::storage::nats
