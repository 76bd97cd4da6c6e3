#include "storage/projection_store.h"

#include <algorithm>
#include <cstring>

#include "domain/status_macros.h"
#include "domain/strings.h"
#include "rocksdb/sst_file_writer.h"
#include "storage/huge_pages.h"
#include "storage/key_format.h"

namespace fidelis::storage {
namespace {

const std::string& CheckpointKey() {
  static const auto* key = new std::string(MetaKey("checkpoint"));
  return *key;
}

const std::string& StateKey() {
  static const auto* key = new std::string(MetaKey("state"));
  return *key;
}

}  // namespace

std::string BuildId::ToString() const {
  if (generation == 0) return StrCat("v", version);
  return StrCat("v", version, ".", generation);
}

std::optional<BuildId> BuildId::Parse(std::string_view text) {
  if (!text.empty() && text[0] == 'v') text.remove_prefix(1);
  auto number = [](std::string_view digits) -> std::optional<uint32_t> {
    if (digits.empty() || digits.size() > 9) return std::nullopt;
    uint32_t value = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    return value;
  };
  const size_t dot = text.find('.');
  std::optional<uint32_t> version = number(text.substr(0, dot));
  if (!version || *version == 0) return std::nullopt;
  BuildId id{*version, 0};
  if (dot != std::string_view::npos) {
    std::optional<uint32_t> generation = number(text.substr(dot + 1));
    if (!generation) return std::nullopt;
    id.generation = *generation;
  }
  return id;
}

absl::StatusOr<std::unique_ptr<ProjectionStore>> ProjectionStore::Open(Database* database,
                                                                       std::string name,
                                                                       BuildId build) {
  ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * family,
                   database->CreateFamily(ProjectionFamily(name, build.version, build.generation)));
  return std::unique_ptr<ProjectionStore>(
      new ProjectionStore(database, family, std::move(name), build));
}

absl::Status ProjectionStore::Drop(Database* database, std::string_view name, BuildId build) {
  return database->DropFamily(ProjectionFamily(name, build.version, build.generation));
}

void ProjectionStore::PutState(std::string_view state, rocksdb::WriteBatch* batch) const {
  batch->Put(family_, StateKey(), rocksdb::Slice(state.data(), state.size()));
}

absl::StatusOr<uint64_t> ProjectionStore::Checkpoint() const {
  std::string value;
  rocksdb::Status s =
      database_->db()->Get(rocksdb::ReadOptions(), family_, CheckpointKey(), &value);
  if (s.IsNotFound()) return 0;
  RETURN_IF_ERROR(FromRocks(s, StrCat("reading the checkpoint of ", name_)));
  if (value.size() != 8) return absl::DataLossError(StrCat("checkpoint of ", name_, " is corrupt"));
  return DecodeBigEndian64(value);
}

absl::StatusOr<std::string> ProjectionStore::State() const {
  std::string value;
  rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(), family_, StateKey(), &value);
  if (s.IsNotFound()) return std::string(kStateLive);
  RETURN_IF_ERROR(FromRocks(s, StrCat("reading the state of ", name_)));
  return value;
}

absl::StatusOr<std::optional<std::string>> ProjectionStore::Get(std::string_view key) const {
  std::string value;
  rocksdb::Status s = database_->db()->Get(rocksdb::ReadOptions(), family_, RowKey(key), &value);
  if (s.IsNotFound()) return std::nullopt;
  RETURN_IF_ERROR(FromRocks(s, StrCat("reading projection ", name_)));
  return value;
}

