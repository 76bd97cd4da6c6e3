#include "storage/rocksdb_event_store.h"

#include <sys/prctl.h>

#include <chrono>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/cord.h"
#include "absl/synchronization/notification.h"
#include "domain/status_macros.h"
#include "domain/strings.h"
#include "storage/key_format.h"
#include "storage/log_batch.h"
#include "storage/thread_name.h"

namespace fidelis::storage {

struct RocksDbEventStore::Writer {
  Writer(AppendRequest r, AppendCallback d) : request(std::move(r)), done(std::move(d)) {}
  AppendRequest request;
  AppendCallback done;
  absl::StatusOr<AppendResult> result;
  // Index of an earlier writer of the same group with the same command_id, or -1.
  int alias_of = -1;
};

RocksDbEventStore::RocksDbEventStore(Database* database, EventStoreOptions options)
    : database_(database),
      options_(options),
      events_(database->Family(kEventsFamily)),
      streams_(database->Family(kStreamsFamily)),
      commands_(database->Family(kCommandsFamily)),
      meta_(database->Family(kMetaFamily)),
      families_{events_, streams_, commands_} {}

absl::StatusOr<std::unique_ptr<RocksDbEventStore>> RocksDbEventStore::Open(
    Database* database, EventStoreOptions options) {
  std::unique_ptr<RocksDbEventStore> store(new RocksDbEventStore(database, options));
  std::unique_ptr<rocksdb::Iterator> it(
      database->db()->NewIterator(rocksdb::ReadOptions(), store->events_));
  it->SeekToLast();
  if (it->Valid()) {
    if (it->key().size() != 8) {
      return absl::DataLossError("event log holds a key that is not a position");
    }
    store->head_position_ = DecodeBigEndian64(it->key().ToStringView());
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading the head of the event log"));
  std::string sequence;
  rocksdb::Status read =
      database->db()->Get(rocksdb::ReadOptions(), store->meta_, kReplicatedSequenceKey, &sequence);
  if (read.ok() && sequence.size() == 8) {
    store->replicated_sequence_ = DecodeBigEndian64(sequence);
  } else if (!read.IsNotFound()) {
    RETURN_IF_ERROR(FromRocks(read, "reading the replica's sequence"));
  }
  RocksDbEventStore* raw = store.get();
  store->writer_ = std::thread([raw] {
    NameThisThread("fidelis-log");
    raw->WriterLoop();
  });
  return store;
}

RocksDbEventStore::~RocksDbEventStore() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_cv_.Signal();
  }
  if (writer_.joinable()) writer_.join();
}

absl::StatusOr<int64_t> RocksDbEventStore::HeadOf(const std::string& stream_id) {
  if (auto it = heads_.find(stream_id); it != heads_.end()) return it->second;
  ASSIGN_OR_RETURN(int64_t version, StreamVersion(stream_id));
  if (heads_.size() >= (1u << 20)) heads_.clear();  // A cache, not the truth: bound it.
  heads_.emplace(stream_id, version);
  return version;
}

void RocksDbEventStore::AppendAsync(AppendRequest request, AppendCallback done) {
  if (absl::Status valid = CheckAppendRequest(request); !valid.ok()) {
    std::move(done)(std::move(valid));
    return;
  }
  auto writer = std::make_unique<Writer>(std::move(request), std::move(done));
  if (std::this_thread::get_id() == writer_.get_id()) {
    // From a callback: ahead of the queue (see EventStore::AppendAsync).
    from_callbacks_.push_back(std::move(writer));
    pending_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::UnavailableError("the event log is shutting down");
    } else if (queue_.size() >= options_.max_pending_appends) {
      refused = absl::ResourceExhaustedError(
          StrCat("the event log has ", queue_.size(), " appends waiting; retry with backoff"));
      if (options_.observer != nullptr) options_.observer->OnAppendRefused();
    } else {
      queue_.push_back(std::move(writer));
      pending_.fetch_add(1, std::memory_order_relaxed);
      work_cv_.Signal();
      return;
    }
  }
  std::move(writer->done)(std::move(refused));
}

