#include "server/read/replay.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "domain/event_types.h"
#include "domain/strings.h"
#include "spdlog/spdlog.h"
#include "storage/event_record.h"
#include "storage/thread_name.h"

namespace fidelis::server {

void ReplayStats::Add(const ReplayStats& later) {
  events_processed += later.events_processed;
  events_dispatched += later.events_dispatched;
  events_skipped += later.events_skipped;
  if (later.last_position > 0) last_position = later.last_position;
  for (const ReplayError& e : later.errors) {
    if (errors.size() < kMaxRecordedErrors) errors.push_back(e);
  }
}

namespace {

// Folds one event of a consumed category, whose payload decoded (or failed to), into `rows`
// under `policy`, and counts it in `stats`. FAILED_PRECONDITION when a FAIL policy stops the
// replay at this event (recorded in stats.errors, not counted as processed).
absl::Status ApplyOne(const storage::EventRecord& event,
                      const absl::StatusOr<const google::protobuf::Message*>& decoded,
                      const Projector& projector, const ReplayPolicy& policy, RowStore& rows,
                      ReplayStats& stats, const std::string& label) {
  auto record = [&](std::string message) {
    if (stats.errors.size() < kMaxRecordedErrors) {
      stats.errors.push_back({event.global_position, std::string(event.type), std::move(message)});
    }
  };
  if (!decoded.ok()) {
    const bool unknown = decoded.status().code() == absl::StatusCode::kNotFound;
    std::string message(decoded.status().message());
    if (unknown ? !policy.skip_unknown_events : !policy.skip_handler_errors) {
      record(message);
      return absl::FailedPreconditionError(StrCat("event ", event.type, " v", event.schema_version,
                                                  " at global position ", event.global_position,
                                                  ": ", message));
    }
    spdlog::warn(
        "{}: skipping {} event {} v{} at global position {}: {} [event_type={} "
        "global_position={}]",
        label, unknown ? "unknown" : "undecodable", event.type, event.schema_version,
        event.global_position, message, event.type, event.global_position);
    if (!unknown) record(message);
    ++stats.events_skipped;
  } else {
    EventView view;
    view.global_position = event.global_position;
    view.stream_id = event.stream_id;
    view.stream_version = event.stream_version;
    view.type = event.type;
    view.timestamp_micros = event.timestamp_micros;
    view.payload = *decoded;
    absl::Status applied = projector.Apply(view, rows);
    if (!applied.ok()) {
      std::string message(applied.message());
      record(message);
      if (!policy.skip_handler_errors) {
        return absl::FailedPreconditionError(StrCat("handler failed on ", event.type,
                                                    " at global position ", event.global_position,
                                                    ": ", message));
      }
      spdlog::error("{}: handler failed on {} at global position {}: {}", label, event.type,
                    event.global_position, message);
      ++stats.events_skipped;
    } else {
      ++stats.events_dispatched;
    }
  }
  ++stats.events_processed;
  stats.last_position = event.global_position;
  return absl::OkStatus();
}

bool Consumes(const Projector& projector, std::string_view stream_id) {
  const std::vector<std::string>& categories = projector.categories();
  return std::find(categories.begin(), categories.end(), CategoryOf(stream_id)) != categories.end();
}

}  // namespace

absl::Status ReplayRange(const storage::EventStore& store, EventDecoder& decoder,
                         const Projector& projector, uint64_t after_position, size_t max_events,
                         const ReplayPolicy& policy, RowStore& rows, ReplayStats& stats,
                         const std::string& label) {
  absl::Status stop;
  absl::Status scanned =
      store.Scan(after_position + 1, max_events, [&](const v1::StoredEvent& event) {
        if (!Consumes(projector, event.stream_id())) {
          ++stats.events_processed;
          stats.last_position = event.global_position();
          return true;
        }
        const storage::EventRecord record = storage::RecordOf(event);
        stop = ApplyOne(record, decoder.Decode(record.type, record.schema_version, record.payload),
                        projector, policy, rows, stats, label);
        return stop.ok();
      });
  if (!scanned.ok()) return scanned;
  return stop;
}

namespace {

// One batch of scanned, decoded events. Each chunk owns an arena that holds its events and
// their payloads; recycling a chunk resets the arena, so a steady replay neither allocates nor
// frees messages one by one (proto3 messages free their sub-messages on every Clear()).
struct Chunk {
  static constexpr size_t kArenaBlock = 1 << 20;

