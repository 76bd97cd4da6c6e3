#include "server/replay.h"

#include <algorithm>
#include <deque>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "domain/event_types.h"
#include "domain/strings.h"
#include "spdlog/spdlog.h"

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
absl::Status ApplyOne(const v1::StoredEvent& event,
                      const absl::StatusOr<const google::protobuf::Message*>& decoded,
                      const Projector& projector, const ReplayPolicy& policy, RowStore& rows,
                      ReplayStats& stats, const std::string& label) {
  auto record = [&](std::string message) {
    if (stats.errors.size() < kMaxRecordedErrors) {
      stats.errors.push_back({event.global_position(), event.type(), std::move(message)});
    }
  };
  if (!decoded.ok()) {
    const bool unknown = decoded.status().code() == absl::StatusCode::kNotFound;
    std::string message(decoded.status().message());
    if (unknown ? !policy.skip_unknown_events : !policy.skip_handler_errors) {
      record(message);
      return absl::FailedPreconditionError(StrCat("event ", event.type(), " v",
                                                  event.schema_version(), " at global position ",
                                                  event.global_position(), ": ", message));
    }
    spdlog::warn("{}: skipping {} event {} v{} at global position {}: {}", label,
                 unknown ? "unknown" : "undecodable", event.type(), event.schema_version(),
                 event.global_position(), message);
    if (!unknown) record(message);
    ++stats.events_skipped;
  } else {
    EventView view;
    view.global_position = event.global_position();
    view.stream_id = event.stream_id();
    view.stream_version = event.stream_version();
    view.type = event.type();
    view.timestamp_micros = event.timestamp_micros();
    view.payload = *decoded;
    absl::Status applied = projector.Apply(view, rows);
    if (!applied.ok()) {
      std::string message(applied.message());
      record(message);
      if (!policy.skip_handler_errors) {
        return absl::FailedPreconditionError(StrCat("handler failed on ", event.type(),
                                                    " at global position ", event.global_position(),
                                                    ": ", message));
      }
      spdlog::error("{}: handler failed on {} at global position {}: {}", label, event.type(),
                    event.global_position(), message);
      ++stats.events_skipped;
    } else {
      ++stats.events_dispatched;
    }
  }
  ++stats.events_processed;
  stats.last_position = event.global_position();
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
        stop =
            ApplyOne(event, decoder.Decode(event.type(), event.schema_version(), event.payload()),
                     projector, policy, rows, stats, label);
        return stop.ok();
      });
  if (!scanned.ok()) return scanned;
  return stop;
}

namespace {

// One batch of scanned, decoded events. Chunks are recycled: their messages keep their
// allocations from one batch to the next, so a steady replay does not allocate per event.
struct Chunk {
  struct Item {
    v1::StoredEvent event;
    std::unique_ptr<google::protobuf::Message> payload;  // Reused while the type matches.
    bool consumed = false;
    bool decoded = false;
    absl::Status decode_error;
  };
  std::vector<Item> items;  // The first `size` are this batch's.
  size_t size = 0;
  absl::Status scan_status;
  bool last = false;
};

class ChunkQueue {
 public:
  explicit ChunkQueue(size_t capacity) : capacity_(capacity) {}

  // False when the consumer has stopped.
  bool Push(std::unique_ptr<Chunk> chunk) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) { return q->stopped_ || q->full_.size() < q->capacity_; }, this));
    if (stopped_) return false;
    full_.push_back(std::move(chunk));
    return true;
  }
  std::unique_ptr<Chunk> Pop() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChunkQueue* q) { return !q->full_.empty(); }, this));
    auto chunk = std::move(full_.front());
    full_.pop_front();
    return chunk;
  }
  // Recycles a chunk's allocations for the producer.
  void Recycle(std::unique_ptr<Chunk> chunk) {
    absl::MutexLock lock(&mu_);
    free_.push_back(std::move(chunk));
  }
  std::unique_ptr<Chunk> Fresh() {
    absl::MutexLock lock(&mu_);
    if (free_.empty()) return std::make_unique<Chunk>();
    auto chunk = std::move(free_.back());
    free_.pop_back();
    chunk->size = 0;
    chunk->scan_status = absl::OkStatus();
    chunk->last = false;
    return chunk;
  }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Chunk>> full_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Chunk>> free_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

