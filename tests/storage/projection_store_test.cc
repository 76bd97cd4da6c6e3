#include "storage/projection_store.h"

#include <filesystem>
#include <fstream>

#include "domain/strings.h"
#include "fidelis/v1/projections.pb.h"
#include "gtest/gtest.h"
#include "storage/key_format.h"
#include "tests/test_util.h"

namespace fidelis::storage {
namespace {

class ProjectionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    db_ = std::move(Database::Open(dir_.path(), DatabaseOptions{})).value();
    store_ = std::move(ProjectionStore::Open(db_.get(), "AccountSummary", 1)).value();
  }
  void Close() {
    store_.reset();
    db_.reset();
  }
  void Put(ProjectionBatch& batch, const std::string& key, int64_t count) {
    bool found = false;
    auto row = batch.Typed<v1::AccountSummary>(key, &found);
    ASSERT_OK(row);
    (*row)->set_account_id(key);
    (*row)->set_transaction_count(count);
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<ProjectionStore> store_;
};

TEST_F(ProjectionStoreTest, RowsAndCheckpointCommitTogetherAndSurviveReopen) {
  EXPECT_EQ(*store_->Checkpoint(), 0u);
  ProjectionBatch batch(store_.get());
  Put(batch, "b", 2);
  Put(batch, "a", 1);
  EXPECT_FALSE(store_->Get("a")->has_value());  // Nothing is visible before the commit.
  ASSERT_OK(batch.Commit(17));
  Close();
  Open();
  EXPECT_EQ(*store_->Checkpoint(), 17u);
  v1::AccountSummary row;
  ASSERT_TRUE(row.ParseFromString(**store_->Get("b")));
  EXPECT_EQ(row.transaction_count(), 2);
  EXPECT_EQ(*store_->CountRows(), 2u);
}

TEST_F(ProjectionStoreTest, ABatchSeesItsOwnAndStoredRows) {
  ProjectionBatch first(store_.get());
  Put(first, "a", 1);
  ASSERT_OK(first.Commit(1));
  ProjectionBatch second(store_.get());
  bool found = false;
  auto row = second.Typed<v1::AccountSummary>("a", &found);
  ASSERT_OK(row);
  EXPECT_TRUE(found);
  EXPECT_EQ((*row)->transaction_count(), 1);
  (*row)->set_transaction_count(5);
  auto again = second.Typed<v1::AccountSummary>("a", &found);
  EXPECT_EQ((*again)->transaction_count(), 5);
  auto missing = second.Typed<v1::AccountSummary>("zz", &found);
  EXPECT_FALSE(found);
}

TEST_F(ProjectionStoreTest, ScanResumesAfterAKeyInOrder) {
  ProjectionBatch batch(store_.get());
  for (const char* key : {"d", "a", "c", "b", "e"}) Put(batch, key, 0);
  ASSERT_OK(batch.Commit(5));
  std::string seen;
  ASSERT_OK(store_->Scan("", 2, [&](std::string_view key, std::string_view) {
    seen += key;
    return true;
  }));
  EXPECT_EQ(seen, "ab");
  seen.clear();
  ASSERT_OK(store_->Scan("b", 10, [&](std::string_view key, std::string_view) {
    seen += key;
    return true;
  }));
  EXPECT_EQ(seen, "cde");  // The checkpoint and state keys are not rows.
}

TEST_F(ProjectionStoreTest, TruncateClearsRowsAndCheckpointAndSetsTheState) {
  ProjectionBatch batch(store_.get());
  Put(batch, "a", 1);
  ASSERT_OK(batch.Commit(9));
  ASSERT_OK(store_->Truncate(kStateNeedsRebuild));
  EXPECT_EQ(*store_->Checkpoint(), 0u);
  EXPECT_EQ(*store_->CountRows(), 0u);
  EXPECT_EQ(*store_->State(), kStateNeedsRebuild);
  ProjectionBatch rebuilt(store_.get());
  Put(rebuilt, "a", 1);
  ASSERT_OK(rebuilt.Commit(9, kStateLive));
  EXPECT_EQ(*store_->State(), kStateLive);
}

// Entries in the memtable of the store's family (0 when nothing went through it).
uint64_t MemtableEntries(Database& db, ProjectionStore& store) {
  uint64_t entries = 0;
  rocksdb::ColumnFamilyHandle* family =
      db.Family(ProjectionFamily(store.name(), store.build().version, store.build().generation));
  EXPECT_TRUE(db.db()->GetIntProperty(family, "rocksdb.num-entries-active-mem-table", &entries));
  return entries;
}

TEST_F(ProjectionStoreTest, IngestedCommitsCarryTheirCheckpointAndLaterOnesWin) {
  // The state key a truncate left in the memtable overlaps the files: they must still land.
  ASSERT_OK(store_->Truncate(kStateNeedsRebuild));
  ProjectionBatchOptions options;
  options.starts_empty = true;
  options.ingest = true;
  options.defer_writes = true;
  ProjectionBatch batch(store_.get(), options);
  // Keys out of order, one with a byte above 0x7f: files take keys in RocksDB's byte order.
  for (const char* key : {"m", "\xc3\xa9", "a", "z"}) Put(batch, key, 1);
  ASSERT_OK(batch.Commit(3));  // Deferred: nothing written yet.
  EXPECT_EQ(*store_->Checkpoint(), 0u);
  ASSERT_OK(batch.WriteAll(4));
  EXPECT_EQ(*store_->Checkpoint(), 4u);
  EXPECT_EQ(*store_->CountRows(), 4u);
  Put(batch, "m", 2);
  Put(batch, "b", 2);
  ASSERT_OK(batch.WriteAll(9));
  EXPECT_EQ(MemtableEntries(*db_, *store_), 0u);  // Files, not the memtable and its WAL.
  ASSERT_OK(store_->SetState(kStateLive));
  Close();
  Open();
  EXPECT_EQ(*store_->Checkpoint(), 9u);
  EXPECT_EQ(*store_->State(), kStateLive);
  std::string rows;
  ASSERT_OK(store_->Scan("", 100, [&](std::string_view key, std::string_view value) {
    v1::AccountSummary row;
    EXPECT_TRUE(row.ParseFromArray(value.data(), static_cast<int>(value.size())));
    rows += StrCat(key, "=", row.transaction_count(), " ");
    return true;
  }));
  EXPECT_EQ(rows, "a=1 b=2 m=2 z=1 \xc3\xa9=1 ");
}

TEST_F(ProjectionStoreTest, ABatchPastItsRowLimitReadsBackWhatItIngested) {
  ProjectionBatchOptions options;
  options.starts_empty = true;
  options.ingest = true;
  options.defer_writes = true;
  options.max_cached_rows = 2;
  ProjectionBatch batch(store_.get(), options);
  for (const char* key : {"a", "b", "c"}) Put(batch, key, 1);
  ASSERT_OK(batch.Commit(3));  // Over the limit: written, and the cache is dropped.
  EXPECT_EQ(*store_->Checkpoint(), 3u);
  bool found = false;
  auto row = batch.Typed<v1::AccountSummary>("b", &found);
  ASSERT_OK(row);
  EXPECT_TRUE(found);
  EXPECT_EQ((*row)->transaction_count(), 1);
  auto fresh = batch.Typed<v1::AccountSummary>("d", &found);
  ASSERT_OK(fresh);
  EXPECT_FALSE(found);
}

TEST_F(ProjectionStoreTest, OpeningTheDatabaseRemovesFilesLeftBeforeTheirIngestion) {
  const std::string left = db_->NewIngestPath();
  {
    std::ofstream file(left);
    file << "a crash stopped this file before its ingestion";
  }
  ASSERT_TRUE(std::filesystem::exists(left));
  Close();
  Open();
  EXPECT_FALSE(std::filesystem::exists(left));
  EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::path(left).parent_path()));
}

}  // namespace
}  // namespace fidelis::storage
