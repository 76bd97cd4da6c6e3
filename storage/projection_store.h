// Projection storage: one RocksDB column family per projection build, holding the rows and
// the checkpoint (the last applied global position), always written in the same batch so a
// restart resumes exactly where the projection stopped.
//
// Taxonomy:
//   ProjectionStore - one projection version's family. Thread-safe; shared by the projector
//                     thread that writes it and every query thread that reads it.
//   ProjectionBatch - a RowStore that buffers parsed rows in memory and writes them back with
//                     the new checkpoint atomically (one RocksDB batch, or one ingested SST
//                     file for bulk loads). Used by one thread.
//   BuildId         - names one build: a projector version and a generation. Which builds a
//                     projection has is recorded in its catalog (build_catalog.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "domain/projector.h"
#include "domain/strings.h"
#include "fidelis/v1/events.pb.h"
#include "google/protobuf/arena.h"
#include "storage/database.h"
#include "storage/row_index.h"

namespace fidelis::storage {

// Projection states kept next to the checkpoint.
inline constexpr std::string_view kStateLive = "live";
// Set when a rebuild truncates a projection and cleared when it completes: a projection in
// this state must not be served as complete.
inline constexpr std::string_view kStateNeedsRebuild = "needs_rebuild";
// A blue-green shadow that its rebuild job is still replaying into; never served.
inline constexpr std::string_view kStateBuilding = "building";

// One build of a projection: its projector's version, and a generation that tells apart
// several builds of the same version. Written "v2" (generation 0) or "v2.1".
struct BuildId {
  uint32_t version = 0;
  uint32_t generation = 0;

  std::string ToString() const;
  // Parses "v2", "v2.1" or "2"; nullopt otherwise.
  static std::optional<BuildId> Parse(std::string_view text);
  bool operator==(const BuildId& other) const {
    return version == other.version && generation == other.generation;
  }
};

class ProjectionStore {
 public:
  // Opens (creating if needed) the family of build `build` of projection `name`. `database`
  // must outlive the store.
  static absl::StatusOr<std::unique_ptr<ProjectionStore>> Open(Database* database, std::string name,
                                                               BuildId build);
  static absl::StatusOr<std::unique_ptr<ProjectionStore>> Open(Database* database, std::string name,
                                                               uint32_t version) {
    return Open(database, std::move(name), BuildId{version, 0});
  }
  // Drops the family of `build` with every row. OK when it does not exist. No store of that
  // build may be used afterwards.
  static absl::Status Drop(Database* database, std::string_view name, BuildId build);

  const std::string& name() const { return name_; }
  uint32_t version() const { return build_.version; }
  const BuildId& build() const { return build_; }

  // Last applied global position; 0 when nothing was applied.
  absl::StatusOr<uint64_t> Checkpoint() const;
  // The stored state ("live" when never set).
  absl::StatusOr<std::string> State() const;

  // The serialized row under `key`, or nullopt.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) const;

  // Calls `visit(key, value)` for rows with key > after_key in key order, until it returns
  // false or `limit` rows were visited. Reads as of `snapshot` when given.
  absl::Status Scan(std::string_view after_key, size_t limit,
                    const std::function<bool(std::string_view, std::string_view)>& visit,
                    const rocksdb::Snapshot* snapshot = nullptr) const;

  // Walks the rows of `a` and `b` in key order as of `snapshot` and calls
  // `visit(key, a_value, b_value)` for every key whose rows differ (a missing row is nullopt).
  // Counts each side's rows into *a_rows and *b_rows.
  static absl::Status Compare(
      const ProjectionStore& a, const ProjectionStore& b, const rocksdb::Snapshot* snapshot,
      const std::function<void(std::string_view, std::optional<std::string_view>,
                               std::optional<std::string_view>)>& visit,
      uint64_t* a_rows, uint64_t* b_rows);