void ProduceChunks(const storage::EventStore& store, const EventRegistry& registry,
                   const Projector& projector, uint64_t after_position, uint64_t up_to_position,
                   size_t batch_size, ChunkQueue& queue) {
  // type -> current version and schema, looked up once per type.
  std::map<std::string, std::pair<uint32_t, const google::protobuf::Message*>, std::less<>> schemas;
  uint64_t next = after_position + 1;
  while (true) {
    std::unique_ptr<Chunk> chunk = queue.Fresh();
    const size_t want = static_cast<size_t>(
        std::min<uint64_t>(batch_size, up_to_position >= next ? up_to_position - next + 1 : 0));
    if (want > 0) {
      absl::Status parse_error;
      absl::Status scanned =
          store.ScanRaw(next, want, [&](uint64_t position, std::string_view record) {
            if (chunk->size == chunk->items.size()) chunk->items.emplace_back();
            Chunk::Item& item = chunk->items[chunk->size];
            v1::StoredEvent& event = item.event;
            if (!event.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
              parse_error = absl::DataLossError(
                  StrCat("event at global position ", position, " does not parse"));
              return false;
            }
            ++chunk->size;
            item.decoded = false;
            item.decode_error = absl::OkStatus();
            item.consumed = Consumes(projector, event.stream_id());
            if (!item.consumed) return true;
            auto schema = schemas.find(event.type());
            if (schema == schemas.end()) {
              schema = schemas
                           .emplace(event.type(),
                                    std::make_pair(registry.CurrentVersion(event.type()),
                                                   registry.CurrentPrototype(event.type())))
                           .first;
            }
            const google::protobuf::Message* prototype = schema->second.second;
            if (prototype != nullptr && schema->second.first == event.schema_version()) {
              if (!item.payload || item.payload->GetDescriptor() != prototype->GetDescriptor()) {
                item.payload.reset(prototype->New());
              }
              if (item.payload->ParseFromString(event.payload())) {
                item.decoded = true;
              } else {
                item.decode_error = absl::DataLossError(StrCat(
                    "payload of ", event.type(), " v", event.schema_version(), " does not parse"));
              }
              return true;
            }
            absl::StatusOr<DecodedEvent> decoded =
                registry.Decode(event.type(), event.schema_version(), event.payload());
            if (decoded.ok()) {
              item.payload = std::move(decoded->payload);
              item.decoded = true;
            } else {
              item.decode_error = decoded.status();
            }
            return true;
          });
      // A record that does not parse is reported, not skipped.
      chunk->scan_status = parse_error.ok() ? scanned : parse_error;
      if (chunk->size > 0) next = chunk->items[chunk->size - 1].event.global_position() + 1;
    }
    chunk->last =
        want == 0 || chunk->size == 0 || !chunk->scan_status.ok() || next > up_to_position;
    const bool last = chunk->last;
    if (!queue.Push(std::move(chunk)) || last) return;
  }
}

}  // namespace

absl::Status PipelinedReplay(const storage::EventStore& store, const EventRegistry& registry,
                             const Projector& projector, uint64_t after_position,
                             uint64_t up_to_position, size_t batch_size, const ReplayPolicy& policy,
                             RowStore& rows, ReplayStats& stats, const std::string& label,
                             const AfterBatch& after_batch,
                             const std::function<void()>& reader_thread_init) {
  ChunkQueue queue(/*capacity=*/3);
  std::thread producer([&] {
    if (reader_thread_init) reader_thread_init();
    ProduceChunks(store, registry, projector, after_position, up_to_position, batch_size, queue);
  });
  absl::Status result;
  while (true) {
    std::unique_ptr<Chunk> chunk = queue.Pop();
    ReplayStats batch;
    for (size_t i = 0; i < chunk->size && result.ok(); ++i) {
      const Chunk::Item& item = chunk->items[i];
      if (!item.consumed) {
        ++batch.events_processed;
        batch.last_position = item.event.global_position();
        continue;
      }
      absl::StatusOr<const google::protobuf::Message*> decoded = item.payload.get();
      if (!item.decoded) decoded = item.decode_error;
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
