// The build catalog on real RocksDB: every switch writes the catalog and the build state it
// names together, refuses what the catalog does not allow, and survives a reopen.
#include "storage/build_catalog.h"

#include <memory>

#include "gtest/gtest.h"
#include "storage/key_format.h"
#include "tests/test_util.h"

namespace fidelis::storage {
namespace {

class BuildCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    db_ = std::move(Database::Open(dir_.path(), {})).value();
    catalog_ = std::make_unique<BuildCatalog>(db_.get());
  }
  void Reopen() {
    catalog_.reset();
    db_.reset();
    Open();
  }
  std::unique_ptr<ProjectionStore> Store(BuildId build) {
    return std::move(ProjectionStore::Open(db_.get(), "P", build)).value();
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<BuildCatalog> catalog_;
};

TEST_F(BuildCatalogTest, AShadowIsPromotedRolledBackAndRetired) {
  auto live_store = Store({1, 0});
  auto catalog = catalog_->Initialize("P", {1, 0});
  ASSERT_OK(catalog);
  // v1 was stored already: a new shadow of v1 is a new generation.
  const BuildId shadow_id = catalog_->NextShadow("P", *catalog, 1);
  EXPECT_EQ(shadow_id.ToString(), "v1.1");
  EXPECT_EQ(catalog_->NextShadow("P", *catalog, 2).ToString(), "v2");
  auto shadow = Store(shadow_id);
  catalog =
      catalog_->AddShadow("P", *catalog, *shadow, "rb-1", "request", absl::FromUnixSeconds(7));
  ASSERT_OK(catalog);
  EXPECT_EQ(catalog->shadow(), "v1.1");
  EXPECT_EQ(catalog->next_generation(), 2u);
  EXPECT_EQ(*shadow->State(), kStateBuilding);
  EXPECT_CODE(catalog_->AddShadow("P", *catalog, *shadow, "rb-2", "", absl::Now()),
              kFailedPrecondition);

  catalog = catalog_->Promote("P", *catalog, *shadow, absl::FromUnixSeconds(100));
  ASSERT_OK(catalog);
  EXPECT_EQ(catalog->live(), "v1.1");
  EXPECT_EQ(catalog->previous(), "v1");
  EXPECT_TRUE(catalog->shadow().empty());
  EXPECT_TRUE(catalog->shadow_rebuild_id().empty());
  EXPECT_EQ(*shadow->State(), kStateLive);
  EXPECT_CODE(catalog_->Promote("P", *catalog, *shadow, absl::Now()), kFailedPrecondition);

  catalog = catalog_->Rollback("P", *catalog, absl::FromUnixSeconds(200));
  ASSERT_OK(catalog);
  EXPECT_EQ(catalog->live(), "v1");
  EXPECT_EQ(catalog->previous(), "v1.1");
  EXPECT_EQ(catalog->retire_at_micros(), 200'000'000);

  catalog = catalog_->RetirePrevious("P", *catalog);
  ASSERT_OK(catalog);
  EXPECT_TRUE(catalog->previous().empty());
  EXPECT_CODE(catalog_->RetirePrevious("P", *catalog), kFailedPrecondition);
  EXPECT_CODE(catalog_->Rollback("P", *catalog, absl::Now()), kFailedPrecondition);
  EXPECT_CODE(catalog_->DropShadow("P", *catalog), kFailedPrecondition);

  // The v1.1 family is now named by no role: it is stale.
  EXPECT_EQ(catalog_->StaleFamilies("P", *catalog),
            std::vector<std::string>{ProjectionFamily("P", 1, 1)});

  shadow.reset();
  live_store.reset();
  Reopen();
  auto read = catalog_->Read("P");
  ASSERT_OK(read);
  EXPECT_EQ(read->SerializeAsString(), catalog->SerializeAsString());
}

TEST_F(BuildCatalogTest, DroppingAShadowForgetsItsRebuild) {
  auto catalog = catalog_->Initialize("P", {1, 0});
  ASSERT_OK(catalog);
  auto shadow = Store(catalog_->NextShadow("P", *catalog, 2));
  catalog = catalog_->AddShadow("P", *catalog, *shadow, "rb-9", "r", absl::Now());
  ASSERT_OK(catalog);
  EXPECT_EQ(catalog->shadow_rebuild_id(), "rb-9");
  catalog = catalog_->DropShadow("P", *catalog);
  ASSERT_OK(catalog);
  EXPECT_TRUE(catalog->shadow().empty());
  EXPECT_TRUE(catalog->shadow_rebuild_id().empty());
  EXPECT_TRUE(catalog->shadow_request().empty());
  EXPECT_EQ(catalog->live(), "v1");
}

TEST_F(BuildCatalogTest, AProjectionNeverRecordedHasAnEmptyCatalog) {
  auto catalog = catalog_->Read("Unknown");
  ASSERT_OK(catalog);
  EXPECT_TRUE(catalog->live().empty());
  EXPECT_TRUE(catalog_->StaleFamilies("Unknown", *catalog).empty());
}

}  // namespace
}  // namespace fidelis::storage