  // Deletes every row, resets the checkpoint to 0 and sets `state`, atomically and durably.
  absl::Status Truncate(std::string_view state);
  // Sets the state durably.
  absl::Status SetState(std::string_view state);
  // Adds the write of `state` to `batch`, to commit it with other changes.
  void PutState(std::string_view state, rocksdb::WriteBatch* batch) const;
  // Counts rows (a full scan).
  absl::StatusOr<uint64_t> CountRows() const;
  // Flushes the family's memtable to disk, making rows written without the WAL durable.
  absl::Status Flush();

 private:
  friend class ProjectionBatch;
  ProjectionStore(Database* database, rocksdb::ColumnFamilyHandle* family, std::string name,
                  BuildId build)
      : database_(database), family_(family), name_(std::move(name)), build_(build) {}

  Database* const database_;
  rocksdb::ColumnFamilyHandle* const family_;
  const std::string name_;
  const BuildId build_;
};

struct ProjectionBatchOptions {
  // Rows kept in memory across commits; beyond this the cache is dropped after a commit.
  // Bounds memory by the number of rows, never by the number of events.
  size_t max_cached_rows = 100000;
  // The store holds no row that is not in this batch's cache (it was just truncated), so a
  // cache miss needs no read.
  bool starts_empty = false;
  // Commit() writes only when the cache is full; WriteAll() writes the rest. For rebuilds,
  // whose intermediate states nobody reads: each row is written about once instead of once
  // per batch that touches it.
  bool defer_writes = false;
  // Write each commit as an SST file ingested into the family (with its checkpoint, so still
  // atomically) instead of a write batch: durable when Commit() returns, without the WAL, the
  // memtable or a flush, and out of the write queue that appends to the event log wait in.
  // For bulk loads (rebuilds) that nobody else writes to the family during.
  bool ingest = false;
};

class ProjectionBatch : public RowStore {
 public:
  // `store` must outlive the batch.
  explicit ProjectionBatch(ProjectionStore* store, ProjectionBatchOptions options = {})
      : store_(store), options_(options), complete_(options.starts_empty) {
    Clear();
  }

  absl::StatusOr<google::protobuf::Message*> Row(std::string_view key,
                                                 const google::protobuf::Message& prototype,
                                                 bool* found) override;
  void Prefetch(std::string_view key) override { rows_.Prefetch(key); }
  // Loads the first lines of a cached row's message: the sub-messages its first Apply created
  // were allocated right after it on arena_, so they are usually among them.
  void PrefetchRow(std::string_view key) override { rows_.PrefetchRow(key, /*lines=*/4); }

  // Writes every row changed since the last commit and `checkpoint` atomically: through the
  // WAL, not synced (a process crash loses nothing, a power cut loses a suffix that is replayed
  // again), or as an ingested file (see `ingest`). Optionally sets the state with them. Rows
  // stay cached.
  absl::Status Commit(uint64_t checkpoint, std::optional<std::string_view> state = std::nullopt);

  // Writes every changed row and `checkpoint` now, deferred or not.
  absl::Status WriteAll(uint64_t checkpoint);

  // Forgets every cached row, written or not (after a failure, or when the store changed
  // underneath, as a rebuild does).
  void Discard();

  // Rows changed and not yet written.
  size_t dirty() const { return dirty_.size(); }

 private:
  absl::Status Write(uint64_t checkpoint, std::optional<std::string_view> state);
  absl::Status WriteBatched(uint64_t checkpoint, std::optional<std::string_view> state);
  absl::Status Ingest(uint64_t checkpoint, std::optional<std::string_view> state);
  // Forgets every cached row and frees their memory.
  void Clear();

  ProjectionStore* const store_;
  const ProjectionBatchOptions options_;
  // True while every row of the store is in rows_ (see starts_empty).
  bool complete_;
  std::unique_ptr<google::protobuf::Arena> arena_;
  // Keys and rows live on arena_, so the cache is freed in a few large blocks rather than row
  // by row (which, for a rebuild's hundreds of thousands of rows, holds allocator locks long
  // enough to be felt by other threads).
  RowIndex rows_;
  std::vector<std::string_view> dirty_;  // Keys of dirty rows, on arena_.
  bool flushed_ = false;                 // The family's memtable was flushed before ingesting.
};

}  // namespace fidelis::storage
