// The live projections' tailing threads against a real server on RocksDB: the pause a caught-up
// thread takes between batches, which a query at a position ends, and which Stop() ends too.
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

// A pause far longer than any test: an event applied while it runs was applied because
// something ended it, not because it ran out.
class LongTailPauseTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.sync_writes = false;
    options.projection_tail_interval = absl::Hours(1);
  }

  std::shared_ptr<server::ProjectionRunner> SummaryRunner() {
    auto runner = Live("AccountSummary");
    EXPECT_NE(runner, nullptr);
    return runner;
  }

  // Waits for `runner` to apply `position` without WaitFor, which would end its pause.
  static void PollUntilApplied(const server::ProjectionRunner& runner, uint64_t position) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (runner.checkpoint() < position && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_GE(runner.checkpoint(), position);
  }
};

TEST_F(LongTailPauseTest, ACaughtUpProjectionWaitsAndAQueryAtAPositionEndsTheWait) {
  const std::string id = OpenOk("T1", 1000);
  auto runner = SummaryRunner();
  // The opening is applied at once: the thread was waiting for the log to grow, not pausing.
  PollUntilApplied(*runner, Head());
  const uint64_t opened = runner->checkpoint();

  // That batch reached the head, so the thread now pauses before the next one.
  v1::CommandResult deposit;
  ASSERT_TRUE(Deposit(id, 250, &deposit).ok());
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(runner->checkpoint(), opened) << "the deposit was applied during the pause";
  EXPECT_LT(runner->checkpoint(), deposit.global_position());

  // A query that asks for the deposit gets it within its 10 s deadline, not after the hour.
  v1::AccountSummary summary = Summary(id, deposit.global_position());
  EXPECT_EQ(summary.balance().minor_units(), 1250);
  EXPECT_GE(runner->checkpoint(), deposit.global_position());
  // TearDown's Stop() must end the hour's pause as well, or the test times out.
}

TEST_F(LongTailPauseTest, EveryRunnerWaitedForReachesThePosition) {
  const std::string id = OpenOk("T2", 1000);
  for (const auto& runner : LiveBuilds()) PollUntilApplied(*runner, Head());
  v1::CommandResult deposit;
  ASSERT_TRUE(Deposit(id, 5, &deposit).ok());
  for (const auto& runner : LiveBuilds()) {
    ASSERT_OK(runner->WaitFor(deposit.global_position(), absl::Now() + absl::Seconds(10)));
    EXPECT_GE(runner->checkpoint(), deposit.global_position()) << runner->label();
  }
}

class NoTailPauseTest : public LongTailPauseTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.sync_writes = false;
    options.projection_tail_interval = absl::ZeroDuration();
  }
};

TEST_F(NoTailPauseTest, WithoutAPauseEachEventIsAppliedUnasked) {
  const std::string id = OpenOk("T3", 1000);
  auto runner = SummaryRunner();
  PollUntilApplied(*runner, Head());
  v1::CommandResult deposit;
  ASSERT_TRUE(Deposit(id, 250, &deposit).ok());
  PollUntilApplied(*runner, deposit.global_position());
}

}  // namespace
}  // namespace fidelis::testing
