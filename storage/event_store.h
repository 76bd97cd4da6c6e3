// EventStore: the append-only event log, as an interface.
//
// The embedded implementation is RocksDbEventStore; a distributed log implements the same
// contract. The contract is deliberately small: a batch of events for one or more streams,
// each with its own expected version, goes in; consecutive global positions come out.
// tests/storage/event_store_contract.h holds the tests every implementation must pass.
//
// Guarantees every implementation gives:
//   - Global positions start at 1, are gapless and strictly increasing in commit order.
//   - A batch is atomic: all of its events become visible together, or none do.
//   - Stream versions start at 1 and are contiguous within a stream.
//   - A batch with a command_id is applied at most once; a retry returns the first result.
//   - Append returns only after the batch is durable to the configured degree.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fidelis/v1/events.pb.h"

namespace fidelis::storage {

// Expected-version sentinels. Any other value must equal the stream's version exactly
// (0 means the stream must not exist yet).
inline constexpr int64_t kExpectAny = -1;
inline constexpr int64_t kExpectNoStream = 0;

// Payload key under which an ABORTED append names the stream's actual version.
inline constexpr char kCurrentVersionPayloadKey[] = "fidelis.current_version";
// Payload key under which an ABORTED append names the stream that conflicted.
inline constexpr char kConflictStreamPayloadKey[] = "fidelis.conflict_stream";

struct EventToAppend {
  std::string type;
  uint32_t schema_version = 0;
  int64_t timestamp_micros = 0;
  std::string payload;  // Serialized protobuf of (type, schema_version).
  v1::EventMetadata metadata;
};

struct StreamAppend {
  std::string stream_id;  // Non-empty, no 0x00 byte.
  int64_t expected_version = kExpectAny;
  std::vector<EventToAppend> events;  // Non-empty.
};

struct AppendRequest {
  // Streams in the order their events take positions. A stream appears at most once.
  std::vector<StreamAppend> streams;
  // Optional idempotency key and the fingerprint of the request's payload.
  std::string command_id;
  std::string fingerprint;
};

struct AppendResult {
  uint64_t first_position = 0;
  uint64_t last_position = 0;
  // Each stream's version after the append, in request order (for a deduplicated result,
  // in the order of the original request).
  std::vector<v1::StreamVersion> streams;
  // True when the command_id had been applied before and nothing was appended now.
  bool deduplicated = false;
};

// Receives an append's outcome. Called exactly once.
using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&>;

// Told when the head of the log advances, for readers that follow it without a thread of their
// own (the SubscribeAll stream). Called on the thread that committed the events (the store's
// writer thread), after HeadPosition() shows them; it must be quick and must not block or call
// back into the store's write path.
class HeadListener {
 public:
  virtual ~HeadListener() = default;
  virtual void OnHeadAdvanced(uint64_t head) = 0;
};

// Told how the event log's writer is doing, for metrics. Not owned by the store; it must
// outlive it. Calls must be quick and must not call back into the store.
class AppendObserver {
 public:
  virtual ~AppendObserver() = default;
  // A group commit ended: `appends` requests decided together, `events` of them appended in
  // one write (a WAL write, synced when the database syncs; a cluster node's publish) that
  // took `write_time`. On the writer thread.
  virtual void OnGroupCommitted(size_t appends, size_t events, absl::Duration write_time) = 0;
  // An append was refused with RESOURCE_EXHAUSTED. On the appending thread.
  virtual void OnAppendRefused() = 0;
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  // Appends a batch atomically, and calls `done` with the outcome once the batch is durable to
  // the configured degree, or with the error:
  //   ABORTED             an expected version does not match; the status carries the stream
  //                       and its current version as payloads; nothing was written.
  //   ALREADY_EXISTS      command_id was used before with a different fingerprint.
  //   INVALID_ARGUMENT    malformed batch (empty, bad stream id, duplicate stream).
  //   UNAVAILABLE         the write failed; the store refuses further appends until reopened.
  //   RESOURCE_EXHAUSTED  too many appends are waiting.
  // Thread-safe; concurrent appends are group-committed. `done` runs either on the calling
  // thread before AppendAsync returns (a request refused up front) or on the store's writer
  // thread; there it holds up every later append, so it must be quick and must not wait for
  // another append. It may start one with AppendAsync: that append goes ahead of those other
  // threads queued, so a command decided again after a conflict, on the state just written,
  // is not overtaken by commands decided earlier on older state (which would starve it).
  virtual void AppendAsync(AppendRequest request, AppendCallback done) = 0;

  // AppendAsync, waiting for the outcome. Must not be called from an AppendCallback.
  absl::StatusOr<AppendResult> Append(AppendRequest request);

  // The record of an applied command_id, or nullopt.
  virtual absl::StatusOr<std::optional<v1::CommandRecord>> FindCommand(
      std::string_view command_id) const = 0;