absl::Status ProjectionStore::Scan(
    std::string_view after_key, size_t limit,
    const std::function<bool(std::string_view, std::string_view)>& visit,
    const rocksdb::Snapshot* snapshot) const {
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  const std::string upper(1, kRowPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(database_->db()->NewIterator(read_options, family_));
  const std::string start = RowKey(after_key);
  it->Seek(start);
  if (it->Valid() && !after_key.empty() && it->key() == start) it->Next();
  for (size_t n = 0; it->Valid() && n < limit; it->Next(), ++n) {
    if (!visit(it->key().ToStringView().substr(1), it->value().ToStringView())) break;
  }
  return FromRocks(it->status(), StrCat("scanning projection ", name_));
}

absl::Status ProjectionStore::Compare(
    const ProjectionStore& a, const ProjectionStore& b, const rocksdb::Snapshot* snapshot,
    const std::function<void(std::string_view, std::optional<std::string_view>,
                             std::optional<std::string_view>)>& visit,
    uint64_t* a_rows, uint64_t* b_rows) {
  PerfCountersOff no_perf_counters;
  const std::string upper(1, kRowPrefix + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> ia(a.database_->db()->NewIterator(read_options, a.family_));
  std::unique_ptr<rocksdb::Iterator> ib(b.database_->db()->NewIterator(read_options, b.family_));
  const std::string start(1, kRowPrefix);
  ia->Seek(start);
  ib->Seek(start);
  *a_rows = *b_rows = 0;
  while (ia->Valid() || ib->Valid()) {
    const int order = !ia->Valid() ? 1 : !ib->Valid() ? -1 : ia->key().compare(ib->key());
    if (order < 0) {
      visit(ia->key().ToStringView().substr(1), ia->value().ToStringView(), std::nullopt);
      ++*a_rows;
      ia->Next();
    } else if (order > 0) {
      visit(ib->key().ToStringView().substr(1), std::nullopt, ib->value().ToStringView());
      ++*b_rows;
      ib->Next();
    } else {
      if (ia->value() != ib->value()) {
        visit(ia->key().ToStringView().substr(1), ia->value().ToStringView(),
              ib->value().ToStringView());
      }
      ++*a_rows;
      ++*b_rows;
      ia->Next();
      ib->Next();
    }
  }
  RETURN_IF_ERROR(FromRocks(ia->status(), StrCat("scanning projection ", a.name_)));
  return FromRocks(ib->status(), StrCat("scanning projection ", b.name_));
}

absl::StatusOr<uint64_t> ProjectionStore::CountRows() const {
  uint64_t count = 0;
  RETURN_IF_ERROR(
      Scan("", std::numeric_limits<size_t>::max(), [&count](std::string_view, std::string_view) {
        ++count;
        return true;
      }));
  return count;
}

absl::Status ProjectionStore::Truncate(std::string_view state) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(family_, std::string(1, kRowPrefix), std::string(1, kRowPrefix + 1));
  batch.Delete(family_, CheckpointKey());
  batch.Put(family_, StateKey(), rocksdb::Slice(state.data(), state.size()));
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(database_->db()->Write(options, &batch),
                   StrCat("truncating projection ", name_));
}

absl::Status ProjectionStore::Flush() {
  rocksdb::FlushOptions options;
  options.wait = true;
  return FromRocks(database_->db()->Flush(options, family_), StrCat("flushing projection ", name_));
}

absl::Status ProjectionStore::SetState(std::string_view state) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(database_->db()->Put(options, family_, StateKey(),
                                        rocksdb::Slice(state.data(), state.size())),
                   StrCat("setting the state of projection ", name_));
}

absl::StatusOr<google::protobuf::Message*> ProjectionBatch::Row(
    std::string_view key, const google::protobuf::Message& prototype, bool* found) {
  RowIndex::Slot* slot = rows_.Find(key);
  if (slot != nullptr) {
    *found = true;
  } else {
    google::protobuf::Message* fresh = prototype.New(arena_.get());
    *found = false;
    if (!complete_) {
      ASSIGN_OR_RETURN(std::optional<std::string> stored, store_->Get(key));
      *found = stored.has_value();
      if (stored && !fresh->ParseFromString(*stored)) {
        return absl::DataLossError(
            StrCat("row ", key, " of projection ", store_->name(), " does not parse"));
      }
    }
    char* copy = google::protobuf::Arena::CreateArray<char>(arena_.get(), key.size());
    std::memcpy(copy, key.data(), key.size());
    slot = rows_.Insert(std::string_view(copy, key.size()), fresh);
  }
  if (!slot->dirty) {
    slot->dirty = true;
    dirty_.push_back(std::string_view(slot->key_data, slot->key_size));
  }
  return slot->row;
}

absl::Status ProjectionBatch::Write(uint64_t checkpoint, std::optional<std::string_view> state) {
  absl::Status status =
      options_.ingest ? Ingest(checkpoint, state) : WriteBatched(checkpoint, state);
  if (!status.ok()) {
    Discard();
    return status;
  }
  for (std::string_view key : dirty_) rows_.Find(key)->dirty = false;
  dirty_.clear();
  if (rows_.size() > options_.max_cached_rows) {
    Clear();
    complete_ = false;
  }
  return absl::OkStatus();
}