void RocksDbEventStore::WriterLoop() {
  // The pause between paced groups is a few hundred microseconds: let this thread's timed
  // sleeps end within a microsecond of their deadline instead of Linux's default 50.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  std::vector<std::unique_ptr<Writer>> group;
  while (true) {
    // A plain sleep rather than a wait on work_cv_, which every queued append signals.
    if (std::chrono::steady_clock::now() < next_group_at_) {
      std::this_thread::sleep_until(next_group_at_);
    }
    group.swap(from_callbacks_);
    {
      absl::MutexLock lock(&mu_);
      while (group.empty() && queue_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (group.empty() && queue_.empty()) return;  // Stopping, and everything is answered.
      while (!queue_.empty() && group.size() < options_.max_group_size) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    CommitGroup(group);
    // Written: no longer pending, before the answers, so a caller that has its answer does
    // not find its own append still counted (callbacks that append count again).
    // Sequentially consistent with WaitUntilNoPendingAppends: either it sees pending_ at zero,
    // or this sees its waiter count.
    if (pending_.fetch_sub(group.size()) == group.size() && drain_waiters_.load() > 0) {
      absl::MutexLock lock(&drain_mu_);
      drained_cv_.SignalAll();
    }
    // Results go out in queue order; the callbacks run without any lock held.
    for (std::unique_ptr<Writer>& w : group) std::move(w->done)(std::move(w->result));
    group.clear();
  }
}

void RocksDbEventStore::CommitGroup(std::vector<std::unique_ptr<Writer>>& group) {
  absl::Status write_error;
  {
    absl::MutexLock lock(&mu_);
    write_error = write_error_;
  }
  BatchAssembler assembler(
      head_position_.load(std::memory_order_relaxed) + 1,
      [this](const std::string& stream_id) { return HeadOf(stream_id); },
      [this](const std::string& id) { return FindCommand(id); }, &scratch_);
  for (std::unique_ptr<Writer>& w : group) {
    if (!write_error.ok()) {
      w->result = write_error;
      continue;
    }
    BatchAssembler::Outcome outcome = assembler.Add(w->request);
    w->result = std::move(outcome.result);
    w->alias_of = outcome.alias_of;
  }

  if (!assembler.empty()) {
    rocksdb::WriteBatch batch;
    WriteLogBatch(assembler.batch(), families_, batch);
    rocksdb::WriteOptions write_options;
    write_options.sync = database_->options().sync_writes;
    if (write_options.sync && group.size() > 1 &&
        options_.min_sync_interval > absl::ZeroDuration()) {
      next_group_at_ =
          std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.min_sync_interval);
    }
    const auto write_started = std::chrono::steady_clock::now();
    rocksdb::Status written = database_->db()->Write(write_options, &batch);
    if (options_.observer != nullptr) {
      options_.observer->OnGroupCommitted(
          group.size(), assembler.batch().events_size(),
          absl::FromChrono(std::chrono::steady_clock::now() - write_started));
    }
    if (written.ok()) {
      for (const auto& [stream, version] : assembler.heads()) heads_[stream] = version;
      PublishHead(assembler.next_position() - 1);
    } else {
      absl::Status failed = FromRocks(written, "appending to the event log");
      failed = absl::UnavailableError(
          StrCat(failed.message(), "; appends are refused until the server restarts"));
      {
        absl::MutexLock lock(&mu_);
        write_error_ = failed;
      }
      // The cached heads may include versions that never reached disk.
      heads_.clear();
      for (std::unique_ptr<Writer>& w : group) {
        if (w->result.ok() && !w->result->deduplicated) w->result = failed;
      }
    }
  }
  for (std::unique_ptr<Writer>& w : group) {
    if (w->alias_of >= 0) {
      w->result = group[w->alias_of]->result;
      if (w->result.ok()) w->result->deduplicated = true;
    }
  }
}

void RocksDbEventStore::PublishHead(uint64_t head) {
  {
    absl::MutexLock head_lock(&head_mu_);
    head_position_.store(head, std::memory_order_release);
    head_cv_.SignalAll();
  }
  NotifyHeadListeners(head);
}

absl::Status RocksDbEventStore::ApplyReplicated(const v1::LogBatch& batch,
                                                uint64_t source_sequence) {
  const uint64_t head = head_position_.load(std::memory_order_acquire);
  if (batch.events_size() > 0 && batch.events(0).global_position() != head + 1) {
    return absl::DataLossError(StrCat("replicated batch ", source_sequence, " starts at position ",
                                      batch.events(0).global_position(),
                                      " but the replica's head is ", head));
  }
  rocksdb::WriteBatch write;
  WriteLogBatch(batch, families_, write);
  std::string sequence;
  PutBigEndian64(&sequence, source_sequence);
  write.Put(meta_, kReplicatedSequenceKey, sequence);
  rocksdb::WriteOptions write_options;
  write_options.sync = database_->options().sync_writes;
  RETURN_IF_ERROR(
      FromRocks(database_->db()->Write(write_options, &write), "applying a replicated batch"));
  replicated_sequence_.store(source_sequence, std::memory_order_release);
  if (batch.events_size() > 0) {
    PublishHead(batch.events(batch.events_size() - 1).global_position());
  }
  return absl::OkStatus();
}

bool RocksDbEventStore::healthy() const {
  absl::MutexLock lock(&mu_);
  return write_error_.ok();
}

absl::StatusOr<std::optional<v1::CommandRecord>> RocksDbEventStore::FindCommand(
    std::string_view command_id) const {
  std::string value;
  rocksdb::Status s =
      database_->db()->Get(rocksdb::ReadOptions(), commands_,
                           rocksdb::Slice(command_id.data(), command_id.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  RETURN_IF_ERROR(FromRocks(s, "reading a command record"));
  v1::CommandRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(StrCat("command record ", command_id, " does not parse"));
  }
  return record;
}

absl::StatusOr<int64_t> RocksDbEventStore::StreamVersion(std::string_view stream_id) const {
  std::unique_ptr<rocksdb::Iterator> it(
      database_->db()->NewIterator(rocksdb::ReadOptions(), streams_));
  const std::string prefix = StreamPrefix(stream_id);
  it->SeekForPrev(StreamKey(stream_id, std::numeric_limits<int64_t>::max()));
  if (it->Valid() && it->key().starts_with(prefix) && it->key().size() == prefix.size() + 8) {
    return static_cast<int64_t>(DecodeBigEndian64(it->key().ToStringView().substr(prefix.size())));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading a stream head"));
  return 0;
}

absl::StatusOr<std::vector<v1::StoredEvent>> RocksDbEventStore::ReadStream(
    std::string_view stream_id, int64_t from_version, size_t max_count) const {
  std::vector<v1::StoredEvent> events;
  rocksdb::ReadOptions read_options;
  const std::string upper = StreamUpperBound(stream_id);
  rocksdb::Slice upper_slice(upper);
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, streams_));
  std::vector<std::string> keys;
  for (it->Seek(StreamKey(stream_id, std::max<int64_t>(from_version, 1)));
       it->Valid() && keys.size() < max_count; it->Next()) {
    keys.push_back(EventKey(DecodeBigEndian64(it->value().ToStringView())));
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading a stream index"));
  for (const std::string& key : keys) {
    std::string value;
    rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(), events_, key, &value);
    RETURN_IF_ERROR(FromRocks(s, "reading an event of a stream"));
    if (!events.emplace_back().ParseFromString(value)) {
      return absl::DataLossError(
          StrCat("event at global position ", DecodeBigEndian64(key), " does not parse"));
    }
  }
  return events;
}

absl::Status RocksDbEventStore::Scan(
    uint64_t from_position, size_t max_count,
    const std::function<bool(const v1::StoredEvent&)>& visit) const {
  PerfCountersOff no_perf_counters;
  rocksdb::ReadOptions read_options;
  read_options.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, events_));
  v1::StoredEvent event;
  size_t visited = 0;
  for (it->Seek(EventKey(std::max<uint64_t>(from_position, 1))); it->Valid() && visited < max_count;
       it->Next()) {
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(StrCat("event at global position ",
                                        DecodeBigEndian64(it->key().ToStringView()),
                                        " does not parse"));
    }
    ++visited;
    if (!visit(event)) return absl::OkStatus();
  }
  return FromRocks(it->status(), "scanning the event log");
}

