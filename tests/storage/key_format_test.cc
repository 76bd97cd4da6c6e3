// The key layout of storage/key_format.h, byte by byte: what is on disk must not change.
#include "storage/key_format.h"

#include <string>

#include "gtest/gtest.h"

namespace fidelis::storage {
namespace {

TEST(KeyFormatTest, EventKeysAreEightBigEndianBytesThatSortByPosition) {
  EXPECT_EQ(EventKey(1), std::string("\0\0\0\0\0\0\0\x01", 8));
  EXPECT_EQ(EventKey(0x0102030405060708), "\x01\x02\x03\x04\x05\x06\x07\x08");
  EXPECT_LT(EventKey(255), EventKey(256));
  EXPECT_LT(EventKey(0xFFFFFFFF), EventKey(0x100000000));
  for (uint64_t position : {0ull, 1ull, 65535ull, 1ull << 40, ~0ull}) {
    EXPECT_EQ(DecodeBigEndian64(EventKey(position)), position);
  }
}

TEST(KeyFormatTest, StreamKeysAreTheIdANulAndTheVersionAndSortByVersionWithinAStream) {
  EXPECT_EQ(StreamKey("A-1", 2), std::string("A-1\0\0\0\0\0\0\0\0\x02", 12));
  EXPECT_EQ(StreamPrefix("A-1"), std::string("A-1\0", 4));
  EXPECT_LT(StreamKey("A-1", 9), StreamKey("A-1", 10));
  // A stream's keys sit between its prefix and its upper bound, and no other stream's do, even
  // one whose id extends this one.
  const std::string upper = StreamUpperBound("A-1");
  EXPECT_EQ(upper, "A-1\x01");
  for (int64_t version : {int64_t{1}, int64_t{1000}, int64_t{1} << 50}) {
    EXPECT_GE(StreamKey("A-1", version), StreamPrefix("A-1"));
    EXPECT_LT(StreamKey("A-1", version), upper);
  }
  EXPECT_GT(StreamKey("A-10", 1), upper);
  EXPECT_LT(StreamKey("A-", 1), StreamPrefix("A-1"));
}

TEST(KeyFormatTest, ProjectionFamiliesNameTheBuild) {
  EXPECT_EQ(ProjectionFamily("AccountReport", 2), "p/AccountReport/v2");
  EXPECT_EQ(ProjectionFamily("AccountReport", 2, 1), "p/AccountReport/v2.1");
  EXPECT_EQ(ProjectionFamilyPrefix("AccountReport"), "p/AccountReport/v");
  EXPECT_EQ(ProjectionFamily("AccountReport", 2, 1).rfind(ProjectionFamilyPrefix("AccountReport")),
            0u);
  // The prefix of one projection is not a prefix of another's families.
  EXPECT_NE(ProjectionFamily("AccountReportV2", 1).rfind(ProjectionFamilyPrefix("AccountReport")),
            0u);
}

TEST(KeyFormatTest, RowsAndMetaKeysAreTaggedAndNeverCollide) {
  EXPECT_EQ(RowKey("abc"), "rabc");
  EXPECT_EQ(MetaKey("checkpoint"), "mcheckpoint");
  EXPECT_NE(RowKey("checkpoint"), MetaKey("checkpoint"));
  EXPECT_EQ(CatalogKey("AccountSummary"), "projection/AccountSummary");
}

}  // namespace
}  // namespace fidelis::storage
