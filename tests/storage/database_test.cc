#include "storage/database.h"

#include <thread>

#include "gtest/gtest.h"
#include "rocksdb/slice_transform.h"
#include "storage/key_format.h"
#include "tests/test_util.h"

namespace fidelis::storage {
namespace {

// The streams family's memtable insert hint is kept per stream: a stream-index key maps to its
// stream's prefix, whatever the version, so consecutive versions of one stream share a hint.
TEST(DatabaseTest, StreamIndexKeysShareAnInsertHintPerStream) {
  testing::TempDir dir;
  auto database = Database::Open(dir.path(), DatabaseOptions{});
  ASSERT_TRUE(database.ok()) << database.status();
  rocksdb::DB* db = (*database)->db();
  const rocksdb::ColumnFamilyOptions streams = db->GetOptions((*database)->Family(kStreamsFamily));
  ASSERT_NE(streams.memtable_insert_with_hint_prefix_extractor, nullptr);
  const rocksdb::SliceTransform& hint = *streams.memtable_insert_with_hint_prefix_extractor;
  for (int64_t version : {1, 2, 64, 1000000}) {
    const std::string key = StreamKey("account-7f3a", version);
    ASSERT_TRUE(hint.InDomain(key));
    EXPECT_EQ(hint.Transform(key).ToString(), StreamPrefix("account-7f3a"));
  }
  EXPECT_NE(hint.Transform(StreamKey("account-7f3b", 1)).ToString(), StreamPrefix("account-7f3a"));
  // Events only grow and command ids are random: no hint (it would cost memory per key).
  EXPECT_EQ(
      db->GetOptions((*database)->Family(kEventsFamily)).memtable_insert_with_hint_prefix_extractor,
      nullptr);
  EXPECT_EQ(db->GetOptions((*database)->Family(kCommandsFamily))
                .memtable_insert_with_hint_prefix_extractor,
            nullptr);
}

TEST(DatabaseTest, PerfCountersOffLastsForItsScopeOnItsThreadOnly) {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableTimeExceptForMutex);
  {
    PerfCountersOff off;
    EXPECT_EQ(rocksdb::GetPerfLevel(), rocksdb::PerfLevel::kDisable);
    rocksdb::PerfLevel other = rocksdb::PerfLevel::kUninitialized;
    std::thread([&] { other = rocksdb::GetPerfLevel(); }).join();
    EXPECT_EQ(other, rocksdb::PerfLevel::kEnableCount);  // RocksDB's default, untouched.
  }
  EXPECT_EQ(rocksdb::GetPerfLevel(), rocksdb::PerfLevel::kEnableTimeExceptForMutex);
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
}

}  // namespace
}  // namespace fidelis::storage
