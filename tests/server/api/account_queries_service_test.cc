// Queries that wait for their build to apply min_global_position, against a real server: the
// ways such a wait ends other than the position being applied (which account_service_test and
// projection_engine_test cover). A test holds the build's writer lease so that nothing applies
// the position meanwhile.
#include <future>
#include <thread>

#include "gmock/gmock.h"
#include "server/read/projection_runner.h"
#include "tests/server/server_fixture.h"

namespace fidelis::testing {
namespace {

class WaitingQueryTest : public ServerTest {
 protected:
  void Configure(server::ServerOptions& options) override { options.sync_writes = false; }
  void TearDown() override {
    lease_.reset();  // Stopping the server waits for it.
    ServerTest::TearDown();
  }

  // Opens an account, waits until the summary has applied it, and leaves a deposit the
  // summary has not applied, because the test holds its lease.
  void SetUpUnappliedDeposit() {
    id_ = OpenOk("W1", 100);
    Summary(id_, Head());
    runner_ = Live("AccountSummary");
    ASSERT_NE(runner_, nullptr);
    lease_ = std::make_unique<server::BuildWriter>(*runner_);
    v1::CommandResult deposit;
    ASSERT_TRUE(Deposit(id_, 5, &deposit).ok());
    deposit_position_ = deposit.global_position();
    ASSERT_LT(runner_->checkpoint(), deposit_position_);
  }

  // GetAccountSummary at the deposit's position, with `timeout`, on another thread.
  std::future<grpc::Status> QueryDeposit(absl::Duration timeout) {
    return std::async(std::launch::async, [this, timeout] {
      v1::GetAccountSummaryRequest request;
      request.set_account_id(id_);
      request.set_min_global_position(deposit_position_);
      v1::AccountSummary summary;
      return queries_->GetAccountSummary(Ctx(timeout).get(), request, &summary);
    });
  }

  std::string id_;
  uint64_t deposit_position_ = 0;
  std::shared_ptr<server::ProjectionRunner> runner_;
  std::unique_ptr<server::BuildWriter> lease_;
};

TEST_F(WaitingQueryTest, PastItsDeadlineAQuerySaysHowFarTheBuildGot) {
  SetUpUnappliedDeposit();
  grpc::Status status = QueryDeposit(absl::Milliseconds(300)).get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // The server answers just before the deadline, so that the client learns why.
  EXPECT_THAT(status.error_message(),
              ::testing::HasSubstr("has applied up to global position " +
                                   std::to_string(runner_->checkpoint()) + ", not yet " +
                                   std::to_string(deposit_position_)));
  lease_.reset();
  EXPECT_EQ(Summary(id_, deposit_position_).balance().minor_units(), 105);
}

TEST_F(WaitingQueryTest, AWaitingQueryIsAnsweredOnceTheBuildAppliesThePosition) {
  SetUpUnappliedDeposit();
  std::future<grpc::Status> query = QueryDeposit(absl::Seconds(20));
  EXPECT_EQ(query.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  lease_->AdvanceTo(deposit_position_).IgnoreError();
  EXPECT_TRUE(query.get().ok());
}

TEST_F(WaitingQueryTest, AWaitingQueryGetsUnavailableWhenTheBuildBecomesUnreadable) {
  SetUpUnappliedDeposit();
  std::future<grpc::Status> query = QueryDeposit(absl::Seconds(20));
  EXPECT_EQ(query.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  lease_->MarkUnavailable("r-test", [] { return std::string("AccountSummary is rebuilding"); });
  grpc::Status status = query.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "AccountSummary is rebuilding");
  lease_->MarkAvailable();
}

TEST_F(WaitingQueryTest, AWaitingQueryEndsWithUnavailableWhenTheServerStops) {
  SetUpUnappliedDeposit();
  std::future<grpc::Status> query = QueryDeposit(absl::Seconds(20));
  EXPECT_EQ(query.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  // Shutdown stops the projections, which waits for the lease: release it once the query ends.
  std::thread stopper([this] { server_->Shutdown(); });
  grpc::Status status = query.get();
  lease_.reset();
  stopper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "the server is shutting down");
}

}  // namespace
}  // namespace fidelis::testing
