// A rebuild's rate and ETA from wall-clock progress, on a synthetic timeline.
#include "server/read/rate_meter.h"

#include "gtest/gtest.h"

namespace fidelis::server {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

TEST(RateMeterTest, TheRateCountsTimeSpentWaitingNotOnlyTimeSpentWorking) {
  // 1,000 events done in a burst every 100 ms (each burst takes 1 ms, then the job sleeps):
  // 10,000 events a second, however fast each burst was.
  RateMeter meter;
  meter.Record(kStart, 0);
  uint64_t done = 0;
  for (int i = 1; i <= 30; ++i) {
    done += 1000;
    meter.Record(kStart + absl::Milliseconds(100 * i - 99), done);
  }
  const absl::Time now = kStart + absl::Seconds(3);
  EXPECT_NEAR(meter.Rate(now), 10000, 400);
  // 27,000 events left at 10,000/s.
  ASSERT_TRUE(meter.EtaSeconds(now, 57000).has_value());
  EXPECT_NEAR(*meter.EtaSeconds(now, 57000), 2.7, 0.15);
}

TEST(RateMeterTest, TheRateFollowsAChangeOfPaceWithinTheWindow) {
  RateMeter meter(absl::Seconds(5));
  meter.Record(kStart, 0);
  uint64_t done = 0;
  absl::Time t = kStart;
  for (int i = 0; i < 100; ++i) {  // 10 s at 100,000 events/s.
    t += absl::Milliseconds(100);
    done += 10000;
    meter.Record(t, done);
  }
  EXPECT_NEAR(meter.Rate(t), 100000, 1000);
  for (int i = 0; i < 100; ++i) {  // Then 10 s at 1,000 events/s.
    t += absl::Milliseconds(100);
    done += 100;
    meter.Record(t, done);
  }
  EXPECT_NEAR(meter.Rate(t), 1000, 100);
}

TEST(RateMeterTest, AStallLowersTheRateAndUnknownRatesGiveNoEta) {
  RateMeter meter(absl::Seconds(5));
  EXPECT_EQ(meter.Rate(kStart), 0);
  meter.Record(kStart, 0);
  EXPECT_EQ(meter.Rate(kStart), 0);
  EXPECT_FALSE(meter.EtaSeconds(kStart, 100).has_value());
  meter.Record(kStart + absl::Seconds(1), 1000);
  EXPECT_NEAR(meter.Rate(kStart + absl::Seconds(1)), 1000, 1);
  // Nothing more for 9 s: the window holds no progress.
  EXPECT_EQ(meter.Rate(kStart + absl::Seconds(10)), 0);
  // Done is done, whatever the rate.
  EXPECT_EQ(meter.EtaSeconds(kStart + absl::Seconds(10), 1000), 0.0);
}

}  // namespace
}  // namespace fidelis::server
