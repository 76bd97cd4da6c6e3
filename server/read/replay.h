// Replay: folds a range of the event log into a projection, applying upcasters and the
// unknown-event and handler-error policies. Shared by the live projection runners and by
// rebuilds, so both see exactly the same events in the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "domain/event_registry.h"
#include "domain/projector.h"
#include "storage/event_store.h"

namespace fidelis::server {

struct ReplayPolicy {
  // Unknown type or version: skip with a warning (true) or fail (false).
  bool skip_unknown_events = true;
  // A handler returned an error: record it and go on (true) or fail (false).
  bool skip_handler_errors = true;
};

struct ReplayError {
  uint64_t global_position = 0;
  std::string event_type;
  std::string message;
};

struct ReplayStats {
  uint64_t events_processed = 0;   // Events read from the log, consumed or not.
  uint64_t events_dispatched = 0;  // Events passed to the projector successfully.
  uint64_t events_skipped = 0;     // Unknown events and failed handlers that were skipped.
  uint64_t last_position = 0;      // Position of the last event read.
  std::vector<ReplayError> errors;

  // Adds a later range's counts; keeps at most kMaxRecordedErrors errors.
  void Add(const ReplayStats& later);
};

// Keeps at most this many errors in ReplayStats::errors; the counts keep counting.
inline constexpr size_t kMaxRecordedErrors = 1000;

// Reads events at positions > after_position, at most max_events, and folds those of
// `projector`'s categories into `rows`. Updates `stats`. Returns:
//   OK                   the range was applied (stats.last_position tells how far);
//   FAILED_PRECONDITION  a FAIL policy stopped the replay at an event, which was not applied
//                        (stats.last_position is the event before it); the message names the
//                        event's type and position, and the event is the last of stats.errors;
//   other codes          the log could not be read (UNAVAILABLE, DATA_LOSS with a position).
// `label` names the projection in log lines.
// `decoder` is the calling thread's (see EventDecoder).
absl::Status ReplayRange(const storage::EventStore& store, EventDecoder& decoder,
                         const Projector& projector, uint64_t after_position, size_t max_events,
                         const ReplayPolicy& policy, RowStore& rows, ReplayStats& stats,
                         const std::string& label);

}  // namespace fidelis::server

namespace fidelis::server {

// Called after each applied batch with that batch's counts; return false to stop (the replay
// then returns CANCELLED). Runs on the calling thread.
using AfterBatch = std::function<bool(const ReplayStats& batch)>;

// Replays (after_position, up_to_position] like ReplayRange, batch by batch, with a second
// thread that scans and decodes the next batches while the calling thread applies the
// current one. For bulk replays (rebuilds). Same policies and statuses as ReplayRange, plus
// CANCELLED when `after_batch` asked to stop. `stats` accumulates over the whole range.
// `reader_thread_init`, when set, runs first on the reading thread (to lower its priority).
absl::Status PipelinedReplay(const storage::EventStore& store, const EventRegistry& registry,
                             const Projector& projector, uint64_t after_position,
                             uint64_t up_to_position, size_t batch_size, const ReplayPolicy& policy,
                             RowStore& rows, ReplayStats& stats, const std::string& label,
                             const AfterBatch& after_batch,
                             const std::function<void()>& reader_thread_init = nullptr);

}  // namespace fidelis::server
