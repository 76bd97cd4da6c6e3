#include "storage/database.h"

#include <unistd.h>

#include <algorithm>

#include "domain/strings.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "storage/key_format.h"

namespace fidelis::storage {

absl::Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return absl::OkStatus();
  std::string message = StrCat(what, ": ", status.ToString());
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsNotFound()) return absl::NotFoundError(message);
  if (status.IsIOError() || status.IsNoSpace() || status.IsBusy() || status.IsTimedOut() ||
      status.IsTryAgain() || status.IsAborted()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

namespace {

// The stream of a streams-family key (stream id, NUL, big-endian version): all but the version.
// Consecutive versions of one stream are appended in order, so RocksDB can keep, per stream, where
// its last key went into the memtable and insert the next one there instead of searching the
// whole skip list from the top (a cache miss per level; the commands' most expensive write).
class StreamOfKey : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "fidelis.StreamOfKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kVersionBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() > kVersionBytes; }

 private:
  static constexpr size_t kVersionBytes = 8;
};

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           std::string_view name) {
  rocksdb::ColumnFamilyOptions cf;
  if (name == kStreamsFamily) {
    cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<StreamOfKey>();
  }
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  cf.write_buffer_size = 16 << 20;
  return cf;
}

std::string IngestDir(const std::string& path) { return path + "/ingest"; }

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                         const DatabaseOptions& options) {
  std::unique_ptr<Database> database(new Database(path, options));
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_open_files = 512;
  // One budget for the memtables of every family (projection versions come and go), so
  // memory does not grow with their number.
  db_options.db_write_buffer_size = 64 << 20;
  // Bounds what a start after a crash replays: families holding the oldest WAL are flushed
  // once the WAL grows past this.
  db_options.max_total_wal_size = 64 << 20;
  // SST files (flushes, compactions, a rebuild's ingested files) reach the disk a MiB at a
  // time instead of in one large sync that the WAL syncs of commands would queue behind.
  db_options.bytes_per_sync = 1 << 20;
  if (options.env != nullptr) db_options.env = options.env;
  database->cache_ =
      options.block_cache ? options.block_cache : rocksdb::NewLRUCache(options.block_cache_bytes);

  std::vector<std::string> names;
  rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
  if (!listed.ok()) names.clear();  // A new database has no families yet.
  for (const char* fixed : {rocksdb::kDefaultColumnFamilyName.c_str(), kEventsFamily,
                            kStreamsFamily, kCommandsFamily, kSnapshotsFamily, kMetaFamily}) {
    if (std::find(names.begin(), names.end(), fixed) == names.end()) names.push_back(fixed);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) {
    descriptors.emplace_back(name, FamilyOptions(database->cache_, name));
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status opened = rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw);
  if (!opened.ok()) {
    if (opened.IsIOError() && opened.ToString().find("Permission denied") != std::string::npos) {
      return absl::PermissionDeniedError(StrCat("opening database ", path, ": ", opened.ToString(),
                                                ": the data directory must be writable by uid ",
                                                geteuid(), ", the user fidelisd runs as"));
    }
    return FromRocks(opened, StrCat("opening database ", path));
  }
  database->db_.reset(raw);
  // SST files a crash left before their ingestion; ingested ones live under RocksDB's names.
  rocksdb::Env* env = raw->GetEnv();
  const std::string ingest_dir = IngestDir(path);
  std::vector<std::string> leftovers;
  if (env->GetChildren(ingest_dir, &leftovers).ok()) {
    for (const std::string& file : leftovers) {
      if (file != "." && file != "..")
        env->DeleteFile(StrCat(ingest_dir, "/", file)).PermitUncheckedError();
    }
  }
  rocksdb::Status made = env->CreateDirIfMissing(ingest_dir);
  if (!made.ok()) return FromRocks(made, StrCat("creating ", ingest_dir));
  absl::MutexLock lock(&database->mu_);
  for (size_t i = 0; i < names.size(); ++i) database->families_[names[i]] = handles[i];
  return database;
}

Database::~Database() {
  if (!db_) return;
  absl::MutexLock lock(&mu_);
  // Memtables written to disk now are WAL the next start need not replay.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  for (auto& [name, handle] : families_) handles.push_back(handle);
  db_->Flush(rocksdb::FlushOptions(), handles).PermitUncheckedError();
  for (auto& [name, handle] : families_) db_->DestroyColumnFamilyHandle(handle);
  families_.clear();
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* Database::Family(std::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second;
}

absl::StatusOr<rocksdb::ColumnFamilyHandle*> Database::CreateFamily(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it != families_.end()) return it->second;
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  rocksdb::Status s = db_->CreateColumnFamily(FamilyOptions(cache_, name), name, &handle);
  if (!s.ok()) return FromRocks(s, StrCat("creating column family ", name));
  families_[name] = handle;
  return handle;
}

absl::Status Database::DropFamily(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return absl::OkStatus();
  rocksdb::Status s = db_->DropColumnFamily(it->second);
  if (!s.ok()) return FromRocks(s, StrCat("dropping column family ", name));
  db_->DestroyColumnFamilyHandle(it->second).PermitUncheckedError();
  families_.erase(it);
  return absl::OkStatus();
}

std::string Database::NewIngestPath() {
  return StrCat(IngestDir(path_), "/", ingest_files_.fetch_add(1) + 1, ".sst");
}

std::vector<std::string> Database::FamilyNames() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, handle] : families_) names.push_back(name);
  return names;
}

}  // namespace fidelis::storage