  // Up to max_count events of `stream_id` with version >= from_version, in version order.
  virtual absl::StatusOr<std::vector<v1::StoredEvent>> ReadStream(std::string_view stream_id,
                                                                  int64_t from_version,
                                                                  size_t max_count) const = 0;

  // The version of the last event of `stream_id`; 0 when the stream does not exist.
  virtual absl::StatusOr<int64_t> StreamVersion(std::string_view stream_id) const = 0;

  // Calls `visit` for events at positions >= from_position in order, until it returns false,
  // max_count events were visited, or the log ends. The event passed to `visit` is reused
  // between calls. DATA_LOSS names the position of a record that does not parse.
  virtual absl::Status Scan(uint64_t from_position, size_t max_count,
                            const std::function<bool(const v1::StoredEvent&)>& visit) const = 0;

  // As Scan, but hands over each record's serialized StoredEvent bytes without parsing them,
  // for callers that parse into their own memory. The bytes are valid during the call only.
  // Meant for bulk reads of the log (rebuilds): what it reads is not kept in caches, where it
  // would push out what live commands and projections read. The default implementation
  // re-serializes what Scan parsed.
  virtual absl::Status ScanRaw(
      uint64_t from_position, size_t max_count,
      const std::function<bool(uint64_t position, std::string_view record)>& visit) const;

  // Convenience over Scan.
  absl::StatusOr<std::vector<v1::StoredEvent>> ReadAll(uint64_t from_position,
                                                       size_t max_count) const;

  // The position of the newest committed event; 0 for an empty log. Thread-safe.
  virtual uint64_t HeadPosition() const = 0;

  // Blocks until HeadPosition() > after_position or `timeout` passes; returns the head.
  // The wait runs on the steady clock.
  virtual uint64_t WaitForHead(uint64_t after_position, absl::Duration timeout) const = 0;

  // Appends waiting to be written right now: non-zero while commands queue for the log.
  // Background work (rebuilds) pauses while it is. Thread-safe; may be momentarily stale.
  virtual size_t PendingAppends() const { return 0; }

  // Blocks until no append waits to be written or `timeout` passes; true when none waits.
  // A store with a writer queue wakes the caller when its queue drains, so a rebuild that
  // yields to commands resumes the moment they are written. The default, for stores without
  // a queue, does not wait.
  virtual bool WaitUntilNoPendingAppends(absl::Duration timeout) const;

  // Waits until the log holds `position`. A local log answers at once: OK, or OUT_OF_RANGE
  // when the position is beyond its head. A replica of a distributed log waits up to `timeout`
  // for a position the log of record holds (DEADLINE_EXCEEDED when it did not get there in
  // time), and answers OUT_OF_RANGE for one the log of record does not hold either (it asks
  // the log of record once, even with a zero timeout, when it can reach it).
  virtual absl::Status AwaitPosition(uint64_t position, absl::Duration timeout) const;

  // Blocks until the store can serve appends and up-to-date reads, or `timeout` passes; true
  // when it can. A local log always can; a cluster node's replica can once it has caught up
  // with the log of record.
  virtual bool WaitUntilReady(absl::Duration /*timeout*/) const { return true; }

  // False while the log of record cannot be reached (a cluster node cut off from NATS): reads
  // are served from what this node holds, and appends fail. Always true for a local log.
  virtual bool reachable() const { return true; }

  // False once a write failed and appends are refused until the store is reopened.
  virtual bool healthy() const { return true; }

  // Whether other processes append to the log of record too (a cluster node's replica): then
  // what this store holds may lag what the log of record acknowledged, and what a caller cached
  // from its own appends may be stale. False for a local log, which is the log of record.
  virtual bool shared() const { return false; }

  // Waits until this store holds every append the log of record acknowledged before the call,
  // so that a decision taken on what it reads afterwards is not taken on stale state. A local
  // log holds them already: OK at once. A replica asks the log of record how far it goes and
  // waits for that: UNAVAILABLE when it cannot ask, DEADLINE_EXCEEDED when it did not get there
  // within `timeout`. Thread-safe; it blocks, for a round trip to the log of record and the
  // replication of what this node missed.
  virtual absl::Status CatchUp(absl::Duration /*timeout*/) const { return absl::OkStatus(); }

  // Registers `listener` for OnHeadAdvanced calls until RemoveHeadListener. Not owned; it must
  // stay valid until RemoveHeadListener returns, which waits for a call in progress. Thread-safe.
  void AddHeadListener(HeadListener* listener) const;
  void RemoveHeadListener(HeadListener* listener) const;

 protected:
  // Implementations call this after publishing a new head.
  void NotifyHeadListeners(uint64_t head) const;

 private:
  mutable absl::Mutex listeners_mu_;
  mutable std::vector<HeadListener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  // Read without the lock on the writer's path, so that a store nobody follows pays nothing.
  mutable std::atomic<size_t> listener_count_{0};
};

}  // namespace fidelis::storage
