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
      commands_(database->Family(kCommandsFamily)) {}

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

namespace {

absl::Status CheckRequest(const AppendRequest& request) {
  if (request.streams.empty()) return absl::InvalidArgumentError("append names no stream");
  absl::flat_hash_set<std::string_view> seen;
  for (const StreamAppend& stream : request.streams) {
    if (stream.stream_id.empty() || stream.stream_id.size() > 512 ||
        stream.stream_id.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError("stream id must be 1 to 512 bytes without NUL");
    }
    if (!seen.insert(stream.stream_id).second) {
      return absl::InvalidArgumentError(
          StrCat("stream ", stream.stream_id, " appears twice in one append"));
    }
    if (stream.events.empty()) {
      return absl::InvalidArgumentError(StrCat("no events for stream ", stream.stream_id));
    }
    if (stream.expected_version < kExpectAny) {
      return absl::InvalidArgumentError("expected version must be -1 (any) or >= 0");
    }
  }
  return absl::OkStatus();
}

absl::Status VersionConflict(const std::string& stream_id, int64_t expected, int64_t actual) {
  absl::Status status =
      absl::AbortedError(StrCat("version conflict on stream ", stream_id, ": expected version ",
                                expected, ", current version is ", actual));
  status.SetPayload(kCurrentVersionPayloadKey, absl::Cord(StrCat(actual)));
  status.SetPayload(kConflictStreamPayloadKey, absl::Cord(stream_id));
  return status;
}

AppendResult ResultFromRecord(const v1::CommandRecord& record) {
  AppendResult result;
  result.first_position = record.first_position();
  result.last_position = record.last_position();
  result.streams.assign(record.streams().begin(), record.streams().end());
  result.deduplicated = true;
  return result;
}

}  // namespace

absl::StatusOr<int64_t> RocksDbEventStore::HeadOf(
    const std::string& stream_id, const absl::flat_hash_map<std::string, int64_t>& group) {
  if (auto it = group.find(stream_id); it != group.end()) return it->second;
  if (auto it = heads_.find(stream_id); it != heads_.end()) return it->second;
  ASSIGN_OR_RETURN(int64_t version, StreamVersion(stream_id));
  if (heads_.size() >= (1u << 20)) heads_.clear();  // A cache, not the truth: bound it.
  heads_.emplace(stream_id, version);
  return version;
}

void RocksDbEventStore::Prepare(Writer& writer, rocksdb::WriteBatch& batch,
                                absl::flat_hash_map<std::string, int64_t>& heads,
                                uint64_t& next_position) {
  const AppendRequest& request = writer.request;
  // Check every expectation before writing anything, so a rejected batch adds nothing.
  std::vector<int64_t> versions;
  for (const StreamAppend& stream : request.streams) {
    absl::StatusOr<int64_t> head = HeadOf(stream.stream_id, heads);
    if (!head.ok()) {
      writer.result = head.status();
      return;
    }
    if (stream.expected_version != kExpectAny && stream.expected_version != *head) {
      writer.result = VersionConflict(stream.stream_id, stream.expected_version, *head);
      return;
    }
    versions.push_back(*head);
  }
  AppendResult result;
  result.first_position = next_position;
  v1::StoredEvent record;
  std::string key, value;
  for (size_t i = 0; i < request.streams.size(); ++i) {
    const StreamAppend& stream = request.streams[i];
    int64_t version = versions[i];
    for (const EventToAppend& event : stream.events) {
      ++version;
      const uint64_t position = next_position++;
      record.set_global_position(position);
      record.set_stream_id(stream.stream_id);
      record.set_stream_version(version);
      record.set_type(event.type);
      record.set_schema_version(event.schema_version);
      record.set_timestamp_micros(event.timestamp_micros);
      record.set_payload(event.payload);
      *record.mutable_metadata() = event.metadata;
      record.SerializeToString(&value);
      key = EventKey(position);
      batch.Put(events_, key, value);
      std::string position_value;
      PutBigEndian64(&position_value, position);
      batch.Put(streams_, StreamKey(stream.stream_id, version), position_value);
    }
    heads[stream.stream_id] = version;
    v1::StreamVersion* sv = &result.streams.emplace_back();
    sv->set_stream_id(stream.stream_id);
    sv->set_version(version);
  }
  result.last_position = next_position - 1;
  if (!request.command_id.empty()) {
    v1::CommandRecord command;
    command.set_fingerprint(request.fingerprint);
    command.set_first_position(result.first_position);
    command.set_last_position(result.last_position);
    for (const auto& sv : result.streams) *command.add_streams() = sv;
    batch.Put(commands_, request.command_id, command.SerializeAsString());
  }
  writer.result = std::move(result);
}

