// The projector contract: how a read model folds events into rows.
//
// Taxonomy:
//   Projector  - stateless and const after construction; one instance serves the live engine
//                and every rebuild at once, from any thread.
//   RowStore   - one projection version's rows as seen by one batch; owned by the caller,
//                used by one thread at a time.
//   EventView  - a recorded event with its current-schema payload; valid only during Apply.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace fidelis {

struct EventView {
  uint64_t global_position = 0;
  std::string_view stream_id;
  int64_t stream_version = 0;
  std::string_view type;
  int64_t timestamp_micros = 0;
  const google::protobuf::Message* payload = nullptr;  // Current schema; never null in Apply.
};

class RowStore {
 public:
  virtual ~RowStore() = default;

  // The row under `key`, parsed as `prototype`'s type, in a message the store owns and writes
  // back when its batch commits. *found tells whether the row existed before; when it did not,
  // the message is empty. The pointer stays valid until the batch commits or is discarded.
  // Errors come from storage (UNAVAILABLE, DATA_LOSS for a row that does not parse).
  virtual absl::StatusOr<google::protobuf::Message*> Row(std::string_view key,
                                                         const google::protobuf::Message& prototype,
                                                         bool* found) = 0;

  // Row() as a T. INTERNAL when the row under `key` holds another message type (a projector
  // bug: two row types under one key).
  template <typename T>
  absl::StatusOr<T*> Typed(std::string_view key, bool* found) {
    auto row = Row(key, T::default_instance(), found);
    if (!row.ok()) return row.status();
    if ((*row)->GetDescriptor() != T::descriptor()) {
      return absl::InternalError("row " + std::string(key) + " holds a " +
                                 (*row)->GetDescriptor()->full_name() + ", not a " +
                                 T::descriptor()->full_name());
    }
    return static_cast<T*>(*row);
  }

  // Hints that the row under `key` is about to be asked for, so a store that caches rows can
  // start loading it into the CPU cache, in two steps: Prefetch() some events ahead loads where
  // the row is found, and PrefetchRow() for the same key a few events later, which reads what
  // the first loaded, loads the row itself. Never needed for correctness.
  virtual void Prefetch(std::string_view /*key*/) {}
  virtual void PrefetchRow(std::string_view /*key*/) {}
};

class Projector {
 public:
  virtual ~Projector() = default;

  virtual std::string_view name() const = 0;
  virtual uint32_t version() const = 0;
  // The stream categories whose events this projector consumes; others never reach Apply.
  virtual const std::vector<std::string>& categories() const = 0;
  // True when rows depend on the order of events across streams (running totals across
  // accounts, for example), so a replay must not be partitioned by stream.
  virtual bool requires_global_order() const { return false; }
  // The message type stored under row `key`, for tools that show rows (DiffProjection); null
  // when unknown, and the row is then shown as bytes.
  virtual const google::protobuf::Message* RowType(std::string_view /*key*/) const {
    return nullptr;
  }
  // The key of the row an event of `stream_id` touches, when it follows from the stream alone
  // (rows keyed by the stream's entity); empty otherwise. A replay uses it to prefetch rows a
  // few events ahead; Apply still decides which rows it touches.
  virtual std::string_view RowKeyHint(std::string_view /*stream_id*/) const { return {}; }

  // Folds one event into `rows`. Events of a consumed category that the projector has no
  // handler for are ignored (OK). A non-OK status is a handler error: the engine records it
  // with the event's position and applies its handler-error policy.
  virtual absl::Status Apply(const EventView& event, RowStore& rows) const = 0;
};

}  // namespace fidelis
