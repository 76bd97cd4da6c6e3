// RocksDbEventStore: the EventStore contract suite (event_store_contract.h) on real RocksDB in a
// fresh directory, and what only this implementation does: pacing its syncs.
#include "storage/rocksdb_event_store.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "storage/database.h"
#include "tests/storage/event_store_contract.h"
#include "tests/test_util.h"

namespace fidelis::storage {
namespace {

class RocksDbHarness : public EventStoreHarness {
 public:
  RocksDbHarness() { Open(); }
  EventStore* store() override { return store_.get(); }
  void Close() override {
    store_.reset();
    db_.reset();
  }
  void Open() override {
    db_ = std::move(Database::Open(dir_.path(), {})).value();
    store_ = std::move(RocksDbEventStore::Open(db_.get())).value();
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<RocksDbEventStore> store_;
};

std::unique_ptr<EventStoreHarness> MakeRocksDbHarness() {
  return std::make_unique<RocksDbHarness>();
}

INSTANTIATE_TEST_SUITE_P(RocksDb, EventStoreContractTest, ::testing::Values(&MakeRocksDbHarness),
                         [](const auto&) { return std::string("Embedded"); });

TEST(RocksDbEventStoreTest, AYieldingReaderWakesWhenTheQueueDrains) {
  testing::TempDir dir;
  auto db = std::move(Database::Open(dir.path(), {})).value();
  auto store = std::move(RocksDbEventStore::Open(db.get())).value();
  // The first append's callback holds the writer while a second waits in the queue.
  auto held = std::make_shared<absl::Notification>();
  auto release = std::make_shared<absl::Notification>();
  store->AppendAsync(OneStream("A-1", kExpectAny),
                     [held, release](const absl::StatusOr<AppendResult>&) {
                       held->Notify();
                       release->WaitForNotification();
                     });
  held->WaitForNotification();
  auto second_done = std::make_shared<absl::Notification>();
  store->AppendAsync(OneStream("A-1", kExpectAny),
                     [second_done](const absl::StatusOr<AppendResult>&) { second_done->Notify(); });
  EXPECT_GT(store->PendingAppends(), 0u);
  EXPECT_FALSE(store->WaitUntilNoPendingAppends(absl::Milliseconds(50)));
  std::thread releaser([release] {
    absl::SleepFor(absl::Milliseconds(20));
    release->Notify();
  });
  EXPECT_TRUE(store->WaitUntilNoPendingAppends(absl::Seconds(30)));
  releaser.join();
  second_done->WaitForNotification();
  EXPECT_EQ(store->PendingAppends(), 0u);
}

// Pacing (EventStoreOptions::min_sync_interval). Each test opens the store it needs.
class PacedEventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {}
  void Open(bool sync_writes, absl::Duration min_sync_interval) {
    DatabaseOptions db_options;
    db_options.sync_writes = sync_writes;
    EventStoreOptions options;
    options.min_sync_interval = min_sync_interval;
    auto db = Database::Open(dir_.path(), db_options);
    ASSERT_OK(db);
    db_ = std::move(*db);
    auto store = RocksDbEventStore::Open(db_.get(), options);
    ASSERT_OK(store);
    store_ = std::move(*store);
  }

  // Commits a group of two appends: a first append's callback holds the writer until both
  // are queued, so the writer takes them together next. Returns once both are answered.
  void CommitAGroupOfTwo() {
    // Shared with the writer's callbacks, which may still be inside a Notify() when this
    // returns.
    struct Gates {
      absl::Notification held, queued, first_done, both_done;
      std::atomic<int> answered{0};
    };
    auto gates = std::make_shared<Gates>();
    store_->AppendAsync(OneStream("H-1", kExpectAny),
                        [gates](const absl::StatusOr<AppendResult>& result) {
                          EXPECT_OK(result);
                          gates->held.Notify();
                          gates->queued.WaitForNotification();
                          gates->first_done.Notify();
                        });
    gates->held.WaitForNotification();
    for (int i = 0; i < 2; ++i) {
      store_->AppendAsync(OneStream("G-1", kExpectAny),
                          [gates](const absl::StatusOr<AppendResult>& result) {
                            EXPECT_OK(result);
                            if (++gates->answered == 2) gates->both_done.Notify();
                          });
    }
    gates->queued.Notify();
    gates->first_done.WaitForNotification();
    gates->both_done.WaitForNotification();
  }

  testing::TempDir dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<RocksDbEventStore> store_;
};

TEST_F(PacedEventStoreTest, AfterAGroupOfSeveralTheNextSyncWaitsForTheInterval) {
  Open(/*sync_writes=*/true, absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  CommitAGroupOfTwo();  // Its sync starts after `start`; the next may start 300 ms after it.
  ASSERT_OK(store_->Append(OneStream("N-1", kExpectAny)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(store_->HeadPosition(), 4u);
}

TEST_F(PacedEventStoreTest, AnAppendAfterALoneOneIsNotHeldBack) {
  // A group of one says nothing about the load: the next append goes at once, not a minute
  // later.
  Open(/*sync_writes=*/true, absl::Minutes(1));
  ASSERT_OK(store_->Append(OneStream("A-1", kExpectAny)));
  const absl::Time start = absl::Now();
  ASSERT_OK(store_->Append(OneStream("A-1", kExpectAny)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST_F(PacedEventStoreTest, WritesThatAreNotSyncedAreNotPaced) {
  Open(/*sync_writes=*/false, absl::Minutes(1));
  CommitAGroupOfTwo();
  const absl::Time start = absl::Now();
  ASSERT_OK(store_->Append(OneStream("N-1", kExpectAny)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

}  // namespace
}  // namespace fidelis::storage