void RocksDbEventStore::AppendAsync(AppendRequest request, AppendCallback done) {
  if (absl::Status valid = CheckRequest(request); !valid.ok()) {
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
    // Results go out in queue order; the callbacks run without any lock held.
    for (std::unique_ptr<Writer>& w : group) std::move(w->done)(std::move(w->result));
    // Sequentially consistent with WaitUntilNoPendingAppends: either it sees pending_ at zero,
    // or this sees its waiter count.
    if (pending_.fetch_sub(group.size()) == group.size() && drain_waiters_.load() > 0) {
      absl::MutexLock lock(&drain_mu_);
      drained_cv_.SignalAll();
    }
    group.clear();
  }
}

void RocksDbEventStore::CommitGroup(std::vector<std::unique_ptr<Writer>>& group) {
  absl::Status write_error;
  {
    absl::MutexLock lock(&mu_);
    write_error = write_error_;
  }
  rocksdb::WriteBatch batch;
  uint64_t next_position = head_position_.load(std::memory_order_relaxed) + 1;
  absl::flat_hash_map<std::string, int64_t> group_heads;
  absl::flat_hash_map<std::string, int> group_commands;
  bool wrote_any = false;
  for (size_t i = 0; i < group.size(); ++i) {
    Writer& w = *group[i];
    if (!write_error.ok()) {
      w.result = write_error;
      continue;
    }
    const AppendRequest& r = w.request;
    if (!r.command_id.empty()) {
      auto [it, inserted] = group_commands.emplace(r.command_id, static_cast<int>(i));
      if (!inserted) {
        if (group[it->second]->request.fingerprint != r.fingerprint) {
          w.result = absl::AlreadyExistsError(
              StrCat("command_id ", r.command_id, " was already used for a different request"));
        } else {
          w.alias_of = it->second;
        }
        continue;
      }
      absl::StatusOr<std::optional<v1::CommandRecord>> earlier = FindCommand(r.command_id);
      if (!earlier.ok()) {
        w.result = earlier.status();
        continue;
      }
      if (earlier->has_value()) {
        if ((*earlier)->fingerprint() != r.fingerprint) {
          w.result = absl::AlreadyExistsError(
              StrCat("command_id ", r.command_id, " was already used for a different request"));
        } else {
          w.result = ResultFromRecord(**earlier);
        }
        continue;
      }
    }
    Prepare(w, batch, group_heads, next_position);
    wrote_any = wrote_any || w.result.ok();
  }

  if (wrote_any) {
    rocksdb::WriteOptions write_options;
    write_options.sync = database_->options().sync_writes;
    if (write_options.sync && group.size() > 1 &&
        options_.min_sync_interval > absl::ZeroDuration()) {
      next_group_at_ =
          std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(options_.min_sync_interval);
    }
    rocksdb::Status written = database_->db()->Write(write_options, &batch);
    if (written.ok()) {
      for (auto& [stream, version] : group_heads) heads_[stream] = version;
      {
        absl::MutexLock head_lock(&head_mu_);
        head_position_.store(next_position - 1, std::memory_order_release);
        head_cv_.SignalAll();
      }
      NotifyHeadListeners(next_position - 1);
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

bool RocksDbEventStore::healthy() {
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