  Chunk() : arena_block(new char[kArenaBlock]), arena(ArenaOptions(arena_block.get())) {}

  struct Item {
    storage::EventRecord event;  // Views into a copy of the record on `arena`.
    bool consumed = false;
    // The payload when an upcaster produced it; payloads in the current schema are decoded
    // on `arena`.
    std::unique_ptr<google::protobuf::Message> upcast;
  };

  // Readies a recycled chunk for the next batch.
  void Reset() {
    for (size_t i = 0; i < size; ++i) items[i].upcast.reset();
    size = 0;
    scan_status = absl::OkStatus();
    last = false;
    arena.Reset();
  }

  std::unique_ptr<char[]> arena_block;  // The arena's first block, kept across resets.
  google::protobuf::Arena arena;
  std::vector<Item> items;  // The first `size` are this batch's.
  size_t size = 0;
  absl::Status scan_status;
  bool last = false;

 private:
  static google::protobuf::ArenaOptions ArenaOptions(char* block) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block;
    options.initial_block_size = kArenaBlock;
    options.max_block_size = kArenaBlock;
    return options;
  }
};

class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}

  // False when the consumer has stopped.
  bool Push(std::unique_ptr<Chunk> chunk) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &ChunkQueue::CanPush));
    if (stopped_) return false;
    full_.push_back(std::move(chunk));
    return true;
  }
  std::unique_ptr<Chunk> Pop() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &ChunkQueue::CanPop));
    auto chunk = std::move(full_.front());
    full_.pop_front();
    return chunk;
  }
  // Resets a used chunk, on the calling (applying) thread, and recycles its allocations for
  // the producer.
  void Recycle(std::unique_ptr<Chunk> chunk) {
    chunk->Reset();
    absl::MutexLock lock(&mu_);
    free_.push_back(std::move(chunk));
  }
  // An empty chunk: a recycled one when there is one.
  std::unique_ptr<Chunk> Fresh() {
    absl::MutexLock lock(&mu_);
    if (free_.empty()) return std::make_unique<Chunk>();
    std::unique_ptr<Chunk> chunk = std::move(free_.back());
    free_.pop_back();
    return chunk;
  }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }

 private:
  // The conditions Push and Pop wait for; Mutex::Await evaluates them with mu_ held.
  bool CanPush() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopped_ || full_.size() < capacity_;
  }
  bool CanPop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !full_.empty(); }

  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Chunk>> full_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Chunk>> free_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

// Copies `record` into the next item of `chunk` and parses its envelope. False (with `error`
// set) when the record does not parse.
bool AddRecord(const Projector& projector, uint64_t position, std::string_view record, Chunk& chunk,
               absl::Status& error) {
  if (chunk.size == chunk.items.size()) chunk.items.emplace_back();
  Chunk::Item& item = chunk.items[chunk.size];
  char* copy = google::protobuf::Arena::CreateArray<char>(&chunk.arena, record.size());
  std::memcpy(copy, record.data(), record.size());
  if (!storage::ParseEventRecord(std::string_view(copy, record.size()), &item.event)) {
    error = absl::DataLossError(StrCat("event at global position ", position, " does not parse"));
    return false;
  }
  ++chunk.size;
  item.consumed = Consumes(projector, item.event.stream_id);
  return true;
}