void ProjectionBatch::Clear() {
  rows_.Clear();
  dirty_.clear();
  google::protobuf::ArenaOptions arena_options;
  arena_options.start_block_size = 64 << 10;
  arena_options.max_block_size = 2 << 20;
  arena_options.block_alloc = &AllocateLarge;
  arena_options.block_dealloc = &FreeLarge;
  arena_ = std::make_unique<google::protobuf::Arena>(arena_options);
}

absl::Status ProjectionBatch::WriteBatched(uint64_t checkpoint,
                                           std::optional<std::string_view> state) {
  rocksdb::WriteBatch batch;
  std::string value;
  for (std::string_view key : dirty_) {
    rows_.Find(key)->row->SerializeToString(&value);
    batch.Put(store_->family_, RowKey(std::string_view(key.data(), key.size())), value);
  }
  std::string position;
  PutBigEndian64(&position, checkpoint);
  batch.Put(store_->family_, CheckpointKey(), position);
  if (state) batch.Put(store_->family_, StateKey(), rocksdb::Slice(state->data(), state->size()));
  return FromRocks(store_->database_->db()->Write(rocksdb::WriteOptions(), &batch),
                   StrCat("writing projection ", store_->name()));
}

absl::Status ProjectionBatch::Ingest(uint64_t checkpoint, std::optional<std::string_view> state) {
  rocksdb::DB* db = store_->database_->db();
  const std::string what = StrCat("writing projection ", store_->name());
  // A file whose key range overlaps the memtable makes the ingestion flush it while holding up
  // every write; emptying the memtable once first keeps that out of the write queue (nothing
  // else writes to this family during a bulk load).
  if (!flushed_) {
    RETURN_IF_ERROR(store_->Flush());
    flushed_ = true;
  }
  const std::string path = store_->database_->NewIngestPath();
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(db->GetDBOptions()),
                                db->GetOptions(store_->family_), store_->family_,
                                /*invalidate_page_cache=*/true, rocksdb::Env::IO_LOW);
  RETURN_IF_ERROR(FromRocks(writer.Open(path), what));
  // An SST file takes its keys in order: the meta keys ('m') sort before the rows ('r').
  std::string position;
  PutBigEndian64(&position, checkpoint);
  RETURN_IF_ERROR(FromRocks(writer.Put(CheckpointKey(), position), what));
  if (state) {
    RETURN_IF_ERROR(
        FromRocks(writer.Put(StateKey(), rocksdb::Slice(state->data(), state->size())), what));
  }
  std::sort(dirty_.begin(), dirty_.end());
  std::string key, value;
  for (std::string_view row_key : dirty_) {
    rows_.Find(row_key)->row->SerializeToString(&value);
    key.assign(1, kRowPrefix);
    key.append(row_key.data(), row_key.size());
    RETURN_IF_ERROR(FromRocks(writer.Put(key, value), what));
  }
  absl::Status status = FromRocks(writer.Finish(), what);
  if (status.ok()) {
    rocksdb::IngestExternalFileOptions options;
    options.move_files = true;
    // The file's entries all take the sequence number assigned at ingestion without rewriting
    // the file, which keeps the write queue's pause to the manifest update.
    options.write_global_seqno = false;
    status = FromRocks(db->IngestExternalFile(store_->family_, {path}, options), what);
  }
  // Gone when it was moved in; removed when the ingestion failed.
  db->GetEnv()->DeleteFile(path).PermitUncheckedError();
  return status;
}

absl::Status ProjectionBatch::Commit(uint64_t checkpoint, std::optional<std::string_view> state) {
  if (options_.defer_writes && !state && rows_.size() <= options_.max_cached_rows) {
    return absl::OkStatus();
  }
  return Write(checkpoint, state);
}

absl::Status ProjectionBatch::WriteAll(uint64_t checkpoint) {
  return Write(checkpoint, std::nullopt);
}

void ProjectionBatch::Discard() {
  Clear();
  complete_ = false;
}

}  // namespace fidelis::storage
