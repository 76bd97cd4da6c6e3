// Database: one RocksDB instance and its column families.
//
// The server opens two: one for the event log and snapshots, and one, in its "projections"
// subdirectory, for projection storage and the projection catalog. Each instance has its own
// write queue, WAL and memtable budget, so the log's synced group commits never wait behind
// projection writes, and a projection's bulk ingestion or flush never holds up appends. The
// two may share a block cache (DatabaseOptions).
//
// Owns the rocksdb::DB and every column-family handle. Column families are opened at Open and
// can be created or dropped later (projection versions come and go). All methods are
// thread-safe. Handles returned by Family() stay valid until DropFamily() of that name or the
// Database is destroyed; a caller must not use a handle across a drop of its family.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/perf_level.h"

namespace fidelis::storage {

// The subdirectory of the data directory that holds the projections' Database.
inline constexpr char kProjectionsDirectory[] = "projections";

struct DatabaseOptions {
  // Sync the WAL on every event append (the default). When false an acknowledged command
  // survives a process crash but may be lost on power failure or kernel crash.
  bool sync_writes = true;
  // Passed to RocksDB's block cache, in bytes, unless `block_cache` is set.
  size_t block_cache_bytes = 64 << 20;
  // A block cache shared with another Database; null: a cache of its own.
  std::shared_ptr<rocksdb::Cache> block_cache;
  // Optional RocksDB environment (tests inject fault-injecting ones). Not owned.
  rocksdb::Env* env = nullptr;
};

class Database {
 public:
  // Opens or creates the database in `path`, with every column family it holds plus the event
  // log's fixed ones. UNAVAILABLE when RocksDB cannot open it (locked by another process,
  // unreadable directory); DATA_LOSS when RocksDB reports corruption.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path,
                                                        const DatabaseOptions& options);
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  rocksdb::DB* db() const { return db_.get(); }
  const DatabaseOptions& options() const { return options_; }
  const std::string& path() const { return path_; }

  // The handle of an existing family, or nullptr.
  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const;
  // The handle of `name`, created if missing.
  absl::StatusOr<rocksdb::ColumnFamilyHandle*> CreateFamily(const std::string& name);
  // Drops `name` and its data. OK if it does not exist.
  absl::Status DropFamily(const std::string& name);
  // Names of all families, in no particular order.
  std::vector<std::string> FamilyNames() const;

  // A fresh path for an SST file about to be ingested (see ProjectionBatchOptions::ingest), in
  // the database's "ingest" directory, which Open() empties of files a crash left behind.
  std::string NewIngestPath();

 private:
  Database(std::string path, DatabaseOptions options)
      : path_(std::move(path)), options_(std::move(options)) {}

  const std::string path_;
  const DatabaseOptions options_;
  std::shared_ptr<rocksdb::Cache> cache_;  // Shared by every family.
  std::atomic<uint64_t> ingest_files_{0};
  std::unique_ptr<rocksdb::DB> db_;
  mutable absl::Mutex mu_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// A consistent view of a Database as of its creation, released on destruction. Reads given
// get() see no later write. The Database must outlive it; any thread.
class ReadSnapshot {
 public:
  explicit ReadSnapshot(Database* database)
      : database_(database), snapshot_(database->db()->GetSnapshot()) {}
  ~ReadSnapshot() { database_->db()->ReleaseSnapshot(snapshot_); }
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  Database* const database_;
  const rocksdb::Snapshot* const snapshot_;
};

// Maps a RocksDB status to the canonical code: IOError/NoSpace -> UNAVAILABLE,
// Corruption -> DATA_LOSS, NotFound -> NOT_FOUND, others -> INTERNAL. `what` prefixes the
// message.
absl::Status FromRocks(const rocksdb::Status& status, std::string_view what);

// Turns RocksDB's per-thread perf counters off on the calling thread for its lifetime, then
// restores the previous level. RocksDB counts into them on every key an iterator steps over
// unless told not to; Fidelis never reads them, and on a 10M-event rebuild they cost the
// reading thread about 3% of its time. Stack-only, on one thread.
class PerfCountersOff {
 public:
  PerfCountersOff() : saved_(rocksdb::GetPerfLevel()) {
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  }
  ~PerfCountersOff() { rocksdb::SetPerfLevel(saved_); }
  PerfCountersOff(const PerfCountersOff&) = delete;
  PerfCountersOff& operator=(const PerfCountersOff&) = delete;

 private:
  const rocksdb::PerfLevel saved_;
};

}  // namespace fidelis::storage