// Scans (after_position, up_to_position] into chunks of `batch_size` events and queues them.
// One iterator reads up to kScanSpan events, so the log's read-ahead is used rather than
// repeated for every batch, while no iterator pins old files for long.
void ProduceChunks(const storage::EventStore& store, const Projector& projector,
                   uint64_t after_position, uint64_t up_to_position, size_t batch_size,
                   ChunkQueue& queue) {
  constexpr uint64_t kScanSpan = 1 << 16;
  std::unique_ptr<Chunk> chunk = queue.Fresh();
  uint64_t next = after_position + 1;
  bool stopped = false;  // The consumer stopped taking chunks.
  while (!stopped) {
    const uint64_t want =
        up_to_position >= next ? std::min(kScanSpan, up_to_position - next + 1) : 0;
    absl::Status scan_status;
    size_t scanned = 0;
    if (want > 0) {
      absl::Status parse_error;
      scan_status = store.ScanRaw(next, want, [&](uint64_t position, std::string_view record) {
        if (!AddRecord(projector, position, record, *chunk, parse_error)) return false;
        ++scanned;
        next = position + 1;
        if (chunk->size < batch_size || next > up_to_position) return true;
        if (!queue.Push(std::move(chunk))) {
          stopped = true;
          return false;
        }
        chunk = queue.Fresh();
        return true;
      });
      // A record that does not parse is reported, not skipped.
      if (!parse_error.ok()) scan_status = parse_error;
    }
    if (stopped) return;
    // The end: the range is done, the log ended early, or it could not be read.
    if (want == 0 || scanned < want || !scan_status.ok() || next > up_to_position) {
      chunk->scan_status = scan_status;
      chunk->last = true;
      queue.Push(std::move(chunk));
      return;
    }
  }
}

}  // namespace

absl::Status PipelinedReplay(const storage::EventStore& store, const EventRegistry& registry,
                             const Projector& projector, uint64_t after_position,
                             uint64_t up_to_position, size_t batch_size, const ReplayPolicy& policy,
                             RowStore& rows, ReplayStats& stats, const std::string& label,
                             const AfterBatch& after_batch,
                             const std::function<void()>& reader_thread_init) {
  constexpr size_t kSlotPrefetchDistance = 16;
  constexpr size_t kRowPrefetchDistance = 8;
  ChunkQueue queue(/*capacity=*/3);
  std::thread producer([&] {
    storage::NameThisThread("replay-read");
    if (reader_thread_init) reader_thread_init();
    ProduceChunks(store, projector, after_position, up_to_position, batch_size, queue);
  });
  // The applying thread decodes, having more idle time than the reading one.
  EventDecoder decoder(&registry);
  absl::Status result;
  while (true) {
    std::unique_ptr<Chunk> chunk = queue.Pop();
    ReplayStats batch;
    for (size_t i = 0; i < chunk->size && result.ok(); ++i) {
      // The row cache outgrows the CPU cache; start loading where a row is some events ahead,
      // and the row itself a few events ahead.
      auto hint = [&](size_t distance, void (RowStore::*prefetch)(std::string_view)) {
        if (i + distance >= chunk->size) return;
        const Chunk::Item& ahead = chunk->items[i + distance];
        if (!ahead.consumed) return;
        std::string_view key = projector.RowKeyHint(ahead.event.stream_id);
        if (!key.empty()) (rows.*prefetch)(key);
      };
      hint(kSlotPrefetchDistance, &RowStore::Prefetch);
      hint(kRowPrefetchDistance, &RowStore::PrefetchRow);
      Chunk::Item& item = chunk->items[i];
      if (!item.consumed) {
        ++batch.events_processed;
        batch.last_position = item.event.global_position;
        continue;
      }
      const storage::EventRecord& event = item.event;
      absl::StatusOr<const google::protobuf::Message*> decoded = decoder.DecodeOnArena(
          event.type, event.schema_version, event.payload, &chunk->arena, &item.upcast);
      result = ApplyOne(item.event, decoded, projector, policy, rows, batch, label);
    }
    if (result.ok() && !chunk->scan_status.ok()) result = chunk->scan_status;
    stats.Add(batch);
    const bool last = chunk->last;
    queue.Recycle(std::move(chunk));
    if (!after_batch(batch) && result.ok()) result = absl::CancelledError("stopped on request");
    if (!result.ok() || last) break;
  }
  queue.Stop();
  // Drain so a producer blocked on a full queue sees the stop.
  producer.join();
  return result;
}

}  // namespace fidelis::server
