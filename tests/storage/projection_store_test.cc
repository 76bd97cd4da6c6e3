#include "storage/projection_store.h"

#include "fidelis/v1/projections.pb.h"
#include "gtest/gtest.h"
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

}  // namespace
}  // namespace fidelis::storage
