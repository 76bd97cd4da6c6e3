#include "storage/steady_wait.h"

#include <chrono>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace fidelis::storage {
namespace {

using std::chrono::steady_clock;

TEST(SteadyDeadlineTest, APastDeadlineIsNowAndAnInfiniteOneAYearAway) {
  const steady_clock::time_point before = steady_clock::now();
  const steady_clock::time_point past = SteadyDeadline(absl::Now() - absl::Hours(1));
  const steady_clock::time_point far = SteadyDeadline(absl::InfiniteFuture());
  const steady_clock::time_point after = steady_clock::now();
  EXPECT_GE(past, before);
  EXPECT_LE(past, after);
  EXPECT_GE(far, before + std::chrono::hours(24 * 365));
  EXPECT_LE(far, after + std::chrono::hours(24 * 365));
}

TEST(SteadyDeadlineTest, ADeadlineAheadKeepsWhatIsLeftOfIt) {
  const steady_clock::time_point before = steady_clock::now();
  const steady_clock::time_point until = SteadyDeadline(absl::Now() + absl::Seconds(10));
  const steady_clock::time_point after = steady_clock::now();
  EXPECT_GT(until, before + std::chrono::seconds(9));
  EXPECT_LE(until, after + std::chrono::seconds(10));
}

TEST(SteadyCondVarTest, AWaitEndsFalseOnceItsTimeHasPassed) {
  absl::Mutex mu;
  SteadyCondVar cv;
  absl::MutexLock lock(&mu);
  const steady_clock::time_point until = steady_clock::now() + std::chrono::milliseconds(20);
  while (cv.WaitUntil(&mu, until)) {
  }
  EXPECT_GE(steady_clock::now(), until);
}

TEST(SteadyCondVarTest, ASignalEndsTheWaitEarlyWithTheMutexHeldAgain) {
  absl::Mutex mu;
  SteadyCondVar cv;
  bool ready = false;
  std::thread signaller([&] {
    absl::SleepFor(absl::Milliseconds(20));
    absl::MutexLock lock(&mu);
    ready = true;
    cv.SignalAll();
  });
  const steady_clock::time_point until = steady_clock::now() + std::chrono::seconds(30);
  {
    absl::MutexLock lock(&mu);
    bool in_time = true;
    while (!ready && in_time) in_time = cv.WaitUntil(&mu, until);
    EXPECT_TRUE(ready);
    EXPECT_TRUE(in_time);
    mu.AssertHeld();
  }
  signaller.join();
}

TEST(SteadyCondVarTest, AnUntimedWaitEndsOnASignal) {
  absl::Mutex mu;
  SteadyCondVar cv;
  bool ready = false;
  std::thread signaller([&] {
    absl::MutexLock lock(&mu);
    ready = true;
    cv.Signal();
  });
  {
    absl::MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
  }
  signaller.join();
  EXPECT_TRUE(ready);
}

}  // namespace
}  // namespace fidelis::storage
