#include "storage/row_index.h"

#include <deque>
#include <string>

#include "domain/strings.h"
#include "fidelis/v1/projections.pb.h"
#include "gtest/gtest.h"

namespace fidelis::storage {
namespace {

// Keys and rows outlive the index, as the index requires.
class RowIndexTest : public ::testing::Test {
 protected:
  std::string_view Key(std::string key) { return keys_.emplace_back(std::move(key)); }
  google::protobuf::Message* NewRow() { return &rows_.emplace_back(); }

  std::deque<std::string> keys_;
  std::deque<v1::AccountSummary> rows_;
  RowIndex index_;
};

TEST_F(RowIndexTest, EmptyIndexFindsNothingAndPrefetchesSafely) {
  EXPECT_EQ(index_.Find("a"), nullptr);
  index_.Prefetch("a");
  index_.PrefetchRow("a", 4);
  EXPECT_EQ(index_.size(), 0u);
}

TEST_F(RowIndexTest, FindsEveryKeyAcrossGrowthShortAndLong) {
  // Short keys live in the slot, long ones only in the caller's copy; both must survive the
  // table growing from 16 slots to 65,536.
  constexpr int kKeys = 20000;
  auto KeyOf = [](int i) {
    return i % 3 == 0 ? StrCat("long-key-", std::string(60, 'x'), "-", i) : StrCat("acct-", i);
  };
  std::vector<google::protobuf::Message*> rows;
  for (int i = 0; i < kKeys; ++i) {
    std::string key = KeyOf(i);
    rows.push_back(NewRow());
    RowIndex::Slot* slot = index_.Insert(Key(std::move(key)), rows.back());
    ASSERT_NE(slot, nullptr);
    EXPECT_FALSE(slot->dirty);
  }
  EXPECT_EQ(index_.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    std::string key = KeyOf(i);
    index_.Prefetch(key);
    index_.PrefetchRow(key, 4);
    RowIndex::Slot* slot = index_.Find(key);
    ASSERT_NE(slot, nullptr) << key;
    EXPECT_EQ(slot->row, rows[i]) << key;
    EXPECT_EQ(slot->key(), key);
  }
  EXPECT_EQ(index_.Find("acct-20000"), nullptr);
  EXPECT_EQ(index_.Find("acct-1 "), nullptr);
  EXPECT_EQ(index_.Find(""), nullptr);
}

TEST_F(RowIndexTest, KeysThatDifferOnlyPastTheInlinePartAreDistinct) {
  const std::string prefix(RowIndex::Slot::kInlineKey, 'k');
  google::protobuf::Message* a = NewRow();
  google::protobuf::Message* b = NewRow();
  google::protobuf::Message* c = NewRow();
  index_.Insert(Key(prefix + "a"), a);
  index_.Insert(Key(prefix + "b"), b);
  index_.Insert(Key(prefix), c);
  EXPECT_EQ(index_.Find(prefix + "a")->row, a);
  EXPECT_EQ(index_.Find(prefix + "b")->row, b);
  EXPECT_EQ(index_.Find(prefix)->row, c);
  EXPECT_EQ(index_.Find(prefix + "c"), nullptr);
}

TEST_F(RowIndexTest, TheDirtyFlagIsTheCallersAndSurvivesGrowth) {
  index_.Insert(Key("first"), NewRow())->dirty = true;
  for (int i = 0; i < 1000; ++i) index_.Insert(Key(StrCat("k", i)), NewRow());
  EXPECT_TRUE(index_.Find("first")->dirty);
  EXPECT_FALSE(index_.Find("k999")->dirty);
}

TEST_F(RowIndexTest, ClearForgetsEverythingAndTheIndexIsReusable) {
  for (int i = 0; i < 100; ++i) index_.Insert(Key(StrCat("k", i)), NewRow());
  index_.Clear();
  EXPECT_EQ(index_.size(), 0u);
  EXPECT_EQ(index_.Find("k1"), nullptr);
  google::protobuf::Message* row = NewRow();
  index_.Insert(Key("k1"), row);
  EXPECT_EQ(index_.Find("k1")->row, row);
  EXPECT_EQ(index_.size(), 1u);
}

}  // namespace
}  // namespace fidelis::storage