absl::Status RocksDbEventStore::ScanRaw(
    uint64_t from_position, size_t max_count,
    const std::function<bool(uint64_t, std::string_view)>& visit) const {
  PerfCountersOff no_perf_counters;
  rocksdb::ReadOptions read_options;
  read_options.readahead_size = 2 << 20;
  read_options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, events_));
  size_t visited = 0;
  for (it->Seek(EventKey(std::max<uint64_t>(from_position, 1))); it->Valid() && visited < max_count;
       it->Next()) {
    ++visited;
    if (!visit(DecodeBigEndian64(it->key().ToStringView()), it->value().ToStringView())) {
      return absl::OkStatus();
    }
  }
  return FromRocks(it->status(), "scanning the event log");
}

uint64_t RocksDbEventStore::WaitForHead(uint64_t after_position, absl::Duration timeout) const {
  const SteadyTime until = SteadyAfter(timeout);
  absl::MutexLock lock(&head_mu_);
  while (head_position_.load(std::memory_order_acquire) <= after_position) {
    if (!head_cv_.WaitUntil(&head_mu_, until)) break;
  }
  return head_position_.load(std::memory_order_acquire);
}

bool RocksDbEventStore::WaitUntilNoPendingAppends(absl::Duration timeout) const {
  if (pending_.load() == 0) return true;
  const SteadyTime until = SteadyAfter(timeout);
  drain_waiters_.fetch_add(1);
  {
    absl::MutexLock lock(&drain_mu_);
    // The writer signals under drain_mu_ after lowering pending_, so a drain between this test
    // and the wait is not missed.
    while (pending_.load() > 0 && drained_cv_.WaitUntil(&drain_mu_, until)) {
    }
  }
  drain_waiters_.fetch_sub(1);
  return pending_.load() == 0;
}

}  // namespace fidelis::storage
