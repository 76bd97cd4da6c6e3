// The log's unit of atomic append, in one place: turning a group of AppendRequests into one
// fidelis.v1.LogBatch (events with their positions and versions, and command records), and
// writing a LogBatch into a RocksDB log.
//
// Both event stores use it. RocksDbEventStore assembles each group commit and writes it;
// NatsEventStore assembles the batch it publishes to JetStream, and every node of a cluster
// writes the batches it reads from the stream into its local replica. So a batch means the
// same thing wherever it is written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "fidelis/v1/events.pb.h"
#include "rocksdb/write_batch.h"
#include "storage/event_store.h"

namespace fidelis::storage {

// INVALID_ARGUMENT for a malformed request (no stream, an empty or duplicate stream id, a
// stream without events, a bad expected version).
absl::Status CheckAppendRequest(const AppendRequest& request);

// ABORTED naming `stream_id` and its actual version as payloads (kConflictStreamPayloadKey,
// kCurrentVersionPayloadKey).
absl::Status VersionConflict(std::string_view stream_id, int64_t expected, int64_t actual);

// Builds one LogBatch from the requests of a group, in order. Each request's expected
// versions are checked against the stream heads as the requests before it left them, so a
// batch never holds two appends that could not both have happened; a request that fails adds
// nothing. Used by one thread.
class BatchAssembler {
 public:
  // A stream's version before this group (0: no such stream).
  using HeadLookup = std::function<absl::StatusOr<int64_t>(const std::string& stream_id)>;
  // The record of a command id applied before this group.
  using CommandLookup =
      std::function<absl::StatusOr<std::optional<v1::CommandRecord>>(const std::string& id)>;

  // The batch's first event takes `next_position`. The batch is assembled in `*batch`, which
  // is cleared first (a caller that reuses one across groups keeps its allocations); it must
  // outlive the assembler.
  BatchAssembler(uint64_t next_position, HeadLookup head_of, CommandLookup find_command,
                 v1::LogBatch* batch);

  // What Add decided for one request.
  struct Outcome {
    // The request's result: its positions and versions (OK), the stored result of an earlier
    // command with its command_id (OK, deduplicated), or why it adds nothing (ABORTED on a
    // version conflict, ALREADY_EXISTS for a command_id used with another fingerprint, or a
    // read error).
    absl::StatusOr<AppendResult> result;
    // When the request repeats the command_id and fingerprint of an earlier request of this
    // group: that request's index. Its result is that one's, deduplicated, once the batch is
    // written.
    int alias_of = -1;
  };

  // Adds the `index`-th request of the group (indexes count every request added).
  Outcome Add(const AppendRequest& request);

  bool empty() const { return batch_->events_size() == 0; }
  const v1::LogBatch& batch() const { return *batch_; }
  // Stream heads after the batch, for the streams it appends to.
  const absl::flat_hash_map<std::string, int64_t>& heads() const { return heads_; }
  // The position the next batch starts at.
  uint64_t next_position() const { return next_position_; }

 private:
  absl::StatusOr<int64_t> HeadOf(const std::string& stream_id);

  uint64_t next_position_;
  const HeadLookup head_of_;
  const CommandLookup find_command_;
  v1::LogBatch* const batch_;
  absl::flat_hash_map<std::string, int64_t> heads_;
  // Command id -> the index of the first request of this group that carried it.
  absl::flat_hash_map<std::string, int> commands_;
  std::vector<std::string> fingerprints_;  // Of each request added, by index.
};

// The column families of a RocksDB log (key_format.h).
struct LogFamilies {
  rocksdb::ColumnFamilyHandle* events = nullptr;
  rocksdb::ColumnFamilyHandle* streams = nullptr;
  rocksdb::ColumnFamilyHandle* commands = nullptr;
};

// Adds `batch` to `out`: each event under its position, its stream index entry, and each
// command record.
void WriteLogBatch(const v1::LogBatch& batch, const LogFamilies& families,
                   rocksdb::WriteBatch& out);

// The result a stored command record stands for (deduplicated).
AppendResult ResultFromRecord(const v1::CommandRecord& record);

}  // namespace fidelis::storage
